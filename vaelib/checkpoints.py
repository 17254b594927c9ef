"""Checkpoints: one documented file format, atomic saves, safe loads.

A checkpoint is a ``dict`` written by ``torch.save``:

================  ==============================================================================
key               value
================  ==============================================================================
format            ``"vaelib-checkpoint"`` (tells a vaelib file from any other ``.pth``)
format_version    ``1``; a newer number means a newer vaelib wrote it
vaelib_version    the version that wrote it, e.g. ``"0.1.0"``
config            ``build_vae`` arguments: ``build_vae(**config)`` rebuilds the architecture
state_dict        the model's parameters and buffers
optimizer         the optimizer's state (for resuming), or ``None``
epoch             epochs trained so far
history           list of per-epoch dicts (see vaelib.training.fit)
train_args        the training arguments (command-line flags), for ``generate --info_only``
best_test_elbo    the best test ELBO seen so far (nats), or ``None``
================  ==============================================================================

Loading uses ``torch.load(weights_only=True)``: a checkpoint is untrusted input, and a plain
``torch.load`` would run whatever code a malicious pickle holds. Saving writes a temporary file in
the same folder and renames it over the target, so an interrupted save (Ctrl-C, a full disk, a
crash) leaves the previous checkpoint untouched.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

from .vae import VAE, build_vae

__all__ = ["save_checkpoint", "load_checkpoint", "load", "export_checkpoint", "CheckpointError", "FORMAT", "FORMAT_VERSION"]

FORMAT = "vaelib-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("config", "state_dict")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used, with a one-line reason that names the file."""


def _version() -> str:
    from . import __version__
    return __version__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(path: str | os.PathLike, model: VAE, *, optimizer=None, epoch: int = 0,
                    history: list | None = None, train_args: dict | None = None,
                    best_test_elbo: float | None = None) -> Path:
    """Write ``model`` (and optional training state) to ``path`` atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "vaelib_version": _version(),
        "config": dict(model.config),
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": int(epoch),
        "history": list(history or []),
        "train_args": dict(train_args or {}),
        "best_test_elbo": None if best_test_elbo is None else float(best_test_elbo),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the user's usual permissions
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows: readers see the old file or the new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read and validate a checkpoint dict; raise :class:`CheckpointError` with a clear reason."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} (check the path, or train one with "
                              f"'python -m vaelib train NAME')")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file (did you mean {path}/checkpoint_best.pth?)")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-off one has no directory
        raise CheckpointError(f"{path} is not a checkpoint, or is truncated (not a complete torch.save "
                              f"archive): pass the .pth file that 'vaelib train' wrote, or copy it again")
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
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer vaelib (format {version}, this vaelib reads "
                              f"up to {FORMAT_VERSION}): upgrade vaelib (pip install -U vaelib)")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is an incomplete vaelib checkpoint (missing {', '.join(missing)})")
    return ckpt


def export_checkpoint(source: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Copy a checkpoint without its optimizer state (a third of the size): for ``pretrained/``."""
    ckpt = load_checkpoint(source)
    model = model_from_checkpoint(ckpt, source)
    return save_checkpoint(destination, model, epoch=ckpt.get("epoch", 0), history=ckpt.get("history"),
                           train_args=ckpt.get("train_args"), best_test_elbo=ckpt.get("best_test_elbo"))


def model_from_checkpoint(ckpt: dict, path: str | os.PathLike = "checkpoint") -> VAE:
    """Rebuild the model a checkpoint dict describes and load its weights."""
    try:
        model = build_vae(**ckpt["config"])
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(f"{path} does not match its own config ({first[:160]})") from None
    return model


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> VAE:
    """Load a trained VAE from a checkpoint, in eval mode, on ``device``.

    The checkpoint dict is kept as ``model.checkpoint`` minus the weights (config, history, ...).
    """
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, path).to(device).eval()
    model.checkpoint = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer")}
    return model
