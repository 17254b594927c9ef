import math

import torch

from vaelib.evaluation import bits_per_dim, evaluate_elbo, iwae_nll, reconstruction_error

from .conftest import needs_mnist

pytestmark = needs_mnist


def test_iwae_nll_is_finite_within_the_elbo_bound_and_deterministic(trained_mlp, small_test):
    ev = evaluate_elbo(trained_mlp, small_test, seed=0)
    a = iwae_nll(trained_mlp, small_test, k=50, seed=0, progress=False)
    b = iwae_nll(trained_mlp, small_test, k=50, seed=0, progress=False)
    assert math.isfinite(a["nll"]) and a == b
    assert a["nll"] < -ev["elbo"]  # the k=50 bound is tighter than the ELBO
    assert a["nll"] > 50  # and no MNIST model is that good
    assert a["bits_per_dim"] == bits_per_dim(a["nll"])
    c = iwae_nll(trained_mlp, small_test, k=50, seed=1, progress=False)
    assert c["nll"] != a["nll"]


def test_evaluate_elbo_parts(trained_mlp, small_test):
    ev = evaluate_elbo(trained_mlp, small_test, seed=0)
    assert abs(ev["elbo"] - (ev["reconstruction"] - ev["kl"])) < 1e-3
    assert len(ev["kl_per_dim"]) == 8 and abs(sum(ev["kl_per_dim"]) - ev["kl"]) < 1e-3
    assert 0 < ev["active_units"] <= 8 and ev["n"] == 500


def test_bits_per_dim_and_reconstruction_error(trained_mlp, small_test):
    assert abs(bits_per_dim(784 * math.log(2)) - 1.0) < 1e-12
    err = reconstruction_error(trained_mlp, small_test)
    assert 0 < err["mse"] < 0.1 and abs(err["mse_sum"] - 784 * err["mse"]) < 1e-6


def test_evaluation_leaves_the_callers_rng_alone(trained_mlp, small_test):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    evaluate_elbo(trained_mlp, small_test, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_the_evaluated_images_do_not_depend_on_k_or_batch_size(trained_mlp, small_test):
    from vaelib.evaluation import fixed_batches as _fixed_batches
    small = torch.cat([x for x, _ in _fixed_batches(small_test, 7, seed=5, device="cpu")])
    large = torch.cat([x for x, _ in _fixed_batches(small_test, 500, seed=5, device="cpu")])
    assert torch.equal(small, large) and set(small.unique().tolist()) == {0.0, 1.0}
    a = iwae_nll(trained_mlp, small_test, k=20, batch_size=7, seed=5, progress=False, per_image=True)
    b = iwae_nll(trained_mlp, small_test, k=20, batch_size=500, seed=5, progress=False, per_image=True)
    assert a["per_image"].shape == (500,) and a["std_error"] > 0
    assert abs(a["nll"] - a["per_image"].double().mean().item()) < 1e-3
    # same images, other draws of z: the estimates agree far within their standard error
    assert abs(a["nll"] - b["nll"]) < a["std_error"]
