"""Encoder and decoder networks for 28x28 images.

An encoder maps images ``x`` ``(B, 1, 28, 28)`` to the parameters of q(z|x) = N(mu, diag(exp(logvar))):
two tensors ``(B, D)``. It outputs a log-variance, not a variance, because any real number is a
valid log-variance: no positivity constraint for the optimizer to break.

A decoder maps latents ``z`` ``(B, D)`` to one real number per pixel, ``(B, 1, 28, 28)``; the
likelihood (vaelib.likelihoods) decides what those numbers mean (logits, or a mean before a sigmoid).
An autoregressive likelihood reads ``out_channels`` numbers per pixel instead, ``(B, C, 28, 28)``.

With ``num_classes > 0`` both take a label ``y`` ``(B,)`` too, appended as a one-hot vector: that
is all a conditional VAE (notebook 09) changes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder"]


def _with_label(h: torch.Tensor, y: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    if num_classes == 0:
        return h
    if y is None:
        raise ValueError("this network is conditional (num_classes > 0): pass the labels as y=")
    return torch.cat([h, F.one_hot(y, num_classes).to(h.dtype)], dim=-1)


class MLPEncoder(nn.Module):
    """784 -> ``hidden`` -> (mu, logvar) of size ``latent_dim``: the pytorch/examples encoder."""

    def __init__(self, latent_dim: int = 20, hidden: int = 400, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        self.fc = nn.Linear(784 + num_classes, hidden)
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def forward(self, x, y=None):
        h = F.relu(self.fc(_with_label(x.flatten(1), y, self.num_classes)))
        return self.mu(h), self.logvar(h)


class MLPDecoder(nn.Module):
    """``latent_dim`` -> ``hidden`` -> 784 * ``out_channels`` pixel parameters, as ``(B, out_channels, 28, 28)``."""

    def __init__(self, latent_dim: int = 20, hidden: int = 400, num_classes: int = 0, out_channels: int = 1):
        super().__init__()
        self.num_classes, self.out_channels = num_classes, out_channels
        self.fc = nn.Linear(latent_dim + num_classes, hidden)
        self.out = nn.Linear(hidden, 784 * out_channels)

    def forward(self, z, y=None):
        h = F.relu(self.fc(_with_label(z, y, self.num_classes)))
        return self.out(h).view(-1, self.out_channels, 28, 28)


class ConvEncoder(nn.Module):
    """Two stride-2 convolutions (28 -> 14 -> 7), a dense layer of ``hidden`` units, then (mu, logvar).

    ``channels`` is the width of the first convolution; the second has twice as many.
    """

    def __init__(self, latent_dim: int = 16, channels: int = 32, hidden: int = 256, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        c = channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1), nn.ReLU(),       # (c, 14, 14)
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.ReLU(),   # (2c, 7, 7)
        )
        self.fc = nn.Linear(2 * c * 7 * 7 + num_classes, hidden)
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def forward(self, x, y=None):
        h = self.conv(x).flatten(1)
        h = F.relu(self.fc(_with_label(h, y, self.num_classes)))
        return self.mu(h), self.logvar(h)


class ConvDecoder(nn.Module):
    """The mirror of :class:`ConvEncoder`: dense to (2c, 7, 7), then two transposed convolutions."""

    def __init__(self, latent_dim: int = 16, channels: int = 32, hidden: int = 256, num_classes: int = 0,
                 out_channels: int = 1):
        super().__init__()
        self.num_classes = num_classes
        c = channels
        self.fc = nn.Sequential(
            nn.Linear(latent_dim + num_classes, hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * c * 7 * 7), nn.ReLU(),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.ReLU(),  # (c, 14, 14)
            nn.ConvTranspose2d(c, out_channels, 4, stride=2, padding=1),      # (out_channels, 28, 28)
        )
        self.c = c

    def forward(self, z, y=None):
        h = self.fc(_with_label(z, y, self.num_classes))
        return self.deconv(h.view(-1, 2 * self.c, 7, 7))
