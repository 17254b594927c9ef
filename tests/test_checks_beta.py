"""The checks of notebook 06 accept a right answer and reject known wrong ones with the intended hint."""
import math

import pytest
import torch

from vaelib.course import checks

from .conftest import assert_catches, run_check


def right_free_bits(kl_per_dim, free_nats):
    return torch.clamp(kl_per_dim.mean(0), min=free_nats).sum()


@pytest.mark.parametrize("fn, hint", [
    (lambda kl, lam: kl.mean(0).sum(), "free bits are missing"),
    (lambda kl, lam: kl.mean(0).clamp(max=lam).sum(), "not the minimum"),
    (lambda kl, lam: kl.clamp(min=lam).sum(1).mean(), "to each image"),
    (lambda kl, lam: kl.mean(0).sum().clamp(min=lam * kl.shape[1]), "to the total KL"),
    (lambda kl, lam: (kl.mean(0) - lam).clamp(min=0).sum(), "same gradients"),
    (lambda kl, lam: kl.mean(0).clamp(min=lam), "one value per latent dimension"),
    (lambda kl, lam: right_free_bits(kl, lam).item(), "no gradient flows"),
    (lambda kl, lam: right_free_bits(kl.detach(), lam) + 0 * kl.sum(), "the gradient is not"),
])
def test_free_bits_kl(fn, hint):
    assert_catches(checks.check_free_bits_kl, right_free_bits, fn, hint,
                   passed="correct, and gradients flow only through the dimensions above free_nats")


def right_sigmoid(step, beta_max, midpoint, width):
    return beta_max / (1 + math.exp(-(step - midpoint) / width))


@pytest.mark.parametrize("fn, hint", [
    (lambda t, b, m, w: b / (1 + math.exp((t - m) / w)), "falls instead of rising"),
    (lambda t, b, m, w: 1 / (1 + math.exp(-(t - m) / w)), "beta_max is ignored"),
    (lambda t, b, m, w: b / (1 + math.exp(-(t - m) * w)), "you multiply by width"),
    (lambda t, b, m, w: b / (1 + math.exp(-t / w)), "shift the step by the midpoint"),
    (lambda t, b, m, w: b / (1 + math.exp(-(t - m) / w)) + 0.1, "Hint: beta_max / (1 + exp"),
])
def test_sigmoid_schedule(fn, hint):
    assert_catches(checks.check_sigmoid_schedule, right_sigmoid, fn, hint,
                   passed="matches vaelib.schedules.Sigmoid before, at and after the midpoint")


def test_a_float32_sigmoid_passes():
    fn = lambda t, b, m, w: b * torch.sigmoid(torch.tensor((t - m) / w, dtype=torch.float32))  # noqa: E731
    assert run_check(checks.check_sigmoid_schedule, fn)[0]


def test_unsolved_stubs_stop_the_notebook():
    def todo(*args):
        raise NotImplementedError()
    for check in (checks.check_free_bits_kl, checks.check_sigmoid_schedule):
        with pytest.raises(NotImplementedError):
            check(todo)


def _num(kl):
    """The KL as a float: the check passes a tensor that requires grad once."""
    return float(kl.detach()) if isinstance(kl, torch.Tensor) else float(kl)


def right_update(beta, kl, target, lr):
    return max(0.0, beta + lr * (_num(kl) - target))


@pytest.mark.parametrize("fn, hint", [
    (lambda b, k, t, lr: b + lr * (_num(k) - t), "is negative"),
    (lambda b, k, t, lr: max(0.0, b - lr * (_num(k) - t)), "sign is flipped"),
    (lambda b, k, t, lr: max(0.0, b + (_num(k) - t)), "step size lr is missing"),
    (lambda b, k, t, lr: b * math.exp(lr * (_num(k) - t)), "multiplicative update"),
    (lambda b, k, t, lr: torch.clamp(torch.as_tensor(b, dtype=torch.float32) + lr * (k - t), min=0.0),
     "carries a gradient"),
    (lambda b, k, t, lr: min(b, b + lr * (_num(k) - t)), "beta = "),
])
def test_beta_update(fn, hint):
    assert run_check(checks.check_beta_update, right_update) == (
        True, "✓ check_beta_update: correct above, at and below the target, and clipped at 0")
    detached = lambda b, k, t, lr: torch.clamp(torch.as_tensor(b + lr * (k - t)).detach(), min=0.0)  # noqa: E731
    assert_catches(checks.check_beta_update, detached, fn, hint)
