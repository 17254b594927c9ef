"""A hierarchical VAE with top-down inference (the ladder VAE, Sonderby et al. 2016, in NVAE's residual form,
Vahdat & Kautz 2020) at MNIST scale.

Generative model, L stochastic layers, top (L) to bottom (1)::

    z_L ~ N(0, I),   z_l ~ p(z_l | z_>l) = N(mu_p(s_l), sigma_p(s_l)),   x ~ Bernoulli(logits(z_1, s_1))

where the top-down state ``s_l`` summarizes the layers above (``s_l = f_l(z_l+1, s_l+1)``). Inference runs the
same top-down path: a deterministic bottom-up pass gives features ``h_1 .. h_L`` of x, and

    q(z_L | x) = N(mu(h_L), sigma(h_L)),   q(z_l | z_>l, x) = N(mu_p + delta_mu, sigma_p * delta_sigma)

with ``(delta_mu, log delta_sigma)`` computed from ``(s_l, h_l)``: the posterior is written as a correction to the
conditional prior, which is what keeps a deep hierarchy stable (NVAE). The ELBO has one KL per layer, each to the
*conditional* prior, inside the expectation over the layers above (one sample of them):

    ELBO = E_q[log p(x | z)] - KL(q(z_L | x) || p(z_L)) - sum_{l<L} E_q(z_>l)[KL(q(z_l | z_>l, x) || p(z_l | z_>l))]

Shapes: images ``(B, 1, 28, 28)`` binary; ``latent_dims`` bottom to top, e.g. ``(32, 16)``: ``z_1`` is ``(B, 32)``.
Log-variances are clamped to [-8, 8] (``LOGVAR_RANGE``), so that no layer can blow up a KL or a sample.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

from .objectives import Estimate
from .schedules import LinearWarmup

__all__ = ["HierarchicalVAE", "LayerTerms", "hierarchical_objective", "layer_statistics", "LOGVAR_RANGE"]

LOGVAR_RANGE = (-8.0, 8.0)


def _gaussian(mu: torch.Tensor, logvar: torch.Tensor) -> Normal:
    return Normal(mu, torch.exp(0.5 * logvar.clamp(*LOGVAR_RANGE)))


def _kl(q: Normal, p: Normal) -> torch.Tensor:
    """KL(q || p) of diagonal Gaussians, summed over the layer's dimensions: ``(B,)``."""
    return torch.distributions.kl_divergence(q, p).sum(-1)


@dataclass
class LayerTerms:
    """One pass of :meth:`HierarchicalVAE.terms`: ``reconstruction`` log p(x|z) ``(B,)``, ``kl`` one ``(B,)`` per
    layer bottom to top (each to its conditional prior), ``z`` the samples, ``log_q`` and ``log_p`` ``(B,)``
    (the samples' log-densities under the posterior and the prior, summed over layers)."""

    reconstruction: torch.Tensor
    kl: list
    z: list
    log_q: torch.Tensor
    log_p: torch.Tensor

    @property
    def value(self) -> torch.Tensor:
        """The ELBO, ``(B,)``: reconstruction minus every layer's KL (the name of vaelib.bounds.ELBOTerms)."""
        return self.reconstruction - sum(self.kl)


class HierarchicalVAE(nn.Module):
    """A top-down hierarchical VAE for ``(B, 1, 28, 28)`` binary images (see the module docstring).

    Args:
        latent_dims: each stochastic layer's size, bottom (z_1) to top (z_L); two or three layers.
        hidden: width of the deterministic paths.
        channels: width of the conv encoder's and decoder's first convolution.
        inference: ``"top_down"`` (the ladder / NVAE form above) or ``"bottom_up"``: q(z_1 | x), then
            q(z_l+1 | z_l), each layer inferred from the one below only, the same generative model.
        skip: the decoder reads the top-down state beside z_1 (NVAE's path to the output) instead of z_1 alone
            (the ladder VAE's p(x | z_1)); with it, z_1 can be switched off while the layers above carry x.
    :meth:`sample` takes a temperature per layer, bottom to top: the prior's standard deviation times it (NVAE's
    t < 1 gives cleaner samples; 1 is the model). ``self.config`` records the constructor's arguments.
    """

    def __init__(self, latent_dims=(32, 16), hidden: int = 256, channels: int = 32, skip: bool = False,
                 inference: str = "top_down"):
        super().__init__()
        latent_dims = tuple(int(d) for d in latent_dims)
        if not latent_dims or min(latent_dims) < 1:
            raise ValueError(f"latent_dims={latent_dims!r}: one positive size per layer, bottom to top, e.g. (32, 16)")
        if inference not in ("top_down", "bottom_up"):
            raise ValueError(f"inference={inference!r}: 'top_down' (the ladder / NVAE form) or 'bottom_up'")
        self.latent_dims, self.hidden, self.inference = latent_dims, hidden, inference
        self.skip = bool(skip) and len(latent_dims) > 1
        self.config = {"latent_dims": list(latent_dims), "hidden": hidden, "channels": channels, "skip": self.skip,
                       "inference": inference}
        self.image_shape = (1, 28, 28)
        c, L = channels, len(latent_dims)
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c, 4, 2, 1), nn.ELU(), nn.Conv2d(c, 2 * c, 4, 2, 1), nn.ELU(), nn.Flatten(),
            nn.Linear(2 * c * 49, hidden), nn.ELU())
        # top-down: state s_l from (z_l+1, s_l+1), and from it the conditional prior of layer l
        self.down = nn.ModuleList(nn.Sequential(nn.Linear(latent_dims[l + 1] + (hidden if l + 1 < L - 1 else 0),
                                                          hidden), nn.ELU()) for l in range(L - 1))
        self.prior_heads = nn.ModuleList(nn.Linear(hidden, 2 * latent_dims[l]) for l in range(L - 1))
        if inference == "top_down":
            self.up = nn.ModuleList(nn.Sequential(nn.Linear(hidden, hidden), nn.ELU()) for _ in range(L - 1))
            self.top_posterior = nn.Linear(hidden, 2 * latent_dims[-1])
            self.posterior_heads = nn.ModuleList(      # the posterior's correction to the prior at layer l
                nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ELU(), nn.Linear(hidden, 2 * latent_dims[l]))
                for l in range(L - 1))
            for head in self.posterior_heads:           # start as q = p, the residual form's neutral point
                nn.init.zeros_(head[-1].weight)
                nn.init.zeros_(head[-1].bias)
        else:  # q(z_1 | x), then q(z_l+1 | z_l): each layer sees only the one below (Burda et al.'s form)
            self.bottom_up_heads = nn.ModuleList(
                [nn.Linear(hidden, 2 * latent_dims[0])] + [
                    nn.Sequential(nn.Linear(latent_dims[l - 1], hidden), nn.ELU(), nn.Linear(hidden, 2 * latent_dims[l]))
                    for l in range(1, L)])
        self.decoder = nn.Sequential(
            nn.Linear(latent_dims[0] + (hidden if self.skip else 0), hidden), nn.ELU(),
            nn.Linear(hidden, 2 * c * 49), nn.ELU(), nn.Unflatten(1, (2 * c, 7, 7)),
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.ELU(), nn.ConvTranspose2d(c, 1, 4, 2, 1))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _bottom_up(self, x: torch.Tensor) -> list:
        h = [self.encoder(x)]
        for layer in getattr(self, "up", ()):
            h.append(layer(h[-1]))
        return h                                                # h_1 .. h_L

    def _prior_step(self, l: int, z_above: torch.Tensor, state):
        """One step down: the state s_l from z_l+1 and s_l+1 (None above the top), and the raw conditional prior
        parameters ``(mu_p, logvar_p)`` of layer l."""
        state = self.down[l](z_above if state is None else torch.cat([z_above, state], -1))
        return state, self.prior_heads[l](state).chunk(2, -1)

    def _posterior(self, x: torch.Tensor, noise, k: int = 1):
        """``k`` samples of every layer from q(z | x) per image (rows sample-major, ``k * B``), with both passes'
        distributions: as :meth:`_top_down`. The deterministic bottom-up pass runs once per image."""
        def repeated(h):
            return h if k == 1 else h.expand(k, *h.shape).reshape(k * len(h), *h.shape[1:])
        if self.inference == "top_down":
            return self._top_down([repeated(h) for h in self._bottom_up(x)], noise)
        L, h = len(self.latent_dims), repeated(self.encoder(x))
        z, posteriors = [], []
        for l in range(L):
            q = _gaussian(*self.bottom_up_heads[l](h if l == 0 else z[-1]).chunk(2, -1))
            posteriors.append(q)
            z.append(q.loc + q.scale * noise(self.latent_dims[l]))
        pairs, state = [None] * L, None
        top = Normal(torch.zeros_like(z[-1]), torch.ones_like(z[-1]))
        pairs[-1] = (posteriors[-1], top)
        for l in range(L - 2, -1, -1):
            state, prior = self._prior_step(l, z[l + 1], state)
            pairs[l] = (posteriors[l], _gaussian(*prior))
        decoder_input = torch.cat([z[0], state], -1) if self.skip else z[0]
        return z, decoder_input, pairs

    def _noise(self, n: int, generator=None, k: int = 1):
        """``noise(dim)``: standard normal ``(n, dim)``. ``generator`` may be a list of one generator per image of
        ``n = k * B`` rows in sample-major order (row i * B + b is image b's sample i), as ``vaelib.evaluation``
        passes them, so that an image's samples do not depend on the other images evaluated with it."""
        device = self.device

        def noise(dim: int) -> torch.Tensor:
            if isinstance(generator, (list, tuple)):
                return torch.stack([torch.randn(k, dim, generator=g, device=device) for g in generator],
                                   dim=1).reshape(n, dim)
            return torch.randn(n, dim, generator=generator, device=device)
        return noise

    def _top_down(self, h, noise, temperature=None):
        """Sample z_L .. z_1 top-down with ``noise`` (see :meth:`_noise`); ``h`` a list of bottom-up features, or an
        int n to sample the prior. Returns (z bottom to top, the decoder's input, per-layer (q, p) bottom to top,
        q None when sampling the prior)."""
        L = len(self.latent_dims)
        t = [1.0] * L if temperature is None else [float(v) for v in temperature]
        prior_only = isinstance(h, int)
        z, pairs, state = [None] * L, [None] * L, None
        if prior_only:
            loc = torch.zeros(h, self.latent_dims[-1], device=self.device)
            top = (None, Normal(loc, torch.ones_like(loc)))
        else:
            q = _gaussian(*self.top_posterior(h[-1]).chunk(2, -1))
            top = (q, Normal(torch.zeros_like(q.loc), torch.ones_like(q.loc)))
        for l in range(L - 1, -1, -1):
            if l < L - 1:
                state, (mu_p, logvar_p) = self._prior_step(l, z[l + 1], state)
                p = _gaussian(mu_p, logvar_p)
                if prior_only:
                    pairs[l] = (None, p)
                else:
                    d_mu, d_logvar = self.posterior_heads[l](torch.cat([state, h[l]], -1)).chunk(2, -1)
                    pairs[l] = (_gaussian(mu_p + d_mu, logvar_p.clamp(*LOGVAR_RANGE) + d_logvar), p)  # sigma_p * d
            else:
                pairs[l] = top
            q, p = pairs[l]
            dist, scale = (p, t[l]) if q is None else (q, 1.0)
            z[l] = dist.loc + scale * dist.scale * noise(self.latent_dims[l])
        decoder_input = torch.cat([z[0], state], -1) if self.skip else z[0]
        return z, decoder_input, pairs

    def decode(self, decoder_input: torch.Tensor) -> Independent:
        """p(x | z_1, s_1): independent Bernoulli pixels, ``(B, 1, 28, 28)`` events."""
        return Independent(Bernoulli(logits=self.decoder(decoder_input)), 3)

    def terms(self, x: torch.Tensor, generator=None, k: int = 1) -> LayerTerms:
        """``k`` samples of every layer for each of the images ``x`` ``(B, 1, 28, 28)``: the ELBO's parts, per layer,
        each ``(k * B,)`` in sample-major order (row i * B + b is image b's sample i). (``generator``: see
        :meth:`_noise`.)"""
        z, decoder_input, pairs = self._posterior(x, self._noise(k * len(x), generator, k), k)
        if k > 1:
            x = x.expand(k, *x.shape).reshape(k * len(x), *x.shape[1:])
        reconstruction = self.decode(decoder_input).log_prob(x)
        kl = [_kl(q, p) for q, p in pairs]
        log_q = sum(q.log_prob(zl).sum(-1) for (q, _), zl in zip(pairs, z))
        log_p = sum(p.log_prob(zl).sum(-1) for (_, p), zl in zip(pairs, z))
        return LayerTerms(reconstruction, kl, z, log_q, log_p)

    def log_importance_weights(self, x: torch.Tensor, k: int, generator=None, y=None):
        """``(log_w, z_1)``: k samples of the whole hierarchy per image, ``log_w`` ``(k, B)``; the same contract as
        :func:`vaelib.bounds.log_importance_weights`, so that ``iwae_bound`` and ``iwae_nll`` evaluate this model."""
        b = len(x)
        t = self.terms(x, generator=generator, k=k)
        log_w = t.reconstruction + t.log_p - t.log_q
        return log_w.view(k, b), t.z[0].view(k, b, -1)

    @torch.no_grad()
    def sample(self, n: int, generator=None, temperature=None, draw: bool = False) -> torch.Tensor:
        """``n`` images from the prior: pixel probabilities ``(n, 1, 28, 28)`` (``draw=True``: 0/1 pixels).
        ``temperature``: per layer, bottom to top (default 1 everywhere: the model itself)."""
        was = self.training
        self.eval()
        try:
            _, decoder_input, _ = self._top_down(n, self._noise(n, generator), temperature)
            probs = torch.sigmoid(self.decoder(decoder_input))
            return torch.bernoulli(probs, generator=generator) if draw else probs
        finally:
            self.train(was)

    @torch.no_grad()
    def resample(self, x: torch.Tensor, keep, generator=None) -> torch.Tensor:
        """Encode ``x``, keep the posterior samples of the layers in ``keep`` (indices, 0 = bottom), draw the
        others from their conditional priors given the layers above, decode: pixel probabilities
        ``(B, 1, 28, 28)``. Redrawing the bottom layer changes the strokes; redrawing the top, the item itself."""
        was = self.training
        self.eval()
        try:
            noise = self._noise(len(x), generator)
            z_post, _, _ = self._posterior(x, noise)
            L, keep, state = len(self.latent_dims), set(keep), None
            z = [None] * L
            for l in range(L - 1, -1, -1):
                if l < L - 1:
                    state, prior = self._prior_step(l, z[l + 1], state)
                    p = _gaussian(*prior)
                    fresh = p.loc + p.scale * noise(self.latent_dims[l])
                else:
                    fresh = noise(self.latent_dims[l])
                z[l] = z_post[l] if l in keep else fresh
            decoder_input = torch.cat([z[0], state], -1) if self.skip else z[0]
            return torch.sigmoid(self.decoder(decoder_input))
        finally:
            self.train(was)


class hierarchical_objective:  # noqa: N801  (used like a function: objective=hierarchical_objective(...))
    """``fit``'s objective for a :class:`HierarchicalVAE`: the ELBO, with the two cures for inactive upper layers.

    Args:
        warmup_steps: the KL weight rises linearly from 0 to 1 over this many steps (LVAE's warm-up); 0: none.
        free_bits: per layer (group), the batch-mean KL counts as at least this many nats in the loss (0.5 in
            ladder-vae-pytorch); the reported ELBO is always the true one.

    Reports per image ``elbo``, ``reconstruction`` and ``kl_1`` .. ``kl_L`` (bottom to top).
    """

    def __init__(self, warmup_steps: int = 0, free_bits: float = 0.0):
        self.beta = LinearWarmup(beta_max=1.0, warmup_steps=warmup_steps) if warmup_steps else None
        self.free_bits = float(free_bits)

    def __call__(self, model: HierarchicalVAE, x: torch.Tensor, y=None, step: int = 0) -> Estimate:
        t = model.terms(x)
        kl_loss = [kl.mean().clamp_min(self.free_bits) if self.free_bits else kl.mean() for kl in t.kl]
        beta = 1.0 if self.beta is None or not model.training else self.beta(step)
        loss = -t.reconstruction.mean() + beta * sum(kl_loss)
        sums = {"elbo": t.value.detach().sum(), "reconstruction": t.reconstruction.detach().sum()}
        sums.update({f"kl_{i + 1}": kl.detach().sum() for i, kl in enumerate(t.kl)})
        return Estimate(loss, sums, beta)


@torch.no_grad()
def layer_statistics(model: HierarchicalVAE, images: torch.Tensor, batch_size: int = 500, seed: int = 0,
                     threshold: float = 0.01) -> list[dict]:
    """Per layer, bottom to top, over ``images`` ``(N, 1, 28, 28)``: ``kl``, the mean KL to its conditional prior
    (nats), and ``active_units``, the dimensions whose posterior mean varies with x (Cov_x > ``threshold``, the
    criterion of notebook 11; the layers above are sampled, from ``seed``). The model's mode is kept."""
    was = model.training
    model.eval()
    try:
        g = torch.Generator(device=model.device).manual_seed(seed)
        kl, means = [[] for _ in model.latent_dims], [[] for _ in model.latent_dims]
        for batch in images.to(model.device).split(batch_size):
            _, _, pairs = model._posterior(batch, model._noise(len(batch), g))
            for i, (q, p) in enumerate(pairs):
                kl[i].append(torch.distributions.kl_divergence(q, p).sum(-1))
                means[i].append(q.loc)
        return [{"dims": d, "kl": torch.cat(k).mean().item(),
                 "active_units": int((torch.cat(m).var(0) > threshold).sum())}
                for k, m, d in zip(kl, means, model.latent_dims)]
    finally:
        model.train(was)
