"""Nothing lost, round two, at the command line: concurrent runs of one name, terminal escapes read
from files, data sets vaelib cannot build, evaluations with nothing to report, flags that would do
nothing. Each test reproduces the fault and checks the one line that replaces it."""
import os
import socket
import subprocess
import sys

import pytest
import torch

import vaelib
from vaelib.runs import LOCK_NAME, RunClaim, RunFolderError

from .conftest import needs_mnist
from .test_robustness import TINY, assert_one_line, cli


def _train_process(runs, name, *flags):
    return subprocess.Popen([sys.executable, "-m", "vaelib", "train", name, "--runs_dir", str(runs), *TINY, *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@needs_mnist
@pytest.mark.parametrize("resume", [False, True], ids=["new", "resumed"])
def test_two_processes_with_one_run_name_one_trains_and_the_other_is_refused(tmp_path, resume, capsys):
    runs = tmp_path / "runs"
    flags = ["--num_epochs", "1"]
    if resume:
        assert main_ok(["train", "twin", "--runs_dir", runs, *TINY, "--num_epochs", "1"], capsys)
        flags = ["--num_epochs", "3", "--resume_if_exists"]
    first, second = _train_process(runs, "twin", *flags), _train_process(runs, "twin", *flags)
    results = [(p.wait(timeout=600), *p.communicate()) for p in (first, second)]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    refused = [err for code, _, err in results if code == 2][0]
    assert "already exists" in refused and "Traceback" not in refused and len(refused.strip().splitlines()) == 1
    history = vaelib.load_checkpoint(runs / "twin" / "checkpoint_last.pth")["history"]
    assert [row["epoch"] for row in history] == ([1, 2, 3] if resume else [1])
    assert not (runs / "twin" / LOCK_NAME).exists()  # the lock goes with the run


def main_ok(argv, capsys):
    code, _, err = cli(argv, capsys)
    assert code == 0, err
    return True


def test_a_live_claim_refuses_and_a_stale_one_is_taken_over(tmp_path):
    run = tmp_path / "runs" / "x"
    holder = RunClaim(run)
    assert holder.acquire() is None and (run / LOCK_NAME).exists()
    with pytest.raises(RunFolderError, match=f"already exists and process {os.getpid()} on .* is training it"):
        RunClaim(run).acquire()
    holder.release()
    assert not run.exists() and not (tmp_path / "runs").exists()  # nothing written: no folder left
    # a lock whose process is gone (killed) does not block the run forever
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run.mkdir(parents=True)
    (run / LOCK_NAME).write_text(f"{socket.gethostname()} {int(dead.stdout)}\n")
    claim = RunClaim(run)
    assert claim.acquire() is None
    claim.release()


@needs_mnist
def test_a_run_name_with_a_control_character_is_refused(tmp_path, capsys):
    code, _, err = cli(["train", "two\nlines", "--runs_dir", tmp_path, *TINY], capsys)
    assert_one_line(code, err, "not a plain folder name", exit_code=2)
    assert not any(tmp_path.iterdir())


def test_info_only_escapes_control_characters_read_from_the_checkpoint(tmp_path, capsys):
    model = vaelib.build_vae("mlp", latent_dim=2, hidden=8)
    path = tmp_path / "hostile.pth"
    vaelib.save(model, path, train_args={"run_name": "\x1b]0;owned\x07\x1b[2J", "note": "a\nb"})
    code, out, _ = cli(["generate", "--checkpoint_path", path, "--info_only"], capsys)
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out and "a\nb" not in out
    assert "run_name: \\x1b]0;owned\\x07\\x1b[2J" in out and "note: a\\nb" in out


@pytest.mark.parametrize("name", ["FakeData", "ImageFolder", "VisionDataset", "omniglot", "imagenet", "LSUN"])
def test_data_sets_vaelib_cannot_build_are_refused_when_parsed(name, tmp_path, capsys):
    code, _, err = cli(["train", "x", "--runs_dir", tmp_path, "--dataset", name], capsys)
    assert_one_line(code, err, f"unknown data set {name!r}", "mnist", "stl10", "vaelib.fit", exit_code=2)
    assert not any(tmp_path.iterdir())
    with pytest.raises(vaelib.DataError, match="vaelib loads"):
        vaelib.load_dataset(name)


@needs_mnist
def test_evaluate_never_reports_nan_nats(tmp_path, capsys, monkeypatch):
    model = vaelib.build_vae("mlp", latent_dim=2, hidden=8)
    path = tmp_path / "m.pth"
    vaelib.save(model, path, data=vaelib.MNIST("test", subset=10))
    code, _, err = cli(["evaluate", "--checkpoint_path", path, "--subset", "3", "--shard", "5/10", "--k", "2"], capsys)
    assert_one_line(code, err, "shard 5/10", "holds no image", exit_code=2)
    # bounds that come out NaN (a diverged model, or bf16 overflow): exit 1 and one line, never "nan nats"
    def nan_bounds(model, data, k, seed=0, batch_size=None, indices=None, precision="fp32"):
        yield torch.tensor(indices), torch.full((len(indices),), float("nan"))
    monkeypatch.setattr(vaelib.evaluation, "iwae_bounds", nan_bounds)
    code, out, err = cli(["evaluate", "--checkpoint_path", path, "--subset", "4", "--k", "2"], capsys)
    assert "nan nats" not in out
    assert_one_line(code, err.split("\r")[-1], "4 of 4 per-image bounds", "not finite", exit_code=1)  # after the bar


def test_combine_refuses_a_checkpoint_path_it_would_ignore(tmp_path, capsys):
    code, _, err = cli(["evaluate", "--combine", tmp_path / "a.json", "--checkpoint_path", "x.pth"], capsys)
    assert_one_line(code, err, "--checkpoint_path with --combine", "drop --checkpoint_path", exit_code=2)


@pytest.mark.parametrize("flags, needle", [
    (["--sigma", "0.5"], "--sigma"),
    (["--sigma", "0.5", "--likelihood_type", "pixelcnn"], "--sigma"),
    (["--channels", "64", "--arch", "mlp"], "--channels"),
])
def test_flags_that_would_do_nothing_are_refused(flags, needle, tmp_path, capsys):
    code, _, err = cli(["train", "x", "--runs_dir", tmp_path, *flags], capsys)
    assert_one_line(code, err, needle, exit_code=2)
    assert not any(tmp_path.iterdir())


def test_build_vae_refuses_arguments_its_model_would_ignore():
    with pytest.raises(ValueError, match="sigma=0.5 is the Gaussian"):
        vaelib.build_vae("mlp", likelihood="bernoulli", sigma=0.5)
    with pytest.raises(ValueError, match="channels=64 sets the width of the conv"):
        vaelib.build_vae("mlp", channels=64)
    assert vaelib.build_vae("mlp", likelihood="gaussian", sigma=0.5).likelihood.sigma == pytest.approx(0.5)
