"""Priors p(z) over the latent vector.

A prior is a module whose ``forward()`` returns a ``torch.distributions`` object with the latent
vector as its event, so ``log_prob(z)`` of ``z`` shaped ``(..., D)`` returns ``(...)``. Being a
module lets a prior hold buffers (it follows the model across devices) or learned parameters.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Independent, Normal

__all__ = ["StandardNormalPrior"]


class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I) in ``latent_dim`` dimensions: the prior of the original VAE."""

    analytic_kl = True  # the Gaussian KL of vaelib.kl has a closed form against this prior

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))

    def forward(self) -> Independent:
        return Independent(Normal(self.loc, self.scale), 1)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}"
