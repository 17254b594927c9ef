"""Checks for notebook 08 (evaluating VAEs)."""
import math

import torch

from ._feedback import (_seeded, _small_vae, answer, correct, diagnose, either, exercise_check, expect, near_number,
                        one_number, unpack)

__all__ = ['check_bits_per_dim', 'check_images_needed', 'check_protocol_elbos', 'check_effective_sample_size',
           'check_paired_difference']


@exercise_check("correct (80 nats is about 0.147 bits/dim)")
def check_bits_per_dim(fn) -> bool:
    """``fn(nats)``: nats per 28x28 image -> bits per pixel."""
    for nats in (80.0, 543.43, 100.0):
        value = one_number(answer(fn, nats))
        expect(value, nats / (784 * math.log(2)), [
            (abs(value - nats / math.log(2)) < 1e-6 * nats, "that is bits per image. Hint: "
             "divide by the 784 pixels too"),
            (abs(value - nats / 784) < 1e-9 * nats, "that is nats per pixel. Hint: one nat is 1/ln 2 bits"),
            (abs(value - nats * math.log(2) / 784) < 1e-9 * nats, "you multiplied by ln 2. Hint: bits = nats / ln 2"),
        ], otherwise="wrong value. Hint: bits/dim = nats / (784 * ln 2)",
           near=lambda a, b: abs(a - b) < 1e-6 * max(1.0, b))


@exercise_check("correct on 3 cases")
def check_images_needed(fn) -> bool:
    """``fn(per_image, target)``: the smallest number of images n for which the standard error s / sqrt(n)
    of a mean is at most ``target``, with s the standard deviation of ``per_image`` ``(N,)``, one value per
    image. Returns an integer."""
    for g, (spread, target) in _seeded(9, ((20.0, 0.1), (8.0, 0.5), (35.0, 2.0))):
        per_image = 90 + spread * torch.randn(64, generator=g)
        value = one_number(answer(fn, per_image, target), ": the number of images")
        # torch's std divides by N - 1, numpy's by N: either is a fine estimate of s
        stds = (per_image.std().item(), per_image.std(unbiased=False).item())
        exact = [(s / target) ** 2 for s in stds]
        if any(value == math.ceil(e) for e in exact):
            continue
        return diagnose(lambda a: abs(value - a) <= 1.0 + 1e-6 * abs(a), [
            (either(*exact), f"{value:g} is not the smallest whole number that reaches the target. Hint: round (s / "
             "target)^2 up, with math.ceil"),
            (either(*(s / target for s in stds)), "you forgot a square: the standard error falls like 1/sqrt(n). Hint: "
             "solve s / sqrt(n) = target for n"),
            (either(*((s * s / target) ** 2 for s in stds)), "you used the variance where the standard deviation "
             "belongs. Hint: s is the standard deviation over images, per_image.std()"),
            (either(*(s * s / target for s in stds)), "the target is not squared. Hint: n = (s / target)^2"),
            (either(*((target / s) ** 2 for s in stds)), "the ratio is upside down: that number is tiny. "
             "Hint: n = (s / target)^2"),
            ((per_image.mean().item() / target) ** 2, "you used the mean of the values. Hint: the standard error "
             "depends on their spread, the standard deviation"),
        ], otherwise="wrong value. Hint: the standard error of a mean of n values is s / sqrt(n); solve s / "
                     "sqrt(n) <= target for the smallest n")


@exercise_check()
def check_protocol_elbos(fn) -> bool:
    """``fn(model, n_images, seeds)``: ``(dynamic, static)``, the test ELBO (nats per image, as
    ``evaluate_elbo``'s ``"elbo"``) of ``model`` on the first ``n_images`` MNIST test images: ``dynamic``
    has one value per seed of the dynamic binarization, ``static`` is one value on vaelib's static draw.
    Runs ``fn`` on a small untrained model (reads MNIST from disk, no download)."""
    import vaelib
    from vaelib.evaluation import evaluate_elbo
    n, seeds, model = 20, [3, 7, 11], _small_vae()
    out = answer(fn, model, n, list(seeds))
    try:
        dynamic, static = out
        dynamic = list(dynamic)
    except (TypeError, ValueError):
        return ("expected (dynamic, static): a list with one ELBO per seed, and one ELBO. Hint: return two things, "
                "e.g. return dynamic_elbos, static_elbo")
    if isinstance(static, dict) or any(isinstance(d, dict) for d in dynamic):
        return "evaluate_elbo returns a dict of several numbers. Hint: take its 'elbo' entry"
    try:
        dynamic, static = [float(d) for d in dynamic], float(static)
    except (TypeError, ValueError, RuntimeError):
        return "expected numbers: a list of floats (one per seed) and a float"
    if len(dynamic) != len(seeds):
        return f"{len(dynamic)} dynamic values for {len(seeds)} seeds. Hint: one ELBO per seed"

    def elbo(binarize, seed, subset=n):
        data = vaelib.MNIST("test", binarize=binarize, subset=subset, download=False)
        return evaluate_elbo(model, data, seed=seed)["elbo"]

    # the numbers are deterministic for a seed; draws differ by a tenth of a nat or more on this model
    near = lambda a, b: abs(a - b) < 2e-3 + 1e-6 * abs(b)  # noqa: E731
    want = [elbo("dynamic", s) for s in seeds]
    expect(dynamic, want, [
        ([-w for w in want], "those are minus the ELBOs (NLL-like, positive). Hint: report the ELBO itself, "
         "a negative number of nats"),
        (len(set(dynamic)) == 1, "every seed gives the same number. Hint: pass seed=... to evaluate_elbo: the seed "
         "fixes the binarization draw"),
        (lambda: all(near(d, elbo("dynamic", s)) for d, s in zip(dynamic, range(len(seeds)))), "you use the seeds 0, "
         "1, 2, ... instead of the seeds you are given. Hint: loop over the seeds argument"),
        (lambda: near(dynamic[0], elbo("dynamic", seeds[0], None)), "you evaluate all 10,000 test images. Hint: keep "
         "the first n_images (subset=n_images)"),
    ], otherwise="the dynamic ELBOs are wrong. Hint: the first n_images test images, dynamically binarized, evaluated "
                 "once per seed (evaluate_elbo takes seed=)",
           near=lambda ds, ws: all(near(d, w) for d, w in zip(ds, ws)))
    want_static = [elbo("static", s) for s in sorted({0, *seeds})]   # the seed of the z samples is free
    return diagnose(lambda w: near(static, w), [
        (either(*want_static), correct("correct on a small model (3 seeds, 20 images)")),
        (either(*want), "your static number is one of the dynamic ones. Hint: the static draw is a data set of its "
         "own: vaelib.MNIST('test', binarize='static', ...)"),
        (either(*(-w for w in want_static)), "the static value is minus the ELBO. Hint: report the ELBO itself"),
        (lambda: near(static, elbo("static", 0, None)), "the static value covers all 10,000 test images. Hint: keep "
         "the first n_images (subset=n_images)"),
    ], otherwise="the static ELBO is wrong. Hint: evaluate the same first n_images test images, statically binarized "
                 "(vaelib.MNIST's binarize='static')")


@exercise_check("correct on 3 sets of log-weights, including some that underflow")
def check_effective_sample_size(fn) -> bool:
    """``fn(log_w)``: the effective sample size (sum_i w_i)^2 / sum_i w_i^2 of k importance weights given by
    their logs, ``(k,) -> number``; log-weights of images are around -100, where exp underflows."""
    g = torch.Generator().manual_seed(10)
    cases = [-100 + 2 * torch.randn(50, generator=g),      # weights of similar size: a large ESS
             torch.full((20,), -90.0),                       # equal weights: ESS = k exactly
             -120 + 8 * torch.randn(200, generator=g)]       # a few weights dominate: a small ESS
    near = near_number(1e-3)
    for log_w in cases:
        value = one_number(answer(fn, log_w), ". Hint: sum over the k samples")
        lw = log_w.double()
        expected = torch.exp(2 * torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0)).item()
        unsquared = torch.exp(torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0)).item()
        expect(value, expected, [
            (near(value, unsquared) or (value == math.inf and unsquared > 3e38),   # 3e38: float32 overflows
             f"got {value:g}, but the ESS lies between 1 and k: the numerator is not "
             "squared. Hint: ESS = (sum w)^2 / sum w^2"),
            (not math.isfinite(value) or value == 0, f"got {value}: exp(log_w) underflows to 0 for log-weights near "
             "-100. Hint: stay in log space (torch.logsumexp), or subtract the largest log-weight before "
             "exponentiating: the ratio does not change"),
            (1 / expected, "upside down: that is 1/ESS, between 1/k and 1. Hint: (sum w)^2 on top"),
            (math.log(expected), "that is log ESS. Hint: exponentiate it"),
            (value == len(log_w), f"that is k = {len(log_w)}: the ESS equals k only for equal weights"),
            ((lw.sum() ** 2 / (lw ** 2).sum()).item(), "you used the log-weights as weights. Hint: the "
             "weights are w = exp(log_w)"),
        ], otherwise="wrong value. Hint: ESS = (sum_i w_i)^2 / sum_i w_i^2 with w_i "
                     "= exp(log_w_i), between 1 and k", near=near)


@exercise_check("correct on 3 paired samples")
def check_paired_difference(fn) -> bool:
    """``fn(a, b)``: the paired comparison of two models scored on the same images, ``a`` and ``b`` of shape
    ``(N,)`` (one value per image, image i in both): the mean difference mean(a - b) and its standard error
    s / sqrt(N), with s the standard deviation of the per-image differences. Returns two numbers."""
    g = torch.Generator().manual_seed(17)
    near = near_number(1e-6)
    for n, shift in ((64, 1.5), (300, -0.7), (20, 0.2)):
        difficulty = 25 * torch.randn(n, generator=g, dtype=torch.float64)      # what both models share
        a = -90 + difficulty + 0.8 * torch.randn(n, generator=g, dtype=torch.float64)
        b = -90 - shift + difficulty + 0.8 * torch.randn(n, generator=g, dtype=torch.float64)
        out = answer(fn, a, b)
        mean, se = unpack(out, 2, f"you returned {out!r}. Hint: two numbers, (mean difference, its standard error)")
        d = a - b
        right_mean = d.mean().item()
        ses = [d.std(unbiased=u).item() / math.sqrt(n) for u in (True, False)]   # either estimate of s is fine
        if near(mean, right_mean) and any(near(se, s) for s in ses):
            continue
        unpaired = [math.sqrt(a.var(unbiased=u).item() / n + b.var(unbiased=u).item() / n) for u in (True, False)]
        return diagnose(lambda s: near(se, s), [
            (near(mean, -right_mean), "the difference has the wrong sign. Hint: a minus b, image by image"),
            (not near(mean, right_mean), "wrong mean difference. Hint: the average over images of a_i - b_i"),
            (either(*unpaired), "that is the standard error for two independent samples. Both models saw the same "
             "images, and most of the spread (easy and hard digits) is shared. Hint: take the per-image differences "
             "first, then their standard error"),
            (either(*(s * math.sqrt(n) / n for s in ses)), "you divided by n. Hint: the standard error "
             "of a mean is s / sqrt(n)"),
            (either(*(s * math.sqrt(n) for s in ses)), "that is the standard deviation of the differences. Hint: "
             "divide by sqrt(n) for the standard error of their mean"),
            (either(*((s * math.sqrt(n)) ** 2 / math.sqrt(n) for s in ses)), "you used the variance where the standard "
             "deviation belongs. Hint: s is the standard deviation of the differences"),
        ], otherwise="wrong standard error. Hint: s / sqrt(n), with s the standard deviation of the "
                     "per-image differences a_i - b_i")
