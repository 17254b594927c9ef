"""Checks for notebook 04 (the reparameterization trick)."""
from __future__ import annotations

import torch

from ._feedback import _report, _call, _close, _as_tensor, _cases

__all__ = ['check_reparameterize']


def check_reparameterize(fn) -> bool:
    """``fn(mu, logvar, eps)``: the reparameterized sample z = mu + exp(logvar / 2) * eps."""
    name = "check_reparameterize"
    for mu, logvar in _cases(1):
        eps = torch.randn_like(mu)
        mu_, logvar_ = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
        out, error = _call(name, fn, mu_, logvar_, eps)
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        expected = mu + torch.exp(0.5 * logvar) * eps
        if _close(out.detach(), expected):
            if out.grad_fn is None or not out.requires_grad:
                return _report(name, False, "the values are right but no gradient flows to mu and logvar. Hint: "
                                            "build z from mu and logvar with torch operations, no .detach()/.item()")
            continue
        if _close(out.detach(), mu + torch.exp(logvar) * eps):
            return _report(name, False, "you scale eps by the variance. Hint: the standard deviation is exp(logvar / 2)")
        if _close(out.detach(), mu + logvar * eps):
            return _report(name, False, "you scale eps by logvar itself. Hint: sigma = exp(logvar / 2)")
        if _close(out.detach(), torch.exp(0.5 * logvar) * eps):
            return _report(name, False, "the mean is missing. Hint: shift the scaled noise by mu")
        return _report(name, False, "wrong values. Hint: z = mu + sigma * eps with sigma = exp(logvar / 2), "
                                    "using the eps you are given")
    return _report(name, True, "correct, and gradients reach mu and logvar")
