import pytest
import torch

import vaelib
from vaelib import build_vae, load, save
from vaelib.checkpoints import CheckpointError, load_checkpoint
from vaelib.code_prior import CodePixelCNN
from vaelib.diffusion import DDPM
from vaelib.hierarchical import HierarchicalVAE
from vaelib.vqvae import VQVAE


def _model():
    torch.manual_seed(0)
    return build_vae("conv", latent_dim=3, channels=4, hidden=16, likelihood="learned_gaussian")


def test_round_trip_rebuilds_an_identical_model(tmp_path):
    model = _model()
    with torch.no_grad():
        model.likelihood.log_sigma.fill_(-1.5)
    path = save(model, tmp_path / "m.pth", epoch=3, history=[{"epoch": 1, "test_elbo": -100.0}],
                train_args={"run_name": "x"}, best_test_elbo=-100.0)
    loaded = load(path)
    assert loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    z = torch.randn(5, 3)
    torch.testing.assert_close(loaded.decode_mean(z), model.decode_mean(z))
    assert loaded.checkpoint["epoch"] == 3
    assert loaded.checkpoint["vaelib_version"] == vaelib.__version__
    assert loaded.checkpoint["history"][0]["test_elbo"] == -100.0


def test_missing_corrupt_foreign_and_newer_files_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found: .*nope.pth"):
        load(tmp_path / "nope.pth")
    good = save(_model(), tmp_path / "good.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated.pth is not a checkpoint, or is truncated"):
        load(truncated)
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pth is not a checkpoint"):
        load(text)
    foreign = tmp_path / "foreign.pth"
    torch.save({"model": {}}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pth is not a vaelib checkpoint"):
        load(foreign)
    ckpt = torch.load(good, weights_only=True)
    ckpt["format_version"] = 99
    newer = tmp_path / "newer.pth"
    torch.save(ckpt, newer)
    with pytest.raises(CheckpointError, match="newer.pth was written by a newer vaelib"):
        load(newer)


def test_pickled_code_is_refused(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"format": "vaelib-checkpoint", "payload": print}, evil)
    with pytest.raises(CheckpointError, match="safe load"):
        load_checkpoint(evil)


def test_interrupted_save_leaves_the_old_checkpoint_loadable(tmp_path, monkeypatch):
    path = save(_model(), tmp_path / "ckpt.pth", epoch=1)
    before = path.read_bytes()

    def dies_halfway(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save(_model(), path, epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load(path).checkpoint["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pth"]  # no temporary file left behind


ARCHITECTURES = {  # every kind of module vaelib builds from a config
    "mlp": {"arch": "mlp", "hidden": 16},
    "conv, learned gaussian": {"arch": "conv", "channels": 4, "hidden": 16, "likelihood": "learned_gaussian"},
    "iaf posterior": {"arch": "mlp", "hidden": 16, "posterior_kind": "iaf", "iaf_steps": 2, "iaf_hidden": 8},
    "mog prior, conditional": {"arch": "mlp", "hidden": 16, "prior_kind": "mog", "prior_components": 3, "num_classes": 10},
    "vamp prior": {"arch": "mlp", "hidden": 16, "prior_kind": "vamp", "prior_components": 4},
    "pixelcnn": {"arch": "conv", "channels": 4, "hidden": 16, "likelihood": "pixelcnn", "pixelcnn_layers": 2},
}


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_architecture_saves_what_a_safe_load_reads_and_rebuilds_it(name, tmp_path):
    """The file loads with torch.load(weights_only=True) itself, and vaelib.load rebuilds the model
    (its shapes checked against a build on the meta device first) with identical weights."""
    torch.manual_seed(0)
    model = vaelib.build_vae(config=vaelib.VAEConfig(latent_dim=3, **ARCHITECTURES[name]))
    optimizer = torch.optim.Adam(model.parameters())
    model.elbo_terms(torch.rand(2, 1, 28, 28), y=torch.tensor([1, 2]) if model.num_classes else None).loss.backward()
    optimizer.step()
    path = save(model, tmp_path / "m.pth", optimizer=optimizer, epoch=1, history=[{"epoch": 1}])
    raw = torch.load(path, weights_only=True)
    assert raw["optimizer"]["state"] and raw["config"] == model.config.to_dict()
    loaded = load(path)
    assert loaded.config == model.config
    assert all(p.device.type == "cpu" for p in loaded.state_dict().values())
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


# Format version 3: run_config and best ---------------------------------------------------------------

def test_a_vae_keeps_its_run_config_and_best_and_its_description(tmp_path):
    model = _model()
    best = {"metric": "train_loss", "value": 95.5, "higher_is_better": False}
    run_config = {"epochs": 3, "lr": 1e-3, "batch_size": 128, "seed": 0, "subset": None, "schedule": [0.0, 1.0]}
    path = vaelib.save(model, tmp_path / "m.pth", run_config=run_config, best=best)
    loaded = load(path)
    assert loaded.checkpoint["format_version"] == 3
    assert loaded.checkpoint["run_config"] == run_config and loaded.checkpoint["best"] == best
    assert loaded.checkpoint["best_test_elbo"] is None  # its best is not a test ELBO
    assert loaded.checkpoint["model"] == {"latent_dim": 3, "num_classes": 0, "image_shape": [1, 28, 28],
                                          "likelihood": "learned_gaussian", "encoder": "ConvEncoder",
                                          "decoder": "ConvDecoder"}


def test_best_decides_best_test_elbo_and_best_test_elbo_alone_is_written_as_in_version_2(tmp_path):
    np = pytest.importorskip("numpy")
    path = vaelib.save(_model(), tmp_path / "a.pth",
                       best={"metric": "test_elbo", "value": np.float32(-90.5), "higher_is_better": True})
    ckpt = load_checkpoint(path)
    assert ckpt["best_test_elbo"] == -90.5 and type(ckpt["best"]["value"]) is float
    ckpt = load_checkpoint(vaelib.save(_model(), tmp_path / "b.pth", best_test_elbo=-91.0))
    assert ckpt["best"] is None and ckpt["best_test_elbo"] == -91.0  # best is only what the caller says
    ckpt = load_checkpoint(vaelib.save(_model(), tmp_path / "c.pth"))
    assert ckpt["best"] is None and ckpt["best_test_elbo"] is None and ckpt["run_config"] is None
    with pytest.raises(ValueError, match=r"best_test_elbo=-80.0 disagrees with best=.*: pass best only"):
        vaelib.save(_model(), tmp_path / "d.pth", best_test_elbo=-80.0,
                    best={"metric": "test_loss", "value": 80.0, "higher_is_better": False})
    assert not (tmp_path / "d.pth").exists()


NEW_FIELDS_MALFORMED = {  # field, value, what the one line says
    "run_config is a list": ("run_config", ["--lr", "1e-3"], "'run_config' has type list"),
    "run_config with number keys": ("run_config", {1: 2}, "'run_config' has keys that are not names"),
    "best is a number": ("best", -90.0, "'best' has type float"),
    "best without its direction": ("best", {"metric": "test_elbo", "value": -90.0}, "'best' has no higher_is_better"),
    "best with a string value": ("best", {"metric": "test_elbo", "value": "-90", "higher_is_better": True},
                                 "'best' has value of type str"),
    "best with no metric name": ("best", {"metric": 3, "value": -90.0, "higher_is_better": True},
                                 "'best' has metric 3"),
    "best with a direction of 1": ("best", {"metric": "test_elbo", "value": -90.0, "higher_is_better": 1},
                                   "'best' has higher_is_better 1"),
    "a model class that is not a name": ("model", {"module": "x", "class": 7, "parameters": 1}, "'model' has class 7"),
    "a negative parameter count": ("model", {"module": "x", "class": "M", "parameters": -1},
                                   "'model' has parameters -1"),
}


@pytest.mark.parametrize("case", NEW_FIELDS_MALFORMED)
def test_a_malformed_new_field_is_refused_at_load_and_at_save_in_one_line(case, tmp_path):
    field, value, problem = NEW_FIELDS_MALFORMED[case]
    ckpt = torch.load(vaelib.save(_model(), tmp_path / "good.pth"), weights_only=True)
    ckpt[field] = value
    path = tmp_path / "bad.pth"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError) as info:
        load(path)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and message.startswith(f"{path} is damaged or not a vaelib checkpoint: ")
    assert problem in message, message
    if field in ("run_config", "best"):
        with pytest.raises(TypeError, match=f"cannot save .*new.pth: {problem}"):
            vaelib.save(_model(), tmp_path / "new.pth", **{field: value})


def test_load_leaves_the_global_random_generator_as_it_was(tmp_path):
    path = vaelib.save(vaelib.build_vae("mlp", latent_dim=2, hidden=8), tmp_path / "m.pth")
    state = torch.random.get_rng_state()
    vaelib.load(path)
    assert torch.equal(state, torch.random.get_rng_state()), "vaelib.load drew from the caller's random generator"


@pytest.mark.parametrize("build", [
    lambda: HierarchicalVAE((6, 3), hidden=16, channels=4), lambda: VQVAE("fsq", channels=4),
    lambda: CodePixelCNN(16, features=8, layers=1), lambda: DDPM(4, steps=10, hidden=8, blocks=1),
], ids=["hierarchical", "vqvae", "code_prior", "diffusion"])
def test_vaelibs_other_models_rebuild_themselves_from_their_files(tmp_path, build):
    model = build()
    path = vaelib.save(model, tmp_path / "m.pth")
    assert torch.load(path, weights_only=True)["model"]["config"] == model.config
    state = torch.random.get_rng_state()
    again = vaelib.load(path)
    assert torch.equal(state, torch.random.get_rng_state())      # rebuilding draws nothing from the caller's
    assert type(again) is type(model) and again.config == model.config and not again.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    # an edited config is refused in one line, before anything is built at its size
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["config"] = {**ckpt["model"]["config"], "no_such_argument": 1}
    torch.save(ckpt, tmp_path / "edited.pth")
    with pytest.raises(vaelib.CheckpointError, match="config that vaelib cannot build"):
        vaelib.load(tmp_path / "edited.pth")


def test_a_module_outside_the_list_is_never_imported_from_a_file(tmp_path):
    path = vaelib.save(torch.nn.Linear(2, 2), tmp_path / "lin.pth")
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"].update(module="os", config={})
    ckpt["model"]["class"] = "system"
    torch.save(ckpt, path)
    with pytest.raises(vaelib.CheckpointError, match="not one of vaelib's VAEs"):
        vaelib.load(path)


def test_a_rebuildable_model_whose_config_disagrees_with_its_weights_is_refused_before_it_is_built(tmp_path):
    path = vaelib.save(HierarchicalVAE((6, 3), hidden=16, channels=4), tmp_path / "h.pth")
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["config"]["hidden"] = 4096           # would allocate a large model if built before the check
    torch.save(ckpt, tmp_path / "edited.pth")
    with pytest.raises(CheckpointError, match="weights do not fit the HierarchicalVAE its config describes"):
        vaelib.load(tmp_path / "edited.pth")
