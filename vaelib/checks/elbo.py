"""Checks for notebook 02 (latent-variable models, the ELBO, importance weighting)."""
from __future__ import annotations

import math

import torch

from ._feedback import _report, _call, _close, _as_tensor

__all__ = ['check_iwae_from_log_weights']


def check_iwae_from_log_weights(fn) -> bool:
    """``fn(log_w)``: the importance-weighted bound from log weights ``(k, B)``: log mean_k exp(log_w), ``(B,)``."""
    name = "check_iwae_from_log_weights"
    g = torch.Generator().manual_seed(3)
    for k in (1, 7, 50):
        log_w = torch.randn(k, 6, generator=g) * 3 - 400  # realistic magnitudes: exp() underflows to 0
        out, error = _call(name, fn, log_w.clone())
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        expected = torch.logsumexp(log_w, 0) - math.log(k)
        if _close(out, expected, 1e-3):
            continue
        if out.shape == expected.shape and not torch.isfinite(out).all():
            return _report(name, False, "you get -inf: exp(-400) underflows. Hint: use torch.logsumexp, "
                                        "which subtracts the maximum before exponentiating")
        if k > 1 and out.shape == expected.shape and _close(out, torch.logsumexp(log_w, 0), 1e-3):
            return _report(name, False, "that is log of the sum, not of the mean. Hint: subtract log k")
        if k > 1 and out.shape == expected.shape and _close(out, log_w.mean(0), 1e-3):
            return _report(name, False, "that is the mean of the log weights: the ELBO, not the IWAE bound. "
                                        "Hint: average the weights, then take the log")
        return _report(name, False, f"wrong values for k={k}. Hint: log (1/k) sum_i exp(log_w_i), per example")
    return _report(name, True, "correct for k = 1, 7 and 50, and numerically stable")
