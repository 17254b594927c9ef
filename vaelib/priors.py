"""Priors p(z) over the latent vector.

A prior is a module whose ``forward()`` returns a ``torch.distributions`` object with the latent
vector as its event, so ``log_prob(z)`` of ``z`` shaped ``(..., D)`` returns ``(...)``, and whose
``sample(n, generator)`` draws ``(n, D)``. Being a module lets a prior hold buffers (it follows the
model across devices) or learned parameters.

* :class:`StandardNormalPrior`: N(0, I), the prior of the original VAE. The KL of a diagonal
  Gaussian q against it has a closed form (``analytic_kl``).
* :class:`MixtureOfGaussiansPrior`: a learned mixture of K diagonal Gaussians. Learning the prior
  lets p(z) follow the *aggregate posterior* q(z) = E_x q(z|x), the distribution of the codes of
  the training images, instead of forcing every code towards one round blob.
* :class:`VampPrior`: the "variational mixture of posteriors" of Tomczak and Welling (2018):
  p(z) = (1/K) sum_k q(z | u_k), the encoder's own posteriors at K learned pseudo-images u_k. It is
  the prior that the ELBO would choose if it could (the aggregate posterior), approximated with K
  points; the pseudo-images are learned with the rest of the model.

The KL against a learned prior has no closed form: the ELBO uses the one-sample Monte-Carlo estimate
log q(z|x) - log p(z) (vaelib.kl.monte_carlo_kl), which is unbiased.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from .validation import whole_number

__all__ = ["StandardNormalPrior", "MixtureOfGaussiansPrior", "VampPrior", "PRIORS"]


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

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=self.loc.device, generator=generator)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}"


def _mixture_sample(means: torch.Tensor, logvars: torch.Tensor, logits: torch.Tensor, n: int,
                    generator: torch.Generator | None) -> torch.Tensor:
    """``n`` draws of a mixture of diagonal Gaussians (``(K, D)`` means and log-variances, ``(K,)`` logits)."""
    k = torch.multinomial(torch.softmax(logits, 0), n, replacement=True, generator=generator)
    eps = torch.randn(n, means.shape[1], device=means.device, generator=generator)
    return means[k] + torch.exp(0.5 * logvars[k]) * eps


class MixtureOfGaussiansPrior(nn.Module):
    """p(z) = sum_k pi_k N(z; m_k, diag(exp(v_k))): ``components`` learned means, log-variances and weights.

    The means start as draws of N(0, I) and the variances at 1, so at first p(z) is a bumpy
    standard normal; training moves the components to where the codes of the training images are.
    """

    analytic_kl = False

    def __init__(self, latent_dim: int, components: int = 10, seed: int = 0):
        super().__init__()
        self.latent_dim, self.components = latent_dim, whole_number("components", components)
        self.means = nn.Parameter(torch.randn(components, latent_dim, generator=torch.Generator().manual_seed(seed)))
        self.logvars = nn.Parameter(torch.zeros(components, latent_dim))
        self.logits = nn.Parameter(torch.zeros(components))

    def forward(self) -> MixtureSameFamily:
        return MixtureSameFamily(Categorical(logits=self.logits),
                                 Independent(Normal(self.means, torch.exp(0.5 * self.logvars)), 1))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return _mixture_sample(self.means, self.logvars, self.logits, n, generator)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, components={self.components}"


class VampPrior(nn.Module):
    """p(z) = (1/K) sum_k q(z | u_k): the encoder's posteriors at ``components`` learned pseudo-images u_k.

    ``encoder`` is the VAE's own encoder (shared, not copied: it is not registered as a submodule of
    the prior, so the checkpoint holds its weights once). The pseudo-images are parameters of shape
    ``(K, C, H, W)``, kept in [0, 1] by clamping (Tomczak and Welling use a hard tanh for this) and
    started near 0.05, the mean grey level of MNIST's background-dominated pixels, as in their code.
    """

    analytic_kl = False

    def __init__(self, latent_dim: int, encoder: nn.Module, image_shape, components: int = 500, seed: int = 0):
        super().__init__()
        self.latent_dim, self.components = latent_dim, whole_number("components", components)
        object.__setattr__(self, "encoder", encoder)  # shared with the VAE, not a submodule of the prior
        g = torch.Generator().manual_seed(seed)
        self.pseudo_inputs = nn.Parameter(0.05 + 0.01 * torch.randn(components, *image_shape, generator=g))

    def pseudo_images(self) -> torch.Tensor:
        """The K pseudo-images u_k, ``(K, C, H, W)`` in [0, 1]."""
        return self.pseudo_inputs.clamp(0, 1)

    def _posteriors(self):
        mu, logvar = self.encoder(self.pseudo_images())[:2]
        return mu.float(), logvar.float()

    def forward(self) -> MixtureSameFamily:
        mu, logvar = self._posteriors()
        uniform = torch.zeros(self.components, device=mu.device)
        return MixtureSameFamily(Categorical(logits=uniform), Independent(Normal(mu, torch.exp(0.5 * logvar)), 1))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        mu, logvar = self._posteriors()
        return _mixture_sample(mu, logvar, torch.zeros(self.components, device=mu.device), n, generator)

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, components={self.components}"


PRIORS = ("standard", "mog", "vamp")
