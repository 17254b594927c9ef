"""Image data sets as tensors that live on the training device.

The usual ``DataLoader`` loop converts every image to PIL and back, one at a time; at MNIST's size
that per-item work costs more than the model. Here a whole split is held once as a tensor of shape
``(N, C, H, W)`` (``uint8``, or ``float`` in [0, 1]) and batches are served by indexing it.

:class:`ImageData` is the one data type that ``fit``, evaluation, plotting and the widgets take.
They also accept a plain tensor of images or an ``(images, labels)`` pair (see :func:`as_data`):

    data = ImageData(torch.rand(512, 3, 32, 32))               # your own images in [0, 1]
    train = MNIST("train", binarize="dynamic")                  # MNIST, 60,000 x (1, 28, 28)
    train = FashionMNIST("train", subset=2000)                  # Zalando's clothes, grey levels
    train = load_dataset("cifar10", "train", image_size=64)     # a torchvision image data set by name

Where the files come from, in order:

1. ``root=`` passed by the caller (it must exist: a mistyped path is an error, not a download);
2. the ``VAELIB_DATA`` environment variable (likewise);
3. a ``data/`` folder in the working directory, then one beside the vaelib source checkout;
4. torchvision's download into the last of those, when online; offline, a one-line error.

Binarization (``binarize=``), for images in [0, 1]:

* ``None``: grey levels in [0, 1];
* ``"dynamic"``: a fresh Bernoulli draw of every pixel each time a batch is served (the protocol
  of Burda et al. 2015; it acts as data augmentation);
* ``"static"``: one fixed Bernoulli draw with a fixed seed, made when the split is loaded.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from .deprecation import deprecated
from .validation import whole_number

__all__ = ["ImageData", "TensorData", "MNIST", "FashionMNIST", "load_dataset", "as_data", "DataError", "data_root",
           "load_mnist_tensors", "canonical_dataset", "DATASETS", "GENERIC_DATASETS"]

BINARIZATIONS = (None, "dynamic", "static")
STATIC_SEED = 1234  # the fixed draw is part of the protocol: keep it the same everywhere


class DataError(RuntimeError, ValueError):
    """Raised with a one-line explanation of what is wrong with the data and how to fix it.

    A ``ValueError`` too (wrong data is a wrong argument: ``except ValueError`` around ``fit`` catches it
    with every other refusal), and still a ``RuntimeError``, as in vaelib 0.1.
    """


# ---------------------------------------------------------------------------------------------------
# The data type
# ---------------------------------------------------------------------------------------------------

def _batch_indices(n: int, batch_size: int, shuffle: bool, generator, drop_last: bool, device):
    """The rows of each batch: slices in order, or index tensors of one permutation drawn from ``generator``."""
    batch_size = whole_number("batch_size", batch_size)
    order = torch.randperm(n, device=device, generator=generator) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield slice(start, start + batch_size) if order is None else order[start:start + batch_size]


class ImageData:
    """Images ``(N, C, H, W)``, optional labels ``(N,)``, and how to binarize them, on one device.

    Args:
        images: ``uint8`` (0-255) or floating tensor with values in [0, 1], channels first
            ``(N, C, H, W)``; ``(N, H, W)`` is read as one channel. Refused (a ``DataError``, also a
            ``ValueError``, naming the fix): channels-last images ``(N, H, W, C)``, floats outside [0, 1],
            ``uint8`` images whose maximum is 1 (0/1 masks, which read as 0-255 would be black).
        labels: integer labels ``(N,)`` (a tensor or a sequence), one int for all images, or ``None``.
        binarize: ``None``, ``"dynamic"`` or ``"static"`` (see the module docstring).
        device: where the tensors live; batches come out on this device.
        name: what the data is, for messages and checkpoints (``"mnist"``, ``"fashion_mnist"``...).
        classes: the names of the labels, if known.

    Attributes:
        images, labels: as stored (for ``"static"`` the images hold the fixed 0/1 draw, as ``uint8``).
        image_shape: ``(C, H, W)``.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None, binarize: str | None = None,
                 device: str | torch.device | None = None, name: str = "images", split: str | None = None,
                 classes: list | None = None):
        images = _checked_images(images)
        if labels is not None:
            labels = torch.as_tensor(labels)
            if labels.dim() == 0 and not labels.is_floating_point():  # one label for every image
                labels = labels.reshape(1).repeat(len(images))
            if labels.shape != (len(images),) or labels.is_floating_point():
                raise DataError(f"labels must be integers of shape ({len(images)},), got {labels.dtype} "
                                f"{tuple(labels.shape)}")
            labels = labels.long()
        if binarize not in BINARIZATIONS:
            raise DataError(f"unknown binarization {binarize!r}: use one of {BINARIZATIONS}.")
        if binarize == "static":  # one fixed draw, made once
            g = torch.Generator().manual_seed(STATIC_SEED + (split == "test"))
            images = torch.bernoulli(_to_unit(images.cpu()), generator=g).to(torch.uint8).mul_(255)
        device = torch.device(device) if device is not None else images.device
        self.images = images.to(device)
        self.labels = None if labels is None else labels.to(device)
        self.binarize, self.name, self.split, self.classes = binarize, name, split, classes
        self.device = device

    # --- what the data is ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        """The number of label values (``max + 1``), 0 without labels."""
        if self.labels is None or len(self.labels) == 0:
            return len(self.classes or []) if self.labels is not None else 0
        return max(int(self.labels.max()) + 1, len(self.classes or []))

    def __repr__(self) -> str:
        split = f", split={self.split!r}" if self.split else ""
        return (f"{type(self).__name__}(name={self.name!r}{split}, n={len(self)}, shape={self.image_shape}, "
                f"binarize={self.binarize!r}, labels={self.labels is not None}, device={self.device})")

    def __getitem__(self, index) -> "ImageData":
        """A subset (a slice, or a tensor or list of indices), with the same binarization."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        subset = object.__new__(type(self))
        subset.__dict__.update(self.__dict__)
        subset.images = self.images[index]
        subset.labels = None if self.labels is None else self.labels[index]
        return subset

    def to(self, device) -> "ImageData":
        """The same data on ``device`` (itself if it is already there)."""
        device = torch.device(device)
        if device == self.device:
            return self
        moved = self[:]
        moved.images, moved.device = self.images.to(device), device
        moved.labels = None if self.labels is None else self.labels.to(device)
        return moved

    # --- batches ------------------------------------------------------------------------------------
    def prepare(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Stored images -> float model input in [0, 1] (a fresh 0/1 draw under dynamic binarization)."""
        x = _to_unit(images)
        if self.binarize == "dynamic":
            x = torch.bernoulli(x, generator=generator)
        return x

    def batches(self, batch_size: int = 128, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False):
        """Yield ``(x, y)``: ``x`` float ``(B, C, H, W)`` on ``self.device``; ``y`` int64 ``(B,)``, or
        ``None`` without labels."""
        for idx in _batch_indices(len(self), batch_size, shuffle, generator, drop_last, self.device):
            yield self.prepare(self.images[idx], generator), None if self.labels is None else self.labels[idx]

    def first(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The first ``n`` images as one fixed batch ``(x, y)`` (binarized with ``seed``): for figures."""
        g = torch.Generator(device=self.device).manual_seed(seed)
        return self.prepare(self.images[:n], g), None if self.labels is None else self.labels[:n]

    def sample(self, n: int, seed: int = 0):
        """Deprecated (vaelib 0.1's name): :meth:`first`, the *first* ``n`` images, not a random sample."""
        deprecated("ImageData.sample(n)", "ImageData.first(n): the first n images, not a random sample")
        return self.first(n, seed)


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255) if images.dtype == torch.uint8 else images.float()


def _checked_images(images) -> torch.Tensor:
    """``images`` as a tensor ``(N, C, H, W)``, or a one-line ``DataError`` naming the fix.

    Each refused case would otherwise train without an error on the wrong pictures: channels-last
    images as H channels of W x C pixels, 0-255 floats as saturated pixels, 0/1 ``uint8`` masks as
    black. One min/max pass over the tensor, nothing more.
    """
    images = torch.as_tensor(images)
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4:
        raise DataError(f"images must be a tensor (N, C, H, W) (or (N, H, W)), got shape {tuple(images.shape)}")
    shape = tuple(images.shape)
    if shape[3] in (1, 3) and shape[1] not in (1, 3):
        raise DataError(f"images of shape {shape} look channels-last (N, H, W, C): vaelib reads (N, C, H, W); "
                        f"pass x.permute(0, 3, 1, 2)")
    if not len(images):
        return images
    if images.is_floating_point():
        low, high = (v.item() for v in torch.aminmax(images))  # NaN propagates: refused below too
        if not (0 <= low and high <= 1):
            raise DataError(f"float images must lie in [0, 1], got values from {low:.3g} to {high:.3g}: "
                            f"divide uint8 pixels by 255, or rescale your data")
        return images
    high = images.max().item()
    if images.dtype == torch.uint8:
        if high == 1:
            raise DataError("uint8 images whose maximum is 1 are read as 0-255 pixels, so these 0/1 images "
                            "would be black: pass x.float()")
        return images
    fix = "x.float() for 0/1 images" if 0 <= high <= 1 else "x.to(torch.uint8) for 0-255 pixels"
    raise DataError(f"images must be uint8 (0-255) or float in [0, 1], got {images.dtype}: pass {fix}")


class StreamingData:
    """A ``torch.utils.data.Dataset`` or ``DataLoader`` as vaelib's data: read batch by batch, for
    images that do not fit in memory. :class:`ImageData` (tensors held on the device, batches by
    indexing) is faster wherever the images fit.

    Items are images ``(C, H, W)``, or ``(image, label)`` pairs (more fields are ignored), floats in
    [0, 1] or uint8 0-255. A ``Dataset`` is batched and shuffled by vaelib (``batch_size`` and the
    run's seed); a ``DataLoader`` keeps its own batch size, order and workers. The first batch is
    checked like ImageData's images (layout, value range) before anything trains. No binarization:
    what the loader gives is what the model sees.
    """

    binarize = None

    def __init__(self, source, name: str = "data"):
        from torch.utils.data import DataLoader
        self.source, self.name = source, "images"
        self.loader = source if isinstance(source, DataLoader) else None
        self.device = torch.device("cpu")
        try:
            x, y = self.first(64)
        except (TypeError, RuntimeError) as err:  # default_collate on PIL images, ragged sizes...
            raise DataError(f"{name}: its items cannot be batched as tensors ({type(err).__name__}: "
                            f"{str(err).splitlines()[0][:120]}): give images as tensors (C, H, W), e.g. a "
                            f"torchvision data set with transform=torchvision.transforms.ToTensor()") from None
        except StopIteration:
            raise DataError(f"{name} holds no images: check its source") from None
        try:
            _checked_images(x)
        except DataError as err:
            raise DataError(f"{name}: the first batch: {err}") from None
        self.image_shape, self.labels = tuple(x.shape[1:]), y  # labels: those of the first batch, or None
        self.num_classes, self.classes = None, None

    def __len__(self) -> int:
        return len(self.loader.dataset if self.loader is not None else self.source)

    def to(self, device) -> "StreamingData":
        return self  # each batch moves to the model's device as it is read

    def batches(self, batch_size: int = 128, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False):
        """Yield ``(x, y)`` as the source gives them: ``x`` float ``(B, C, H, W)`` in [0, 1], ``y`` or ``None``."""
        from torch.utils.data import DataLoader
        loader = self.loader or DataLoader(self.source, batch_size=whole_number("batch_size", batch_size),
                                           shuffle=shuffle, generator=generator, drop_last=drop_last)
        for item in loader:
            x, y = (item[0], item[1] if len(item) > 1 else None) if isinstance(item, (tuple, list)) else (item, None)
            yield _to_unit(x), y

    def first(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The first ``n`` images of the first batch, ``(x, y)``."""
        x, y = next(iter(self.batches(n)))
        return x[:n], None if y is None else torch.as_tensor(y)[:n]


class TensorData:
    """Tensors that are not images, for models that are not image models: a diffusion model over a VAE's latents,
    a prior over codes. ``tensor`` ``(N, ...)`` float, any values (finite); ``labels`` optional ``(N,)``. ``fit``
    batches and shuffles them as it does images (``fit(model, TensorData(latents), objective=...)``) with none of
    the image checks, which is why the wrapping is explicit: a plain tensor is still checked as images.
    """

    binarize = None
    num_classes = None
    classes = None
    is_images = False    # what a checkpoint records of its data: nothing (vaelib.checkpoints.data_info)

    def __init__(self, tensor: torch.Tensor, labels=None):
        if not isinstance(tensor, torch.Tensor) or tensor.dim() < 1:
            raise DataError(f"TensorData takes a tensor (N, ...), got {type(tensor).__name__}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise DataError("TensorData: the tensor holds NaN or infinite values")
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.long, device=tensor.device)
            if labels.shape != (len(tensor),):
                raise DataError(f"TensorData: {len(tensor)} rows but labels of shape {tuple(labels.shape)}")
        self.tensor, self.labels = tensor, labels
        self.image_shape, self.device = tuple(tensor.shape[1:]), tensor.device

    def __len__(self) -> int:
        return len(self.tensor)

    def to(self, device) -> "TensorData":
        return TensorData(self.tensor.to(device), None if self.labels is None else self.labels.to(device))

    def batches(self, batch_size: int = 128, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False):
        """Yield ``(x, y)``: rows of the tensor as they are, and their labels or ``None``."""
        for idx in _batch_indices(len(self), batch_size, shuffle, generator, drop_last, self.device):
            yield self.tensor[idx], None if self.labels is None else self.labels[idx]

    def first(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The first ``n`` rows ``(x, y)``."""
        return self.tensor[:n], None if self.labels is None else self.labels[:n]


def as_data(data, labels=None, name: str = "data") -> ImageData | StreamingData | TensorData:
    """``data`` as :class:`ImageData`: itself, a tensor of images, or an ``(images, labels)`` pair; a
    ``torch.utils.data.Dataset`` or ``DataLoader`` as :class:`StreamingData`.

    ``labels``: for a tensor of images, as :class:`ImageData` takes them (a tensor, a sequence or one
    int). ``name``: the argument the data came in, for the message if it is refused, e.g.
    ``as_data(test, name="test")``: ``DataError`` (also a ``ValueError``) ``"test: images of shape ..."``.
    """
    if isinstance(data, (ImageData, StreamingData, TensorData)):
        return data
    from torch.utils.data import DataLoader, Dataset
    if isinstance(data, (Dataset, DataLoader)):
        return StreamingData(data, name)
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        data, labels = data
    elif not isinstance(data, torch.Tensor):
        raise DataError(f"{name} must be vaelib.ImageData, a tensor of images (N, C, H, W), (images, labels), or a "
                        f"torch Dataset or DataLoader of them, got {type(data).__name__}")
    try:
        return ImageData(data, labels)
    except DataError as err:  # ImageData names its own argument, images; the caller's is `name`
        raise DataError(f"{name}: {err}") from None


# ---------------------------------------------------------------------------------------------------
# Where the files are
# ---------------------------------------------------------------------------------------------------

def _source_data_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data"


def _named_root(path: str | os.PathLike, who: str, folder: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_dir():  # never create folders (or download) under a path the user mistyped
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise DataError(f"{who} {path} {what}: point it at the folder that holds {folder}/ "
                        f"(or create that folder to download into it)")
    return path


def data_root(root: str | os.PathLike | None = None, folder: str = "MNIST") -> Path:
    """The folder that holds (or will hold, after a download) ``<folder>/`` (``MNIST/raw/`` etc.).

    A folder named by ``root`` or ``VAELIB_DATA`` must exist: a mistyped path is an error, not a
    place to create folders and download into.
    """
    if root is not None:
        return _named_root(root, "the data folder", folder)
    env = os.environ.get("VAELIB_DATA")
    if env:
        return _named_root(env, "VAELIB_DATA", folder)
    for candidate in (Path.cwd() / "data", _source_data_dir()):
        if (candidate / folder).is_dir():
            return candidate
    # Nothing present yet: download beside the source checkout if there is one, else here.
    src = _source_data_dir()
    return src if (src.parent / "pyproject.toml").exists() else Path.cwd() / "data"


# ---------------------------------------------------------------------------------------------------
# MNIST-format files (MNIST, Fashion-MNIST, KMNIST): checked before torchvision reads them
# ---------------------------------------------------------------------------------------------------

# name -> (magic number, number of items, bytes per item). The idx header is the magic number
# (2051 for images, 2049 for labels), then one 4-byte count per dimension: 16 bytes for images, 8 for labels.
_FILES = {
    "train-images-idx3-ubyte": (2051, 60000, 784),
    "train-labels-idx1-ubyte": (2049, 60000, 1),
    "t10k-images-idx3-ubyte": (2051, 10000, 784),
    "t10k-labels-idx1-ubyte": (2049, 10000, 1),
}


def _check_files(raw: Path, title: str = "MNIST") -> None:
    """Fail early, naming the file, on an idx file that is truncated, of the wrong size, or not an
    idx file of the right kind (its magic number and item count are read from its header).

    torchvision would otherwise fail deep inside with a reshape error or a bare assertion.
    """
    for name, (magic, n, item_bytes) in _FILES.items():
        path = raw / name
        if not path.exists():
            continue  # a missing file is torchvision's to report (or download)
        header_bytes = 16 if magic == 2051 else 8
        expected = header_bytes + n * item_bytes
        fix = "delete it and download it again, or copy a good one there"
        try:
            size = path.stat().st_size
            with open(path, "rb") as f:
                header = f.read(header_bytes)
        except OSError as err:
            raise DataError(f"cannot read {title} file {path}: {err.strerror}") from None
        if size != expected:
            raise DataError(f"{title} file {path} has {size} bytes, expected {expected} (truncated or corrupt): {fix}.")
        found = int.from_bytes(header[:4], "big")
        count = int.from_bytes(header[4:8], "big")
        if found != magic or count != n:
            kind = "images" if magic == 2051 else "labels"
            raise DataError(f"{title} file {path} has a wrong header (magic number {found}, {count} items; expected "
                            f"{magic} and {n} {kind}): it is damaged or not this file: {fix}.")


def _mnist_like(ds):
    return ds.data, ds.targets


def _numpy_hwc(ds):  # CIFAR: numpy (N, H, W, C) uint8, targets a list
    return torch.as_tensor(ds.data).permute(0, 3, 1, 2), torch.as_tensor(ds.targets)


def _numpy_chw(ds):  # SVHN: numpy (N, C, H, W) uint8, labels
    return torch.as_tensor(ds.data), torch.as_tensor(ds.labels)


# name -> (torchvision class, its folder under the root, how to ask for a split, how to read the tensors)
DATASETS = {
    "mnist": ("MNIST", "MNIST", "train", _mnist_like),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST", "train", _mnist_like),
    "kmnist": ("KMNIST", "KMNIST", "train", _mnist_like),
    "cifar10": ("CIFAR10", "cifar-10-batches-py", "train", _numpy_hwc),
    "cifar100": ("CIFAR100", "cifar-100-python", "train", _numpy_hwc),
    "svhn": ("SVHN", "SVHN", "split", _numpy_chw),
}
_TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "kmnist": "KMNIST"}


def _generic(ds):
    """Any other torchvision image data set: its items as tensors, one by one (slow, but general)."""
    from torchvision.transforms.functional import pil_to_tensor
    images, labels = [], []
    for image, label in ds:
        images.append(pil_to_tensor(image) if not isinstance(image, torch.Tensor) else image)
        labels.append(int(label) if not isinstance(label, (tuple, list)) else int(label[0]))
    return torch.stack(images), torch.tensor(labels)


# torchvision image data sets beyond DATASETS that the generic loader can build: a (root, train=
# or split='train'/'test', download=) constructor and images of one size. Others (FakeData,
# ImageFolder, Omniglot, ImageNet, data sets of mixed image sizes...) are refused by name.
GENERIC_DATASETS = ("USPS", "STL10")


def canonical_dataset(name: str) -> str:
    """``"Fashion-MNIST"`` -> ``"fashion_mnist"``; ``"stl10"`` -> ``"STL10"`` (one of
    :data:`GENERIC_DATASETS`); ``DataError`` for anything vaelib cannot load."""
    key = str(name).lower().replace("-", "_")
    key = {"fashionmnist": "fashion_mnist", "cifar_10": "cifar10", "cifar_100": "cifar100"}.get(key, key)
    if key in DATASETS:
        return key
    for cls_name in GENERIC_DATASETS:
        if cls_name.lower() == key.replace("_", ""):
            return cls_name
    raise DataError(f"unknown data set {name!r}: vaelib loads {', '.join(DATASETS)}, "
                    f"{', '.join(c.lower() for c in GENERIC_DATASETS)}; for other images pass a tensor "
                    f"(N, C, H, W) to vaelib.fit from Python")


def _load_tensors(name: str, split: str, root, download: bool) -> tuple[torch.Tensor, torch.Tensor, list | None]:
    """``(images uint8 (N, C, H, W), labels int64 (N,), class names)`` of one split, on the CPU."""
    import torchvision.datasets

    name = canonical_dataset(name)
    cls_name, folder, split_arg, read = DATASETS.get(name, (name, name, "train", _generic))
    title = _TITLES.get(name, cls_name)
    if split not in ("train", "test"):
        raise DataError(f"unknown {title} split {split!r}: use 'train' or 'test'.")
    root = data_root(root, folder)
    raw = root / folder / "raw" if read is _mnist_like else root / folder
    if read is _mnist_like:
        _check_files(raw, title)
    cls = getattr(torchvision.datasets, cls_name)
    if read is _generic:  # ask for the split the way this class takes it
        import inspect
        split_arg = "split" if "split" in inspect.signature(cls).parameters else "train"
    kwargs = {"train": split == "train"} if split_arg == "train" else {"split": split}

    def build(download_now: bool):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls(str(root), download=download_now, **kwargs)
    try:
        ds = build(False)
    except (AssertionError, ValueError) as err:  # torchvision's own checks of the file contents
        raise DataError(f"{title} files under {raw} cannot be read ({type(err).__name__}: {err}): "
                        f"delete them and download them again") from None
    except (RuntimeError, FileNotFoundError):
        if not download:
            raise DataError(f"{title} not found under {raw}: set VAELIB_DATA to a folder that holds "
                            f"{folder}/, or allow the download.") from None
        created = [p for p in [raw, *raw.parents] if not p.exists()]
        try:
            ds = build(True)
        except Exception as err:  # URLError, timeouts, HTTP errors: all mean "offline" to a user
            for made in created:  # leave no empty folders behind
                try:
                    made.rmdir()
                except OSError:
                    break
            raise DataError(f"{title} not found under {raw} and the download failed ({type(err).__name__}): "
                            f"if you are offline, set VAELIB_DATA to a folder that holds {folder}/.") from None
    images, labels = read(ds)
    images = torch.as_tensor(images)
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if len(images) != len(labels):
        raise DataError(f"{title} files under {raw} are inconsistent: download them again.")
    return images.contiguous(), torch.as_tensor(labels).long(), list(getattr(ds, "classes", []) or []) or None


def load_mnist_tensors(split: str = "train", root: str | os.PathLike | None = None,
                       download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one MNIST split as ``(images uint8 (N, 1, 28, 28), labels int64 (N,))`` on the CPU."""
    images, labels, _ = _load_tensors("mnist", split, root, download)
    return images, labels


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> uint8 ``(N, C, size, size)`` (bilinear with antialiasing), in chunks."""
    import torch.nn.functional as F
    out = [F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
           .round_().clamp_(0, 255).to(torch.uint8) for chunk in images.split(4096)]
    return torch.cat(out) if out else images.new_zeros(0, images.shape[1], size, size)


def load_dataset(name: str, split: str = "train", binarize: str | None = None, subset: int | None = None,
                 device: str | torch.device = "cpu", root: str | os.PathLike | None = None,
                 download: bool = True, image_size: int | None = None) -> ImageData:
    """One split of a torchvision image data set by name (``mnist``, ``fashion_mnist``, ``kmnist``,
    ``cifar10``, ``cifar100``, ``svhn``, ``usps``, ``stl10``; downloaded when online) as :class:`ImageData`.

    Args:
        subset: keep only the first ``subset`` images, for quick runs.
        image_size: resize every image to ``image_size`` x ``image_size`` once, when loading (the
            original project trained on MNIST at 64x64).
    """
    key = canonical_dataset(name)
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, int) or subset < 1):
        raise DataError(f"subset must be a positive number of images, got {subset}.")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 4):
        raise DataError(f"image_size must be a whole number of pixels >= 4, got {image_size}.")
    if binarize not in BINARIZATIONS:
        raise DataError(f"unknown binarization {binarize!r}: use one of {BINARIZATIONS}.")
    images, labels, classes = _load_tensors(key, split, root, download)
    if subset is not None:
        images, labels = images[:subset], labels[:subset]
    if image_size is not None and images.shape[-2:] != (image_size, image_size):
        images = _resize(images, image_size)
    return ImageData(images, labels, binarize=binarize, device=device, name=key, split=split, classes=classes)


class MNIST(ImageData):
    """One MNIST split (60,000 train or 10,000 test images, ``(1, 28, 28)``) held as tensors.

    Args:
        split: ``"train"`` or ``"test"``.
        binarize: ``None``, ``"dynamic"`` or ``"static"`` (see the module docstring).
        subset: keep only the first ``subset`` images, for quick runs.
        device: where the tensors live; batches come out on this device.
        root: the data folder (see :func:`data_root`).
        image_size: resize to ``image_size`` x ``image_size`` when loading.

    Example::

        train = MNIST("train", binarize="dynamic", device="cuda")
        for x, y in train.batches(128, shuffle=True):
            ...  # x: float (128, 1, 28, 28) in {0, 1}; y: (128,)
    """

    dataset = "mnist"

    def __init__(self, split: str = "train", binarize: str | None = None, subset: int | None = None,
                 device: str | torch.device = "cpu", root: str | os.PathLike | None = None, download: bool = True,
                 image_size: int | None = None):
        data = load_dataset(self.dataset, split, binarize, subset, device, root, download, image_size)
        self.__dict__.update(data.__dict__)


class FashionMNIST(MNIST):
    """One Fashion-MNIST split (Xiao et al. 2017: 28x28 grey images of clothes in ten classes, 60,000
    train and 10,000 test), with the same arguments as :class:`MNIST`."""

    dataset = "fashion_mnist"
