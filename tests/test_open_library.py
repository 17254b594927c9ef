"""The open library: any image data, any image shape, your own networks, training in readable parts."""
import ast
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import vaelib
from vaelib import ImageData, build_vae, fit, load, save
from vaelib.checkpoints import load_checkpoint
from vaelib.checkpoints import CheckpointError
from vaelib.data import DataError, as_data

from .conftest import needs_mnist, run_python

ROOT = Path(__file__).resolve().parent.parent
FASHION = pytest.mark.skipif(not (Path(__import__("os").environ.get("VAELIB_DATA", "")) / "FashionMNIST" / "raw").is_dir(),
                             reason="Fashion-MNIST not found: set VAELIB_DATA to a folder holding FashionMNIST/raw/")


# The contract of issue 11, as written there (sizes as given; it takes about 20 s on 2 CPU cores) -----

@FASHION
def test_the_contract_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    import torch, vaelib  # noqa: E401,F811
    from torch import nn

    x = torch.rand(512, 3, 32, 32)                                # any images, values in [0, 1]
    model = vaelib.build_vae("conv", latent_dim=16, likelihood="gaussian", image_shape=(3, 32, 32))
    history = vaelib.fit(model, x, epochs=1)                     # a tensor, or (images, labels)
    vaelib.save(model, "my_vae.pth")
    same = vaelib.load("my_vae.pth")                              # built-in architectures rebuild themselves

    class MyDecoder(nn.Module):                                   # the user's own network
        def __init__(self): super().__init__(); self.net = nn.Sequential(nn.Linear(8, 400), nn.ReLU(), nn.Linear(400, 784))  # noqa: E501,E704
        def forward(self, z): return self.net(z).view(-1, 1, 28, 28)  # noqa: E704

    def make(): return vaelib.VAE(vaelib.networks.MLPEncoder(latent_dim=8), MyDecoder(), "bernoulli", latent_dim=8)  # noqa: E704
    custom = make()
    vaelib.fit(custom, vaelib.FashionMNIST("train", binarize="dynamic", subset=2000), epochs=1)
    vaelib.save(custom, "custom.pth")
    again = vaelib.load("custom.pth", model=make())               # weights into the user's architecture
    print(vaelib.evaluation.iwae_nll(again, vaelib.FashionMNIST("test", subset=200), k=10)["bits_per_dim"])

    bits = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 < bits < 1 and len(history) == 1 and history[0]["train_elbo"] < 0
    for a, b in zip(model.state_dict().values(), same.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(custom.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a.cpu(), b)
    assert same.image_shape == (3, 32, 32) and same.sample(2).shape == (2, 3, 32, 32)
    assert same.checkpoint["data"] == {"dataset": "images", "image_shape": [3, 32, 32], "binarize": None}


# Shapes everywhere -------------------------------------------------------------------------------

SHAPES = [(1, 28, 28), (1, 64, 64), (3, 32, 32)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_each_architecture_trains_samples_and_round_trips_on_each_shape(arch, shape, tmp_path):
    torch.manual_seed(0)
    likelihood = "bernoulli" if shape[0] == 1 else "continuous_bernoulli"
    widths = {"channels": 4} if arch == "conv" else {}  # an MLP has no convolutions: build_vae refuses channels=
    model = build_vae(arch, latent_dim=4, hidden=32, likelihood=likelihood, image_shape=shape, **widths)
    images = torch.rand(48, *shape)
    history = fit(model, images, images[:16], epochs=1, batch_size=16, progress=False, device="cpu")
    assert math.isfinite(history[0]["test_elbo"])
    assert model.sample(3).shape == (3, *shape) and model.reconstruct(images[:2]).shape == (2, *shape)
    path = save(model, tmp_path / "m.pth")
    loaded = load(path)
    assert loaded.config == model.config and loaded.image_shape == shape
    z = torch.randn(2, 4)
    torch.testing.assert_close(loaded.decode_mean(z), model.decode_mean(z))


def test_conv_networks_name_the_sizes_they_cannot_take():
    with pytest.raises(ValueError, match="divisible by 4 .* got 30x30.*mlp"):
        build_vae("conv", image_shape=(1, 30, 30))
    assert build_vae("conv", image_shape=(1, 64, 64), channels=4).encoder.fc.in_features == 8 * 8 * 8
    assert len(build_vae("conv", channels=4).encoder.conv) == 4  # MNIST: the two stride-2 layers of 0.1


def test_bits_per_dim_divide_by_the_images_dimensions(tmp_path):
    torch.manual_seed(0)
    model = build_vae("mlp", latent_dim=2, hidden=8, likelihood="gaussian", image_shape=(3, 8, 12))
    result = vaelib.evaluation.iwae_nll(model, torch.rand(10, 3, 8, 12), k=4, progress=False)
    assert result["bits_per_dim"] == pytest.approx(result["nll"] / (3 * 8 * 12 * math.log(2)))


def test_the_pixelcnn_likelihood_takes_any_height_and_width_but_one_channel():
    torch.manual_seed(0)
    model = build_vae("conv", latent_dim=3, hidden=16, channels=4, likelihood="pixelcnn", image_shape=(1, 32, 20))
    x = torch.bernoulli(torch.rand(4, 1, 32, 20))
    assert model.elbo_terms(x).value.shape == (4,)
    assert model.sample(2).shape == (2, 1, 32, 20)
    with pytest.raises(ValueError, match="one-channel .* 3 channels"):
        build_vae("conv", likelihood="pixelcnn", image_shape=(3, 32, 32))


def test_a_model_and_data_of_different_shapes_are_refused_by_name():
    with pytest.raises(ValueError, match=r"built for images \(1, 28, 28\), the data holds \(3, 32, 32\)"):
        fit(build_vae("mlp", latent_dim=2, hidden=8), torch.rand(8, 3, 32, 32), epochs=1, progress=False)


# Data -----------------------------------------------------------------------------------------------

def test_image_data_takes_uint8_or_unit_floats_with_optional_labels():
    grey = ImageData(torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8), torch.arange(10))
    assert grey.image_shape == (1, 28, 28) and grey.num_classes == 10
    x, y = next(grey.batches(4))
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and y.tolist() == [0, 1, 2, 3]
    unlabelled = as_data(torch.rand(6, 3, 8, 8))
    assert unlabelled.labels is None and next(unlabelled.batches(4))[1] is None
    pair = as_data((torch.rand(6, 1, 8, 8), torch.zeros(6, dtype=torch.long)))
    assert len(pair[2:5]) == 3 and pair[2:5].labels.shape == (3,)
    with pytest.raises(DataError, match=r"float images must lie in \[0, 1\]"):
        ImageData(torch.randn(4, 1, 8, 8) * 10)
    with pytest.raises(DataError, match="labels must be integers of shape"):
        ImageData(torch.rand(4, 1, 8, 8), torch.zeros(3))
    binary = ImageData(torch.rand(50, 1, 8, 8), binarize="dynamic")
    assert set(next(binary.batches(50))[0].unique().tolist()) <= {0.0, 1.0}


@FASHION
def test_fashion_mnist_loads_with_its_classes_and_resizes():
    train = vaelib.FashionMNIST("train")
    assert train.images.shape == (60000, 1, 28, 28) and torch.bincount(train.labels).tolist() == [6000] * 10
    assert train.classes[0] == "T-shirt/top" and train.name == "fashion_mnist"
    big = vaelib.load_dataset("fashion_mnist", "test", subset=5, image_size=64)
    assert big.image_shape == (1, 64, 64) and big.images.dtype == torch.uint8
    small = vaelib.FashionMNIST("test", subset=5)
    # resizing keeps the picture: the mean grey level barely moves
    assert abs(big.images.float().mean() - small.images.float().mean()) < 3


@needs_mnist
def test_first_returns_the_first_images_and_sample_is_its_old_name():
    data = vaelib.MNIST("test", subset=20)
    x, y = data.first(5)
    with pytest.warns(DeprecationWarning, match=r"ImageData.first\(n\)"):
        assert torch.equal(y, data.labels[:5]) and torch.equal(data.sample(5)[0], x)


# Your own networks ---------------------------------------------------------------------------------

class TinyDecoder(nn.Module):
    def __init__(self, width=32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 64))

    def forward(self, z):
        return self.net(z).view(-1, 1, 8, 8)


def _custom(width=32):
    torch.manual_seed(0)
    return vaelib.VAE(vaelib.networks.MLPEncoder(latent_dim=3, hidden=16, image_shape=(1, 8, 8)), TinyDecoder(width),
                      "bernoulli", latent_dim=3)


def test_a_user_network_round_trips_and_a_mismatch_is_named(tmp_path):
    model = _custom()
    fit(model, torch.rand(32, 1, 8, 8), epochs=1, progress=False)
    path = save(model, tmp_path / "custom.pth")
    with pytest.raises(CheckpointError, match="your own architecture .*TinyDecoder.*model=your_vae"):
        load(path)
    again = load(path, model=_custom())
    torch.testing.assert_close(again.decode_mean(torch.zeros(1, 3)), model.decode_mean(torch.zeros(1, 3)))
    with pytest.raises(CheckpointError, match=r"custom.pth: its weights do not fit the model you passed .*"
                                              r"wrong shape: decoder.net.0.weight \(32, 3\) in the file vs \(16, 3\)"):
        load(path, model=_custom(width=16))


def test_a_likelihood_may_be_an_object():
    lik = vaelib.likelihoods.GaussianLikelihood(sigma=0.3)
    model = vaelib.VAE(vaelib.networks.MLPEncoder(3, 8), vaelib.networks.MLPDecoder(3, 8), lik)
    assert model.likelihood is lik and model.latent_dim == 3


@needs_mnist
def test_every_pretrained_vae_loads_and_knows_its_data():
    for path in sorted((ROOT / "pretrained").glob("*.pth")):
        if path.name.endswith("mnist_classifier.pth"):  # not a VAE (vaelib.course.sample_quality)
            continue
        model = load(path)
        if isinstance(model, vaelib.VAE):
            assert model.config.image_shape == (1, 28, 28), path
            assert model.checkpoint["data"]["dataset"] == "mnist", path
        elif type(model).__name__ == "HierarchicalVAE":   # notebook 14's: the checkpoint records the data
            assert model.image_shape == (1, 28, 28), path
            assert load_checkpoint(path)["data"]["dataset"] == "mnist", path
        elif type(model).__name__ == "VQVAE":       # notebook 15's, on grey MNIST or Fashion-MNIST
            dataset = "fashion_mnist" if path.name.startswith("vq_fashion") else "mnist"
            assert load_checkpoint(path)["data"] == {"dataset": dataset, "image_shape": [1, 28, 28], "binarize": None}
        elif type(model).__name__ == "DDPM":        # notebook 16's: trained on conv_vae's latents, not on images
            assert model.dim == 20 and load_checkpoint(path)["train_args"]["vae"] == "conv_vae", path
            assert load_checkpoint(path)["data"] is None, path
        else:   # a prior over a VQ-VAE's codes: trained on codes, not on images
            assert type(model).__name__ == "CodePixelCNN" and model.grid == (7, 7), path
            assert load_checkpoint(path)["data"] is None, path


# Conditioning in one place ------------------------------------------------------------------------

def test_a_conditional_model_takes_labels_everywhere_and_asks_for_them():
    torch.manual_seed(0)
    model = build_vae("mlp", latent_dim=2, hidden=8, num_classes=10)
    x = torch.rand(4, 1, 28, 28)
    with pytest.raises(ValueError, match="conditional on 10 classes: pass the labels as y="):
        model.elbo_terms(x)
    assert model.elbo_terms(x, y=torch.tensor([0, 1, 2, 3])).value.shape == (4,)
    assert model.sample(3, y=7).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="labels in 0..9"):
        model.sample(2, y=10)
    from vaelib.course.widgets import interpolation_slider
    assert interpolation_slider(model, x[0], x[1], y=3) is not None  # failed on conditional models in 0.1
    with pytest.raises(ValueError, match="conditional on labels: pass data with labels"):
        fit(model, x, epochs=1, progress=False)
    history = fit(model, (x, torch.tensor([1, 2, 3, 4])), epochs=1, progress=False)
    assert math.isfinite(history[0]["train_elbo"])


# Training in readable parts ------------------------------------------------------------------------

def test_fit_reads_in_one_screen():
    tree = ast.parse((ROOT / "vaelib" / "training.py").read_text())
    fit_def = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "fit")
    body = fit_def.body[1:]  # after the docstring
    assert body[-1].end_lineno - body[0].lineno + 1 <= 45


def test_callbacks_write_samples_and_see_every_epoch(tmp_path):
    from vaelib.callbacks import Callback, SampleGrid

    class Recorder(Callback):
        def __init__(self):
            self.events = []

        def on_fit_start(self, run):
            self.events.append("start")

        def on_epoch_end(self, run, record):
            self.events.append(record["epoch"])

        def on_fit_end(self, run):
            self.events.append("end")

    recorder = Recorder()
    model = build_vae("mlp", latent_dim=2, hidden=8, image_shape=(3, 8, 8), likelihood="gaussian")
    fit(model, torch.rand(16, 3, 8, 8), epochs=2, progress=False,
        callbacks=[SampleGrid(tmp_path / "s.png", n=4, nrow=2), recorder])
    assert recorder.events == ["start", 1, 2, "end"]
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def _old_names(tmp: Path):
    """Each name of vaelib 0.1, used once: (what, a use of the old name, the same with the current one)."""
    import vaelib.bounds
    import vaelib.elbo
    model = build_vae("mlp", latent_dim=2, hidden=8)
    x, data = torch.rand(3, 1, 28, 28), vaelib.ImageData(torch.rand(6, 1, 28, 28))

    def seeded(f):
        torch.manual_seed(1)
        return f()
    return [
        ("VAE.elbo", lambda: seeded(lambda: model.elbo(x).value), lambda: seeded(lambda: model.elbo_terms(x).value)),
        ("ELBOTerms.elbo", lambda: seeded(lambda: model.elbo_terms(x).elbo), lambda: seeded(lambda: model.elbo_terms(x).value)),
        ("vaelib.elbo", lambda: vaelib.elbo.iwae_bound, lambda: vaelib.bounds.iwae_bound),
        ("vaelib.bounds.ELBO", lambda: vaelib.bounds.ELBO, lambda: vaelib.bounds.ELBOTerms),
        ("vaelib.bounds.elbo", lambda: vaelib.bounds.elbo, lambda: vaelib.bounds.elbo_terms),
        ("vaelib.bounds.posterior", lambda: vaelib.bounds.posterior, lambda: vaelib.bounds.diagonal_gaussian),
        ("VAEConfig[name]", lambda: model.config["arch"], lambda: model.config.arch),
        ("VAEConfig.get", lambda: model.config.get("arch"), lambda: model.config.arch),
        ("ImageData.sample", lambda: data.sample(2)[0], lambda: data.first(2)[0]),
        ("save_checkpoint", lambda: vaelib.load(vaelib.checkpoints.save_checkpoint(tmp / "old.pth", model)).state_dict(),
         lambda: vaelib.load(vaelib.save(model, tmp / "new.pth")).state_dict()),
        # vaelib 0.2's config fields, named like the VAE's modules
        ("VAEConfig(posterior=)", lambda: vaelib.VAEConfig(posterior="iaf"), lambda: vaelib.VAEConfig(posterior_kind="iaf")),
        ("VAEConfig(prior=)", lambda: vaelib.VAEConfig(prior="mog"), lambda: vaelib.VAEConfig(prior_kind="mog")),
        ("VAEConfig.posterior", lambda: model.config.posterior, lambda: model.config.posterior_kind),
        ("VAEConfig.prior", lambda: model.config.prior, lambda: model.config.prior_kind),
    ]


@pytest.mark.parametrize("index", range(14))
def test_each_old_name_still_works_and_warns_with_its_replacement(index, tmp_path):
    what, old, new = _old_names(tmp_path)[index]
    with pytest.warns(DeprecationWarning, match="goes in vaelib 0.3: use"):
        got = old()
    expected = new()
    if isinstance(got, dict):  # state dicts
        assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got), what
    elif isinstance(got, torch.Tensor):
        assert torch.equal(got, expected), what
    else:
        assert got is expected or got == expected, what


MOVED = ["checks", "coursework", "widgets", "sample_quality", "settings", "pretrained"]


@pytest.mark.parametrize("name", MOVED)
def test_each_course_module_at_its_old_path_warns_and_is_the_new_module(name):
    # a fresh interpreter: the first import of the old path is the one that warns
    code = (f"import warnings, importlib\n"
            f"with warnings.catch_warnings(record=True) as caught:\n"
            f"    warnings.simplefilter('always')\n"
            f"    old = importlib.import_module('vaelib.{name}')\n"
            f"    import vaelib\n"
            f"    attr = getattr(vaelib, '{name}')\n"
            f"new = importlib.import_module('vaelib.course.{name}')\n"
            f"assert old is new and attr is new, (old, new)\n"
            f"print([str(w.message) for w in caught if w.category is DeprecationWarning])\n")
    out = run_python("-c", code).stdout
    assert f"vaelib.{name} is deprecated and goes in vaelib 0.3: use vaelib.course.{name}" in out, out


@pytest.mark.parametrize("old, new", [("vaelib.fast_mode", "vaelib.course.fast_mode"),
                                      ("vaelib.mode_name", "vaelib.course.mode_name"),
                                      ("vaelib.training.fast_mode", "vaelib.course.settings.fast_mode"),
                                      ("vaelib.plotting.figure_path", "vaelib.course.figures.figure_path"),
                                      ("vaelib.plotting.save_figure", "vaelib.course.figures.save_figure")])
def test_each_moved_course_function_warns_and_is_the_new_one(old, new):
    import importlib
    module, name = old.rsplit(".", 1)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated and goes in vaelib 0.3: use {new}"):
        got = getattr(importlib.import_module(module), name)
    assert got is getattr(importlib.import_module(new.rsplit(".", 1)[0]), name)


def test_the_classifier_command_at_its_old_path_still_runs():
    result = run_python("-m", "vaelib.sample_quality", "--help")
    assert "usage: python -m vaelib.course.sample_quality" in result.stdout


def test_a_checkpoint_of_vaelib_0_2_with_the_old_field_names_loads(tmp_path):
    model = build_vae("mlp", latent_dim=2, hidden=8)
    config = model.config.to_dict()
    config["posterior"], config["prior"] = config.pop("posterior_kind"), config.pop("prior_kind")
    torch.save({**vaelib.checkpoints.load_checkpoint(vaelib.save(model, tmp_path / "m.pth")), "config": config},
               tmp_path / "old.pth")
    assert vaelib.load(tmp_path / "old.pth").config == model.config


def test_load_with_a_device_in_the_place_of_the_model_warns(tmp_path):
    path = vaelib.save(build_vae("mlp", latent_dim=2, hidden=8), tmp_path / "m.pth")
    with pytest.warns(DeprecationWarning, match=r"load\(path, device='cpu'\)"):
        assert vaelib.load(path, "cpu").latent_dim == 2


# Package hygiene ------------------------------------------------------------------------------------

# run first in a subprocess: the course's packages are not there, as after `pip install .` without extras
HIDE_EXTRAS = """
import sys
class _Hidden:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("matplotlib", "ipywidgets", "nbgrader"):
            raise ImportError(f"No module named {name!r} (hidden: the library is installed without extras)")
sys.meta_path.insert(0, _Hidden())
"""


def test_the_library_works_without_its_extras():
    root = Path(__file__).resolve().parent.parent
    out = run_python("-c", HIDE_EXTRAS + "import runpy; runpy.run_path('.ci/library_only.py', run_name='__main__')",
                     cwd=root).stdout
    assert "saved, loaded, evaluated" in out and "never imported" in out, out


@needs_mnist
def test_the_command_line_trains_and_samples_without_the_extras(tmp_path):
    script = HIDE_EXTRAS + (f"from vaelib.cli import main\n"
                            f"assert main(['train', 'r', '--runs_dir', {str(tmp_path)!r}, '--subset', '64', "
                            f"'--num_epochs', '1', '--arch', 'mlp', '--quiet']) == 0\n"
                            f"assert main(['generate', '--checkpoint_path', {str(tmp_path / 'r' / 'checkpoint_best.pth')!r}, "
                            f"'--output_path', {str(tmp_path / 'g.png')!r}]) == 0\n")
    run_python("-c", script)
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "r" / "samples.png").exists()



def test_import_vaelib_imports_no_widgets_plotting_checks_or_coursework():
    code = ("import sys, vaelib; vaelib.build_vae; vaelib.fit; vaelib.MNIST; "
            "print(sorted(m for m in ('ipywidgets', 'matplotlib', 'vaelib.course.checks', 'vaelib.course.coursework', "
            "'vaelib.plotting', 'vaelib.course.widgets') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


# the library's layers, bottom first: a module may import only from its own layer or below. The course
# harness (vaelib/course/) sits above the whole library, and the command line above both; the stubs at
# the course modules' old paths (vaelib/checks.py, ...) import only vaelib.deprecation.
LAYERS = [
    {"version", "validation", "files", "distributed", "precision", "deprecation"},
    {"threads"},
    {"data", "kl", "reparameterization", "priors", "autoregressive", "schedules", "vq"},
    {"likelihoods", "posteriors", "networks"},
    {"bounds", "elbo"},
    {"vae"},
    {"checkpoints", "evaluation", "objectives", "plotting", "runs", "images"},
    {"callbacks", "vqvae", "code_prior", "hierarchical", "diffusion", "latent_diffusion"},
    {"training"},
    {"train_run", "train_models"},
    {"course", "checks", "coursework", "widgets", "sample_quality", "settings", "pretrained"},
    {"cli", "__main__", "flags"},
]
# the same inside vaelib/course/
COURSE_LAYERS = [{"settings"}, {"figures", "pretrained"}, {"widgets", "sample_quality"}, {"checks"}, {"coursework"}]


def _layer(name, layers=LAYERS, where="vaelib"):
    found = [i for i, layer in enumerate(layers) if name in layer]
    assert found, f"{where}/{name}.py has no layer: add it to the layers in tests/test_open_library.py"
    return found[0]


def _relative_imports(path):
    """``(level, module name)`` of each relative import in ``path``; absolute imports of vaelib fail."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            assert not any(a.name.split(".")[0] == "vaelib" for a in node.names), f"{path} imports vaelib"
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vaelib":
            raise AssertionError(f"{path} imports from the package root (use a relative import)")
        if isinstance(node, ast.ImportFrom) and node.level:
            # "from .x import y" takes from module x; "from . import x" must name a module, not the root's names
            for target in [node.module.split(".")[0]] if node.module else [a.name for a in node.names]:
                yield node.level, target


def test_no_module_imports_the_package_root_or_a_higher_layer():
    for path in sorted((ROOT / "vaelib").glob("*.py")):
        if path.stem == "__init__":
            continue
        for level, target in _relative_imports(path):
            assert level == 1 and ((ROOT / "vaelib" / f"{target}.py").exists() or (ROOT / "vaelib" / target).is_dir()), \
                f"{path.name} imports {target} from the package root"
            assert _layer(target) <= _layer(path.stem), f"{path.name} imports {target}, a higher layer"
    for path in sorted((ROOT / "vaelib" / "course").glob("*.py")):
        if path.stem == "__init__":
            continue
        for level, target in _relative_imports(path):
            if level == 2:  # the library, all of it below the course, but never the command line
                assert _layer(target) < _layer("course"), f"course/{path.name} imports {target}, a higher layer"
            else:
                assert _layer(target, COURSE_LAYERS, "vaelib/course") <= _layer(path.stem, COURSE_LAYERS, "vaelib/course"), \
                    f"course/{path.name} imports {target}, a higher layer"


def test_no_library_module_imports_the_course():
    """The library's modules (all but the command line and the old paths' stubs) never import vaelib.course."""
    for path in sorted((ROOT / "vaelib").glob("*.py")):
        if path.stem != "__init__" and _layer(path.stem) < _layer("course"):
            text = path.read_text()
            assert "from .course" not in text and "import course" not in text, f"{path.name} imports the course"


def test_the_package_version_is_written_once_in_each_place_and_agrees():
    import re

    import vaelib
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert version == vaelib.__version__, "pyproject.toml's version and vaelib/version.py differ"
