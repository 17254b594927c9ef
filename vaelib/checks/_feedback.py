"""What every check shares. A check is one function that reads top to bottom: its cases, the learner's answer,
the reference answer, then the table of the usual mistakes, each with the wrong answer it gives and a hint::

    @exercise_check("correct on 3 random batches")
    def check_gaussian_kl(fn) -> bool:
        for mu, logvar in _cases():
            out = _as_tensor(answer(fn, mu.clone(), logvar.clone()))
            kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(-1)
            expect(out, kl, [
                (-kl, "the sign is flipped. Hint: a KL divergence is never negative"),
                (out.dim() == 0, "a single number; expected one KL per example"),
            ], otherwise="wrong values. Hint: ...")

- ``@exercise_check(passed)`` names the check after its function and prints its one line: ``✓ name: passed``
  when the function returns None (or ``correct(message)``), ``✗ name: message`` when it returns a message or
  calls ``fail(message)``; the check returns True or False (and raises under VAELIB_CHECKS_STRICT=1).
- ``answer(fn, *args)`` calls the learner's function: an error in it fails the check with that error (an
  unsolved exercise, ``NotImplementedError``, stops the notebook there, as nbgrader's stubs intend).
- ``expect(out, right, mistakes, otherwise)`` goes on when ``out`` is near the right answer, and otherwise fails
  with ``diagnose``'s hint: the hint of the first mistake in the table that the answer makes. A mistake is the
  wrong answer it gives (or ``either`` of several), compared with the answer as the right one is (``near``); or a test of the answer itself
  (a shape, a sign, a NaN), True or False, or a ``lambda:`` where it may only run once the mistakes above it are
  ruled out. ``otherwise`` when none matches.
"""
from __future__ import annotations

import functools
import math
import os

import torch


def _report(name: str, ok: bool, message: str) -> bool:
    print(f"{'✓' if ok else '✗'} {name}: {message}")
    if not ok and os.environ.get("VAELIB_CHECKS_STRICT", "") not in ("", "0"):
        raise AssertionError(f"{name}: {message}")
    return ok


class _Failed(Exception):
    """Stops a check: it fails with this message."""


class either(tuple):  # noqa: N801  (reads as a wrong answer: ``(either(a, b), hint)``)
    """Several wrong answers that share one hint."""

    def __new__(cls, *answers):
        return super().__new__(cls, answers)


class correct(str):  # noqa: N801  (reads as a verdict: ``return correct(f"...")``)
    """A check that passes with a message of its own returns ``correct(message)``."""


def exercise_check(passed: str | None = None):
    """Make ``body`` a check: see the module's docstring."""
    def decorate(body):
        @functools.wraps(body)
        def check(*args, **kwargs) -> bool:
            try:
                message = body(*args, **kwargs)
            except _Failed as failed:
                message = failed.args[0]
            if message is None:
                return _report(body.__name__, True, passed)
            return _report(body.__name__, isinstance(message, correct), message)
        return check
    return decorate


def fail(message: str):
    """Stop the check here: it fails with ``message``."""
    raise _Failed(message)


def answer(fn, *args, on_error=None):
    """``fn(*args)``, the learner's answer. When it raises, the check fails with the error (passed through
    ``on_error(message)`` when given, to say more)."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise  # an unsolved exercise stops the notebook there, as nbgrader's stubs intend
    except Exception as err:  # the learner's code: any error is feedback, not a crash of the check
        message = f"your function raised {type(err).__name__}: {err}"
        fail(on_error(message) if on_error else message)


def diagnose(near, mistakes, otherwise: str | None = None) -> str | None:
    """The hint of the first ``(wrong, hint)`` in ``mistakes`` whose ``wrong`` matches: a wrong answer for which
    ``near(wrong)`` is true (for ``either(a, b, ...)``, any of them), True itself, or a ``lambda:`` that returns true.
    ``otherwise`` when none does."""
    for wrong, hint in mistakes:
        if isinstance(wrong, torch.Tensor) and wrong.dtype == torch.bool:
            raise TypeError("a test in a table of mistakes must be a Python bool: wrap it in bool(...)")
        if isinstance(wrong, bool):
            found = wrong
        elif callable(wrong):
            found = wrong()
        elif isinstance(wrong, either):
            found = any(near(w) for w in wrong)
        else:
            found = near(wrong)
        if found:
            return hint
    return otherwise


def expect(out, right, mistakes, otherwise: str, near=None, tol=1e-4):
    """Go on when ``near(out, right)`` (by default ``_close`` with ``tol``); otherwise fail with ``diagnose``'s
    hint."""
    near = near or (lambda a, b: _close(a, b, tol))
    if not near(out, right):
        fail(diagnose(lambda wrong: near(out, wrong), mistakes, otherwise))


def _close(a, b, tol=1e-4):
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=tol, atol=tol)


def _as_tensor(value):
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=torch.float32)


def _cases(seed=0, batch=5, dims=4):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, dims, generator=g), torch.randn(batch, dims, generator=g)) for _ in range(3)]


def one_number(out, hint: str = "") -> float:
    """``float(out)``; the check fails (``expected one number, got ...`` + ``hint``) when the answer is not one."""
    try:
        return float(out)
    except (TypeError, ValueError, RuntimeError):
        fail(f"expected one number, got {type(out).__name__} {tuple(getattr(out, 'shape', ()))}{hint}")


def _log_normal_diag(z, mu, logvar):
    """log N(z; mu, diag exp(logvar)), summed over the last dimension."""
    return -0.5 * ((z - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)

