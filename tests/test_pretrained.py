"""Every checkpoint in pretrained/ loads and still scores what it scored when it was trained.

The expected values of the MNIST models were computed once, with vaelib as of commit 0069ac5 (before the library
redesign of format version 2), by ``evaluate_elbo(model, MNIST("test", binarize="dynamic",
subset=500), batch_size=250, seed=0)``: the mean test ELBO and KL over the first 500 test images,
with the binarization and the samples of z fixed by the seed. A refactor that changes what a
stored model computes (a renamed layer, a different likelihood, a reshaped network) fails here.
The grey_* models of notebook 05 were trained on grey levels (``--binarize none``), so they are
scored on the same 500 images as grey levels (``binarize=None``); their values were computed when
they were exported (after commit 3e2ebc1).
"""
from pathlib import Path

import pytest

import vaelib
from vaelib.evaluation import evaluate_elbo

from .conftest import needs_mnist

PRETRAINED = Path(__file__).resolve().parent.parent / "pretrained"

# name: (test ELBO, KL) on the first 500 test images, nats per image
EXPECTED = {
    "conv_iwae": (-91.7796, 21.9352),
    "conv_pixelcnn": (-79.8822, 11.0189),
    "conv_vae": (-91.0105, 23.5678),
    "cvae_2d": (-129.6310, 4.6189),
    "mlp_beta_0.25": (-108.5532, 27.0205),
    "mlp_beta_0.5": (-106.5755, 22.2092),
    "mlp_beta_1": (-105.9685, 18.1926),
    "mlp_beta_2": (-107.9692, 13.5278),
    "mlp_beta_4": (-117.2737, 8.8828),
    "mlp_beta_8": (-139.6216, 4.5029),
    "mlp_vae": (-96.4778, 26.6702),
    "vae_2d": (-148.4776, 5.9471),
    # added when they were exported (after commit 3e2ebc1), with the same call
    "mlp_iaf": (-93.2664, 25.6409),
    "mlp_mog": (-93.9236, 25.1785),
    "mlp_vamp": (-91.1374, 23.5874),
    "pixel_freebits": (-85.0938, 7.9236),
    "pixel_plain": (-83.7629, 6.2311),
    "pixel_warmup": (-83.3421, 7.1558),
    # added when it was exported (after commit 5877007), with the same call
    "pixel_cyclical": (-82.8237, 8.4815),
}
# the same on grey levels: densities of continuous likelihoods, so the "ELBO" can be positive
EXPECTED_GREY = {
    "checkpoint_best": (-474.9413, 11.7567),  # the original project's recipe (mse, 100 epochs)
    "grey_bernoulli": (-101.8903, 24.9672),
    "grey_continuous_bernoulli": (1841.3521, 43.0892),
    "grey_gaussian": (-478.0517, 11.9869),
    "grey_learned_gaussian": (741.9782, 61.8130),
}


# each model scored on the first 500 test images as it was trained: dynamically binarized, or grey levels
SCORED = {**{name: ("dynamic", score) for name, score in EXPECTED.items()},
          **{name: (None, score) for name, score in EXPECTED_GREY.items()}}


def test_every_shipped_checkpoint_has_an_expected_score():
    vaes = [p.stem for p in PRETRAINED.glob("*.pth") if p.name != "mnist_classifier.pth"]  # vaelib.course.sample_quality's
    assert sorted(vaes) == sorted(SCORED)


@pytest.fixture(scope="module")
def first_500():
    return {binarize: vaelib.MNIST("test", binarize=binarize, subset=500) for binarize in ("dynamic", None)}


@needs_mnist
@pytest.mark.parametrize("name", sorted(SCORED))
def test_a_pretrained_model_reproduces_its_test_elbo(name, first_500):
    binarize, (elbo, kl) = SCORED[name]
    model = vaelib.load(PRETRAINED / f"{name}.pth")
    result = evaluate_elbo(model, first_500[binarize], batch_size=250, seed=0)
    assert result["elbo"] == pytest.approx(elbo, abs=2e-3)
    assert result["kl"] == pytest.approx(kl, abs=2e-3)
