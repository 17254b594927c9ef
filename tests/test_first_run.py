"""What a newcomer and a user of the original project type first: the README's first training run,
the original project's scripts and checkpoint, and numbers that say which images they are on."""
import re
from pathlib import Path

import pytest
import torch

import vaelib
from vaelib.cli import main

from .conftest import needs_mnist, run_python

ROOT = Path(__file__).resolve().parent.parent


def _in_a_copy_of_the_root(tmp_path) -> Path:
    """A folder that looks like the repository's root (its scripts/ and pretrained/), so that commands
    typed there verbatim write their outputs into tmp_path, not into the checkout."""
    for name in ("scripts", "pretrained"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    return tmp_path


@needs_mnist
def test_the_readme_first_training_command_gives_varied_digits(tmp_path):
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^python -m vaelib train demo[^#\n]*", readme, re.M).group(0).split()
    done = run_python(*command[1:], cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    model = vaelib.load(tmp_path / "runs" / "demo" / "checkpoint_best.pth")
    samples = model.sample(16, generator=torch.Generator().manual_seed(0))
    spread = samples.std(0).mean().item()  # identical grey blobs: 0.028; digits: above 0.12
    assert spread > 0.1, f"the first run's samples are nearly identical (mean per-pixel spread {spread:.3f})"
    assert model.checkpoint["history"][-1]["active_units"] >= 10
    assert "(10,000 images)" in done.stderr + done.stdout  # the epoch line names its test images


@needs_mnist
def test_the_original_projects_readme_works_verbatim(tmp_path):
    root = _in_a_copy_of_the_root(tmp_path)
    info = run_python("scripts/generate.py", "--checkpoint_path", "pretrained/checkpoint_best.pth", "--info_only",
                      cwd=root, check=False)
    assert info.returncode == 0, info.stderr
    for needle in ("architecture: conv", "likelihood gaussian", "num_epochs: 100", "run_name: my_run", "best test ELBO"):
        assert needle in info.stdout, needle
    grid = run_python("scripts/generate.py", "--checkpoint_path", "pretrained/checkpoint_best.pth", "--num_samples", "64",
                      "--output_path", "samples.png", "--grid_size", "8", cwd=root, check=False)
    assert grid.returncode == 0, grid.stderr
    assert (root / "samples.png").read_bytes()[:4] == b"\x89PNG"
    # the training script with the README's flags (one epoch on a subset here, not 100)
    train = run_python("scripts/train.py", "my_run", "--likelihood_type", "mse", "--num_epochs", "1", "--subset", "300",
                       "--arch", "mlp", cwd=root, check=False)
    assert train.returncode == 0, train.stderr
    assert (root / "runs" / "my_run" / "checkpoint_best.pth").exists()
    bad = run_python("scripts/train.py", cwd=root, check=False)
    assert bad.returncode == 2 and "run_name" in bad.stderr and "Traceback" not in bad.stderr


def test_the_shipped_original_checkpoint_is_the_original_recipe():
    ckpt = vaelib.load_checkpoint(ROOT / "pretrained" / "checkpoint_best.pth")
    args = ckpt["train_args"]
    assert (args["likelihood_type"], args["num_epochs"], args["arch"]) == ("gaussian", 100, "conv")
    assert 90 <= ckpt["epoch"] <= 100 and len(ckpt["history"]) == ckpt["epoch"]  # the best of the 100 epochs
    assert ckpt["best"]["metric"] == "test_elbo" and ckpt["best"]["value"] == max(r["test_elbo"] for r in ckpt["history"])
    assert not any(isinstance(v, str) and v.startswith("/") for v in args.values()), "a path of the build machine"


@needs_mnist
def test_printed_numbers_name_their_test_images(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "s", "--subset", "300", "--num_epochs", "1", "--arch", "mlp", "--runs_dir", str(runs)]) == 0
    out = capsys.readouterr()
    assert "tested on the first 300 test images" in out.out
    assert "(300 images)" in out.out + out.err  # the progress bar's epoch line
    assert "best test ELBO" in out.out and "on the first 300 test images" in out.out.splitlines()[-1]
    assert main(["generate", "--checkpoint_path", str(runs / "s" / "checkpoint_best.pth"), "--info_only"]) == 0
    assert "on the first 300 test images (trained with --subset)" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint_path", str(runs / "s" / "checkpoint_best.pth"), "--k", "2"]) == 0
    assert "on 10,000 mnist test images" in capsys.readouterr().out
    helped = run_python("-m", "vaelib", "train", "--help").stdout
    assert "and test on the first N test images" in " ".join(helped.split())  # --subset says what it cuts


@needs_mnist
def test_a_long_evaluation_says_how_long_before_it_goes_on(tmp_path, capsys, monkeypatch):
    import vaelib.evaluation
    runs = tmp_path / "runs"
    assert main(["train", "s", "--subset", "200", "--num_epochs", "1", "--arch", "mlp", "--runs_dir", str(runs),
                 "--quiet"]) == 0
    argv = ["evaluate", "--checkpoint_path", str(runs / "s" / "checkpoint_best.pth"), "--k", "4", "--subset", "40",
            "--batch_size", "10"]
    capsys.readouterr()
    assert main(argv) == 0
    assert "estimated time" not in str(capsys.readouterr())  # a short run says nothing
    monkeypatch.setattr(vaelib.evaluation, "LONG_EVALUATION_SECONDS", 0.0)  # every run counts as long
    assert main(argv) == 0
    said = str(capsys.readouterr())
    assert re.search(r"estimated time: about \d+ min for 40 images at k=4 \(\d+\.\d\d s per image on the first 10\)",
                     said), said


def test_the_estimate_reads_hours_and_minutes():
    lines = []

    class Bar:
        write = staticmethod(lines.append)

    import vaelib.evaluation
    vaelib.evaluation._estimate(Bar, seconds=9.2, done=8, total=10_000, k=5000)
    assert lines and "about 3 h 12 min for 10,000 images at k=5000 (1.15 s per image on the first 8)" in lines[0]


def test_fit_runs_on_the_threads_it_is_given_and_restores_the_count():
    seen = []

    class Threads(vaelib.callbacks.Callback):
        def on_batch_end(self, run, estimate):
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    model = vaelib.build_vae("mlp", latent_dim=2, hidden=16)
    vaelib.fit(model, torch.rand(64, 1, 28, 28), epochs=1, batch_size=32, threads=target, progress=False,
               callbacks=[Threads()])
    assert seen == [target, target] and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        vaelib.fit(model, torch.rand(64, 1, 28, 28), epochs=1, threads=0, progress=False)
    assert torch.get_num_threads() == before


def test_the_cli_runs_train_and_evaluate_on_the_threads_it_is_given(monkeypatch):
    import vaelib.cli
    seen = {}
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    monkeypatch.setattr(vaelib.cli, "_train", lambda args, explicit: seen.setdefault("train", torch.get_num_threads()) and 0)
    monkeypatch.setattr(vaelib.cli, "_evaluate", lambda args: seen.setdefault("evaluate", torch.get_num_threads()) and 0)
    assert main(["train", "x", "--threads", str(target)]) == 0
    assert main(["evaluate", "--checkpoint_path", "x.pth", "--threads", str(target)]) == 0
    assert seen == {"train": target, "evaluate": target} and torch.get_num_threads() == before
