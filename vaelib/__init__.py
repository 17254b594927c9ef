"""vaelib: the small PyTorch library behind the VAE course.

Modules, in the order the course teaches them:

- ``vaelib.data``: MNIST as device-resident tensors, with binarization
- ``vaelib.likelihoods``: decoder likelihoods p(x|z); ``vaelib.autoregressive``: the ``pixelcnn`` one
- ``vaelib.kl``: the KL divergence, closed form and Monte Carlo
- ``vaelib.reparameterization``: z = mu + sigma * eps
- ``vaelib.priors``: p(z)
- ``vaelib.elbo``: the ELBO and the importance-weighted bound
- ``vaelib.networks`` and ``vaelib.vae``: encoders, decoders, the VAE
- ``vaelib.schedules``: beta / KL annealing schedules
- ``vaelib.training``: ``fit``
- ``vaelib.checkpoints``: saving and loading (``vaelib.load``)
- ``vaelib.evaluation``: test ELBO, IWAE log-likelihood, bits/dim
- ``vaelib.plotting``: sample grids, reconstructions, latent plots
- ``vaelib.pretrained``: the checkpoints in pretrained/, loaded when present
- ``vaelib.widgets``: ipywidgets explorers; ``vaelib.checks``: exercise checks;
  ``vaelib.coursework``: student versions of the notebooks
"""
__version__ = "0.1.0"

from . import (autoregressive, checks, checkpoints, coursework, data, elbo, evaluation, kl, likelihoods, networks,
               plotting, pretrained, priors, reparameterization, schedules, training, vae, widgets, files, validation)
from .checkpoints import CheckpointError, load, load_checkpoint, save_checkpoint
from .data import MNIST, DataError, FashionMNIST, ImageData, load_dataset
from .elbo import ELBO, iwae_bound
from .training import History, TrainingDiverged, fast_mode, fit, pick_device
from .vae import VAE, build_vae

__all__ = ["__version__", "MNIST", "FashionMNIST", "ImageData", "load_dataset", "DataError", "ELBO", "iwae_bound", "VAE", "build_vae", "fit", "History",
           "TrainingDiverged", "fast_mode", "pick_device", "load", "load_checkpoint", "save_checkpoint",
           "CheckpointError"]
