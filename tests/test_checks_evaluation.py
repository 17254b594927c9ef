"""The checks of notebook 08 accept a right answer and reject known wrong ones with the intended hint."""
import math

import pytest
import torch

import vaelib
from vaelib.course import checks
from vaelib.evaluation import evaluate_elbo

from .conftest import assert_catches, needs_mnist, run_check


def right_needed(per_image, target):
    return math.ceil((per_image.std().item() / target) ** 2)


@pytest.mark.parametrize("fn, hint", [
    (lambda v, t: (v.std().item() / t) ** 2, "round (s / target)^2 up"),
    (lambda v, t: math.ceil(v.std().item() / t), "forgot a square"),
    (lambda v, t: math.ceil((v.var().item() / t) ** 2), "the variance where the standard deviation"),
    (lambda v, t: math.ceil(v.var().item() / t), "target is not squared"),
    (lambda v, t: math.ceil((t / v.std().item()) ** 2), "upside down"),
    (lambda v, t: math.ceil((v.mean().item() / t) ** 2), "mean of the values"),
])
def test_images_needed(fn, hint):
    numpy_std = lambda v, t: math.ceil((v.numpy().std() / t) ** 2)  # noqa: E731   (dividing by N): accepted too
    assert_catches(checks.check_images_needed, right_needed, fn, hint, passed="correct on 3 cases",
                   also_right=[numpy_std])


def _sets(n):
    return (vaelib.MNIST("test", binarize="dynamic", subset=n), vaelib.MNIST("test", binarize="static", subset=n))


def right_protocol(model, n_images, seeds):
    dynamic, static = _sets(n_images)
    return [evaluate_elbo(model, dynamic, seed=s)["elbo"] for s in seeds], evaluate_elbo(model, static)["elbo"]


def same_seed(model, n_images, seeds):
    dynamic, static = _sets(n_images)
    return [evaluate_elbo(model, dynamic)["elbo"] for s in seeds], evaluate_elbo(model, static)["elbo"]


def own_seeds(model, n_images, seeds):
    dynamic, static = _sets(n_images)
    dynamic_elbos = [evaluate_elbo(model, dynamic, seed=s)["elbo"] for s in range(len(seeds))]
    return dynamic_elbos, evaluate_elbo(model, static)["elbo"]


def dynamic_as_static(model, n_images, seeds):
    dynamic, _ = _sets(n_images)
    dynamic_elbos = [evaluate_elbo(model, dynamic, seed=s)["elbo"] for s in seeds]
    return dynamic_elbos, evaluate_elbo(model, dynamic, seed=seeds[0])["elbo"]


def whole_static_set(model, n_images, seeds):
    dynamic, _ = _sets(n_images)
    static = vaelib.MNIST("test", binarize="static")
    return [evaluate_elbo(model, dynamic, seed=s)["elbo"] for s in seeds], evaluate_elbo(model, static)["elbo"]


def dicts(model, n_images, seeds):
    dynamic, static = _sets(n_images)
    return [evaluate_elbo(model, dynamic, seed=s) for s in seeds], evaluate_elbo(model, static)


def minus(model, n_images, seeds):
    dynamic, static = right_protocol(model, n_images, seeds)
    return [-d for d in dynamic], -static


@needs_mnist
@pytest.mark.parametrize("fn, hint", [
    (same_seed, "every seed gives the same number"),
    (own_seeds, "instead of the seeds you are given"),
    (dynamic_as_static, "static number is one of the dynamic ones"),
    (whole_static_set, "covers all 10,000 test images"),
    (dicts, "take its 'elbo' entry"),
    (minus, "minus the ELBOs"),
    (lambda model, n, seeds: right_protocol(model, n, seeds)[0], "expected (dynamic, static)"),
])
def test_protocol_elbos(fn, hint):
    assert run_check(checks.check_protocol_elbos, right_protocol) == (
        True, "✓ check_protocol_elbos: correct on a small model (3 seeds, 20 images)")
    ok, out = run_check(checks.check_protocol_elbos, fn)
    assert not ok and hint in out


def right_ess(log_w):
    return torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)).item()


@pytest.mark.parametrize("fn, hint", [
    (lambda lw: (lw.exp().sum() ** 2 / (lw.exp() ** 2).sum()).item(), "underflows"),
    (lambda lw: 1 / right_ess(lw), "1/ESS"),
    (lambda lw: math.log(right_ess(lw)), "log ESS"),
    (lambda lw: torch.exp(torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0)).item(), "not squared"),
    (lambda lw: (lw.sum() ** 2 / (lw ** 2).sum()).item(), "log-weights as weights"),
    (lambda lw: torch.exp(2 * lw - 2 * lw.max()), "expected one number"),
    (lambda lw: len(lw), "equals k only for equal weights"),
])
def test_effective_sample_size(fn, hint):
    assert run_check(checks.check_effective_sample_size, right_ess) == (
        True, "✓ check_effective_sample_size: correct on 3 sets of log-weights, including some that underflow")
    # the shift-by-the-maximum way is right too
    shifted = lambda lw: ((lw - lw.max()).exp().sum() ** 2 / (2 * (lw - lw.max())).exp().sum()).item()  # noqa: E731
    assert_catches(checks.check_effective_sample_size, shifted, fn, hint)


def right_paired(a, b):
    d = a - b
    return d.mean().item(), d.std().item() / math.sqrt(len(d))


@pytest.mark.parametrize("fn, hint", [
    (lambda a, b: right_paired(b, a), "wrong sign"),
    (lambda a, b: ((a - b).mean().item(), math.sqrt(a.var().item() / len(a) + b.var().item() / len(b))),
     "two independent samples"),
    (lambda a, b: ((a - b).mean().item(), (a - b).std().item() / len(a)), "divided by n"),
    (lambda a, b: ((a - b).mean().item(), (a - b).std().item()), "standard deviation of the differences"),
    (lambda a, b: ((a - b).mean().item(), (a - b).var().item() / math.sqrt(len(a))), "the variance"),
    (lambda a, b: ((a - b).abs().mean().item(), (a - b).std().item() / math.sqrt(len(a))), "wrong mean difference"),
    (lambda a, b: (a - b).mean(), "two numbers"),
])
def test_paired_difference(fn, hint):
    assert run_check(checks.check_paired_difference, right_paired) == (
        True, "✓ check_paired_difference: correct on 3 paired samples")
    population = lambda a, b: ((a - b).mean(), (a - b).std(unbiased=False) / math.sqrt(len(a)))  # noqa: E731
    assert_catches(checks.check_paired_difference, population, fn, hint)
