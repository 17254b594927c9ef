"""The course harness: what the notebooks, their exercises and their instructors use, apart from the
library that practitioners import (``vaelib.course`` is installed with the ``[course]`` extra's
packages; the library never imports it).

- ``vaelib.course.settings``: learner mode and fast mode (``VAELIB_FAST``), where figures go;
  ``vaelib.course.figures``: a notebook's figure files, saved in learner mode only
- ``vaelib.course.pretrained``: the checkpoints in ``pretrained/`` and the recipe that trains each one
  (``load_or_train("conv_vae", train, test)``)
- ``vaelib.course.checks``: the exercises' checks; ``vaelib.course.coursework``: student versions
  of the notebooks and their nbgrader course
- ``vaelib.course.widgets``: ipywidgets explorers; ``vaelib.course.sample_quality``: sample scores
  (FD and classifier scores against the MNIST test set)
"""
from __future__ import annotations

import importlib

# name -> the module of this package that defines it, imported on first use (as in vaelib/__init__.py)
_EXPORTS = {
    "fast_mode": "settings", "mode_name": "settings", "figures_dir": "settings",
    "figure_path": "figures", "save_figure": "figures",
    "load_or_train": "pretrained", "load_pretrained": "pretrained", "pretrained_path": "pretrained",
    "pretrained_dir": "pretrained", "RECIPES": "pretrained", "Recipe": "pretrained",
}
_MODULES = {"checks", "coursework", "figures", "pretrained", "sample_quality", "settings", "widgets"}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _MODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'vaelib.course' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | _MODULES)
