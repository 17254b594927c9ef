import itertools

import pytest
import torch

from vaelib.autoregressive import MaskedConv2d, PixelCNNBernoulliLikelihood
from vaelib.checkpoints import load, save_checkpoint
from vaelib.elbo import iwae_bound
from vaelib.vae import build_vae


@pytest.fixture
def likelihood_and_params():
    torch.manual_seed(0)
    lik = PixelCNNBernoulliLikelihood(features=8, kernel_size=5)
    return lik, torch.randn(3, 8, 28, 28)


@pytest.mark.parametrize("row, col", [(0, 0), (0, 5), (9, 0), (14, 13), (27, 27)])
def test_a_pixels_logit_depends_only_on_the_pixels_before_it(likelihood_and_params, row, col):
    lik, params = likelihood_and_params
    x = torch.bernoulli(torch.full((3, 1, 28, 28), 0.5)).requires_grad_(True)
    grad, = torch.autograd.grad(lik.logits(params, x)[0, 0, row, col], x)
    seen = grad[0, 0].flatten() != 0
    i = row * 28 + col
    assert not seen[i:].any(), "the logit sees its own pixel or a later one"
    neighbour = (row - 1) * 28 + col if row > 0 else i - 1  # the pixel above, or to the left on row 0
    if i > 0:
        assert seen[neighbour], "the logit ignores the pixel next to it"


def test_log_prob_is_normalized_over_the_last_pixels(likelihood_and_params):
    # With the first 781 pixels fixed, the 8 ways to set the last 3 must share exactly the probability
    # of the prefix: p(prefix) = sum over the last three of p(x). A leaking mask breaks this.
    lik, params = likelihood_and_params
    base = torch.bernoulli(torch.full((1, 1, 28, 28), 0.3))
    images = base.repeat(8, 1, 1, 1)
    for n, bits in enumerate(itertools.product([0.0, 1.0], repeat=3)):
        images[n, 0, 27, 25:] = torch.tensor(bits)
    log_p = lik(params[:1].expand(8, -1, -1, -1)).log_prob(images)
    logits = lik.logits(params[:1], base)
    prefix = -torch.nn.functional.binary_cross_entropy_with_logits(
        logits.flatten()[:781], base.flatten()[:781], reduction="sum")
    torch.testing.assert_close(torch.logsumexp(log_p, 0), prefix, atol=1e-4, rtol=0)


def test_sampling_pixel_by_pixel_agrees_with_one_pass_over_the_drawn_image(likelihood_and_params):
    lik, params = likelihood_and_params
    x, probs = lik.sample(params, generator=torch.Generator().manual_seed(3))
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    # the sampler runs the window on a few rows at a time; the probabilities must be the full pass's
    torch.testing.assert_close(probs, torch.sigmoid(lik.logits(params, x)), atol=1e-5, rtol=0)
    again, _ = lik.sample(params, generator=torch.Generator().manual_seed(3))
    assert torch.equal(x, again)
    assert lik(params).sample().shape == (3, 1, 28, 28)


def test_masked_conv_refuses_an_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        MaskedConv2d(1, 4, kernel_size=4)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_a_pixelcnn_vae_trains_evaluates_samples_and_reloads(arch, tmp_path):
    torch.manual_seed(0)
    model = build_vae(arch, latent_dim=4, likelihood="pixelcnn", hidden=32, channels=8)
    x = torch.bernoulli(torch.rand(16, 1, 28, 28) * 0.3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.elbo(x).loss.item()
    for _ in range(30):
        opt.zero_grad()
        model.elbo(x).loss.backward()
        opt.step()
    assert model.elbo(x).loss.item() < first - 50
    with torch.no_grad():
        torch.manual_seed(1)
        elbo = model.elbo(x).elbo
        bound = iwae_bound(model, x, k=20, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(bound).all() and bound.mean() > elbo.mean() - 1.0
    images = model.sample(4)
    assert images.shape == (4, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    path = save_checkpoint(tmp_path / "pcnn.pth", model)
    loaded = load(path)
    z = torch.randn(16, 4)
    with torch.no_grad():
        assert torch.equal(loaded.decode(z).log_prob(x), model.decode(z).log_prob(x))
