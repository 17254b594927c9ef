"""Approximate posteriors q(z|x): the distribution an encoder's output describes.

The encoder network maps an image to the parameters of q(z|x); a posterior turns those parameters
into a ``torch.distributions`` object over the latent vector (event shape ``(D,)``, batch ``(B,)``)
that the ELBO samples with ``rsample`` and scores with ``log_prob``.

The VAE of Kingma and Welling uses a diagonal Gaussian, q(z|x) = N(mu, diag(exp(logvar))): the
encoder outputs a mean and a *log*-variance, because any real number is a valid log-variance (no
positivity constraint for the optimizer to break). :class:`DiagonalGaussian` keeps ``mu`` and
``logvar`` so that the KL against N(0, I) can use its closed form (vaelib.kl).
"""
from __future__ import annotations

import torch
from torch.distributions import Independent, Normal

from .reparameterization import reparameterize

__all__ = ["DiagonalGaussian"]


class DiagonalGaussian(Independent):
    """N(mu, diag(exp(logvar))) over vectors of ``D`` numbers: batch shape ``mu.shape[:-1]``, event ``(D,)``.

    ``rsample`` is the reparameterization z = mu + exp(logvar / 2) * eps and takes an optional
    ``generator`` (for reproducible importance sampling).
    """

    def __init__(self, mu: torch.Tensor, logvar: torch.Tensor):
        self.mu, self.logvar = mu, logvar
        super().__init__(Normal(mu, torch.exp(0.5 * logvar)), 1)

    def rsample(self, sample_shape=torch.Size(), generator: torch.Generator | None = None) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.mu.shape
        if generator is None and not sample_shape:
            eps = torch.randn_like(self.mu)
        else:
            eps = torch.randn(shape, device=self.mu.device, dtype=self.mu.dtype, generator=generator)
        return reparameterize(self.mu, self.logvar, eps)

    def expand(self, batch_shape, _instance=None):
        return DiagonalGaussian(self.mu.expand(*batch_shape, self.mu.shape[-1]),
                                self.logvar.expand(*batch_shape, self.logvar.shape[-1]))
