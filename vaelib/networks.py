"""Encoder and decoder networks for images of a given shape ``(C, H, W)`` (default MNIST's ``(1, 28, 28)``).

An encoder maps images ``x`` ``(B, C, H, W)`` to the parameters of q(z|x) = N(mu, diag(exp(logvar))):
two tensors ``(B, D)`` (and, with ``context_dim``, a third, the context ``(B, context_dim)`` that an
IAF posterior reads). It outputs a log-variance, not a variance, because any real number is a
valid log-variance: no positivity constraint for the optimizer to break.

A decoder maps latents ``z`` ``(B, D)`` to ``out_channels`` real numbers per pixel,
``(B, out_channels, H, W)``; the likelihood (vaelib.likelihoods) decides what those numbers mean
(logits, or a mean before a sigmoid) and how many it reads per pixel (one per image channel for
the factorized likelihoods, a feature map for the autoregressive ``pixelcnn``).

With ``num_classes > 0`` both take a label ``y`` ``(B,)`` too, appended as a one-hot vector: that
is all a conditional VAE (notebook 09) changes.

Your own networks plug into :class:`vaelib.VAE` the same way: an encoder ``x -> (mu, logvar)`` and
a decoder ``z -> params`` (each also taking ``y`` if the model is conditional).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .validation import whole_number

__all__ = ["MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder", "conv_stages", "MNIST_SHAPE"]

MNIST_SHAPE = (1, 28, 28)


def _shape(image_shape) -> tuple[int, int, int]:
    try:
        shape = tuple(whole_number("image_shape entries", s) for s in image_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3:
        raise ValueError(f"image_shape must be (channels, height, width) of positive whole numbers, got {image_shape!r}")
    return shape


def _with_label(h: torch.Tensor, y: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    if num_classes == 0:
        return h
    if y is None:
        raise ValueError("this network is conditional (num_classes > 0): pass the labels as y=")
    return torch.cat([h, F.one_hot(y, num_classes).to(h.dtype)], dim=-1)


class _Heads(nn.Module):
    """The encoders' last layers: (mu, logvar), and with ``context_dim`` a context vector h for a
    flow posterior (vaelib.posteriors.IAFPosterior) too."""

    def _heads(self, hidden: int, latent_dim: int, context_dim: int):
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)
        self.context = nn.Linear(hidden, context_dim) if context_dim else None

    def _outputs(self, h):
        if self.context is None:
            return self.mu(h), self.logvar(h)
        return self.mu(h), self.logvar(h), F.elu(self.context(h))


class MLPEncoder(_Heads):
    """C*H*W -> ``hidden`` -> (mu, logvar) of size ``latent_dim``: the pytorch/examples encoder."""

    def __init__(self, latent_dim: int = 20, hidden: int = 400, num_classes: int = 0, image_shape=MNIST_SHAPE,
                 context_dim: int = 0):
        super().__init__()
        self.num_classes, self.latent_dim, self.image_shape = num_classes, latent_dim, _shape(image_shape)
        self.fc = nn.Linear(math.prod(self.image_shape) + num_classes, hidden)
        self._heads(hidden, latent_dim, context_dim)

    def forward(self, x, y=None):
        h = F.relu(self.fc(_with_label(x.flatten(1), y, self.num_classes)))
        return self._outputs(h)


class MLPDecoder(nn.Module):
    """``latent_dim`` -> ``hidden`` -> H*W*``out_channels`` pixel parameters, as ``(B, out_channels, H, W)``.

    ``out_channels`` defaults to the image's channels.
    """

    def __init__(self, latent_dim: int = 20, hidden: int = 400, num_classes: int = 0, out_channels: int | None = None,
                 image_shape=MNIST_SHAPE):
        super().__init__()
        channels, self.height, self.width = _shape(image_shape)
        self.num_classes, self.out_channels = num_classes, out_channels or channels
        self.fc = nn.Linear(latent_dim + num_classes, hidden)
        self.out = nn.Linear(hidden, self.height * self.width * self.out_channels)

    def forward(self, z, y=None):
        h = F.relu(self.fc(_with_label(z, y, self.num_classes)))
        return self.out(h).view(-1, self.out_channels, self.height, self.width)


def conv_stages(height: int, width: int) -> int:
    """How many stride-2 convolutions the conv networks use for an image of ``height`` x ``width``.

    The rule: height and width must be divisible by 4 (two halvings, 28 -> 14 -> 7), and the
    networks keep halving while both sides are even and one is above 8 (64 -> 32 -> 16 -> 8), so the
    dense layer sees at most about 8x8 positions: 2 stages for 28x28 and 32x32, 3 for 64x64.
    """
    if height % 4 or width % 4 or height < 8 or width < 8:
        raise ValueError(f"the conv networks need an image height and width divisible by 4 and at least 8, got "
                         f"{height}x{width}: resize the images (image_size=...) or use the mlp architecture")
    stages, h, w = 2, height // 4, width // 4
    while max(h, w) > 8 and h % 2 == 0 and w % 2 == 0:
        stages, h, w = stages + 1, h // 2, w // 2
    return stages


class ConvEncoder(_Heads):
    """Stride-2 convolutions (28 -> 14 -> 7 for MNIST; see :func:`conv_stages`), a dense layer of
    ``hidden`` units, then (mu, logvar).

    ``channels`` is the width of the first convolution; the later ones have twice as many.
    """

    def __init__(self, latent_dim: int = 16, channels: int = 32, hidden: int = 256, num_classes: int = 0,
                 image_shape=MNIST_SHAPE, context_dim: int = 0):
        super().__init__()
        self.num_classes, self.latent_dim, self.image_shape = num_classes, latent_dim, _shape(image_shape)
        in_channels, height, width = self.image_shape
        stages, c = conv_stages(height, width), channels
        layers = [nn.Conv2d(in_channels, c, 4, stride=2, padding=1), nn.ReLU(),   # (c, H/2, W/2)
                  nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.ReLU()]         # (2c, H/4, W/4)
        for _ in range(stages - 2):
            layers += [nn.Conv2d(2 * c, 2 * c, 4, stride=2, padding=1), nn.ReLU()]
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(2 * c * (height >> stages) * (width >> stages) + num_classes, hidden)
        self._heads(hidden, latent_dim, context_dim)

    def forward(self, x, y=None):
        h = self.conv(x).flatten(1)
        h = F.relu(self.fc(_with_label(h, y, self.num_classes)))
        return self._outputs(h)


class ConvDecoder(nn.Module):
    """The mirror of :class:`ConvEncoder`: dense to ``(2c, H/2^s, W/2^s)``, then transposed convolutions
    back to ``(out_channels, H, W)``; ``out_channels`` defaults to the image's channels."""

    def __init__(self, latent_dim: int = 16, channels: int = 32, hidden: int = 256, num_classes: int = 0,
                 out_channels: int | None = None, image_shape=MNIST_SHAPE):
        super().__init__()
        image_channels, height, width = _shape(image_shape)
        stages, c = conv_stages(height, width), channels
        self.num_classes, self.c = num_classes, c
        self.start = (2 * c, height >> stages, width >> stages)
        self.fc = nn.Sequential(
            nn.Linear(latent_dim + num_classes, hidden), nn.ReLU(),
            nn.Linear(hidden, math.prod(self.start)), nn.ReLU(),
        )
        layers = []
        for _ in range(stages - 2):
            layers += [nn.ConvTranspose2d(2 * c, 2 * c, 4, stride=2, padding=1), nn.ReLU()]
        layers += [nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.ReLU(),                   # (c, H/2, W/2)
                   nn.ConvTranspose2d(c, out_channels or image_channels, 4, stride=2, padding=1)]     # (out, H, W)
        self.deconv = nn.Sequential(*layers)

    def forward(self, z, y=None):
        h = self.fc(_with_label(z, y, self.num_classes))
        return self.deconv(h.view(-1, *self.start))
