"""The widgets' update functions, called directly, and the widgets driven by setting slider values."""
import io

import pytest
import torch
from PIL import Image

from vaelib import build_vae, iwae_bound
from vaelib.course.widgets import (beta_explorer, beta_panel, decode_point, digit_selector, interpolate_point,
                            importance_explorer, importance_panel, interpolation_slider, latent_explorer, principal_directions, reconstruction_panel,
                            reconstruction_viewer, to_png)

from .conftest import needs_mnist


@pytest.fixture(scope="module")
def model2d():
    torch.manual_seed(0)
    return build_vae("mlp", latent_dim=2, hidden=32).eval()


def test_decode_point_and_png(model2d):
    image = decode_point(model2d, [0.5, -1.0])
    assert image.shape == (1, 28, 28) and 0 <= image.min() and image.max() <= 1
    torch.testing.assert_close(image, model2d.decode_mean(torch.tensor([[0.5, -1.0]]))[0])
    png = to_png(image)
    assert Image.open(io.BytesIO(png)).size == (112, 112)
    with pytest.raises(ValueError, match="latent space has 2"):
        decode_point(model2d, [1.0, 2.0, 3.0])


def test_interpolation_ends_at_the_two_points(model2d):
    z0, z1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    for method in ("linear", "spherical"):
        torch.testing.assert_close(interpolate_point(model2d, z0, z1, 0.0, method), decode_point(model2d, z0))
        torch.testing.assert_close(interpolate_point(model2d, z0, z1, 1.0, method), decode_point(model2d, z1))
    mid_linear = interpolate_point(model2d, z0, z1, 0.5, "linear")
    torch.testing.assert_close(mid_linear, decode_point(model2d, [0.5, 1.0]))


def test_latent_explorer_redraws_when_a_slider_moves(model2d):
    box = latent_explorer(model2d)
    sliders = box.children[0].children[:2]
    image = box.children[1]
    before = image.value
    sliders[0].value = 2.5
    assert image.value != before
    assert image.value == to_png(decode_point(model2d, [2.5, 0.0]))
    reset = box.children[0].children[2].children[0]
    reset.click()
    assert image.value == to_png(decode_point(model2d, [0.0, 0.0]))


def test_large_latents_need_data_for_principal_directions():
    model = build_vae("mlp", latent_dim=20, hidden=16)
    with pytest.raises(ValueError, match="principal directions"):
        latent_explorer(model)


def test_digit_selector_switches_digits():
    torch.manual_seed(0)
    cvae = build_vae("mlp", latent_dim=2, hidden=16, num_classes=10).eval()
    box = digit_selector(cvae)
    digit, image = box.children[0], box.children[1].children[1]
    digit.value = 7
    assert image.value == to_png(decode_point(cvae, [0.0, 0.0], y=7))
    with pytest.raises(ValueError, match="conditional"):
        digit_selector(build_vae("mlp", latent_dim=2, hidden=8))


@needs_mnist
def test_reconstruction_panel_and_viewer(model2d, small_test):
    panel = reconstruction_panel(model2d, small_test, 3, n_samples=4)
    assert panel.shape == (6, 1, 28, 28)
    grey = small_test.images[3].float() / 255
    assert ((panel[0] == 0) | (panel[0] == 1)).all() and (panel[0][grey > 0.9] == 1).float().mean() > 0.8
    torch.testing.assert_close(reconstruction_panel(model2d, small_test, 3, 4), panel)  # seeded
    viewer = reconstruction_viewer(model2d, small_test, n_samples=4)
    index, image = viewer.children[0], viewer.children[2]
    index.value = 3
    assert image.value == to_png(panel, nrow=6)


@needs_mnist
def test_beta_panel_principal_directions_and_explorers(model2d, small_test):
    other = build_vae("mlp", latent_dim=2, hidden=32).eval()
    models = {0.5: model2d, 4.0: other}
    x, _ = small_test.first(4)
    panel = beta_panel(models, 4.0, x, n_samples=4)
    assert panel.shape == (12, 1, 28, 28)
    torch.testing.assert_close(panel[4:8], other.reconstruct(x))
    explorer = beta_explorer(models, small_test, n=4)
    explorer.children[0].value = 4.0
    assert explorer.children[2].value == to_png(beta_panel(models, 4.0, small_test.first(4)[0], 4), nrow=4)
    big = build_vae("mlp", latent_dim=12, hidden=16).eval()
    center, directions = principal_directions(big, small_test, k=3, n=200)
    assert center.shape == (12,) and directions.shape == (3, 12)
    assert len(latent_explorer(big, small_test, max_sliders=3).children[0].children) == 4
    slider = interpolation_slider(model2d, x[0], x[1])
    t, image = slider.children[0].children[0], slider.children[1].children[1]
    t.value = 1.0
    z1 = model2d.encoder(x[1:2])[0][0]
    assert image.value == to_png(decode_point(model2d, z1))


def test_importance_panel_agrees_with_the_iwae_bound(model2d, small_test):
    seed, k = 3, 50
    panel = importance_panel(model2d, small_test, 5, k, n_show=4, seed=seed)
    x = small_test.prepare(small_test.images[5:6], torch.Generator().manual_seed(seed))
    with torch.no_grad():
        bound = iwae_bound(model2d, x, k, generator=torch.Generator().manual_seed(seed))
    assert panel["bound"] == pytest.approx(bound.item(), abs=1e-4)
    assert panel["bound"] >= panel["elbo"]                      # Jensen: log-mean-exp >= mean
    assert 1.0 <= panel["ess"] <= k
    w = panel["weights"]
    assert w.shape == (4,) and torch.all(w[:-1] >= w[1:]) and w.sum() <= 1 + 1e-6
    assert panel["images"].shape == (5, 1, 28, 28)
    torch.testing.assert_close(panel["images"][0], x[0])
    one = importance_panel(model2d, small_test, 5, 1, seed=seed)
    assert one["ess"] == pytest.approx(1.0) and one["bound"] == pytest.approx(one["elbo"])


def test_importance_explorer_redraws(model2d, small_test):
    widget = importance_explorer(model2d, small_test, ks=(1, 10, 100))
    index, k = widget.children[0].children
    numbers, image = widget.children[1], widget.children[2]
    before, text = image.value, numbers.value
    k.value = 100
    assert "ESS" in numbers.value and "of 100" in numbers.value and numbers.value != text
    index.value = 7
    assert image.value != before


def test_the_reverse_chain_explorer_decodes_the_step_it_shows(model2d):
    from vaelib.course.widgets import chain_panel, reverse_chain_explorer
    from vaelib.diffusion import DDPM
    torch.manual_seed(0)
    _, path = DDPM(2, steps=10, hidden=8, blocks=1).sample(4, generator=torch.Generator().manual_seed(0),
                                                          trajectory=True)
    assert torch.equal(chain_panel(model2d, path, 3), model2d.decode(path[3]).mean)
    with pytest.raises(ValueError, match="step=11: the chain has steps 0 to 10"):
        chain_panel(model2d, path, 11)
    widget = reverse_chain_explorer(model2d, path)
    step, caption, image = widget.children
    assert step.value == 10 and "t = 0" in caption.value
    before = image.value
    step.value = 0
    assert image.value != before and "t = 10" in caption.value and image.value == to_png(chain_panel(model2d, path, 0),
                                                                                         nrow=4)
