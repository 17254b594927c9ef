"""Settings read from the environment, shared by the notebooks, the tests and the library.

* ``VAELIB_FAST=1``: the notebooks' smoke-test mode (short training, small subsets), what CI runs;
  unset, a notebook runs in *learner mode*, the one its stored outputs come from.
* ``VAELIB_FIGURES``: where notebooks save the figures that README.md and the site show (default:
  ``figures/`` beside the vaelib source folder). Figures are saved in learner mode only, so a smoke
  run (the tests) never overwrites them.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fast_mode", "mode_name", "figures_dir"]


def fast_mode() -> bool:
    """True when ``VAELIB_FAST`` is set to a true value: notebooks and tests then train briefly."""
    return os.environ.get("VAELIB_FAST", "").strip().lower() not in ("", "0", "false", "no")


def mode_name() -> str:
    """What a notebook's setup cell prints, so that a reader of stored outputs knows what made them."""
    return "fast mode (VAELIB_FAST=1: short runs for CI)" if fast_mode() else "learner mode"


def figures_dir() -> Path:
    """``$VAELIB_FIGURES`` if set, else ``figures/`` beside the vaelib source folder."""
    env = os.environ.get("VAELIB_FIGURES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "figures"
