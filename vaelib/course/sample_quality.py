"""Sample quality: scores from a small MNIST classifier, for "which samples are better?".

A VAE's test ELBO measures how well it *explains* test images, not how good its *samples* look.
To put a number on samples, we borrow the idea of the Frechet Inception Distance (FID, Heusel et
al. 2017) and of the Inception Score (Salimans et al. 2016), with a small CNN trained on MNIST in
place of the ImageNet Inception network:

1. **Frechet distance (FD)**. Pass a set of generated images and a set of real images through the
   classifier and keep its penultimate layer (128 features per image). Fit a Gaussian to each set
   of features, mean ``mu`` and covariance ``S``, and compute the Frechet (2-Wasserstein) distance
   between the two Gaussians::

       FD = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))

   0 means the two feature distributions have the same mean and covariance; lower is better. It
   penalizes both bad digits (a shifted mean) and too little variety (a shrunken covariance).
   ``Tr (S_a S_b)^(1/2)`` is computed as the sum of the square roots of the eigenvalues of the
   symmetric matrix ``S_a^(1/2) S_b S_a^(1/2)``, which has the same eigenvalues as ``S_a S_b``, in
   float64 (no scipy ``sqrtm``; see :func:`frechet_distance_from_statistics`).

2. **Classifier confidence and label entropy** (the two halves of the Inception Score). For each
   image the classifier gives ``p(y|x)`` over the ten digits. ``confidence`` is the mean of
   ``max_y p(y|x)``: near 1 when every sample looks clearly like *some* digit. ``mean_entropy``
   is the mean of ``H[p(y|x)]`` (low is good: each image is unambiguous). ``label_entropy`` is
   ``H[mean_x p(y|x)]``, the entropy of the predicted label distribution over the whole set: it
   measures class diversity, with a maximum of ``log 10 = 2.303`` nats when all ten digits are
   equally common (MNIST's test set: 2.30). A model that draws only ones scores 0.
   ``classifier_score = exp(label_entropy - mean_entropy)`` combines the two the way the Inception
   Score does (``exp`` of the mutual information between image and label): from 1 (no information
   about the digit, or a single digit) to 10 (ten equally common digits, each image unambiguous).

   No single one of these is enough, and that is worth showing a learner: the classifier calls
   uniform noise (``torch.rand``) an "8" with a confidence of 0.85, about as confident as it is on
   good VAE samples (the label entropy, 0.56, gives it away); blank images get a label entropy of
   2.29, near the maximum, because every prediction is an even spread (the confidence, 0.14, and
   the mean entropy give them away). The Frechet distance, which compares with real images,
   catches both; the classifier statistics need no reference set but only read one network's
   opinion.

**These values are not comparable with published FIDs.** Published FIDs use the Inception-v3
network's 2048 pool features on (usually) 50,000 colour images; ours use this course's own 128-unit
MNIST classifier. The formula is the same, the numbers are not: compare FDs only with other FDs
computed by this module, with the same classifier checkpoint, the same reference set and the same
number of samples. FD is biased upward at small ``n`` (a covariance estimated from few samples is
noisy, and the noise adds to the distance): even two halves of the real test set are a positive
distance apart, so always measure the floor (real images against the reference) at the same
``n`` and read a model's FD against it. Measured with the 10,000 test images as the reference
(``benchmarks/sample_quality.py``), 10,000 / 2,000 / 1,000 training images score 2.2 / 5.7 / 10.2;
the pretrained ``conv_vae``'s decoder means 74.7 / 78.0 (10,000 / 2,000 samples), uniform noise 745.
At 1,000 images the floor also depends on which 1,000 (6.9 and 10.2 for two sets of training
images): prefer 10,000 samples, and at least 2,000.

Which images to compare:

* **Use all 10,000 test images as the reference**, not ``MNIST("test", subset=N)``: a subset is the
  *first* N images, and MNIST's test set is ordered by writer group (its two halves are an FD of
  22.7 apart, ten times the floor).
* **Compare like with like.** vaelib's models are Bernoulli models of binarized MNIST, so the
  samples *of the model* are binary: ``torch.bernoulli(model.sample(n, generator=g), generator=g2)``
  (for the ``pixelcnn`` decoder, the image drawn pixel by pixel: ``drawn, probs =
  model.likelihood.sample(model.decoder(z), generator=g)``), scored against the binarized test set,
  ``mnist_test_reference(binarized=True)``. This is the recommended protocol (floor 2.2 at
  10,000). Decoder means (``model.sample(n)``, grey and smooth, the images one shows) against the
  grey test set (``mnist_test_reference()``, the default) are the alternative: they rank the four
  pretrained VAEs the same way (pixelcnn, conv_iwae, conv_vae, mlp_vae) with similar numbers for
  the factorized decoders (``conv_vae``: 74.7 for means, 66.6 for binary samples), but for the
  ``pixelcnn`` decoder the "mean" is not a mean (it is each pixel's probability along one drawn
  image) and it scores far worse than the drawn images (31.4 vs 14.0). Mixing the two (binary
  samples against grey test images) adds about 3 to the floor (5.2 instead of 2.2).

The classifier (:class:`MNISTClassifier`, 206,922 parameters, 0.8 MB) was trained once by
``python -m vaelib.course.sample_quality --train`` (8 epochs of Adam on the 60,000 training images with
random shifts of up to 2 pixels, half of the batches dynamically binarized, so that it reads both
grey decoder means and binary samples; seed 0) and ships as ``pretrained/mnist_classifier.pth``.
Its accuracy on the 10,000 test images is stored in the checkpoint (``load_classifier().meta``)
and in ``pretrained/README.md``: 99.32 % on grey levels, 98.87 % on dynamically binarized images
(one draw, seed 0).

**Fashion-MNIST** (the capstone projects) has a classifier of its own, the same network and recipe trained on
its training images (``--dataset fashion_mnist``, 20 epochs; ``pretrained/fashion_mnist_classifier.pth``, 90.68 %
test accuracy in grey levels): pass ``dataset="fashion_mnist"`` to :func:`load_classifier`,
:func:`test_reference` and :func:`model_scores`. An FD under one classifier is never comparable with one under the
other.

Conventions: images are ``(N, 1, 28, 28)`` (or ``(N, 28, 28)``), ``float`` in [0, 1] or ``uint8``
in 0-255, or a :class:`vaelib.ImageData` (not a dynamically binarized one); features are ``(N, 128)`` float tensors. Everything runs
batch-wise (``batch_size`` images at a time), in eval mode and without gradients, and is
deterministic: the same images give the same numbers.

    from vaelib.course.sample_quality import mnist_test_reference, sample_scores
    means = model.sample(10_000, generator=torch.Generator().manual_seed(0))
    samples = torch.bernoulli(means, generator=torch.Generator().manual_seed(1))
    scores = sample_scores(samples, mnist_test_reference(binarized=True))
    # {'fd': ..., 'confidence': ..., 'label_entropy': ..., 'mean_entropy': ..., 'classifier_score': ...,
    #  'n': 10000, 'n_reference': 10000}
"""
from __future__ import annotations

import math
import os
import pickle
import sys
import time
import zipfile
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..checkpoints import CheckpointError
from ..data import ImageData
from ..files import atomic_write

__all__ = ["MNISTClassifier", "ClassifierError", "train_classifier", "classifier_accuracy", "save_classifier",
           "load_classifier", "classifier_path", "extract_features", "classifier_outputs", "feature_statistics",
           "frechet_distance", "frechet_distance_from_statistics", "classifier_scores", "sample_scores",
           "mnist_test_reference", "test_reference", "model_scores", "nearest_distances", "copying_ratio",
           "CLASSIFIER_FILE", "CLASSIFIER_FILES", "TRAIN_COMMAND", "DATASETS"]

# one classifier per data set: an FD is only comparable under the classifier of the images' own data set
CLASSIFIER_FILES = {"mnist": "mnist_classifier.pth", "fashion_mnist": "fashion_mnist_classifier.pth"}
DATASETS = tuple(CLASSIFIER_FILES)
CLASSIFIER_FILE = CLASSIFIER_FILES["mnist"]
TRAIN_COMMAND = "python -m vaelib.course.sample_quality --train"


def _dataset(dataset: str) -> str:
    if dataset not in CLASSIFIER_FILES:
        raise ValueError(f"dataset={dataset!r}: the sample scores know {', '.join(map(repr, DATASETS))}")
    return dataset


def _train_command(dataset: str) -> str:
    return TRAIN_COMMAND + ("" if dataset == "mnist" else f" --dataset {dataset}")


def _data_class(dataset: str):
    from ..data import MNIST, FashionMNIST
    return {"mnist": MNIST, "fashion_mnist": FashionMNIST}[_dataset(dataset)]
FORMAT = "vaelib-mnist-classifier"
FORMAT_VERSION = 1


class ClassifierError(CheckpointError, ValueError):
    """The classifier checkpoint is missing or unusable; the message is one line naming the file and the fix."""


# ---------------------------------------------------------------------------------------------------
# The classifier
# ---------------------------------------------------------------------------------------------------

class MNISTClassifier(nn.Module):
    """A small CNN for ``(B, 1, 28, 28)`` images in [0, 1]: two conv layers, 128 features, 10 logits.

    conv 3x3 (16) - ReLU - max-pool 2 -> conv 3x3 (32) - ReLU - max-pool 2 -> dense 1568 -> 128 - ReLU
    (the features) -> dropout -> dense 128 -> 10 (the logits).
    """

    def __init__(self, channels: tuple[int, int] = (16, 32), feature_dim: int = 128, num_classes: int = 10,
                 dropout: float = 0.3):
        super().__init__()
        c1, c2 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc = nn.Linear(c2 * 7 * 7, feature_dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)
        self.config = {"channels": [c1, c2], "feature_dim": feature_dim, "num_classes": num_classes,
                       "dropout": dropout}
        self.meta: dict = {}

    @property
    def feature_dim(self) -> int:
        return self.fc.out_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer: ``(B, 1, 28, 28)`` in [0, 1] -> ``(B, feature_dim)``, non-negative."""
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits ``(B, num_classes)``."""
        return self.head(self.dropout(self.features(x)))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _as_images(images, name: str = "images") -> torch.Tensor:
    """``images`` as a float ``(N, 1, 28, 28)`` tensor in [0, 1] on the CPU (a uint8 input is divided by 255)."""
    if isinstance(images, ImageData):
        if images.binarize == "dynamic":
            raise ValueError(f"{name}: an ImageData with binarize='dynamic' has no fixed images; pass the tensor "
                             f"(data.images) or binarize it yourself with a seeded generator")
        images = images.images
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be a tensor (N, 1, 28, 28) or a vaelib.ImageData, got {type(images).__name__}")
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"{name} must have shape (N, 1, 28, 28) or (N, 28, 28) (MNIST-sized, one channel), "
                         f"got {tuple(images.shape)}")
    if len(images) == 0:
        raise ValueError(f"{name} is empty: pass at least two images")
    if images.dtype == torch.uint8:
        return images.float().div(255)
    if not images.is_floating_point():
        raise ValueError(f"{name} must be uint8 (0-255) or float in [0, 1], got {images.dtype}")
    images = images.detach().float()
    if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise ValueError(f"{name}: float images must lie in [0, 1] and be finite, got values from "
                         f"{images.min().item():.3g} to {images.max().item():.3g}")
    return images


def _shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image translated by a random whole number of pixels in [-max_shift, max_shift] per axis (zero fill)."""
    if max_shift <= 0:
        return x
    b = len(x)
    padded = F.pad(x, (max_shift,) * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(28)[None, :])  # (B, 28)
    cols = (dx[:, None] + torch.arange(28)[None, :])
    idx = torch.arange(b)[:, None, None]
    return padded[:, 0][idx, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def train_classifier(train=None, test=None, epochs: int = 8, batch_size: int = 128, learning_rate: float = 3e-3,
                     seed: int = 0, binarize_fraction: float = 0.5, max_shift: int = 2, progress: bool = True,
                     dataset: str = "mnist", **model_kwargs) -> MNISTClassifier:
    """Train :class:`MNISTClassifier` on ``dataset`` (``"mnist"`` or ``"fashion_mnist"``, whose ten classes are
    clothes) and return it in eval mode, with its scores in ``.meta``.

    A plain loop: Adam, cross-entropy, the learning rate decayed by cosine to 0 over ``epochs``,
    each batch shifted by up to ``max_shift`` pixels, and a fraction ``binarize_fraction`` of the
    batches dynamically binarized (a Bernoulli draw per pixel), so that the classifier reads both
    grey levels and binary images. Everything random is drawn from one generator seeded with
    ``seed`` (and the global seed is set for dropout): the same seed and thread count give the same
    weights on the CPU.

    Args:
        train: images and labels, as an ImageData (grey levels); default the data set's training images.
        test: held-out data for ``.meta``'s accuracies; default its test images; ``False`` skips it.
    """
    data_class = _data_class(dataset)
    train = data_class("train") if train is None else train
    if train.labels is None:
        raise ValueError("train_classifier needs labelled images (an ImageData with labels)")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = MNISTClassifier(**model_kwargs)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps = epochs * math.ceil(len(train) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    images, labels = _as_images(train.images, "train images"), train.labels.cpu()
    history, start = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(images), generator=g)
        total, correct, seen = 0.0, 0, 0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            x, y = _shift(images[idx], max_shift, g), labels[idx]
            if torch.rand((), generator=g) < binarize_fraction:
                x = torch.bernoulli(x, generator=g)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        history.append({"epoch": epoch, "train_loss": total / seen, "train_accuracy": correct / seen,
                        "seconds": time.perf_counter() - start})
        if progress:
            print(f"epoch {epoch}/{epochs}: loss {total / seen:.4f}, train accuracy {correct / seen:.4f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    model.eval()
    model.meta = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
                  "binarize_fraction": binarize_fraction, "max_shift": max_shift,
                  "train_images": len(images), "train_seconds": round(time.perf_counter() - start, 1),
                  "parameters": model.num_parameters(), "feature_dim": model.feature_dim,
                  "train_command": _train_command(dataset), "dataset": dataset, "history": history}
    if test is not False:
        test = data_class("test") if test is None else test
        model.meta["test_accuracy_grey"] = classifier_accuracy(model, test)
        model.meta["test_accuracy_binarized"] = classifier_accuracy(model, test, binarize=True, seed=0)
        model.meta["test_images"] = len(test)
    return model


@torch.no_grad()
def classifier_accuracy(classifier: MNISTClassifier, data, binarize: bool = False, seed: int = 0,
                        batch_size: int = 1000) -> float:
    """The fraction of ``data``'s images (an ImageData with labels) classified correctly.

    ``binarize=True`` classifies one Bernoulli draw of each image (seeded by ``seed``), as dynamic
    binarization would serve it.
    """
    if data.labels is None:
        raise ValueError("classifier_accuracy needs labelled images (an ImageData with labels)")
    images = _as_images(data.images)
    if binarize:
        images = torch.bernoulli(images, generator=torch.Generator().manual_seed(seed))
    probs = classifier_outputs(classifier, images, batch_size=batch_size)[1]
    return (probs.argmax(1) == data.labels.cpu()).float().mean().item()


# ---------------------------------------------------------------------------------------------------
# The checkpoint
# ---------------------------------------------------------------------------------------------------

def classifier_path(dataset: str = "mnist") -> Path:
    """``pretrained/mnist_classifier.pth`` (``fashion_mnist_classifier.pth`` for ``dataset="fashion_mnist"``) in
    vaelib's pretrained folder (``$VAELIB_PRETRAINED`` if set)."""
    from .pretrained import pretrained_dir
    return pretrained_dir() / CLASSIFIER_FILES[_dataset(dataset)]


def save_classifier(classifier: MNISTClassifier, path: str | os.PathLike | None = None) -> Path:
    """Write ``{"format", "format_version", "config", "state_dict", "meta"}`` to ``path`` atomically.

    ``meta`` holds plain numbers and strings (accuracies, training settings, the command), so the
    file loads with ``torch.load(weights_only=True)``. Default path: :func:`classifier_path`.
    """
    path = Path(path) if path is not None else classifier_path(classifier.meta.get("dataset", "mnist"))
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": dict(classifier.config),
               "state_dict": {k: v.detach().cpu().clone() for k, v in classifier.state_dict().items()},
               "meta": dict(classifier.meta)}
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


def load_classifier(path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                    dataset: str = "mnist") -> MNISTClassifier:
    """The shipped classifier of ``dataset`` (MNIST's by default) in eval mode, its training record in ``.meta``.

    ``path`` defaults to :func:`classifier_path` (``$VAELIB_PRETRAINED`` or the repository's
    ``pretrained/``). Raises :class:`ClassifierError` (a ``ValueError`` and a
    ``vaelib.CheckpointError``) with one line naming the file and the command that trains it when
    the file is missing, truncated, corrupt or not this classifier.
    """
    path = Path(path) if path is not None else classifier_path(dataset)
    fix = f"train it with '{_train_command(dataset)}' (10-20 minutes on a CPU), or copy it again from the repository"

    def fail(why: str):
        raise ClassifierError(f"{'MNIST' if dataset == 'mnist' else 'Fashion-MNIST'} classifier {path} {why}: {fix}")

    if not path.exists():
        fail("not found")
    if path.is_dir():
        fail("is a folder, not a checkpoint file")
    try:
        if not zipfile.is_zipfile(path):
            fail("is truncated or not a torch.save file")
        with zipfile.ZipFile(path) as archive:
            if archive.testzip() is not None:
                fail("is corrupt (an entry fails its checksum)")
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except ClassifierError:
        raise
    except pickle.UnpicklingError:
        fail("holds Python objects that a safe load (weights_only=True) refuses")
    except Exception as err:  # PermissionError, EOFError, RuntimeError, BadZipFile...
        fail(f"cannot be read ({type(err).__name__})")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        fail(f"is not a vaelib MNIST classifier (no '{FORMAT}' marker)")
    if ckpt.get("format_version") != FORMAT_VERSION:
        fail(f"has format_version {ckpt.get('format_version')!r}, this vaelib reads {FORMAT_VERSION}")
    try:
        config = dict(ckpt["config"])
        config["channels"] = tuple(config["channels"])
        model = MNISTClassifier(**config)
        model.load_state_dict(ckpt["state_dict"])
    except Exception as err:
        fail(f"does not fit the classifier architecture ({type(err).__name__})")
    if not all(torch.isfinite(p).all() for p in model.state_dict().values()):
        fail("holds non-finite weights")
    model.meta = dict(ckpt.get("meta") or {})
    if model.meta.get("dataset", "mnist") != dataset:     # the shipped MNIST file predates the field
        fail(f"was trained on {model.meta.get('dataset', 'mnist')!r}, not {dataset!r}")
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------------
# Features and scores
# ---------------------------------------------------------------------------------------------------

@torch.no_grad()
def classifier_outputs(classifier: MNISTClassifier, images, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features (N, feature_dim), probabilities (N, 10))`` for ``images``, float32 on the CPU.

    Runs ``batch_size`` images at a time on the classifier's device, in eval mode (no dropout).
    """
    images = _as_images(images)
    was_training = classifier.training
    classifier.eval()
    device = next(classifier.parameters()).device
    feats, probs = [], []
    try:
        for i in range(0, len(images), batch_size):
            h = classifier.features(images[i:i + batch_size].to(device))
            feats.append(h.float().cpu())
            probs.append(classifier.head(h).float().softmax(1).cpu())
    finally:
        classifier.train(was_training)
    return torch.cat(feats), torch.cat(probs)


def extract_features(images, classifier: MNISTClassifier | None = None, batch_size: int = 500) -> torch.Tensor:
    """The classifier's penultimate features ``(N, feature_dim)`` for ``images`` (default: the shipped classifier)."""
    classifier = load_classifier() if classifier is None else classifier
    return classifier_outputs(classifier, images, batch_size)[0]


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean (D,), covariance (D, D))`` of ``features (N, D)``, in float64.

    The covariance is the unbiased one (divided by ``N - 1``), as numpy's ``np.cov`` and pytorch-fid use.
    """
    if features.dim() != 2 or len(features) < 2:
        raise ValueError(f"features must have shape (N, D) with N >= 2, got {tuple(features.shape)}")
    f = features.detach().to(torch.float64)
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (len(f) - 1)


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues,
    which only rounding makes, are treated as 0)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance_from_statistics(mu_a: torch.Tensor, cov_a: torch.Tensor, mu_b: torch.Tensor,
                                     cov_b: torch.Tensor) -> float:
    """``||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` for two Gaussians, in float64.

    ``Tr (S_a S_b)^(1/2)`` is the sum of the square roots of the eigenvalues of ``S_a S_b``; these
    equal the eigenvalues of the symmetric PSD matrix ``S_a^(1/2) S_b S_a^(1/2)``, which
    ``torch.linalg.eigh`` computes stably even when the covariances are singular (dead ReLU
    features, fewer images than features). The result is clamped at 0 against rounding.
    """
    mu_a, mu_b, cov_a, cov_b = (t.detach().to(torch.float64).cpu() for t in (mu_a, mu_b, cov_a, cov_b))
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (len(mu_a), len(mu_a)):
        raise ValueError(f"statistics do not match: means {tuple(mu_a.shape)} and {tuple(mu_b.shape)}, "
                         f"covariances {tuple(cov_a.shape)} and {tuple(cov_b.shape)}")
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    eigenvalues = torch.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = eigenvalues.clamp(min=0).sqrt().sum()
    fd = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    return max(fd.item(), 0.0)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """The Frechet distance between Gaussians fitted to two sets of features ``(N_a, D)`` and ``(N_b, D)``.

    Symmetric, 0 for identical sets, unchanged by reordering either set. See the module docstring
    for what it means and why its values are not Inception FIDs.
    """
    if features_a.dim() != 2 or features_b.dim() != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D, got {tuple(features_a.shape)} and "
                         f"{tuple(features_b.shape)}")
    return frechet_distance_from_statistics(*feature_statistics(features_a), *feature_statistics(features_b))


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats along the last axis (0 log 0 = 0)."""
    p = probs.to(torch.float64)
    return -(p * p.clamp(min=1e-30).log()).sum(-1)


def classifier_scores(images, classifier: MNISTClassifier | None = None, batch_size: int = 500) -> dict:
    """The scores of ``images`` that need no reference set: ``confidence``, ``label_entropy``,
    ``mean_entropy``, ``classifier_score``, ``n``.

    - ``confidence``: mean over images of ``max_y p(y|x)`` (1 = every image clearly one digit);
    - ``mean_entropy``: mean over images of ``H[p(y|x)]`` in nats (0 = unambiguous; max log 10);
    - ``label_entropy``: ``H[mean_x p(y|x)]`` in nats, the class diversity of the set (log 10 = 2.303
      when the ten digits are equally common; 0 when every image is the same digit).
    - ``classifier_score``: ``exp(label_entropy - mean_entropy)``, the Inception Score's formula on
      this classifier, from 1 to 10 (not comparable with published Inception Scores).

    Each alone can be fooled (noise is read confidently as one digit; blank images have a high
    label entropy): read them together, and with the Frechet distance.
    """
    classifier = load_classifier() if classifier is None else classifier
    probs = classifier_outputs(classifier, images, batch_size)[1]
    return _scores_from_probabilities(probs)


def _scores_from_probabilities(probs: torch.Tensor) -> dict:
    p = probs.to(torch.float64)
    label_entropy, mean_entropy = _entropy(p.mean(0)).item(), _entropy(p).mean().item()
    return {"confidence": p.max(1).values.mean().item(), "label_entropy": label_entropy, "mean_entropy": mean_entropy,
            "classifier_score": math.exp(max(label_entropy - mean_entropy, 0.0)), "n": len(p)}


def test_reference(dataset: str = "mnist", binarized: bool = False, seed: int = 0, root=None) -> torch.Tensor:
    """All 10,000 test images of ``dataset`` as a float ``(10000, 1, 28, 28)`` tensor in [0, 1], the reference set.

    ``binarized=True``: one Bernoulli draw of every pixel (``torch.Generator().manual_seed(seed)``),
    the reference for binary samples (see the module docstring). ``root``: as in :class:`vaelib.MNIST`.
    """
    images = _data_class(dataset)("test", root=root).images.float().div(255)
    return torch.bernoulli(images, generator=torch.Generator().manual_seed(seed)) if binarized else images


def mnist_test_reference(binarized: bool = False, seed: int = 0, root=None) -> torch.Tensor:
    """``test_reference("mnist", binarized, seed, root)``: the 10,000 MNIST test images."""
    return test_reference("mnist", binarized, seed, root)


def model_scores(model, n: int = 10000, seed: int = 0, binary: bool | None = None, root=None,
                 dataset: str = "mnist") -> dict:
    """:func:`sample_scores` of ``n`` samples of a ``model`` of ``dataset`` against all 10,000 of its test images,
    under that data set's classifier.

    The model's own samples, drawn 1,000 at a time from ``seed`` onwards: 0/1 pixels for a binary
    likelihood (drawn pixel by pixel for pixelcnn), scored against the test set binarized the same
    way; the decoder means against the grey test images otherwise (``binary`` overrides the choice).
    """
    binary = model.likelihood.binary if binary is None else binary
    samples = torch.cat([model.sample(min(1000, n - i), draw=True,  # a draw of a grey likelihood is its mean
                                      generator=torch.Generator(model.device).manual_seed(seed + i)).cpu()
                         for i in range(0, n, 1000)])
    reference = test_reference(dataset, binarized=binary, seed=seed, root=root)
    return sample_scores(samples, reference, load_classifier(device=model.device, dataset=dataset))


def sample_scores(samples, reference=None, classifier: MNISTClassifier | None = None, batch_size: int = 500) -> dict:
    """All the scores of ``samples`` against ``reference`` images.

    Returns ``{"fd", "confidence", "label_entropy", "mean_entropy", "classifier_score", "n", "n_reference"}``: the
    Frechet distance between the classifier features of ``samples`` and of ``reference``, and
    :func:`classifier_scores` of ``samples``.

    Args:
        samples: ``(N, 1, 28, 28)`` images in [0, 1] (e.g. ``model.sample(n)``, the decoder means), or uint8.
        reference: the real images to compare with; default the 10,000 MNIST test images in grey
            levels (``mnist_test_reference()``); for binary samples pass
            ``mnist_test_reference(binarized=True)``. Compare FDs only at the same ``n`` and reference.
        classifier: default :func:`load_classifier`.
    """
    classifier = load_classifier() if classifier is None else classifier
    if reference is None:
        reference = mnist_test_reference()
    features, probs = classifier_outputs(classifier, samples, batch_size)
    reference_features = classifier_outputs(classifier, reference, batch_size)[0]
    scores = {"fd": frechet_distance(features, reference_features), **_scores_from_probabilities(probs)}
    scores["n_reference"] = len(reference_features)
    return scores


@torch.no_grad()
def nearest_distances(x: torch.Tensor, train: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The Euclidean distance from each row of ``x`` ``(N, ...)`` to its nearest row of ``train`` ``(M, ...)``, both
    flattened: ``(N,)``. A memorization check compares the samples' distances with those of held-out data."""
    train = train.flatten(1).float()
    return torch.cat([torch.cdist(chunk.flatten(1).float(), train).min(1).values for chunk in x.split(batch_size)])


def copying_ratio(samples: torch.Tensor, held_out: torch.Tensor, train: torch.Tensor) -> dict:
    """How close a model's ``samples`` sit to its training data, against ``held_out`` data from the same source:
    ``{"samples", "held_out"}`` (the median distance to the nearest training row of each) and ``"ratio"``, the
    first over the second. About 1 means the samples are as novel as new data; well below 1, that they copy (compare
    like with like: e.g. decoded samples against the VAE's reconstructions of training and test images)."""
    ours, theirs = nearest_distances(samples, train).median().item(), nearest_distances(held_out, train).median().item()
    return {"samples": ours, "held_out": theirs, "ratio": ours / theirs}


# ---------------------------------------------------------------------------------------------------
# python -m vaelib.course.sample_quality --train
# ---------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vaelib.course.sample_quality",
                                     description="Train the MNIST classifier behind vaelib's sample-quality scores, "
                                                 "or show the shipped one's record.")
    parser.add_argument("--train", action="store_true", help="train it and write --output")
    parser.add_argument("--output", default=None,
                        help="where to write it (default: pretrained/" + " or ".join(CLASSIFIER_FILES.values()) + ")")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", choices=DATASETS, default="mnist",
                        help="whose classifier: MNIST's (the default) or Fashion-MNIST's")
    args = parser.parse_args(argv)
    try:
        if args.train:
            model = train_classifier(epochs=args.epochs, seed=args.seed, dataset=args.dataset)
            flags = [f"--epochs {args.epochs}"] * (args.epochs != 8) + [f"--seed {args.seed}"] * (args.seed != 0)
            model.meta["train_command"] = " ".join([_train_command(args.dataset), *flags])
            if args.output is None:
                args.output = classifier_path(args.dataset)
            path = save_classifier(model, args.output)
            m = model.meta
            print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {m['parameters']:,} parameters, "
                  f"{m['train_seconds']:.0f} s): test accuracy {m['test_accuracy_grey']:.4f} on grey levels, "
                  f"{m['test_accuracy_binarized']:.4f} dynamically binarized")
        else:
            model = load_classifier(args.output, dataset=args.dataset)
            for key, value in model.meta.items():
                if key != "history":
                    print(f"{key}: {value}")
    except (ValueError, CheckpointError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
