"""Decoder likelihoods p(x | z): how a decoder's output becomes a distribution over images.

The decoder network outputs one real number per pixel and channel, ``params`` of shape
``(B, C, H, W)`` (``(B, 1, 28, 28)`` for MNIST). A likelihood turns it into a ``torch.distributions``
object whose ``log_prob(x)`` returns one number per image, ``(B,)``: the log-density summed over all
C*H*W values (``Independent`` over the last three dimensions). Summing, not averaging, over pixels
is what makes the ELBO a bound on log p(x).

* ``bernoulli`` (alias ``bce``): ``params`` are logits. For binary data (or grey levels read as
  probabilities, which is what ``binary_cross_entropy`` does).
* ``continuous_bernoulli``: the properly normalized density on [0, 1] for grey-level data
  (Loaiza-Ganem and Cunningham, 2019); ``params`` are logits.
* ``gaussian`` (alias ``mse``): Normal(sigmoid(params), sigma^2) with a fixed sigma. With the default
  sigma^2 = 1/2, -log p = sum (x - mean)^2 + const: exactly the summed-MSE loss of the original
  train.py, so a smaller sigma weighs reconstruction more, like a beta below 1.
* ``learned_gaussian``: the same with one learned sigma shared by all pixels (the sigma-VAE,
  Rybkin et al. 2021), so the balance between the two ELBO terms is learned, not tuned.
* ``pixelcnn``: binary pixels that are *not* independent given z: each also sees the pixels above
  and to its left (vaelib.autoregressive), for one-channel images. ``params`` is then a feature map
  ``(B, F, H, W)``.

Every likelihood gives ``decoder_channels(image_channels)``, how many channels the decoder network
must output for images with that many channels, ``mean(params)``, the image to show, in [0, 1],
and ``binary``: whether it models 0/1 pixels (then the data should be binarized).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Bernoulli, ContinuousBernoulli, Independent, Normal

from .autoregressive import PixelCNNBernoulliLikelihood

__all__ = ["Likelihood", "BernoulliLikelihood", "ContinuousBernoulliLikelihood", "GaussianLikelihood",
           "LearnedGaussianLikelihood", "PixelCNNBernoulliLikelihood", "make_likelihood", "canonical_name",
           "is_binary", "LIKELIHOODS"]

EVENT_DIMS = 3  # (channels, height, width) form one event: log_prob sums over them


class Likelihood(nn.Module):
    """Base class: ``forward(params)`` returns the distribution, ``mean(params)`` the image to show."""

    name = "base"
    binary = False  # True: a distribution over 0/1 pixels

    def decoder_channels(self, image_channels: int) -> int:
        """Channels of the decoder output that this likelihood reads, for images of ``image_channels``."""
        return image_channels

    def forward(self, params: torch.Tensor) -> torch.distributions.Distribution:
        raise NotImplementedError

    def mean(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.sigmoid(params)

    def draw(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images drawn from p(x|z): 0/1 pixels for a binary likelihood, the mean image otherwise
        (the pixel noise of a continuous likelihood is not part of what one shows)."""
        mean = self.mean(params, generator)
        return torch.bernoulli(mean, generator=generator) if self.binary else mean

    def extra_repr(self) -> str:
        return ""


class BernoulliLikelihood(Likelihood):
    """Each pixel ~ Bernoulli(sigmoid(logit)). log p(x|z) = -binary_cross_entropy summed over pixels."""

    name = "bernoulli"
    binary = True

    def forward(self, params):
        # validate_args=False: grey-level targets in [0, 1] are allowed (the BCE convention)
        return Independent(Bernoulli(logits=params, validate_args=False), EVENT_DIMS)


class ContinuousBernoulliLikelihood(Likelihood):
    """Each pixel ~ ContinuousBernoulli(logit): a normalized density on [0, 1]."""

    name = "continuous_bernoulli"

    def forward(self, params):
        return Independent(ContinuousBernoulli(logits=params, validate_args=False), EVENT_DIMS)

    def mean(self, params, generator=None):
        # The distribution's mean is pulled toward 0.5; sigmoid(logit) (its parameter lambda) is
        # what people show, and what Loaiza-Ganem and Cunningham show.
        return torch.sigmoid(params)


class GaussianLikelihood(Likelihood):
    """Each pixel ~ Normal(sigmoid(param), sigma^2) with a fixed ``sigma`` (default sqrt(1/2))."""

    name = "gaussian"

    def __init__(self, sigma: float = math.sqrt(0.5)):
        super().__init__()
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.sigma = float(sigma)

    def forward(self, params):
        return Independent(Normal(torch.sigmoid(params), self.sigma), EVENT_DIMS)

    def extra_repr(self):
        return f"sigma={self.sigma:.4g}"


class LearnedGaussianLikelihood(Likelihood):
    """Each pixel ~ Normal(sigmoid(param), sigma^2) with one learned ``log_sigma`` for all pixels."""

    name = "learned_gaussian"

    def __init__(self, sigma: float = 1.0, min_log_sigma: float = -6.0):
        super().__init__()
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)))
        self.min_log_sigma = min_log_sigma  # keeps log p finite once reconstructions become sharp

    @property
    def sigma(self) -> float:
        return float(self.log_sigma.detach().clamp(min=self.min_log_sigma).exp())

    def forward(self, params):
        scale = self.log_sigma.clamp(min=self.min_log_sigma).exp()
        return Independent(Normal(torch.sigmoid(params), scale), EVENT_DIMS)

    def extra_repr(self):
        return f"sigma={self.sigma:.4g} (learned)"


LIKELIHOODS = {
    "bernoulli": BernoulliLikelihood,
    "continuous_bernoulli": ContinuousBernoulliLikelihood,
    "gaussian": GaussianLikelihood,
    "learned_gaussian": LearnedGaussianLikelihood,
    "pixelcnn": PixelCNNBernoulliLikelihood,
}
ALIASES = {"bce": "bernoulli", "mse": "gaussian", "cb": "continuous_bernoulli", "sigma_vae": "learned_gaussian"}


def is_binary(name: str) -> bool:
    """Whether the likelihood ``name`` (aliases accepted) models 0/1 pixels."""
    return LIKELIHOODS[canonical_name(name)].binary


def canonical_name(name: str) -> str:
    """``"bce"`` -> ``"bernoulli"``, ``"mse"`` -> ``"gaussian"``; unknown names raise ``ValueError``."""
    name = ALIASES.get(name, name)
    if name not in LIKELIHOODS:
        choices = ", ".join(sorted(set(LIKELIHOODS) | set(ALIASES)))
        raise ValueError(f"unknown likelihood {name!r}: choose one of {choices}")
    return name


def make_likelihood(name: str, **kwargs) -> Likelihood:
    """Build a likelihood by name (aliases accepted); kwargs go to its constructor (e.g. ``sigma``)."""
    return LIKELIHOODS[canonical_name(name)](**kwargs)
