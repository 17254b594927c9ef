"""Checks for notebook 00 (images as data, the Bernoulli likelihood)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._feedback import _report, _call, _close, _as_tensor

__all__ = ['check_bernoulli_log_likelihood']


def check_bernoulli_log_likelihood(fn) -> bool:
    """``fn(logits, x)``: log p(x|z) under a Bernoulli per pixel, summed over pixels: ``(B,1,28,28) -> (B,)``."""
    name = "check_bernoulli_log_likelihood"
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        logits = torch.randn(4, 1, 28, 28, generator=g) * 3
        x = torch.bernoulli(torch.rand(4, 1, 28, 28, generator=g), generator=g)
        out, error = _call(name, fn, logits.clone(), x.clone())
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        per_pixel = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        expected = per_pixel.sum((1, 2, 3))
        if _close(out, expected, 1e-3):
            continue
        if out.shape == expected.shape and _close(out, -expected, 1e-3):
            return _report(name, False, "the sign is flipped: that is the binary cross-entropy, minus the "
                                        "log-likelihood. Hint: a log-probability of 0/1 data is <= 0")
        if out.shape == expected.shape and _close(out, per_pixel.mean((1, 2, 3)), 1e-3):
            return _report(name, False, "you average over pixels. Hint: the pixels are independent given z, "
                                        "so their log-probabilities add up: sum over them")
        if out.dim() == 0:
            return _report(name, False, "a single number for the whole batch. Hint: one log-likelihood per "
                                        "image, summed over its pixels (dims 1, 2, 3)")
        if out.shape == expected.shape:
            return _report(name, False, "wrong values. Hint: with p = sigmoid(logits), log p(x) = "
                                        "x log p + (1 - x) log(1 - p), summed over pixels")
        return _report(name, False, f"shape {tuple(out.shape)}; expected one value per image, {tuple(expected.shape)}")
    return _report(name, True, "correct on 3 random batches")
