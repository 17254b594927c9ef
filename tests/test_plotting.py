import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from vaelib import build_vae  # noqa: E402
from vaelib.plotting import (image_grid, lerp, plot_history, plot_interpolation, plot_manifold,  # noqa: E402
                             save_image_grid, show_images, show_reconstructions, slerp)

from .conftest import run_python  # noqa: E402


def test_image_grid_and_png(tmp_path):
    images = torch.rand(10, 1, 28, 28)
    grid = image_grid(images, nrow=5, padding=2)
    assert grid.shape == (2 * 30 + 2, 5 * 30 + 2)
    torch.testing.assert_close(grid[2:30, 2:30], images[0, 0])
    path = save_image_grid(images, tmp_path / "g.png", nrow=5)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_lerp_and_slerp():
    z0, z1 = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 1.0])
    t = torch.linspace(0, 1, 5)
    torch.testing.assert_close(lerp(z0, z1, t)[2], torch.tensor([1.5, 0.5]))
    path = slerp(z0, z1, t)
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[-1], z1)
    torch.testing.assert_close(path.norm(dim=1), torch.linspace(3, 1, 5))  # norms interpolate linearly
    angles = torch.atan2(path[:, 1], path[:, 0])
    torch.testing.assert_close(angles, torch.linspace(0, torch.pi / 2, 5))  # at constant angular speed


def test_figures_are_returned_and_saved(tmp_path):
    torch.manual_seed(0)
    model = build_vae("mlp", latent_dim=2, hidden=16).eval()
    x = torch.rand(6, 1, 28, 28)
    assert show_images(x, nrow=3, title="t").axes
    fig = show_reconstructions(x, model.reconstruct(x), n=6, save=tmp_path / "r.png")
    assert (tmp_path / "r.png").exists() and fig.axes[0].get_yticklabels()[0].get_text() == "input"
    history = [{"epoch": 1, "train_elbo": -200.0, "test_elbo": -190.0}, {"epoch": 2, "train_elbo": -150.0,
                                                                        "test_elbo": -149.0}]
    assert [line.get_label() for line in plot_history(history).axes[0].lines] == ["train elbo", "test elbo"]
    fig = plot_manifold(model, n=4, title="grid")
    assert fig.axes[0].get_title() == "grid" and fig.axes[0].images[0].get_array().shape == (112, 112)
    plot_interpolation(model, torch.zeros(2), torch.ones(2), steps=4, method="spherical")
    with pytest.raises(ValueError, match="2-D latent space"):
        plot_manifold(build_vae("mlp", latent_dim=3, hidden=8))


def test_conditional_models_take_labels():
    cvae = build_vae("mlp", latent_dim=2, hidden=16, num_classes=10).eval()
    plot_manifold(cvae, n=3, y=4)
    plot_interpolation(cvae, torch.zeros(2), torch.ones(2), steps=3, y=torch.tensor([1, 2, 3]))


def test_colour_images_show_in_colour(tmp_path):
    from PIL import Image

    from vaelib.course.widgets import to_png
    red = torch.zeros(4, 3, 8, 8)
    red[:, 0] = 1.0
    grid = image_grid(red, nrow=2, padding=2)
    assert grid.shape == (2 * 10 + 2, 2 * 10 + 2, 3) and grid[5, 5].tolist() == [1.0, 0.0, 0.0]
    fig = show_images(red, nrow=2)
    assert fig.axes[0].images[0].get_array().shape == (22, 22, 3)
    pixels = Image.open(save_image_grid(red, tmp_path / "red.png", nrow=2)).convert("RGB")
    assert pixels.getpixel((20, 20)) == (255, 0, 0)
    import io
    assert Image.open(io.BytesIO(to_png(red[0]))).convert("RGB").getpixel((3, 3)) == (255, 0, 0)


def test_the_manifold_axes_label_each_tile_with_its_z_value():
    # tiles are evenly spaced in probability, not in z: tick labels must give the tile's own z value
    model = build_vae("mlp", latent_dim=2, hidden=8).eval()
    ax = plot_manifold(model, n=5).axes[0]
    centres = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.1, 0.9, 5))
    labels = [float(t.get_text().replace("\u2212", "-")) for t in ax.get_xticklabels()]
    assert labels == pytest.approx(centres[::2].tolist(), abs=0.01)
    assert [t for t in ax.get_xticks()] == [0.5, 2.5, 4.5]


def test_each_figure_shows_once_in_a_notebook_last_line_or_not():
    """A plotting call as the cell's last line shows one figure (not the inline backend's copy and the
    returned Figure's); so does one followed by plt.show(), and one drawn into the caller's own axes."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    cells = ["%matplotlib inline\nimport torch\nimport matplotlib.pyplot as plt\n"
             "from vaelib.plotting import plot_history, show_images\nx = torch.rand(4, 1, 28, 28)",
             "show_images(x)",
             "fig = show_images(x)\nfig",
             "show_images(x)\nplt.show()",
             "plot_history([{'epoch': 1, 'train_elbo': -1.0}, {'epoch': 2, 'train_elbo': -0.5}])",
             "fig, ax = plt.subplots()\nshow_images(x, ax=ax)\nplt.show()",
             "show_images(x, title='a')\nshow_images(x, title='b')"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    shown = [sum("image/png" in o.get("data", {}) for o in cell.outputs) for cell in nb.cells[1:]]
    assert shown == [1, 1, 1, 1, 1, 2]


@pytest.mark.parametrize("n, channels, nrow, padding", [(64, 1, 8, 2), (10, 3, 4, 2), (7, 1, 3, 0), (1, 1, 8, 2),
                                                        (13, 3, 5, 1)])
def test_tile_lays_out_images_as_torchvisions_make_grid(n, channels, nrow, padding):
    from torchvision.utils import make_grid

    from vaelib.plotting import tile
    images = torch.rand(n, channels, 9, 7, generator=torch.Generator().manual_seed(n))
    assert torch.equal(tile(images, nrow, padding, pad_value=1.0), make_grid(images, nrow, padding, pad_value=1.0))


def test_importing_the_plotting_module_imports_neither_torchvision_nor_dynamo():
    loaded = run_python("-c", "import sys, vaelib.plotting; print(sorted(m for m in sys.modules if m.split('.')[0] == "
                              "'torchvision' or m.startswith('torch._dynamo')))").stdout
    assert loaded.strip() == "[]", loaded
