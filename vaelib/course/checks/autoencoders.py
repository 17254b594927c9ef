"""Checks for notebook 01 (autoencoders and why they do not generate)."""
import math

import torch
import torch.nn.functional as F

from ._feedback import _as_tensor, _close, _seeded, answer, correct, diagnose, exercise_check

__all__ = ['check_interpolate_codes', 'check_autoencoder_16d']


@exercise_check("correct for 3 pairs of codes (2-D, 16-D, 5-D)")
def check_interpolate_codes(fn) -> bool:
    """``fn(z0, z1, n)``: ``n`` evenly spaced points on the straight line from code ``z0`` to code ``z1``, both
    ends included, ``(D,), (D,), int -> (n, D)``: row 0 is ``z0``, row ``n - 1`` is ``z1``."""
    for g, (dims, n) in _seeded(9, ((2, 10), (16, 7), (5, 2))):
        z0, z1 = torch.randn(dims, generator=g), torch.randn(dims, generator=g)
        out = _as_tensor(answer(fn, z0, z1, n))
        t = torch.linspace(0, 1, n).unsqueeze(1)
        expected = (1 - t) * z0 + t * z1
        if _close(out, expected):
            continue
        if out.shape == (dims, n) and dims != n:
            return (f"shape {tuple(out.shape)}: one column per point. Hint: one row per point, ({n}, {dims}), so that "
                    "the rows can go through the decoder")
        if out.dim() == 2 and out.shape[1] == dims and out.shape[0] != n:
            return f"{out.shape[0]} points; asked for n = {n}, counting both ends"
        if out.shape != expected.shape:
            return f"shape {tuple(out.shape)}; expected {n} points of dimension {dims}, {tuple(expected.shape)}"
        starts, ends, steps = _close(out[0], z0), _close(out[-1], z1), out[1:] - out[:-1]
        return diagnose(lambda wrong: _close(out, wrong), [
            (expected.flip(0), "your path runs from z1 to z0. Hint: at the start, all the weight is on z0"),
            (starts and not ends, "the path starts at z0 but stops short of z1. Hint: the last point must be z1 "
             "itself: n values of t from 0 to 1, both included"),
            (not (starts and ends), "the path does not start at z0 and end at z1. Hint: check "
             "the first and the last point"),
            (not _close(steps, (z1 - z0).expand_as(steps) / (n - 1)), "the ends are right but the points are not "
             "evenly spaced on the straight line. Hint: each point is (1 - t) z0 + t z1, with t evenly spaced"),
        ], otherwise="wrong values. Hint: each point is (1 - t) z0 + t z1, with t evenly spaced from 0 to 1")


@exercise_check()
def check_autoencoder_16d(model, test_loss, x) -> bool:
    """Your trained 16-D autoencoder ``model`` (``model.encoder(x)`` -> codes (B, 16), ``model.decoder(codes)`` ->
    pixel logits (B, 1, 28, 28)) and ``test_loss``, its reconstruction loss on the binary test images ``x`` (B, 1,
    28, 28) in nats per image (BCE summed over pixels, averaged over images). The check evaluates it on ``x``."""
    try:
        with torch.no_grad():
            codes = model.encoder(x)
            logits = model.decoder(codes)
        value = float(test_loss)
    except Exception as err:  # the learner's model or value: feedback, not a crash
        return f"evaluating your model raised {type(err).__name__}: {err}"
    if codes.dim() != 2 or codes.shape[1] != 16:
        return (f"your codes have shape {tuple(codes.shape)}; expected (B, 16). Hint: build the "
                "model with Autoencoder(code_dim=16)")
    per_image = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
    expected = per_image.mean().item()
    untrained = 784 * math.log(2)   # all logits 0: every pixel on with probability 1/2
    if expected > 0.9 * untrained:
        return (f"the model is not trained: {expected:.0f} nats per image, about 784 log 2 = {untrained:.0f} "
                "(every pixel at 1/2). Hint: does the optimizer hold the new model's parameters, and does every "
                "step call backward() and step()?")
    probs = torch.sigmoid(logits)
    return diagnose(lambda a: abs(value - a) <= 1e-3 * abs(a) + 1e-3, [
        (expected, correct(f"a trained 16-D code, and the right test loss ({expected:.1f} nats per image)")),
        (-expected, "the sign is flipped: the reconstruction loss is minus the log-likelihood, >= 0"),
        (expected / 784, "that is the loss per pixel. Hint: sum over the 784 pixels, then average over the images "
         "(as reconstruction_loss does)"),
        (per_image.sum().item(), "you sum over the images. Hint: average over them: nats per image"),
        (F.binary_cross_entropy_with_logits(probs, x, reduction="sum").item() / len(x), "you gave the loss "
         "probabilities (after the sigmoid). Hint: binary_cross_entropy_with_logits expects the decoder's logits"),
    ], otherwise=f"your test_loss ({value:.1f}) is not this model's reconstruction loss on x. Hint: evaluate the "
                 "trained 16-D model on the test images x, with the loss it was trained on")
