"""Bounds on log p(x): the evidence lower bound (ELBO) and the importance-weighted bound (IWAE).

For one image x, with encoder q(z|x), decoder p(x|z) and prior p(z):

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))  <=  log p(x)

The first term (the *reconstruction* term) is estimated with one reparameterized sample; the KL is
computed in closed form when q is a diagonal Gaussian and the prior is N(0, I), and by Monte Carlo
otherwise. A beta-VAE trains on ``reconstruction - beta * KL`` instead; that objective is a bound
on log p(x) only for beta = 1.

Convention, everywhere in vaelib: **sum over pixels and latent dimensions, mean over the batch**.
Every per-example quantity below has shape ``(B,)``; only ``ELBOTerms.loss`` averages over the batch.
(Averaging over the 784 pixels as well, as ``F.mse_loss``'s default does, divides the
reconstruction term by 784 while the KL stays summed: the same optimum as a beta of 784 that
nobody asked for.)

The importance-weighted bound with k samples z_i ~ q(z|x),

    L_k(x) = log (1/k) sum_i p(x, z_i) / q(z_i|x),

satisfies ELBO <= L_1 ... <= L_k <= log p(x) in expectation and tends to log p(x) as k grows
(Burda et al. 2015). It is what papers report as the "NLL" of a VAE, with k = 5000.

Old names (vaelib 0.1): ``ELBO`` for :class:`ELBOTerms`, ``elbo`` for :func:`elbo_terms`,
``posterior`` for :func:`diagonal_gaussian`, and ``vaelib.elbo`` for this module still work, with a
``DeprecationWarning``, until vaelib 0.3.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .kl import gaussian_kl_per_dim, monte_carlo_kl
from .posteriors import DiagonalGaussian, FlowPosterior
from .deprecation import deprecated, module_getattr
from .validation import whole_number

__all__ = ["ELBOTerms", "elbo_terms", "iwae_bound", "log_importance_weights", "diagonal_gaussian"]


@dataclass
class ELBOTerms:
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
    def value(self) -> torch.Tensor:
        """``(B,)`` reconstruction - KL: the bound on log p(x), whatever beta is."""
        return self.reconstruction - self.kl

    @property
    def elbo(self) -> torch.Tensor:
        """Deprecated (vaelib 0.1's name): :attr:`value`."""
        deprecated("ELBOTerms.elbo", "ELBOTerms.value")
        return self.value

    @property
    def objective(self) -> torch.Tensor:
        """``(B,)`` reconstruction - beta * KL: what training maximizes."""
        return self.reconstruction - self.beta * self.kl

    @property
    def loss(self) -> torch.Tensor:
        """Scalar to minimize: minus the objective, averaged over the batch."""
        return -self.objective.mean()

    def __repr__(self) -> str:
        return (f"ELBOTerms(elbo={self.value.mean().item():.2f}, reconstruction={self.reconstruction.mean().item():.2f}, "
                f"kl={self.kl.mean().item():.2f}, beta={self.beta:g}, batch={len(self.kl)})")


def _labels(model, y, n: int):
    """``y`` as ``n`` labels on the model's device, through the model's own :meth:`vaelib.VAE.labels`
    (an int, a sequence or a tensor; ``None`` for an unconditional model). A model without that
    method gets ``y`` as it was given."""
    labels = getattr(model, "labels", None)
    return labels(y, n) if callable(labels) else y


def diagonal_gaussian(mu: torch.Tensor, logvar: torch.Tensor) -> DiagonalGaussian:
    """q(z|x) = N(mu, diag(exp(logvar))) as a distribution over the latent vector (event dim D)."""
    return DiagonalGaussian(mu, logvar)


def elbo_terms(model, x: torch.Tensor, beta: float = 1.0, y=None) -> ELBOTerms:
    """One-sample ELBO of ``model`` (a :class:`vaelib.VAE`) on images ``x`` ``(B, C, H, W)``.

    ``y``: the labels of a conditional model, ``(B,)`` as a tensor or a sequence, or one int for all
    (ignored by an unconditional model).
    """
    y = _labels(model, y, len(x))
    q = model.encode(x, y)
    z = q.rsample()
    reconstruction = model.decode(z, y).log_prob(x)
    prior = model.prior()
    if isinstance(q, DiagonalGaussian) and getattr(model.prior, "analytic_kl", False):
        kl_per_dim = gaussian_kl_per_dim(q.mu, q.logvar)
        kl = kl_per_dim.sum(-1)
    else:
        kl_per_dim = None
        kl = monte_carlo_kl(q, prior, z=z)
    return ELBOTerms(reconstruction, kl, float(beta), kl_per_dim)


def log_importance_weights(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                           y=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log_w, z)``: samples z_i ~ q(z|x), ``(k, B, D)``, and their log weights ``(k, B)``,
    log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x).

    The log-mean-exp of the weights over the k samples is L_k; their plain mean is a k-sample ELBO estimate.
    ``y``: labels as :func:`elbo_terms` takes them.
    """
    own = getattr(type(model), "log_importance_weights", None)
    if own is not None:        # a model with latents of its own (vaelib.hierarchical) computes its weights itself
        return model.log_importance_weights(x, k, generator=generator, y=y)
    y = _labels(model, y, len(x))
    q = model.encode(x, y)
    z = q.rsample((k,), generator=generator) if isinstance(q, (DiagonalGaussian, FlowPosterior)) else q.rsample((k,))
    batch = x.shape[0]
    y_rep = None if y is None else y.repeat(k)
    x_rep = x.expand(k, *x.shape).reshape(k * batch, *x.shape[1:])
    log_px = model.decode(z.reshape(k * batch, -1), y_rep).log_prob(x_rep).view(k, batch)
    return log_px + model.prior().log_prob(z) - q.log_prob(z), z


def iwae_bound(model, x: torch.Tensor, k: int, chunk_size: int | None = None,
               generator: torch.Generator | None = None, y=None) -> torch.Tensor:
    """Importance-weighted bound L_k(x), ``(B,)`` in nats, with ``k`` samples per image.

    The k samples are drawn ``chunk_size`` at a time and combined with a running log-sum-exp, so
    memory grows with ``chunk_size * B`` decoded images, never with ``k``: k = 5000 on a GPU and
    k = 100 on a CPU both fit. By default a chunk decodes about 16,384 MNIST-sized outputs at once
    (fewer for larger images, or when the decoder outputs several channels per pixel, as the
    ``pixelcnn`` likelihood's does). Wrap the call in ``torch.no_grad()`` for evaluation; with
    gradients it is the IWAE objective. ``y``: labels as :func:`elbo_terms` takes them.
    """
    k = whole_number("k", k)
    y = _labels(model, y, len(x))
    if chunk_size is None:
        # the decoder's output per image, relative to one 28x28 map: a chunk holds ~16,384 of those
        likelihood = getattr(model, "likelihood", None)
        channels = likelihood.decoder_channels(x.shape[1]) if hasattr(likelihood, "decoder_channels") else 1
        size = channels * x.shape[-2] * x.shape[-1] / 784
        chunk_size = max(1, int(16384 // (x.shape[0] * size)))
    total = None
    for start in range(0, k, chunk_size):
        log_w, _ = log_importance_weights(model, x, min(chunk_size, k - start), generator, y=y)
        chunk_lse = torch.logsumexp(log_w, dim=0)
        total = chunk_lse if total is None else torch.logaddexp(total, chunk_lse)
    return total - math.log(k)


RENAMED = {"ELBO": "ELBOTerms", "elbo": "elbo_terms", "posterior": "diagonal_gaussian"}  # vaelib 0.1's names
__getattr__ = module_getattr("vaelib.bounds", RENAMED, globals())
