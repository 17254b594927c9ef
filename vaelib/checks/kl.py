"""Checks for notebook 03 (KL divergence)."""
from __future__ import annotations

import torch

from ._feedback import _report, _call, _close, _as_tensor, _cases

__all__ = ['check_gaussian_kl']


def check_gaussian_kl(fn) -> bool:
    """``fn(mu, logvar)``: KL(N(mu, exp(logvar)) || N(0, I)) per example, ``(B, D) -> (B,)``."""
    name = "check_gaussian_kl"
    for mu, logvar in _cases():
        out, error = _call(name, fn, mu.clone(), logvar.clone())
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        per_dim = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)
        expected = per_dim.sum(-1)
        if _close(out, expected):
            continue
        if out.shape == per_dim.shape and _close(out, per_dim):
            return _report(name, False, "you return one KL per latent dimension, (B, D). Hint: the KL of the "
                                        "whole latent vector sums over the dimensions: .sum(-1)")
        if out.shape == expected.shape and _close(out, -expected):
            return _report(name, False, "the sign is flipped. Hint: a KL divergence is never negative")
        if out.shape == expected.shape and _close(out, per_dim.mean(-1)):
            return _report(name, False, "you average over latent dimensions. Hint: sum over them instead")
        if out.shape == expected.shape and _close(out, 2 * expected):
            return _report(name, False, "twice the right value. Hint: the closed form has a factor 1/2")
        var_as_logvar = 0.5 * (mu.pow(2) + logvar - torch.log(logvar.abs().clamp_min(1e-12)) - 1).sum(-1)
        if out.shape == expected.shape and (_close(out, var_as_logvar) or not torch.isfinite(out).all()):
            return _report(name, False, "you used logvar as if it were the variance. Hint: the variance is "
                                        "logvar.exp(), and log(variance) is logvar itself")
        if out.dim() == 0:
            return _report(name, False, f"a single number; expected one KL per example, shape {tuple(expected.shape)}")
        return _report(name, False, f"wrong values (shape {tuple(out.shape)}, expected {tuple(expected.shape)}). "
                                    "Hint: write KL_j = 1/2 (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1), then sum over j")
    return _report(name, True, "correct on 3 random batches")
