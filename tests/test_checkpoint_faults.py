"""Checkpoints under faults, for real where the operating system allows it.

What vaelib saves, vaelib loads (``torch.load(weights_only=True)``), whatever a callback put in the
history; a write that fails for lack of space or a file-size limit is one clear line and leaves the
previous file; a damaged field or a config declaring a huge model is refused before it is used or
allocated; running out of memory while loading says so. Faults are real where a test can cause
them: a file-size limit (RLIMIT_FSIZE), a full device (/dev/full), an address-space limit
(RLIMIT_AS), each in a child process so that nothing here depends on how much memory the machine has.
"""
import collections
import enum
import errno
import json
import os
import pathlib
import resource
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import vaelib
from vaelib import build_vae, fit, load, save
from vaelib.callbacks import EpochEnd
from vaelib.checkpoints import CheckpointError, load_checkpoint
from vaelib.cli import main

from .conftest import needs_mnist

LINUX = sys.platform.startswith("linux")
TINY = ["--arch", "mlp", "--hidden_units", "16", "--hidden_dim", "2", "--subset", "200", "--quiet"]


def _tiny(hidden=8):
    torch.manual_seed(0)
    return build_vae("mlp", latent_dim=2, hidden=hidden)


def _images(n=64):
    return vaelib.ImageData(torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)))


def _cli(argv, capsys):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err):
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "bug in vaelib" not in err, err
    return err.strip()


def _temporaries(folder):
    return sorted(p.name for p in pathlib.Path(folder).rglob(".*.tmp"))


# 3. Everything vaelib saves loads with weights_only=True -------------------------------------------

class Colour(enum.Enum):
    RED = "red"


Pair = collections.namedtuple("Pair", "a b")


def test_a_numpy_value_added_by_on_epoch_end_keeps_the_run_loadable_and_resumable(tmp_path):
    """fit's documented hook adds a numpy float to each history record (numpy's own types are what
    metrics libraries return); the checkpoints must still load, and the run resume."""
    def add_metric(record, model):
        record["my_metric"] = np.float64(record["epoch"]) / 4
        record["my_array"] = np.arange(3, dtype=np.float32)

    model = _tiny()
    fit(model, _images(), _images(32), epochs=2, batch_size=32, device="cpu", progress=False,
        run_dir=tmp_path, callbacks=[EpochEnd(add_metric)], command={"runs_dir": tmp_path, "note": np.int64(7)})
    last = tmp_path / "checkpoint_last.pth"
    raw = torch.load(last, weights_only=True)  # the safe load itself, not only vaelib's wrapper of it
    assert raw["history"][0]["my_metric"] == 0.25 and type(raw["history"][0]["my_metric"]) is float
    assert raw["history"][0]["my_array"] == [0.0, 1.0, 2.0]
    assert raw["train_args"] == {"runs_dir": str(tmp_path), "note": 7}
    assert load(last).checkpoint["epoch"] == 2
    history = fit(_tiny(), _images(), _images(32), epochs=3, batch_size=32, device="cpu", progress=False,
                  run_dir=tmp_path, resume_from=last, callbacks=[EpochEnd(add_metric)])
    assert [row["epoch"] for row in history] == [1, 2, 3]
    # the hook runs before the epoch's checkpoint is written: the last epoch's values are saved too
    assert [row["my_metric"] for row in load(last).checkpoint["history"]] == [0.25, 0.5, 0.75]


def test_values_a_safe_load_refuses_are_stored_as_plain_values(tmp_path):
    model = _tiny()
    optimizer = torch.optim.Adam(model.parameters(), lr=np.float64(1e-3))  # a numpy lr in param_groups
    history = [{"epoch": np.int64(1), "elbo": np.float32(-100.5), "ok": np.bool_(True), "kl": np.array([[1, 2]]),
                "loss": torch.ones(()) * 2, "pair": Pair(1, np.float64(2)), "set": {3, 1}}]
    train_args = {"runs_dir": pathlib.Path("runs"), "colour": Colour.RED, "paths": (pathlib.Path("a"), "b"),
                  "counts": collections.defaultdict(int, x=np.int32(2)), "ordered": collections.OrderedDict(y=1)}
    path = save(model, tmp_path / "m.pth", optimizer=optimizer, epoch=np.int64(1), history=history,
                train_args=train_args, best_test_elbo=np.float32(-100.5),
                data={"dataset": "mine", "image_shape": np.array([1, 28, 28]), "binarize": None})
    ckpt = torch.load(path, weights_only=True)
    row = ckpt["history"][0]
    assert row == {"epoch": 1, "elbo": -100.5, "ok": True, "kl": [[1, 2]], "loss": torch.tensor(2.0),
                   "pair": (1, 2.0), "set": [1, 3]}
    assert [type(row[k]) for k in ("epoch", "elbo", "ok")] == [int, float, bool]
    assert not row["loss"].requires_grad
    assert ckpt["train_args"] == {"runs_dir": "runs", "colour": "red", "paths": ("a", "b"), "counts": {"x": 2},
                                  "ordered": {"y": 1}}
    assert ckpt["data"]["image_shape"] == [1, 28, 28]
    assert type(ckpt["optimizer"]["param_groups"][0]["lr"]) is float
    assert load(path).checkpoint["history"][0]["elbo"] == -100.5
    assert history[0]["elbo"].dtype == np.float32  # the caller's values are left as they were


class Tagged(torch.Tensor):
    """A tensor subclass: torch.save writes it, a weights_only load refuses it."""


@pytest.mark.parametrize("value, where, names", [
    (lambda: object(), "history[3]['my_metric']", "object"),
    (lambda: np.datetime64("2024-01-02"), "history[3]['my_metric']", "datetime.date"),
    (lambda: {"nested": [1, print]}, "history[3]['my_metric']['nested'][1]", "builtin_function_or_method"),
    (lambda: torch.zeros(2).as_subclass(Tagged), "history", "Tagged"),  # caught by save's own trial load
])
def test_a_value_that_cannot_be_stored_is_refused_at_save_naming_where_it_is(value, where, names, tmp_path):
    path = save(_tiny(), tmp_path / "m.pth", epoch=1)
    before = path.read_bytes()
    history = [{"epoch": i} for i in range(1, 4)] + [{"epoch": 4, "my_metric": value()}]
    with pytest.raises(TypeError) as info:
        save(_tiny(), path, epoch=4, history=history)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and f"cannot save {path}" in message, message
    assert where in message and names in message, message
    assert path.read_bytes() == before and _temporaries(tmp_path) == []


@pytest.mark.parametrize("kwargs, problem", [
    ({"history": [{"epoch": 1}, 2.5]}, "'history' item 1 has type float, not a dict"),
    ({"train_args": ["--lr", "1e-3"]}, "'train_args' has type list, not a dict"),
    ({"data": {"dataset": "mine"}}, "'data' has no image_shape and no binarize"),
])
def test_fields_that_load_would_refuse_are_refused_at_save(kwargs, problem, tmp_path):
    with pytest.raises(TypeError, match=f"cannot save .*m.pth: {problem}"):
        save(_tiny(), tmp_path / "m.pth", **kwargs)
    assert list(tmp_path.iterdir()) == []


# 4. A full disk or a file-size limit: one line, the old file kept, no temporary left -----------------

def _limited(limit):
    """For preexec_fn: files of at most ``limit`` bytes, and a write past it fails with EFBIG (SIGXFSZ
    ignored; its default action would kill the child instead)."""
    def set_limits():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return set_limits


def _run_limited(args, limit, cwd, **kwargs):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pathlib.Path(vaelib.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], preexec_fn=_limited(limit), capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300, **kwargs)


SAVE_UNDER_A_LIMIT = textwrap.dedent("""
    import json, sys, torch, vaelib
    torch.manual_seed(0)
    try:
        vaelib.save(vaelib.build_vae("mlp", latent_dim=2, hidden=400), sys.argv[1], epoch=2)
    except BaseException as err:
        print(json.dumps({"type": type(err).__name__, "errno": getattr(err, "errno", None),
                          "filename": getattr(err, "filename", None), "message": str(err)}))
""")


@pytest.mark.skipif(not LINUX, reason="RLIMIT_FSIZE and SIGXFSZ as Linux has them")
def test_a_save_past_a_real_file_size_limit_is_an_os_error_that_keeps_the_old_file(tmp_path):
    old = save(_tiny(), tmp_path / "model.pth", epoch=1)  # ~10 kB; the new one is ~2.6 MB
    before = old.read_bytes()
    result = _run_limited(["-c", SAVE_UNDER_A_LIMIT, str(old)], limit=256 * 1024, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    error = json.loads(result.stdout)
    assert error["type"] == "OSError" and error["errno"] == errno.EFBIG, error
    assert error["filename"] == str(old), error  # the checkpoint asked for, not the temporary file
    assert "unexpected pos" not in error["message"]
    assert old.read_bytes() == before and load(old).checkpoint["epoch"] == 1
    assert _temporaries(tmp_path) == []


@pytest.mark.skipif(not LINUX, reason="RLIMIT_FSIZE and SIGXFSZ as Linux has them")
def test_export_past_a_real_file_size_limit_is_one_line_and_keeps_the_destination(tmp_path):
    torch.manual_seed(0)
    big = save(build_vae("mlp", latent_dim=2, hidden=400), tmp_path / "big.pth")
    small = save(_tiny(), tmp_path / "small.pth", epoch=1)
    before = small.read_bytes()
    result = _run_limited(["-m", "vaelib", "export", str(big), str(small), "--overwrite"], limit=256 * 1024,
                          cwd=tmp_path)
    assert result.returncode == 1, (result.stdout, result.stderr)
    line = _one_line(result.stderr)
    assert line.startswith(f"vaelib export: error: cannot write {small}: the file would be larger than this "
                           f"system allows"), line
    assert "ulimit -f" in line
    assert small.read_bytes() == before and _temporaries(tmp_path) == []


@needs_mnist
@pytest.mark.skipif(not LINUX, reason="RLIMIT_FSIZE and SIGXFSZ as Linux has them")
def test_training_past_a_real_file_size_limit_is_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "demo", "--runs_dir", str(runs), "--num_epochs", "1", *TINY]) == 0
    run = runs / "demo"
    before = {name: (run / name).read_bytes() for name in ("checkpoint_best.pth", "checkpoint_last.pth")}
    result = _run_limited(["-m", "vaelib", "train", "demo", "--runs_dir", str(runs), "--num_epochs", "2",
                           "--resume_if_exists", *TINY], limit=64 * 1024, cwd=tmp_path)  # each file is > 64 kB
    assert result.returncode == 1, (result.stdout, result.stderr)
    line = _one_line(result.stderr)
    assert any(line.startswith(f"vaelib train: error: cannot write {run / name}: the file would be larger than")
               for name in before), line
    assert {name: (run / name).read_bytes() for name in before} == before
    assert load(run / "checkpoint_last.pth").checkpoint["epoch"] == 1
    assert _temporaries(runs) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, whose writes fail with ENOSPC")
def test_a_real_no_space_error_from_the_kernel_is_one_line_and_keeps_the_old_file(tmp_path, capsys, monkeypatch):
    """The temporary checkpoint is opened on /dev/full: every write gets the kernel's own ENOSPC."""
    source = save(_tiny(), tmp_path / "source.pth", epoch=3)
    old = save(_tiny(), tmp_path / "model.pth", epoch=1)
    before = old.read_bytes()
    fdopen = os.fdopen

    def full_device(fd, mode="r", *args, **kwargs):
        os.close(fd)  # the temporary file stays empty, as on a full disk
        return fdopen(os.open("/dev/full", os.O_WRONLY), mode, *args, **kwargs)

    monkeypatch.setattr("vaelib.files.os.fdopen", full_device)
    with pytest.raises(OSError) as info:
        save(_tiny(), old, epoch=2)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(old)
    code, _, err = _cli(["export", source, old, "--overwrite"], capsys)
    monkeypatch.undo()
    assert code == 1
    assert _one_line(err) == f"vaelib export: error: no space left on the disk while writing {old}: free some " \
                             f"space and run again"
    assert old.read_bytes() == before and _temporaries(tmp_path) == []


# 8. A malformed field is refused at load, naming it ---------------------------------------------------

MALFORMED = {
    "data is a string": ("data", "mnist", "'data' has type str"),
    "data without its keys": ("data", {"dataset": "mnist"}, "'data' has no image_shape and no binarize"),
    "data with a bad shape": ("data", {"dataset": "mnist", "image_shape": "28x28", "binarize": None},
                              "'data' has image_shape '28x28'"),
    "history is a dict": ("history", {"epoch": 1}, "'history' has type dict"),
    "history of numbers": ("history", [1.0, 2.0], "'history' item 0 has type float"),
    "history with number keys": ("history", [{1: 2.0}], "'history' item 0 has keys that are not names"),
    "train_args is a list": ("train_args", ["--lr", "1e-3"], "'train_args' has type list"),
    "train_args with number keys": ("train_args", {0: "x"}, "'train_args' has keys that are not names"),
    "epoch is a string": ("epoch", "3", "'epoch' is '3'"),
    "best_test_elbo is a string": ("best_test_elbo", "-90", "'best_test_elbo' has type str"),
    "model is a string": ("model", "MLP", "'model' has type str"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_field_is_refused_at_load_in_one_line(case, tmp_path, capsys):
    field, value, problem = MALFORMED[case]
    ckpt = torch.load(save(_tiny(), tmp_path / "good.pth", history=[{"epoch": 1}], train_args={"seed": 0},
                           data=_images()), weights_only=True)
    ckpt[field] = value
    path = tmp_path / "bad.pth"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError) as info:
        load(path)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and message.startswith(f"{path} is damaged or not a vaelib checkpoint: "), \
        message
    assert problem in message, message
    code, out, err = _cli(["generate", "--checkpoint_path", path, "--info_only"], capsys)
    assert code == 1 and out == "" and problem in _one_line(err)


def test_the_shipped_checkpoints_pass_the_field_checks():
    from vaelib.course.pretrained import pretrained_dir
    files = [p for p in sorted(pretrained_dir().glob("*.pth")) if not p.name.endswith("mnist_classifier.pth")]
    assert files
    for path in files:
        load_checkpoint(path)


# 10. Memory: a huge declared model allocates nothing; running out of memory says so ------------------

CRAFTED = {  # config field(s) -> what the crafted file declares, with the tiny model's weights
    "hidden": {"hidden": 10**9},
    "latent_dim": {"latent_dim": 10**9},
    "channels": {"arch": "conv", "channels": 10**9},
    "image_shape": {"image_shape": [1, 4 * 10**5, 4 * 10**5]},
    "iaf_hidden": {"posterior_kind": "iaf", "iaf_hidden": 10**9},
    "iaf_steps": {"posterior_kind": "iaf", "iaf_steps": 10**9},
    "prior_components": {"prior_kind": "mog", "prior_components": 10**9},
    "pixelcnn_layers": {"likelihood": "pixelcnn", "pixelcnn_layers": 10**9},
}

UNDER_AN_ADDRESS_SPACE_LIMIT = textwrap.dedent("""
    import contextlib, io, json, resource, sys
    import torch, vaelib
    import vaelib.checkpoints, vaelib.plotting, vaelib.training  # what generate imports, before the limit
    from vaelib.cli import main
    size = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (size + int(sys.argv[1]), resource.RLIM_INFINITY))
    results = {}
    for path in sys.argv[2:]:
        try:
            vaelib.load(path)
            results[path] = {"load": "loaded"}
        except BaseException as err:
            results[path] = {"load": f"{type(err).__name__}: {err}"}
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            code = main(["generate", "--checkpoint_path", path, "--info_only"])
        results[path]["cli"] = [code, stderr.getvalue()]
    print(json.dumps(results))
""")


def _under_an_address_space_limit(headroom, paths, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pathlib.Path(vaelib.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", UNDER_AN_ADDRESS_SPACE_LIMIT, str(headroom), *map(str, paths)],
                            capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not LINUX, reason="reads /proc/self/status; RLIMIT_AS as Linux has it")
def test_a_config_that_declares_a_huge_model_is_refused_before_anything_is_allocated(tmp_path):
    """Each file holds the tiny model's weights under a config that declares a model of terabytes.
    The child may use 1 GB more than it has after importing torch: building the declared model
    for real would fail there (or, without the limit, exhaust the machine's memory)."""
    good = torch.load(save(_tiny(), tmp_path / "good.pth"), weights_only=True)
    paths = []
    for name, fields in CRAFTED.items():
        ckpt = dict(good, config={**good["config"], **fields})
        torch.save(ckpt, tmp_path / f"{name}.pth")
        paths.append(tmp_path / f"{name}.pth")
    results = _under_an_address_space_limit(10**9, paths, tmp_path)
    for path in paths:
        result = results[str(path)]
        assert result["load"].startswith(f"CheckpointError: {path}"), (path.name, result)
        assert ("do not fit the architecture its config describes" in result["load"]
                or "but the file holds only" in result["load"]  # a count of modules, built one by one
                or "Storage size calculation overflowed" in result["load"]), (path.name, result)  # > 2**63 bytes
        code, err = result["cli"]
        assert code == 1 and len(err.strip().splitlines()) == 1 and "bug" not in err, (path.name, err)


@pytest.mark.skipif(not LINUX, reason="reads /proc/self/status; RLIMIT_AS as Linux has it")
def test_running_out_of_memory_while_reading_a_checkpoint_says_so(tmp_path):
    """A real allocation failure: a 96 MB tensor read with 48 MB of address space to spare."""
    ckpt = torch.load(save(_tiny(), tmp_path / "good.pth"), weights_only=True)
    ckpt["state_dict"]["big"] = torch.zeros(24 * 2**20)
    path = tmp_path / "big.pth"
    torch.save(ckpt, path)
    result = _under_an_address_space_limit(48 * 2**20, [path], tmp_path)[str(path)]
    assert result["load"].startswith(f"CheckpointError: out of memory reading {path} (100.7 MB on disk): free "
                                     f"memory"), result  # 24 Mi floats, 100.66 MB, and the small model
    code, err = result["cli"]
    assert code == 1 and err.startswith("vaelib generate: error: out of memory reading"), err
    assert len(err.strip().splitlines()) == 1 and "corrupt" not in err


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: you tried "
                 "to allocate 4000000000 bytes. Error code 12 (Cannot allocate memory)"),
    MemoryError(),
])
def test_running_out_of_memory_moving_or_building_a_model_says_so(error, tmp_path, monkeypatch):
    """The allocation failures that a real load on a full GPU or a small machine raises, at the step that
    raises them (simulated: they need the memory to be full)."""
    path = save(_tiny(), tmp_path / "m.pth")

    def out_of_memory(*args, **kwargs):
        raise error

    with monkeypatch.context() as patch:
        patch.setattr(torch.nn.Module, "to", out_of_memory)
        with pytest.raises(CheckpointError, match=rf"^out of cuda memory moving the model of {path} \([\d.]+ MB of "
                                                  rf"weights\) to cuda: free cuda memory .*device='cpu'"):
            load(path, device="cuda")
    real_build = vaelib.checkpoints.build_vae

    def build_fails_for_real(config):
        if torch.empty(0).device.type == "meta":  # the shape check's build allocates nothing
            return real_build(config=config)
        raise error

    monkeypatch.setattr("vaelib.checkpoints.build_vae", build_fails_for_real)
    with pytest.raises(CheckpointError, match=rf"^out of memory building the model of {path} \([\d.]+ MB of "
                                              rf"weights\): free memory"):
        load(path)
