"""The checks of notebook 09 accept a right answer and reject known wrong ones with the intended hint."""
import pytest
import torch

from vaelib.course import checks

from .conftest import assert_catches, run_check


def right_grid(z_rows, digits):
    return z_rows.repeat_interleave(len(digits), 0), digits.repeat(len(z_rows))


@pytest.mark.parametrize("fn, hint", [
    (lambda z, d: (z.repeat(len(d), 1), d.repeat_interleave(len(z))), "column order"),
    (lambda z, d: (z.repeat(len(d), 1), d.repeat(len(z))), "repeat_interleave, not repeat"),
    (lambda z, d: (z.repeat_interleave(len(d), 0), d.repeat_interleave(len(z))), "repeat, not repeat_interleave"),
    (lambda z, d: (z.repeat_interleave(len(d), 0), d), "one label per decoded image"),
    (lambda z, d: (z, d.repeat(len(z))), "one latent code per decoded image"),
    (lambda z, d: (z.repeat_interleave(len(d), 0), d.repeat(len(z)).float()), "torch.long"),
])
def test_style_grid(fn, hint):
    assert_catches(checks.check_style_grid, right_grid, fn, hint, passed="correct for 3 grid sizes")


def _scores(model, x, n_samples, term="value", reduce=lambda t: t.mean(0)):
    columns = []
    for k in range(10):
        label = torch.full((len(x),), k)
        columns.append(reduce(torch.stack([getattr(model.elbo_terms(x, y=label), term) for _ in range(n_samples)])))
    return torch.stack(columns, 1)


@pytest.mark.parametrize("fn, hint", [
    (lambda m, x, n: _scores(m, x, n).T, "transposed"),
    (lambda m, x, n: -_scores(m, x, n), "minus the ELBO"),
    (lambda m, x, n: _scores(m, x, n, "reconstruction"), "KL term is missing"),
    (lambda m, x, n: _scores(m, x, n, reduce=lambda t: t.sum(0)), "sum over the samples"),
    (lambda m, x, n: _scores(m, x, n).argmax(1), "one score per image and label"),
    (lambda m, x, n: torch.stack([m.elbo_terms(x, y=torch.zeros(len(x), dtype=torch.long)).value] * 10, 1),
     "every column is the same"),
])
def test_elbo_scores(fn, hint):
    assert run_check(checks.check_elbo_scores, _scores) == (
        True, "✓ check_elbo_scores: correct on a small CVAE (5 images, 10 labels)")
    ok, out = run_check(checks.check_elbo_scores, fn)
    assert not ok and hint in out


def test_elbo_scores_leaves_the_random_state_alone():
    torch.manual_seed(0)
    checks.check_elbo_scores(_scores)
    after = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(1))


def _centroid_accuracy(z_train, y_train, z_test, y_test, far=False, centroids_from_test=False):
    z, y = (z_test, y_test) if centroids_from_test else (z_train, y_train)
    centroids = torch.stack([z[y == k].mean(0) for k in range(10)])
    d = torch.cdist(z_test, centroids)
    return ((d.argmax(1) if far else d.argmin(1)) == y_test).float().mean().item()


@pytest.mark.parametrize("fn, hint", [
    (lambda *a: 100 * _centroid_accuracy(*a), "percentage"),
    (lambda *a: len(a[3]) * _centroid_accuracy(*a), "number of correct test codes"),
    (lambda *a: 1 - _centroid_accuracy(*a), "error rate"),
    (lambda *a: _centroid_accuracy(*a, centroids_from_test=True), "come from the test codes"),
    (lambda *a: _centroid_accuracy(*a, far=True), "farthest centroid"),
    (lambda zt, yt, ze, ye: (yt[torch.cdist(ze, zt).argmin(1)] == ye).float().mean().item(), "1-nearest neighbour"),
])
def test_nearest_centroid_accuracy(fn, hint):
    assert run_check(checks.check_nearest_centroid_accuracy, _centroid_accuracy) == (
        True, "✓ check_nearest_centroid_accuracy: correct on 3 random sets of codes")
    ok, out = run_check(checks.check_nearest_centroid_accuracy, fn)
    assert not ok and hint in out
