"""The evidence lower bound (ELBO) and the importance-weighted bound (IWAE).

For one image x, with encoder q(z|x), decoder p(x|z) and prior p(z):

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))  <=  log p(x)

The first term (the *reconstruction* term) is estimated with one reparameterized sample; the KL is
computed in closed form when the prior is N(0, I) and by Monte Carlo otherwise. A beta-VAE trains on
``reconstruction - beta * KL`` instead; that objective is a bound on log p(x) only for beta = 1.

Convention, everywhere in vaelib: **sum over pixels and latent dimensions, mean over the batch**.
Every per-example quantity below has shape ``(B,)``; only ``ELBO.loss`` averages over the batch.
(Averaging over pixels as well, as ``F.mse_loss``'s default does, divides the reconstruction term by
784 and so weighs the KL 784 times more: a beta of 784 that nobody asked for.)

The importance-weighted bound with k samples z_i ~ q(z|x),

    L_k(x) = log (1/k) sum_i p(x, z_i) / q(z_i|x),

satisfies ELBO <= L_1 ... <= L_k <= log p(x) in expectation and tends to log p(x) as k grows
(Burda et al. 2015). It is what papers report as the "NLL" of a VAE, with k = 5000.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.distributions import Independent, Normal

from .kl import gaussian_kl_per_dim, monte_carlo_kl
from .reparameterization import reparameterize
from .validation import whole_number

__all__ = ["ELBO", "elbo", "iwae_bound", "log_importance_weights", "posterior"]


@dataclass
class ELBO:
    """The ELBO of a batch and its parts, one value per example.

    Attributes:
        reconstruction: ``(B,)`` log p(x|z) for one z ~ q(z|x), summed over pixels.
        kl: ``(B,)`` KL(q(z|x) || p(z)), summed over latent dimensions.
        beta: the weight on the KL in the training objective.
        kl_per_dim: ``(B, D)`` the KL of each latent dimension (closed form only, else ``None``).
    """

    reconstruction: torch.Tensor
    kl: torch.Tensor
    beta: float = 1.0
    kl_per_dim: torch.Tensor | None = None

    @property
    def elbo(self) -> torch.Tensor:
        """``(B,)`` reconstruction - KL: the bound on log p(x), whatever beta is."""
        return self.reconstruction - self.kl

    @property
    def objective(self) -> torch.Tensor:
        """``(B,)`` reconstruction - beta * KL: what training maximizes."""
        return self.reconstruction - self.beta * self.kl

    @property
    def loss(self) -> torch.Tensor:
        """Scalar to minimize: minus the objective, averaged over the batch."""
        return -self.objective.mean()

    def __repr__(self) -> str:
        return (f"ELBO(elbo={self.elbo.mean().item():.2f}, reconstruction={self.reconstruction.mean().item():.2f}, "
                f"kl={self.kl.mean().item():.2f}, beta={self.beta:g}, batch={len(self.kl)})")


def posterior(mu: torch.Tensor, logvar: torch.Tensor) -> Independent:
    """q(z|x) = N(mu, diag(exp(logvar))) as a distribution over the latent vector (event dim D)."""
    return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)


def elbo(model, x: torch.Tensor, beta: float = 1.0, **cond) -> ELBO:
    """One-sample ELBO of ``model`` (a :class:`vaelib.vae.VAE`) on images ``x`` ``(B, 1, 28, 28)``.

    ``cond`` passes conditioning (``y=labels``) to a conditional model.
    """
    mu, logvar = model.encoder(x, **cond)
    # Under bf16 autocast the encoder's outputs are bfloat16; the KL and z are computed in float32.
    mu, logvar = mu.float(), logvar.float()
    z = reparameterize(mu, logvar)
    reconstruction = model.decode(z, **cond).log_prob(x)
    if getattr(model.prior, "analytic_kl", False):
        kl_per_dim = gaussian_kl_per_dim(mu, logvar)
        kl = kl_per_dim.sum(-1)
    else:
        kl_per_dim = None
        kl = monte_carlo_kl(posterior(mu, logvar), model.prior(), z=z)
    return ELBO(reconstruction, kl, float(beta), kl_per_dim)


def log_importance_weights(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                           **cond) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log_w, z)``: samples z_i ~ q(z|x), ``(k, B, D)``, and their log weights ``(k, B)``,
    log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x).

    The log-mean-exp of the weights over the k samples is L_k; their plain mean is a k-sample ELBO estimate.
    """
    mu, logvar = model.encoder(x, **cond)
    mu, logvar = mu.float(), logvar.float()  # float32 log weights even under bf16 autocast
    eps = torch.randn((k, *mu.shape), device=mu.device, dtype=mu.dtype, generator=generator)
    z = reparameterize(mu, logvar, eps)  # (k, B, D)
    batch = x.shape[0]
    cond_rep = {name: v.repeat(k, *([1] * (v.dim() - 1))) for name, v in cond.items()}
    x_rep = x.expand(k, *x.shape).reshape(k * batch, *x.shape[1:])
    log_px = model.decode(z.reshape(k * batch, -1), **cond_rep).log_prob(x_rep).view(k, batch)
    return log_px + model.prior().log_prob(z) - posterior(mu, logvar).log_prob(z), z


def iwae_bound(model, x: torch.Tensor, k: int, chunk_size: int | None = None,
               generator: torch.Generator | None = None, **cond) -> torch.Tensor:
    """Importance-weighted bound L_k(x), ``(B,)`` in nats, with ``k`` samples per image.

    The k samples are drawn ``chunk_size`` at a time and combined with a running log-sum-exp, so
    memory grows with ``chunk_size * B`` decoded images, never with ``k``: k = 5000 on a GPU and
    k = 100 on a CPU both fit. By default a chunk decodes about 16,384 images at once (fewer when
    the decoder outputs several channels per pixel, as the ``pixelcnn`` likelihood's does).
    Wrap the call in ``torch.no_grad()`` for evaluation; with gradients it is the IWAE objective.
    """
    k = whole_number("k", k)
    if chunk_size is None:
        # an autoregressive decoder holds C feature maps per decoded image, not one
        channels = getattr(model.likelihood, "params_channels", 1)
        chunk_size = max(1, 16384 // (x.shape[0] * channels))
    total = None
    for start in range(0, k, chunk_size):
        log_w, _ = log_importance_weights(model, x, min(chunk_size, k - start), generator, **cond)
        chunk_lse = torch.logsumexp(log_w, dim=0)
        total = chunk_lse if total is None else torch.logaddexp(total, chunk_lse)
    return total - math.log(k)
