"""Latent diffusion: a DDPM (vaelib.diffusion) as the prior of a trained VAE, learned on its latents.

    params = posterior_parameters(vae, images)             # TensorData (N, 2, D): q(z|x)'s mean and std
    ddpm = DDPM(vae.latent_dim, scale=latent_scale(params), ema_decay=0.999)
    fit(ddpm, params, objective=latent_ddpm_objective, callbacks=[EMAUpdate()], epochs=85, batch_size=256)
    images = decode_samples(vae, ddpm, 64)

The DDPM is trained on draws z ~ q(z|x), a fresh one for every batch (the aggregate posterior, which the VAE's
N(0, I) prior only approximates: notebook 13's holes), divided by ``scale``, their standard deviation over all
images and dimensions, so that the diffusion sees unit variance. Sampling reverses it: z from the DDPM, decoded by
the VAE. The VAE is frozen: its encoder is only read, once, and its decoder only at sampling time.
"""
from __future__ import annotations

import torch

from .data import TensorData
from .diffusion import DDPM, ddpm_objective
from .objectives import Estimate  # noqa: F401  (the objective's return type)
from .vae import evaluating

__all__ = ["posterior_parameters", "latent_scale", "latent_draws", "latent_ddpm_objective", "decode_samples"]


@torch.no_grad()
def posterior_parameters(vae, images: torch.Tensor, batch_size: int = 1000) -> TensorData:
    """q(z|x) of each image ``(N, C, H, W)`` under ``vae`` (a vaelib.VAE with a Gaussian posterior), as fit's data:
    :class:`vaelib.data.TensorData` of ``(N, 2, D)``, the means in ``[:, 0]`` and the standard deviations in
    ``[:, 1]``. The VAE's train/eval mode is left as it was (vaelib.vae.evaluating)."""
    if not hasattr(vae, "encode") or not hasattr(vae, "latent_dim"):
        raise ValueError(f"vae= is a {type(vae).__name__}: give a vaelib VAE with a Gaussian posterior q(z|x)")
    rows = []
    with evaluating(vae):
        for batch in images.split(batch_size):
            q = vae.encode(batch)
            if not hasattr(q, "logvar"):
                raise ValueError("vae= has no diagonal-Gaussian posterior (mu, logvar): latent diffusion here "
                                 "needs one")
            rows.append(torch.stack([q.mu, torch.exp(0.5 * q.logvar)], 1))
    return TensorData(torch.cat(rows))


def latent_draws(params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One z ~ q(z|x) per row of posterior parameters ``(B, 2, D)``: ``(B, D)``."""
    eps = torch.randn(params[:, 0].shape, device=params.device, generator=generator)
    return params[:, 0] + params[:, 1] * eps


def latent_scale(params: TensorData | torch.Tensor, seed: int = 0) -> float:
    """The standard deviation of one z ~ q(z|x) per image over all images and dimensions (seed ``seed``)."""
    tensor = params.tensor if isinstance(params, TensorData) else params
    return latent_draws(tensor, torch.Generator(device=tensor.device).manual_seed(seed)).std().item()


def latent_ddpm_objective(model: DDPM, x: torch.Tensor, y=None, step: int = 0) -> Estimate:
    """``fit``'s objective for a :class:`DDPM` on posterior parameters ``(B, 2, D)`` (a fresh z ~ q(z|x) each
    time) or on latents ``(B, D)``: L_simple, reported per vector as ``loss_simple``."""
    if x.dim() == 3 and x.shape[1] == 2:
        x = latent_draws(x)
    elif x.dim() != 2:
        raise ValueError(f"expected posterior parameters (B, 2, D) or latents (B, D), got {tuple(x.shape)}: build the "
                         f"data with vaelib.latent_diffusion.posterior_parameters(vae, images)")
    return ddpm_objective(model, x)


@torch.no_grad()
def decode_samples(vae, ddpm: DDPM, n: int, generator: torch.Generator | None = None, binary: bool = True,
                   batch_size: int = 1000) -> torch.Tensor:
    """``n`` images ``(n, C, H, W)``: latents from ``ddpm`` decoded by ``vae``, with 0/1 pixels drawn from p(x|z)
    (``binary``, the course's protocol for sample scores) or the decoder's mean."""
    if ddpm.dim != vae.latent_dim:
        raise ValueError(f"ddpm= models {ddpm.dim}-dimensional latents and the VAE has {vae.latent_dim}: give the DDPM "
                         f"trained on this VAE's latents")
    out = []
    with evaluating(vae):
        for start in range(0, n, batch_size):
            z = ddpm.sample(min(batch_size, n - start), generator=generator)
            out.append(vae.likelihood.draw(vae.decoder(z), generator) if binary else vae.decode(z).mean)
    return torch.cat(out)
