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
import dataclasses
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
from .data import ImageData, as_data
from .deprecation import moved_names
from .evaluation import evaluate_elbo
from .files import atomic_write
from .objectives import ELBOObjective, IWAEObjective, make_objective
from .precision import autocast, warn_if_emulated
from .runs import RunConfig
from .schedules import LinearWarmup, WarmupCosine
from .threads import cpu_threads
from .validation import matching_images
from .vae import VAE, built_by_vaelib, check_networks

BUILT_IN_OBJECTIVES = (ELBOObjective, IWAEObjective)  # a VAE's test record is its test ELBO, nothing more

__all__ = ["fit", "RunConfig", "train_epoch", "test_record", "objective_record", "resume", "make_adam",
           "match_layouts", "training_layout", "History", "TrainingDiverged", "pick_device", "seed_everything"]


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
                precision: str = "fp32", callbacks=(), lr_schedule=None, skip_grad: float | None = None) -> dict:
    """One pass over ``run.train`` with shuffled batches; returns the epoch's ``train_*`` averages (and with
    ``clip_grad`` / ``skip_grad``, the counts ``clipped_steps`` / ``skipped_steps``: vaelib.RunConfig).

    The epoch's seed (``seed`` and the epoch number) fixes the shuffling, the dynamic binarization
    and every sample of z, so a resumed run repeats exactly the epochs an uninterrupted one makes.
    (Each process of a distributed run draws its own numbers: the rank is part of the seed.)
    """
    model, optimizer, data = run.model, run.optimizer, run.train
    device = run.device or next(model.parameters()).device
    model.train()
    epoch_seed = seed * 100003 + run.epoch + 1_000_003 * distributed.rank()
    seed_everything(epoch_seed)
    g = torch.Generator(device=data.device).manual_seed(epoch_seed)
    sums, betas, loss_sum = {}, [], 0.0
    clipped, skipped, norms = torch.zeros((), dtype=torch.long, device=device), 0, []
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
        skip = False
        if clip_grad is not None or skip_grad is not None:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf if clip_grad is None else clip_grad)
            if clip_grad is not None:
                clipped += norm > clip_grad        # counted on the device: no sync per step
            if skip_grad is not None:            # the norm is read on the host: a skip is a branch
                norms.append(norm.item())
                skip = not norms[-1] <= skip_grad      # above the threshold, or NaN / inf
                skipped += skip
        if lr_schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * lr_schedule(run.step)
        if not skip:
            optimizer.step()
        for name, value in estimate.sums.items():
            sums[name] = sums.get(name, 0) + value.detach().float()
        loss_sum = loss_sum + estimate.loss.detach().float() * len(x)  # no sync: summed on the device
        if estimate.beta is not None:
            betas.append(estimate.beta)
        run.step += 1
        for callback in callbacks:
            callback.on_batch_end(run, estimate)
    record = {"epoch": run.epoch + 1, "step": run.step}
    if clip_grad is not None:
        record["clipped_steps"] = int(clipped)
    if skip_grad is not None:
        record["skipped_steps"] = skipped
        if norms and skipped == len(norms):
            finite = [n for n in norms if math.isfinite(n)]
            seen = f"from {min(finite):.3g} to {max(finite):.3g}" if finite else "all NaN or infinite"
            raise TrainingDiverged(f"every one of epoch {run.epoch + 1}'s {len(norms)} updates was skipped: their "
                                   f"gradient norms ran {seen}, above skip_grad={skip_grad:g}; training had stalled "
                                   f"(openai/vdvae #25). Raise skip_grad above the typical norm, or drop it")
    if betas:
        record["beta"] = sum(betas) / len(betas)
    if not BOUNDS & set(sums):  # the loss is what says how training goes when no bound is reported
        sums["loss"] = loss_sum
    if sums:
        values = distributed.all_sum(torch.stack(list(sums.values()))).div(len(data) * distributed.world_size()).tolist()
        record.update({f"train_{name}": value for name, value in zip(sums, values)})
    return record


BOUNDS = {"elbo", "iwae_bound"}  # sums that are a bound on log p(x): "best" prefers them to a loss


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
    ckpt = load_checkpoint(path, map_location=run.device or next(run.model.parameters()).device)
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
    best = ckpt.get("best")
    if best:  # format 3: the metric and its value
        run.best_metric = (best["metric"], best["higher_is_better"])
        run.best = best["value"] if best["higher_is_better"] else -best["value"]
    elif ckpt.get("best_test_elbo") is not None:
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
    """Channels-last for vaelib's own conv networks trained by one process on the CPU, else contiguous.

    A network vaelib did not build keeps its memory format: a user's ``h.view(B, -1)`` assumes it.

    oneDNN's convolutions run faster channels-last: the default conv VAE's step 15-30% in bf16 (batch
    128-512) and about 10% in fp32 on 2 cores (benchmarks/RESULTS.md). Not under DDP, whose gradient
    buckets expect contiguous gradients, and not on GPUs, where it was not measured.
    """
    own = built_by_vaelib(model)
    convolutional = any(p.dim() == 4 for p in model.parameters())
    if own and device.type == "cpu" and convolutional and not distributed.active():
        return torch.channels_last
    return torch.contiguous_format


def _fit_shapes(model, data, test=None) -> None:
    """A vaelib.VAE meets its data: same image shape, labels where it is conditional; the test set is
    checked here too, before the first step, not after a whole epoch of training."""
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


# fit's keyword arguments of vaelib 0.2 that now live elsewhere: each still works, with a
# DeprecationWarning naming its replacement, until vaelib 0.3 (CHANGELOG.md)
DEPRECATED = {
    "iwae_k": "objective=vaelib.objectives.IWAEObjective(k)",
    "free_bits": "objective=vaelib.objectives.ELBOObjective(beta, free_bits=...)",
    "compile": "objective=vaelib.objectives.ELBOObjective(beta, compile=True)",
    "collapse_threshold": "callbacks=[vaelib.callbacks.CollapseWarning(threshold)]",
    "on_epoch_end": "callbacks=[vaelib.callbacks.EpochEnd(fn)]",
    "train_args": "command= (a RunConfig setting)",
}


def _settings(config, settings: dict, resume_from) -> tuple[RunConfig, dict]:
    """The run's RunConfig: vaelib's defaults, then what ``resume_from`` stored, then ``config``, then
    ``settings`` (RunConfig fields given to fit by name); and the deprecated arguments among ``settings``."""
    legacy = {name: settings.pop(name) for name in list(settings) if name in DEPRECATED}
    for name in legacy:
        warnings.warn(f"fit({name}=...) is deprecated and goes in vaelib 0.3: use {DEPRECATED[name]}",
                      DeprecationWarning, stacklevel=3)
    if "train_args" in legacy:
        settings.setdefault("command", legacy.pop("train_args"))
    if config is not None and not isinstance(config, RunConfig):
        raise ValueError(f"config must be a vaelib.RunConfig, e.g. RunConfig(epochs=5), got {type(config).__name__} "
                         f"(or pass the settings to fit by name: fit(..., epochs=5))")
    base = RunConfig()
    if resume_from is not None:
        stored = (load_checkpoint(resume_from).get("run_config") or {})
        base = RunConfig.from_dict(stored, settings.get("lr_schedule")) if stored else base
    base = base.replace(**{f.name: getattr(config, f.name) for f in dataclasses.fields(RunConfig)}) if config else base
    return base.replace(**settings), legacy


def _objective(model, objective, beta, legacy: dict):
    """What each step minimizes: ``objective``, or the ELBO (with ``beta``) for a vaelib.VAE."""
    _callable("objective", objective, "an objective: a function objective(model, x, y, step) returning "
              "vaelib.objectives.Estimate(loss, sums)", "vaelib.objectives.IWAEObjective(k=5) or your own function")
    fitted = {"iwae_k": 1, "free_bits": 0.0, "compile": False}
    fitted.update({k: v for k, v in legacy.items() if k in fitted})
    if objective is not None:
        if not (isinstance(beta, (int, float)) and beta == 1) or any(k in legacy for k in fitted):
            raise ValueError("objective= and beta= (or iwae_k=, free_bits=, compile=) both given: the objective decides "
                             "the loss, so give beta to it, e.g. ELBOObjective(beta=4.0), and drop the other")
        return objective
    if not isinstance(model, VAE):
        raise ValueError(f"{type(model).__name__} is not a vaelib.VAE, so vaelib does not know its loss: pass "
                         f"objective=, a function objective(model, x, y, step) that returns "
                         f"vaelib.objectives.Estimate(loss, sums)")
    return make_objective(beta, fitted["iwae_k"], fitted["compile"], fitted["free_bits"])


def _lr_factor(config: RunConfig, steps_per_epoch: int):
    """The learning-rate factor per step that ``config`` asks for, or None for a constant rate."""
    if callable(config.lr_schedule):
        return config.lr_schedule
    total = config.epochs * steps_per_epoch
    if config.warmup_steps and config.warmup_steps >= total:
        raise ValueError(f"warmup_steps={config.warmup_steps} is not shorter than the whole run ({config.epochs} "
                         f"epochs x {steps_per_epoch} steps = {total}): lower warmup_steps= or raise epochs=")
    if config.lr_schedule == "cosine":
        return WarmupCosine(total, config.warmup_steps)
    if config.warmup_steps:
        return LinearWarmup(1.0, config.warmup_steps, start=1.0 / config.warmup_steps)  # (step + 1) / warmup, then 1
    return None


def fit(model, train, test=None, *, beta=1.0, objective=None, config: RunConfig | None = None, run_dir=None,
        resume_from=None, callbacks=(), **settings) -> History:
    """Train ``model`` on ``train`` with Adam; return the :class:`History`, one record per epoch.

    ``model`` is any ``torch.nn.Module``. A vaelib.VAE trains on its ELBO (``beta`` weighs the KL)
    unless ``objective`` says otherwise; any other module needs ``objective``: a function
    ``objective(model, x, y, step)`` that returns ``vaelib.objectives.Estimate(loss, sums)``, the
    scalar to minimize and the batch's sums of what to report (``{"reconstruction": ..., "kl_1":
    ...}``). Each sum, divided by the number of images, is recorded as ``train_<name>``; after each
    epoch the objective runs again without gradients, in eval mode, over ``test``: ``test_<name>``
    and ``test_loss``. A vaelib.VAE reports its test ELBO, reconstruction, KL and active units.

    Args:
        train, test: images ``(N, C, H, W)`` as a tensor of floats in [0, 1] (or uint8), ``(images,
            labels)``, or vaelib.ImageData. ``test`` (optional) is evaluated after every epoch.
        beta: the KL weight of a vaelib.VAE's ELBO, a number >= 0 or a schedule ``beta(step)`` from
            vaelib.schedules (the one teaching shortcut; an objective carries its own).
        objective: what each step minimizes (vaelib.objectives, e.g. ``IWAEObjective(k=5)``, or your own
            function as above).
        config: a :class:`vaelib.RunConfig`: epochs, learning rate and its schedule, batch size, seed,
            gradient clipping, precision, device, threads, progress bar. ``settings`` are its fields
            given by name, ``fit(model, train, epochs=5, lr=3e-3)``, and override it.
        run_dir: write ``checkpoint_last.pth``, ``checkpoint_best.pth`` and ``history.csv`` in this folder
            every epoch (created if missing). "Best" is the best test ELBO where there is one, else the
            lowest test loss, else the best training ELBO, else the lowest training loss; the
            checkpoint records which (``best``).
        resume_from: a checkpoint of this run to continue: weights, optimizer, history and its
            RunConfig (settings given here override the stored ones: ``epochs=`` to train longer,
            ``lr=`` to finish lower).
        callbacks: vaelib.callbacks (``SampleGrid``, ``TensorBoard``, ``CollapseWarning``, ``EpochEnd``,
            or your own ``Callback``), after the progress bar and NaN guard; ``EpochEnd`` before the
            epoch's checkpoint is written (what it adds to the record is saved), the others after it.

    What fit does not change: the global random generator (the run draws from its own seeds and
    the caller's generator state is put back), the memory format of a network it did not build
    (vaelib's own conv networks train channels-last on the CPU, where it was measured to pay, and
    are handed back contiguous), the model's train/eval mode (as it found it), torch's thread count.

    Returns:
        One dict per epoch: ``epoch``, ``step``, ``train_<name>`` for each sum the objective reports
        (``train_elbo``, ``train_reconstruction``, ``train_kl`` for the ELBO; ``train_loss`` when no
        bound is among them), ``beta`` when there is one, ``test_elbo``, ``test_reconstruction``,
        ``test_kl``, ``active_units``, ``kl_per_dim`` (a vaelib.VAE) or ``test_<name>`` and
        ``test_loss``, and ``seconds``. Nats per image for the bounds, higher is better.

    Raises:
        ValueError: a wrong argument or a network that does not fit its data, named in one line,
            before the first optimizer step.
        TrainingDiverged: the loss became NaN/inf, or torch.distributions refused the networks' outputs
            (NaN, infinite or out of range); the model holds the last good epoch's weights and the
            checkpoints on disk are left as they were.
    """
    config, legacy = _settings(config, dict(settings), resume_from)
    objective = _objective(model, objective, beta, legacy)
    callbacks = list(callbacks)
    if "on_epoch_end" in legacy:
        callbacks.insert(0, EpochEnd(legacy["on_epoch_end"]))
    if legacy.get("collapse_threshold") is not None:
        callbacks.append(CollapseWarning(legacy["collapse_threshold"], run_dir))
    device = pick_device(config.device)
    was_training = model.training
    rng_devices = [device] if device.type == "cuda" else []
    with cpu_threads(config.threads), torch.random.fork_rng(devices=rng_devices):  # the caller's RNG state comes back
        try:
            return _fit(model, train, test, objective, config, device, run_dir, resume_from, callbacks)
        finally:
            model.train(was_training)


def _fit(model, train, test, objective, config: RunConfig, device, run_dir, resume_from, callbacks) -> History:
    train, test = as_data(train, name="train"), None if test is None else as_data(test, name="test")
    if run_dir is not None:
        _checked_folder("run_dir", Path(run_dir))
    if len(train) == 0:
        raise ValueError("the training data holds no images: check its subset or source")
    if test is not None and len(test) == 0:
        raise ValueError("the test data holds no images: pass test=None to train without a test set")
    if config.epochs == 0 and resume_from is None:
        raise ValueError("epochs=0 trains nothing: epochs is the total number of epochs (at least 1)")
    warn_if_emulated(device, config.precision)
    vae = isinstance(model, VAE)
    model.to(device)
    if vae:
        _fit_shapes(model, train, test)
    elif getattr(model, "num_classes", 0) and train.labels is None:
        raise ValueError(f"{type(model).__name__} is conditional on labels: pass data with labels, "
                         f"e.g. fit(model, (images, labels))")
    if distributed.active():  # each process trains on its shard; DDP averages the gradients
        if not isinstance(train, ImageData) or not isinstance(test, (ImageData, type(None))):
            raise ValueError("a Dataset or DataLoader under torchrun: each process needs its own shard; pass the "
                             "images as a tensor or vaelib.ImageData (sharded by vaelib)")
        train, test = distributed.shard(train), None if test is None else distributed.shard(test)
    train, test = train.to(device), None if test is None else test.to(device)  # moved once, batches by indexing
    model.to(memory_format=training_layout(model, device))  # before Adam sees the parameters
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    run = Run(model, make_adam(model.parameters(), config.lr), config.epochs, History(), train=train, test=test,
              train_args=config.command, steps_per_epoch=steps_per_epoch, device=device, run_dir=run_dir,
              config=config)
    lr_schedule = _lr_factor(config, steps_per_epoch)
    if resume_from is not None:
        resume(run, resume_from, config.lr)
    if distributed.active():
        objective = distributed.DistributedObjective(model, objective)
    # EpochEnd hooks may add to the epoch's record: they run before it is saved; the others (sample
    # grids, TensorBoard...) after, so that a failing one never costs the epoch's checkpoint
    hooks = [c for c in callbacks if isinstance(c, EpochEnd)]
    callbacks = ([NaNGuard(run_dir=run_dir), ProgressBar(config.progress)] + hooks
                 + ([Checkpoints(run_dir)] if run_dir is not None else []) + [c for c in callbacks if c not in hooks])
    if not distributed.is_main():  # the guard runs everywhere, everything that writes or prints on rank 0
        callbacks = [c for c in callbacks if isinstance(c, NaNGuard)]
    for callback in callbacks:
        callback.on_fit_start(run)
    try:
        for _ in range(run.epoch, config.epochs):
            t0 = time.perf_counter()
            record = train_epoch(run, objective, config.batch_size, config.seed, config.clip_grad, config.precision,
                                 callbacks, lr_schedule, config.skip_grad)
            if test is not None:
                try:  # the last step's update is checked here first: it may have sent the weights off
                    record.update(_test_record(run, objective, config))
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


def _test_record(run: Run, objective, config: RunConfig) -> dict:
    """A vaelib.VAE's test ELBO (and, for an objective of the user's, its sums too); any other model's
    objective, without gradients."""
    record = {}
    if isinstance(run.model, VAE):
        record.update(test_record(run.model, run.test, config.eval_batch_size, config.seed))
        if isinstance(objective, BUILT_IN_OBJECTIVES):
            return record
    for key, value in objective_record(run.model, objective, run.test, config.eval_batch_size, config.seed,
                                       run.step).items():
        record.setdefault(key, value)
    return record


@torch.no_grad()
def objective_record(model, objective, data, batch_size: int = 1000, seed: int = 0, step: int = 0,
                     prefix: str = "test_") -> dict:
    """The objective over ``data`` without gradients, in eval mode (the mode is put back): ``test_loss``
    (the mean loss per image) and ``test_<name>`` for each sum it reports, per image. Its random draws
    come from ``seed`` (and are the caller's generator state afterwards: it is restored)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums, loss, count = {}, 0.0, 0
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for x, y in data.batches(batch_size):
                estimate = objective(model, x.to(device), None if y is None else y.to(device), step)
                loss += float(estimate.loss) * len(x)
                count += len(x)
                for name, value in estimate.sums.items():
                    sums[name] = sums.get(name, 0.0) + float(value)
    finally:
        model.train(was_training)
    totals = distributed.all_sum(torch.tensor([loss, count, *sums.values()], dtype=torch.float64, device=device))
    n = totals[1].item()
    return {f"{prefix}loss": totals[0].item() / n,
            **{f"{prefix}{name}": value / n for name, value in zip(sums, totals[2:].tolist())}}


# the notebooks' modes are the course's (vaelib.course.settings)
__getattr__ = moved_names(__name__, {"fast_mode": "vaelib.course.settings"})
