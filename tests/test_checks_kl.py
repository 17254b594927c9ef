"""The checks of notebook 03 (besides check_gaussian_kl, in test_checks.py): each accepts a right answer and
rejects known wrong ones with the intended hint."""
import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal, kl_divergence

from vaelib.course import checks

from .conftest import assert_catches


def right_kl(mq, lq, mp, lp):
    return kl_divergence(Independent(Normal(mq, (0.5 * lq).exp()), 1), Independent(Normal(mp, (0.5 * lp).exp()), 1))


def per_dim(mq, lq, mp, lp):
    return 0.5 * (lp - lq + (lq.exp() + (mq - mp) ** 2) / lp.exp() - 1)


@pytest.mark.parametrize("fn, hint", [
    (per_dim, "one KL per dimension"),
    (lambda mq, lq, mp, lp: -right_kl(mq, lq, mp, lp), "sign is flipped"),
    (lambda mq, lq, mp, lp: right_kl(mp, lp, mq, lq), "KL(p || q)"),
    (lambda mq, lq, mp, lp: per_dim(mq, lq, mp, lp).mean(-1), "average over dimensions"),
    (lambda mq, lq, mp, lp: 0.5 * (lp - lq + lq.exp() / lp.exp() + (mq - mp) ** 2 - 1).sum(-1), "not divided"),
    (lambda mq, lq, mp, lp: 0.5 * (lq - lp + (lq.exp() + (mq - mp) ** 2) / lp.exp() - 1).sum(-1),
     "log term has the wrong sign"),
    (lambda mq, lq, mp, lp: per_dim(mq, 0.5 * lq, mp, 0.5 * lp).sum(-1) + 0.25 * (lp - lq).sum(-1),
     "standard deviations where variances belong"),
    (lambda mq, lq, mp, lp: right_kl(mq, lq, mp, torch.zeros_like(lp)), "logvar_p is ignored"),
    (lambda mq, lq, mp, lp: right_kl(mq, lq, torch.zeros_like(mp), lp), "mu_p is ignored"),
    (lambda mq, lq, mp, lp: 0.5 * (torch.log(lp) - torch.log(lq) + (lq + (mq - mp) ** 2) / lp - 1).sum(-1),
     "logvar as if it were the variance"),
])
def test_kl_diag(fn, hint):
    assert_catches(checks.check_kl_diag, right_kl, fn, hint, passed="correct on 3 random batches")


GRID = torch.linspace(-12, 12, 1201, dtype=torch.float64)   # the notebook's integration grid


def _log_normal(z, m, log_s):
    return -0.5 * ((z - m) / log_s.exp()) ** 2 - log_s - 0.5 * math.log(2 * math.pi)


def _table(a, m_grid, log_s_grid, direction="reverse", weights=(0.5, 0.5)):
    mix = MixtureSameFamily(Categorical(torch.tensor(weights, dtype=torch.float64)),
                            Normal(torch.tensor([-a, a], dtype=torch.float64), torch.ones(2, dtype=torch.float64)))
    log_p = mix.log_prob(GRID) + math.log(sum(weights))       # unnormalized when the weights do not sum to 1
    log_q = _log_normal(GRID, m_grid[:, None, None], log_s_grid[None, :, None])
    if direction == "reverse":
        return torch.trapezoid(log_q.exp() * (log_q - log_p), GRID)
    return torch.trapezoid(log_p.exp() * (log_p - log_q), GRID)


def _best(kls, m_grid, log_s_grid, columns=None):
    i, j = divmod(int(kls.argmin()), columns or len(log_s_grid))
    return m_grid[i].item(), log_s_grid[j].exp().item(), kls.flatten()[int(kls.argmin())].item()


def right_fit(a, m_grid, log_s_grid):
    return _best(_table(a, m_grid, log_s_grid), m_grid, log_s_grid)


def _log_s_returned(a, m_grid, log_s_grid):
    m, s, kl = right_fit(a, m_grid, log_s_grid)
    return m, math.log(s), kl


@pytest.mark.parametrize("fn, hint", [
    (lambda a, mg, lg: _best(_table(a, mg, lg, "forward"), mg, lg), "forward KL(p || q)"),
    (lambda a, mg, lg: _best(-_table(a, mg, lg), mg, lg), "sign is flipped"),
    (_log_s_returned, "you return log s"),
    (lambda a, mg, lg: _best(_table(a, mg, lg, weights=(1.0, 1.0)), mg, lg), "not normalized"),
    (lambda a, mg, lg: _best(_table(a, mg, lg), mg, lg, columns=len(mg)), "not at your (m, s)"),
    (lambda a, mg, lg: (float(a), 1.0, 0.7), "not the global minimum"),
    (lambda a, mg, lg: right_fit(a, mg, lg)[:2], "return three numbers"),
])
def test_best_reverse_fit(fn, hint):
    assert_catches(checks.check_best_reverse_fit, right_fit, fn, hint, passed="the global minimum for a = 1, 3 and 4")


def _lnd(z, mu, logvar):
    return -0.5 * ((z - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)


def _mixture_kl(log_prior):
    """An estimator from the samples of q, with ``log_prior(z, weights, means, logvars)`` as log p(z)."""
    def fn(mu, logvar, eps, weights, means, logvars):
        z = mu + torch.exp(0.5 * logvar) * eps
        return (_lnd(z, mu, logvar) - log_prior(z, weights, means, logvars)).mean(0)
    return fn


right_mixture_kl = _mixture_kl(lambda z, w, m, lv: torch.logsumexp(_lnd(z[..., None, :], m, lv) + w.log(), -1))


def _per_coordinate(z, w, m, lv):
    per_coord = -0.5 * ((z[..., None, :] - m) ** 2 / lv.exp() + lv + math.log(2 * math.pi))    # (S, B, K, D)
    return torch.logsumexp(per_coord + w.log()[:, None], -2).sum(-1)


@pytest.mark.parametrize("fn, hint", [
    (lambda *args: -right_mixture_kl(*args), "sign is flipped"),
    (_mixture_kl(lambda z, w, m, lv: (_lnd(z[..., None, :], m, lv) * w).sum(-1)), "the mixture of the logs"),
    (_mixture_kl(lambda z, w, m, lv: torch.logsumexp(_lnd(z[..., None, :], m, lv), -1)), "weights are missing"),
    (_mixture_kl(_per_coordinate), "mixed every coordinate separately"),
    (lambda mu, lv, eps, w, m, lvs: (_lnd(eps, mu, lv) - torch.logsumexp(_lnd(eps[..., None, :], m, lvs)
                                                                          + w.log(), -1)).mean(0), "samples are eps"),
    (lambda *args: right_mixture_kl(*args) / args[0].shape[-1], "divided by the number of latent dimensions"),
    (lambda mu, lv, eps, w, m, lvs: right_mixture_kl(mu, lv, eps, w, m, lvs)[None].expand(eps.shape[0], -1),
     "one value per sample"),
])
def test_kl_to_mixture_mc(fn, hint):
    assert_catches(checks.check_kl_to_mixture_mc, right_mixture_kl, fn, hint,
                   passed="correct on 3 random batches and mixture priors")


def test_kl_to_mixture_mc_with_one_standard_component_is_the_gaussian_kl():
    """With a single N(0, I) component the estimate averages to the closed form: the check's reference agrees."""
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    eps = torch.randn(200_000, 3, 4, generator=g)
    estimate = right_mixture_kl(mu, logvar, eps, torch.ones(1), torch.zeros(1, 4), torch.zeros(1, 4))
    closed = 0.5 * (mu ** 2 + logvar.exp() - logvar - 1).sum(-1)
    assert torch.allclose(estimate, closed, atol=0.05)
