"""Shared fixtures and helpers. Tests read MNIST from $VAELIB_DATA (the root conftest.py sets it)."""
import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def _have_mnist() -> bool:
    root = os.environ.get("VAELIB_DATA")
    return bool(root) and (Path(root) / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists()


needs_mnist = pytest.mark.skipif(not _have_mnist(), reason="MNIST not found: set VAELIB_DATA")


@pytest.fixture(autouse=True)
def _checks_report_rather_than_raise(monkeypatch):
    """The root conftest makes exercise checks strict for the notebooks; the unit tests of the checks
    test the learner's default (print and return False), and set strictness themselves where they test it."""
    monkeypatch.delenv("VAELIB_CHECKS_STRICT", raising=False)


def run_check(check, *args):
    """Run an exercise check on a learner's answer(s) ``args``: ``(its verdict, the one line it printed)``."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        ok = check(*args)
    return ok, printed.getvalue().strip()


def assert_catches(check, right, wrong, hint, passed=None, also_right=()):
    """``check`` accepts the right answer and each of ``also_right`` (printing exactly ``✓ <check>: <passed>`` when
    ``passed`` is given), and rejects ``wrong`` with a ✗ line that contains ``hint``. An answer is the check's
    argument (mostly the learner's function), or a tuple of its arguments."""
    def arguments(answer):
        return answer if isinstance(answer, tuple) else (answer,)

    for answer in (right, *also_right):
        ok, line = run_check(check, *arguments(answer))
        assert ok and (passed is None or line == f"✓ {check.__name__}: {passed}"), line
    ok, line = run_check(check, *arguments(wrong))
    assert not ok and line.startswith(f"✗ {check.__name__}: ") and hint in line, line


@pytest.fixture(scope="session")
def small_train():
    from vaelib import MNIST
    return MNIST("train", binarize="dynamic", subset=2000)


@pytest.fixture(scope="session")
def small_test():
    from vaelib import MNIST
    return MNIST("test", binarize="dynamic", subset=500)


@pytest.fixture(scope="session")
def trained_mlp(small_train, small_test):
    """A small MLP VAE trained for a few epochs on 2,000 images (a few seconds on a CPU)."""
    from vaelib import build_vae, fit
    torch.manual_seed(0)
    model = build_vae("mlp", latent_dim=8, hidden=200)
    fit(model, small_train, small_test, epochs=4, device="cpu", progress=False)
    return model.eval()


def run_python(*args, cwd=None, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """``python ARGS`` in a subprocess with this interpreter (a script, ``-m vaelib ...``), output captured;
    with ``check``, a non-zero exit fails the test with the end of its stderr."""
    result = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return result
