"""What every check shares: run the learner's function safely, compare, report one line, and the
Gaussian log-density that several reference answers use."""
from __future__ import annotations

import math
import os

import torch


def _report(name: str, ok: bool, message: str) -> bool:
    print(f"{'✓' if ok else '✗'} {name}: {message}")
    if not ok and os.environ.get("VAELIB_CHECKS_STRICT", "") not in ("", "0"):
        raise AssertionError(f"{name}: {message}")
    return ok


def _call(name, fn, *args):
    try:
        return fn(*args), None
    except NotImplementedError:
        raise  # an unsolved exercise stops the notebook there, as nbgrader's stubs intend
    except Exception as err:  # the learner's code: any error is feedback, not a crash of the check
        return None, f"your function raised {type(err).__name__}: {err}"


def _close(a, b, tol=1e-4):
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=tol, atol=tol)


def _as_tensor(value):
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=torch.float32)


def _cases(seed=0, batch=5, dims=4):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, dims, generator=g), torch.randn(batch, dims, generator=g)) for _ in range(3)]


def _number(out):
    """``(float(out), None)``, or ``(None, message)`` when the answer is not one number."""
    try:
        return float(out), None
    except (TypeError, ValueError, RuntimeError):
        return None, f"expected one number, got {type(out).__name__} {tuple(getattr(out, 'shape', ()))}"


def _log_normal_diag(z, mu, logvar):
    """log N(z; mu, diag exp(logvar)), summed over the last dimension."""
    return -0.5 * ((z - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)
