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


# Part 2: one lever on the Part-1 model, a paired difference and the sample scores of both

def _fitted(**fields):
    torch.manual_seed(0)
    m = vaelib.build_vae(config=vaelib.VAEConfig("mlp", 4, hidden=64, **fields))
    vaelib.fit(m, vaelib.FashionMNIST("train", binarize="dynamic", subset=2000), epochs=1, progress=False)
    return m.eval()


@pytest.fixture(scope="module")
def vamp():
    return _fitted(prior_kind="vamp", prior_components=10)


def _gain_report(baseline, improved, lever="prior", samples=1000):
    from vaelib.course.sample_quality import model_scores
    a, b = _report(baseline), _report(improved)
    d = b["nll_per_image"].double() - a["nll_per_image"].double()
    return {"baseline": a, "improved": b, "lever": lever, "nll_difference": d.mean().item(),
            "nll_difference_se": d.std().item() / math.sqrt(N),
            "bits_per_dim_difference": d.mean().item() / (784 * math.log(2)),
            "samples": {"n": samples, "seed": 0,
                        "fd_baseline": model_scores(baseline, samples, 0, dataset="fashion_mnist")["fd"],
                        "fd_improved": model_scores(improved, samples, 0, dataset="fashion_mnist")["fd"]}}


@pytest.fixture(scope="module")
def gain(model, vamp):
    return _gain_report(model, vamp)


def test_an_honest_gain_passes_with_its_paired_difference(model, vamp, gain):
    ok, out = run_check(checks.check_capstone_gain, model, vamp, gain)
    assert ok, out
    assert f"improved - baseline = {gain['nll_difference']:+.2f} +- {gain['nll_difference_se']:.2f} nats" in out
    assert f"FD {gain['samples']['fd_baseline']:.1f} -> {gain['samples']['fd_improved']:.1f}" in out


def _unpaired(r):
    a, b = (r[w]["nll_per_image"].double().std().item() for w in ("baseline", "improved"))
    return {**r, "nll_difference_se": math.hypot(a, b) / math.sqrt(N)}


@pytest.mark.parametrize("change, hint", [
    (lambda r: {k: v for k, v in r.items() if k != "samples"}, "missing samples"),
    (lambda r: {**r, "improved": {**r["improved"], "seed": 3}}, "improved: the ELBO does not reproduce"),
    (lambda r: {**r, "lever": "iaf"}, "does not have an IAF posterior"),
    (lambda r: {**r, "lever": "flows"}, "choose one of"),
    (lambda r: {**r, "nll_difference": -r["nll_difference"]}, "the wrong sign"),
    (_unpaired, "treats the two models as independent"),
    (lambda r: {**r, "nll_difference_se": r["nll_difference_se"] * math.sqrt(N)}, "divide by sqrt(n)"),
    (lambda r: {**r, "bits_per_dim_difference": r["nll_difference"] / math.log(2)}, "in bits per image"),
    (lambda r: {**r, "samples": {**r["samples"], "n": 100}}, "biased upward at small n"),
    (lambda r: {**r, "samples": {**r["samples"], "fd_improved": r["samples"]["fd_improved"] + 5}},
     "the improved FD does not reproduce"),
])
def test_a_wrong_gain_is_rejected(model, vamp, gain, change, hint):
    ok, out = run_check(checks.check_capstone_gain, model, vamp, change(gain))
    assert not ok and hint in out, out


def test_a_gain_needs_the_same_protocol_and_one_lever(model, vamp, gain):
    static = {**gain, "improved": _report(vamp, binarize="static")}
    ok, out = run_check(checks.check_capstone_gain, model, vamp, static)
    assert not ok and "the two reports differ in binarize" in out
    ok, out = run_check(checks.check_capstone_gain, vamp, model, {**gain, "baseline": gain["improved"],
                                                                   "improved": gain["baseline"]})
    assert not ok and "does not have a learned prior" in out


def test_a_second_change_beside_the_lever_is_named():
    baseline = vaelib.build_vae(config=vaelib.VAEConfig("mlp", 4, hidden=64)).eval()
    improved = vaelib.build_vae(config=vaelib.VAEConfig("mlp", 6, hidden=64, prior_kind="vamp",
                                                        prior_components=10)).eval()
    report = _gain_report(baseline, improved, samples=1000)
    ok, out = run_check(checks.check_capstone_gain, baseline, improved, report)
    assert not ok and "also differ in latent_dim" in out


@pytest.mark.parametrize("fields", [{"posterior_kind": "iaf", "iaf_hidden": 32},
                                    {"arch": "conv", "likelihood": "pixelcnn", "channels": 8, "hidden": 32}])
def test_the_part_1_check_reads_the_part_2_models(fields):
    """An IAF posterior and a pixelcnn decoder: ELBO reproduced and L_k spot-checked as for Part 1's models."""
    m = vaelib.build_vae(config=vaelib.VAEConfig(**{"arch": "mlp", "latent_dim": 4, "hidden": 64, **fields})).eval()
    ok, out = run_check(checks.check_capstone_report, m, _report(m))
    assert ok and "ELBO reproduced" in out, out
