"""Checkpoints: one documented file format, atomic saves, safe loads.

    vaelib.save(model, "my_vae.pth")                 # any vaelib.VAE
    model = vaelib.load("my_vae.pth")                # vaelib's architectures rebuild themselves
    model = vaelib.load("custom.pth", model=make())  # your own networks: the weights go into them

A checkpoint is a ``dict`` written by ``torch.save`` (format version 2):

================  ==============================================================================
key               value
================  ==============================================================================
format            ``"vaelib-checkpoint"`` (tells a vaelib file from any other ``.pth``)
format_version    ``2`` (version 1, vaelib 0.1, still loads); a newer number means a newer vaelib
vaelib_version    the version that wrote it, e.g. ``"0.2.0"``
config            a :class:`vaelib.VAEConfig` as a dict for vaelib's architectures (``build_vae``
                  rebuilds them from it), ``None`` for a hand-built ``VAE``
model             what the file holds: ``latent_dim``, ``num_classes``, ``image_shape``, the
                  ``likelihood``'s name, and the ``encoder`` / ``decoder`` class names
data              the training data: ``dataset`` name, ``image_shape``, ``binarize`` (or ``None``)
state_dict        the model's parameters and buffers
optimizer         the optimizer's state (for resuming), or ``None``
epoch             epochs trained so far
history           list of per-epoch dicts (see vaelib.training.fit)
train_args        the training arguments (command-line flags), for ``generate --info_only``
best_test_elbo    the best test ELBO seen so far (nats), or ``None``
================  ==============================================================================

Loading uses ``torch.load(weights_only=True)``: a checkpoint is untrusted input, and a plain
``torch.load`` would run whatever code a malicious pickle holds. Every byte is checked against the
archive's checksums and every weight must be finite. Saving writes a temporary file in the same
folder and renames it over the target, so an interrupted save (Ctrl-C, a full disk, a crash)
leaves the previous checkpoint untouched.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from .files import atomic_write
from .vae import VAE, VAEConfig, build_vae
from .version import __version__

__all__ = ["save", "load", "save_checkpoint", "load_checkpoint", "export_checkpoint", "model_from_checkpoint",
           "CheckpointError", "FORMAT", "FORMAT_VERSION", "state_dict_mismatch", "data_info"]

FORMAT = "vaelib-checkpoint"
FORMAT_VERSION = 2
REQUIRED = ("config", "state_dict")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used, with a one-line reason that names the file."""


def _describe_model(model: VAE) -> dict:
    likelihood = getattr(model.likelihood, "name", type(model.likelihood).__name__)
    return {"latent_dim": int(model.latent_dim), "num_classes": int(model.num_classes),
            "image_shape": None if model.image_shape is None else list(model.image_shape),
            "likelihood": likelihood, "encoder": type(model.encoder).__name__, "decoder": type(model.decoder).__name__}


def data_info(data) -> dict | None:
    """What a checkpoint records of its training data (``None`` for none)."""
    if data is None:
        return None
    return {"dataset": getattr(data, "name", "images"), "image_shape": list(data.image_shape),
            "binarize": data.binarize}


def save(model: VAE, path: str | os.PathLike, *, optimizer=None, epoch: int = 0, history: list | None = None,
         train_args: dict | None = None, best_test_elbo: float | None = None, data=None) -> Path:
    """Write any :class:`vaelib.VAE` (and optional training state) to ``path`` atomically; return the path.

    ``data``: the training data (vaelib.ImageData) or its :func:`data_info` dict, recorded so that
    ``generate`` and ``evaluate`` know the images the model was trained on (default: what
    ``vaelib.fit`` or ``vaelib.load`` recorded in ``model.data_info``). The folder is created if
    needed. Ctrl-C during the write is held back until the file is whole (vaelib.files.atomic_write).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = getattr(model, "config", None)
    if data is None:
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
        "train_args": dict(train_args or {}),
        "best_test_elbo": None if best_test_elbo is None else float(best_test_elbo),
    }
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


def save_checkpoint(path: str | os.PathLike, model: VAE, **state) -> Path:
    """``save(model, path, **state)`` with the arguments in vaelib 0.1's order."""
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


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read and validate a checkpoint dict; raise :class:`CheckpointError` with a clear reason.

    Checked: the file exists and is readable, every archive entry matches its checksum, the load
    is safe (``weights_only=True``), the format marker and version, the required keys, and that
    every weight is finite (a NaN weight means a diverged run saved by something other than vaelib).
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
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path} holds Python objects that a safe load (weights_only=True) refuses: "
                              f"vaelib loads only the checkpoints its own training writes") from None
    except Exception as err:  # a damaged file fails in many ways (EOFError, KeyError, RuntimeError...)
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
            or (ckpt["config"] is None and version < 2):
        raise CheckpointError(f"{path} is an incomplete vaelib checkpoint (missing or malformed: "
                              f"{', '.join(missing) or 'config/state_dict'})")
    for name, tensor in ckpt["state_dict"].items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path} holds non-finite weights (NaN or inf in {name}): it cannot generate or "
                                  f"evaluate anything; use an earlier checkpoint of the run")
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
    with atomic_write(Path(destination)) as f:
        torch.save(ckpt, f)
    return Path(destination)


def _v1_data(ckpt: dict) -> dict:
    """A version-1 checkpoint was always trained on MNIST."""
    binarize = (ckpt.get("train_args") or {}).get("binarize")
    return {"dataset": "mnist", "image_shape": [1, 28, 28], "binarize": None if binarize in (None, "none") else binarize}


def model_from_checkpoint(ckpt: dict, path: str | os.PathLike = "checkpoint", model: VAE | None = None) -> VAE:
    """The model a checkpoint dict describes, with its weights: rebuilt from its config, or ``model``."""
    if model is None:
        if ckpt.get("config") is None:
            info = ckpt.get("model") or {}
            raise CheckpointError(f"{path} holds your own architecture (encoder {info.get('encoder', '?')}, decoder "
                                  f"{info.get('decoder', '?')}), which vaelib cannot rebuild: build the same VAE in "
                                  f"your code and load the weights into it with vaelib.load(path, model=your_vae)")
        try:
            model = build_vae(config=VAEConfig.from_dict(ckpt["config"]))
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{path} has a config that vaelib cannot build ({err}): the file was edited "
                                  f"or damaged") from None
        problem = "its weights do not fit the architecture its config describes"
    else:
        problem = "its weights do not fit the model you passed"
    mismatch = state_dict_mismatch(model, ckpt["state_dict"])
    if mismatch:
        fix = ("the file was edited or damaged: export it again from its run" if ckpt.get("config") is not None and
               problem.endswith("describes") else "build the model exactly as it was when the file was saved")
        raise CheckpointError(f"{path}: {problem} ({mismatch}); {fix}")
    model.load_state_dict(ckpt["state_dict"])
    info = ckpt.get("model") or {}
    if getattr(model, "image_shape", None) is None and info.get("image_shape"):
        model.image_shape = tuple(info["image_shape"])
    return model


def state_dict_mismatch(model: torch.nn.Module, state_dict: dict) -> str:
    """What keeps ``state_dict`` from loading into ``model``, in one line; ``""`` when it fits."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k} {tuple(state_dict[k].shape)} in the file vs {tuple(v.shape)} in the model"
              for k, v in expected.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]

    def some(keys):
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
    parts = ([f"missing {some(missing)}"] if missing else []) + ([f"unexpected {some(unexpected)}"] if unexpected else []) \
        + ([f"wrong shape: {some(shapes)}"] if shapes else [])
    return "; ".join(parts)


def load(path: str | os.PathLike, model: VAE | None = None, device: str | torch.device = "cpu") -> VAE:
    """Load a trained VAE from a checkpoint, in eval mode, on ``device``.

    Without ``model``, vaelib's own architectures are rebuilt from the stored config. With
    ``model`` (your own architecture, built the way it was when saved), the weights are loaded
    into it; a mismatch is a :class:`CheckpointError` naming the layers that differ.
    The checkpoint dict minus the weights is kept as ``model.checkpoint`` (config, history, data...).
    """
    if model is not None and not isinstance(model, torch.nn.Module):  # load(path, "cuda") in vaelib 0.1
        model, device = None, model
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, path, model).to(device).eval()
    meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer")}
    meta.setdefault("data", None)
    if meta["data"] is None and ckpt.get("format_version") == 1:
        meta["data"] = _v1_data(ckpt)
    model.checkpoint, model.data_info = meta, meta["data"]
    return model
