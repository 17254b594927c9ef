"""Pretrained checkpoints shipped in the repository's ``pretrained/`` folder.

Notebooks load a model from here when it is present and train it otherwise (or when a notebook's
``TRAIN_FROM_SCRATCH`` switch says so), the way the UvA deep learning tutorials do. Each file's
training command, wall time and test ELBO are in ``pretrained/README.md``.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..checkpoints import load
from ..training import History, fit

__all__ = ["pretrained_dir", "pretrained_path", "load_pretrained", "load_or_train"]


def pretrained_dir() -> Path:
    """``$VAELIB_PRETRAINED`` if set, else ``pretrained/`` beside the vaelib source folder."""
    env = os.environ.get("VAELIB_PRETRAINED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "pretrained"


def pretrained_path(name: str) -> Path:
    """Path of the pretrained checkpoint ``name`` (``"conv_vae"`` -> ``pretrained/conv_vae.pth``)."""
    return pretrained_dir() / (name if name.endswith(".pth") else f"{name}.pth")


def load_pretrained(name: str, device="cpu"):
    """The pretrained model ``name`` in eval mode, or ``None`` when the file is not there."""
    path = pretrained_path(name)
    return load(path, device) if path.exists() else None


def load_or_train(name: str, make_model, train, test=None, train_from_scratch: bool = False, **fit_kwargs):
    """Return ``(model, history)``: the pretrained ``name`` if present, else ``make_model()`` trained.

    ``fit_kwargs`` go to :func:`vaelib.fit` (epochs, beta, ...). The history of a pretrained model
    is the one recorded when it was trained.
    """
    if not train_from_scratch:
        model = load_pretrained(name)
        if model is not None:
            return model, History(model.checkpoint.get("history", []))
    model = make_model()
    history = fit(model, train, test, **fit_kwargs)
    return model.eval(), history
