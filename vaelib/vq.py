"""Discrete latents: vector quantization (VQ-VAE, van den Oord et al. 2017) and finite scalar quantization (FSQ,
Mentzer et al. 2023), with the codebook statistics that tell whether the codes are used.

A quantizer takes the encoder's output ``z_e``, ``(B, D, H, W)`` (one D-vector per grid cell), and returns a
:class:`Quantized`: ``z_q`` of the same shape for the decoder, the code of each cell ``(B, H, W)`` (long), and the
loss terms it adds to the reconstruction loss.

* :class:`VectorQuantizer` replaces each vector by its nearest of ``num_codes`` learned codes. The argmin has no
  gradient, so the encoder gets the decoder's gradient at ``z_q`` copied through (the straight-through estimator,
  ``z_q = z_e + (e - z_e).detach()``): biased, since the decoder was differentiated at ``e``, not at ``z_e``.
  Two terms move what the reconstruction cannot: the codebook loss ``||sg(z_e) - e||^2`` pulls the chosen codes
  to the encoder outputs, the commitment loss ``beta * ||z_e - sg(e)||^2`` keeps the encoder near its codes.
  ``update="ema"`` replaces the codebook loss by exponential moving averages of the assigned vectors (each code
  goes to the running mean of its cluster, the k-means step); ``restart=True`` re-seeds every code whose running
  count falls below ``restart_threshold`` with an encoder output of the batch (dead codes come back).
* :class:`FSQ` has no codebook: each of its D = len(levels) channels is squashed to a bounded range and rounded to
  one of ``levels[d]`` values (straight-through), so that the codes are the prod(levels) points of a grid, every
  one reachable, with no codebook or commitment loss.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .validation import positive_number, whole_number

__all__ = ["Quantized", "VectorQuantizer", "FSQ", "codebook_usage", "QUANTIZERS", "make_quantizer"]


@dataclass
class Quantized:
    """What a quantizer returns for ``z_e`` ``(B, D, H, W)``: ``z_q`` (same shape, straight-through), ``codes``
    ``(B, H, W)`` long, ``loss`` (a scalar to add to the reconstruction loss, mean over cells) and ``terms``
    (its parts, name -> scalar tensor, for the record)."""

    z_q: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor
    terms: dict = field(default_factory=dict)


def _cells(z_e: torch.Tensor, dim: int, name: str) -> torch.Tensor:
    """``(B, D, H, W)`` -> ``(B*H*W, D)``, refusing a wrong layout in one line."""
    if z_e.dim() != 4 or z_e.shape[1] != dim:
        raise ValueError(f"{name}: expected the encoder's output as (B, {dim}, H, W), got {tuple(z_e.shape)}: the "
                         f"encoder must end in {dim} channels (code_dim)")
    return z_e.permute(0, 2, 3, 1).reshape(-1, dim)


class VectorQuantizer(nn.Module):
    """Nearest-code quantization with ``num_codes`` codes of size ``code_dim``.

    Args:
        update: ``"loss"`` (the codebook loss moves the codes, the paper's first form) or ``"ema"`` (running
            cluster means, decay ``decay``; the paper's appendix, Sonnet's ``VectorQuantizerEMA``).
        restart: re-seed dead codes (running count < ``restart_threshold``) from the batch's encoder outputs,
            in training only (needs ``update="ema"``, whose running counts say which codes are dead).
        commitment: beta, the weight of the commitment loss (0.25 in the paper).
    """

    def __init__(self, num_codes: int = 256, code_dim: int = 16, commitment: float = 0.25, update: str = "loss",
                 decay: float = 0.99, restart: bool = False, restart_threshold: float = 1.0, eps: float = 1e-5):
        super().__init__()
        self.num_codes = whole_number("num_codes", num_codes)
        self.code_dim = whole_number("code_dim", code_dim)
        self.commitment = positive_number("commitment", commitment, allow_zero=True)
        if update not in ("loss", "ema"):
            raise ValueError(f"update={update!r}: choose 'loss' (the codebook loss) or 'ema' (running cluster means)")
        if restart and update != "ema":
            raise ValueError("restart=True needs update='ema': its running counts say which codes are dead")
        if not 0 < decay < 1:
            raise ValueError(f"decay={decay!r}: a number in (0, 1), e.g. 0.99")
        self.update, self.decay, self.restart = update, decay, restart
        self.restart_threshold, self.eps = restart_threshold, eps
        # uniform in +-1/K, as the paper's reference code initializes the codebook: codes start near the origin
        self.codebook = nn.Parameter(torch.empty(num_codes, code_dim).uniform_(-1 / num_codes, 1 / num_codes),
                                     requires_grad=update == "loss")
        self.register_buffer("ema_count", torch.zeros(num_codes))
        self.register_buffer("ema_sum", self.codebook.detach().clone())
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """The index of the nearest code of each row of ``flat`` ``(N, D)``: ``(N,)`` long."""
        distances = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t()
                     + self.codebook.pow(2).sum(1)[None, :])
        return distances.argmin(1)

    def forward(self, z_e: torch.Tensor) -> Quantized:
        b, _, h, w = z_e.shape
        flat = _cells(z_e, self.code_dim, "VectorQuantizer")
        codes = self.nearest(flat.detach())
        if self.training and self.update == "ema":
            self._ema_step(flat.detach(), codes)
        e = self.codebook[codes]
        commitment = (flat - e.detach()).pow(2).sum(1).mean()
        terms = {"commitment": commitment}
        loss = self.commitment * commitment
        if self.update == "loss":
            terms["codebook"] = (flat.detach() - e).pow(2).sum(1).mean()
            loss = loss + terms["codebook"]
        e = e.view(b, h, w, -1).permute(0, 3, 1, 2)
        z_q = z_e + (e - z_e).detach()         # straight-through: the decoder's gradient at z_q goes to z_e
        return Quantized(z_q, codes.view(b, h, w), loss, terms)

    @torch.no_grad()
    def _ema_step(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        one_hot = torch.zeros(len(flat), self.num_codes, device=flat.device, dtype=flat.dtype)
        one_hot.scatter_(1, codes[:, None], 1.0)
        self.ema_count.mul_(self.decay).add_(one_hot.sum(0), alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(one_hot.t() @ flat, alpha=1 - self.decay)
        n = self.ema_count.sum()
        count = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n   # Laplace smoothing: no 0 / 0
        self.codebook.data.copy_(self.ema_sum / count[:, None])
        if self.restart:
            dead = (self.ema_count < self.restart_threshold).nonzero().flatten()
            if len(dead):
                picks = flat[torch.randint(len(flat), (len(dead),), device=flat.device)]
                self.codebook.data[dead] = picks
                self.ema_sum[dead] = picks
                self.ema_count[dead] = 1.0
                self.restarts += len(dead)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, H, W)`` -> their vectors ``(B, D, H, W)``, what the decoder reads."""
        return self.codebook[codes].permute(0, 3, 1, 2)


class FSQ(nn.Module):
    """Finite scalar quantization: channel d rounded to ``levels[d]`` values in [-1, 1]; prod(levels) codes.

    ``code_dim`` is ``len(levels)``: the encoder ends in that many channels. [8, 6, 5] gives 240 codes.
    """

    def __init__(self, levels=(8, 6, 5), eps: float = 1e-3):
        super().__init__()
        levels = [whole_number("levels", v) for v in levels]
        if not levels or min(levels) < 2:
            raise ValueError(f"levels={levels!r}: each channel needs at least 2 levels, e.g. (8, 6, 5)")
        self.levels, self.eps = tuple(levels), eps
        self.code_dim, self.num_codes = len(levels), math.prod(levels)
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.float32), persistent=False)
        self.register_buffer("_basis", torch.tensor([math.prod(levels[:i]) for i in range(len(levels))]),
                             persistent=False)

    def _bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash each channel to (-(L-1)/2, (L-1)/2), offset by 1/2 for an even L so that rounding gives L values."""
        half = (self._levels - 1) * (1 + self.eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def forward(self, z_e: torch.Tensor) -> Quantized:
        b, _, h, w = z_e.shape
        flat = _cells(z_e, self.code_dim, "FSQ")
        bounded = self._bound(flat)
        rounded = bounded + (bounded.round() - bounded).detach()     # straight-through rounding
        half_width = (self._levels // 2)
        digits = (rounded.detach().round() + half_width).long()      # 0 .. L-1 per channel
        codes = (digits * self._basis).sum(1)
        z_q = (rounded / half_width).view(b, h, w, -1).permute(0, 3, 1, 2)
        return Quantized(z_q, codes.view(b, h, w), z_e.new_zeros(()), {})

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, H, W)`` -> their grid points ``(B, D, H, W)`` in [-1, 1]."""
        digits = (codes[..., None] // self._basis) % self._levels.long()
        half_width = self._levels // 2
        return ((digits - half_width) / half_width).permute(0, 3, 1, 2)


QUANTIZERS = ("vq", "ema", "ema_restart", "fsq")


def make_quantizer(kind: str = "ema_restart", num_codes: int = 256, code_dim: int = 16, commitment: float = 0.25,
                   levels=(8, 6, 5)) -> nn.Module:
    """One of :data:`QUANTIZERS` by name: ``"vq"`` (codebook loss), ``"ema"``, ``"ema_restart"``, ``"fsq"``
    (``levels``; ``num_codes`` and ``code_dim`` follow from them)."""
    if kind == "fsq":
        return FSQ(levels)
    if kind not in QUANTIZERS:
        raise ValueError(f"quantizer={kind!r}: choose one of {', '.join(QUANTIZERS)}")
    return VectorQuantizer(num_codes, code_dim, commitment, update="loss" if kind == "vq" else "ema",
                           restart=kind == "ema_restart")


def codebook_usage(codes: torch.Tensor, num_codes: int) -> dict:
    """How many of ``num_codes`` codes occur in ``codes`` (any shape, long), and their perplexity.

    Returns ``{"used", "perplexity", "counts"}``: perplexity = exp(H(p)) of the codes' frequencies p, from 1 (one
    code) to ``num_codes`` (all equally often). Computed over a whole test set it reads the codebook's usage;
    over one small batch it under-reads it, because a batch holds few cells.
    """
    counts = torch.bincount(codes.flatten().long(), minlength=num_codes)[:num_codes].double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"used": int((counts > 0).sum()), "perplexity": entropy.exp().item(), "counts": counts.long()}
