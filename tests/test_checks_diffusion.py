"""The checks of notebook 16 accept a right answer and reject known wrong ones with the intended hint; the right
answers agree with vaelib.diffusion's schedule and bound."""
import pytest
import torch

from vaelib.course import checks
from vaelib.diffusion import DDPM, NoiseSchedule

from .conftest import assert_catches


def right_marginal(x0, betas, t):
    a = torch.cumprod(1 - betas, 0)[t]
    return a.sqrt() * x0, (1 - a).sqrt()


def _abar(betas):
    return torch.cumprod(1 - betas, 0)


@pytest.mark.parametrize("fn, hint", [
    (lambda x0, b, t: (_abar(b)[t] * x0, right_marginal(x0, b, t)[1]), "abar_t x0"),
    (lambda x0, b, t: ((1 - b[t]).sqrt() * x0, right_marginal(x0, b, t)[1]), "only one step's scaling"),
    (lambda x0, b, t: (_abar(b)[t - 1].sqrt() * x0, right_marginal(x0, b, t)[1]), "off by one step"),
    (lambda x0, b, t: (right_marginal(x0, b, t)[0], 1 - _abar(b)[t]), "that is the variance"),
    (lambda x0, b, t: (right_marginal(x0, b, t)[0], b[1:t + 1].sum().sqrt()), "the betas added up"),
    (lambda x0, b, t: (right_marginal(x0, b, t)[0], _abar(b)[t].sqrt()), "the signal's scale"),
    (lambda x0, b, t: right_marginal(x0, b, t)[0], "expected two parts"),
])
def test_forward_marginal(fn, hint):
    assert_catches(checks.check_forward_marginal, right_marginal, fn, hint,
                   passed="the mean and standard deviation of q(x_t | x_0) at every t of 3 schedules")


def test_the_right_marginal_is_the_schedules():
    s = NoiseSchedule(50)
    x0, t = torch.randn(4, 3), torch.full((4,), 30)
    mean, std = right_marginal(x0.double(), s.betas.double(), 30)
    assert torch.allclose(s.q_sample(x0, t, torch.zeros_like(x0)), mean.float(), atol=1e-5)
    assert torch.allclose(s.q_sample(x0, t, torch.ones_like(x0)) - mean.float(), std.float().expand(4, 3), atol=1e-5)


def right_weight(betas):
    a = _abar(betas)
    w = torch.zeros_like(betas)
    tilde = betas[2:] * (1 - a[1:-1]) / (1 - a[2:])
    w[2:] = betas[2:] ** 2 / (2 * tilde * (1 - betas[2:]) * (1 - a[2:]))
    return w


@pytest.mark.parametrize("fn, hint", [
    (lambda b: 2 * right_weight(b), "keep the 1/2"),
    (lambda b: right_weight(b) * 2 * b * (1 - _abar(b).roll(1)) / (1 - _abar(b)) / b.clamp_min(1e-30),
     "uses beta_t as p's variance"),
    (lambda b: right_weight(b) * (1 - b), "sqrt(1 - beta_t) is missing"),
    (lambda b: torch.ones_like(b), "that is L_simple itself"),
    (lambda b: right_weight(b)[1:], "one weight per entry of betas"),
])
def test_elbo_weight(fn, hint):
    assert_catches(checks.check_elbo_weight, right_weight, fn, hint,
                   passed="w_t of L_t-1 = w_t ||eps - eps_theta||^2 at every t >= 2 of 3 schedules")


def test_the_right_weight_makes_the_bounds_steps_a_weighted_l_simple():
    torch.manual_seed(0)
    model = DDPM(3, steps=20, hidden=16, blocks=1)
    x0 = torch.randn(5, 3)
    w = right_weight(model.schedule.betas.double()).float()
    g = torch.Generator().manual_seed(0)
    terms = model.elbo_terms(x0, generator=g)["diffusion"]        # (T - 1, B): t = 2 .. T
    g = torch.Generator().manual_seed(0)
    for t in range(2, 21):                                          # the same draws of eps, in the same order
        eps = torch.randn(x0.shape, generator=g)
        tt = torch.full((5,), t)
        with torch.no_grad():
            err = (eps - model.predictor(model.schedule.q_sample(x0, tt, eps), tt)).pow(2).sum(1)
        assert torch.allclose(terms[t - 2], w[t] * err, rtol=1e-3, atol=1e-5), t
