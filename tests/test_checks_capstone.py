"""The capstone check accepts an honest report and rejects known wrong ones with the intended hint."""
import math
import os
from pathlib import Path

import pytest
import torch

import vaelib
from vaelib.course import checks
from vaelib.evaluation import evaluate_elbo, iwae_nll

from .conftest import run_check

needs_fashion = pytest.mark.skipif(
    not (Path(os.environ.get("VAELIB_DATA", "")) / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").exists(),
    reason="Fashion-MNIST not found: set VAELIB_DATA")
pytestmark = needs_fashion
N, K = 200, 20


@pytest.fixture(scope="module")
def model():
    """A small MLP VAE trained for one epoch on 2,000 Fashion-MNIST images (seconds on a CPU)."""
    torch.manual_seed(0)
    m = vaelib.build_vae("mlp", latent_dim=4, hidden=64)
    vaelib.fit(m, vaelib.FashionMNIST("train", binarize="dynamic", subset=2000), epochs=1, progress=False)
    return m.eval()


def _report(model, binarize="dynamic", seed=0):
    data = vaelib.FashionMNIST("test", binarize=binarize, subset=N)
    nll = iwae_nll(model, data, k=K, seed=seed, per_image=True, progress=False)
    return dict(dataset="fashion_mnist", binarize=binarize, seed=seed, n_images=N, k=K,
                elbo=evaluate_elbo(model, data, seed=seed)["elbo"], nll=nll["nll"],
                nll_per_image=nll["per_image"], bits_per_dim=nll["bits_per_dim"])


@pytest.fixture(scope="module")
def honest(model):
    return _report(model)


def test_an_honest_report_passes_and_names_its_protocol(model, honest):
    ok, out = run_check(checks.check_capstone_report, model, honest)
    assert ok and out.startswith("✓ check_capstone_report: ELBO reproduced")
    assert "fashion_mnist, dynamic binarization, seed 0" in out and "k = 20 (papers use 5000: say so)" in out
    assert "200 test images (not all 10,000" in out


@pytest.mark.parametrize("change, hint", [
    (lambda r, m: {key: v for key, v in r.items() if key != "k"}, "missing k"),
    (lambda r, m: {**r, "binarize": None}, "evaluate on a binarized test set"),
    (lambda r, m: {**r, "bits_per_dim": r["nll"] / math.log(2)}, "that is bits per image"),
    (lambda r, m: {**r, "bits_per_dim": r["nll"] / 784}, "that is nats per pixel"),
    (lambda r, m: {**r, "nll": -r["nll"], "nll_per_image": -r["nll_per_image"]}, "a sign is off"),
    (lambda r, m: {**r, "nll": r["nll"] - 1.0}, "the mean of nll_per_image"),
    (lambda r, m: {**r, "nll": -r["elbo"] + 3, "nll_per_image": r["nll_per_image"] - r["nll"] - r["elbo"] + 3,
                   "bits_per_dim": (-r["elbo"] + 3) / (784 * math.log(2))}, "worse than minus your ELBO"),
    (lambda r, m: {**r, "binarize": "static"}, "the one of the dynamic binarization"),
    (lambda r, m: {**r, "seed": 5}, "the ELBO does not reproduce"),
    (lambda r, m: {**r, "nll_per_image": r["nll_per_image"].flip(0)}, "spot-checked images"),
])
def test_a_wrong_report_is_rejected(model, honest, change, hint):
    ok, out = run_check(checks.check_capstone_report, model, change(honest, model))
    assert not ok and out.startswith("✗") and hint in out


def test_a_density_or_a_conditional_model_is_rejected(honest):
    gaussian = vaelib.build_vae("mlp", latent_dim=4, hidden=64, likelihood="gaussian")
    ok, out = run_check(checks.check_capstone_report, gaussian, honest)
    assert not ok and "a density" in out
    conditional = vaelib.build_vae("mlp", latent_dim=4, hidden=64, num_classes=10)
    ok, out = run_check(checks.check_capstone_report, conditional, honest)
    assert not ok and "log p(x|y)" in out


def test_a_static_report_passes_when_it_was_evaluated_static(model):
    ok, out = run_check(checks.check_capstone_report, model, _report(model, binarize="static"))
    assert ok and "static binarization" in out
