"""The course's figure files: a notebook saves its figures to ``figures/`` in learner mode only, so
that a smoke run (``VAELIB_FAST=1``, what CI runs) never overwrites the committed ones."""
from __future__ import annotations

from pathlib import Path

import torch

from ..files import atomic_write
from ..images import image_format, save_image_grid
from .settings import fast_mode, figures_dir

__all__ = ["figure_path", "save_figure"]


def figure_path(name: str) -> Path | None:
    """``figures/<name>`` in learner mode, ``None`` in fast mode: for the ``save=`` argument of the
    plotting functions."""
    return None if fast_mode() else figures_dir() / name


def save_figure(figure_or_images, name: str, nrow: int = 8) -> Path | None:
    """Save a notebook's figure (a matplotlib Figure, or images ``(N, C, H, W)`` in [0, 1] as a grid
    of ``nrow`` columns) as ``figures/<name>``, in learner mode only. Returns the path, or ``None``
    in fast mode."""
    path = figure_path(name)
    if path is None:
        return None
    if isinstance(figure_or_images, torch.Tensor):
        return save_image_grid(figure_or_images, path, nrow=nrow)
    image_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        figure_or_images.savefig(f, dpi=120, bbox_inches="tight", format=image_format(path))
    return path
