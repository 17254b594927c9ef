"""MNIST as tensors that live on the training device.

The usual ``DataLoader`` loop converts every image to PIL and back, one at a time; at MNIST's size
that per-item work costs more than the model. Here a whole split is loaded once as a ``uint8``
tensor of shape ``(N, 1, 28, 28)`` and batches are served by indexing it.

Where the files come from, in order:

1. ``root=`` passed by the caller;
2. the ``VAELIB_DATA`` environment variable (a folder that holds ``MNIST/raw/``);
3. a ``data/`` folder in the working directory, then one beside the vaelib source checkout;
4. torchvision's download into the last of those, when online.

Binarization (``binarize=``):

* ``None``: grey levels in [0, 1];
* ``"dynamic"``: a fresh Bernoulli draw of every pixel each time a batch is served (the protocol
  of Burda et al. 2015; it acts as data augmentation);
* ``"static"``: one fixed Bernoulli draw with a fixed seed, made when the split is loaded.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["MNIST", "DataError", "data_root", "load_mnist_tensors"]

BINARIZATIONS = (None, "dynamic", "static")
STATIC_SEED = 1234  # the fixed draw is part of the protocol: keep it the same everywhere

# name -> (number of items, bytes per item): the header is 16 bytes for images, 8 for labels
_FILES = {
    "train-images-idx3-ubyte": (60000, 784, 16),
    "train-labels-idx1-ubyte": (60000, 1, 8),
    "t10k-images-idx3-ubyte": (10000, 784, 16),
    "t10k-labels-idx1-ubyte": (10000, 1, 8),
}


class DataError(RuntimeError):
    """Raised with a one-line explanation of what is wrong with the data and how to fix it."""


def _source_data_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data"


def _has_mnist(root: Path) -> bool:
    return (root / "MNIST" / "raw").is_dir()


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds (or will hold, after a download) ``MNIST/raw/``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("VAELIB_DATA")
    if env:
        return Path(env).expanduser()
    for candidate in (Path.cwd() / "data", _source_data_dir()):
        if _has_mnist(candidate):
            return candidate
    # Nothing present yet: download beside the source checkout if there is one, else here.
    src = _source_data_dir()
    return src if (src.parent / "pyproject.toml").exists() else Path.cwd() / "data"


def _check_files(raw: Path) -> None:
    """Fail early, naming the file, on a truncated or wrong-sized MNIST file.

    torchvision would otherwise fail deep inside with a reshape error.
    """
    for name, (n, item_bytes, header) in _FILES.items():
        path = raw / name
        if not path.exists():
            continue  # a missing file is torchvision's to report (or download)
        expected = header + n * item_bytes
        size = path.stat().st_size
        if size != expected:
            raise DataError(
                f"MNIST file {path} has {size} bytes, expected {expected} (truncated or corrupt): "
                f"delete it and download it again, or copy a good one there."
            )


def load_mnist_tensors(
    split: str = "train", root: str | os.PathLike | None = None, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split as ``(images uint8 (N, 1, 28, 28), labels int64 (N,))`` on the CPU."""
    if split not in ("train", "test"):
        raise DataError(f"unknown MNIST split {split!r}: use 'train' or 'test'.")
    from torchvision.datasets import MNIST as TorchvisionMNIST

    root = data_root(root)
    raw = root / "MNIST" / "raw"
    _check_files(raw)
    try:
        ds = TorchvisionMNIST(str(root), train=(split == "train"), download=False)
    except RuntimeError:
        if not download:
            raise DataError(
                f"MNIST not found under {raw}: set VAELIB_DATA to a folder that holds MNIST/raw/ "
                f"(the four idx-ubyte files), or allow the download."
            ) from None
        try:
            ds = TorchvisionMNIST(str(root), train=(split == "train"), download=True)
        except Exception as err:  # URLError, timeouts, HTTP errors: all mean "offline" to a user
            raise DataError(
                f"MNIST not found under {raw} and the download failed ({type(err).__name__}): "
                f"if you are offline, set VAELIB_DATA to a folder that holds MNIST/raw/."
            ) from None
    images, labels = ds.data, ds.targets
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DataError(f"MNIST files under {raw} are inconsistent: download them again.")
    return images.unsqueeze(1).contiguous(), labels.long()


class MNIST:
    """One MNIST split held as tensors, served in batches.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        binarize: ``None``, ``"dynamic"`` or ``"static"`` (see the module docstring).
        subset: keep only the first ``subset`` images, for quick runs.
        device: where the tensors live; batches come out on this device.
        root: the data folder (see :func:`data_root`).

    Attributes:
        images: ``uint8`` tensor ``(N, 1, 28, 28)``; for ``"static"`` it holds the fixed 0/1 draw.
        labels: ``int64`` tensor ``(N,)``.

    Example::

        train = MNIST("train", binarize="dynamic", device="cuda")
        for x, y in train.batches(128, shuffle=True):
            ...  # x: float (128, 1, 28, 28) in {0, 1}; y: (128,)
    """

    def __init__(
        self,
        split: str = "train",
        binarize: str | None = None,
        subset: int | None = None,
        device: str | torch.device = "cpu",
        root: str | os.PathLike | None = None,
        download: bool = True,
    ):
        if binarize not in BINARIZATIONS:
            raise DataError(f"unknown binarization {binarize!r}: use one of {BINARIZATIONS}.")
        if subset is not None and subset < 1:
            raise DataError(f"subset must be a positive number of images, got {subset}.")
        images, labels = load_mnist_tensors(split, root, download)
        if subset is not None:
            images, labels = images[:subset], labels[:subset]
        if binarize == "static":
            g = torch.Generator().manual_seed(STATIC_SEED + (split == "test"))
            images = torch.bernoulli(images.float() / 255, generator=g).to(torch.uint8)
        self.split, self.binarize = split, binarize
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return f"MNIST(split={self.split!r}, n={len(self)}, binarize={self.binarize!r}, device={self.device})"

    def prepare(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 images -> float model input in [0, 1] (a fresh 0/1 draw under dynamic binarization)."""
        if self.binarize == "static":
            return images.float()
        x = images.float().div_(255)
        if self.binarize == "dynamic":
            x = torch.bernoulli(x, generator=generator)
        return x

    def batches(self, batch_size: int = 128, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False):
        """Yield ``(x, y)``: ``x`` float ``(B, 1, 28, 28)`` on ``self.device``, ``y`` int64 ``(B,)``."""
        n = len(self)
        order = torch.randperm(n, device=self.device, generator=generator) if shuffle else None
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            if order is None:
                idx = slice(start, start + batch_size)
            else:
                idx = order[start:start + batch_size]
            yield self.prepare(self.images[idx], generator), self.labels[idx]

    def sample(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed batch of the first ``n`` images (for figures): ``(x, y)`` as from :meth:`batches`."""
        g = torch.Generator(device=self.device).manual_seed(seed)
        return self.prepare(self.images[:n], g), self.labels[:n]
