"""Training a VAE: ``fit``, the loop notebook 05 writes out by hand, in small named pieces.

    fit(model, data, test, epochs=10)        # data: vaelib.ImageData, a tensor, or (images, labels)

One epoch (:func:`train_epoch`) is the hand-written loop: batches, the objective's loss (the ELBO
by default, vaelib.objectives), backward, an optional gradient clip, an Adam step. ``fit`` repeats
it, evaluates the test ELBO after each epoch (:func:`test_record`), can continue a saved run
(:func:`resume`), and leaves everything else to callbacks (vaelib.callbacks): the progress bar,
the NaN guard, checkpoints and ``history.csv``, the posterior-collapse warning, sample grids,
TensorBoard.
"""
from __future__ import annotations

import csv
import math
import os
import re
import time
import warnings
from pathlib import Path

import torch

from . import distributed
from .callbacks import (Checkpoints, CollapseWarning, EpochEnd, NaNGuard, ProgressBar, Run,  # noqa: F401
                        TrainingDiverged)
from .checkpoints import CheckpointError, data_info, load_checkpoint, state_dict_mismatch
from .data import as_data
from .evaluation import evaluate_elbo
from .files import atomic_write
from .objectives import make_objective
from .precision import autocast, checked_precision, warn_if_emulated
from .settings import fast_mode  # noqa: F401  (vaelib.fast_mode)
from .threads import cpu_threads
from .validation import matching_images, positive_number, whole_number
from .vae import check_networks

__all__ = ["fit", "train_epoch", "test_record", "resume", "make_adam", "match_layouts", "training_layout",
           "History", "TrainingDiverged", "pick_device", "seed_everything", "fast_mode"]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA, then Apple's MPS, then the CPU; ``ValueError`` if unavailable."""
    if device is not None and str(device) != "auto":
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"unknown device {str(device)!r}: use cpu, cuda, cuda:N, mps or auto") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} was asked for but CUDA is not available here: use cpu (or auto)")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
        if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError("device 'mps' (Apple GPU) was asked for but is not available here: use cpu (or auto)")
        if device.type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"device {str(device)!r} is not supported by vaelib: use cpu, cuda, cuda:N, mps or auto")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed torch's CPU and GPU generators (vaelib uses no other source of randomness)."""
    torch.manual_seed(seed)


def make_adam(params, lr: float) -> torch.optim.Optimizer:
    """Adam with the fused update where this torch has one for the device (CUDA; CPU since torch 2.4).

    The fused kernel updates each parameter in one pass instead of a dozen element-wise ops: on 2
    CPU cores it makes a step of the 784-400-20 MLP about 30% faster (benchmarks/RESULTS.md).
    """
    params = list(params)
    try:
        optimizer = torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or torch version
        optimizer = torch.optim.Adam(params, lr=lr)
    for group in optimizer.param_groups:
        group["initial_lr"] = lr  # what fit's lr_schedule multiplies
    return optimizer


class History(list):
    """Per-epoch records (dicts) of a training run; ``history["test_elbo"]`` gives one column."""

    def __getitem__(self, key):
        if isinstance(key, str):
            return [row.get(key) for row in self]
        return super().__getitem__(key)

    def to_csv(self, path: str | os.PathLike) -> None:
        keys = [k for k in (self[0].keys() if self else []) if not isinstance(self[0][k], list)]
        with atomic_write(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self)


def train_epoch(run: Run, objective, batch_size: int, seed: int = 0, clip_grad: float | None = None,
                precision: str = "fp32", callbacks=(), lr_schedule=None) -> dict:
    """One pass over ``run.train`` with shuffled batches; returns the epoch's ``train_*`` averages.

    The epoch's seed (``seed`` and the epoch number) fixes the shuffling, the dynamic binarization
    and every sample of z, so a resumed run repeats exactly the epochs an uninterrupted one makes.
    (Each process of a distributed run draws its own numbers: the rank is part of the seed.)
    """
    model, optimizer, data, device = run.model, run.optimizer, run.train, run.model.device
    model.train()
    epoch_seed = seed * 100003 + run.epoch + 1_000_003 * distributed.rank()
    seed_everything(epoch_seed)
    g = torch.Generator(device=data.device).manual_seed(epoch_seed)
    sums, betas = {}, []
    for run.batch, (x, y) in enumerate(data.batches(batch_size, shuffle=True, generator=g)):
        x, y = x.to(device, non_blocking=True), None if y is None else y.to(device, non_blocking=True)
        try:
            with autocast(device, precision):
                estimate = objective(model, x, y, run.step)
        except ValueError as err:
            _diverged_if_invalid(err, run, callbacks, run.step + 1)
            raise
        optimizer.zero_grad(set_to_none=True)
        estimate.loss.backward()
        if clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        if lr_schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * lr_schedule(run.step)
        optimizer.step()
        for name, value in estimate.sums.items():
            sums[name] = sums.get(name, 0) + value.detach().float()
        if estimate.beta is not None:
            betas.append(estimate.beta)
        run.step += 1
        for callback in callbacks:
            callback.on_batch_end(run, estimate)
    record = {"epoch": run.epoch + 1, "step": run.step}
    if betas:
        record["beta"] = sum(betas) / len(betas)
    values = distributed.all_sum(torch.stack(list(sums.values()))).div(len(data) * distributed.world_size()).tolist()
    record.update({f"train_{name}": value for name, value in zip(sums, values)})
    return record


def _invalid_values(err: ValueError) -> str | None:
    """What went wrong, if ``err`` is torch.distributions' argument validation finding NaN, infinite or
    out-of-range values (not a shape error, nor any other ValueError), e.g. ``"Normal's scale became NaN,
    infinite or out of range"``; else ``None``.

    A diverging network can fail there before its loss exists: a huge logvar makes the encoder's scale
    exp(logvar / 2) overflow, or underflow to 0, which Normal refuses.
    """
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    raised_in = os.path.dirname(tb.tb_frame.f_code.co_filename) if tb is not None else ""
    torch_distributions = os.path.dirname(torch.distributions.distribution.__file__)
    if raised_in != torch_distributions or "found invalid values" not in str(err):
        return None
    message = str(err).splitlines()[0]
    parameter = re.match(r"Expected parameter (\w+) .* of distribution (\w+)\(", message)
    if parameter:
        return f"{parameter.group(2)}'s {parameter.group(1)} became NaN, infinite or out of range"
    value = re.search(r"of the distribution (\w+)\(", message)
    return f"a value given to {value.group(1) if value else 'a distribution'} became NaN, infinite or left its support"


def _diverged_if_invalid(err: ValueError, run: Run, callbacks, step: int, during: str = "") -> None:
    """Turn torch.distributions' refusal of invalid values into :class:`TrainingDiverged`, as the NaN guard
    would (weights of the last finished epoch restored); return for any other ``ValueError``."""
    what = _invalid_values(err)
    if what is None:
        return
    what += during
    for callback in callbacks:
        if isinstance(callback, NaNGuard):
            callback.diverged(run, what, step)
    raise TrainingDiverged(f"{what} at epoch {run.epoch + 1}, step {step} (no NaNGuard among the callbacks: the "
                           f"weights are as they were then). Try a lower learning rate or gradient clipping") from None


def test_record(model, test, batch_size: int = 1000, seed: int = 0) -> dict:
    """The test ELBO, its parts and the active units, as ``test_*`` entries of a history row
    (summed over the processes' shards of ``test`` in a distributed run)."""
    ev = evaluate_elbo(model, test, batch_size, seed=seed, sharded=distributed.active())
    return dict(test_elbo=ev["elbo"], test_reconstruction=ev["reconstruction"], test_kl=ev["kl"],
                active_units=ev["active_units"], kl_per_dim=ev["kl_per_dim"])


def resume(run: Run, path, lr: float) -> None:
    """Continue the run saved in ``path``: weights, optimizer state, history, epoch and step counts.

    ``lr`` replaces the saved learning rate (resuming with a lower one is how a run is finished).
    """
    ckpt = load_checkpoint(path, map_location=run.model.device)
    mismatch = state_dict_mismatch(run.model, ckpt["state_dict"])
    if mismatch:
        raise CheckpointError(f"cannot resume from {path}: its weights do not fit this model ({mismatch})")
    run.model.load_state_dict(ckpt["state_dict"])
    if ckpt.get("optimizer"):
        run.optimizer.load_state_dict(ckpt["optimizer"])
        match_layouts(run.optimizer)
        for group in run.optimizer.param_groups:  # the saved lr would silently win
            group["lr"] = group["initial_lr"] = lr
    run.history = History(ckpt.get("history", []))
    run.epoch = int(ckpt.get("epoch", len(run.history)))
    run.step = run.epoch * run.steps_per_epoch
    if ckpt.get("best_test_elbo") is not None:
        run.best = ckpt["best_test_elbo"]
    if run.epochs <= run.epoch:
        warnings.warn(f"nothing to train: the model has already trained {run.epoch} epochs and epochs={run.epochs} "
                      f"is the total; raise epochs to continue", stacklevel=3)


def match_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give each parameter's optimizer state (Adam's moments) the parameter's memory layout.

    Fused Adam walks a parameter and its moments as if they were laid out alike; a checkpoint saved
    in the other layout (channels-last on the CPU, contiguous elsewhere) would silently corrupt the
    update (measured on the CPU with torch 2.14: three steps off by up to 0.04).
    """
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def training_layout(model, device) -> torch.memory_format:
    """Channels-last for a model with convolutions trained by one process on the CPU, else contiguous.

    oneDNN's convolutions run faster channels-last: the default conv VAE's step 15-30% in bf16 (batch
    128-512) and about 10% in fp32 on 2 cores (benchmarks/RESULTS.md). Not under DDP, whose gradient
    buckets expect contiguous gradients, and not on GPUs, where it was not measured.
    """
    convolutional = any(p.dim() == 4 for p in model.parameters())
    if device.type == "cpu" and convolutional and not distributed.active():
        return torch.channels_last
    return torch.contiguous_format


def _fit_shapes(model, data, test=None) -> None:
    """A model meets its data: same image shape, labels where it is conditional; the test set is checked
    here too, before the first step, not after a whole epoch of training."""
    if getattr(model, "image_shape", None) is None:
        model.image_shape = data.image_shape
    elif tuple(model.image_shape) != data.image_shape:
        raise ValueError(f"the model is built for images {tuple(model.image_shape)}, the data holds {data.image_shape}: "
                         f"build the model with image_shape={data.image_shape}, or resize the data (image_size=)")
    if test is not None:
        matching_images("test", test.image_shape, model.image_shape)
    if model.num_classes and data.labels is None:
        raise ValueError("this VAE is conditional on labels: pass data with labels, e.g. fit(model, (images, labels))")
    model.data_info = data_info(data)  # what vaelib.save records
    check_networks(model, *data.first(2))  # the user's networks fit the data, or one line saying why


def _checked(train, test, epochs, batch_size, lr, clip_grad, precision, resume_from, lr_schedule=None,
             objective=None, run_dir=None):
    """fit's data, numbers, functions and folder, checked before anything trains: one ValueError naming the
    argument and the fix."""
    train, test = as_data(train), None if test is None else as_data(test)
    epochs, batch_size = whole_number("epochs", epochs, 0), whole_number("batch_size", batch_size)
    positive_number("lr", lr)
    if clip_grad is not None:
        positive_number("clip_grad", clip_grad)
    checked_precision(precision)
    _callable("lr_schedule", lr_schedule, "a function f(step) giving the learning rate's factor",
              "vaelib.schedules.WarmupCosine(total_steps)")
    _callable("objective", objective, "an objective object, called as objective(model, x, y, step)",
              "vaelib.objectives.IWAEObjective(k=5) or ELBOObjective(beta=...) (or pass iwae_k=, beta= instead)")
    if run_dir is not None:
        _checked_folder("run_dir", Path(run_dir))
    if len(train) == 0:
        raise ValueError("the training data holds no images: check its subset or source")
    if test is not None and len(test) == 0:
        raise ValueError("the test data holds no images: pass test=None to train without a test set")
    if epochs == 0 and resume_from is None:
        raise ValueError("epochs=0 trains nothing: epochs is the total number of epochs (at least 1)")
    return train, test, epochs, batch_size


def _callable(name: str, value, what: str, example: str) -> None:
    """``value`` is None or a function/object to call, not a name of one nor a class to make it from."""
    if value is None or (callable(value) and not isinstance(value, type)):
        return
    if isinstance(value, type):  # WarmupCosine instead of WarmupCosine(...): it would fail at the first step
        raise ValueError(f"{name}={value.__name__} is a class: pass an instance made from it, e.g. {example}")
    raise ValueError(f"{name} must be {what}, e.g. {example}; got {value!r}")


def _checked_folder(name: str, folder: Path) -> None:
    """Refuse a folder that is an existing file, or lies below one, before anything trains
    (Checkpoints would fail to create it only at the start of training, with a bare OSError)."""
    for path in (folder, *folder.parents):
        if path.exists():
            if not path.is_dir():
                where = "is a file" if path == folder else f"lies below the file {path}"
                raise ValueError(f"{name} {folder} {where}, not a folder: "
                                 f"pass a folder for the checkpoints and history.csv")
            return


def _standard_callbacks(run_dir, progress, collapse_threshold, on_epoch_end) -> list:
    # the user's on_epoch_end runs before the checkpoints, so that what it adds to a row is saved with it
    return [NaNGuard(run_dir=run_dir), ProgressBar(progress),
            *([EpochEnd(on_epoch_end)] if on_epoch_end is not None else []),
            *([Checkpoints(run_dir)] if run_dir is not None else []),
            *([CollapseWarning(collapse_threshold, run_dir)] if collapse_threshold is not None else [])]


def fit(model, train, test=None, *, epochs: int = 10, lr: float = 1e-3, batch_size: int = 128, beta=1.0,
        iwae_k: int = 1, free_bits: float = 0.0, objective=None, device=None, seed: int = 0, clip_grad: float | None = None,
        precision: str = "fp32", compile: bool = False, lr_schedule=None, run_dir=None, resume_from=None,
        train_args: dict | None = None, collapse_threshold: float | None = None, callbacks=(),
        eval_batch_size: int = 1000, progress: bool = True, on_epoch_end=None, threads: int | None = None) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs with Adam; return the :class:`History`.

    Args:
        train, test: vaelib.ImageData, a tensor of images ``(N, C, H, W)`` in [0, 1] (or uint8), or
            ``(images, labels)``. ``test`` (optional) is evaluated after every epoch; its images must have
            the model's ``image_shape`` (checked before the first step).
        epochs: the total number of epochs, counting those of a resumed run.
        beta: a number >= 0, or a schedule ``beta(step)`` from vaelib.schedules (step = optimizer steps;
            its first value is checked before training, a negative value later stops training).
        iwae_k: with k > 1, maximize the importance-weighted bound L_k instead (needs beta = 1).
        free_bits: count each latent dimension's KL (batch mean) as at least this many nats.
        objective: any objective object (vaelib.objectives, e.g. ``IWAEObjective(k=5)``; called as
            ``objective(model, x, y, step)``) instead of the one ``beta``/``iwae_k`` describe.
        device: ``None`` picks CUDA, then MPS, then CPU (the data's tensors move there once).
            Started by ``torchrun`` (vaelib.distributed), each process trains on its shard of the data
            with DistributedDataParallel, and the callbacks run on rank 0.
        seed: seeds the shuffling, dynamic binarization and samples of z per epoch, so a resumed
            run repeats the epochs an uninterrupted run would have made.
        clip_grad: clip the gradient norm to this value (``None``: no clipping).
        precision: ``"fp32"``, or ``"bf16"`` for bfloat16 autocast of the forward pass (faster on GPUs and
            on CPUs with AMX/AVX-512-BF16, slower elsewhere: see vaelib.precision; weights, optimizer and
            loss sums stay float32).
        lr_schedule: a function ``f(step)``, the factor the learning rate is multiplied by at each step
            (e.g. ``vaelib.schedules.WarmupCosine(total_steps)``).
        compile: run the ELBO through ``torch.compile`` (falls back to eager with a warning); a string
            is the compile mode (``"reduce-overhead"``: CUDA graphs).
        run_dir: write ``checkpoint_last.pth``, ``checkpoint_best.pth`` and ``history.csv`` in this folder
            (created if missing; an existing file there is refused).
        resume_from: a checkpoint to continue (``lr`` replaces its learning rate).
        collapse_threshold: warn when the test KL per latent dimension falls below it (nats).
        callbacks: more vaelib.callbacks (e.g. ``SampleGrid``, ``TensorBoard``).
        on_epoch_end: called as ``on_epoch_end(record, model)`` after each epoch.
        threads: torch's CPU threads for this run (``None``: torch's default, one per core); 1 can be
            several times faster on a busy or shared machine (vaelib.threads). Restored afterwards.

    Returns:
        One dict per epoch: ``epoch``, ``step``, ``beta``, ``train_elbo``, ``train_reconstruction``,
        ``train_kl`` (``train_iwae_bound`` with ``iwae_k > 1``), ``test_elbo``, ``test_reconstruction``,
        ``test_kl``, ``active_units``, ``kl_per_dim``, ``seconds``. Nats per image, higher is better.

    Raises:
        ValueError: a wrong argument, named in one line, before the first optimizer step.
        TrainingDiverged: the loss became NaN/inf, or torch.distributions refused the networks' outputs
            (NaN, infinite or out of range); the model holds the last good epoch's weights and the
            checkpoints on disk are left as they were.
    """
    with cpu_threads(threads):
        return _fit(model, train, test, epochs, lr, batch_size, beta, iwae_k, free_bits, objective, device, seed,
                    clip_grad, precision, compile, lr_schedule, run_dir, resume_from, train_args, collapse_threshold,
                    callbacks, eval_batch_size, progress, on_epoch_end)


def _fit(model, train, test, epochs, lr, batch_size, beta, iwae_k, free_bits, objective, device, seed, clip_grad,
         precision, compile, lr_schedule, run_dir, resume_from, train_args, collapse_threshold, callbacks,
         eval_batch_size, progress, on_epoch_end) -> History:
    train, test, epochs, batch_size = _checked(train, test, epochs, batch_size, lr, clip_grad, precision, resume_from,
                                               lr_schedule, objective, run_dir)
    objective = objective or make_objective(beta, iwae_k, compile, free_bits)
    device = pick_device(device)
    warn_if_emulated(device, precision)
    model.to(device)
    _fit_shapes(model, train, test)
    if distributed.active():  # each process trains on its shard; DDP averages the gradients
        train, test = distributed.shard(train), None if test is None else distributed.shard(test)
    train, test = train.to(device), None if test is None else test.to(device)  # moved once, batches by indexing
    model.to(memory_format=training_layout(model, device))  # before Adam sees the parameters
    run = Run(model, make_adam(model.parameters(), lr), epochs, History(), train=train, test=test,
              train_args=train_args, steps_per_epoch=math.ceil(len(train) / batch_size))
    if resume_from is not None:
        resume(run, resume_from, lr)
    if distributed.active():
        objective = distributed.DistributedObjective(model, objective)
    callbacks = _standard_callbacks(run_dir, progress, collapse_threshold, on_epoch_end) + list(callbacks)
    if not distributed.is_main():  # the guard runs everywhere, everything that writes or prints on rank 0
        callbacks = [c for c in callbacks if isinstance(c, NaNGuard)]
    for callback in callbacks:
        callback.on_fit_start(run)
    try:
        for _ in range(run.epoch, epochs):
            t0 = time.perf_counter()
            record = train_epoch(run, objective, batch_size, seed, clip_grad, precision, callbacks, lr_schedule)
            if test is not None:
                try:  # the last step's update is checked here first: it may have sent the weights off
                    record.update(test_record(model, test, eval_batch_size, seed))
                except ValueError as err:
                    _diverged_if_invalid(err, run, callbacks, run.step, " in the test evaluation")
                    raise
            record["seconds"] = time.perf_counter() - t0
            run.history.append(record)
            run.epoch += 1
            for callback in callbacks:
                callback.on_epoch_end(run, record)
            if run.stop:  # a callback ended training early
                break
    finally:
        for callback in callbacks:
            callback.on_fit_end(run)
        model.to(memory_format=torch.contiguous_format)  # hand the model back in the usual layout
    return run.history
