"""The checks of notebook 00: each accepts a right answer and rejects known wrong ones with the intended hint."""
import pytest
import torch
import torch.nn.functional as F

from vaelib.course import checks

from .conftest import assert_catches, run_check


def right_class_means(images, labels):
    return torch.stack([images[labels == c].mean(0) for c in range(10)])


@pytest.mark.parametrize("fn, hint", [
    (lambda im, lb: im.mean(0).expand(10, 1, 28, 28), "mean of all the images"),
    (lambda im, lb: torch.stack([im[lb == c].sum(0) for c in range(10)]), "sums, not means"),
    (lambda im, lb: torch.stack([im[lb == c].mean(0) for c in range(1, 11)]), "NaN"),
    (lambda im, lb: right_class_means(im, lb).flip(0), "wrong order"),
    (lambda im, lb: torch.stack([im[lb == c].mean() for c in range(10)]), "averaged over the pixels"),
    (lambda im, lb: torch.stack([im[lb == c].mean(0) for c in range(9)]), "shape (9, 1, 28, 28)"),
])
def test_class_means(fn, hint):
    assert_catches(checks.check_class_means, right_class_means, fn, hint, passed="correct on 3 random labelled sets")


def _distances(means, p=2.0):
    flat = means.flatten(1)
    return torch.cdist(flat, flat, p=p)


def _argmin_pair(dist):
    dist = dist.clone()
    dist.fill_diagonal_(float("inf"))
    return divmod(dist.argmin().item(), len(dist))


def right_pair(means):
    return _argmin_pair(_distances(means))


def grey_pair(means):
    grey = means.mean((1, 2, 3))
    return _argmin_pair((grey[:, None] - grey[None]).abs())


@pytest.mark.parametrize("fn, hint", [
    (lambda means: divmod(_distances(means).argmin().item(), 10), "paired with itself"),
    (lambda means: divmod(_distances(means).argmax().item(), 10), "farthest apart"),
    (lambda means: _argmin_pair(_distances(means, p=1.0)), "summed absolute differences"),
    (grey_pair, "same average grey level"),
    (lambda means: _distances(means).fill_diagonal_(float("inf")).argmin().item(), "return the two class labels"),
])
def test_closest_pair(fn, hint):
    assert_catches(checks.check_closest_pair, right_pair, fn, hint,
                   passed="correct on 3 sets of means",
                   also_right=[lambda means: torch.tensor(right_pair(means)[::-1])])


def _log_lik(x, logits):
    return (x * logits - F.softplus(logits)).sum(dim=(1, 2, 3))


def right_mc(grey, logits, n, generator):
    x_bin = torch.bernoulli(grey.expand(n, 1, 28, 28), generator=generator)
    return _log_lik(x_bin, logits.expand(n, 1, 28, 28)).mean()


@pytest.mark.parametrize("fn, hint", [
    (lambda grey, logits, n, gen: -right_mc(grey, logits, n, gen), "sign is flipped"),
    (lambda grey, logits, n, gen: right_mc(grey, logits, n, gen) * n, "sum over the draws"),
    (lambda grey, logits, n, gen: _log_lik(torch.bernoulli(grey.expand(n, 1, 28, 28)), logits).mean(),
     "with the generator you are given"),
    (lambda grey, logits, n, gen: _log_lik(grey.expand(n, 1, 28, 28), logits).mean(), "nothing is random"),
    (lambda grey, logits, n, gen: _log_lik((grey > 0.5).float().expand(n, 1, 28, 28), logits).mean(),
     "does not change with the seed"),
    (lambda grey, logits, n, gen: _log_lik(torch.bernoulli(torch.sigmoid(logits).expand(n, 1, 28, 28),
                                                           generator=gen), logits).mean(), "from the model"),
    (lambda grey, logits, n, gen: _log_lik(logits, torch.bernoulli(grey.expand(n, 1, 28, 28), generator=gen)).mean(),
     "arguments of the log-likelihood are swapped"),
    (lambda grey, logits, n, gen: _log_lik(torch.bernoulli(grey.expand(n, 1, 28, 28), generator=gen), logits),
     "one per draw"),
])
def test_expected_log_likelihood_mc(fn, hint):
    assert run_check(checks.check_expected_log_likelihood_mc, right_mc) == (
        True, "✓ check_expected_log_likelihood_mc: within Monte-Carlo error of the expectation "
              "(2000 draws, 2 seeds), and reproducible")
    ok, out = run_check(checks.check_expected_log_likelihood_mc, fn)
    assert not ok and out.startswith("✗") and hint in out


def _component_log_lik(x, logits):
    return (x[:, None] * logits[None] - F.softplus(logits)[None]).sum((2, 3, 4))        # (B, K)


def right_mixture(x, logits, weights):
    return torch.logsumexp(_component_log_lik(x, logits) + weights.log(), 1)


@pytest.mark.parametrize("fn, hint", [
    (lambda x, l, w: torch.log((_component_log_lik(x, l).exp() * w).sum(1)), "underflows"),
    (lambda x, l, w: (_component_log_lik(x, l) * w).sum(1), "averaged the components' log-likelihoods"),
    (lambda x, l, w: torch.logsumexp(_component_log_lik(x, l), 1), "mixture weights are missing"),
    (lambda x, l, w: torch.logsumexp(_component_log_lik(x, l) + w, 1), "added the weights themselves"),
    (lambda x, l, w: (_component_log_lik(x, l) + w.log()).amax(1), "only the most likely component"),
    (lambda x, l, w: -right_mixture(x, l, w), "sign is flipped"),
    (lambda x, l, w: _component_log_lik(x, l) + w.log(), "one value per image and component"),
    (lambda x, l, w: torch.logsumexp((x[:, None] * l[None] - F.softplus(l)[None]).mean((2, 3, 4)) + w.log(), 1),
     "averaged over pixels"),
])
def test_mixture_log_likelihood(fn, hint):
    assert_catches(checks.check_mixture_log_likelihood, right_mixture, fn, hint,
                   passed="correct on 3 mixtures, and stable where the probabilities underflow")

