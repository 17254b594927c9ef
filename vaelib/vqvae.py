"""A VQ-VAE (van den Oord et al. 2017) at MNIST scale: a conv encoder to a 7x7 grid of vectors, a quantizer
(vaelib.vq), a conv decoder; trained by ``vaelib.fit(model, train, objective=vq_objective)``.

The model is an autoencoder with a discrete bottleneck: each 28x28 image becomes 49 codes of ``num_codes``. With a
uniform prior over the codes and a one-hot posterior, the VAE's KL term is log K per code, a constant, which is why
the loss has no KL: reconstruction, plus the quantizer's codebook and commitment terms. Generating needs a prior
fitted over the code grid afterwards; until one is, :meth:`VQVAE.sample` refuses.

Shapes: images ``(B, C, 28, 28)`` in [0, 1]; ``z_e``, ``z_q`` ``(B, code_dim, 7, 7)``; codes ``(B, 7, 7)`` long.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .objectives import Estimate
from .vq import QUANTIZERS, codebook_usage, make_quantizer

__all__ = ["VQVAE", "vq_objective", "reconstruction_and_usage"]


class VQVAE(nn.Module):
    """Encoder conv 4x4/2 (``channels``) - conv 4x4/2 (2 ``channels``) - conv 1x1 (``code_dim``), the quantizer,
    decoder conv 3x3 (2 ``channels``) - transposed conv 4x4/2 (``channels``) - transposed conv 4x4/2 - sigmoid.

    ``self.config`` records the constructor's arguments (rebuild with ``VQVAE(**model.config)``).
    """

    def __init__(self, quantizer: str = "ema_restart", num_codes: int = 256, code_dim: int = 16, channels: int = 32,
                 commitment: float = 0.25, levels=(8, 6, 5), image_channels: int = 1):
        super().__init__()
        if quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer={quantizer!r}: choose one of {', '.join(QUANTIZERS)}")
        self.quantizer = make_quantizer(quantizer, num_codes, code_dim, commitment, levels)
        code_dim, num_codes = self.quantizer.code_dim, self.quantizer.num_codes    # FSQ: from its levels
        self.config = {"quantizer": quantizer, "num_codes": num_codes, "code_dim": code_dim, "channels": channels,
                       "commitment": commitment, "levels": list(levels), "image_channels": image_channels}
        c = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(image_channels, c, 4, 2, 1), nn.ReLU(), nn.Conv2d(c, 2 * c, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * c, code_dim, 1))
        self.decoder = nn.Sequential(
            nn.Conv2d(code_dim, 2 * c, 3, 1, 1), nn.ReLU(), nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(c, image_channels, 4, 2, 1))

    @property
    def num_codes(self) -> int:
        return self.quantizer.num_codes

    def forward(self, x: torch.Tensor):
        """``x`` ``(B, C, 28, 28)`` -> ``(x_hat, quantized)``: the reconstruction in [0, 1] and the
        :class:`vaelib.vq.Quantized` of the encoding (its codes and loss terms)."""
        q = self.quantizer(self.encoder(x))
        return torch.sigmoid(self.decoder(q.z_q)), q

    @torch.no_grad()
    def encode_codes(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """The codes of ``x``: ``(B, C, 28, 28)`` -> ``(B, 7, 7)`` long (no training-time updates), ``batch_size``
        images at a time (a whole data set fits)."""
        was = self.training
        self.eval()
        try:
            return torch.cat([self.quantizer(self.encoder(chunk)).codes for chunk in x.split(batch_size)])
        finally:
            self.train(was)

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, 7, 7)`` -> images ``(B, C, 28, 28)`` in [0, 1]."""
        return torch.sigmoid(self.decoder(self.quantizer.lookup(codes)))

    def sample(self, *args, **kwargs):
        raise ValueError("a VQ-VAE has no prior over its codes: decoding uniform codes gives noise. Fit a prior over "
                         "the code grid (vaelib.code_prior.CodePixelCNN on encode_codes(train images), or "
                         "vaelib.train_models.train_model(run_dir, 'code_prior', codes_of=checkpoint)), then "
                         "decode_codes(prior.sample(n))")


def vq_objective(model: VQVAE, x: torch.Tensor, y=None, step: int = 0) -> Estimate:
    """``fit``'s objective for a :class:`VQVAE`: mean squared error per pixel plus the quantizer's loss.

    Reports per image ``mse`` (mean over pixels), ``commitment`` and, for ``quantizer="vq"``, ``codebook``.
    """
    x_hat, q = model(x)
    mse = (x_hat - x).pow(2).flatten(1).mean(1)         # (B,)
    n = len(x)
    sums = {"mse": mse.detach().sum()}
    sums.update({name: value.detach() * n for name, value in q.terms.items()})
    return Estimate(mse.mean() + q.loss, sums)


@torch.no_grad()
def reconstruction_and_usage(model: VQVAE, images: torch.Tensor, batch_size: int = 1000, small_batch: int = 8):
    """What a VQ-VAE is measured by, on ``images`` ``(N, C, 28, 28)`` in [0, 1]: ``(measures, codes)`` with
    ``measures`` = ``{"mse"`` (per pixel), ``"psnr"`` (dB), ``"used"``, ``"perplexity"`` (over all the images),
    ``"batch_perplexity"`` (the mean over batches of ``small_batch`` images, which under-reads usage)``}`` and the
    codes ``(N, 7, 7)``. The model's mode is kept."""
    was = model.training
    model.eval()                # eval: the quantizer's EMA and restarts leave the codebook alone
    errors, codes = [], []
    try:
        for x in images.split(batch_size):     # one pass gives both the reconstruction and the codes
            x_hat, q = model(x)
            errors.append((x_hat - x).pow(2).flatten(1).mean(1))
            codes.append(q.codes)
    finally:
        model.train(was)
    mse, codes = torch.cat(errors).mean().item(), torch.cat(codes)
    usage = codebook_usage(codes, model.num_codes)
    small = [codebook_usage(c, model.num_codes)["perplexity"] for c in codes.split(small_batch)]
    return {"mse": mse, "psnr": 10 * math.log10(1 / mse), "used": usage["used"], "perplexity": usage["perplexity"],
            "batch_perplexity": sum(small) / len(small)}, codes
