"""vaelib.train_run.train_vae: what `vaelib train` does, from Python, in Python names; and the rule that
library messages name Python arguments, never the command line's flags."""
import ast
from pathlib import Path

import pytest
import torch

import vaelib
from vaelib.flags import build_parser
from vaelib.train_run import NothingToTrain, RunConflict, train_vae

from .conftest import needs_mnist

TINY = dict(subset=64, batch_size=32, progress=False)
MLP = {"arch": "mlp", "hidden": 16, "latent_dim": 3}


@needs_mnist
def test_a_run_trains_continues_and_keeps_its_settings(tmp_path):
    lines = []
    history = train_vae(tmp_path / "r", MLP, epochs=1, lr=3e-3, seed=4, log=lines.append, **TINY)
    assert len(history) == 1 and lines[-1].startswith("done: 1 epoch(s) trained")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["checkpoint_best.pth", "checkpoint_last.pth",
                                                                 "history.csv", "samples.png"]
    history = train_vae(tmp_path / "r", resume_if_exists=True, epochs=2, log=lines.append, **TINY)
    assert len(history) == 2 and any(line.startswith("resuming") for line in lines)
    model = vaelib.load(tmp_path / "r" / "checkpoint_last.pth")
    assert (model.config.arch, model.latent_dim, model.config.hidden) == ("mlp", 3, 16)
    stored = model.checkpoint["run_config"]
    assert (stored["lr"], stored["seed"], stored["epochs"]) == (3e-3, 4, 2)  # kept from the first call
    with pytest.raises(NothingToTrain, match=r"already trained 2 epochs and epochs=2 is the total"):
        train_vae(tmp_path / "r", resume_if_exists=True, epochs=2, **TINY)


@needs_mnist
def test_the_same_seed_builds_the_same_model_and_the_callers_generator_is_left_alone(tmp_path):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    train_vae(tmp_path / "a", MLP, epochs=1, log=lambda *a: None, **TINY)
    assert torch.equal(torch.random.get_rng_state(), before)
    train_vae(tmp_path / "b", MLP, epochs=1, log=lambda *a: None, **TINY)
    a, b = (vaelib.load(tmp_path / name / "checkpoint_last.pth") for name in "ab")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@needs_mnist
def test_settings_that_contradict_the_checkpoint_are_refused_by_name(tmp_path):
    train_vae(tmp_path / "r", MLP, epochs=1, log=lambda *a: None, **TINY)
    with pytest.raises(RunConflict) as caught:
        train_vae(tmp_path / "r", {"latent_dim": 5, "arch": "mlp"}, dataset="fashion_mnist", resume_if_exists=True,
                  epochs=2, **TINY)
    assert caught.value.conflicts == [("latent_dim", 5, 3), ("dataset", "fashion_mnist", "mnist")]
    assert "latent_dim=5 (the checkpoint has 3)" in str(caught.value)
    with pytest.raises(RunConflict, match=r"hidden=32 \(the checkpoint has 16\) contradicts start_from="):
        train_vae(tmp_path / "s", {"hidden": 32}, start_from=tmp_path / "r" / "checkpoint_last.pth", epochs=1, **TINY)
    assert not (tmp_path / "s").exists()  # refused before anything was written


@pytest.mark.parametrize("model, named", [
    ({"iaf_steps": 3}, "posterior_kind='iaf'"),
    ({"sigma": 0.3}, "likelihood='mse'"),
    ({"arch": "mlp", "channels": 8}, "arch='conv'"),
    ({"pixelcnn_layers": 2}, "likelihood='pixelcnn'"),
    ({"prior_components": 4}, "prior_kind='mog'"),
    (vaelib.VAEConfig(iaf_hidden=64), "posterior_kind='iaf'"),  # a VAEConfig: its non-default fields count as given
])
def test_model_fields_that_would_do_nothing_are_refused_before_any_data_is_read(model, named, tmp_path):
    with pytest.raises(ValueError, match=named):
        train_vae(tmp_path / "r", model, dataset="mnist", data_root=tmp_path / "no data here", epochs=1)
    assert not (tmp_path / "r").exists()


def _library_messages():
    """Every string constant inside a raise statement or a warning of the library's modules."""
    library = Path(vaelib.__file__).parent
    for path in sorted(library.rglob("*.py")):
        if path.name in ("cli.py", "flags.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) or (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "warn"):
                for part in ast.walk(node):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        yield path.relative_to(library), part.value


def test_library_messages_name_python_arguments_not_the_command_lines_flags():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices.values()
    flags = {f for command in commands for action in command._actions for f in action.option_strings
             if f.startswith("--") and f not in ("--help", "--debug")}
    found = [(str(path), text) for path, text in _library_messages()
             if any(f"{flag} " in text + " " or f"{flag})" in text for flag in flags)]
    assert not found, found


@needs_mnist
def test_a_continued_run_keeps_its_batch_size_and_epochs_when_not_given_again(tmp_path):
    steps = []

    def make_objective(steps_per_epoch):
        steps.append(steps_per_epoch)
        return None, "beta 1"
    quiet = dict(subset=64, progress=False, log=lambda *a: None, make_objective=make_objective)
    train_vae(tmp_path / "r", MLP, epochs=1, batch_size=16, **quiet)
    train_vae(tmp_path / "r", resume_if_exists=True, epochs=2, **quiet)
    assert steps == [4, 4]  # 64 images in batches of 16, as fit runs them, not the default 128
    with pytest.raises(NothingToTrain, match=r"epochs=2 is the total"):  # the stored total, not the default 10
        train_vae(tmp_path / "r", resume_if_exists=True, **quiet)


def test_a_model_field_under_its_old_name_warns_and_counts_as_the_new_one(tmp_path):
    # posterior= (vaelib 0.2) is posterior_kind=: a Gaussian posterior makes the IAF width idle, refused by the new name
    with pytest.warns(DeprecationWarning, match=r"train_vae\(model=\{'posterior': \.\.\.\}\) is deprecated"), \
            pytest.raises(ValueError, match="add posterior_kind='iaf'"):
        train_vae(tmp_path / "r", {"posterior": "gaussian", "iaf_steps": 3})
