"""The checks of notebook 10 accept a right answer and reject known wrong ones with the intended hint."""
import math

import numpy as np
import pytest
import torch
from torch.special import ndtr, xlogy

from vaelib.course import checks

from .conftest import assert_catches, run_check


# Exercise 1: channels-last arrays -> (N, C, H, W) floats ------------------------------------------

def right_channels_first(array):
    return torch.as_tensor(array).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("fn, hint", [
    (lambda a: torch.as_tensor(a).reshape(a.shape[0], a.shape[3], a.shape[1], a.shape[2]).float() / 255,
     "scrambles the pixels"),
    (lambda a: torch.as_tensor(a).permute(0, 3, 2, 1).float() / 255, "transposed"),
    (lambda a: torch.as_tensor(a).permute(0, 3, 1, 2).float(), "divide by 255"),
    (lambda a: torch.as_tensor(a).permute(0, 3, 1, 2).float() / 256, "you divided by 256"),
    (lambda a: torch.as_tensor(a).permute(0, 3, 1, 2), "models take floats"),
    (lambda a: torch.as_tensor(a).float() / 255, "still channels-last"),
    (lambda a: a.transpose(0, 3, 1, 2) / 255, "expected a torch tensor"),
    (lambda a: a.permute(0, 3, 1, 2).float() / 255, "torch.as_tensor(array)"),
])
def test_channels_first(fn, hint):
    # numpy's own transpose, then a tensor, is right too
    numpy_first = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).float() / 255  # noqa: E731
    assert_catches(checks.check_channels_first, right_channels_first, fn, hint,
                   passed="correct on 3 batches (square and non-square, colour and grey)", also_right=[numpy_first])


# Exercise 2: the smallest BCE of grey levels ---------------------------------------------------------

def right_floor(x):
    return (-(xlogy(x, x) + xlogy(1 - x, 1 - x)) / math.log(2)).mean()


@pytest.mark.parametrize("fn, hint", [
    (lambda x: (-(x * torch.log2(x) + (1 - x) * torch.log2(1 - x))).mean(), "0 * log 0 is nan"),
    (lambda x: (-(xlogy(x, x) + xlogy(1 - x, 1 - x))).mean(), "in nats"),
    (lambda x: (-(xlogy(x, x) + xlogy(1 - x, 1 - x)) / math.log(2)).sum(), "a sum over pixels"),
    (lambda x: -right_floor(x), "sign is flipped"),
    (lambda x: (-xlogy(x, x) / math.log(2)).mean(), "only the x log x part"),
    (lambda x: (-(xlogy(x, x) + xlogy(1 - x, 1 - x)) / math.log(2)).mean(dim=(1, 2, 3)), "expected one number"),
])
def test_bernoulli_floor(fn, hint):
    assert_catches(checks.check_bernoulli_floor, right_floor, fn, hint,
                   passed="correct on 3 batches with black, white and grey pixels")


# Exercise 3: the histogram baseline ------------------------------------------------------------------

def _probs(train, alpha=1.0, norm=256):
    k = train.long().flatten(1)                                          # (N, P)
    counts = torch.nn.functional.one_hot(k, 256).sum(0).double()          # (P, 256)
    return (counts + alpha) / (len(k) + norm * alpha)


def _bits(train, test, **kw):
    probs = _probs(train, **kw)
    k = test.long().flatten(1)
    return -torch.log2(probs.gather(1, k.t()).t())                      # (M, P)


def right_histogram(train, test):
    return _bits(train, test).mean().item()


def pooled(train, test):
    counts = torch.bincount(train.flatten().long(), minlength=256).double()
    probs = (counts + 1) / (train.numel() + 256)
    return (-torch.log2(probs[test.flatten().long()])).mean().item()


@pytest.mark.parametrize("fn, hint", [
    (lambda tr, te: _bits(tr, te, alpha=0.0).mean().item(), "count 0 and probability 0"),
    (lambda tr, te: (_bits(tr, te) * math.log(2)).mean().item(), "in nats"),
    (lambda tr, te: _bits(tr, te).sum(1).mean().item(), "bits per image"),
    (pooled, "one histogram for all positions"),
    (lambda tr, te: _bits(tr, te, norm=0).mean().item(), "not a distribution"),
    (lambda tr, te: -right_histogram(tr, te), "sign is flipped"),
    (lambda tr, te: _bits(tr, te).mean(1), "expected one number"),
])
def test_histogram_bits_per_dim(fn, hint):
    assert_catches(checks.check_histogram_bits_per_dim, right_histogram, fn, hint,
                   passed="correct on 3 small data sets")


# Exercise 4: the discretized Gaussian ----------------------------------------------------------------

def _edges(x, mean, log_sigma, half=0.5 / 255, tails=True, dtype=torch.float64):
    x, mean, sigma = x.to(dtype), mean.to(dtype), log_sigma.to(dtype).exp()
    upper, lower = ndtr((x + half - mean) / sigma), ndtr((x - half - mean) / sigma)
    if tails:
        upper = torch.where(x > 1 - 0.5 / 255, torch.ones_like(upper), upper)
        lower = torch.where(x < 0.5 / 255, torch.zeros_like(lower), lower)
    return upper, lower


def right_discretized(x, mean, log_sigma):
    upper, lower = _edges(x, mean, log_sigma)
    return torch.log((upper - lower).clamp_min(1e-12)).sum(dim=(1, 2, 3)).float()


def float32_version(x, mean, log_sigma):
    upper, lower = _edges(x, mean, log_sigma, dtype=torch.float32)
    return torch.log((upper - lower).clamp_min(1e-12)).sum(dim=(1, 2, 3))


def sigma_is_log_sigma(x, mean, log_sigma):
    upper, lower = ndtr((x + 0.5 / 255 - mean) / log_sigma), ndtr((x - 0.5 / 255 - mean) / log_sigma)
    return torch.log(upper - lower).sum(dim=(1, 2, 3))


@pytest.mark.parametrize("fn, hint", [
    (lambda x, m, ls: torch.log(torch.sub(*_edges(x, m, ls)).clamp_min(1e-12)).mean(dim=(1, 2, 3)),
     "averaged over pixels"),
    (lambda x, m, ls: torch.log(torch.sub(*_edges(x, m, ls, tails=False))).sum(dim=(1, 2, 3)), "take the Gaussian's tails"),
    (lambda x, m, ls: (torch.distributions.Normal(m, ls.exp()).log_prob(x) - math.log(255)).sum(dim=(1, 2, 3)),
     "density at x"),
    (lambda x, m, ls: torch.log(torch.sub(*_edges(x, m, ls, half=0.5 / 256))).sum(dim=(1, 2, 3)), "width 1/256"),
    (sigma_is_log_sigma, "sigma = log_sigma.exp()"),
    (lambda x, m, ls: torch.log(torch.sub(*_edges(x, m, ls))), "one number per pixel"),
    (lambda x, m, ls: torch.sub(*_edges(x, m, ls)).prod(dim=3).prod(dim=2).prod(dim=1), "positive values"),
])
def test_discretized_gaussian(fn, hint):
    assert_catches(checks.check_discretized_gaussian, right_discretized, fn, hint,
                   passed="correct on 3 batches, black and white pixels included")


def test_discretized_gaussian_float32_gets_its_own_hint():
    ok, out = run_check(checks.check_discretized_gaussian, float32_version)
    assert not ok and "close, but not within rounding" in out and "float64" in out


def test_the_discretized_levels_sum_to_one():
    """The reference distributes all of the Gaussian's mass over the 256 levels (the end levels take the tails)."""
    levels = torch.arange(256).double().view(1, 1, 1, 256) / 255
    mean, log_sigma = torch.full_like(levels, 0.3), torch.full_like(levels, math.log(0.2))
    upper, lower = _edges(levels, mean, log_sigma)
    assert torch.allclose((upper - lower).sum(), torch.tensor(1.0, dtype=torch.float64))
