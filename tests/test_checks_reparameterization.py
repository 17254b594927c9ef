"""The checks of notebook 04 accept a right answer and reject known wrong ones with the intended hint."""
import pytest
import torch
from torch.distributions import Normal

from vaelib.course import checks

from .conftest import assert_catches, run_check


def right_terms(f, z, mu, sigma, b):
    return (f(z) - b) * (z - mu) / sigma ** 2


@pytest.mark.parametrize("fn, hint", [
    (lambda f, z, mu, sigma, b: f(z) * (z - mu) / sigma ** 2, "baseline is ignored"),
    (lambda f, z, mu, sigma, b: (f(z) + b) * (z - mu) / sigma ** 2, "you add the baseline"),
    (lambda f, z, mu, sigma, b: f(z) * (z - mu) / sigma ** 2 - b, "subtract b from the product"),
    (lambda f, z, mu, sigma, b: (f(z) - b) * (z - mu) / sigma, "divide by sigma instead of sigma^2"),
    (lambda f, z, mu, sigma, b: right_terms(f, z, mu, sigma, b).mean(), "a single number"),
])
def test_reinforce_baseline(fn, hint):
    assert_catches(checks.check_reinforce_baseline, right_terms, fn, hint,
                   passed="correct on 3 test problems, each with its own baseline")


def right_pathwise(f, mu, sigma, eps):
    sigma = torch.tensor(sigma, requires_grad=True)
    return torch.autograd.grad(f(mu + sigma * eps).mean(), sigma)[0]


def right_score(f, mu, sigma, z):
    sigma = torch.tensor(sigma, requires_grad=True)
    return torch.autograd.grad((f(z).detach() * Normal(mu, sigma).log_prob(z)).mean(), sigma)[0]


def grad_mu_pathwise(f, mu, sigma, eps):
    mu = torch.tensor(mu, requires_grad=True)
    return torch.autograd.grad(f(mu + sigma * eps).mean(), mu)[0]


def score_without_normalization(f, mu, sigma, z):
    sigma = torch.tensor(sigma, requires_grad=True)
    return torch.autograd.grad((f(z) * -(z - mu) ** 2 / (2 * sigma ** 2)).mean(), sigma)[0]


def score_through_sample(f, mu, sigma, z):
    q = Normal(mu, torch.tensor(sigma))                 # sigma does not require grad
    return torch.autograd.grad((f(z) * q.log_prob(z)).mean(), q.scale)[0]


@pytest.mark.parametrize("pathwise, score, hint", [
    (grad_mu_pathwise, right_score, "pathwise: that is the gradient with respect to mu"),
    (lambda f, mu, sigma, eps: right_pathwise(f, mu, sigma, eps) * len(eps), right_score, "pathwise: you sum"),
    (lambda f, mu, sigma, eps: right_pathwise(f, mu, sigma, torch.randn_like(eps)), right_score,
     "the eps you are given"),
    (right_pathwise, lambda f, mu, sigma, z: -right_score(f, mu, sigma, z), "score function: the sign is flipped"),
    (right_pathwise, score_without_normalization, "score function: the -1/sigma"),
    (right_pathwise, score_through_sample, "score function: no gradient reaches sigma"),
    (right_pathwise, lambda f, mu, sigma, z: (f(z) * (z - mu) / sigma ** 2).mean(),
     "score function: that is the gradient with respect to mu"),
])
def test_sigma_gradients(pathwise, score, hint):
    assert_catches(checks.check_sigma_gradients, (right_pathwise, right_score), (pathwise, score), hint,
                   passed="both estimators are correct on 3 test problems")


@pytest.mark.parametrize("fn, hint", [
    (lambda rate, u: -torch.log(u) * rate, "multiply by the rate"),
    (lambda rate, u: torch.log(u) / rate, "negative samples"),
    (lambda rate, u: -torch.log(1 - u) / rate, "1 - u is uniform too"),
    (lambda rate, u: -torch.log(u) / rate.item(), "no gradient reaches the rate"),
    (lambda rate, u: -torch.log(u) / rate.detach() + 0 * rate ** 2, "gradient with respect to the rate is not"),
])
def test_exponential_rsample(fn, hint):
    assert_catches(checks.check_exponential_rsample, (lambda rate, u: -torch.log(u) / rate), fn, hint,
                   passed="correct, and gradients reach the rate")


def test_unsolved_stubs_stop_the_notebook():
    def todo(*args):
        raise NotImplementedError()
    for check, fns in ((checks.check_reinforce_baseline, (todo,)), (checks.check_sigma_gradients, (todo, todo)),
                       (checks.check_exponential_rsample, (todo,))):
        with pytest.raises(NotImplementedError):
            check(*fns)


def _tril_scale(raw):
    return torch.tril(raw, -1) + torch.diag_embed(torch.diagonal(raw, dim1=-2, dim2=-1).exp())


def right_full_cov(mu, raw, eps):
    return mu + (_tril_scale(raw) @ eps[..., None])[..., 0]


@pytest.mark.parametrize("fn, hint", [
    (lambda mu, raw, eps: right_full_cov(mu, raw, eps).detach(), "no gradient flows"),
    (lambda mu, raw, eps: mu + (raw @ eps[..., None])[..., 0], "raw_scale itself as L"),
    (lambda mu, raw, eps: mu + (eps[:, None, :] @ _tril_scale(raw))[:, 0], "transpose of L"),
    (lambda mu, raw, eps: mu + (torch.tril(raw) @ eps[..., None])[..., 0], "can be negative"),
    (lambda mu, raw, eps: mu + (torch.tril(raw.exp()) @ eps[..., None])[..., 0], "whole lower triangle"),
    (lambda mu, raw, eps: mu + torch.diagonal(raw, dim1=-2, dim2=-1).exp() * eps, "only the diagonal"),
    (lambda mu, raw, eps: (_tril_scale(raw) @ eps[..., None])[..., 0], "mean is missing"),
    (lambda mu, raw, eps: mu + (_tril_scale(raw) @ _tril_scale(raw).transpose(-1, -2) @ eps[..., None])[..., 0],
     "by the covariance"),
])
def test_full_covariance_rsample(fn, hint):
    expected = "✓ check_full_covariance_rsample: correct on 3 random batches, and gradients reach mu and raw_scale"
    assert run_check(checks.check_full_covariance_rsample, right_full_cov) == (True, expected)
    # einsum, or a torch MultivariateNormal built on the same scale, are right too
    einsum = lambda mu, raw, eps: mu + torch.einsum("bij,bj->bi", _tril_scale(raw), eps)  # noqa: E731
    assert_catches(checks.check_full_covariance_rsample, einsum, fn, hint)


def right_gumbel(logits, tau, u):
    return torch.softmax((logits - torch.log(-torch.log(u))) / tau, -1)


@pytest.mark.parametrize("fn, hint", [
    (lambda logits, tau, u: right_gumbel(logits, tau, u).detach(), "no gradient flows"),
    (lambda logits, tau, u: torch.nn.functional.one_hot(
        (logits - torch.log(-torch.log(u))).argmax(-1), logits.shape[-1]).float(), "Gumbel-max sample"),
    (lambda logits, tau, u: torch.softmax(logits / tau, -1), "noise is missing"),
    (lambda logits, tau, u: torch.softmax((logits + torch.log(-torch.log(u))) / tau, -1), "wrong sign"),
    (lambda logits, tau, u: torch.softmax((logits - torch.log(u)) / tau, -1), "an exponential variable"),
    (lambda logits, tau, u: torch.softmax(logits / tau - torch.log(-torch.log(u)), -1), "only the logits"),
    (lambda logits, tau, u: torch.softmax((logits - torch.log(-torch.log(u))) * tau, -1), "multiply by tau"),
    (lambda logits, tau, u: torch.softmax((logits - torch.log(-torch.log(u))) / tau, 0), "over the batch"),
])
def test_gumbel_softmax(fn, hint):
    # torch's own relaxed sample (RelaxedOneHotCategorical) is right too, with the same noise
    def relaxed(logits, tau, u):
        return torch.softmax((torch.log_softmax(logits, -1) - torch.log(-torch.log(u))) / tau, -1)
    assert_catches(checks.check_gumbel_softmax, right_gumbel, fn, hint,
                   passed="correct for 3 temperatures, and gradients reach the logits", also_right=(relaxed,))
