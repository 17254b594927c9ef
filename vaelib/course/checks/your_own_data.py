"""Checks for notebook 10 (your own data: grey levels, 8-bit pixels, colour)."""
import math

import torch

from ._feedback import _as_tensor, _seeded, answer, diagnose, either, exercise_check, expect, near_number, one_number

__all__ = ['check_channels_first', 'check_bernoulli_floor', 'check_histogram_bits_per_dim',
           'check_discretized_gaussian']


def _numpy_hint(error):
    if "numpy" in error and ("attribute" in error or "argument" in error):
        error += ". Hint: torch.as_tensor(array) turns the numpy array into a tensor first"
    return error


@exercise_check("correct on 3 batches (square and non-square, colour and grey)")
def check_channels_first(fn) -> bool:
    """``fn(array)``: images as numpy, PIL and most image files give them, ``(N, H, W, C)`` ``uint8`` (a numpy
    array), -> what vaelib's models take: a float tensor ``(N, C, H, W)`` with values in [0, 1]."""
    import numpy as np

    for g, (n, h, w, c) in _seeded(21, ((4, 6, 6, 3), (2, 5, 7, 3), (3, 4, 4, 1))):
        hwc = torch.randint(0, 256, (n, h, w, c), generator=g, dtype=torch.uint8)
        out = answer(fn, np.array(hwc.numpy()), on_error=_numpy_hint)
        expected = hwc.permute(0, 3, 1, 2).float() / 255
        if not isinstance(out, torch.Tensor):
            return (f"expected a torch tensor, got {type(out).__name__}. Hint: torch.as_tensor(array) "
                    "makes a tensor of a numpy array")
        if out.shape != expected.shape:
            return diagnose(None, [
                (out.shape == hwc.shape, f"shape {tuple(out.shape)} is still channels-last (N, H, W, C). Hint: "
                 "permute(0, 3, 1, 2) moves the channels to dimension 1"),
                (out.shape == (n, c, w, h), f"shape {tuple(out.shape)}: height and width are swapped. Hint: permute(0, "
                 "3, 1, 2) keeps H before W"),
            ], otherwise=f"shape {tuple(out.shape)}, expected {tuple(expected.shape)} = (N, C, H, "
                         "W). Hint: permute(0, 3, 1, 2)")
        if not out.is_floating_point():
            return f"dtype {out.dtype}: models take floats. Hint: .float() / 255"
        out = out.detach().float()
        expect(out, expected, [
            (bool(out.max() > 1.5), "values up to 255: the pixels are still in 0-255. Hint: divide by 255"),
            (hwc.permute(0, 3, 1, 2).float() / 256, "you divided by 256: a pixel of 255 (full intensity) must "
             "become 1. Hint: divide by 255"),
            (h == w and torch.allclose(out, hwc.permute(0, 3, 2, 1).float() / 255, atol=1e-6), "the images come out "
             "transposed (height and width swapped; square images keep their shape). Hint: permute(0, 3, 1, 2)"),
            (hwc.reshape(n, c, h, w).float() / 255, "reshape (or view) keeps the memory order and scrambles the pixels "
             "across channels. Hint: permute(0, 3, 1, 2) moves the axes"),
        ], otherwise="wrong values. Hint: torch.as_tensor(array).permute(0, 3, 1, 2).float() / 255",
           tol=1e-5, atol=1e-6)


@exercise_check("correct on 3 batches with black, white and grey pixels")
def check_bernoulli_floor(fn) -> bool:
    """``fn(x)``: for grey-level images ``x`` ``(B, C, H, W)`` in [0, 1], the smallest value that the Bernoulli
    loss (BCE) can take, in bits per pixel, averaged over every pixel of the batch: the mean binary entropy
    -x log2 x - (1 - x) log2(1 - x), with 0 log 0 = 0. One number."""
    for g, _ in _seeded(22):
        x = torch.rand(4, 1, 8, 8, generator=g)
        x[torch.rand(x.shape, generator=g) < 0.4] = 0.0     # black pixels, as in Fashion-MNIST
        x[torch.rand(x.shape, generator=g) < 0.05] = 1.0     # and a few white ones
        value = one_number(answer(fn, x), ". Hint: average over all pixels of the batch")
        xd = x.double()
        h = -(torch.special.xlogy(xd, xd) + torch.special.xlogy(1 - xd, 1 - xd)) / math.log(2)   # binary entropy, bits
        expected = h.mean().item()
        expect(value, expected, [
            (math.isnan(value), "got nan: 0 * log 0 is nan in floating point, and the data has pixels that are exactly "
             "0 or 1. Hint: torch.special.xlogy(x, x) is x log x with 0 log 0 = 0 "
             "(natural log: divide by ln 2 afterwards)"),
            (expected * math.log(2), "that is in nats. Hint: bits = nats / ln 2 (or use log2)"),
            (either(h.sum().item(), h.sum(dim=(1, 2, 3)).mean().item()), "that is a sum over pixels. Hint: the mean "
             "over every pixel gives bits per pixel (per dimension)"),
            (-expected, "the sign is flipped: an entropy is never negative. Hint: minus x log2 x"),
            ((-torch.special.xlogy(xd, xd) / math.log(2)).mean().item(), "only the x log x part: a pixel's BCE has two "
             "terms. Hint: add -(1 - x) log2(1 - x)"),
        ], otherwise="wrong value. Hint: the BCE of x against lambda is smallest at lambda = x, where it is the binary "
                     "entropy of x; average it over all pixels, in bits", near=near_number(1e-4))


def _histogram_bits(train, test, pooled=False, bad_norm=False):
    """The code lengths (bits) of the pixels of ``test``, ``(M, P)``, under 256-bin histograms of ``train`` with add-one
    smoothing: one per pixel position (``pooled``: one for all), normalized by N + 256 (``bad_norm``: by N)."""
    n, k_train, k_test = len(train), train.long().flatten(1), test.long().flatten(1)     # (N, P), (M, P)
    positions = k_train.shape[1]
    if pooled:
        counts = torch.bincount(k_train.flatten(), minlength=256).double().expand(positions, 256)
        n = n * positions
    else:
        counts = torch.zeros(positions, 256, dtype=torch.float64)
        counts.scatter_add_(1, k_train.t().contiguous(), torch.ones(positions, len(k_train), dtype=torch.float64))
    probs = (counts + 1.0) / (n + (0 if bad_norm else 256.0))
    return -torch.log2(probs.gather(1, k_test.t().contiguous()).t())


@exercise_check("correct on 3 small data sets")
def check_histogram_bits_per_dim(fn) -> bool:
    """``fn(train_images, test_images)``: both ``uint8`` ``(N, C, H, W)``. For every pixel position, a 256-bin
    histogram of the training values with add-one smoothing, P(k) = (count_k + 1) / (N + 256); return the mean
    over every test pixel of -log2 P(its value): the bits/dim of this independent-pixel model. One number."""
    for g, (n, m) in _seeded(23, ((40, 7), (25, 5), (60, 3))):
        # position-dependent pixel values: dark on the left, bright on the right, some exact zeros
        ramp = torch.linspace(0, 200, 4).view(1, 1, 1, 4)
        train = (ramp + 40 * torch.rand(n, 1, 3, 4, generator=g)).to(torch.uint8)
        train[torch.rand(train.shape, generator=g) < 0.3] = 0
        test = (ramp + 40 * torch.rand(m, 1, 3, 4, generator=g)).to(torch.uint8)
        test[torch.rand(test.shape, generator=g) < 0.3] = 0
        value = one_number(answer(fn, train, test), ". Hint: average over every test pixel")
        bits = _histogram_bits(train, test)
        expected = bits.mean().item()
        expect(value, expected, [
            (math.isinf(value) or math.isnan(value), f"got {value}: a test value that never occurs in the training "
             "images has count 0 and probability 0. Hint: add one to every count (and 256 to the total)"),
            (expected * math.log(2), "that is in nats. Hint: use log2 (bits = nats / ln 2)"),
            (bits.sum(1).mean().item(), "that is bits per image. Hint: average over the pixels too (bits/dim)"),
            (_histogram_bits(train, test, pooled=True).mean().item(), "one histogram for all positions: that model "
             "ignores where a pixel is. Hint: one histogram per pixel position (count over the images only)"),
            (_histogram_bits(train, test, bad_norm=True).mean().item(), "(count + 1) / N is not a distribution: its "
             "256 values sum to more than 1, which makes the code look shorter than "
             "it can be. Hint: divide by N + 256"),
            (-expected, "the sign is flipped. Hint: a code length is -log2 P"),
        ], otherwise="wrong value. Hint: per position, P(k) = (count_k + 1) / (N + 256); the answer is the mean "
                     "of -log2 P over all test pixels",
           near=lambda a, b: math.isfinite(a) and near_number(1e-4)(a, b))


def _discretized(x, mean, log_sigma, edges=True, width=None):
    """log P(x) per pixel, float64, under N(mean, exp(log_sigma)^2) discretized to bins of ``width`` (1/255) around
    the levels k / 255; with ``edges``, levels 0 and 255 also take the tails below and above."""
    x, mean, sigma = x.double(), mean.double(), log_sigma.double().exp()
    half = 0.5 / 255 if width is None else 0.5 * width
    hi, lo = (x + half - mean) / sigma, (x - half - mean) / sigma
    upper = lo > 0             # log(Phi(hi) - Phi(lo)) in the tail where it is accurate: above 0, 1 - Phi mirrored
    a, b = torch.special.log_ndtr(torch.where(upper, -lo, hi)), torch.special.log_ndtr(torch.where(upper, -hi, lo))
    lp = a + torch.log1p(-torch.exp(b - a))
    if edges:
        lp = torch.where(x < 0.5 / 255, torch.special.log_ndtr(hi), lp)
        lp = torch.where(x > 1 - 0.5 / 255, torch.special.log_ndtr(-lo), lp)
    return lp


@exercise_check("correct on 3 batches, black and white pixels included")
def check_discretized_gaussian(fn) -> bool:
    """``fn(x, mean, log_sigma)``: the log-probability, in nats, of 8-bit images ``x`` = k / 255 ``(B, C, H, W)``
    under a Gaussian N(mean, exp(log_sigma)^2) per pixel, discretized to the 256 levels: level k gets the
    Gaussian's mass between (k - 1/2) / 255 and (k + 1/2) / 255, and the end levels 0 and 255 also get all of
    the mass below and above. Summed over pixels: ``(B,)``."""
    for g, log_s in _seeded(24, (math.log(0.05), math.log(0.15), math.log(0.02))):
        k = torch.randint(0, 256, (3, 1, 6, 6), generator=g)
        k[:, :, 0] = 0                                          # a row of black pixels,
        k[:, :, -1] = 255                                       # and a row of white ones
        x = k.float() / 255
        log_sigma = log_s + 0.3 * torch.randn(x.shape, generator=g)
        # means within a few sigma of the data (as in a trained model), a little outside [0, 1] at the ends
        mean = (x + 1.5 * log_sigma.exp() * torch.randn(x.shape, generator=g)).clamp(-0.05, 1.05)
        out = _as_tensor(answer(fn, x, mean, log_sigma)).detach().double()
        per_pixel = _discretized(x, mean, log_sigma)
        image = lambda per_pixel: per_pixel.sum(dim=(1, 2, 3))  # noqa: E731   a log-probability per image
        expected = image(per_pixel)
        if out.shape != expected.shape:
            return diagnose(None, [
                (out.shape == x.shape, f"shape {tuple(out.shape)}: one number per pixel. Hint: sum over (1, 2, 3), "
                 "one log-probability per image"),
                (out.numel() == 1, "one number: that is over the whole batch. Hint: sum over the pixels of "
                 "each image only, shape (B,)"),
            ], otherwise=f"shape {tuple(out.shape)}, expected {tuple(expected.shape)}")
        density = torch.distributions.Normal(mean.double(), log_sigma.double().exp()).log_prob(x.double())
        expect(out, expected, [
            (bool(torch.isnan(out).any() or torch.isinf(out).any()), "got nan or inf. Hint: sigma = log_sigma.exp() (a "
             "negative sigma makes the difference of the two CDFs negative); and the difference can round to 0 in "
             "float32: compute it in float64, or clamp it to a tiny positive number"),
            (per_pixel.mean(dim=(1, 2, 3)), "averaged over pixels. Hint: a log-probability of "
             "an image sums over its pixels"),
            (image(_discretized(x, mean, log_sigma, edges=False)), "the black and white pixels get too little mass: "
             "levels 0 and 255 also take the Gaussian's tails below 0 and above 1. Hint: their probabilities are "
             "Phi(upper edge) and 1 - Phi(lower edge)"),
            (either(image(density - math.log(255)), image(density)), "that uses the density at x (times the bin "
             "width): close for wide Gaussians but not a probability, and wrong where the bin matters. Hint: the mass "
             "of a bin is Phi(upper edge) - Phi(lower edge)"),
            (image(_discretized(x, mean, log_sigma, width=1 / 256)), "bins of width 1/256: the 256 levels k / 255 are "
             "1/255 apart. Hint: the edges are (k - 1/2) / 255 and (k + 1/2) / 255"),
            (torch.allclose(out, expected, rtol=1e-3, atol=0.05), "close, but not within rounding: float32 loses the "
             "small difference of two CDFs near 1. Hint: compute in float64 (x.double(), ...)"),
            (bool((out > 0).any()), "positive values: a log-probability of discrete values is at most 0. Hint: return "
             "log P, summed over pixels"),
        ], otherwise="wrong value. Hint: per pixel log[Phi((x + 1/510 - mean) / sigma) - Phi((x - 1/510 - mean) / "
                     "sigma)], with the end levels taking the tails; sum over pixels",
           near=lambda a, b: bool(torch.allclose(a, b, rtol=1e-5, atol=1e-3)))
