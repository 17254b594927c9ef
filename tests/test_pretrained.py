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


# the hierarchical VAEs of notebook 14 (vaelib.hierarchical): (ELBO, KL of each layer, bottom to top) of
# ``model.terms`` on the first 500 test images (dynamic binarization, seed 0), z drawn from
# ``torch.Generator().manual_seed(0)``, computed when they were exported (after commit a6a9c78)
EXPECTED_HIERARCHICAL = {
    "hvae": (-85.5536, 7.5884, 17.1398),
    "hvae_bottom_up": (-88.0526, 22.3215, 7.6011),
    "hvae_plain": (-85.6787, 9.698, 12.9431),
}

# the VQ-VAEs of notebook 15 (vaelib.vqvae), on the first 500 grey test images of their data set: (test MSE per
# pixel, codes used); and the priors over their codes: test bits per image of those images' codes. Computed when
# they were exported (after commit 8fd94bc)
EXPECTED_VQ = {
    "vq_fashion_ema": (0.0084021, 25),
    "vq_fashion_ema_restart": (0.0061034, 256),
    "vq_fashion_fsq": (0.0062262, 229),
    "vq_fashion_vq": (0.0069147, 53),
    "vq_mnist": (0.0027959, 256),
}
EXPECTED_CODE_PRIOR = {  # name: (the VQ-VAE whose codes it models, bits per image)
    "vq_fashion_prior": ("vq_fashion_ema_restart", 198.1147),
    "vq_mnist_prior": ("vq_mnist", 170.0438),
}

# notebook 16's DDPM over conv_vae's latents: L_simple (one t and one eps per vector, generator seed 0) at the
# posterior means of the first 500 test images (binarized with seed 0). Computed when it was shipped (after 9ec380f)
EXPECTED_LATENT_DDPM = {"latent_ddpm": ("conv_vae", 4.693806)}

# each model scored on the first 500 test images as it was trained: dynamically binarized, or grey levels
SCORED = {**{name: ("dynamic", score) for name, score in EXPECTED.items()},
          **{name: (None, score) for name, score in EXPECTED_GREY.items()}}


def test_every_shipped_checkpoint_has_an_expected_score():
    # the classifiers of vaelib.course.sample_quality are not VAEs
    vaes = [p.stem for p in PRETRAINED.glob("*.pth") if not p.name.endswith("mnist_classifier.pth")]
    assert sorted(vaes) == sorted([*SCORED, *EXPECTED_HIERARCHICAL, *EXPECTED_VQ, *EXPECTED_CODE_PRIOR,
                                   *EXPECTED_LATENT_DDPM])


@pytest.fixture(scope="module")
def first_500():
    return {binarize: vaelib.MNIST("test", binarize=binarize, subset=500) for binarize in ("dynamic", None)}


def _grey_first_500(name):
    data = vaelib.FashionMNIST if name.startswith("vq_fashion") else vaelib.MNIST
    return data("test", binarize=None, subset=500).images.float().div(255)


@needs_mnist
@pytest.mark.parametrize("name", sorted(EXPECTED_VQ))
def test_a_pretrained_vq_vae_reproduces_its_test_mse_and_usage(name):
    from vaelib.vqvae import reconstruction_and_usage
    measured, _ = reconstruction_and_usage(vaelib.load(PRETRAINED / f"{name}.pth"), _grey_first_500(name))
    mse, used = EXPECTED_VQ[name]
    assert measured["mse"] == pytest.approx(mse, abs=1e-6) and measured["used"] == used


@needs_mnist
@pytest.mark.parametrize("name", sorted(EXPECTED_CODE_PRIOR))
def test_a_pretrained_code_prior_reproduces_its_test_bits(name):
    import math
    autoencoder, bits = EXPECTED_CODE_PRIOR[name]
    codes = vaelib.load(PRETRAINED / f"{autoencoder}.pth").encode_codes(_grey_first_500(autoencoder))
    with torch.no_grad():
        measured = -vaelib.load(PRETRAINED / f"{name}.pth").log_prob(codes).mean().item() / math.log(2)
    assert measured == pytest.approx(bits, abs=2e-3)


@needs_mnist
@pytest.mark.parametrize("name", sorted(EXPECTED_LATENT_DDPM))
def test_a_pretrained_latent_ddpm_reproduces_its_test_loss(name, first_500):
    from vaelib.latent_diffusion import posterior_parameters
    vae_name, loss = EXPECTED_LATENT_DDPM[name]
    x, _ = first_500["dynamic"].first(500, seed=0)
    means = posterior_parameters(vaelib.load(PRETRAINED / f"{vae_name}.pth"), x).tensor[:, 0]
    with torch.no_grad():
        ddpm = vaelib.load(PRETRAINED / f"{name}.pth")
        measured = ddpm.loss_simple(means, generator=torch.Generator().manual_seed(0))
    assert measured.mean().item() == pytest.approx(loss, abs=1e-4)


@needs_mnist
@pytest.mark.parametrize("name", sorted(SCORED))
def test_a_pretrained_model_reproduces_its_test_elbo(name, first_500):
    binarize, (elbo, kl) = SCORED[name]
    model = vaelib.load(PRETRAINED / f"{name}.pth")
    result = evaluate_elbo(model, first_500[binarize], batch_size=250, seed=0)
    assert result["elbo"] == pytest.approx(elbo, abs=2e-3)
    assert result["kl"] == pytest.approx(kl, abs=2e-3)


@needs_mnist
@pytest.mark.parametrize("name", sorted(EXPECTED_HIERARCHICAL))
def test_a_pretrained_hierarchy_reproduces_its_test_elbo_and_layer_kls(name, first_500):
    model = vaelib.load(PRETRAINED / f"{name}.pth")
    x, _ = first_500["dynamic"].first(500, seed=0)
    with torch.no_grad():
        terms = model.terms(x, generator=torch.Generator().manual_seed(0))
    scored = [terms.value.mean().item(), *(kl.mean().item() for kl in terms.kl)]
    assert scored == pytest.approx(list(EXPECTED_HIERARCHICAL[name]), abs=2e-3)


# The recipes (vaelib.course.pretrained.RECIPES) --------------------------------------------------------

import torch  # noqa: E402

from vaelib.checkpoints import load_checkpoint  # noqa: E402
from vaelib.course.pretrained import RECIPES, load_or_train, recipe_table  # noqa: E402
from vaelib.flags import build_parser  # noqa: E402
from vaelib.likelihoods import canonical_name  # noqa: E402

# a run setting left out of an old checkpoint's recorded flags, and what it meant
RUN_DEFAULTS = {"free_bits": 0.0, "iwae_k": 1, "precision": "fp32", "beta_schedule": None}


def _last_command(recipe):
    """The flags of the recipe's last command (the one the shipped file's train_args record)."""
    words = recipe.command.split(", then ")[-1].split()
    return vars(build_parser().parse_args(["train", *words[2 if words[1] == "scripts/train.py" else 4:]]))


def test_every_shipped_vae_has_a_recipe_and_every_recipe_a_file():
    shipped = {p.stem for p in PRETRAINED.glob("*.pth")} - {"mnist_classifier", "fashion_mnist_classifier"}
    assert shipped == set(RECIPES)


@pytest.mark.parametrize("name", sorted(n for n, r in RECIPES.items() if r.kind == "vae"))
def test_each_recipe_is_what_trained_its_checkpoint(name):
    recipe, ckpt = RECIPES[name], load_checkpoint(PRETRAINED / f"{name}.pth")
    model = dict(recipe.model)
    classes = 10 if model.pop("conditional", False) else 0
    stored_config = vaelib.VAEConfig.from_dict(ckpt["config"])
    with torch.device("meta"):  # the defaults (widths, prior components) as building resolves them, no memory
        built = vaelib.build_vae(config=vaelib.VAEConfig(**model, num_classes=classes, image_shape=stored_config.image_shape))
    assert built.config.to_dict() == stored_config.to_dict(), name
    flags, stored = _last_command(recipe), ckpt["train_args"]
    for key in ("run_name", "num_epochs", "learning_rate", "beta", "beta_annealing_period", *RUN_DEFAULTS):
        assert flags[key] == (RUN_DEFAULTS.get(key) if stored.get(key) is None else stored[key]), (name, key)
    assert canonical_name(flags["likelihood_type"]) == canonical_name(stored["likelihood_type"])
    total = recipe.then[-1]["epochs"] if recipe.then else recipe.epochs
    assert flags["num_epochs"] == total and recipe.fit.get("lr", 1e-3) == (recipe.then or [{}])[0].get("lr", 1e-3) or recipe.then
    # the shipped file holds the last epoch, or the best one of the run
    assert ckpt["epoch"] == total if recipe.keep == "last" else ckpt["epoch"] <= total, name
    assert recipe.fit.get("beta", 1.0) == flags["beta"] and recipe.warmup_epochs == flags["beta_annealing_period"]
    assert recipe.fit.get("iwae_k", 1) == flags["iwae_k"] and recipe.fit.get("free_bits", 0.0) == flags["free_bits"]
    assert recipe.fit.get("precision", "fp32") == flags["precision"]


@pytest.mark.parametrize("name", sorted(n for n, r in RECIPES.items() if r.kind != "vae"))
def test_each_recipe_of_another_model_is_what_trained_its_checkpoint(name):
    import json

    from vaelib.train_models import MODELS
    recipe, ckpt = RECIPES[name], load_checkpoint(PRETRAINED / f"{name}.pth")
    if recipe.kind == "latent_ddpm":     # trained by steps in the benchmark's own loop; shipped as its weight average
        stored, run = ckpt["model"]["config"], ckpt["run_config"]
        assert {**recipe.model, "scale": stored["scale"], "ema_decay": None} == stored
        assert stored["scale"] == pytest.approx(recipe.model["scale"], abs=1e-4) and ckpt["data"] is None
        assert ckpt["train_args"]["ema_decay"] == recipe.model["ema_decay"] and ckpt["train_args"]["vae"] == "conv_vae"
        assert run["command"] == " ".join(recipe.command.split()[1:]) and run["lr"] == recipe.fit["lr"]
        assert run["batch_size"] == recipe.fit["batch_size"]
        assert round(run["steps"] * run["batch_size"] / 60_000) == recipe.epochs == ckpt["epoch"]
        result = json.loads((PRETRAINED.parent / "benchmarks" / "results" / "latent_diffusion-cpu.json").read_text())
        points = result["conv_vae"]["points"]
        assert points == ckpt["history"] and points[-1]["step"] == run["steps"]
        return
    with torch.device("meta"):
        assert MODELS[recipe.kind](**recipe.model).config == ckpt["model"]["config"], name
    assert len(ckpt["history"]) == recipe.epochs == ckpt["epoch"] and recipe.keep == "last"
    dataset = "fashion_mnist" if name.startswith("vq_fashion") else "mnist"
    images = {"dataset": dataset, "image_shape": [1, 28, 28]}
    trained_on = {"hierarchical": {**images, "binarize": "dynamic"}, "vqvae": {**images, "binarize": None},
                  "code_prior": None}     # a code prior is trained on codes, not on images
    assert ckpt["data"] == trained_on[recipe.kind]
    if recipe.command.startswith("python -m vaelib train"):     # its flags are the recorded settings
        flags, stored = _last_command(recipe), ckpt["train_args"]
        assert flags["model"] == stored["model"] == recipe.kind and flags["num_epochs"] == recipe.epochs
        assert flags["latent_dims"] == stored["latent_dims"]
        assert (flags["inference"] or "top_down") == stored["inference"]
        assert (flags["beta_annealing_period"] or 0) == stored["warmup_epochs"] == recipe.warmup_epochs
        assert (flags["free_bits"] or 0.0) == stored["free_bits"] == recipe.fit.get("free_bits", 0.0)
        assert flags["lr_schedule"] == ckpt["run_config"]["lr_schedule"] == recipe.fit["lr_schedule"]
    else:   # trained by a benchmark script, which recorded its command and wrote its settings beside its results
        words = recipe.command.split()
        assert ckpt["run_config"]["command"] == " ".join(words[1:])
        script, output = words[1], words[words.index("--save") + 1]
        results = {"benchmarks/hierarchical_mnist.py": "hierarchical-cpu.json",
                   "benchmarks/vq_fashion.py": "vq_fashion-cpu.json", "benchmarks/vq_mnist.py": "vq_mnist-cpu.json"}
        result = json.loads((PRETRAINED.parent / "benchmarks" / "results" / results[script]).read_text())
        if recipe.kind == "hierarchical":
            assert output == f"pretrained/{name}.pth"
            assert (result["epochs"], result["warmup_epochs"], result["free_bits"]) == (
                recipe.epochs, recipe.warmup_epochs, recipe.fit["free_bits"])
            assert result["config"] == ckpt["model"]["config"]
            return
        assert output == "pretrained"     # the script names each file after its model
        row = (result["prior"] if recipe.kind == "code_prior" else result["vqvae"] if "vqvae" in result
               else result["quantizers"][recipe.model["quantizer"]])
        assert row["epochs"] == recipe.epochs and row["parameters"] == ckpt["model"]["parameters"]
        if recipe.kind == "code_prior":
            assert row["config"] == ckpt["model"]["config"] and row["lr"] == recipe.fit["lr"]
            assert row.get("warmup_steps", 0) == recipe.fit.get("warmup_steps", 0)


def test_the_readme_shows_the_recipes_as_the_registry_writes_them():
    assert recipe_table() in (PRETRAINED / "README.md").read_text()


@needs_mnist
def test_load_or_train_trains_the_recipe_when_the_file_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAELIB_PRETRAINED", str(tmp_path))
    monkeypatch.setenv("VAELIB_FAST", "1")
    train = vaelib.MNIST("train", binarize="dynamic", subset=256)
    test = vaelib.MNIST("test", binarize="dynamic", subset=64)
    state = torch.random.get_rng_state()
    model, history = load_or_train("cvae_2d", train, test)
    assert torch.equal(state, torch.random.get_rng_state()), "load_or_train changed the caller's random generator"
    assert not model.training and len(history) == RECIPES["cvae_2d"].fast_epochs
    assert model.config.num_classes == 10 and model.latent_dim == 2
    assert "training cvae_2d from its recipe: 2 epochs on 256 images" in capsys.readouterr().out
    again, _ = load_or_train("cvae_2d", train, test)  # the same recipe, the same weights
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    # a continued run (conv_pixelcnn's then) runs only with the recipe's own length
    _, history = load_or_train("pixel_warmup", train, test, epochs=1)
    assert len(history) == 1


def test_load_or_train_refuses_a_model_function_in_the_place_of_the_data():
    with pytest.raises(TypeError, match=r"takes the model from its recipe, RECIPES\['vae_2d'\]: drop the make_model"):
        load_or_train("vae_2d", lambda: vaelib.build_vae("mlp", latent_dim=2), None)


def test_load_or_train_refuses_a_name_without_a_recipe():
    with pytest.raises(ValueError, match=r"name='conv_vea' is not a pretrained model: choose one of checkpoint_best, conv_vae"):
        load_or_train("conv_vea", None)


def test_load_or_train_loads_a_shipped_file_without_an_old_name():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # vaelib's own code uses the current names: load(path, device=...)
        model, history = load_or_train("vae_2d", None)
    assert not model.training and len(history) == 29


@needs_mnist
def test_load_or_train_trains_a_hierarchy_from_its_recipe(tmp_path, monkeypatch, capsys):
    from vaelib.hierarchical import HierarchicalVAE
    monkeypatch.setenv("VAELIB_PRETRAINED", str(tmp_path))
    monkeypatch.setenv("VAELIB_FAST", "1")
    train = vaelib.MNIST("train", binarize="dynamic", subset=256)
    model, history = load_or_train("hvae_bottom_up", train, vaelib.MNIST("test", binarize="dynamic", subset=64))
    assert isinstance(model, HierarchicalVAE) and model.inference == "bottom_up" and not model.training
    assert len(history) == 1 and {"test_kl_1", "test_kl_2"} <= set(history[-1])
    assert history[-1]["beta"] < 1       # the warm-up, a quarter of the run as in the recipe, was still rising
    assert "training hvae_bottom_up from its recipe: 1 epochs on 256 images" in capsys.readouterr().out


def test_load_or_train_loads_a_shipped_hierarchy_with_its_history():
    from vaelib.hierarchical import HierarchicalVAE
    model, history = load_or_train("hvae", None)
    assert isinstance(model, HierarchicalVAE) and not model.training
    assert len(history) == RECIPES["hvae"].epochs and history[-1]["test_kl_2"] > 1


@needs_mnist
def test_load_or_train_trains_a_vq_vae_and_a_prior_over_its_codes_from_their_recipes(tmp_path, monkeypatch, capsys):
    from vaelib.code_prior import CodePixelCNN, codes_as_images
    from vaelib.vqvae import VQVAE
    monkeypatch.setenv("VAELIB_PRETRAINED", str(tmp_path))
    monkeypatch.setenv("VAELIB_FAST", "1")
    train, test = vaelib.FashionMNIST("train", subset=256), vaelib.FashionMNIST("test", subset=64)
    model, history = load_or_train("vq_fashion_fsq", train, test)
    assert isinstance(model, VQVAE) and model.config["quantizer"] == "fsq" and not model.training
    assert len(history) == 1 and history[-1]["test_mse"] < history[-1]["train_mse"] * 2
    codes = [codes_as_images(model.encode_codes(d.images.float().div(255))) for d in (train, test)]
    prior, history = load_or_train("vq_mnist_prior", *codes)
    assert isinstance(prior, CodePixelCNN) and prior.config["layers"] == 8 and not prior.training
    assert len(history) == 1 and 0 < history[-1]["test_bits"] < 49 * 8 + 50
    out = capsys.readouterr().out
    assert "training vq_fashion_fsq from its recipe: 1 epochs on 256 images" in out
    assert "training vq_mnist_prior from its recipe: 1 epochs on 256 images" in out


@needs_mnist
def test_load_or_train_trains_a_latent_ddpm_from_its_recipe(tmp_path, monkeypatch, capsys):
    from vaelib.diffusion import DDPM
    from vaelib.latent_diffusion import posterior_parameters
    monkeypatch.setenv("VAELIB_PRETRAINED", str(tmp_path))
    monkeypatch.setenv("VAELIB_FAST", "1")
    vae = vaelib.load(PRETRAINED / "conv_vae.pth")
    train, test = (posterior_parameters(vae, vaelib.MNIST(split, binarize="dynamic", subset=n).first(n)[0])
                   for split, n in (("train", 512), ("test", 64)))
    ddpm, history = load_or_train("latent_ddpm", train, test)
    assert isinstance(ddpm, DDPM) and ddpm.config == RECIPES["latent_ddpm"].model and not ddpm.training
    assert len(history) == 1 and history[-1]["step"] == 2       # batch 256, as the recipe says
    # the average took two steps of decay 0.999 from the initial weights: close to them, and not equal
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        start = DDPM(**RECIPES["latent_ddpm"].model)
    moved = (ddpm.ema.inp.weight - start.predictor.inp.weight).abs().max()
    assert 0 < moved < (ddpm.predictor.inp.weight - start.predictor.inp.weight).abs().max()
    assert "training latent_ddpm from its recipe: 1 epochs on 512 images" in capsys.readouterr().out
