"""vaelib: the small PyTorch library behind the VAE course.

Modules, in the order the course teaches them (each is imported when first used, so
``import vaelib`` stays quick and pulls in no plotting or widget toolkit):

- ``vaelib.data``: image data sets as device-resident tensors (``ImageData``, ``MNIST``,
  ``FashionMNIST``, ``load_dataset``), with binarization
- ``vaelib.likelihoods``: decoder likelihoods p(x|z); ``vaelib.autoregressive``: the ``pixelcnn`` one
- ``vaelib.kl``: the KL divergence, closed form and Monte Carlo
- ``vaelib.reparameterization``: z = mu + sigma * eps; ``vaelib.posteriors``: q(z|x)
- ``vaelib.priors``: p(z)
- ``vaelib.bounds``: the ELBO and the importance-weighted bound (old name, deprecated: ``vaelib.elbo``)
- ``vaelib.networks`` and ``vaelib.vae``: encoders, decoders, the VAE, ``VAEConfig``
- ``vaelib.schedules``: beta / KL annealing schedules; ``vaelib.objectives``: ELBO, beta-ELBO, IWAE
- ``vaelib.training``: ``fit``; ``vaelib.runs``: a run's settings (``RunConfig``), its folder and what
  its checkpoints hold (the library behind ``python -m vaelib generate``); ``vaelib.train_run``:
  ``train_vae``, one of vaelib's VAEs trained on a named data set in a run folder (``vaelib train``);
  ``vaelib.callbacks``: checkpoints, samples, TensorBoard, guards;
  ``vaelib.distributed``: several GPUs or processes with ``torchrun``
- ``vaelib.checkpoints``: saving and loading (``vaelib.save``, ``vaelib.load``)
- ``vaelib.evaluation``: test ELBO, IWAE log-likelihood, bits/dim
- ``vaelib.images``: image grids and their files, with no plotting library; ``vaelib.plotting``: figures
  (matplotlib, the ``[plot]`` extra): sample grids, reconstructions, latent plots
- ``vaelib.pretrained``: the checkpoints in pretrained/, loaded when present
- ``vaelib.widgets``: ipywidgets explorers; ``vaelib.checks``: exercise checks;
  ``vaelib.coursework``: student versions of the notebooks
- ``vaelib.cli`` and ``vaelib.flags``: the command line, and its flags' names for the library's arguments
- ``vaelib.files``, ``vaelib.validation``: atomic writes and argument checks, used throughout;
  ``vaelib.threads``: torch's CPU thread count for a block of work
"""
from __future__ import annotations

import importlib

from .version import __version__

# name -> the module that defines it; ``vaelib.<name>`` imports that module on first use (PEP 562)
_EXPORTS = {
    "ImageData": "data", "MNIST": "data", "FashionMNIST": "data", "load_dataset": "data", "DataError": "data",
    "VAE": "vae", "VAEConfig": "vae", "build_vae": "vae",
    "ELBOTerms": "bounds", "ELBO": "bounds", "iwae_bound": "bounds",
    "fit": "training", "RunConfig": "runs", "History": "training", "TrainingDiverged": "training", "fast_mode": "settings",
    "mode_name": "settings",
    "pick_device": "training",
    "save": "checkpoints", "load": "checkpoints", "load_checkpoint": "checkpoints",
    "save_checkpoint": "checkpoints", "CheckpointError": "checkpoints",
}
_MODULES = {"autoregressive", "bounds", "callbacks", "checks", "checkpoints", "coursework", "data", "distributed", "elbo",
            "evaluation", "files", "images", "kl", "likelihoods", "networks", "objectives", "plotting", "posteriors",
            "pretrained", "priors", "reparameterization", "runs", "sample_quality", "schedules", "settings", "threads",
            "training", "vae", "validation", "widgets"}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _MODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'vaelib' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | _MODULES)
