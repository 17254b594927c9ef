"""What every check shares. A check is one function that reads top to bottom: its cases, the learner's answer,
the reference answer, then its table of the usual mistakes, each the wrong answer it gives and its hint::

    @exercise_check("correct on 3 random batches")
    def check_double(fn) -> bool:                # fn(x): twice x
        for x in _cases()[0]:
            out = _as_tensor(answer(fn, x.clone()))
            expect(out, 2 * x, [
                (-2 * x, "the sign is flipped. Hint: ..."),
                (out.dim() == 0, "a single number. Hint: ..."),
            ], otherwise="wrong values. Hint: ...")

``exercise_check`` prints the check's one line (✓ and its message when the function returns nothing or
``correct(message)``, ✗ and the message it returns or ``fail``s with) and returns True or False, raising under
VAELIB_CHECKS_STRICT=1. ``answer`` calls the learner's function: an error there fails the check with the error.
``expect`` goes on when the answer is near the right one, else fails with ``diagnose``'s hint.
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
    """Make the decorated function a check named after it: it passes with ``passed`` when the function returns
    None, with ``correct(message)``'s message, and fails with any other message it returns or ``fail``s with."""
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


def diagnose(near, mistakes, otherwise: str) -> str:
    """The hint of the first ``(wrong, hint)`` in ``mistakes`` that the answer matches, ``otherwise`` when none does.
    ``wrong`` is the wrong answer that the mistake gives, compared with the answer by ``near(wrong)`` (``either(a,
    b)``: any of them); or a test of the answer itself (a shape, a sign, a NaN): True or False, or a ``lambda:``
    where the test may only run once the mistakes above it are ruled out."""
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
    """Go on when the answer ``out`` is near the ``right`` one (``near(out, right)``, by default ``_close`` with
    ``tol``); otherwise fail with the hint of the first of the ``mistakes`` it makes (``diagnose``)."""
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

