"""The checks of notebook 13 accept a right answer and reject known wrong ones with the intended hint."""
import math

import pytest
import torch

from vaelib.course import checks

from .conftest import assert_catches


# --- exercise 1: the parameters a prior adds -------------------------------------------------------------------

def right_count(kind, d, k, shape):
    if kind == "mog":
        return k * (2 * d + 1)
    if kind == "vamp":
        return k * math.prod(shape)
    return 0


@pytest.mark.parametrize("fn, hint", [
    (lambda kind, d, k, shape: 2 * k * d if kind == "mog" else right_count(kind, d, k, shape), "but not the weights"),
    (lambda kind, d, k, shape: 2 * k * d + k - 1 if kind == "mog" else right_count(kind, d, k, shape), "K - 1 weights"),
    (lambda kind, d, k, shape: k * d + k if kind == "mog" else right_count(kind, d, k, shape), "own variance"),
    (lambda kind, d, k, shape: 2 * k * d if kind == "vamp" else right_count(kind, d, k, shape), "learns pseudo-images"),
    (lambda kind, d, k, shape: k * shape[-1] * shape[-2] if kind == "vamp" else right_count(kind, d, k, shape),
     "channels are missing"),
    (lambda kind, d, k, shape: k * math.prod(shape) + 10_000 if kind == "vamp" else right_count(kind, d, k, shape),
     "shared with the prior"),
    (lambda kind, d, k, shape: 2 * d if kind == "standard" else right_count(kind, d, k, shape), "buffers"),
    (lambda kind, d, k, shape: [right_count(kind, d, k, shape)] * 2, "one number"),
])
def test_prior_parameters(fn, hint):
    assert_catches(checks.check_prior_parameters, right_count, fn, hint,
                   passed="right for the standard, mixture and VampPrior, in 6 configurations")


def test_the_prior_count_is_what_vaelib_builds():
    import vaelib
    for prior, expected in (("mog", 410), ("vamp", 392_000)):
        model = vaelib.build_vae(config=vaelib.VAEConfig(arch="mlp", latent_dim=20, prior_kind=prior))
        assert sum(p.numel() for p in model.prior.parameters()) == expected == right_count(
            prior, 20, model.config.prior_components, (1, 28, 28))


# --- exercise 2: the mutual information --------------------------------------------------------------------------

def _lnd(z, mu, logvar):
    return -0.5 * ((z - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)


def _mi(log_qz_of, samples=True):
    def fn(mu, logvar, eps):
        z = mu + torch.exp(0.5 * logvar) * eps if samples else mu.expand_as(eps)
        return (_lnd(z, mu, logvar) - log_qz_of(z, mu, logvar)).mean()
    return fn


def log_mean(z, mu, logvar):
    return torch.logsumexp(_lnd(z[..., None, :], mu, logvar), -1) - math.log(len(mu))


right_mi = _mi(log_mean)


def _leave_one_out(z, mu, logvar):
    pairs = _lnd(z[..., None, :], mu, logvar)
    pairs = pairs.masked_fill(torch.eye(len(mu), dtype=torch.bool), float("-inf"))
    return torch.logsumexp(pairs, -1) - math.log(len(mu) - 1)


def _per_coordinate(z, mu, logvar):
    per = -0.5 * ((z[..., None, :] - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi))
    return (torch.logsumexp(per, -2) - math.log(len(mu))).sum(-1)


@pytest.mark.parametrize("fn, hint", [
    (lambda mu, lv, eps: -right_mi(mu, lv, eps), "sign is flipped"),
    (_mi(lambda z, mu, lv: torch.logsumexp(_lnd(z[..., None, :], mu, lv), -1)), "log N too small"),
    (lambda mu, lv, eps: (0.5 * (mu ** 2 + lv.exp() - lv - 1).sum(-1)).mean(), "the rate"),
    (_mi(lambda z, mu, lv: _lnd(z, 0 * mu, 0 * lv)), "the rate"),
    (_mi(_leave_one_out), "left each x_n's own posterior out"),
    (_mi(_per_coordinate), "mixed every coordinate separately"),
    (_mi(log_mean, samples=False), "at the means"),
    (lambda mu, lv, eps: (_lnd(mu + torch.exp(0.5 * lv) * eps, mu, lv)
                          - log_mean(mu + torch.exp(0.5 * lv) * eps, mu, lv)).mean(0), "average over the samples"),
    (lambda mu, lv, eps: right_mi(mu, lv, eps) + math.log(len(mu)), "more than log N"),
])
def test_mutual_information(fn, hint):
    assert_catches(checks.check_mutual_information, right_mi, fn, hint,
                   passed="correct on 3 sets of posteriors, overlapping and apart")


def test_mutual_information_is_bounded_by_log_n():
    g = torch.Generator().manual_seed(0)
    mu, logvar = 100 * torch.randn(30, 4, generator=g), torch.zeros(30, 4)        # posteriors far apart
    eps = torch.randn(5, 30, 4, generator=g)
    assert abs(right_mi(mu, logvar, eps).item() - math.log(30)) < 1e-3
    mu = torch.zeros(30, 4)                                                          # all posteriors the same
    assert abs(right_mi(mu, logvar, eps).item()) < 1e-5


# --- exercise 3: the best Gaussian prior -------------------------------------------------------------------------

def right_best(mu, logvar):
    return mu.mean(0), (mu.var(0, unbiased=False) + logvar.exp().mean(0)).log()


@pytest.mark.parametrize("fn, hint", [
    (lambda mu, lv: (mu.mean(0), mu.var(0, unbiased=False).log()), "only the spread of the posterior means"),
    (lambda mu, lv: (mu.mean(0), lv.exp().mean(0).log()), "only the average posterior variance"),
    (lambda mu, lv: (mu.mean(0), (mu.var(0) + lv.exp().mean(0)).log()), "divided by N - 1"),
    (lambda mu, lv: (mu.mean(0), right_best(mu, lv)[1].exp()), "you return the variance"),
    (lambda mu, lv: (mu.mean(0), lv.mean(0)), "averaged the log-variances"),
    (lambda mu, lv: (torch.zeros(mu.shape[1], dtype=mu.dtype), right_best(mu, lv)[1]), "your mean is 0"),
    (lambda mu, lv: (mu.mean(1), right_best(mu, lv)[1]), "shapes"),
    (lambda mu, lv: right_best(mu, lv)[0], "two tensors"),
])
def test_best_gaussian_prior(fn, hint):
    assert_catches(checks.check_best_gaussian_prior, right_best, fn, hint, passed="correct on 3 sets of posteriors")


def test_the_best_gaussian_prior_maximizes_the_expected_log_density():
    """Moment matching is the optimum: moving m or log_s2 a little lowers E_q(z)[log p(z)], estimated by sampling."""
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(20, 2, generator=g, dtype=torch.float64), torch.randn(20, 2, generator=g,
                                                                                   dtype=torch.float64) - 1
    n = torch.randint(0, 20, (200_000,), generator=g)
    z = mu[n] + torch.exp(0.5 * logvar[n]) * torch.randn(200_000, 2, generator=g, dtype=torch.float64)
    m, log_s2 = right_best(mu, logvar)
    best = _lnd(z, m, log_s2).mean()
    for dm, ds in ((0.1, 0.0), (-0.1, 0.0), (0.0, 0.1), (0.0, -0.1)):
        assert _lnd(z, m + dm, log_s2 + ds).mean() < best



def _vamp_terms(z, mu, logvar, var_scale=0.5):
    """log N(z_n; mu_k, exp(logvar_k)) per (n, k), with the standard deviation exp(var_scale * logvar)."""
    from torch.distributions import Normal
    return Normal(mu, (var_scale * logvar).exp()).log_prob(z[:, None]).sum(-1)


def right_vamp(z, mu, logvar):
    return torch.logsumexp(_vamp_terms(z, mu, logvar), 1) - math.log(len(mu))


@pytest.mark.parametrize("fn, hint", [
    (lambda z, mu, lv: _vamp_terms(z, mu, lv).exp().mean(1).log(), "infinite or NaN"),
    (lambda z, mu, lv: torch.logsumexp(_vamp_terms(z, mu, lv), 1), "subtract log K"),
    (lambda z, mu, lv: _vamp_terms(z, mu, lv).mean(1), "not the log of the mean density"),
    (lambda z, mu, lv: _vamp_terms(z, mu, lv).max(1).values, "nearest component"),
    (lambda z, mu, lv: torch.logsumexp(_vamp_terms(z, mu, lv, 1.0), 1) - math.log(len(mu)), "variances are off"),
    (lambda z, mu, lv: torch.logsumexp(_vamp_terms(z, mu, lv, 0.25), 1) - math.log(len(mu)), "variances are off"),
    (lambda z, mu, lv: right_vamp(z, mu, lv)[:, None].expand(-1, z.shape[1]), "one log-density per row of z"),
    (lambda z, mu, lv: right_vamp(z, mu, lv) + 1, "wrong values"),
])
def test_vamp_log_prior(fn, hint):
    assert_catches(checks.check_vamp_log_prior, right_vamp, fn, hint,
                   passed="correct on 3 mixtures (K = 1, 5, 50), far-away points included")


def test_vamp_log_prior_agrees_with_vaelibs_vamp_prior():
    from vaelib.networks import MLPEncoder
    from vaelib.priors import VampPrior
    torch.manual_seed(0)
    prior = VampPrior(3, MLPEncoder(3, 16, image_shape=(1, 4, 4)), (1, 4, 4), components=6)
    mu, logvar = prior._posteriors()
    z = torch.randn(5, 3)
    assert torch.allclose(prior().log_prob(z), right_vamp(z, mu, logvar), atol=1e-5)
