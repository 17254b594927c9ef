"""vaelib: the small PyTorch library behind the VAE course.

Modules, in the order the course teaches them (each is imported when first used, so
``import vaelib`` stays quick and pulls in no plotting or widget toolkit):

- ``vaelib.data``: image data sets as device-resident tensors (``ImageData``, ``MNIST``,
  ``FashionMNIST``, ``load_dataset``), with binarization; ``TensorData`` for tensors that are not images
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
- ``vaelib.hierarchical``: a hierarchical VAE with top-down inference (ladder VAE / NVAE form), one KL per
  layer, trained by ``fit`` with ``hierarchical_objective`` (KL warm-up, free bits per layer)
- ``vaelib.vq``: discrete latents, vector quantization (codebook loss, EMA, dead-code restart) and FSQ, with
  codebook usage; ``vaelib.vqvae``: a VQ-VAE trained by ``fit`` with ``vq_objective``;
  ``vaelib.code_prior``: a PixelCNN prior over its code grid
- ``vaelib.diffusion``: a DDPM over vectors (a VAE's latents), its bound split per step, trained by ``fit`` on
  ``vaelib.data.TensorData`` with ``ddpm_objective``; ``vaelib.latent_diffusion``: a DDPM as a trained VAE's
  prior, learned on its posteriors' draws
- ``vaelib.course``: the course harness, apart from the library: notebook modes and figures, the
  pretrained checkpoints and their recipes, exercise checks, coursework, widgets, sample scores
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
    "fit": "training", "RunConfig": "runs", "History": "training", "TrainingDiverged": "training",
    "pick_device": "training",
    "save": "checkpoints", "load": "checkpoints", "load_checkpoint": "checkpoints",
    "save_checkpoint": "checkpoints", "CheckpointError": "checkpoints",
}
_MODULES = {"autoregressive", "bounds", "callbacks", "checkpoints", "course", "data", "distributed", "elbo",
            "evaluation", "files", "images", "kl", "likelihoods", "networks", "objectives", "plotting", "posteriors",
            "priors", "reparameterization", "runs", "schedules", "threads", "training", "vae", "validation"}
# vaelib 0.2's names for the course harness, now in vaelib.course: each warns, and goes in vaelib 0.3
_MOVED_MODULES = {"checks", "coursework", "pretrained", "sample_quality", "settings", "widgets"}
_MOVED_EXPORTS = {"fast_mode": "vaelib.course.settings", "mode_name": "vaelib.course.settings"}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _MODULES or name in _MOVED_MODULES:  # a moved one's stub module warns
        value = importlib.import_module(f".{name}", __name__)
    elif name in _MOVED_EXPORTS:
        from .deprecation import deprecated
        deprecated(f"vaelib.{name}", f"vaelib.course.{name}")
        return getattr(importlib.import_module(_MOVED_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'vaelib' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | _MODULES)
