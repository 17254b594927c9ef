"""The checks of notebook 01: each accepts a right answer and rejects known wrong ones with the intended hint."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vaelib.course import checks
from vaelib.plotting import slerp

from .conftest import assert_catches, run_check


def right_path(z0, z1, n):
    t = torch.linspace(0, 1, n).unsqueeze(1)
    return (1 - t) * z0 + t * z1


@pytest.mark.parametrize("fn, hint", [
    (lambda z0, z1, n: right_path(z1, z0, n), "runs from z1 to z0"),
    (lambda z0, z1, n: z0 + (z1 - z0) * (torch.arange(n) / n).unsqueeze(1), "stops short of z1"),
    (lambda z0, z1, n: right_path(z0, z1, n).T, "one column per point"),
    (lambda z0, z1, n: right_path(z0, z1, n + 1), "points; asked for n"),
    (lambda z0, z1, n: slerp(z0, z1, torch.linspace(0, 1, n)), "not evenly spaced on the straight line"),
])
def test_interpolate_codes(fn, hint):
    assert_catches(checks.check_interpolate_codes, right_path, fn, hint,
                   passed="correct for 3 pairs of codes (2-D, 16-D, 5-D)")


class Autoencoder(nn.Module):
    """The notebook's autoencoder, smaller."""

    def __init__(self, code_dim=16, hidden=32):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, code_dim))
        self.decoder = nn.Sequential(nn.Linear(code_dim, hidden), nn.ReLU(), nn.Linear(hidden, 784),
                                     nn.Unflatten(1, (1, 28, 28)))


@pytest.fixture(scope="module")
def data():
    """64 binary 'images' drawn around one fixed pattern, and a 16-D autoencoder that has learned the pattern
    (its decoder outputs the pattern's logits whatever the code: trained enough for the check, without training)."""
    g = torch.Generator().manual_seed(0)
    probs = torch.where(torch.rand(1, 1, 28, 28, generator=g) < 0.8, 0.02, 0.9)
    x = torch.bernoulli(probs.expand(64, 1, 28, 28), generator=g)
    torch.manual_seed(0)
    trained = Autoencoder(16)
    with torch.no_grad():
        trained.decoder[2].weight.zero_()
        trained.decoder[2].bias.copy_(torch.logit(probs).flatten())
    return x, trained


def _loss(model, x, reduction="sum"):
    with torch.no_grad():
        return F.binary_cross_entropy_with_logits(model.decoder(model.encoder(x)), x, reduction=reduction)


def test_autoencoder_16d(data):
    x, trained = data
    loss = _loss(trained, x).item() / len(x)
    ok, out = run_check(checks.check_autoencoder_16d, trained, loss, x)
    assert ok and out == f"✓ check_autoencoder_16d: a trained 16-D code, and the right test loss ({loss:.1f} nats per image)"
    assert run_check(checks.check_autoencoder_16d, trained, torch.tensor(loss), x)[0]

    with torch.no_grad():
        probs = torch.sigmoid(trained.decoder(trained.encoder(x)))
    for wrong, hint in [(-loss, "sign is flipped"), (loss / 784, "loss per pixel"), (loss * len(x), "sum over the images"),
                        (F.binary_cross_entropy_with_logits(probs, x, reduction="sum").item() / len(x), "probabilities"),
                        (loss + 5.0, "not this model's reconstruction loss")]:
        ok, out = run_check(checks.check_autoencoder_16d, trained, wrong, x)
        assert not ok and out.startswith("✗") and hint in out, (wrong, out)


def test_autoencoder_16d_wrong_model(data):
    x, _ = data
    torch.manual_seed(0)
    untrained = Autoencoder(16)      # e.g. the optimizer was given the 2-D model's parameters
    ok, out = run_check(checks.check_autoencoder_16d, untrained, _loss(untrained, x).item() / len(x), x)
    assert not ok and "not trained" in out and f"{784 * math.log(2):.0f}" in out
    two_d = Autoencoder(2)
    ok, out = run_check(checks.check_autoencoder_16d, two_d, _loss(two_d, x).item() / len(x), x)
    assert not ok and "Autoencoder(code_dim=16)" in out

