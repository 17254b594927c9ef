"""The reparameterization trick: a sample of N(mu, sigma^2) written as mu + sigma * eps.

Sampling z ~ q(z|x) directly gives no gradient with respect to q's parameters. Writing
z = mu + exp(logvar / 2) * eps with eps ~ N(0, I) moves the randomness into eps, so z is a
differentiable function of (mu, logvar) and backpropagation reaches the encoder. This is what
``torch.distributions.Normal.rsample`` does; notebook 04 compares it with the score-function
estimator. The encoder outputs a log-variance so that any real number is a valid output.
"""
from __future__ import annotations

import torch

__all__ = ["reparameterize"]


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) unless given. Shapes ``(..., D)`` broadcast."""
    if eps is None:
        eps = torch.randn_like(mu)
    return mu + torch.exp(0.5 * logvar) * eps
