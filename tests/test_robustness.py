"""Bad input and faults: one clear line, a non-zero exit, never a traceback, nothing the user had lost.

Each class of failure is a parametrized test. Faults that need a non-root user or a full disk are
also simulated at the operating-system boundary (the call that would fail raises the real OSError),
so they run everywhere; the real version runs where it can and says in its skip reason why not.
"""
import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

import vaelib
from vaelib import build_vae, fit, load, save
from vaelib.checkpoints import CheckpointError, load_checkpoint
from vaelib.cli import main
from vaelib.data import MNIST, DataError, data_root

from .conftest import needs_mnist

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0
needs_non_root = pytest.mark.skipif(ROOT_USER, reason="runs as root, which ignores file permissions: the simulated "
                                                      "variant of this test covers the same handling")
TINY = ["--arch", "mlp", "--hidden_units", "16", "--hidden_dim", "2", "--subset", "200", "--quiet"]


def cli(argv, capsys):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(code, err, *needles, exit_code=None):
    assert code != 0 if exit_code is None else code == exit_code, (code, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def tiny_checkpoint(path, **kwargs):
    torch.manual_seed(0)
    return save(build_vae("mlp", latent_dim=2, hidden=8), path, **kwargs)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A one-epoch CLI run on 200 images: RUNS/demo."""
    if not (Path(os.environ.get("VAELIB_DATA", "")) / "MNIST" / "raw").is_dir():
        pytest.skip("MNIST not found: set VAELIB_DATA")
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "demo", "--runs_dir", str(runs), "--num_epochs", "1", *TINY]) == 0
    return runs


# 1. A run name never escapes the runs folder -------------------------------------------------------

@pytest.mark.parametrize("name", ["../../escape", "../sibling", "", ".", "..", "a/b", "a\\b", " padded", "ABSOLUTE"])
def test_a_run_name_that_is_not_one_plain_folder_name_is_refused(name, tmp_path, capsys, monkeypatch):
    project = tmp_path / "project"
    runs = project / "runs"
    runs.mkdir(parents=True)
    (project / "samples.png").write_bytes(b"the user's own figure")
    (project / "history.csv").write_text("the user's own table")
    monkeypatch.chdir(project)
    if name == "ABSOLUTE":
        name = str(tmp_path / "elsewhere")
    before = snapshot(tmp_path)
    code, _, err = cli(["train", name, "--runs_dir", runs, *TINY], capsys)
    assert_one_line(code, err, "not a plain folder name", exit_code=2)
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]


def test_a_run_folder_that_links_outside_the_runs_folder_is_refused(tmp_path, capsys):
    runs, outside = tmp_path / "runs", tmp_path / "outside"
    runs.mkdir()
    outside.mkdir()
    (runs / "linked").symlink_to(outside)
    code, _, err = cli(["train", "linked", "--runs_dir", runs, *TINY], capsys)
    assert_one_line(code, err, "outside", exit_code=2)
    assert list(outside.iterdir()) == []


# 2. An existing run is never touched ----------------------------------------------------------------

@pytest.mark.parametrize("resume", [False, True])
@pytest.mark.parametrize("present", ["checkpoint_best.pth", "history.csv", "samples.png", "notes.txt"])
def test_any_non_empty_run_folder_is_an_existing_run(present, resume, tmp_path, capsys):
    run = tmp_path / "runs" / "old"
    run.mkdir(parents=True)
    (run / present).write_bytes(b"results the user keeps")
    before = snapshot(tmp_path)
    code, _, err = cli(["train", "old", "--runs_dir", tmp_path / "runs", *TINY]
                       + (["--resume_if_exists"] if resume else []), capsys)
    assert_one_line(code, err, "no checkpoint_last.pth" if resume else "already exists", exit_code=2)
    assert snapshot(tmp_path) == before


def test_an_empty_run_folder_is_a_new_run(tmp_path):
    (tmp_path / "runs" / "fresh").mkdir(parents=True)
    from vaelib.runs import RunClaim
    claim = RunClaim(tmp_path / "runs" / "fresh")
    assert claim.acquire() is None
    claim.release()
    assert (tmp_path / "runs" / "fresh").is_dir()  # the user's folder stays, empty as it was


# 3. Resuming refuses model flags that contradict the checkpoint ------------------------------------

@pytest.mark.parametrize("flags, named", [
    (["--arch", "conv"], "--arch conv"),
    (["--hidden_dim", "5"], "--hidden_dim 5"),
    (["--likelihood_type", "mse"], "--likelihood_type mse"),
    (["--conditional"], "--conditional"),
    (["--hidden_units", "32"], "--hidden_units 32"),
    (["--sigma", "0.1"], "--sigma 0.1"),
    (["--arch", "conv", "--hidden_dim", "5"], "--hidden_dim 5"),
    (["--binarize", "none"], "--binarize none"),
])
def test_resuming_with_contradicting_model_flags_is_refused(flags, named, trained_run, capsys):
    before = snapshot(trained_run)
    code, _, err = cli(["train", "demo", "--runs_dir", trained_run, "--num_epochs", "2", "--resume_if_exists",
                        "--subset", "200", "--quiet", *flags], capsys)
    assert_one_line(code, err, named, "contradict", exit_code=2)
    assert snapshot(trained_run) == before


def test_resuming_with_agreeing_flags_continues_and_records_the_model_as_built(trained_run, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(trained_run / "demo", runs / "demo")
    code, _, err = cli(["train", "demo", "--runs_dir", runs, "--num_epochs", "2", "--resume_if_exists",
                        "--likelihood_type", "bce", *TINY], capsys)
    assert code == 0, err
    code, info, _ = cli(["generate", "--checkpoint_path", runs / "demo" / "checkpoint_last.pth", "--info_only"], capsys)
    assert code == 0
    assert "likelihood bernoulli" in info and "  likelihood_type: bernoulli" in info
    assert "  binarize: dynamic" in info and "  num_epochs: 2" in info and "epochs trained: 2" in info


# 4. Corrupt checkpoints are caught on load -----------------------------------------------------------

def _flip_a_weight_byte(path):
    with zipfile.ZipFile(path) as archive:
        entry = max(archive.infolist(), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    data[entry.header_offset + 1000] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit(path, change):
    ckpt = torch.load(path, weights_only=True)
    change(ckpt)
    torch.save(ckpt, path)


def _nan_weights(ckpt):
    ckpt["state_dict"]["decoder.out.bias"][3] = float("nan")


def _wrong_shape(ckpt):
    ckpt["state_dict"]["encoder.fc.weight"] = torch.zeros(9, 784)


BAD_CHECKPOINTS = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:3000]), "truncated"),
    "text": (lambda p: p.write_text("hello"), "is not a checkpoint"),
    "a bad checksum": (_flip_a_weight_byte, "fails its checksum"),
    "NaN weights": (lambda p: _edit(p, _nan_weights), "non-finite weights (NaN or inf in decoder.out.bias)"),
    "a foreign file": (lambda p: torch.save({"model": {}}, p), "not a vaelib checkpoint"),
    "pickled code": (lambda p: torch.save({"format": "vaelib-checkpoint", "x": print}, p), "safe load"),
    "a newer format": (lambda p: _edit(p, lambda c: c.update(format_version=99)), "newer vaelib"),
    "a string format version": (lambda p: _edit(p, lambda c: c.update(format_version="1")), "invalid format_version '1'"),
    "no config": (lambda p: _edit(p, lambda c: c.pop("config")), "missing or malformed: config"),
    "weights that do not fit the config": (lambda p: _edit(p, _wrong_shape),
                                           "wrong shape: encoder.fc.weight (9, 784) in the file vs (8, 784)"),
    "a config vaelib cannot build": (lambda p: _edit(p, lambda c: c["config"].update(arch="transformer")),
                                     "config that vaelib cannot build"),
}


@pytest.mark.parametrize("damage", BAD_CHECKPOINTS, ids=str)
def test_a_damaged_checkpoint_is_one_line_everywhere(damage, tmp_path, capsys):
    path = tiny_checkpoint(tmp_path / "model.pth", epoch=1)
    corrupt, message = BAD_CHECKPOINTS[damage]
    corrupt(path)
    with pytest.raises(CheckpointError, match="model.pth"):
        load(path)
    out = tmp_path / "out.png"
    for argv in (["generate", "--checkpoint_path", path, "--output_path", out],
                 ["generate", "--checkpoint_path", path, "--info_only"],
                 ["evaluate", "--checkpoint_path", path, "--k", "1", "--subset", "2"],
                 ["export", path, tmp_path / "exported.pth"]):
        code, _, err = cli(argv, capsys)
        assert_one_line(code, err, message, exit_code=1)
    assert not out.exists() and not (tmp_path / "exported.pth").exists()


def test_resuming_a_damaged_checkpoint_is_one_line_and_changes_nothing(trained_run, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(trained_run / "demo", runs / "demo")
    _edit(runs / "demo" / "checkpoint_last.pth", _wrong_shape)
    before = snapshot(runs)
    code, _, err = cli(["train", "demo", "--runs_dir", runs, "--num_epochs", "2", "--resume_if_exists", *TINY], capsys)
    assert_one_line(code, err, "checkpoint_last.pth", "wrong shape", exit_code=1)
    assert snapshot(runs) == before


def test_a_bad_checksum_is_reported_without_a_traceback_by_the_real_command(tmp_path):
    path = tiny_checkpoint(tmp_path / "model.pth")
    _flip_a_weight_byte(path)
    result = subprocess.run([sys.executable, "-m", "vaelib", "evaluate", "--checkpoint_path", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "fails its checksum" in result.stderr


def test_an_unreadable_checkpoint_is_called_unreadable_not_truncated(tmp_path, monkeypatch):
    path = tiny_checkpoint(tmp_path / "model.pth")
    real_open = open

    def denied(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)
    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(CheckpointError, match="cannot read .*model.pth: permission denied"):
        load_checkpoint(path)


@needs_non_root
def test_an_unreadable_checkpoint_for_real(tmp_path):
    path = tiny_checkpoint(tmp_path / "model.pth")
    path.chmod(0)
    with pytest.raises(CheckpointError, match="permission denied"):
        load_checkpoint(path)


# 5. Data files --------------------------------------------------------------------------------------

def _mnist_copy(tmp_path, damaged: str, change) -> Path:
    """A data root whose MNIST/raw links to the real files, except ``damaged``, a changed copy."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for source in (data_root() / "MNIST" / "raw").glob("*-ubyte"):
        if source.name == damaged:
            data = bytearray(source.read_bytes())
            change(data)
            (raw / source.name).write_bytes(bytes(data))
        else:
            (raw / source.name).symlink_to(source)
    return tmp_path / "data"


def _set(offset, value):
    def change(data):
        data[offset:offset + 4] = value.to_bytes(4, "big")
    return change


BAD_DATA = {
    "images with a wrong magic number": ("t10k-images-idx3-ubyte", _set(0, 2049), "wrong header (magic number 2049"),
    "labels with a wrong header": ("t10k-labels-idx1-ubyte", _set(0, 2051), "wrong header (magic number 2051"),
    "labels with a wrong count": ("t10k-labels-idx1-ubyte", _set(4, 9999), "9999 items"),
    "truncated images": ("t10k-images-idx3-ubyte", lambda d: d.__delitem__(slice(5000, None)), "has 5000 bytes"),
}


@needs_mnist
@pytest.mark.parametrize("damage", BAD_DATA, ids=str)
def test_a_damaged_data_file_is_named_in_one_line(damage, tmp_path, capsys):
    name, change, message = BAD_DATA[damage]
    root = _mnist_copy(tmp_path, name, change)
    with pytest.raises(DataError, match=name):
        MNIST("test", root=root)
    path = tiny_checkpoint(tmp_path / "model.pth")
    code, _, err = cli(["evaluate", "--checkpoint_path", path, "--k", "1", "--data_root", root], capsys)
    assert_one_line(code, err, name, message, exit_code=1)
    assert "not found" not in err and "download" in err


@pytest.mark.parametrize("where", ["VAELIB_DATA", "--data_root"])
def test_a_mistyped_data_folder_is_reported_and_never_created(where, tmp_path, capsys, monkeypatch):
    typo = tmp_path / "dta"
    path = tiny_checkpoint(tmp_path / "model.pth")
    argv = ["evaluate", "--checkpoint_path", path, "--k", "1"]
    if where == "VAELIB_DATA":
        monkeypatch.setenv("VAELIB_DATA", str(typo))
    else:
        argv += ["--data_root", typo]
    code, _, err = cli(argv, capsys)
    assert_one_line(code, err, str(typo), "does not exist", exit_code=1)
    assert not typo.exists()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        MNIST("test", root=tmp_path / "afile")


# 5. Output paths, devices, folders ------------------------------------------------------------------

@pytest.mark.parametrize("output, message", [
    ("samples.xyz", "unknown image extension .xyz"),
    ("samples", "has no extension"),
    ("a_file/samples.png", "a_file is a file, not a folder"),
    ("a_folder", "is a folder"),
])
def test_an_output_path_that_cannot_be_written_fails_before_sampling(output, message, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder.png").mkdir()
    path = tiny_checkpoint(tmp_path / "model.pth")
    output = tmp_path / (output + ".png" if output == "a_folder" else output)
    code, _, err = cli(["generate", "--checkpoint_path", path, "--output_path", output], capsys)
    assert_one_line(code, err, message, exit_code=2)


@needs_non_root
def test_a_read_only_output_folder_for_real(tmp_path, capsys):
    path = tiny_checkpoint(tmp_path / "model.pth")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    code, _, err = cli(["generate", "--checkpoint_path", path, "--output_path", locked / "s.png"], capsys)
    assert_one_line(code, err, "no permission", exit_code=2)


def test_a_read_only_output_folder_simulated(tmp_path, capsys, monkeypatch):
    path = tiny_checkpoint(tmp_path / "model.pth")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path / "locked" else real_access(p, mode))
    (tmp_path / "locked").mkdir()
    code, _, err = cli(["generate", "--checkpoint_path", path, "--output_path", tmp_path / "locked" / "s.png"], capsys)
    assert_one_line(code, err, "no permission to write in", exit_code=2)


@pytest.mark.parametrize("device, message", [("gpu", "'gpu' is not a device"), ("cuda:x", "is not a device"),
                                             ("mps", "mps"), ("cuda", "CUDA is not available")])
def test_a_device_this_machine_lacks_is_one_line(device, message, tmp_path, capsys):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    path = tiny_checkpoint(tmp_path / "model.pth")
    for argv in (["generate", "--checkpoint_path", path, "--output_path", tmp_path / "s.png"],
                 ["train", "x", "--runs_dir", tmp_path / "runs", *TINY]):
        code, _, err = cli(argv + ["--device", device], capsys)
        assert_one_line(code, err, message)
    assert not (tmp_path / "runs").exists()


def test_export_never_overwrites_by_accident(tmp_path, capsys):
    path = tiny_checkpoint(tmp_path / "model.pth", epoch=2)
    (tmp_path / "folder").mkdir()
    code, _, err = cli(["export", path, tmp_path / "folder"], capsys)
    assert_one_line(code, err, "is a folder", exit_code=2)
    existing = tmp_path / "mine.pth"
    existing.write_bytes(b"keep me")
    code, _, err = cli(["export", path, existing], capsys)
    assert_one_line(code, err, "already exists", "--overwrite", exit_code=2)
    assert existing.read_bytes() == b"keep me"
    assert cli(["export", path, existing, "--overwrite"], capsys)[0] == 0
    assert load(existing).checkpoint["epoch"] == 2


def test_coursework_with_a_file_for_out_or_a_json_that_is_no_notebook(tmp_path, capsys):
    (tmp_path / "out.txt").write_text("mine")
    code, _, err = cli(["coursework", Path(__file__).parent.parent / "notebooks", "--out", tmp_path / "out.txt"], capsys)
    assert_one_line(code, err, "is a file", exit_code=2)
    source = tmp_path / "nbs"
    source.mkdir()
    (source / "00_fake.ipynb").write_text(json.dumps({"hello": "world"}))
    code, _, err = cli(["coursework", source, "--out", tmp_path / "student"], capsys)
    assert_one_line(code, err, "00_fake.ipynb is JSON but not a Jupyter notebook", exit_code=2)
    assert (tmp_path / "out.txt").read_text() == "mine" and not (tmp_path / "student").exists()


@needs_mnist
def test_a_read_only_runs_folder_fails_before_training_simulated(tmp_path, capsys, monkeypatch):
    from vaelib.runs import LOCK_NAME
    real_open = os.open

    def denied(path, *args, **kwargs):  # the first write into the runs folder: the run's lock file
        if str(path).endswith(LOCK_NAME):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", denied)
    monkeypatch.setattr("vaelib.train_run.fit", lambda *a, **k: pytest.fail("trained before checking the folder"))
    code, out, err = cli(["train", "x", "--runs_dir", tmp_path / "runs", *TINY], capsys)
    assert_one_line(code, err, "permission denied", exit_code=1)


@needs_non_root
@needs_mnist
def test_a_read_only_runs_folder_fails_before_training_for_real(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o555)
    code, out, err = cli(["train", "x", "--runs_dir", runs, *TINY], capsys)
    assert_one_line(code, err, "permission denied", exit_code=1)
    assert "epoch" not in out


@needs_mnist
def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint_simulated(trained_run, tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    shutil.copytree(trained_run / "demo", runs / "demo")
    before = (runs / "demo" / "checkpoint_last.pth").read_bytes()
    real_save = torch.save

    def full(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device", getattr(f, "name", None))
    monkeypatch.setattr(torch, "save", full)
    code, _, err = cli(["train", "demo", "--runs_dir", runs, "--num_epochs", "2", "--resume_if_exists", *TINY], capsys)
    assert_one_line(code, err, "no space left on the disk", exit_code=1)
    monkeypatch.undo()
    assert (runs / "demo" / "checkpoint_last.pth").read_bytes() == before
    assert not list((runs / "demo").glob(".*.tmp"))


def test_an_unexpected_error_says_it_is_a_bug_and_how_to_see_the_traceback(tmp_path, capsys, monkeypatch):
    path = tiny_checkpoint(tmp_path / "model.pth")

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr("vaelib.images.save_image_grid", broken)
    argv = ["generate", "--checkpoint_path", path, "--output_path", tmp_path / "s.png"]
    code, _, err = cli(argv, capsys)
    assert_one_line(code, err, "unexpected ZeroDivisionError: a bug", "This is a bug", "--debug", exit_code=1)
    with pytest.raises(ZeroDivisionError):
        main([str(a) for a in argv] + ["--debug"])
    monkeypatch.setenv("VAELIB_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main([str(a) for a in argv])


# Ctrl-C during a save --------------------------------------------------------------------------------

INTERRUPT_DURING_SAVE = textwrap.dedent("""
    import os, signal, sys, torch
    from vaelib.cli import main
    real_save, calls = torch.save, []

    class Interrupting:  # the file torch.save writes to: Ctrl-C arrives after its first bytes
        def __init__(self, f):
            self.f, self.writes = f, 0

        def write(self, data):
            self.writes += 1
            if self.writes == 2:
                os.kill(os.getpid(), signal.SIGINT)
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    def save_then_interrupt(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second file of epoch 1 (checkpoint_last.pth), half written
            f = Interrupting(f)
        real_save(obj, f, *args, **kwargs)
    torch.save = save_then_interrupt
    sys.exit(main(sys.argv[1:]))
""")


@needs_mnist
def test_ctrl_c_while_a_checkpoint_is_written_exits_130_with_one_line_and_loadable_checkpoints(tmp_path):
    runs = tmp_path / "runs"
    result = subprocess.run([sys.executable, "-c", INTERRUPT_DURING_SAVE, "train", "x", "--runs_dir", str(runs),
                             "--num_epochs", "3", *TINY], capture_output=True, text=True, timeout=300)
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "interrupted" in result.stderr and "--resume_if_exists" in result.stderr
    for name in ("checkpoint_best.pth", "checkpoint_last.pth"):
        assert load(runs / "x" / name).checkpoint["epoch"] == 1
    assert not list((runs / "x").glob(".*.tmp"))


# 6. Library calls name the bad argument ----------------------------------------------------------------

BAD_CALLS = {
    "sample(-1)": (lambda m, d: m.sample(-1), "n must be a whole number >= 1"),
    "sample(2.5)": (lambda m, d: m.sample(2.5), "n must be a whole number"),
    "fit(batch_size=0)": (lambda m, d: fit(m, d, epochs=1, batch_size=0, progress=False), "batch_size"),
    "fit(epochs=0)": (lambda m, d: fit(m, d, epochs=0, progress=False), "epochs=0 trains nothing"),
    "fit(lr=-1)": (lambda m, d: fit(m, d, epochs=1, lr=-1, progress=False), "lr must be a positive number"),
    "fit on 0 images": (lambda m, d: fit(m, d[:0], epochs=1, progress=False), "training data holds no images"),
    "fit with an empty test set": (lambda m, d: fit(m, d, d[:0], epochs=1, progress=False), "test data holds no images"),
    "iwae_nll(k=0)": (lambda m, d: vaelib.evaluation.iwae_nll(m, d, k=0), "k must be a whole number >= 1"),
    "iwae_bound(k=0)": (lambda m, d: vaelib.iwae_bound(m, d.images[:2].float(), 0), "k must be"),
    "build_vae(hidden=-3)": (lambda m, d: build_vae(hidden=-3), "hidden must be a whole number >= 1"),
    "build_vae(latent_dim=2.5)": (lambda m, d: build_vae(latent_dim=2.5), "latent_dim must be a whole number"),
    "build_vae(channels=0)": (lambda m, d: build_vae(channels=0), "channels must be a whole number >= 1"),
    "build_vae(sigma=0)": (lambda m, d: build_vae(likelihood="gaussian", sigma=0), "sigma must be a positive number"),
}


@pytest.mark.parametrize("call", BAD_CALLS, ids=str)
def test_a_bad_library_argument_is_a_value_error_that_names_it(call, fake_data):
    fn, message = BAD_CALLS[call]
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fn(build_vae("mlp", latent_dim=2, hidden=8), fake_data)


@pytest.fixture
def fake_data():
    """32 random 'images' in the shape of MNIST, as a vaelib data set."""
    return vaelib.data.ImageData(torch.rand(32, 1, 28, 28), torch.arange(32) % 10)


# 7. No silent no-ops -----------------------------------------------------------------------------------

def test_zero_epochs_is_refused_and_creates_nothing(tmp_path, capsys):
    code, _, err = cli(["train", "x", "--runs_dir", tmp_path / "runs", "--num_epochs", "0", *TINY], capsys)
    assert_one_line(code, err, "0 is out of range", exit_code=2)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("epochs, exit_code", [(1, 0), (0, 2)])
def test_resuming_a_finished_run_says_that_nothing_was_trained(epochs, exit_code, trained_run, capsys):
    before = snapshot(trained_run)
    argv = ["train", "demo", "--runs_dir", trained_run, "--resume_if_exists", *TINY]
    if epochs:
        argv += ["--num_epochs", str(epochs)]
    else:  # fewer than the 1 already trained is impossible with --num_epochs >= 1: simulate with a 2-epoch record
        ckpt = trained_run / "demo" / "checkpoint_last.pth"
        _edit(ckpt, lambda c: c.update(epoch=2))
        argv += ["--num_epochs", "1"]
    code, out, err = cli(argv, capsys)
    assert code == exit_code
    assert "nothing trained" in err and "raise --num_epochs" in err and "epoch 1/" not in out
    if not epochs:
        _edit(trained_run / "demo" / "checkpoint_last.pth", lambda c: c.update(epoch=1))
    assert snapshot(trained_run).keys() == before.keys()


def test_fit_resumed_past_its_epochs_warns_that_nothing_was_trained(fake_data, tmp_path):
    model = build_vae("mlp", latent_dim=2, hidden=8)
    fit(model, fake_data, epochs=1, progress=False, run_dir=tmp_path)
    with pytest.warns(UserWarning, match="nothing to train"):
        history = fit(model, fake_data, epochs=1, progress=False, resume_from=tmp_path / "checkpoint_last.pth")
    assert len(history) == 1


# 9. Leftovers -----------------------------------------------------------------------------------------

def test_a_temporary_left_by_a_killed_save_is_removed_by_the_next_save(tmp_path):
    path = tiny_checkpoint(tmp_path / "model.pth")
    stale = tmp_path / ".model.pth.abc123.tmp"
    stale.write_bytes(b"\0" * 100_000)  # what a SIGKILL during torch.save leaves behind
    other = tmp_path / ".other.pth.abc123.tmp"
    other.write_bytes(b"another file's")
    tiny_checkpoint(path)
    assert not stale.exists() and other.exists()
    assert load(path)


def test_the_nan_guard_on_a_fresh_run_does_not_call_an_empty_folder_the_last_good_checkpoints(fake_data, tmp_path):
    model = build_vae("mlp", latent_dim=2, hidden=8)
    model.decoder.out.register_forward_hook(lambda module, inputs, output: output * float("nan"))
    with pytest.raises(vaelib.TrainingDiverged) as caught:
        fit(model, fake_data, epochs=1, progress=False, run_dir=tmp_path / "run")
    assert "last good" not in str(caught.value) and "epoch 1" in str(caught.value)


def test_a_failed_download_leaves_no_empty_folders(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(self):
        raise OSError("network is unreachable")
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(DataError, match="the download failed .*offline"):
        MNIST("test", root=tmp_path)
    assert list(tmp_path.iterdir()) == []


@needs_mnist
def test_a_run_stopped_before_its_first_epoch_ends_leaves_no_folder(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C during the first epoch: nothing was written yet
    monkeypatch.setattr("vaelib.train_run.fit", interrupted)
    code, _, err = cli(["train", "x", "--runs_dir", tmp_path / "runs", *TINY], capsys)
    assert_one_line(code, err, "interrupted", exit_code=130)
    assert not (tmp_path / "runs").exists()
    code, _, err = cli(["train", "x", "--runs_dir", tmp_path / "runs", "--iwae_k", "5", "--beta", "2", *TINY], capsys)
    assert_one_line(code, err, "no beta", exit_code=2)
    assert not (tmp_path / "runs").exists()


# 10. Users of the original project --------------------------------------------------------------------

def test_the_original_projects_checkpoint_path_outside_the_repository_says_where_it_is(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository's root: there is no pretrained/ here
    code, _, err = cli(["generate", "--checkpoint_path", "pretrained/checkpoint_best.pth"], capsys)
    assert_one_line(code, err, "original project", "checkpoint_best.pth", "repository's root",
                    "python -m vaelib train", exit_code=2)


# Reproducibility -------------------------------------------------------------------------------------

def _weights(path):
    return load_checkpoint(path)["state_dict"]


def _same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@needs_mnist
def test_two_seeded_cli_runs_are_identical_and_resuming_repeats_an_uninterrupted_run(tmp_path):
    runs = tmp_path / "runs"
    common = ["--runs_dir", str(runs), "--seed", "3", *TINY]
    assert main(["train", "a", "--num_epochs", "2", *common]) == 0
    assert main(["train", "b", "--num_epochs", "2", *common]) == 0
    _same(_weights(runs / "a" / "checkpoint_last.pth"), _weights(runs / "b" / "checkpoint_last.pth"))
    assert main(["train", "c", "--num_epochs", "1", *common]) == 0  # interrupted after epoch 1
    assert main(["train", "c", "--num_epochs", "2", "--resume_if_exists", *common]) == 0
    _same(_weights(runs / "a" / "checkpoint_last.pth"), _weights(runs / "c" / "checkpoint_last.pth"))
    assert (runs / "a" / "history.csv").read_text().split("seconds")[0] == \
        (runs / "c" / "history.csv").read_text().split("seconds")[0]
    assert (runs / "a" / "samples.png").read_bytes() == (runs / "c" / "samples.png").read_bytes()
