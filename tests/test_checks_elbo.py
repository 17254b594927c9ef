"""The checks of notebook 02: each accepts a right answer and rejects known wrong ones with the intended hint."""
import math

import pytest
import torch
from torch.distributions import Normal

from vaelib.course import checks

from .conftest import assert_catches, run_check

W, B, S, X0 = 1.0, 0.0, 0.2, 2.0   # the toy model of notebook 02
LOG_PX = Normal(B, math.sqrt(W**2 + S**2)).log_prob(torch.tensor(X0, dtype=torch.float64)).item()


def _gap(m, log_std):
    """log p(x0) - ELBO(N(m, e^(2 log_std))) from the toy model's formulas, as the notebook computes it."""
    var = math.exp(2 * log_std)
    reconstruction = -0.5 * math.log(2 * math.pi * S**2) - ((X0 - B - W * m) ** 2 + W**2 * var) / (2 * S**2)
    log_prior = -0.5 * math.log(2 * math.pi) - (m**2 + var) / 2
    entropy = 0.5 * math.log(2 * math.pi) + log_std + 0.5
    return LOG_PX - (reconstruction + log_prior + entropy)


def test_fixed_std_q():
    grid = torch.linspace(-1, 4, 5001).tolist()
    best = min(grid, key=lambda m: _gap(m, 0.0))
    ok, out = run_check(checks.check_fixed_std_q, best, _gap(best, 0.0))
    assert ok and out == "✓ check_fixed_std_q: best mean 1.923, smallest gap 10.87 nats"
    assert run_check(checks.check_fixed_std_q, torch.tensor(best), torch.tensor(_gap(best, 0.0)))[0]
    coarse = min(torch.linspace(-1, 4, 6).tolist(), key=lambda m: _gap(m, 0.0))      # m = 2
    worst = max(grid, key=lambda m: _gap(m, 0.0))
    for m, gap, hint in [(best, -_gap(best, 0.0), "negative"),
                         (best, _gap(best, 1.0), "log-std of 0"),
                         (worst, _gap(worst, 0.0), "far from the best mean"),
                         (coarse, _gap(coarse, 0.0), "finer grid"),
                         (best, _gap(best, 0.0) + 1.0, "not log p(x) - ELBO at your mean")]:
        ok, out = run_check(checks.check_fixed_std_q, m, gap)
        assert not ok and out.startswith("✗") and hint in out, (m, gap, out)


def _log_lik(z, scale=S):
    return Normal(W * z + B, scale).log_prob(torch.tensor(X0, dtype=torch.float64))


def right_iwae(z):
    return torch.logsumexp(_log_lik(z), dim=1) - math.log(z.shape[1])


@pytest.mark.parametrize("fn, hint", [
    (lambda z: torch.logsumexp(_log_lik(z), dim=1), "subtract log k"),
    (lambda z: _log_lik(z).mean(1), "mean of the log weights"),
    (lambda z: torch.logsumexp(_log_lik(z), dim=0) - math.log(z.shape[0]), "reduced over the R repetitions"),
    (lambda z: right_iwae(z).mean(), "a single number"),
    (lambda z: torch.logsumexp(_log_lik(z) + Normal(0.0, 1.0).log_prob(z), 1) - math.log(z.shape[1]),
     "did not subtract log q(z)"),
    (lambda z: torch.logsumexp(_log_lik(z, S**2), 1) - math.log(z.shape[1]), "variance s^2 as the scale"),
])
def test_toy_iwae_prior(fn, hint):
    assert_catches(checks.check_toy_iwae_prior, right_iwae, fn, hint, passed="correct for k = 1, 10 and 100")


def _log_normal(z, m, log_std):
    return -0.5 * ((z - m) / torch.exp(log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)


def right_elbo_mc(log_joint, m, log_std, eps):
    z = m + torch.exp(log_std) * eps
    return (log_joint(z) - _log_normal(z, m, log_std)).mean()


def _with_z(f):
    """A wrong answer built from the right samples z = m + exp(log_std) eps."""
    return lambda lj, m, ls, eps: f(lj, m, ls, m + torch.exp(ls) * eps)


@pytest.mark.parametrize("fn, hint", [
    (_with_z(lambda lj, m, ls, z: lj(z).mean()), "log p(x0, z) alone"),
    (_with_z(lambda lj, m, ls, z: (lj(z) + _log_normal(z, m, ls)).mean()), "you added log q(z)"),
    (_with_z(lambda lj, m, ls, z: (lj(z) - _log_normal(z, 0 * m, 0 * ls)).mean()), "the prior's log-density"),
    (_with_z(lambda lj, m, ls, z: torch.logsumexp(lj(z) - _log_normal(z, m, ls), 0) - math.log(len(z))),
     "log of the average weight"),
    (_with_z(lambda lj, m, ls, z: lj(z) - _log_normal(z, m, ls)), "one per sample"),
    (lambda lj, m, ls, eps: right_elbo_mc(lj, m, ls, torch.randn_like(eps)), "not computed from the noise"),
    (lambda lj, m, ls, eps: (lj(m + ls * eps) - _log_normal(m + ls * eps, m, ls)).mean(), "log_std itself"),
    (lambda lj, m, ls, eps: (lj(m + (2 * ls).exp() * eps) - _log_normal(m + (2 * ls).exp() * eps, m, 2 * ls)).mean(),
     "the variance"),
])
def test_elbo_mc(fn, hint):
    assert_catches(checks.check_elbo_mc, right_elbo_mc, fn, hint,
                   passed="correct on 3 cases (a Gaussian and a bimodal log-joint)")

