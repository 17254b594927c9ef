"""Checkpoints: one documented file format, atomic saves, safe loads.

    vaelib.save(model, "my_vae.pth")                  # any torch.nn.Module: a vaelib.VAE, a VQ-VAE...
    model = vaelib.load("my_vae.pth")                 # vaelib's architectures rebuild themselves
    model = vaelib.load("mine.pth", model=MyModel())  # your own modules: the weights go into them

A checkpoint is a ``dict`` written by ``torch.save`` (format version 3):

================  ==============================================================================
key               value
================  ==============================================================================
format            ``"vaelib-checkpoint"`` (tells a vaelib file from any other ``.pth``)
format_version    ``3``; versions 1 (vaelib 0.1) and 2 still load, with ``run_config`` and ``best``
                  ``None``; a newer number means a newer vaelib
vaelib_version    the version that wrote it, e.g. ``"0.2.0"``
config            a :class:`vaelib.VAEConfig` as a dict for vaelib's architectures (``build_vae``
                  rebuilds them from it), ``None`` for a hand-built ``VAE`` or any other module
model             what the file holds: for a ``vaelib.VAE``, ``latent_dim``, ``num_classes``,
                  ``image_shape``, the ``likelihood``'s name, and the ``encoder`` / ``decoder`` class
                  names; for any other ``torch.nn.Module``, its class (``module``, ``class``: its
                  ``__module__`` and ``__qualname__``) and its number of ``parameters``, and for
                  vaelib's other models (``REBUILDABLE``: the hierarchical VAE, the VQ-VAE, the code
                  prior, the DDPM) their constructor's arguments, ``config``, which ``load`` rebuilds
data              the training data: ``dataset`` name, ``image_shape``, ``binarize`` (or ``None``)
state_dict        the model's parameters and buffers
optimizer         the optimizer's state (for resuming), or ``None``
epoch             epochs trained so far
history           list of per-epoch dicts (see vaelib.training.fit)
train_args        the training arguments (command-line flags), for ``generate --info_only``
run_config        the run's configuration as plain values (``epochs``, ``lr``, ``batch_size``,
                  ``seed``...), or ``None``; new in version 3
best              what "best" means for this run and its best value so far, or ``None``:
                  ``{"metric": "test_elbo", "value": -91.2, "higher_is_better": True}`` (the
                  metric is a history key: ``test_loss``, ``train_elbo``...); new in version 3
best_test_elbo    the best test ELBO seen so far (nats), or ``None``; kept for the readers of
                  version 2: ``best``'s value when its metric is ``test_elbo``, else ``None``
                  (without ``best``, the value the writer passed, as in version 2)
================  ==============================================================================

Loading uses ``torch.load(weights_only=True)``: a checkpoint is untrusted input, and a plain
``torch.load`` would run whatever code a malicious pickle holds. Every byte is checked against the
archive's checksums, every field's type is checked, every weight must be finite, and the weights'
shapes are compared with the architecture the config describes before any of it is allocated (a
damaged or crafted config cannot make a load reserve more memory than the file's own tensors take).

Saving writes a temporary file in the same folder and renames it over the target, so an interrupted
save (Ctrl-C, a full disk, a file-size limit, a crash) leaves the previous checkpoint untouched; a
failed write is an ``OSError`` naming the checkpoint. Because the file must load with
``weights_only=True``, ``save`` stores plain values only: numpy scalars become Python numbers, numpy
arrays and sets become lists, paths become strings, enums their values, other mappings dicts and
tuple subclasses tuples (tensors, ``torch.dtype``, ``torch.device`` and ``torch.Size`` stay as they
are). Anything else in ``history``, ``train_args``, ``run_config``, ``data`` or the optimizer's state is
refused with a ``TypeError`` that names where it is, e.g. ``history[3]['my_metric']``.

Any ``torch.nn.Module`` saves and loads: vaelib reads nothing from a module that is not a
``vaelib.VAE`` but its class, its parameters and its ``state_dict``, and sets nothing on it (``load``
returns it with the file's weights, on ``device``, in eval mode; the rest of the file is
``vaelib.load_checkpoint(path)``). Only a ``vaelib.VAE`` gets ``.checkpoint`` and ``.data_info``.
"""
from __future__ import annotations

import collections.abc
import enum
import io
import operator
import os
import pickle
import re
import sys
import zipfile
from pathlib import Path

import torch

from .deprecation import deprecated
from .files import atomic_write, named_os_error
from .vae import VAE, VAEConfig, build_vae
from .version import __version__

__all__ = ["save", "load", "save_checkpoint", "load_checkpoint", "export_checkpoint", "model_from_checkpoint",
           "CheckpointError", "FORMAT", "FORMAT_VERSION", "state_dict_mismatch", "data_info"]

FORMAT = "vaelib-checkpoint"
FORMAT_VERSION = 3
REQUIRED = ("config", "state_dict")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used, with a one-line reason that names the file."""


def _describe_model(model: torch.nn.Module) -> dict:
    """The checkpoint's ``model`` field (see the module docstring): a plain module is read only through
    what every ``torch.nn.Module`` has."""
    if not isinstance(model, VAE):
        kind = type(model)
        info = {"module": kind.__module__, "class": kind.__qualname__,
                "parameters": sum(p.numel() for p in model.parameters()
                                  if not isinstance(p, torch.nn.parameter.UninitializedParameter))}
        if _rebuildable(info):               # vaelib's own other models record their constructor's arguments
            info["config"] = dict(model.config)
        return info
    likelihood = getattr(model.likelihood, "name", type(model.likelihood).__name__)
    return {"latent_dim": int(model.latent_dim), "num_classes": int(model.num_classes),
            "image_shape": None if model.image_shape is None else list(model.image_shape),
            "likelihood": likelihood, "encoder": type(model.encoder).__name__, "decoder": type(model.decoder).__name__}


# vaelib's models other than VAE, which rebuild themselves from ``model.config`` (their constructor's arguments):
# module -> class names. Only these are ever imported by name from a file, and only from inside vaelib.
REBUILDABLE = {"vaelib.hierarchical": {"HierarchicalVAE"}, "vaelib.vqvae": {"VQVAE"},
               "vaelib.code_prior": {"CodePixelCNN"}, "vaelib.diffusion": {"DDPM"}}


def _rebuildable(info: dict) -> bool:
    return info.get("class") in REBUILDABLE.get(info.get("module"), ())


def _rebuild(info: dict, state_dict: dict, path) -> torch.nn.Module:
    """One of :data:`REBUILDABLE` from the config the file recorded, with its weights: the config is checked
    against the weights' names and shapes on the meta device first (so that an edited config cannot allocate a
    huge model)."""
    import importlib
    kind = getattr(importlib.import_module(info["module"]), info["class"])   # a fixed list: see REBUILDABLE
    config = info.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} holds a {info['class']} without its config: load it with "
                              f"vaelib.load(path, model={info['class']}(...)) built as it was saved")
    try:
        with torch.device("meta"):
            skeleton = kind(**config)
    except (TypeError, ValueError) as err:
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"{path} has a {info['class']} config that vaelib cannot build ({first}): the file was "
                              f"edited or damaged") from None
    mismatch = state_dict_mismatch(skeleton, state_dict)
    if mismatch:
        raise CheckpointError(f"{path}: its weights do not fit the {info['class']} its config describes "
                              f"({mismatch}); the file was edited or damaged")
    with torch.random.fork_rng(devices=[]):     # its initial weights, which the file's replace, draw on a fork
        model = kind(**config)
    model.load_state_dict(state_dict)
    return model


def data_info(data) -> dict | None:
    """What a checkpoint records of its training data (``None`` for none, or for vectors that are not images:
    vaelib.data.TensorData)."""
    if data is None or not getattr(data, "is_images", True):
        return None
    return {"dataset": getattr(data, "name", "images"), "image_shape": list(data.image_shape),
            "binarize": data.binarize}


class _NotPlain(TypeError):
    """A value ``save`` cannot store; the message says where it is."""


_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_TORCH_VALUES = (torch.Tensor, torch.Size, torch.dtype, torch.device)  # weights_only loads these too


def _plain(value, where: str, _path: tuple = ()):
    """``value`` with only the types a ``weights_only=True`` load accepts (see the module docstring).

    ``where`` names the value for the error message, e.g. ``history[3]['my_metric']``.
    """
    if type(value) in _SCALARS or isinstance(value, (torch.Size, torch.dtype, torch.device)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach()  # the data, not the autograd graph
    numpy = sys.modules.get("numpy")  # a numpy value exists only if numpy was imported
    if numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic)):
        return _plain(value.tolist(), where, _path)  # Python numbers, or nested lists of them
    if isinstance(value, enum.Enum):
        return _plain(value.value, where, _path)
    for base in _SCALARS[2:]:  # subclasses of int, float, ... (bool cannot be subclassed)
        if isinstance(value, base):
            return base(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (collections.abc.Mapping, list, tuple, set, frozenset)):
        if any(value is seen for seen in _path):
            raise _NotPlain(f"{where} contains itself, which a checkpoint cannot hold: store a copy without the loop")
        inside = (*_path, value)
        if isinstance(value, collections.abc.Mapping):
            plain = {}
            for key, item in value.items():
                name = _plain(key, f"a key of {where}", inside)
                if type(name) not in _SCALARS:
                    raise _NotPlain(f"a key of {where} has type {_kind(key)}: use strings or numbers as keys")
                plain[name] = _plain(item, f"{where}[{key!r}]", inside)
            return plain
        items = [_plain(item, f"{where}[{i}]", inside) for i, item in enumerate(value)]
        if isinstance(value, tuple):
            return tuple(items)
        if isinstance(value, (set, frozenset)):
            try:
                return sorted(items)
            except TypeError:
                return items
        return items
    raise _NotPlain(f"{where} has type {_kind(value)}, which a checkpoint cannot hold (checkpoints load with "
                    f"torch.load(weights_only=True)): store plain numbers, strings, lists, dicts or tensors "
                    f"there, e.g. float(x) or str(x)")


def _kind(value) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _is_plain(value) -> bool:
    """Whether ``value`` is made only of what :func:`_plain` returns (a loaded field's check)."""
    if isinstance(value, _SCALARS + _TORCH_VALUES):
        return True
    if isinstance(value, (list, tuple, set)):
        return all(_is_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, _SCALARS) and _is_plain(item) for key, item in value.items())
    return False


def _dict_without(value, name: str, keys) -> str | None:
    """What is wrong with ``value``, an optional dict that must hold ``keys``, or None."""
    if not isinstance(value, dict):
        return f"{name} has type {_kind(value)}, not a dict (or None)"
    missing = [key for key in keys if key not in value]
    return f"{name} has no {' and no '.join(missing)}" if missing else None


def _plain_dict_problem(where: str, value, alternative: str = "") -> str | None:
    """What is wrong with a value that must be a dict of plain values keyed by names, or None; ``where``
    names it in the message (``'train_args'``, ``'history' item 3``)."""
    if not isinstance(value, dict):
        return f"{where} has type {_kind(value)}, not a dict{alternative}"
    if not all(isinstance(key, str) for key in value):
        return f"{where} has keys that are not names (strings)"
    if not _is_plain(value):
        return f"{where} holds values other than numbers, strings, lists and tensors"
    return None


def _field_problem(ckpt: dict) -> str | None:
    """What is wrong with the checkpoint's fields besides config and state_dict, in a few words; None if nothing.

    The conventions: ``data`` is None or a dict with a ``dataset`` name, an ``image_shape`` [C, H, W]
    and a ``binarize`` name (names may be None); ``history`` a list of dicts with string keys; ``train_args``
    and ``run_config`` (or None) dicts with string keys; all three hold plain values only (numbers, strings,
    lists, dicts, tensors); ``best`` is None or a dict with a ``metric`` name, a number ``value`` and a bool
    ``higher_is_better`` (more plain entries are allowed); ``model`` None or a dict, whose ``module`` and
    ``class`` (when there) are names and ``parameters`` a whole number >= 0.
    """
    data = ckpt.get("data")
    if data is not None:
        problem = _dict_without(data, "'data'", ("dataset", "image_shape", "binarize"))
        if problem:
            return problem
        shape = data["image_shape"]
        if not (isinstance(shape, (list, tuple)) and len(shape) == 3
                and all(type(side) is int and side > 0 for side in shape)):
            return f"'data' has image_shape {shape!r}, not [channels, height, width]"
        for key in ("dataset", "binarize"):
            if not isinstance(data[key], (str, type(None))):
                return f"'data' has {key} {data[key]!r}, not a name (or None)"
    history = ckpt.get("history", [])
    if not isinstance(history, list):
        return f"'history' has type {_kind(history)}, not a list of dicts (one per epoch)"
    for i, row in enumerate(history):
        problem = _plain_dict_problem(f"'history' item {i}", row)
        if problem:
            return problem
    problem = _plain_dict_problem("'train_args'", ckpt.get("train_args", {}))
    if problem:
        return problem
    if ckpt.get("run_config") is not None:
        problem = _plain_dict_problem("'run_config'", ckpt["run_config"], " (or None)")
        if problem:
            return problem
    best_run = ckpt.get("best")
    if best_run is not None:
        problem = _dict_without(best_run, "'best'", ("metric", "value", "higher_is_better"))
        if problem:
            return problem
        if not isinstance(best_run["metric"], str) or not best_run["metric"]:
            return f"'best' has metric {best_run['metric']!r}, not a name (a history key such as 'test_elbo')"
        if type(best_run["value"]) not in (int, float):
            return f"'best' has value of type {_kind(best_run['value'])}, not a number"
        if type(best_run["higher_is_better"]) is not bool:
            return f"'best' has higher_is_better {best_run['higher_is_better']!r}, not True or False"
        if not all(isinstance(key, str) for key in best_run) or not _is_plain(best_run):
            return "'best' holds keys that are not names, or values other than numbers, strings, lists and tensors"
    epoch = ckpt.get("epoch", 0)
    if type(epoch) is not int or epoch < 0:
        return f"'epoch' is {epoch!r}, not a whole number >= 0"
    best = ckpt.get("best_test_elbo")
    if best is not None and type(best) not in (int, float):
        return f"'best_test_elbo' has type {_kind(best)}, not a number (or None)"
    for field in ("model", "optimizer"):
        if not isinstance(ckpt.get(field), (dict, type(None))):
            return f"'{field}' has type {_kind(ckpt[field])}, not a dict (or None)"
    info = ckpt.get("model") or {}
    for key in ("module", "class"):  # named in load's refusal
        if key in info and not isinstance(info[key], str):
            return f"'model' has {key} {info[key]!r}, not a name"
    if "parameters" in info and (type(info["parameters"]) is not int or info["parameters"] < 0):
        return f"'model' has parameters {info['parameters']!r}, not a whole number >= 0"
    return None


def _plain_payload(payload: dict, path: Path) -> dict:
    """The checkpoint dict with plain values only, checked; ``TypeError`` naming what cannot be stored."""
    try:
        for key, value in payload.items():
            if key != "state_dict":
                payload[key] = _plain(value, key)
        state = payload["state_dict"]  # model.state_dict(): its tensors and their metadata are kept as they are
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):  # a module's get_extra_state()
                state[key] = _plain(value, f"state_dict[{key!r}]")
    except _NotPlain as err:
        raise TypeError(f"cannot save {path}: {err}") from None
    problem = _field_problem(payload)
    if problem:
        raise TypeError(f"cannot save {path}: {problem}")
    _check_loads_safely(payload, path)
    return payload


def _skeleton(value):
    """``value`` with its plain tensors left out: what a weights_only load of it has to accept besides them."""
    if type(value) in (torch.Tensor, torch.nn.Parameter):
        return None
    if isinstance(value, dict):
        return {key: _skeleton(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_skeleton(item) for item in value)
    return value


def _refused(value) -> str | None:
    """What a weights_only load refuses in ``value`` (a name like 'numpy.dtype', or 'an object'); None if nothing."""
    # torch.serialization.save is torch.save: called by that name, a test or tool that replaces
    # torch.save to watch (or fail) the checkpoint writes sees only those, not this trial in memory
    buffer = io.BytesIO()
    torch.serialization.save(value, buffer)
    buffer.seek(0)
    try:
        torch.serialization.load(buffer, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        return found.group(1) if found else "an object"
    return None


def _check_loads_safely(payload: dict, path: Path) -> None:
    """Load the payload's skeleton back with weights_only=True (a few kB, its tensors left out): a file
    vaelib writes is one that vaelib can read, whatever a future field or a tensor subclass holds."""
    skeleton = {key: _skeleton(value) for key, value in payload.items()}
    if _refused(skeleton) is None:
        return
    for key, value in skeleton.items():  # name the field
        refused = _refused(value)
        if refused:
            raise TypeError(f"cannot save {path}: its {key} holds {refused}, which torch.load(weights_only=True) "
                            f"refuses: store plain values there")


class _WriteRecorder:
    """A file's ``write`` for torch.save that keeps the OSError a write raised: torch's zip writer
    replaces it with a RuntimeError such as 'unexpected pos 2496 vs 2390'."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data):
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self):
        return self.file.flush()

    def __getattr__(self, name):  # seek, tell...: the file's own
        return getattr(self.file, name)


def _write(payload: dict, path: Path) -> None:
    """torch.save ``payload`` to ``path`` atomically; a failed write is an OSError naming ``path``."""
    with atomic_write(path) as f:
        recorder = _WriteRecorder(f)
        try:
            torch.save(payload, recorder)
        except OSError as err:  # from torch.save's final flush
            raise named_os_error(err, path) from None
        except Exception:
            if recorder.error is not None:  # e.g. ENOSPC (a full disk) or EFBIG (a file-size limit)
                raise named_os_error(recorder.error, path) from None
            raise


def save(model: torch.nn.Module, path: str | os.PathLike, *, optimizer=None, epoch: int = 0,
         history: list | None = None, train_args: dict | None = None, best_test_elbo: float | None = None,
         data=None, run_config: dict | None = None, best: dict | None = None) -> Path:
    """Write any ``torch.nn.Module`` (and optional training state) to ``path`` atomically; return the path.

    A :class:`vaelib.VAE` is described by its architecture (and rebuilt from its config by ``load``);
    any other module by its class and parameter count, and loads back with ``load(path, model=...)``.
    ``data``: the training data (vaelib.ImageData) or its :func:`data_info` dict, recorded so that
    ``generate`` and ``evaluate`` know the images the model was trained on (default: what
    ``vaelib.fit`` or ``vaelib.load`` recorded in a VAE's ``model.data_info``). ``run_config``: the
    run's configuration as plain values (a dict). ``best``: what "best" means for the run and its best
    value, ``{"metric": "test_elbo", "value": -91.2, "higher_is_better": True}``; when given, it decides
    ``best_test_elbo`` (its value when the metric is ``test_elbo``, else ``None``; a ``best_test_elbo``
    passed too must agree); ``best_test_elbo`` alone is written as in version 2, with ``best`` ``None``.
    The folder is created if needed. Ctrl-C during the write is held back until the file is whole
    (vaelib.files.atomic_write).
    Values that ``torch.load(weights_only=True)`` would refuse are stored as plain values, or refused
    with a ``TypeError`` naming them (see the module docstring); a failed write (a full disk, a
    file-size limit) is an ``OSError`` naming ``path``, and leaves the file that was there.
    """
    path = Path(path)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"cannot save {path}: model is a {_kind(model)}, not a torch.nn.Module; the call is "
                        f"vaelib.save(model, path)")
    lazy = [name for name, t in model.state_dict().items() if torch.nn.parameter.is_lazy(t)]
    if lazy:  # their shapes are unknown until the first forward pass, so no file could hold them
        raise TypeError(f"cannot save {path}: the model's lazy layers are not initialized yet ({', '.join(lazy[:3])}"
                        f"{' ...' if len(lazy) > 3 else ''}): run one batch through it before saving")
    best, best_test_elbo = _best_fields(best, best_test_elbo, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vae = isinstance(model, VAE)  # a module vaelib does not own is read only through nn.Module's own API
    config = getattr(model, "config", None) if vae else None
    if data is None and vae:
        data = getattr(model, "data_info", None)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "vaelib_version": __version__,
        "config": config.to_dict() if isinstance(config, VAEConfig) else None,
        "model": _describe_model(model),
        "data": data if isinstance(data, dict) or data is None else data_info(data),
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": int(epoch),
        "history": list(history or []),
        "train_args": {} if train_args is None else train_args,  # a mapping; anything else is refused below
        "run_config": run_config,  # a mapping or None; anything else is refused below
        "best": best,
        "best_test_elbo": best_test_elbo,
    }
    _write(_plain_payload(payload, path), path)
    return path


def _number(value):
    """``value`` as a float when it is one number (a numpy scalar, a one-element tensor), else as it is."""
    if isinstance(value, bool):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach())
    numpy = sys.modules.get("numpy")
    if isinstance(value, (int, float)) or (numpy is not None and isinstance(value, (numpy.integer, numpy.floating))):
        return float(value)
    return value


def _best_fields(best, best_test_elbo, path: Path) -> tuple:
    """``best`` and ``best_test_elbo`` as save writes them: one decides the other (see ``save``)."""
    if best_test_elbo is not None:
        best_test_elbo = float(best_test_elbo)
    if best is None:
        # not inferred from best_test_elbo: callers have passed the training ELBO under that name when
        # there was no test data, and ``best`` records only what the caller says
        return None, best_test_elbo
    if not isinstance(best, collections.abc.Mapping):
        return best, best_test_elbo  # refused by the field checks, with its type
    best = dict(best)
    if "value" in best:
        best["value"] = _number(best["value"])
    implied = best["value"] if best.get("metric") == "test_elbo" and type(best.get("value")) is float else None
    if best_test_elbo is not None and best_test_elbo != implied:
        raise ValueError(f"cannot save {path}: best_test_elbo={best_test_elbo} disagrees with best={best}: pass "
                         f"best only (best_test_elbo is written from it)")
    return best, implied


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, **state) -> Path:
    """Deprecated (vaelib 0.1): ``save(model, path, **state)``, with the arguments in the other order."""
    deprecated("save_checkpoint(path, model)", "vaelib.save(model, path)")
    return save(model, path, **state)


def _check_archive(path: Path) -> None:
    """A torch.save file is a zip archive whose entries carry CRC-32 checksums: verify every byte."""
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise CheckpointError(f"cannot read {path}: permission denied (fix its permissions, e.g. chmod u+r)") from None
    if not zipfile.is_zipfile(path):  # a cut-off archive has no central directory
        raise CheckpointError(f"{path} is not a checkpoint, or is truncated (not a complete torch.save "
                              f"archive): pass the .pth file that 'vaelib train' wrote, or copy it again")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise CheckpointError(f"{path} is corrupt ({type(err).__name__} reading the archive): copy it again "
                              f"or re-train it") from None
    if bad is not None:
        raise CheckpointError(f"{path} is corrupt (its entry {bad} fails its checksum): copy it again or re-train it")


_OUT_OF_MEMORY = (MemoryError, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError))


def _out_of_memory(err: BaseException) -> bool:
    """torch reports a failed CPU allocation as a RuntimeError ('DefaultCPUAllocator: can't allocate memory')."""
    return isinstance(err, _OUT_OF_MEMORY) or (isinstance(err, RuntimeError) and (
        "can't allocate memory" in str(err) or "out of memory" in str(err)))


def _megabytes(nbytes: int) -> str:
    return f"{nbytes / 1e6:,.1f} MB"


def _nbytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values() if isinstance(t, torch.Tensor))


def _memory_error(doing: str, device) -> CheckpointError:
    """Out of memory while loading: not a damaged file, and not a bug."""
    device = torch.device(device) if isinstance(device, (str, torch.device)) else torch.device("cpu")
    if device.type == "cpu":
        return CheckpointError(f"out of memory {doing}: free memory (close other programs, notebooks or models) "
                               f"and try again, or use a machine with more memory")
    return CheckpointError(f"out of {device.type} memory {doing}: free {device.type} memory (other processes or "
                           f"models on it), or load it with device='cpu'")


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read and validate a checkpoint dict; raise :class:`CheckpointError` with a clear reason.

    Checked: the file exists and is readable, every archive entry matches its checksum, the load
    is safe (``weights_only=True``), the format marker and version, the required keys, the types of
    ``data``, ``history``, ``train_args`` and the other fields (see ``_field_problem``), and that
    every weight is finite (a NaN weight means a diverged run saved by something other than vaelib).
    Running out of memory is a :class:`CheckpointError` that says so (not a damaged file).
    The dict always has ``run_config`` and ``best``: ``None`` in a file of format version 1 or 2.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} (check the path, or train one with "
                              f"'python -m vaelib train NAME')")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file (did you mean {path}/checkpoint_best.pth?)")
    _check_archive(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        if _out_of_memory(err):
            raise _memory_error(f"reading {path} ({_megabytes(path.stat().st_size)} on disk)", map_location) from None
        if isinstance(err, pickle.UnpicklingError):
            raise CheckpointError(f"{path} holds Python objects that a safe load (weights_only=True) refuses: "
                                  f"vaelib loads only the checkpoints its own training writes") from None
        # a damaged file fails in many ways (EOFError, KeyError, RuntimeError...)
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt: "
                              f"{type(err).__name__}): re-train it or copy it again") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a vaelib checkpoint (no '{FORMAT}' marker): "
                              f"vaelib loads only the files its own training writes")
    version = ckpt.get("format_version")
    if type(version) is not int or version < 1:
        raise CheckpointError(f"{path} has an invalid format_version {version!r} (a whole number >= 1 is "
                              f"expected): the file was edited or damaged; export it again from its run")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer vaelib (format {version}, this vaelib reads "
                              f"up to {FORMAT_VERSION}): upgrade vaelib (pip install -U vaelib)")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing or not isinstance(ckpt["config"], (dict, type(None))) or not isinstance(ckpt["state_dict"], dict) \
            or (ckpt["config"] is None and version < 2) or not all(
                isinstance(k, str) and (isinstance(v, torch.Tensor) or k.endswith("_extra_state"))
                for k, v in ckpt["state_dict"].items()):
        raise CheckpointError(f"{path} is an incomplete vaelib checkpoint (missing or malformed: "
                              f"{', '.join(missing) or 'config/state_dict'})")
    try:
        problem = _field_problem(ckpt)
    except RecursionError:  # a list nested thousands deep, or one that contains itself
        problem = "a field nests lists or dicts without end"
    if problem:
        raise CheckpointError(f"{path} is damaged or not a vaelib checkpoint: {problem}; copy it again, or export "
                              f"it again from its run")
    for name, tensor in ckpt["state_dict"].items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path} holds non-finite weights (NaN or inf in {name}): it cannot generate or "
                                  f"evaluate anything; use an earlier checkpoint of the run")
    for field in ("run_config", "best"):  # new in version 3: an older file has neither
        ckpt.setdefault(field, None)
    return ckpt


def export_checkpoint(source: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Copy a checkpoint without its optimizer state (a third of the size): for ``pretrained/``."""
    ckpt = load_checkpoint(source)
    ckpt.update(optimizer=None, format_version=FORMAT_VERSION, vaelib_version=__version__)
    if ckpt.get("data") is None and "model" not in ckpt:  # version 1
        ckpt["data"] = _v1_data(ckpt)
    if ckpt["config"] is not None:  # checks that the weights fit, and upgrades a version-1 config
        model = model_from_checkpoint(ckpt, source)
        ckpt["config"], ckpt["model"] = model.config.to_dict(), _describe_model(model)
    _write(ckpt, Path(destination))
    return Path(destination)


def _v1_data(ckpt: dict) -> dict:
    """A version-1 checkpoint was always trained on MNIST."""
    binarize = (ckpt.get("train_args") or {}).get("binarize")
    return {"dataset": "mnist", "image_shape": [1, 28, 28], "binarize": None if binarize in (None, "none") else binarize}


def model_from_checkpoint(ckpt: dict, path: str | os.PathLike = "checkpoint",
                          model: torch.nn.Module | None = None) -> torch.nn.Module:
    """The model a checkpoint dict describes, with its weights: rebuilt from its config, or ``model``
    (any module whose weights fit, whatever class the file recorded)."""
    if model is None:
        if ckpt.get("config") is None:
            info = ckpt.get("model") or {}
            if isinstance(info, dict) and _rebuildable(info):
                return _rebuild(info, ckpt["state_dict"], path)
            if "class" in info and "latent_dim" not in info:  # a module other than a vaelib.VAE
                name = info["class"]
                raise CheckpointError(f"{path} holds a {info.get('module', '?')}.{name}, not one of vaelib's VAEs, "
                                      f"so vaelib cannot rebuild it: build it in your code and load the weights "
                                      f"into it with vaelib.load(path, model={name}(...))")
            raise CheckpointError(f"{path} holds your own architecture (encoder {info.get('encoder', '?')}, decoder "
                                  f"{info.get('decoder', '?')}), which vaelib cannot rebuild: build the same VAE in "
                                  f"your code and load the weights into it with vaelib.load(path, model=your_vae)")
        try:
            config = VAEConfig.from_dict(ckpt["config"])
            _check_counts(config, ckpt["state_dict"], path)
            # The architecture without its weights (no memory): a config that declares a huge model is
            # refused by comparing shapes before anything is allocated at the declared size.
            with torch.device("meta"):
                skeleton = build_vae(config=config)
        except CheckpointError:
            raise
        except (TypeError, ValueError, OverflowError, RuntimeError) as err:
            first = (str(err).strip().splitlines() or [""])[0][:200]
            raise CheckpointError(f"{path} has a config that vaelib cannot build ({first}): the file was edited "
                                  f"or damaged") from None
        mismatch = state_dict_mismatch(skeleton, ckpt["state_dict"])
        if mismatch:
            raise CheckpointError(f"{path}: its weights do not fit the architecture its config describes "
                                  f"({mismatch}); the file was edited or damaged: export it again from its run")
        try:  # now the size of the file's own tensors; their random initial values draw from a fork of the
            with torch.random.fork_rng(devices=[]):  # caller's generator, since the file's weights replace them
                model = build_vae(config=config)
        except Exception as err:
            if not _out_of_memory(err):
                raise
            raise _memory_error(f"building the model of {path} ({_megabytes(_nbytes(skeleton))} of weights)",
                                "cpu") from None
    else:
        mismatch = state_dict_mismatch(model, ckpt["state_dict"])
        if mismatch:
            raise CheckpointError(f"{path}: its weights do not fit the model you passed ({mismatch}); build the "
                                  f"model exactly as it was when the file was saved")
    model.load_state_dict(ckpt["state_dict"])
    info = ckpt.get("model") or {}
    if isinstance(model, VAE) and model.image_shape is None and info.get("image_shape"):
        model.image_shape = tuple(info["image_shape"])  # only on a VAE: vaelib sets nothing on a module it does not own
    return model


def _check_counts(config: VAEConfig, state_dict: dict, path) -> None:
    """Counts that build modules one by one in Python (no tensor, so the meta device cannot help):
    each step or layer holds at least one tensor, so more of them than the file holds is damage."""
    for field in ("iaf_steps", "pixelcnn_layers"):
        try:
            count = operator.index(getattr(config, field))
        except TypeError:
            continue  # build_vae says what is wrong with it
        if count > len(state_dict):
            raise CheckpointError(f"{path}: its config declares {field}={count}, but the file holds only "
                                  f"{len(state_dict)} tensors; the file was edited or damaged: export it again "
                                  f"from its run")


def _shape(value):
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def state_dict_mismatch(model: torch.nn.Module, state_dict: dict) -> str:
    """What keeps ``state_dict`` from loading into ``model``, in one line; ``""`` when it fits.

    ``model`` may live on the meta device: only its tensors' names and shapes are compared.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k} {_shape(state_dict[k]) or type(state_dict[k]).__name__} in the file vs {_shape(v)} in the model"
              for k, v in expected.items() if k in state_dict and _shape(state_dict[k]) != _shape(v)]

    def some(keys):
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
    parts = ([f"missing {some(missing)}"] if missing else []) + ([f"unexpected {some(unexpected)}"] if unexpected else []) \
        + ([f"wrong shape: {some(shapes)}"] if shapes else [])
    return "; ".join(parts)


def load(path: str | os.PathLike, model: torch.nn.Module | None = None,
         device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a trained model from a checkpoint, in eval mode, on ``device``.

    Without ``model``, vaelib's own architectures are rebuilt from the stored config. With
    ``model`` (any ``torch.nn.Module``: your own architecture, built the way it was when saved), the
    weights are loaded into it and it is returned; a mismatch is a :class:`CheckpointError` naming the
    layers that differ (a module of another class than the file recorded loads if its weights fit).
    A :class:`vaelib.VAE` keeps the checkpoint dict minus the weights as ``model.checkpoint`` (config,
    history, data...) and its data as ``model.data_info``; so does a model of vaelib's that ``load`` rebuilt
    (``REBUILDABLE``). vaelib sets no attribute on a module of yours: read those with :func:`load_checkpoint`.
    """
    if model is not None and not isinstance(model, torch.nn.Module):  # load(path, "cuda") in vaelib 0.1
        deprecated(f"load(path, {model!r})", f"load(path, device={model!r})")
        model, device = None, model
    ckpt = load_checkpoint(path)
    rebuilt = model is None
    model = model_from_checkpoint(ckpt, path, model)
    try:
        model = model.to(device).eval()
    except Exception as err:
        if not _out_of_memory(err):
            raise
        raise _memory_error(f"moving the model of {path} ({_megabytes(_nbytes(model))} of weights) to {device}",
                            device) from None
    if not (isinstance(model, VAE) or rebuilt):
        return model
    meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer")}
    meta.setdefault("data", None)
    if meta["data"] is None and ckpt.get("format_version") == 1:
        meta["data"] = _v1_data(ckpt)
    model.checkpoint, model.data_info = meta, meta["data"]
    return model
