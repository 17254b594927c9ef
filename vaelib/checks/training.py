"""Checks for notebook 05 (training a VAE)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._feedback import _report, _call, _as_tensor

__all__ = ['check_vae_loss']


def check_vae_loss(fn) -> bool:
    """``fn(logits, x, mu, logvar)``: the VAE loss to minimize, minus the ELBO averaged over the batch
    (Bernoulli reconstruction summed over pixels, Gaussian KL summed over latent dimensions)."""
    name = "check_vae_loss"
    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        logits = torch.randn(6, 1, 28, 28, generator=g) * 2
        x = torch.bernoulli(torch.rand(6, 1, 28, 28, generator=g), generator=g)
        mu, logvar = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
        out, error = _call(name, fn, logits.clone(), x.clone(), mu.clone(), logvar.clone())
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(-1)
        expected = (rec + kl).mean()
        if out.dim() > 0 and out.numel() > 1:
            return _report(name, False, f"shape {tuple(out.shape)}: the loss is one number. Hint: average the "
                                        "per-image losses over the batch")
        value = out.reshape(())
        near = lambda a: torch.allclose(value.float(), a.float(), rtol=1e-4, atol=1e-3)  # noqa: E731
        if near(expected):
            continue
        if near(-expected):
            return _report(name, False, "that is the ELBO itself. Hint: the loss to minimize is minus the ELBO")
        if near(rec.mean()):
            return _report(name, False, "the KL term is missing. Hint: loss = reconstruction + KL")
        if near((rec - kl).mean()):
            return _report(name, False, "the KL has the wrong sign. Hint: the KL is a penalty, add it")
        bce_mean = F.binary_cross_entropy_with_logits(logits, x)
        if near(bce_mean + kl.mean()) or near(bce_mean + kl.sum()):
            return _report(name, False, "the reconstruction term is averaged over pixels: that weighs the KL 784 "
                                        "times too much. Hint: sum over pixels (reduction='sum', then / batch)")
        if near(rec.sum() + kl.sum()):
            return _report(name, False, "you sum over the batch. Hint: average over the batch instead")
        return _report(name, False, "wrong value. Hint: mean over the batch of [BCE summed over pixels + KL "
                                    "summed over latent dimensions]")
    return _report(name, True, "correct on 3 random batches")
