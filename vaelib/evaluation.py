"""Evaluating a trained VAE: test ELBO, the importance-weighted log-likelihood estimate, reconstruction error.

Numbers are per image, in nats, summed over all C*H*W pixel values (the papers' convention), and
averaged over the test set. ``bits/dim`` divides nats by C*H*W * ln 2 (784 * ln 2 for MNIST).
Papers report the *negative* values (NLL, negative ELBO): lower is better. Every function takes a
``seed`` and is deterministic for it: the seed fixes the dynamic binarization of the test images
and the samples of z. Data may be vaelib.ImageData, a tensor of images, or ``(images, labels)`` (labels
a tensor, a sequence or one int for all); its images must have the model's ``image_shape`` ``(C, H, W)``
(else one ``ValueError`` before any work). Every function runs the model in eval mode and leaves each
of its modules in the mode it found (vaelib.vae.evaluating).

A long IWAE evaluation can stop and resume, or be split into shards run anywhere: :func:`recorded_nll`
keeps each image's bound in a :func:`bounds_record` file as it comes, and :func:`combine_bounds` merges
the files of the shards (what ``vaelib evaluate`` does with ``--bounds``, ``--shard`` and ``--combine``).
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path

import torch

from .bounds import iwae_bound
from .data import ImageData, as_data
from .files import atomic_write
from .precision import autocast, checked_precision, warn_if_emulated
from .validation import matching_images, whole_number
from .vae import built_by_vaelib, evaluating

__all__ = ["evaluate_elbo", "iwae_nll", "iwae_bounds", "summarize_bounds", "image_generator", "bits_per_dim",
           "reconstruction_error", "active_units", "fixed_batches", "BoundsRecord", "file_sha256", "bounds_record",
           "recorded_nll", "shard_indices", "combine_bounds", "check_finite", "NonFiniteBounds",
           "LONG_EVALUATION_SECONDS"]

PIXELS = 784  # MNIST's C*H*W


def bits_per_dim(nats: float, dims: int = PIXELS) -> float:
    """Convert nats per image to bits per dimension: nats / (dims * ln 2), dims = C*H*W."""
    return nats / (dims * math.log(2))


@contextmanager
def _seeded(seed: int, device: torch.device):
    """Seed torch's global RNG inside the block without disturbing the caller's RNG state."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield torch.Generator(device=device).manual_seed(seed)


def fixed_batches(data, batch_size: int, seed: int, device):
    """Batches ``(x, y)`` of ``data`` with the binarization drawn once for the whole split from ``seed``.

    Drawing it up front (not batch by batch) makes the evaluated images independent of the batch
    size and of how many samples of z are drawn: evaluations with different k see the same images.
    """
    if not isinstance(data, ImageData):  # streamed (vaelib.data.StreamingData): in the source's order
        for x, y in data.batches(batch_size):
            yield x.to(device), None if y is None else y.to(device)
        return
    g = torch.Generator(device=data.device).manual_seed(seed)
    x_all = data.prepare(data.images, g)
    for start in range(0, len(data), batch_size):
        y = None if data.labels is None else data.labels[start:start + batch_size].to(device)
        yield x_all[start:start + batch_size].to(device), y


def _checked(model, data, batch_size):
    """The data as ImageData and the batch size, checked once here, before any image meets the model."""
    data = as_data(data)
    if len(data) == 0:
        raise ValueError("the data holds no images to evaluate")
    matching_images("data", data.image_shape, getattr(model, "image_shape", None))
    return data, None if batch_size is None else whole_number("batch_size", batch_size)


@torch.no_grad()
def evaluate_elbo(model, data, batch_size: int = 1000, seed: int = 0, sharded: bool = False) -> dict:
    """Mean ELBO and its parts over ``data``.

    Returns a dict: ``elbo``, ``reconstruction``, ``kl`` (nats per image), ``kl_per_dim`` (list of D
    floats: the average KL of each latent dimension), ``active_units`` (dimensions whose posterior
    mean varies across images, Cov_x(E_q[z_j]) > 0.01, Burda et al. 2015) and ``n``.
    With ``sharded=True`` (a distributed run), ``data`` is this process's shard and the numbers are
    summed over all processes.
    """
    data, batch_size = _checked(model, data, batch_size)
    device = model.device
    d = model.latent_dim
    # one vector of sums: ELBO, reconstruction, KL, then per dimension the KL, sum mu and sum mu^2
    sums = torch.zeros(3 + 3 * d, device=device, dtype=torch.float64)
    with _seeded(seed + 1, device), evaluating(model):
        for x, y in fixed_batches(data, batch_size, seed, device):
            terms = model.elbo_terms(x, y=y)
            mu = model.posterior_mean(x, y).double()
            kl_dims = terms.kl_per_dim.sum(0) if terms.kl_per_dim is not None else torch.zeros(d, device=device)
            sums += torch.cat([torch.stack([terms.value.sum(), terms.reconstruction.sum(), terms.kl.sum()]).double(),
                               kl_dims.double(), mu.sum(0), mu.pow(2).sum(0)])
    n = len(data)
    if sharded:
        from .distributed import all_sum, world_size
        sums, n = all_sum(sums), n * world_size()
    elbo_, rec, kl = (sums[:3] / n).tolist()
    mu_sum, mu_sq = sums[3 + d:3 + 2 * d], sums[3 + 2 * d:]
    variance = (mu_sq - mu_sum.pow(2) / n) / max(n - 1, 1)
    return {"elbo": elbo_, "reconstruction": rec, "kl": kl, "kl_per_dim": (sums[3:3 + d] / n).tolist(),
            "active_units": int((variance > 0.01).sum()), "n": n}


@torch.no_grad()
def active_units(model, data, threshold: float = 0.01, batch_size: int = 1000) -> int:
    """Number of latent dimensions with Cov_x(E_q[z_j | x]) > ``threshold``."""
    data, batch_size = _checked(model, data, batch_size)
    with evaluating(model):
        mus = [model.posterior_mean(x.to(model.device), None if y is None else y.to(model.device))
               for x, y in data.batches(batch_size)]
    return int((torch.cat(mus).var(0) > threshold).sum())


def image_generator(seed: int, index: int, device) -> torch.Generator:
    """The generator of image ``index``'s samples of z: its bound depends on (seed, index) alone, not
    on the batch, the shard or the run it was computed in."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + 1 + index)


@torch.no_grad()
def iwae_bounds(model, data, k: int, seed: int = 0, batch_size: int | None = None, indices=None,
                precision: str = "fp32"):
    """Yield ``(indices, bounds)`` batch by batch: L_k of each image (nats, ``(B,)`` on the CPU).

    The test set's binarization is drawn once from ``seed``; image i's samples of z come from their
    own generator (:func:`image_generator`), so L_k of image i is the same number whichever images
    are evaluated with it, in what order, on which process: an evaluation can stop, resume, or be
    split into shards and combined. ``indices`` (default: all) selects the images to evaluate.
    ``precision="bf16"`` runs the networks under bfloat16 autocast (log weights stay float32).
    The model is in eval mode while each batch is computed and in its own mode between batches, so a
    caller that stops early (or never resumes) finds it as it was.
    """
    k = whole_number("k", k)
    data, batch_size = _checked(model, data, batch_size)
    checked_precision(precision)
    device = model.device
    warn_if_emulated(device, precision)
    if batch_size is None:
        batch_size = max(1, 16384 // min(k, 16384))
    if not isinstance(data, ImageData):
        raise ValueError("iwae_bounds scores images by their index: pass them as a tensor or vaelib.ImageData, "
                         "not a Dataset or DataLoader")
    x_all = data.prepare(data.images, torch.Generator(device=data.device).manual_seed(seed))
    indices = torch.arange(len(data)) if indices is None else torch.as_tensor(indices, dtype=torch.long)
    # Channels-last lets oneDNN run convolutions 1.3-1.6x faster on CPUs (the record model at k = 5000;
    # the conv VAE at k = 100 on 1,000 images: 11.3 -> 8.5 s, the same NLL to 1e-6). The model gets
    # the usual layout back at the end.
    own = device.type == "cpu" and built_by_vaelib(model)  # a user's network keeps its layout (its view()s need it)
    if own:
        model.to(memory_format=torch.channels_last)
    try:
        for start in range(0, len(indices), batch_size):
            idx = indices[start:start + batch_size]
            x = x_all[idx.to(x_all.device)].to(device)
            y = None if data.labels is None else data.labels[idx.to(data.labels.device)].to(device)
            generators = [image_generator(seed, int(i), device) for i in idx]
            with autocast(device, precision), evaluating(model):
                bound = iwae_bound(model, x, k, generator=generators, y=y)
            yield idx, bound.float().cpu()
    finally:
        if own:
            model.to(memory_format=torch.contiguous_format)


def summarize_bounds(bounds: torch.Tensor, image_shape, k: int, seed: int) -> dict:
    """NLL (nats, -mean L_k), bits/dim and the standard error of the mean over the given per-image bounds."""
    bounds = torch.as_tensor(bounds).double()
    nll = -bounds.mean().item()
    std_error = bounds.std().item() / math.sqrt(len(bounds)) if len(bounds) > 1 else float("nan")
    return {"nll": nll, "bits_per_dim": bits_per_dim(nll, math.prod(image_shape)), "std_error": std_error,
            "k": k, "seed": seed, "n": len(bounds)}


@torch.no_grad()
def iwae_nll(model, data, k: int = 5000, batch_size: int | None = None, seed: int = 0,
             progress: bool = True, per_image: bool = False, precision: str = "fp32") -> dict:
    """Estimate the test negative log-likelihood with the importance-weighted bound L_k.

    Returns a dict: ``nll`` (nats, -mean L_k), ``bits_per_dim`` (nats / (C*H*W ln 2)), ``std_error``
    (of the mean over images, nats), ``k``, ``seed``, ``n``; with ``per_image=True`` also
    ``per_image``, the ``(n,)`` negative bounds. The seed fixes the test set's binarization (the
    same for every k and batch size) and, separately, each image's samples of z (the same for every
    batch size: see :func:`iwae_bounds`). ``batch_size`` images are processed at a time (default:
    enough that a chunk of samples decodes about 16,384 images); memory does not grow with ``k``.
    """
    from tqdm.auto import tqdm

    data, _ = _checked(model, data, batch_size)
    bounds = []
    with tqdm(total=len(data), desc=f"IWAE k={k}", unit="img", disable=not progress, leave=False) as bar:
        for idx, bound in iwae_bounds(model, data, k, seed, batch_size, precision=precision):
            bounds.append(bound)
            bar.update(len(idx))
    bounds = torch.cat(bounds)
    result = summarize_bounds(bounds, data.image_shape, k, seed)
    if per_image:
        result["per_image"] = (-bounds.double()).float()
    return result


class BoundsRecord:
    """Per-image bounds of one evaluation, kept in a JSON file as they are computed.

    The file names what was evaluated (the checkpoint's SHA-256, k, seed, binarization, data set,
    precision, number of test images): a run that stops continues where it stopped, shards of one
    evaluation (``shard=(i, n)``: the images whose index is i mod n) run separately, even on
    different machines, and :meth:`combine` merges their files, refusing any that measured something
    else. Precision is how a file was computed, not what: one file holds one precision, but shards
    computed at different precisions combine (machines differ in whether bf16 pays; it moves the
    bounds far less than their standard error, benchmarks/RESULTS.md).
    """

    FORMAT = "vaelib-iwae-bounds"

    def __init__(self, path, meta: dict):
        self.path, self.meta, self.bounds = Path(path), dict(meta), {}
        if self.path.exists():
            stored = self.read(self.path)
            different = [f"{key} {stored['meta'].get(key)!r} in the file vs {value!r} now"
                         for key, value in self.meta.items() if key != "shard" and stored["meta"].get(key) != value]
            if different:
                raise ValueError(f"{self.path} holds bounds of another evaluation ({'; '.join(different)}): "
                                 f"choose another bounds file")
            self.bounds = stored["bounds"]

    @classmethod
    def read(cls, path) -> dict:
        """A bounds file's contents: ``{"format", "meta", "bounds": {image index: L_k}}``; ``ValueError`` if unreadable."""
        try:
            stored = json.loads(Path(path).read_text())
            stored["bounds"] = {int(i): float(v) for i, v in stored["bounds"].items()}
            if stored.get("format") != cls.FORMAT:
                raise ValueError
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(f"{path} is not a readable bounds file (vaelib.evaluation.BoundsRecord)") from None
        return stored

    def save(self) -> None:
        with atomic_write(self.path, "w") as f:
            json.dump({"format": self.FORMAT, "meta": self.meta,
                       "bounds": {str(i): v for i, v in sorted(self.bounds.items())}}, f)

    def add(self, indices, bounds) -> None:
        self.bounds.update({int(i): float(b) for i, b in zip(indices, bounds)})

    @classmethod
    def combine(cls, paths) -> tuple[dict, dict]:
        """``(meta, bounds)`` of several files of one evaluation; ``ValueError`` if they disagree.

        ``meta["precision"]`` names every precision the files were computed at (``"bf16+fp32"``).
        """
        stored = [cls.read(p) for p in paths]
        meta = {k: v for k, v in stored[0]["meta"].items() if k not in ("shard", "precision")}
        for path, other in zip(paths[1:], stored[1:]):
            different = [key for key in meta if other["meta"].get(key) != meta[key]]
            if different:
                raise ValueError(f"{path} measured something else than {paths[0]} ({', '.join(different)} differ): "
                                 f"combine only the shards of one evaluation")
        meta["precision"] = "+".join(sorted({str(other["meta"].get("precision")) for other in stored}))
        bounds = {}
        for other in stored:
            bounds.update(other["bounds"])
        return meta, bounds


def file_sha256(path) -> str:
    import hashlib
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@torch.no_grad()
def reconstruction_error(model, data, batch_size: int = 1000, seed: int = 0) -> dict:
    """Squared error between images and their reconstructions (posterior mean decoded).

    Returns ``mse_sum`` (summed over pixels, mean over images) and ``mse`` (per pixel value).
    """
    data, batch_size = _checked(model, data, batch_size)
    total = 0.0
    with evaluating(model):
        for x, y in fixed_batches(data, batch_size, seed, model.device):
            total += (model.reconstruct(x, y) - x).pow(2).sum().item()
    per_image = total / len(data)
    return {"mse_sum": per_image, "mse": per_image / math.prod(data.image_shape)}


# An evaluation that can stop and resume, or be split into shards run anywhere and combined: each
# image's bound is kept in a BoundsRecord as it comes (see BoundsRecord and iwae_bounds).

LONG_EVALUATION_SECONDS = 60.0  # evaluations expected to take longer say so after their first batch
QUICKER = ("a subset of the images and a smaller k give a quick estimate of the NLL, a BoundsRecord lets an "
           "interrupted evaluation continue")


class NonFiniteBounds(ValueError):
    """Per-image bounds that are NaN or infinite: there is no NLL to report."""


def check_finite(bounds, source: str) -> None:
    """Refuse bounds of NaN or infinity (:class:`NonFiniteBounds`), naming how many, the first, and
    ``source`` (where they came from: "the model", "the shard files")."""
    bad = (~torch.isfinite(torch.as_tensor(bounds))).nonzero().flatten().tolist()
    if bad:
        raise NonFiniteBounds(f"{len(bad):,} of {len(bounds):,} per-image bounds from {source} are not finite (NaN "
                              f"or infinite; first at position {bad[0]}), so there is no NLL to report: evaluate "
                              f"with precision fp32, and check the model (do its samples look right?)")


def shard_indices(n_images: int, shard: tuple[int, int] | None = None) -> list[int]:
    """The images of shard ``(i, n)``: those whose index is i mod n (all ``n_images`` for ``None``)."""
    if shard is None:
        return list(range(n_images))
    indices = list(range(shard[0], n_images, shard[1]))
    if not indices:
        raise ValueError(f"shard {shard[0]}/{shard[1]} of {n_images:,} images holds no image (a shard i/n holds "
                         f"the images whose index is i mod n): use fewer shards, or more images")
    return indices


def bounds_record(path, checkpoint_path, data, k: int, seed: int = 0, precision: str = "fp32",
                  shard: tuple[int, int] | None = None) -> BoundsRecord:
    """The :class:`BoundsRecord` in file ``path`` of evaluating the checkpoint file ``checkpoint_path``
    on ``data`` (vaelib.ImageData: its name, size and binarization are recorded) with ``k`` samples
    and ``seed``: the bounds the file already holds, or none; a ``ValueError`` if it holds another
    evaluation's."""
    return BoundsRecord(path, {
        "checkpoint_sha256": file_sha256(checkpoint_path), "k": k, "seed": seed, "binarize": data.binarize,
        "dataset": data.name, "n_images": len(data), "precision": precision, "image_shape": list(data.image_shape),
        "shard": None if shard is None else list(shard)})


def recorded_nll(model, data, k: int, indices=None, record: BoundsRecord | None = None, seed: int = 0,
                 batch_size: int | None = None, precision: str = "fp32", progress: bool = True,
                 quicker: str = QUICKER) -> dict:
    """:func:`iwae_nll` of the images ``indices`` (default: all), computing only the bounds ``record``
    lacks and saving them into it as they come (at least every 10 s, and when interrupted).

    Returns what :func:`summarize_bounds` returns, over all of ``indices``. An evaluation expected to
    take over :data:`LONG_EVALUATION_SECONDS` writes its expected time after its first batch, with
    ``quicker`` (how to get an answer sooner). Bounds that are not finite are a :class:`NonFiniteBounds`.
    """
    data, _ = _checked(model, data, batch_size)
    indices = list(range(len(data))) if indices is None else list(indices)
    bounds = {} if record is None else record.bounds
    todo = [i for i in indices if i not in bounds]
    _collect(iwae_bounds(model, data, k, seed, batch_size, todo, precision), bounds, len(todo), k, record,
             progress, quicker)
    mine = torch.tensor([bounds[i] for i in indices])
    check_finite(mine, "the model")
    return summarize_bounds(mine, data.image_shape, k, seed)


def _collect(batches, bounds: dict, total: int, k: int, record, progress: bool, quicker: str,
             every: float = 10.0) -> None:
    """Collect per-image bounds into ``bounds``, saving ``record`` at least every ``every`` seconds."""
    import time

    from tqdm.auto import tqdm
    start = last = time.monotonic()
    try:
        with tqdm(total=total, desc=f"IWAE k={k}", unit="img", leave=False, disable=not progress) as bar:
            for batch, (idx, bound) in enumerate(batches):
                bounds.update({int(i): float(b) for i, b in zip(idx, bound)})
                if batch == 0 and total > len(idx):
                    _estimate(bar, time.monotonic() - start, len(idx), total, k, quicker)
                bar.update(len(idx))
                if record is not None and time.monotonic() - last > every:
                    record.save()
                    last = time.monotonic()
    finally:  # also when interrupted: what was computed is kept, and the next run starts from there
        if record is not None:
            record.save()


def _estimate(bar, seconds: float, done: int, total: int, k: int, quicker: str = QUICKER) -> None:
    """Before a long evaluation goes on: its expected time, from its first batch."""
    if seconds / done * (total - done) > LONG_EVALUATION_SECONDS:
        hours, minutes = divmod(round(seconds / done * total / 60), 60)
        when = f"{hours} h {minutes} min" if hours else f"{max(minutes, 1)} min"
        bar.write(f"estimated time: about {when} for {total:,} images at k={k} ({seconds / done:.2f} s per image on "
                  f"the first {done:,}); {quicker}")


def combine_bounds(paths) -> dict:
    """The NLL of one evaluation from the bounds files of its shards (:meth:`BoundsRecord.combine`).

    Returns what :func:`summarize_bounds` returns, with ``files`` (how many) and ``precision`` (every
    precision the files were computed at, ``"bf16+fp32"``). A ``ValueError`` when the files measured
    different things or miss images; a :class:`NonFiniteBounds` when their bounds are not finite.
    """
    meta, bounds = BoundsRecord.combine(paths)
    missing = [i for i in range(meta["n_images"]) if i not in bounds]
    if missing:
        raise ValueError(f"the files cover {len(bounds):,} of {meta['n_images']:,} images ({len(missing):,} missing, "
                         f"e.g. image {missing[0]}): evaluate the missing shards into bounds files, then combine again")
    combined = torch.tensor([bounds[i] for i in range(meta["n_images"])])
    check_finite(combined, "the shard files")
    return {**summarize_bounds(combined, meta["image_shape"], meta["k"], meta["seed"]), "files": len(paths),
            "precision": meta["precision"]}
