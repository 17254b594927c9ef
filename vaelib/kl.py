"""KL divergence between the encoder's Gaussian q(z|x) and the prior p(z).

For q = N(mu, diag(sigma^2)) and p = N(0, I), per latent dimension j:

    KL_j = 1/2 * (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)

and the KL of the whole latent vector is the sum over j (the dimensions are independent).
Notebook 03 derives it step by step. Where q or p has no closed form (a learned prior, say), the
Monte-Carlo estimate E_q[log q(z) - log p(z)] is unbiased and is what the ELBO falls back to.
"""
from __future__ import annotations

import torch
from torch.distributions import Distribution

__all__ = ["gaussian_kl", "gaussian_kl_per_dim", "monte_carlo_kl"]


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) for each latent dimension: shape of ``mu``, ``(B, D)``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per example, summed over the ``D`` latent dimensions: ``(B, D) -> (B,)``."""
    return gaussian_kl_per_dim(mu, logvar).sum(-1)


def monte_carlo_kl(q: Distribution, p: Distribution, num_samples: int = 1,
                   z: torch.Tensor | None = None) -> torch.Tensor:
    """Unbiased estimate of KL(q || p) = E_q[log q(z) - log p(z)], averaged over samples.

    ``q`` and ``p`` must have the latent vector as their event (``Independent`` over the last
    dimension), so ``log_prob`` is already summed over latent dimensions; the result has q's batch
    shape, ``(B,)``. Pass ``z`` (``(S, B, D)`` or ``(B, D)``) to reuse samples already drawn.
    """
    if z is None:
        z = q.rsample((num_samples,))
    return (q.log_prob(z) - p.log_prob(z)).reshape(-1, *q.batch_shape).mean(0)
