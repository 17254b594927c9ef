"""The checks of notebook 07 accept a right answer and reject known wrong ones with the intended hint."""
import math

import pytest
import torch

from vaelib.course import checks
from vaelib.plotting import lerp, slerp

from .conftest import assert_catches, run_check


def right_centroids(codes, labels):
    return torch.stack([codes[labels == k].mean(0) for k in range(10)])


@pytest.mark.parametrize("fn, hint", [
    (lambda c, y: right_centroids(c, y).T, "transposed"),
    (lambda c, y: c.mean(0), "mean of all the codes"),
    (lambda c, y: torch.stack([c[y == k].sum(0) for k in range(10)]), "you sum the codes"),
    (lambda c, y: torch.stack([c[y == k].mean(0) for k in y.unique(sorted=False).tolist()[::-1]]),
     "wrong order"),
    (lambda c, y: right_centroids(c, y).norm(dim=1), "centroids' norms"),
])
def test_class_centroids(fn, hint):
    assert_catches(checks.check_class_centroids, right_centroids, fn, hint,
                   passed="correct on 3 random sets of codes (classes of unequal sizes)")


def chi2_cdf(d, value):
    return torch.distributions.Chi2(torch.tensor(float(d))).cdf(torch.tensor(float(value))).item()


def monte_carlo(d):
    z = torch.randn(10000, d, generator=torch.Generator().manual_seed(0))
    return (z.norm(dim=1) < math.sqrt(d / 2)).float().mean().item()


@pytest.mark.parametrize("fn, hint", [
    (lambda d: 1 - chi2_cdf(d, d / 2), "*above* sqrt(D/2)"),
    (lambda d: chi2_cdf(d, math.sqrt(d / 2)), "*squared* norm"),
    (lambda d: chi2_cdf(d, d), "the shell's radius"),
    (lambda d: torch.distributions.Normal(float(d), math.sqrt(2 * d)).cdf(torch.tensor(d / 2)).item(),
     "normal approximation"),
    (monte_carlo, "Monte-Carlo"),
])
def test_shell_probability(fn, hint):
    assert run_check(checks.check_shell_probability, lambda d: chi2_cdf(d, d / 2)) == (
        True, "✓ check_shell_probability: correct for D = 1, 2, 7, 20, 100")
    ok, out = run_check(checks.check_shell_probability, fn)
    assert not ok and hint in out


def _mid(f, z0, z1):
    return f(z0, z1, torch.tensor([0.5])).norm().item()


def right_midpoints(z0, z1):
    return _mid(lerp, z0, z1), _mid(slerp, z0, z1)


def equal_norm_shortcut(z0, z1):
    r = (z0.norm() + z1.norm()) / 2
    omega = torch.arccos(z0 @ z1 / (z0.norm() * z1.norm()))
    return (r * torch.cos(omega / 2)).item(), _mid(slerp, z0, z1)


@pytest.mark.parametrize("fn, hint", [
    (lambda z0, z1: right_midpoints(z0, z1)[::-1], "swapped"),
    (lambda z0, z1: (_mid(lerp, z0, z1), _mid(lerp, z0, z1)), "use slerp"),
    (equal_norm_shortcut, "r cos(omega/2)"),
    (lambda z0, z1: ((z0 + z1).norm().item(), _mid(slerp, z0, z1)), "(z0 + z1) / 2"),
    (lambda z0, z1: (_mid(lerp, z0, z1), 1.0), "unit direction"),
    (lambda z0, z1: (lerp(z0, z1, torch.tensor([0.5]))[0], slerp(z0, z1, torch.tensor([0.5]))[0]), "two numbers"),
])
def test_midpoint_norms(fn, hint):
    assert run_check(checks.check_midpoint_norms, right_midpoints) == (
        True, "✓ check_midpoint_norms: correct on 3 random pairs of endpoints with different norms")
    ok, out = run_check(checks.check_midpoint_norms, fn)
    assert not ok and hint in out


class _Encoder(torch.nn.Module):
    """A stand-in 2-D encoder: fixed means and log-variances for the images, by index."""

    def __init__(self, mu, logvar):
        super().__init__()
        self.register_buffer("m", mu)
        self.register_buffer("lv", logvar)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        idx = x.flatten(1)[:, 0].long()
        return self.m[idx], self.lv[idx]


class _Model(torch.nn.Module):
    def __init__(self, mu, logvar):
        super().__init__()
        self.encoder, self.latent_dim = _Encoder(mu, logvar), mu.shape[1]

    @property
    def device(self):
        return torch.device("cpu")


g = torch.Generator().manual_seed(0)
X = torch.arange(50.0).view(50, 1, 1, 1).expand(50, 1, 28, 28)        # image n says "I am n"
TRAINED = _Model(torch.randn(50, 2, generator=g) * torch.tensor([1.2, 0.7]), torch.randn(50, 2, generator=g) - 3)
PRETRAINED = _Model(torch.randn(50, 2, generator=g), torch.randn(50, 2, generator=g) - 5)
UNTRAINED = _Model(0.01 * torch.randn(50, 2, generator=g), 0.1 * torch.randn(50, 2, generator=g))


def total_variance(model, var=lambda m: m.var(0, unbiased=False)):
    mu, logvar = model.encoder(X)
    return var(mu) + logvar.exp().mean(0)


def test_aggregate_posterior_right():
    ok, out = run_check(checks.check_aggregate_posterior, total_variance(TRAINED), TRAINED, X, PRETRAINED)
    assert ok and out.startswith("✓ check_aggregate_posterior: right for your trained model: total variance")
    assert run_check(checks.check_aggregate_posterior, total_variance(TRAINED, lambda m: m.var(0)).tolist(), TRAINED,
                     X)[0]


@pytest.mark.parametrize("args, hint", [
    ((total_variance(UNTRAINED), UNTRAINED, X), "looks untrained"),
    ((total_variance(PRETRAINED), TRAINED, X, PRETRAINED), "pretrained model's numbers"),
    ((total_variance(PRETRAINED), PRETRAINED, X, PRETRAINED), "that is the pretrained model"),
    ((TRAINED.encoder(X)[0].var(0), TRAINED, X), "only the variance of the means"),
    ((TRAINED.encoder(X)[1].exp().mean(0), TRAINED, X), "only the mean posterior variance"),
    ((total_variance(TRAINED, lambda m: m.std(0)), TRAINED, X), "standard deviation"),
    ((TRAINED.encoder(X)[0].var(0) + TRAINED.encoder(X)[1].mean(0), TRAINED, X), "not the log-variances"),
    ((total_variance(TRAINED).sum(), TRAINED, X), "one number per latent dimension"),
    ((torch.ones(2), _Model(torch.randn(50, 3), torch.randn(50, 3) - 3), X), "latent_dim=2"),
])
def test_aggregate_posterior_wrong(args, hint):
    ok, out = run_check(checks.check_aggregate_posterior, *args)
    assert not ok and hint in out
