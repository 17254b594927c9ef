"""Each check accepts a right answer and rejects known wrong ones with the intended hint."""
import inspect
import math

import pytest
import torch
import torch.nn.functional as F

from vaelib.course import checks
from vaelib.plotting import lerp, slerp

from .conftest import assert_catches, run_check


def right_kl(mu, logvar):
    return 0.5 * (mu ** 2 + logvar.exp() - logvar - 1).sum(-1)


@pytest.mark.parametrize("fn, hint", [
    (lambda mu, lv: 0.5 * (mu ** 2 + lv.exp() - lv - 1), "sums over the dimensions"),
    (lambda mu, lv: -right_kl(mu, lv), "sign is flipped"),
    (lambda mu, lv: 0.5 * (mu ** 2 + lv.exp() - lv - 1).mean(-1), "average over latent dimensions"),
    (lambda mu, lv: 0.5 * (mu ** 2 + lv - torch.log(lv) - 1).sum(-1), "logvar as if it were the variance"),
    (lambda mu, lv: (mu ** 2 + lv.exp() - lv - 1).sum(-1), "factor 1/2"),
])
def test_gaussian_kl(fn, hint):
    assert_catches(checks.check_gaussian_kl, right_kl, fn, hint, passed="correct on 3 random batches")


# every exercise check that takes the learner's function alone: the notebooks' common case
ONE_ARGUMENT = sorted(name for name in dir(checks) if name.startswith("check_")
                      and list(inspect.signature(getattr(checks, name)).parameters) == ["fn"])


def test_the_exercise_checks_are_all_found():
    assert len(ONE_ARGUMENT) >= 50 and "check_gaussian_kl" in ONE_ARGUMENT and "check_prior_parameters" in ONE_ARGUMENT


@pytest.mark.parametrize("name", ONE_ARGUMENT)
def test_an_unsolved_exercise_stops_the_notebook_and_a_wrong_one_fails_in_strict_mode(name, capsys, monkeypatch):
    def todo(*args, **kwargs):
        raise NotImplementedError()  # the stub a learner starts from
    with pytest.raises(NotImplementedError):
        getattr(checks, name)(todo)
    monkeypatch.setenv("VAELIB_CHECKS_STRICT", "1")  # how CI runs the notebooks
    with pytest.raises(AssertionError, match=name):
        getattr(checks, name)(lambda *args, **kwargs: 0)
    assert f"✗ {name}:" in capsys.readouterr().out


def test_a_crashing_answer_is_reported():
    ok, out = run_check(checks.check_gaussian_kl, lambda mu, logvar: mu @ logvar)
    assert not ok and "your function raised RuntimeError" in out


def test_strict_mode_raises(capsys, monkeypatch):
    monkeypatch.setenv("VAELIB_CHECKS_STRICT", "1")
    with pytest.raises(AssertionError, match="sign is flipped"):
        checks.check_gaussian_kl(lambda mu, lv: -right_kl(mu, lv))


@pytest.mark.parametrize("fn, hint", [
    (lambda mu, lv, eps: mu + lv.exp() * eps, "by the variance"),
    (lambda mu, lv, eps: mu + lv * eps, "by logvar itself"),
    (lambda mu, lv, eps: torch.exp(0.5 * lv) * eps, "mean is missing"),
    (lambda mu, lv, eps: (mu + torch.exp(0.5 * lv) * eps).detach(), "no gradient flows"),
])
def test_reparameterize(fn, hint):
    assert run_check(checks.check_reparameterize, lambda mu, lv, eps: mu + torch.exp(0.5 * lv) * eps)[0]
    ok, out = run_check(checks.check_reparameterize, fn)
    assert not ok and hint in out


@pytest.mark.parametrize("fn, hint", [
    (lambda logits, x: F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3)), "sign is flipped"),
    (lambda logits, x: -F.binary_cross_entropy_with_logits(logits, x, reduction="none").mean((1, 2, 3)), "average over pixels"),
    (lambda logits, x: -F.binary_cross_entropy_with_logits(logits, x, reduction="sum"), "single number"),
])
def test_bernoulli_log_likelihood(fn, hint):
    right = lambda logits, x: torch.distributions.Bernoulli(logits=logits).log_prob(x).sum((1, 2, 3))  # noqa: E731
    assert_catches(checks.check_bernoulli_log_likelihood, right, fn, hint)


@pytest.mark.parametrize("fn, hint", [
    (lambda w: torch.log(w.exp().mean(0)), "underflows"),
    (lambda w: torch.logsumexp(w, 0), "subtract log k"),
    (lambda w: w.mean(0), "the ELBO, not the IWAE bound"),
])
def test_iwae_from_log_weights(fn, hint):
    right = lambda w: torch.logsumexp(w, 0) - math.log(w.shape[0])  # noqa: E731
    assert_catches(checks.check_iwae_from_log_weights, right, fn, hint)


@pytest.mark.parametrize("fn, hint", [
    (lambda nats: nats / math.log(2), "bits per image"),
    (lambda nats: nats / 784, "nats per pixel"),
    (lambda nats: nats * math.log(2) / 784, "multiplied by ln 2"),
])
def test_bits_per_dim(fn, hint):
    assert_catches(checks.check_bits_per_dim, lambda nats: nats / 784 / math.log(2), fn, hint)


@pytest.mark.parametrize("fn, hint", [
    (lerp, "straight line"),
    (lambda z0, z1, t: slerp(z1, z0, t), "does not start at z0"),
])
def test_slerp(fn, hint):
    assert_catches(checks.check_slerp, slerp, fn, hint)


@pytest.mark.parametrize("fn, hint", [
    (lambda step, beta_max, warmup: beta_max * step / warmup, "keeps growing"),
    (lambda step, beta_max, warmup: min(1.0, step / warmup), "beta_max is ignored"),
])
def test_linear_warmup(fn, hint):
    assert run_check(checks.check_linear_warmup, lambda s, b, w: min(b, b * s / w))[0]
    ok, out = run_check(checks.check_linear_warmup, fn)
    assert not ok and hint in out


def _right_loss(logits, x, mu, logvar):
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
    return rec + (0.5 * (mu ** 2 + logvar.exp() - logvar - 1)).sum(-1).mean()


@pytest.mark.parametrize("fn, hint", [
    (lambda lg, x, mu, lv: -_right_loss(lg, x, mu, lv), "the ELBO itself"),
    (lambda lg, x, mu, lv: F.binary_cross_entropy_with_logits(lg, x, reduction="sum") / len(x), "KL term is missing"),
    (lambda lg, x, mu, lv: F.binary_cross_entropy_with_logits(lg, x)
     + (0.5 * (mu ** 2 + lv.exp() - lv - 1)).sum(-1).mean(), "averaged over pixels"),
    (lambda lg, x, mu, lv: _right_loss(lg, x, mu, lv) * len(x), "sum over the batch"),
])
def test_vae_loss(fn, hint):
    assert_catches(checks.check_vae_loss, _right_loss, fn, hint)
