"""The checks of notebook 05 accept a right answer and reject known wrong ones with the intended hint."""
import math

import pytest
from torch.distributions import Normal

from vaelib.course import checks

from .conftest import assert_catches, run_check


def _kl(mu, logvar):
    return 0.5 * (mu ** 2 + logvar.exp() - logvar - 1).sum(-1)


def right_loss(x, mean, mu, logvar, sigma, beta):
    rec = -Normal(mean, sigma).log_prob(x).sum((1, 2, 3))
    return (rec + beta * _kl(mu, logvar)).mean()


def _sse(x, mean):
    return (x - mean).pow(2).sum((1, 2, 3))


@pytest.mark.parametrize("fn, hint", [
    (lambda x, m, mu, lv, s, b: -right_loss(x, m, mu, lv, s, b), "the objective to maximize"),
    (lambda x, m, mu, lv, s, b: (_sse(x, m) / (2 * s ** 2) + b * _kl(mu, lv)).mean(),
     "normalizing constant is missing"),
    (lambda x, m, mu, lv, s, b: right_loss(x, m, mu, lv, math.sqrt(s), b), "sigma as the variance"),
    (lambda x, m, mu, lv, s, b: right_loss(x, m, mu, lv, s, 1.0), "beta is ignored"),
    (lambda x, m, mu, lv, s, b: (-b * Normal(m, s).log_prob(x).sum((1, 2, 3)) + _kl(mu, lv)).mean(),
     "beta multiplies the reconstruction"),
    (lambda x, m, mu, lv, s, b: (-Normal(m, s).log_prob(x).mean((1, 2, 3)) + b * _kl(mu, lv)).mean(),
     "averaged over pixels"),
    (lambda x, m, mu, lv, s, b: right_loss(x, m, mu, lv, s, b) * len(x), "sum over the batch"),
    (lambda x, m, mu, lv, s, b: (_sse(x, m) / (2 * s ** 2) + 784 * math.log(2 * math.pi * s ** 2)
                                 + b * _kl(mu, lv)).mean(), "constant is twice too large"),
])
def test_gaussian_vae_loss(fn, hint):
    assert_catches(checks.check_gaussian_vae_loss, right_loss, fn, hint,
                   passed="correct for 3 values of sigma and beta")


def right_sigma(x, mean):
    return (x - mean).pow(2).mean().sqrt()


@pytest.mark.parametrize("fn, hint", [
    (lambda x, m: (x - m).pow(2).mean(), "take the square root"),
    (lambda x, m: (x - m).pow(2).mean((1, 2, 3)).sqrt(), "one sigma per image"),
    (lambda x, m: ((x - m).pow(2).sum() / len(x)).sqrt(), "784 B"),
    (lambda x, m: (x - m).abs().mean(), "mean absolute error"),
    (lambda x, m: (x - m).std(), "std() subtracts"),
    (lambda x, m: float(right_sigma(x, m)), None),           # a float is fine
])
def test_optimal_sigma(fn, hint):
    assert run_check(checks.check_optimal_sigma, right_sigma) == (
        True, "✓ check_optimal_sigma: correct on 2 random batches")
    ok, out = run_check(checks.check_optimal_sigma, fn)
    if hint is None:
        assert ok
    else:
        assert not ok and out.startswith("✗") and hint in out


def right_diversity(images):
    return (images - images.mean(0)).pow(2).sum((1, 2, 3)).mean()


@pytest.mark.parametrize("fn, hint", [
    (lambda im: (im - im.mean(0)).pow(2).mean(), "you average over pixels"),
    (lambda im: im.pow(2).sum((1, 2, 3)).mean(), "distance to a black image"),
    (lambda im: im.var(0).sum(), "divide by n - 1"),
    (lambda im: (im - im.mean(0)).pow(2).sum((1, 2, 3)), "one value per image"),
    (lambda im: (im - im.mean(0)).pow(2).sum((1, 2, 3)).sqrt().mean(), "a mean of distances"),
    (lambda im: (im - im.mean((1, 2, 3), keepdim=True)).pow(2).sum((1, 2, 3)).mean(), "own mean brightness"),
])
def test_diversity(fn, hint):
    assert_catches(checks.check_diversity, right_diversity, fn, hint, passed="correct on 2 random batches")


def test_unsolved_stubs_stop_the_notebook():
    def todo(*args):
        raise NotImplementedError()
    for check in (checks.check_gaussian_vae_loss, checks.check_optimal_sigma, checks.check_diversity):
        with pytest.raises(NotImplementedError):
            check(todo)


RIGHT_BETAS = [1.0, 784.0, 1 / 20, 784 / 20, 50.0]


def _replace(position, value):
    betas = list(RIGHT_BETAS)
    betas[position] = value
    return betas


@pytest.mark.parametrize("betas, hint", [
    (_replace(0, 128.0), "(a): a sum over the batch"),
    (_replace(1, 1 / 784), "(b): inverted"),
    (_replace(1, 1.0), "(b): F.binary_cross_entropy_with_logits averages"),
    (_replace(2, 20.0), "(c): inverted"),
    (_replace(2, 1.0), "(c): kl has one column per latent dimension"),
    (_replace(3, 784 * 20), "(d): you multiplied"),
    (_replace(3, 20 / 784), "(d): inverted"),
    (_replace(3, 784.0), "(d): both terms are averaged"),
    (_replace(4, 0.02), "(e): inverted"),
    (_replace(4, 1.0), "(e): summed MSE is the Gaussian with sigma^2 = 1/2"),
    (_replace(4, 7.0), "(e): 7 is not the beta"),
    ([1.0, 784.0], "expected five"),
])
def test_effective_betas(betas, hint):
    assert_catches(checks.check_effective_betas, RIGHT_BETAS, betas, hint,
                   passed="all five right: every reduction is a hidden weight between the two terms",
                   also_right=[dict(zip("abcde", RIGHT_BETAS))])


def test_the_effective_betas_are_the_losses_weights():
    """Each loss (a)-(e) of the exercise is c * batch mean of [-log p(x|z) + beta KL] + const, with the checked beta."""
    import torch
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(0)
    B, D, sigma = 6, 20, 0.1
    logits, x = torch.randn(B, 1, 28, 28, generator=g), torch.bernoulli(torch.rand(B, 1, 28, 28, generator=g))
    mu, logvar = torch.randn(B, D, generator=g), torch.randn(B, D, generator=g)
    kl = 0.5 * (mu ** 2 + logvar.exp() - logvar - 1)                                   # (B, D)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))   # -log p(x|z), (B,)
    m = torch.sigmoid(logits)
    gauss = (-Normal(m, sigma).log_prob(x)).sum((1, 2, 3))                             # -log N(x; m, sigma^2)
    losses = [
        (F.binary_cross_entropy_with_logits(logits, x, reduction="sum") + kl.sum(), B, bce, 0.0),
        (F.binary_cross_entropy_with_logits(logits, x) + kl.sum(1).mean(), 1 / 784, bce, 0.0),
        (F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / B + kl.mean(), 1.0, bce, 0.0),
        (F.binary_cross_entropy_with_logits(logits, x) + kl.mean(), 1 / 784, bce, 0.0),
        (F.mse_loss(m, x, reduction="sum") / B + kl.sum(1).mean(), 2 * sigma ** 2, gauss,
         -2 * sigma ** 2 * 392 * math.log(2 * math.pi * sigma ** 2)),
    ]
    for (loss, c, nll, const), beta in zip(losses, RIGHT_BETAS):
        assert torch.allclose(loss, c * (nll + beta * kl.sum(1)).mean() + const, rtol=1e-5)
