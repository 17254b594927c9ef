"""Settings for every test run, the notebooks' (nbval) included.

- VAELIB_DATA: MNIST from ../shared/data when the caller set nothing (this project's machines).
- VAELIB_FAST=1: the notebooks' smoke-test mode (short training, small subsets).
- VAELIB_CHECKS_STRICT=1: an exercise check that fails raises, so nbval fails on it even where the
  cell's printed numbers depend on the mode and are not compared (NBVAL_IGNORE_OUTPUT).
Kernels that nbval starts inherit this environment.
"""
import os
from pathlib import Path

_shared = Path(__file__).resolve().parent.parent / "shared" / "data"
if not os.environ.get("VAELIB_DATA") and (_shared / "MNIST" / "raw").is_dir():
    os.environ["VAELIB_DATA"] = str(_shared)
elif os.environ.get("VAELIB_DATA"):
    os.environ["VAELIB_DATA"] = str(Path(os.environ["VAELIB_DATA"]).resolve())  # notebooks run elsewhere
os.environ.setdefault("VAELIB_FAST", "1")
os.environ.setdefault("VAELIB_CHECKS_STRICT", "1")
