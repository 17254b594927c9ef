import itertools

import pytest
import torch

from vaelib.autoregressive import MaskedConv2d, PixelCNNBernoulliLikelihood
from vaelib.checkpoints import load, save
from vaelib.bounds import iwae_bound
from vaelib.vae import build_vae


@pytest.fixture(params=[1, 3], ids=["one layer", "three layers"])
def likelihood_and_params(request):
    torch.manual_seed(0)
    lik = PixelCNNBernoulliLikelihood(features=8, kernel_size=5, layers=request.param)
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


def test_gated_layers_see_further_up_and_left_than_the_window_alone():
    torch.manual_seed(0)
    params, x = torch.randn(1, 8, 28, 28), torch.bernoulli(torch.full((1, 1, 28, 28), 0.5)).requires_grad_(True)
    reach = {}
    for layers in (1, 3):
        lik = PixelCNNBernoulliLikelihood(features=8, kernel_size=5, layers=layers)
        grad, = torch.autograd.grad(lik.logits(params, x)[0, 0, 14, 14], x)
        rows = grad[0, 0].abs().sum(1).nonzero().flatten()
        reach[layers] = 14 - int(rows.min())
    assert reach == {1: 2, 3: 4}  # the 5x5 window's 2 rows, plus one row per gated layer


def test_old_checkpoints_have_the_same_weights_as_a_one_layer_decoder():
    # an empty ModuleList adds no keys: every pixelcnn checkpoint saved before layers existed still loads
    assert set(PixelCNNBernoulliLikelihood(layers=1).state_dict()) == {
        "window.weight", "window.bias", "window.mask", "head.1.weight", "head.1.bias", "head.3.weight", "head.3.bias"}
    with pytest.raises(ValueError, match="layers must be a whole number"):
        PixelCNNBernoulliLikelihood(layers=0)


@pytest.mark.parametrize("arch, layers", [("mlp", 1), ("conv", 1), ("conv", 2)])
def test_a_pixelcnn_vae_trains_evaluates_samples_and_reloads(arch, layers, tmp_path):
    from vaelib.vae import VAEConfig
    torch.manual_seed(0)
    widths = {"channels": 8} if arch == "conv" else {}  # an MLP has no convolutions: build_vae refuses channels=
    model = build_vae(config=VAEConfig(arch, latent_dim=4, likelihood="pixelcnn", hidden=32, pixelcnn_layers=layers,
                                       **widths))
    x = torch.bernoulli(torch.rand(16, 1, 28, 28) * 0.3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.elbo_terms(x).loss.item()
    for _ in range(30):
        opt.zero_grad()
        model.elbo_terms(x).loss.backward()
        opt.step()
    assert model.elbo_terms(x).loss.item() < first - 50
    with torch.no_grad():
        torch.manual_seed(1)
        elbo = model.elbo_terms(x).value
        bound = iwae_bound(model, x, k=20, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(bound).all() and bound.mean() > elbo.mean() - 1.0
    images = model.sample(4)
    assert images.shape == (4, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    path = save(model, tmp_path / "pcnn.pth")
    loaded = load(path)
    assert loaded.config.pixelcnn_layers == layers and len(loaded.likelihood.gated) == layers - 1
    z = torch.randn(16, 4)
    with torch.no_grad():
        assert torch.equal(loaded.decode(z).log_prob(x), model.decode(z).log_prob(x))
