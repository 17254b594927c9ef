"""The VAE: an encoder q(z|x), a decoder p(x|z), a prior p(z) and a likelihood, in one module.

    model = build_vae(arch="mlp", latent_dim=20, likelihood="bernoulli")
    terms = model.elbo(x)           # vaelib.elbo.ELBO: per-example reconstruction, KL, ELBO
    terms.loss.backward()           # minus the ELBO, summed over pixels, averaged over the batch
    images = model.sample(64)       # (64, 1, 28, 28) in [0, 1]

``build_vae`` records its arguments in ``model.config``; a checkpoint stores that dict, and
``build_vae(**config)`` rebuilds the same architecture (vaelib.checkpoints does exactly this).
"""
from __future__ import annotations

import torch
from torch import nn

from . import elbo as _elbo
from .likelihoods import canonical_name, make_likelihood
from .networks import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from .priors import StandardNormalPrior
from .validation import positive_number, whole_number

__all__ = ["VAE", "build_vae", "ARCHITECTURES"]

ARCHITECTURES = ("mlp", "conv")


class VAE(nn.Module):
    """A variational autoencoder.

    Args:
        encoder: module, ``x (B,1,28,28) -> (mu, logvar)``, each ``(B, D)``.
        decoder: module, ``z (B, D) -> params (B,1,28,28)``.
        likelihood: module from vaelib.likelihoods, ``params -> p(x|z)``.
        prior: module returning p(z); N(0, I) by default.
        latent_dim: D.
        num_classes: > 0 for a conditional VAE, whose methods then take labels ``y``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, likelihood: nn.Module, latent_dim: int,
                 prior: nn.Module | None = None, num_classes: int = 0):
        super().__init__()
        self.encoder, self.decoder, self.likelihood = encoder, decoder, likelihood
        self.prior = prior if prior is not None else StandardNormalPrior(latent_dim)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.config: dict = {}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _cond(self, y):
        return {} if self.num_classes == 0 else {"y": y}

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """q(z|x): an ``Independent(Normal)`` with batch shape ``(B,)`` and event shape ``(D,)``."""
        return _elbo.posterior(*self.encoder(x, **self._cond(y)))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None):
        """p(x|z): a distribution with batch shape ``(B,)`` over images ``(1, 28, 28)``."""
        return self.likelihood(self.decoder(z, **self._cond(y)))

    def elbo(self, x: torch.Tensor, beta: float = 1.0, y: torch.Tensor | None = None) -> _elbo.ELBO:
        """One-sample ELBO and its parts, per example (see vaelib.elbo)."""
        return _elbo.elbo(self, x, beta, **self._cond(y))

    def forward(self, x, beta: float = 1.0, y=None) -> _elbo.ELBO:
        return self.elbo(x, beta, y)

    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The image to show for each latent: the likelihood's mean, ``(B, 1, 28, 28)`` in [0, 1].

        (For the autoregressive ``pixelcnn`` likelihood: each pixel's probability along one image drawn
        pixel by pixel, so it is random.)
        """
        return self.likelihood.mean(self.decoder(z, **self._cond(y)))

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, y: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` new images: z ~ N(0, temperature^2 I) from the prior, decoded to their mean image.

        A temperature below 1 trades variety for cleaner digits. The prior's own ``sample`` is used
        when it is not the standard normal.
        """
        n = whole_number("n", n)
        temperature = positive_number("temperature", temperature, allow_zero=True)
        if isinstance(self.prior, StandardNormalPrior):
            z = torch.randn(n, self.latent_dim, device=self.device, generator=generator) * temperature
        else:
            z = self.prior().sample((n,)) * temperature
        return self.decode_mean(z, y)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Encode to the posterior mean and decode it: ``(B, 1, 28, 28)`` in [0, 1]."""
        mu, _ = self.encoder(x, **self._cond(y))
        return self.decode_mean(mu, y)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_vae(arch: str = "conv", latent_dim: int = 20, likelihood: str = "bernoulli",
              hidden: int | None = None, channels: int = 32, sigma: float | None = None,
              num_classes: int = 0) -> VAE:
    """Build a VAE from plain arguments, and remember them in ``model.config``.

    Args:
        arch: ``"mlp"`` (784-hidden-D, the pytorch/examples model) or ``"conv"``.
        latent_dim: D, the size of z.
        likelihood: ``"bernoulli"``/``"bce"``, ``"continuous_bernoulli"``, ``"gaussian"``/``"mse"``,
            ``"learned_gaussian"``, ``"pixelcnn"`` (autoregressive over pixels, vaelib.autoregressive).
        hidden: width of the dense layer (default 400 for mlp, 256 for conv).
        channels: width of the first convolution (conv only).
        sigma: the Gaussian likelihoods' fixed (or initial) standard deviation.
        num_classes: > 0 builds a conditional VAE.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    latent_dim = whole_number("latent_dim", latent_dim)
    hidden = None if hidden is None else whole_number("hidden", hidden)
    channels = whole_number("channels", channels)
    num_classes = whole_number("num_classes", num_classes, 0)
    if sigma is not None:
        sigma = positive_number("sigma", sigma)
    likelihood = canonical_name(likelihood)
    lik_kwargs = {"sigma": sigma} if sigma is not None and likelihood in ("gaussian", "learned_gaussian") else {}
    lik = make_likelihood(likelihood, **lik_kwargs)
    if arch == "mlp":
        hidden = hidden or 400
        encoder = MLPEncoder(latent_dim, hidden, num_classes)
        decoder = MLPDecoder(latent_dim, hidden, num_classes, out_channels=lik.params_channels)
    else:
        hidden = hidden or 256
        encoder = ConvEncoder(latent_dim, channels, hidden, num_classes)
        decoder = ConvDecoder(latent_dim, channels, hidden, num_classes, out_channels=lik.params_channels)
    model = VAE(encoder, decoder, lik, latent_dim, num_classes=num_classes)
    model.config = dict(arch=arch, latent_dim=latent_dim, likelihood=likelihood, hidden=hidden,
                        channels=channels, sigma=sigma, num_classes=num_classes)
    return model
