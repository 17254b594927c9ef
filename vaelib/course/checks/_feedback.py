"""What every check shares. A check is one function that reads top to bottom: its cases, the learner's answer,
the reference answer, then its table of the usual mistakes, each the wrong answer it gives and its hint::

    @exercise_check("correct on 3 random batches")
    def check_double(fn) -> bool:                # fn(x): twice x
        for x in _cases()[0]:
            out = _as_tensor(answer(fn, x))
            expect(out, 2 * x, [
                (-2 * x, "the sign is flipped. Hint: ..."),
                (out.dim() == 0, "a single number. Hint: ..."),
            ], otherwise="wrong values. Hint: ...")

``exercise_check`` prints the check's one line (✓ and its message when the function returns nothing or
``correct(message)``, ✗ and the message it returns or ``fail``s with) and returns True or False, raising under
VAELIB_CHECKS_STRICT=1. ``answer`` calls the learner's function on copies of the check's tensors: an error there
fails the check with the error. ``expect`` goes on when the answer is near the right one, else fails with
``diagnose``'s hint. A check's docstring says what the learner's function takes and returns, with shapes; its
cases are seeded, so that it says the same thing every time.
"""
import functools
import itertools
import math
import os

import torch


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
            ok = message is None or isinstance(message, correct)
            message = passed if message is None else message
            print(f"{'✓' if ok else '✗'} {body.__name__}: {message}")
            if not ok and os.environ.get("VAELIB_CHECKS_STRICT", "") not in ("", "0"):
                raise AssertionError(f"{body.__name__}: {message}")
            return ok
        return check
    return decorate


def fail(message: str):
    """Stop the check here: it fails with ``message``."""
    raise _Failed(message)


def answer(fn, *args, on_error=None, copy=True):
    """``fn(*args)``, the learner's answer. With ``copy``, ``fn`` gets copies of the tensors, so that an in-place
    edit cannot change the reference answer (a tensor that requires grad goes as it is, for gradients to reach it).
    When ``fn`` raises, the check fails with the error (passed through ``on_error(message)`` when given)."""
    if copy:
        args = [a.clone() if isinstance(a, torch.Tensor) and not a.requires_grad else a for a in args]
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


def expect(out, right, mistakes, otherwise: str, near=None, tol=1e-4, atol=None):
    """Go on when the answer ``out`` is near the ``right`` one (``near(out, right)``, by default ``_close`` with
    ``tol`` and ``atol``); otherwise fail with the hint of the first of the ``mistakes`` it makes (``diagnose``)."""
    near = near or (lambda a, b: _close(a, b, tol, atol))
    if not near(out, right):
        fail(diagnose(lambda wrong: near(out, wrong), mistakes, otherwise))


def wrong_shape(out, expected, what: str):
    """The mistake of an answer whose shape is not ``expected``'s, for a table: ``what`` says what it should hold."""
    return out.shape != expected.shape, f"shape {tuple(out.shape)}; expected {what}, {tuple(expected.shape)}"


def one_value(out, count: int, each: str, hint: str, what: str):
    """The tensor ``out`` as a 0-d tensor. The check fails when it holds ``count`` numbers (``each``, its shape and
    the ``hint``), or any other number of them but one (``what`` is one number)."""
    if out.numel() != 1:
        shape = tuple(out.shape)
        fail(f"{each}, shape {shape}. Hint: {hint}" if out.numel() == count else f"shape {shape}: {what} is one number")
    return out.reshape(())


def unpack(out, count: int, message: str, convert=float, errors=(TypeError, ValueError, RuntimeError)):
    """The answer ``out`` as a list of ``count`` parts, each through ``convert``, as ``a, b = (convert(v) for v in
    out)`` unpacks it; the check fails with ``message`` when it is not (when one of ``errors`` is raised)."""
    try:
        parts = list(itertools.islice((convert(v) for v in out), count + 1))  # one more: are there too many?
    except errors:
        fail(message)
    if len(parts) != count:
        fail(message)
    return parts


def near_number(rtol: float):
    """``near`` for two numbers: ``a`` within ``rtol`` of ``b``, relative to ``b`` (absolute where |b| < 1)."""
    return lambda a, b: abs(a - b) <= rtol * max(1.0, abs(b))


def one_number(out, hint: str = "", message: str | None = None) -> float:
    """``float(out)``; the check fails when the answer is not one number, with ``message`` (by default ``expected
    one number, got ...`` + ``hint``)."""
    try:
        return float(out)
    except (TypeError, ValueError, RuntimeError):
        fail(message or f"expected one number, got {type(out).__name__} {tuple(getattr(out, 'shape', ()))}{hint}")


def gradients(out, inputs, hint: str):
    """The gradients of ``out.sum()`` with respect to ``inputs`` (None for an input that it does not reach); the
    check fails with ``hint`` when ``out`` carries no gradient at all."""
    if not out.requires_grad:
        fail(hint)
    return torch.autograd.grad(out.sum(), inputs, allow_unused=True)


def _close(a, b, tol=1e-4, atol=None):
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=tol, atol=tol if atol is None else atol)


def _as_tensor(value):
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=torch.float32)


def _seeded(seed: int, cases=(None, None, None)):
    """``(g, case)`` for each of the ``cases`` (by default three rounds), where ``g`` is the one generator, seeded
    with ``seed``, that the check draws its tensors from."""
    g = torch.Generator().manual_seed(seed)
    return [(g, case) for case in cases]


def _cases(seed=0, batch=5, dims=4):
    """Three pairs of random ``(batch, dims)`` tensors."""
    return [(torch.randn(batch, dims, generator=g), torch.randn(batch, dims, generator=g)) for g, _ in _seeded(seed)]


def _binary_images(g, n, shape=(1, 28, 28)):
    return torch.bernoulli(torch.rand(n, *shape, generator=g), generator=g)


def _labels(g, n):
    """``n`` labels 0..9 in random order, every class present, in unequal numbers."""
    labels = torch.cat([torch.arange(10), torch.randint(0, 10, (n - 10,), generator=g)])
    return labels[torch.randperm(n, generator=g)]


def _by_class(x, labels, reduce=torch.mean):
    """The mean (``reduce``) of the rows of ``x`` of each class 0..9, stacked: ``(10, ...)``."""
    return torch.stack([reduce(x[labels == c], 0) for c in range(10)])


def _small_vae(**options):
    """A small untrained MLP VAE, the same every time; the learner's random state is left alone."""
    import vaelib
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return vaelib.build_vae("mlp", latent_dim=2, hidden=16, **options).eval()


def _kl_per_dim(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, 1)) per coordinate."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)


def _log_normal(z, m, log_s):
    """log N(z; m, exp(log_s)^2), elementwise."""
    return -0.5 * ((z - m) / log_s.exp()) ** 2 - log_s - 0.5 * math.log(2 * math.pi)


def _log_normal_coords(z, mu, logvar):
    """log N(z; mu, exp(logvar)) per coordinate; ``_log_normal_diag`` sums them over the last dimension."""
    return -0.5 * ((z - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi))


def _log_normal_diag(z, mu, logvar):
    return _log_normal_coords(z, mu, logvar).sum(-1)
