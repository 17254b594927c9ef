"""Diffusion (DDPM, Ho et al. 2020) over vectors: a hierarchical VAE whose encoder is fixed.

The forward process adds Gaussian noise in T steps, ``q(x_t | x_t-1) = N(sqrt(1 - beta_t) x_t-1, beta_t I)``; its
marginals are closed form, ``q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)`` with ``abar_t = prod_s<=t
(1 - beta_s)``, and SNR(t) = abar_t / (1 - abar_t) falls from large to ~0. The reverse model
``p(x_t-1 | x_t) = N(mu_theta(x_t, t), sigma_t^2 I)`` is the decoder of every layer; with the noise predictor
``eps_theta`` its mean is ``(x_t - beta_t / sqrt(1 - abar_t) eps_theta) / sqrt(1 - beta_t)``. The negative ELBO,
in nats per vector,

    -ELBO = L_T + sum_{t=2..T} L_t-1 + L_0,
    L_T = KL(q(x_T | x_0) || N(0, I)),  L_t-1 = KL(q(x_t-1 | x_t, x_0) || p(x_t-1 | x_t)),  L_0 = -log p(x_0 | x_1)

is a sum of Gaussian KLs, each a weighted squared error of the predicted noise; dropping the weights gives
L_simple = E ||eps - eps_theta(x_t, t)||^2, the objective DDPM trains on (a reweighted ELBO: Kingma & Gao 2023).
Here x_0 is continuous (a VAE's latent vector), so L_0 is a Gaussian density and the bound is on a density.

Shapes: vectors ``(B, D)``; ``t`` ``(B,)`` long in [1, T].
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .callbacks import Callback
from .objectives import Estimate
from .validation import whole_number

__all__ = ["NoiseSchedule", "NoisePredictor", "DDPM", "ddpm_objective", "EMAUpdate"]


class NoiseSchedule(nn.Module):
    """beta_1 .. beta_T, linear from ``beta_start`` to ``beta_end`` (DDPM's 1e-4 to 0.02 at T = 1000, scaled to
    keep the same total noise at smaller T); index t = 1 .. T (index 0 holds abar_0 = 1)."""

    def __init__(self, steps: int = 200, beta_start: float | None = None, beta_end: float | None = None):
        super().__init__()
        self.steps = whole_number("steps", steps)
        scale = 1000 / self.steps
        beta_start = 1e-4 * scale if beta_start is None else beta_start
        beta_end = min(0.02 * scale, 0.999) if beta_end is None else beta_end
        betas = torch.cat([torch.zeros(1), torch.linspace(beta_start, beta_end, self.steps)]).double()
        self.register_buffer("betas", betas.float())
        self.register_buffer("alpha_bar", torch.cumprod(1 - betas, 0).float())

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """abar_t / (1 - abar_t)."""
        a = self.alpha_bar[t]
        return a / (1 - a)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps: a draw of q(x_t | x_0) in one step."""
        a = self.alpha_bar[t][:, None]
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor):
        """Mean and variance of q(x_t-1 | x_t, x_0), for t >= 2: ``((B, D), (B, 1))``."""
        beta, a, a_prev = self.betas[t][:, None], self.alpha_bar[t][:, None], self.alpha_bar[t - 1][:, None]
        mean = (a_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - a_prev) * xt) / (1 - a)
        return mean, beta * (1 - a_prev) / (1 - a)


class NoisePredictor(nn.Module):
    """eps_theta(x_t, t): a residual MLP on ``(B, D)`` with a sinusoidal embedding of t added at every block."""

    def __init__(self, dim: int, hidden: int = 512, blocks: int = 3, steps: int = 200):
        super().__init__()
        self.steps, self.hidden = steps, hidden
        self.inp = nn.Linear(dim, hidden)
        self.time = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(),
                                                  nn.Linear(hidden, hidden)) for _ in range(blocks))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim))   # no norm here: eps scales with x_t

    def embed(self, t: torch.Tensor) -> torch.Tensor:
        half = self.hidden // 2
        freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
        angles = t.float()[:, None] * freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], -1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h, e = self.inp(x), self.time(self.embed(t))
        for block in self.blocks:
            h = h + block(h + e)
        return self.out(h)


class DDPM(nn.Module):
    """A denoising diffusion model over ``(B, dim)`` vectors: a :class:`NoiseSchedule` and a noise predictor.

    ``predictor``: any module ``(x_t, t) -> eps`` (default :class:`NoisePredictor`). ``self.config`` records the
    constructor's arguments (for the default predictor).

    ``scale``: the standard deviation of the data; the diffusion runs on ``x / scale`` (unit variance, the scale the
    schedule is written for) and :meth:`sample` returns vectors multiplied back. Stable Diffusion's
    ``scaling_factor`` (0.18215 in SD 1.x) is ``1 / scale`` of its autoencoder's latents.

    ``ema_decay``: keep an exponential moving average of the predictor's weights (``self.ema``, updated by
    :meth:`update_ema` after each optimizer step: ``fit(..., callbacks=[EMAUpdate()])``); sampling and the bound
    then use the average, as DDPM does (decay 0.9999 there). :meth:`averaged` returns the averaged model alone.
    """

    def __init__(self, dim: int, steps: int = 200, hidden: int = 512, blocks: int = 3,
                 predictor: nn.Module | None = None, scale: float = 1.0, ema_decay: float | None = None):
        super().__init__()
        self.dim = whole_number("dim", dim)
        if not (isinstance(scale, (int, float)) and scale > 0 and math.isfinite(scale)):
            raise ValueError(f"scale={scale!r}: give the data's standard deviation, a number > 0")
        if ema_decay is not None and not 0 < ema_decay < 1:
            raise ValueError(f"ema_decay={ema_decay!r}: give a number in (0, 1), e.g. 0.999, or None for no average")
        self.schedule = NoiseSchedule(steps)
        self.predictor = NoisePredictor(dim, hidden, blocks, steps) if predictor is None else predictor
        self.scale, self.ema_decay = float(scale), ema_decay
        self.ema = None
        if ema_decay is not None:     # a copy that the optimizer never sees
            self.ema = copy.deepcopy(self.predictor).requires_grad_(False)
        self.config = {"dim": dim, "steps": steps, "hidden": hidden, "blocks": blocks, "scale": self.scale,
                       "ema_decay": ema_decay}

    @property
    def steps(self) -> int:
        return self.schedule.steps

    @property
    def denoiser(self) -> nn.Module:
        """The predictor that samples and bounds: the moving average when there is one."""
        return self.predictor if self.ema is None else self.ema

    @torch.no_grad()
    def update_ema(self) -> None:
        """ema <- decay * ema + (1 - decay) * weights (call after each optimizer step)."""
        if self.ema is None:
            return
        for avg, p in zip(self.ema.parameters(), self.predictor.parameters()):
            avg.lerp_(p, 1 - self.ema_decay)

    def averaged(self) -> "DDPM":
        """A copy of this model whose predictor holds the averaged weights, with no average of its own: what to
        ship (half the size)."""
        config = {**self.config, "ema_decay": None}
        if not isinstance(self.predictor, NoisePredictor):
            config["predictor"] = copy.deepcopy(self.denoiser)
        out = DDPM(**config).to(self.schedule.betas.device)
        out.predictor.load_state_dict(self.denoiser.state_dict())
        return out

    def _checked(self, x0: torch.Tensor) -> torch.Tensor:
        if x0.dim() != 2 or x0.shape[1] != self.dim:
            raise ValueError(f"expected vectors (B, {self.dim}), got {tuple(x0.shape)}: flatten the latents, and "
                             f"build the DDPM with dim= their size")
        return x0

    def loss_simple(self, x0: torch.Tensor, generator=None) -> torch.Tensor:
        """L_simple per vector ``(B,)``: ||eps - eps_theta(x_t, t)||^2 at one uniform t in [1, T] and one eps."""
        x0 = self._checked(x0) / self.scale
        t = torch.randint(1, self.steps + 1, (len(x0),), device=x0.device, generator=generator)
        eps = torch.randn(x0.shape, device=x0.device, generator=generator)
        return (eps - self.predictor(self.schedule.q_sample(x0, t, eps), t)).pow(2).sum(1)

    def _reverse(self, xt: torch.Tensor, t: torch.Tensor):
        """Mean and variance of p(x_t-1 | x_t): the posterior mean with x_0 predicted from eps_theta, and the
        posterior variance beta_tilde (beta_1 at t = 1, where beta_tilde is 0)."""
        s = self.schedule
        beta, a = s.betas[t][:, None], s.alpha_bar[t][:, None]
        mean = (xt - beta / (1 - a).sqrt() * self.denoiser(xt, t)) / (1 - beta).sqrt()
        var = torch.where(t[:, None] > 1, beta * (1 - s.alpha_bar[(t - 1).clamp_min(0)][:, None]) / (1 - a), beta)
        return mean, var

    @torch.no_grad()
    def elbo_terms(self, x0: torch.Tensor, generator=None) -> dict:
        """The bound's parts for each vector, one draw of x_t per t: ``{"prior": L_T (B,), "diffusion": (T-1, B) for
        t = 2..T, "decoder": L_0 (B,), "nll_bound": their sum (B,)}``, nats. ``nll_bound`` is -ELBO >= -log p(x_0).
        With a ``scale``, the terms are those of ``x_0 / scale`` and ``L_0`` adds ``dim * log(scale)`` (the change of
        variables), so ``nll_bound`` bounds the density of ``x_0`` itself."""
        x0 = self._checked(x0) / self.scale
        s, b = self.schedule, len(x0)
        a_T = s.alpha_bar[self.steps]
        mean_T, var_T = a_T.sqrt() * x0, (1 - a_T)
        prior = 0.5 * (var_T + mean_T.pow(2) - 1 - torch.log(var_T)).sum(1)
        terms = []
        for step in range(2, self.steps + 1):
            t = torch.full((b,), step, dtype=torch.long, device=x0.device)
            xt = s.q_sample(x0, t, torch.randn(x0.shape, device=x0.device, generator=generator))
            q_mean, q_var = s.q_posterior(x0, xt, t)
            p_mean, p_var = self._reverse(xt, t)
            terms.append(0.5 * (torch.log(p_var / q_var) + (q_var + (q_mean - p_mean).pow(2)) / p_var - 1).sum(1))
        t1 = torch.ones(b, dtype=torch.long, device=x0.device)
        x1 = s.q_sample(x0, t1, torch.randn(x0.shape, device=x0.device, generator=generator))
        mean_1, var_1 = self._reverse(x1, t1)
        decoder = 0.5 * (torch.log(2 * math.pi * var_1) + (x0 - mean_1).pow(2) / var_1).sum(1) + self.dim * math.log(
            self.scale)
        diffusion = torch.stack(terms) if terms else x0.new_zeros(0, b)
        return {"prior": prior, "diffusion": diffusion, "decoder": decoder,
                "nll_bound": prior + diffusion.sum(0) + decoder}

    @torch.no_grad()
    def sample(self, n: int, generator=None, trajectory: bool = False):
        """``n`` vectors by ancestral sampling from x_T ~ N(0, I) in T steps: ``(n, dim)``; with ``trajectory``,
        also every step's x_t, ``(T + 1, n, dim)`` from x_T down to x_0 (times ``scale``, as the data)."""
        was = self.training
        self.eval()
        try:
            device = self.schedule.betas.device
            x = torch.randn(n, self.dim, device=device, generator=generator)
            path = [x]
            for step in range(self.steps, 0, -1):
                mean, var = self._reverse(x, torch.full((n,), step, dtype=torch.long, device=device))
                noise = torch.randn(x.shape, device=device, generator=generator) if step > 1 else 0.0
                x = mean + var.sqrt() * noise
                path.append(x)
            return (x * self.scale, torch.stack(path) * self.scale) if trajectory else x * self.scale
        finally:
            self.train(was)


def ddpm_objective(model: DDPM, x: torch.Tensor, y=None, step: int = 0) -> Estimate:
    """``fit``'s objective for a :class:`DDPM` on vectors (``fit(model, vaelib.data.TensorData(latents),
    objective=ddpm_objective)``): L_simple, reported per vector as ``loss_simple``."""
    loss = model.loss_simple(x)
    return Estimate(loss.mean(), {"loss_simple": loss.detach().sum()})


class EMAUpdate(Callback):
    """``fit(ddpm, ..., callbacks=[EMAUpdate()])``: moves a :class:`DDPM`'s average after every optimizer step."""

    def on_batch_end(self, run, estimate) -> None:
        run.model.update_ema()
