"""Approximate posteriors q(z|x): the distribution an encoder's output describes.

The encoder network maps an image to the parameters of q(z|x); a posterior turns those parameters
into a ``torch.distributions`` object over the latent vector (event shape ``(D,)``, batch ``(B,)``)
that the ELBO samples with ``rsample`` and scores with ``log_prob``.

The VAE of Kingma and Welling uses a diagonal Gaussian, q(z|x) = N(mu, diag(exp(logvar))): the
encoder outputs a mean and a *log*-variance, because any real number is a valid log-variance (no
positivity constraint for the optimizer to break). :class:`DiagonalGaussian` keeps ``mu`` and
``logvar`` so that the KL against N(0, I) can use its closed form (vaelib.kl).

A diagonal Gaussian cannot express correlations between the dimensions of z, nor skew or several
modes: the *approximation gap* log p(x) - ELBO that remains even with the best encoder. A
normalizing flow pushes a simple sample through invertible maps f_1..f_T,
z_T = f_T(...f_1(z_0)), and by the change of variables

    log q(z_T|x) = log q(z_0|x) - sum_t log |det d f_t / d z_{t-1}|,

so any flow whose Jacobian determinant is cheap gives a richer q. :class:`IAFPosterior` is the
inverse autoregressive flow (IAF) of Kingma et al. (2016): each step shifts and scales every
dimension by amounts computed, by a masked network (MADE), from the dimensions before it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Independent, Normal, TransformedDistribution, constraints
from torch.distributions.transforms import Transform

from .reparameterization import reparameterize

__all__ = ["DiagonalGaussian", "MADE", "IAFStep", "FlowPosterior", "IAFPosterior", "POSTERIORS"]

POSTERIORS = ("gaussian", "iaf")


class DiagonalGaussian(Independent):
    """N(mu, diag(exp(logvar))) over vectors of ``D`` numbers: batch shape ``mu.shape[:-1]``, event ``(D,)``.

    ``rsample`` is the reparameterization z = mu + exp(logvar / 2) * eps and takes an optional
    ``generator`` (for reproducible importance sampling), or a list of generators, one per image of
    a ``(B, D)`` batch, so that each image's samples do not depend on the others in its batch.
    """

    def __init__(self, mu: torch.Tensor, logvar: torch.Tensor):
        self.mu, self.logvar = mu, logvar
        super().__init__(Normal(mu, torch.exp(0.5 * logvar)), 1)

    def rsample(self, sample_shape=torch.Size(), generator: torch.Generator | None = None) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.mu.shape
        if generator is None and not sample_shape:
            eps = torch.randn_like(self.mu)
        elif isinstance(generator, (list, tuple)):  # one generator per image: eps[..., b, :] from generator[b]
            each = torch.Size(sample_shape) + self.mu.shape[1:]
            eps = torch.stack([torch.randn(each, device=self.mu.device, dtype=self.mu.dtype, generator=g)
                               for g in generator], dim=len(sample_shape))
        else:
            eps = torch.randn(shape, device=self.mu.device, dtype=self.mu.dtype, generator=generator)
        return reparameterize(self.mu, self.logvar, eps)

    def expand(self, batch_shape, _instance=None):
        return DiagonalGaussian(self.mu.expand(*batch_shape, self.mu.shape[-1]),
                                self.logvar.expand(*batch_shape, self.logvar.shape[-1]))


# ---------------------------------------------------------------------------------------------------
# Inverse autoregressive flow (Kingma et al. 2016)
# ---------------------------------------------------------------------------------------------------

class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (the connections MADE allows)."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.float())

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """An autoregressive network (Germain et al. 2015): outputs ``(m, s)``, each ``(..., D)``, where
    output i depends only on the inputs that come before i in the ``order`` (and on the context ``h``).

    Each unit gets a degree; a connection is kept only from lower to higher degree (strictly
    higher into the outputs), so no path leads from input j to output i unless j comes first.
    """

    def __init__(self, dim: int, hidden: int, context_dim: int = 0, reverse: bool = False):
        super().__init__()
        order = torch.arange(1, dim + 1)
        if reverse:
            order = order.flip(0)
        self.register_buffer("order", order)
        hidden_degrees = torch.arange(hidden) % max(dim - 1, 1) + 1
        self.inp = MaskedLinear(dim, hidden, hidden_degrees[:, None] >= order[None, :])
        self.mid = MaskedLinear(hidden, hidden, hidden_degrees[:, None] >= hidden_degrees[None, :])
        out_mask = order[:, None] > hidden_degrees[None, :]
        self.out = MaskedLinear(hidden, 2 * dim, torch.cat([out_mask, out_mask]))
        self.context = nn.Linear(context_dim, hidden) if context_dim else None

    def forward(self, z: torch.Tensor, h: torch.Tensor | None = None):
        a = self.inp(z)
        if self.context is not None and h is not None:
            a = a + self.context(h)
        a = F.elu(self.mid(F.elu(a)))
        m, s = self.out(a).chunk(2, dim=-1)
        return m, s


class IAFStep(Transform):
    """One step of IAF: z' = sigma * z + (1 - sigma) * m with (m, s) = MADE(z, h), sigma = sigmoid(s + 1).

    The Jacobian is triangular (output i depends on z_<i and on z_i through sigma_i * z_i), so
    log |det| = sum_i log sigma_i. The +1 starts sigma near 0.73: the step begins close to the identity.
    The inverse (only needed for a z the flow did not produce) is computed one dimension at a time.
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, made: MADE, h: torch.Tensor | None):
        super().__init__(cache_size=1)
        self.made, self.h = made, h
        self._log_sigma = None

    def _gate(self, z):
        m, s = self.made(z, self.h)
        return m, F.logsigmoid(s + 1.0)

    def _call(self, z):
        m, log_sigma = self._gate(z)
        self._log_sigma = (z, log_sigma)
        sigma = log_sigma.exp()
        return sigma * z + (1 - sigma) * m

    def _inverse(self, y):
        z = y
        for _ in range(y.shape[-1]):  # dimension i is exact after i passes (MADE's order)
            m, log_sigma = self._gate(z)
            sigma = log_sigma.exp()
            z = (y - (1 - sigma) * m) / sigma
        return z

    def log_abs_det_jacobian(self, z, y):
        if self._log_sigma is not None and self._log_sigma[0] is z:
            log_sigma = self._log_sigma[1]
        else:
            log_sigma = self._gate(z)[1]
        return log_sigma.sum(-1)


class FlowPosterior(TransformedDistribution):
    """q(z|x): a diagonal Gaussian pushed through invertible steps; ``rsample`` takes a ``generator``.

    ``log_prob`` of a z this distribution just drew is exact and cheap (each step remembers its
    last input); ``mean`` is the flow applied to the Gaussian's mean (a point estimate: the flow's
    exact mean has no closed form).
    """

    def __init__(self, base: DiagonalGaussian, steps):
        super().__init__(base, list(steps))

    def rsample(self, sample_shape=torch.Size(), generator: torch.Generator | None = None) -> torch.Tensor:
        z = self.base_dist.rsample(sample_shape, generator=generator)
        for step in self.transforms:
            z = step(z)
        return z

    @property
    def mean(self) -> torch.Tensor:
        z = self.base_dist.mu
        for step in self.transforms:
            z = step(z)
        return z


class IAFPosterior(nn.Module):
    """The IAF posterior head: ``(mu, logvar, h) -> q(z|x)``, ``steps`` IAF steps of width ``hidden``.

    ``h`` is a context vector the encoder computes alongside (mu, logvar); every step sees it. The
    steps alternate the order of the dimensions, so each dimension is transformed given the others.
    """

    def __init__(self, latent_dim: int, steps: int = 2, hidden: int = 320, context_dim: int = 0):
        super().__init__()
        self.steps = nn.ModuleList([MADE(latent_dim, hidden, context_dim, reverse=bool(i % 2)) for i in range(steps)])

    def forward(self, mu: torch.Tensor, logvar: torch.Tensor, h: torch.Tensor | None = None) -> FlowPosterior:
        h = None if h is None else h.to(mu.dtype)
        return FlowPosterior(DiagonalGaussian(mu, logvar), [IAFStep(made, h) for made in self.steps])
