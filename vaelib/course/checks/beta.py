"""Checks for notebook 06 (beta and KL annealing)."""
import math

import torch

from ._feedback import _as_tensor, _seeded, answer, either, exercise_check, expect, gradients, one_number, one_value

__all__ = ['check_linear_warmup', 'check_free_bits_kl', 'check_sigmoid_schedule', 'check_beta_update']


@exercise_check("correct at the start, during and after the warm-up")
def check_linear_warmup(fn) -> bool:
    """``fn(step, beta_max, warmup_steps)``: linear KL warm-up from 0, capped at ``beta_max``: a float."""
    from vaelib.schedules import LinearWarmup
    for beta_max, warmup in ((1.0, 100), (4.0, 10)):
        reference = LinearWarmup(beta_max, warmup)
        for step in (0, warmup // 4, warmup // 2, warmup, 3 * warmup):
            value = float(answer(fn, step, beta_max, warmup))
            expect(value, reference(step), [
                (step > warmup and value > beta_max, f"beta keeps growing after the warm-up ({value:g} at step "
                 f"{step}). Hint: cap it at beta_max with min(...)"),
                (step / warmup, "beta_max is ignored. Hint: scale the ramp by beta_max"),
            ], otherwise=f"beta({step}) = {value:g} for beta_max={beta_max:g}, warmup={warmup}: should rise linearly "
                         "from 0 and reach beta_max at warmup_steps", near=lambda a, b: abs(a - b) < 1e-9)


@exercise_check("correct, and gradients flow only through the dimensions above free_nats")
def check_free_bits_kl(fn) -> bool:
    """``fn(kl_per_dim, free_nats)``: the free-bits KL term sum_j max(free_nats, KL_j averaged over the batch),
    for ``kl_per_dim`` of shape ``(B, D)`` (as vaelib.kl.gaussian_kl_per_dim returns). One number, through
    which gradients flow back to ``kl_per_dim``."""
    for g, free_nats in _seeded(9, (0.5, 0.2, 1.0)):
        # batch averages of about (0.1 ... 1.8) * free_nats, so that some dimensions are free and the total is
        # below D * free_nats; single entries fall on both sides of free_nats
        kl = (torch.rand(6, 5, generator=g) * 2 * free_nats * torch.tensor([0.1, 0.2, 0.4, 1.4, 1.8])).requires_grad_()
        out = _as_tensor(answer(fn, kl, free_nats))
        value = one_value(out, kl.shape[1], "one value per latent dimension",
                          "sum over the dimensions: the KL term is one number", "the KL term")
        batch_mean = kl.detach().mean(0)                                     # (D,)
        expect(value.detach(), batch_mean.clamp(min=free_nats).sum(), [
            (batch_mean.sum(), "the free bits are missing: that is the plain KL. Hint: a dimension whose KL is below "
             "free_nats costs free_nats, a constant"),
            (batch_mean.clamp(max=free_nats).sum(), "you cap the KL at free_nats, so a dimension above it costs "
             "nothing extra. Hint: take the maximum, not the minimum (clamp(min=...))"),
            (kl.detach().clamp(min=free_nats).sum(1).mean(), "you apply the free bits to each image. Hint: average the "
             "KL of each dimension over the batch first, then apply max(free_nats, .)"),
            (batch_mean.sum().clamp(min=free_nats * kl.shape[1]), "you apply the free bits to the total KL. Hint: each "
             "latent dimension gets its own free_nats"),
            ((batch_mean - free_nats).clamp(min=0).sum(), "max(0, KL_j - free_nats) has the same gradients but is D * "
             "free_nats smaller. Hint: write the term as defined, max(free_nats, KL_j)"),
            (kl.detach().sum(0).clamp(min=free_nats).sum(), "you sum the KL over the batch. "
             "Hint: average over the batch"),
        ], otherwise="wrong value. Hint: average kl_per_dim over the batch (dim 0), take max(free_nats, .) per "
                     "dimension, sum over dimensions", tol=1e-5, atol=1e-6)
        grad, = gradients(out, kl, "the value is right but no gradient flows back to the KL. Hint: torch "
                                   "operations only, no .item()/float()")
        wanted = (batch_mean > free_nats).float().expand_as(kl) / kl.shape[0]
        if grad is None or not torch.allclose(grad, wanted, atol=1e-6):
            return ("the value is right but the gradient is not. Hint: a dimension below free_nats should get no "
                    "gradient, one above it the gradient of its batch average")


def _sigmoid(a):
    return 1.0 / (1.0 + math.exp(-a)) if a > -700 else 0.0


@exercise_check("matches vaelib.schedules.Sigmoid before, at and after the midpoint")
def check_sigmoid_schedule(fn) -> bool:
    """``fn(step, beta_max, midpoint, width)``: beta_max / (1 + exp(-(step - midpoint) / width)), a float."""
    from vaelib.schedules import Sigmoid
    for beta_max, midpoint, width in ((2.0, 10, 2.0), (1.0, 500, 50.0), (4.0, 100, 10.0)):
        steps = [0, midpoint - int(width), midpoint, midpoint + int(width), midpoint + 6 * int(width)]
        values = [float(answer(fn, step, beta_max, midpoint, width)) for step in steps]
        at = lambda schedule: tuple(schedule(t) for t in steps)  # noqa: E731   a schedule's values at the steps
        table = ", ".join(f"beta({t}) = {v:g}" for t, v in zip(steps, values))
        expect(values, at(Sigmoid(beta_max, midpoint, width)), [  # float32 answers pass too
            (at(lambda t: beta_max * _sigmoid((t - midpoint) / width * -1)), "beta falls instead of rising. Hint: the "
             "exponent is -(step - midpoint) / width"),
            (at(lambda t: _sigmoid((t - midpoint) / width)), "beta_max is ignored: beta ends at 1. Hint: "
             "scale the sigmoid by beta_max"),
            (at(lambda t: beta_max * _sigmoid((t - midpoint) * width)), "the ramp is far too steep: you multiply by "
             "width. Hint: divide (step - midpoint) by width, so that a larger width is a slower ramp"),
            (at(lambda t: beta_max * _sigmoid(t / width)), f"beta(midpoint) = {values[2]:g}, should be beta_max / 2. "
             "Hint: shift the step by the midpoint"),
        ], otherwise=f"for beta_max={beta_max:g}, midpoint={midpoint}, width={width:g}: {table}. Hint: beta_max / (1 + "
                     "exp(-(step - midpoint) / width))",
           near=lambda vs, ws: all(abs(v - w) < 1e-6 for v, w in zip(vs, ws)))


@exercise_check("correct above, at and below the target, and clipped at 0")
def check_beta_update(fn) -> bool:
    """``fn(beta, kl, target, lr)``: one step of the beta controller, dual ascent on the constraint KL <= target:
    beta + lr * (kl - target), but never below 0. ``kl`` is the batch's mean KL (a float or a 0-d tensor);
    returns the new beta, a number that carries no gradient."""
    cases = [(1.0, 12.0, 5.0, 0.1), (2.0, 3.0, 5.0, 0.1), (0.1, 1.0, 5.0, 0.1), (0.5, 5.0, 5.0, 0.2),
             (3.0, torch.tensor(9.0, requires_grad=True), 4.0, 0.05)]
    for beta, kl, target, lr in cases:
        out = answer(fn, beta, kl, target, lr)
        if isinstance(out, torch.Tensor) and out.requires_grad:
            return ("your beta carries a gradient from the KL. Hint: beta is a multiplier that the controller sets, "
                    "not part of the loss to differentiate: use kl.item() or kl.detach()")
        value = one_number(out, message=f"you returned {out!r}. Hint: return the new beta, one number")
        k = float(kl.detach()) if isinstance(kl, torch.Tensor) else float(kl)
        expect(value, max(0.0, beta + lr * (k - target)), [
            (beta + lr * (k - target), f"beta = {value:g} is negative. Hint: a multiplier of an inequality constraint "
             "stays >= 0: clip at 0 (a negative beta would *reward* KL)"),
            (either(max(0.0, beta - lr * (k - target)), beta - lr * (k - target)), "the sign is flipped: your beta "
             "falls when the KL is above the target. Hint: too much KL calls for a "
             "larger beta, a stronger pull on the KL"),
            (max(0.0, beta + (k - target)), "the step size lr is missing. Hint: move beta by lr times the violation"),
            (beta * math.exp(lr * (k - target)), "that is a multiplicative update. It is a sound controller too, but "
             "this exercise asks for the additive step of dual ascent, clipped at 0"),
        ], otherwise=f"beta = {value:g} for beta = {beta}, kl = {k}, target = {target}, lr = {lr}. Hint: move beta by "
                     "lr times (kl - target), and keep it >= 0", near=lambda a, b: abs(a - b) < 1e-6)
