"""A learned prior over a grid of discrete codes (VQ-VAE's second stage): a small PixelCNN over the codes.

A VQ-VAE (vaelib.vqvae) is trained with no prior; its codes of the training images are then modelled by an
autoregressive model in raster order,

    p(c) = prod_i Categorical(c_i | c_<i),

so that ``log p(c)`` is exact, one forward pass on a given grid, and a new grid is drawn cell by cell (49 steps for
7x7) and decoded. Its negative log-likelihood in bits per image reads against 49 * log2(K), the cost of uniform
codes. Like vaelib.autoregressive's PixelCNN, the first layer uses mask "A" (a cell never sees itself), the
others mask "B"; a plain masked stack has a blind spot up and to the right, which at 7x7 costs little.

Shapes: codes ``(B, H, W)`` long in [0, K); logits ``(B, K, H, W)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .autoregressive import MaskedConv2d
from .objectives import Estimate
from .validation import whole_number

__all__ = ["CodePixelCNN", "code_prior_objective", "codes_as_images", "images_as_codes"]


def codes_as_images(codes: torch.Tensor) -> torch.Tensor:
    """Codes ``(N, H, W)`` in [0, 256) as uint8 "images" ``(N, 1, H, W)``: the form ``vaelib.fit`` takes data in
    (it checks images and serves them as floats c / 255); :func:`code_prior_objective` reads them back."""
    if codes.dtype != torch.long or codes.dim() != 3:
        raise ValueError(f"codes: expected a long tensor (N, H, W), got {codes.dtype} {tuple(codes.shape)}")
    if codes.numel() and (codes.min() < 0 or codes.max() > 255):
        raise ValueError(f"codes: fit carries codes as uint8, so at most 256 codes; got values up to "
                         f"{codes.max().item()}: train the prior with your own loop for a larger codebook")
    return codes.to(torch.uint8).unsqueeze(1)


def images_as_codes(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`codes_as_images` as fit serves them: floats ``(B, 1, H, W)`` -> long ``(B, H, W)``."""
    return (x * 255).round().long().squeeze(1)


class _Residual(nn.Module):
    """``h + conv1x1(relu(masked conv(relu(h))))``, mask "B": ``(B, F, H, W)`` in and out."""

    def __init__(self, features: int, kernel_size: int):
        super().__init__()
        self.conv = MaskedConv2d(features, features, kernel_size, include_centre=True)
        self.out = nn.Conv2d(features, features, 1)

    def forward(self, h):
        return h + self.out(F.relu(self.conv(F.relu(h))))


class CodePixelCNN(nn.Module):
    """A PixelCNN over ``(B, H, W)`` grids of codes in [0, ``num_codes``): an embedding, a mask-A convolution
    (``kernel_size``), ``layers`` residual mask-B 3x3 layers, a 1x1 head to ``num_codes`` logits per cell.
    ``self.config`` records the constructor's arguments.

    A ``kernel_size`` of ``2 * W - 1`` (13 for a 7x7 grid) lets the first layer see every earlier cell of the grid,
    so that the stack has no blind spot."""

    def __init__(self, num_codes: int, features: int = 64, layers: int = 4, kernel_size: int = 5,
                 grid=(7, 7)):
        super().__init__()
        self.num_codes = whole_number("num_codes", num_codes)
        self.grid = tuple(grid)
        self.config = {"num_codes": num_codes, "features": features, "layers": layers, "kernel_size": kernel_size,
                       "grid": list(grid)}
        self.embed = nn.Embedding(num_codes, features)
        self.first = MaskedConv2d(features, features, kernel_size)
        self.stack = nn.ModuleList(_Residual(features, 3) for _ in range(layers))
        self.head = nn.Conv2d(features, num_codes, 1)

    def _checked(self, codes: torch.Tensor) -> torch.Tensor:
        if codes.dim() != 3 or codes.dtype != torch.long:
            raise ValueError(f"codes: expected a long tensor (B, H, W), got {codes.dtype} {tuple(codes.shape)}: "
                             "pass VQVAE.encode_codes(images)")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.num_codes):
            raise ValueError(f"codes: values must lie in [0, {self.num_codes}), got {codes.min().item()} to "
                             f"{codes.max().item()}: the prior's num_codes must be the quantizer's")
        return codes

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """The logits of each cell given the cells before it: ``(B, H, W)`` -> ``(B, K, H, W)``."""
        h = self.first(self.embed(self._checked(codes)).permute(0, 3, 1, 2))
        for layer in self.stack:
            h = layer(h)
        return self.head(F.relu(h))

    def log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """log p(c) per grid, ``(B,)`` nats: the sum over cells of log Categorical(c_i | c_<i)."""
        return -F.cross_entropy(self(codes), codes, reduction="none").flatten(1).sum(1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """``n`` grids drawn cell by cell in raster order (H*W forward passes): ``(n, H, W)`` long."""
        was = self.training
        self.eval()
        device = self.head.weight.device
        codes = torch.zeros(n, *self.grid, dtype=torch.long, device=device)
        try:
            for i in range(self.grid[0]):
                for j in range(self.grid[1]):
                    probs = torch.softmax(self(codes)[:, :, i, j] / temperature, dim=1)
                    codes[:, i, j] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        finally:
            self.train(was)
        return codes


def code_prior_objective(model: CodePixelCNN, codes: torch.Tensor, y=None, step: int = 0) -> Estimate:
    """``fit``'s objective for a :class:`CodePixelCNN`: the mean negative log-likelihood of the grids, given as
    long codes ``(B, H, W)`` or as ``fit`` serves :func:`codes_as_images` (``fit(prior, codes_as_images(codes),
    objective=code_prior_objective)``).

    Reports per grid ``nll`` (nats) and ``bits`` (the same in bits: compare with H*W*log2(K) for uniform codes).
    """
    if codes.is_floating_point():
        codes = images_as_codes(codes)
    nll = -model.log_prob(codes)
    return Estimate(nll.mean(), {"nll": nll.detach().sum(), "bits": nll.detach().sum() / math.log(2)})
