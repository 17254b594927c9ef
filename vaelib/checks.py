"""Checks for the exercises: call one on your own function and read what it says.

Each check runs your function on several cases, compares it with the reference, and prints either
one success line or what is wrong with a hint (the usual mistakes are recognized by the numbers
they produce: a flipped sign, a missing sum over dimensions, a variance where a log-variance was
meant). The reference solution is never shown. Every check returns ``True`` or ``False``.

    from vaelib.checks import check_gaussian_kl
    check_gaussian_kl(my_kl)

For grading, set ``VAELIB_CHECKS_STRICT=1``: a failing check then raises ``AssertionError``, so a
notebook run under nbval (``pytest --nbval-lax student/``) fails where a check fails.
"""
from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F

__all__ = ["check_gaussian_kl", "check_reparameterize", "check_bernoulli_log_likelihood", "check_vae_loss",
           "check_iwae_from_log_weights", "check_bits_per_dim", "check_slerp", "check_linear_warmup"]


def _report(name: str, ok: bool, message: str) -> bool:
    print(f"{'✓' if ok else '✗'} {name}: {message}")
    if not ok and os.environ.get("VAELIB_CHECKS_STRICT", "") not in ("", "0"):
        raise AssertionError(f"{name}: {message}")
    return ok


def _call(name, fn, *args):
    try:
        return fn(*args), None
    except NotImplementedError:
        raise  # an unsolved exercise stops the notebook there, as nbgrader's stubs intend
    except Exception as err:  # the learner's code: any error is feedback, not a crash of the check
        return None, f"your function raised {type(err).__name__}: {err}"


def _close(a, b, tol=1e-4):
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=tol, atol=tol)


def _as_tensor(value):
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=torch.float32)


def _cases(seed=0, batch=5, dims=4):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, dims, generator=g), torch.randn(batch, dims, generator=g)) for _ in range(3)]


def check_gaussian_kl(fn) -> bool:
    """``fn(mu, logvar)``: KL(N(mu, exp(logvar)) || N(0, I)) per example, ``(B, D) -> (B,)``."""
    name = "check_gaussian_kl"
    for mu, logvar in _cases():
        out, error = _call(name, fn, mu.clone(), logvar.clone())
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        per_dim = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)
        expected = per_dim.sum(-1)
        if _close(out, expected):
            continue
        if out.shape == per_dim.shape and _close(out, per_dim):
            return _report(name, False, "you return one KL per latent dimension, (B, D). Hint: the KL of the "
                                        "whole latent vector sums over the dimensions: .sum(-1)")
        if out.shape == expected.shape and _close(out, -expected):
            return _report(name, False, "the sign is flipped. Hint: a KL divergence is never negative")
        if out.shape == expected.shape and _close(out, per_dim.mean(-1)):
            return _report(name, False, "you average over latent dimensions. Hint: sum over them instead")
        if out.shape == expected.shape and _close(out, 2 * expected):
            return _report(name, False, "twice the right value. Hint: the closed form has a factor 1/2")
        var_as_logvar = 0.5 * (mu.pow(2) + logvar - torch.log(logvar.abs().clamp_min(1e-12)) - 1).sum(-1)
        if out.shape == expected.shape and (_close(out, var_as_logvar) or not torch.isfinite(out).all()):
            return _report(name, False, "you used logvar as if it were the variance. Hint: the variance is "
                                        "logvar.exp(), and log(variance) is logvar itself")
        if out.dim() == 0:
            return _report(name, False, f"a single number; expected one KL per example, shape {tuple(expected.shape)}")
        return _report(name, False, f"wrong values (shape {tuple(out.shape)}, expected {tuple(expected.shape)}). "
                                    "Hint: write KL_j = 1/2 (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1), then sum over j")
    return _report(name, True, "correct on 3 random batches")


def check_reparameterize(fn) -> bool:
    """``fn(mu, logvar, eps)``: the reparameterized sample z = mu + exp(logvar / 2) * eps."""
    name = "check_reparameterize"
    for mu, logvar in _cases(1):
        eps = torch.randn_like(mu)
        mu_, logvar_ = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
        out, error = _call(name, fn, mu_, logvar_, eps)
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        expected = mu + torch.exp(0.5 * logvar) * eps
        if _close(out.detach(), expected):
            if out.grad_fn is None or not out.requires_grad:
                return _report(name, False, "the values are right but no gradient flows to mu and logvar. Hint: "
                                            "build z from mu and logvar with torch operations, no .detach()/.item()")
            continue
        if _close(out.detach(), mu + torch.exp(logvar) * eps):
            return _report(name, False, "you scale eps by the variance. Hint: the standard deviation is exp(logvar / 2)")
        if _close(out.detach(), mu + logvar * eps):
            return _report(name, False, "you scale eps by logvar itself. Hint: sigma = exp(logvar / 2)")
        if _close(out.detach(), torch.exp(0.5 * logvar) * eps):
            return _report(name, False, "the mean is missing. Hint: shift the scaled noise by mu")
        return _report(name, False, "wrong values. Hint: z = mu + sigma * eps with sigma = exp(logvar / 2), "
                                    "using the eps you are given")
    return _report(name, True, "correct, and gradients reach mu and logvar")


def check_bernoulli_log_likelihood(fn) -> bool:
    """``fn(logits, x)``: log p(x|z) under a Bernoulli per pixel, summed over pixels: ``(B,1,28,28) -> (B,)``."""
    name = "check_bernoulli_log_likelihood"
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        logits = torch.randn(4, 1, 28, 28, generator=g) * 3
        x = torch.bernoulli(torch.rand(4, 1, 28, 28, generator=g), generator=g)
        out, error = _call(name, fn, logits.clone(), x.clone())
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        per_pixel = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        expected = per_pixel.sum((1, 2, 3))
        if _close(out, expected, 1e-3):
            continue
        if out.shape == expected.shape and _close(out, -expected, 1e-3):
            return _report(name, False, "the sign is flipped: that is the binary cross-entropy, minus the "
                                        "log-likelihood. Hint: a log-probability of 0/1 data is <= 0")
        if out.shape == expected.shape and _close(out, per_pixel.mean((1, 2, 3)), 1e-3):
            return _report(name, False, "you average over pixels. Hint: the pixels are independent given z, "
                                        "so their log-probabilities add up: sum over them")
        if out.dim() == 0:
            return _report(name, False, "a single number for the whole batch. Hint: one log-likelihood per "
                                        "image, summed over its pixels (dims 1, 2, 3)")
        if out.shape == expected.shape:
            return _report(name, False, "wrong values. Hint: with p = sigmoid(logits), log p(x) = "
                                        "x log p + (1 - x) log(1 - p), summed over pixels")
        return _report(name, False, f"shape {tuple(out.shape)}; expected one value per image, {tuple(expected.shape)}")
    return _report(name, True, "correct on 3 random batches")


def check_vae_loss(fn) -> bool:
    """``fn(logits, x, mu, logvar)``: the VAE loss to minimize, minus the ELBO averaged over the batch
    (Bernoulli reconstruction summed over pixels, Gaussian KL summed over latent dimensions)."""
    name = "check_vae_loss"
    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        logits = torch.randn(6, 1, 28, 28, generator=g) * 2
        x = torch.bernoulli(torch.rand(6, 1, 28, 28, generator=g), generator=g)
        mu, logvar = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
        out, error = _call(name, fn, logits.clone(), x.clone(), mu.clone(), logvar.clone())
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(-1)
        expected = (rec + kl).mean()
        if out.dim() > 0 and out.numel() > 1:
            return _report(name, False, f"shape {tuple(out.shape)}: the loss is one number. Hint: average the "
                                        "per-image losses over the batch")
        value = out.reshape(())
        near = lambda a: torch.allclose(value.float(), a.float(), rtol=1e-4, atol=1e-3)  # noqa: E731
        if near(expected):
            continue
        if near(-expected):
            return _report(name, False, "that is the ELBO itself. Hint: the loss to minimize is minus the ELBO")
        if near(rec.mean()):
            return _report(name, False, "the KL term is missing. Hint: loss = reconstruction + KL")
        if near((rec - kl).mean()):
            return _report(name, False, "the KL has the wrong sign. Hint: the KL is a penalty, add it")
        bce_mean = F.binary_cross_entropy_with_logits(logits, x)
        if near(bce_mean + kl.mean()) or near(bce_mean + kl.sum()):
            return _report(name, False, "the reconstruction term is averaged over pixels: that weighs the KL 784 "
                                        "times too much. Hint: sum over pixels (reduction='sum', then / batch)")
        if near(rec.sum() + kl.sum()):
            return _report(name, False, "you sum over the batch. Hint: average over the batch instead")
        return _report(name, False, "wrong value. Hint: mean over the batch of [BCE summed over pixels + KL "
                                    "summed over latent dimensions]")
    return _report(name, True, "correct on 3 random batches")


def check_iwae_from_log_weights(fn) -> bool:
    """``fn(log_w)``: the importance-weighted bound from log weights ``(k, B)``: log mean_k exp(log_w), ``(B,)``."""
    name = "check_iwae_from_log_weights"
    g = torch.Generator().manual_seed(3)
    for k in (1, 7, 50):
        log_w = torch.randn(k, 6, generator=g) * 3 - 400  # realistic magnitudes: exp() underflows to 0
        out, error = _call(name, fn, log_w.clone())
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        expected = torch.logsumexp(log_w, 0) - math.log(k)
        if _close(out, expected, 1e-3):
            continue
        if out.shape == expected.shape and not torch.isfinite(out).all():
            return _report(name, False, "you get -inf: exp(-400) underflows. Hint: use torch.logsumexp, "
                                        "which subtracts the maximum before exponentiating")
        if k > 1 and out.shape == expected.shape and _close(out, torch.logsumexp(log_w, 0), 1e-3):
            return _report(name, False, "that is log of the sum, not of the mean. Hint: subtract log k")
        if k > 1 and out.shape == expected.shape and _close(out, log_w.mean(0), 1e-3):
            return _report(name, False, "that is the mean of the log weights: the ELBO, not the IWAE bound. "
                                        "Hint: average the weights, then take the log")
        return _report(name, False, f"wrong values for k={k}. Hint: log (1/k) sum_i exp(log_w_i), per example")
    return _report(name, True, "correct for k = 1, 7 and 50, and numerically stable")


def check_bits_per_dim(fn) -> bool:
    """``fn(nats)``: nats per 28x28 image -> bits per pixel."""
    name = "check_bits_per_dim"
    for nats in (80.0, 543.43, 100.0):
        out, error = _call(name, fn, nats)
        if error:
            return _report(name, False, error)
        value = float(out)
        expected = nats / (784 * math.log(2))
        if abs(value - expected) < 1e-6 * max(1.0, expected):
            continue
        if abs(value - nats / math.log(2)) < 1e-6 * nats:
            return _report(name, False, "that is bits per image. Hint: divide by the 784 pixels too")
        if abs(value - nats / 784) < 1e-9 * nats:
            return _report(name, False, "that is nats per pixel. Hint: one nat is 1/ln 2 bits")
        if abs(value - nats * math.log(2) / 784) < 1e-9 * nats:
            return _report(name, False, "you multiplied by ln 2. Hint: bits = nats / ln 2")
        return _report(name, False, "wrong value. Hint: bits/dim = nats / (784 * ln 2)")
    return _report(name, True, "correct (80 nats is about 0.147 bits/dim)")


def check_slerp(fn) -> bool:
    """``fn(z0, z1, t)``: spherical interpolation ``(D,), (D,), (T,) -> (T, D)`` (as vaelib.plotting.slerp)."""
    from .plotting import lerp, slerp
    name = "check_slerp"
    g = torch.Generator().manual_seed(4)
    t = torch.linspace(0, 1, 7)
    for _ in range(3):
        z0, z1 = torch.randn(16, generator=g), torch.randn(16, generator=g)
        out, error = _call(name, fn, z0.clone(), z1.clone(), t.clone())
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        expected = slerp(z0, z1, t)
        if _close(out, expected, 1e-3):
            continue
        if out.shape == expected.shape and _close(out, lerp(z0, z1, t), 1e-3):
            return _report(name, False, "that is the straight line (lerp). Hint: rotate along the great circle: "
                                        "sin((1-t) omega)/sin(omega) and sin(t omega)/sin(omega)")
        if out.shape == expected.shape and not (_close(out[0], z0, 1e-3) and _close(out[-1], z1, 1e-3)):
            return _report(name, False, "the path does not start at z0 and end at z1. Hint: check t=0 and t=1")
        return _report(name, False, f"wrong values (shape {tuple(out.shape)}, expected {tuple(expected.shape)}). "
                                    "Hint: interpolate the directions on the sphere and the norms linearly")
    return _report(name, True, "correct on 3 random pairs")


def check_linear_warmup(fn) -> bool:
    """``fn(step, beta_max, warmup_steps)``: linear KL warm-up from 0, capped at ``beta_max``."""
    from .schedules import LinearWarmup
    name = "check_linear_warmup"
    for beta_max, warmup in ((1.0, 100), (4.0, 10)):
        reference = LinearWarmup(beta_max, warmup)
        for step in (0, warmup // 4, warmup // 2, warmup, 3 * warmup):
            out, error = _call(name, fn, step, beta_max, warmup)
            if error:
                return _report(name, False, error)
            value, expected = float(out), reference(step)
            if abs(value - expected) < 1e-9:
                continue
            if step > warmup and value > beta_max:
                return _report(name, False, f"beta keeps growing after the warm-up ({value:g} at step {step}). "
                                            "Hint: cap it at beta_max with min(...)")
            if abs(value - step / warmup) < 1e-9:
                return _report(name, False, "beta_max is ignored. Hint: scale the ramp by beta_max")
            return _report(name, False, f"beta({step}) = {value:g} for beta_max={beta_max:g}, warmup={warmup}: "
                                        "should rise linearly from 0 and reach beta_max at warmup_steps")
    return _report(name, True, "correct at the start, during and after the warm-up")
