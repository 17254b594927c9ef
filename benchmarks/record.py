"""The likelihood record in one GPU run: train the record recipe, then score it on the literature's protocol.

    python benchmarks/record.py --out runs/record                 # one GPU, at most --budget-minutes (8)
    python benchmarks/record.py --quick --out /tmp/record          # the same code on the CPU, under a minute
    python benchmarks/record.py --device cpu --estimate-only --out /tmp/est   # what the recipe costs here
    python -m vaelib evaluate --combine runs/record/bounds.json   # the NLL again, from the per-image bounds

One command, four phases:

1. training the recipe from scratch: the conv VAE with the ``pixelcnn`` decoder of 3 masked layers
   (``pixelcnn_layers=3``, 3.9-4.2 nats ahead of the record's 1-layer decoder at the same epoch,
   benchmarks/RESULTS.md), the ELBO with a linear KL warm-up (the cure for this decoder's posterior
   collapse), batch 256, Adam with 200 warm-up steps and a cosine decay, bf16 where the hardware
   computes it; ``--epochs auto`` (the default) trains as many epochs as the budget leaves after the
   other phases' estimates;
2. fine-tuning on the importance-weighted bound, k = 5, lr 3e-4, 2 epochs (-0.29 nats on the record
   model, measured);
3. the test NLL on the literature's protocol: all 10,000 dynamically binarized test images (seed 0),
   k = 5000 importance samples, per-image bounds kept in ``OUT/bounds.json`` as they come (the
   format of ``vaelib evaluate --bounds``: the same command continues where a run stopped, and
   ``vaelib evaluate --combine`` reads it);
4. ``benchmarks/gpu_check.py``'s check, in-process, if the budget has room left for it.

Before anything trains it times a few training steps and a few evaluation images on the device,
prints the estimate of each phase and what it was measured from, and refuses (exit 2) when they add
up to more than ``--budget-minutes``, unless ``--force``. Everything lands in ``--out``:
``model.pth`` (vaelib.save), ``bounds.json``, ``summary.json`` (NLL, standard error, bits/dim, n,
k, seconds and CPU-seconds per phase, device, versions, the recipe), ``recipe.json`` and the runs'
checkpoints (``train/``, ``finetune/``). Run the same command again and it continues: a finished
training is reused, an interrupted one resumes from its last epoch, the bounds file is continued.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import signal
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import vaelib  # noqa: E402
from vaelib.checkpoints import CheckpointError, load_checkpoint  # noqa: E402
from vaelib.data import DataError  # noqa: E402
from vaelib.files import atomic_write  # noqa: E402

# The recipe, for one H100 (full) and for the CPU smoke run (--quick). Flags override each entry.
FULL = {"epochs": "auto", "batch_size": 256, "lr": 2e-3, "warmup_steps": 200, "kl_warmup_epochs": 10,
        "pixelcnn_layers": 3, "latent_dim": 20, "iwae_k": 5, "iwae_epochs": 2, "iwae_lr": 3e-4,
        "iwae_batch_size": 128, "train_images": 60000, "eval_images": 10000, "k": 5000, "estimate_steps": 30,
        "gpu_check": "auto"}
# --quick: the same code, small enough for under a minute on a loaded 2-core CPU (IWAE k = 2, not 5)
QUICK = {**FULL, "epochs": 1, "batch_size": 32, "iwae_k": 2, "iwae_epochs": 1, "iwae_batch_size": 32,
         "train_images": 256, "eval_images": 20, "k": 10, "estimate_steps": 2, "gpu_check": "skip"}
TRAINING_KEYS = ("epochs", "batch_size", "lr", "warmup_steps", "kl_warmup_epochs", "pixelcnn_layers", "latent_dim",
                 "iwae_k", "iwae_epochs", "iwae_lr", "iwae_batch_size", "train_images", "seed", "precision")
MAX_AUTO_EPOCHS = 200
MIN_AUTO_EPOCHS = 3
# full: gpu_check.py's own docstring (never measured); quick: 28-54 s measured on the shared 2-core CPU, 2026-12-07
GPU_CHECK_MINUTES = {"full": 8.0, "quick": 1.0}


class RecordError(Exception):
    """Bad input or a refusal: one line for the user, no traceback."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


# --- time and CPU time per phase --------------------------------------------------------------------

class Clock:
    """Wall and CPU seconds of each phase of this run (CPU: this process, all its threads)."""

    def __init__(self, device):
        self.device, self.start, self.cpu_start = device, time.perf_counter(), time.process_time()
        self.seconds, self.cpu_seconds = {}, {}

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def phase(self, name: str):
        clock = self

        class _Phase:
            def __enter__(self):
                clock.sync()
                self.t, self.c = time.perf_counter(), time.process_time()

            def __exit__(self, *exc):
                clock.sync()
                clock.seconds[name] = clock.seconds.get(name, 0.0) + time.perf_counter() - self.t
                clock.cpu_seconds[name] = clock.cpu_seconds.get(name, 0.0) + time.process_time() - self.c
        return _Phase()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def cpu_total(self) -> float:
        return time.process_time() - self.cpu_start


def minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


# --- the command line --------------------------------------------------------------------------------

def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="the output folder (a rerun with the same folder continues)")
    p.add_argument("--quick", action="store_true",
                   help="the same code on the CPU in under a minute: 256 training images, 1 ELBO and 1 IWAE (k=2) "
                        "epoch, k=10 on 20 test images, gpu_check skipped")
    p.add_argument("--device", default=None, help="default: cuda (cpu with --quick)")
    p.add_argument("--budget-minutes", type=float, default=8.0, help="refuse to start when the estimate exceeds this")
    p.add_argument("--force", action="store_true", help="start even when the estimate exceeds the budget")
    p.add_argument("--estimate-only", action="store_true", help="measure, print the estimates and stop")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="auto (default): bf16 where the device computes it natively, else fp32")
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("the recipe (defaults: one H100; --quick: smaller)")
    g.add_argument("--epochs", default=None,
                   help="ELBO epochs, or auto (default): as many as the budget leaves after the other phases")
    g.add_argument("--batch-size", type=int, default=None, help="default 256 (quick 32)")
    g.add_argument("--lr", type=float, default=None, help="Adam's peak learning rate (default 2e-3), cosine decay")
    g.add_argument("--warmup-steps", type=int, default=None, help="learning-rate warm-up steps (default 200)")
    g.add_argument("--kl-warmup-epochs", type=int, default=None,
                   help="beta rises linearly from 0 to 1 over these epochs (default 10, at most a third of --epochs)")
    g.add_argument("--pixelcnn-layers", type=int, default=None, help="masked layers of the decoder (default 3)")
    g.add_argument("--latent-dim", type=int, default=None, help="default 20")
    g.add_argument("--iwae-k", type=int, default=None, help="the fine-tune's IWAE k (default 5)")
    g.add_argument("--iwae-epochs", type=int, default=None, help="IWAE fine-tuning epochs (default 2; 0: none)")
    g.add_argument("--iwae-lr", type=float, default=None, help="the fine-tune's constant learning rate (default 3e-4)")
    g.add_argument("--iwae-batch-size", type=int, default=None, help="default 128")
    g.add_argument("--train-images", type=int, default=None, help="the first N training images (default all 60,000)")
    e = p.add_argument_group("the evaluation")
    e.add_argument("--eval-images", type=int, default=None, help="the first N test images (default all 10,000)")
    e.add_argument("--k", type=int, default=None, help="importance samples per image (default 5000)")
    e.add_argument("--eval-batch-size", type=int, default=None, help="images per batch (default: vaelib's automatic)")
    e.add_argument("--eval-limit", type=int, default=None,
                   help="evaluate at most N more images in this run, then stop (the next run continues)")
    e.add_argument("--estimate-steps", type=int, default=None, help="training steps timed for the estimate (30)")
    c = p.add_argument_group("the GPU check")
    c.add_argument("--gpu-check", choices=["auto", "run", "skip"], default=None,
                   help="auto (default): run benchmarks/gpu_check.py if the budget has room for it; --quick: skip")
    c.add_argument("--gpu-check-minutes", type=float, default=None,
                   help="what gpu_check is expected to take (default 8, its docstring's figure; 1 with --quick)")
    args = p.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    given = {}
    for key, default in defaults.items():
        value = getattr(args, key)
        if value is not None:
            given[key] = value
        else:
            setattr(args, key, default)
    if args.epochs == "auto":
        given.pop("epochs", None)  # auto is the default, whatever a stored run resolved it to
    else:
        try:
            args.epochs = int(args.epochs)
        except ValueError:
            raise RecordError(f"--epochs must be a number of epochs or auto, got {args.epochs!r}", 2) from None
        if "epochs" in given:
            given["epochs"] = args.epochs
    for key in ("batch_size", "warmup_steps", "kl_warmup_epochs", "pixelcnn_layers", "latent_dim", "iwae_k",
                "iwae_epochs", "iwae_batch_size", "train_images", "eval_images", "k", "estimate_steps"):
        value = getattr(args, key)
        low = 0 if key in ("warmup_steps", "kl_warmup_epochs", "iwae_epochs") else 1
        if value < low:
            raise RecordError(f"--{key.replace('_', '-')} must be at least {low}, got {value}", 2)
    if args.epochs != "auto" and args.epochs < 1:
        raise RecordError(f"--epochs must be at least 1, got {args.epochs}", 2)
    if args.eval_images > 10000 or args.train_images > 60000:
        raise RecordError("MNIST has 60,000 training and 10,000 test images: lower --train-images/--eval-images", 2)
    if args.eval_limit is not None and args.eval_limit < 0:
        raise RecordError(f"--eval-limit must be >= 0, got {args.eval_limit}", 2)
    if args.gpu_check_minutes is None:
        args.gpu_check_minutes = GPU_CHECK_MINUTES["quick" if args.quick else "full"]
    args.given = given
    return args


def pick_device(args) -> torch.device:
    name = args.device or ("cpu" if args.quick else "cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RecordError("no CUDA device here: this command trains the record on a GPU. Pass --quick for the CPU "
                          "smoke run, or --device cpu for the full recipe on the CPU (hours; --estimate-only says "
                          "how many)", 2)
    try:
        return vaelib.pick_device(name)
    except ValueError as err:
        raise RecordError(str(err), 2) from None


def resolve_precision(args, device) -> str:
    from vaelib.precision import native_bf16
    if args.precision != "auto":
        return args.precision
    return "bf16" if native_bf16(device) else "fp32"


# --- the recipe, kept in OUT/recipe.json so that a rerun continues the same run --------------------

def recipe_of(args, precision: str) -> dict:
    recipe = {key: getattr(args, key) for key in TRAINING_KEYS if key != "precision"}
    recipe["precision"] = precision
    recipe["quick"] = args.quick
    recipe.update(arch="conv", likelihood="pixelcnn", objective="ELBO with a linear KL warm-up, then IWAE fine-tune",
                  lr_schedule="cosine", binarize="dynamic", dataset="mnist")
    return recipe


def stored_recipe(out: Path, args, recipe: dict) -> dict | None:
    """The recipe of the run in ``out`` (None: a new run); flags that contradict it are refused."""
    path = out / "recipe.json"
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text())
        assert isinstance(stored, dict) and "epochs" in stored
    except (OSError, ValueError, AssertionError):
        raise RecordError(f"{path} is not a readable recipe of this script: delete it (and the run with it), or "
                          f"choose another --out") from None
    given = dict(args.given, seed=args.seed, quick=args.quick)
    if args.precision != "auto":
        given["precision"] = args.precision
    if "precision" not in given and stored.get("precision") != recipe["precision"]:
        given["precision"] = recipe["precision"]  # an "auto" precision that resolves otherwise on this device
    wrong = [f"{key} {stored.get(key)!r} there, {value!r} now" for key, value in given.items()
             if key in TRAINING_KEYS + ("quick",) and stored.get(key) != value]
    if wrong:
        raise RecordError(f"{out} holds a run of another recipe ({'; '.join(wrong)}): drop those flags to continue "
                          f"it, or choose another --out", 2)
    return stored


def write_json(path: Path, value) -> None:
    with atomic_write(path, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


# --- building and training ----------------------------------------------------------------------------

def build(recipe: dict, seed: int):
    torch.manual_seed(seed)  # the initial weights come from the seed
    config = vaelib.VAEConfig(arch="conv", latent_dim=recipe["latent_dim"], likelihood="pixelcnn",
                              pixelcnn_layers=recipe["pixelcnn_layers"])
    return vaelib.build_vae(config=config)


def kl_warmup_steps(recipe: dict, epochs: int, steps_per_epoch: int) -> int:
    """Beta rises over ``kl_warmup_epochs`` epochs, at most a third of the ELBO epochs (at least one step)."""
    warm_epochs = min(recipe["kl_warmup_epochs"], epochs / 3)
    return max(1, round(warm_epochs * steps_per_epoch))


def elbo_objective(recipe: dict, epochs: int, steps_per_epoch: int):
    from vaelib.objectives import ELBOObjective
    from vaelib.schedules import LinearWarmup
    if recipe["kl_warmup_epochs"] == 0:
        return ELBOObjective(1.0)
    return ELBOObjective(LinearWarmup(1.0, kl_warmup_steps(recipe, epochs, steps_per_epoch)))


def lr_warmup(recipe: dict, epochs: int, steps_per_epoch: int) -> int:
    """The recipe's warm-up, but never more than a fifth of the run (a --quick epoch has 8 steps)."""
    return min(recipe["warmup_steps"], epochs * steps_per_epoch // 5)


def epoch_printer(phase: str, total: int):
    def show(record, model):
        extra = f", beta {record['beta']:.2f}" if record.get("beta") is not None else ""
        train = record.get("train_iwae_bound", record.get("train_elbo"))
        print(f"  {phase} epoch {record['epoch']}/{total}: train bound {train:.2f}, "
              f"test ELBO {record['test_elbo']:.2f} (KL {record['test_kl']:.2f}, "
              f"{record['active_units']} active units){extra}, "
              f"{record.get('seconds', float('nan')):.1f} s", flush=True)
    return show


# --- estimates: a few steps and a few images, timed on this device ----------------------------------

class Timing(NamedTuple):
    """What a timed stretch gave: wall and CPU seconds per unit (a step, an image), over how many units."""

    per_unit: float | None
    cpu_per_unit: float | None
    units: int
    seconds: float
    exhausted: bool = False  # the evaluation's images ran out while it was timed


def time_training_steps(recipe, train, device, objective, batch_size: int, steps: int, warm: int, clock) -> Timing:
    """Seconds per optimizer step of ``objective`` at ``batch_size`` (``warm`` steps first, not timed)."""
    from vaelib.precision import autocast
    from vaelib.training import make_adam, training_layout
    model = build(recipe, 12345).to(device)
    model.to(memory_format=training_layout(model, device))
    model.train()
    optimizer = make_adam(model.parameters(), 1e-4)
    g = torch.Generator(device=train.device).manual_seed(0)
    batches = iter(())
    t = c = None
    for step in range(warm + steps):
        if step == warm:
            clock.sync()
            t, c = time.perf_counter(), time.process_time()
        try:
            x, _ = next(batches)
        except StopIteration:
            batches = train.batches(batch_size, shuffle=True, generator=g, drop_last=len(train) >= batch_size)
            x, _ = next(batches)
        with autocast(device, recipe["precision"]):
            estimate = objective(model, x, None, step)
        optimizer.zero_grad(set_to_none=True)
        estimate.loss.backward()
        optimizer.step()
    clock.sync()
    seconds = time.perf_counter() - t
    return Timing(seconds / steps, (time.process_time() - c) / steps, steps, seconds)


def time_test_elbo(model, test, clock) -> Timing:
    """Seconds of fit's per-epoch test ELBO per image, from up to 1,000 images of ``test``."""
    from vaelib.evaluation import evaluate_elbo
    n = min(len(test), 1000)
    part = test[:n]
    evaluate_elbo(model, part[:min(n, 100)])  # warm-up
    clock.sync()
    t, c = time.perf_counter(), time.process_time()
    evaluate_elbo(model, part)
    clock.sync()
    seconds = time.perf_counter() - t
    return Timing(seconds / n, (time.process_time() - c) / n, n, seconds)


def time_checkpoint(model) -> float:
    """Seconds of the two checkpoints fit writes each epoch (last and best, weights and Adam's two moments):
    six times one save of the weights alone."""
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        t = time.perf_counter()
        vaelib.save(model, Path(folder) / "probe.pth")
        return 6 * (time.perf_counter() - t)


class EvalTimer:
    """Per-image seconds of the IWAE evaluation from its first batches: one warm-up batch, then batches
    until ``min_seconds`` and ``min_batches`` have passed."""

    def __init__(self, min_seconds: float, min_batches: int = 2):
        self.min_seconds, self.min_batches = min_seconds, min_batches

    def measure(self, batches, clock, keep) -> Timing:
        """Consume ``batches`` (of iwae_bounds) until the estimate stands; ``keep(idx, bound)`` gets each.
        When the first batch was the only one, its own time (warm-up included, so an overestimate) is the
        measurement."""
        done = timed = 0
        t = c = first = None
        clock.sync()
        t0, c0 = time.perf_counter(), time.process_time()
        for idx, bound in batches:
            keep(idx, bound)
            done += 1
            if done == 1:
                clock.sync()
                t, c = time.perf_counter(), time.process_time()
                first = Timing((t - t0) / len(idx), (c - c0) / len(idx), len(idx), t - t0, True)
                continue
            timed += len(idx)
            seconds = time.perf_counter() - t
            if done - 1 >= self.min_batches and seconds >= self.min_seconds:
                return Timing(seconds / timed, (time.process_time() - c) / timed, timed, seconds)
        if first is None:
            return Timing(None, None, 0, 0.0, True)
        if not timed:
            return first
        seconds = time.perf_counter() - t
        return Timing(seconds / timed, (time.process_time() - c) / timed, timed, seconds, True)


def eval_timing(model, test, args, precision, indices, clock, min_seconds) -> Timing:
    """Per-image seconds of k-sample evaluation, timed on ``indices`` of ``test`` (the bounds are thrown away)."""
    from vaelib.evaluation import iwae_bounds
    batches = iwae_bounds(model, test, args.k, args.seed, args.eval_batch_size, indices, precision)
    return EvalTimer(min_seconds).measure(batches, clock, lambda i, b: None)


# --- the phases --------------------------------------------------------------------------------------

def last_epoch(path: Path) -> int:
    return int(load_checkpoint(path).get("epoch", 0)) if path.exists() else 0


def run_fit(model, train, test, recipe, device, phase: str, run_dir: Path, epochs: int, objective, **settings):
    resume = run_dir / "checkpoint_last.pth"
    done = last_epoch(resume)
    if done:
        print(f"  resuming {phase} after epoch {done} ({resume})")
    return vaelib.fit(model, train, test, objective=objective, epochs=epochs, device=str(device), progress=False,
                      precision=recipe["precision"], seed=recipe["seed"], run_dir=run_dir,
                      resume_from=resume if done else None,
                      callbacks=[vaelib.callbacks.EpochEnd(epoch_printer(phase, epochs))], **settings)


def train_phase(recipe, train, test, device, out: Path, clock):
    """The ELBO epochs, then the IWAE fine-tune; returns the model (its history rows marked by phase)."""
    from vaelib.objectives import IWAEObjective
    epochs = recipe["epochs"]
    steps = math.ceil(len(train) / recipe["batch_size"])
    train_dir, tune_dir = out / "train", out / "finetune"
    history = []
    if last_epoch(train_dir / "checkpoint_last.pth") >= epochs:
        model = vaelib.load(train_dir / "checkpoint_last.pth", device=device)
        history = list(model.checkpoint.get("history", []))
        print(f"training: reusing {train_dir / 'checkpoint_last.pth'} ({epochs} epochs done)")
    else:
        model = build(recipe, recipe["seed"])
        with clock.phase("train"):
            history = run_fit(model, train, test, recipe, device, "ELBO", train_dir, epochs,
                              elbo_objective(recipe, epochs, steps), lr=recipe["lr"],
                              batch_size=recipe["batch_size"], lr_schedule="cosine",
                              warmup_steps=lr_warmup(recipe, epochs, steps))
    history = [{**row, "phase": "elbo"} for row in history]
    if recipe["iwae_epochs"]:
        tuned = tune_dir / "checkpoint_last.pth"
        with clock.phase("finetune"):
            if last_epoch(tuned) < recipe["iwae_epochs"]:
                if tuned.exists():
                    model = build(recipe, recipe["seed"])  # its weights come from the checkpoint fit resumes
                tune = run_fit(model, train, test, recipe, device, "IWAE", tune_dir, recipe["iwae_epochs"],
                               IWAEObjective(recipe["iwae_k"]), lr=recipe["iwae_lr"],
                               batch_size=recipe["iwae_batch_size"], lr_schedule="constant", warmup_steps=0)
            else:
                model = vaelib.load(tuned, device=device)
                tune = list(model.checkpoint.get("history", []))
        history += [{**row, "phase": f"iwae{recipe['iwae_k']}"} for row in tune]
    return model, history


def evaluate_phase(model, test, args, precision, out: Path, model_path: Path, clock, budget_left, summary_extra):
    """Continue OUT/bounds.json; returns the record. Refuses (RecordError 2) when the estimate exceeds the budget."""
    from vaelib.evaluation import BoundsRecord, file_sha256, iwae_bounds
    path = out / "bounds.json"
    meta = {"checkpoint_sha256": file_sha256(model_path), "k": args.k, "seed": args.seed, "binarize": "dynamic",
            "dataset": test.name, "n_images": len(test), "precision": precision,
            "image_shape": list(test.image_shape), "shard": None}
    try:
        record = BoundsRecord(path, meta)
    except ValueError as err:
        raise RecordError(str(err)) from None
    summary_extra["bounds_before"] = len(record.bounds)
    todo = [i for i in range(len(test)) if i not in record.bounds]
    if record.bounds:
        print(f"evaluation: resuming {path}, {len(record.bounds):,} of {len(test):,} images already done")
    if args.eval_limit is not None:
        todo = todo[:args.eval_limit]
    if not todo:
        return record
    last_save = [time.monotonic()]

    def keep(idx, bound):
        record.add(idx, bound)
        if time.monotonic() - last_save[0] > 10:
            record.save()
            last_save[0] = time.monotonic()

    batches = iwae_bounds(model, test, args.k, args.seed, args.eval_batch_size, todo, precision)
    try:
        with clock.phase("evaluate"):
            timing = EvalTimer(3.0 if args.quick or model.device.type != "cpu" else 20.0).measure(batches, clock, keep)
            if not timing.exhausted:
                left = len(todo) - len([i for i in todo if i in record.bounds])
                estimate = timing.per_unit * left
                summary_extra["estimates"].update(evaluate_s_per_image_trained=timing.per_unit,
                                                  evaluate_cpu_s_per_image_trained=timing.cpu_per_unit)
                print(f"ESTIMATE evaluation: {minutes(estimate)} for the {left:,} images left at k={args.k} "
                      f"({timing.per_unit * 100:.2f} s per 100 images, measured on {timing.units} images in "
                      f"{timing.seconds:.1f} s after one warm-up batch); {minutes(budget_left())} of the budget left",
                      flush=True)
                if estimate > budget_left() and not args.force:
                    raise RecordError(f"refused: the evaluation's estimate ({minutes(estimate)}) exceeds the "
                                      f"{minutes(budget_left())} left of --budget-minutes {args.budget_minutes:g}; "
                                      f"{len(record.bounds):,} images are done and kept in {path}: rerun the same "
                                      f"command to continue (with --force, or --eval-limit N for a part)", 2)
                for idx, bound in batches:
                    keep(idx, bound)
    finally:
        record.save()
    return record


def gpu_check_phase(args, device, out: Path, budget_left, main=None, clock=None) -> dict:
    """Run benchmarks/gpu_check.py in-process if asked and the budget allows; say why not otherwise."""
    need = args.gpu_check_minutes * 60
    if args.gpu_check == "skip":
        why = ("--quick skips it (tests/test_benchmarks.py runs gpu_check.py --quick on its own; --gpu-check run "
               "runs its --quick here)") if args.quick else "--gpu-check skip"
        return {"ran": False, "why": why}
    if args.gpu_check == "auto" and budget_left() < need:
        return {"ran": False, "why": f"{minutes(max(budget_left(), 0))} of the {args.budget_minutes:g}-minute budget "
                                     f"left, and it needs about {minutes(need)} (--gpu-check-minutes): run "
                                     f"'python benchmarks/gpu_check.py' on its own, or --gpu-check run"}
    if main is None:
        sys.path.insert(0, str(HERE))
        import gpu_check
        main = gpu_check.main
    argv = ["--quick"] if device.type != "cuda" else ["--device", str(device)]
    argv += ["--out", str(out / "gpu_check.json")]
    print(f"gpu check: benchmarks/gpu_check.py {' '.join(argv)}", flush=True)
    try:
        with clock.phase("gpu_check") if clock is not None else contextlib.nullcontext():
            main(argv)
    except Exception as err:  # the record is written already: the check's failure is reported, not fatal
        message = str(err).splitlines()[0][:300] if str(err) else ""
        return {"ran": True, "ok": False, "argv": argv, "error": f"{type(err).__name__}: {message}"}
    return {"ran": True, "ok": True, "argv": argv, "file": "gpu_check.json"}


# --- the whole command ---------------------------------------------------------------------------------

def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:  # Linux names the processor here; platform.processor() is often empty
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores"


def main(argv=None) -> dict | None:
    args = parse(argv)
    device = pick_device(args)
    clock = Clock(device)
    budget = args.budget_minutes * 60
    budget_left = lambda: budget - clock.elapsed()  # noqa: E731
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest convolutions
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise RecordError(f"--out {out} is a file: name a folder", 2)
    precision = resolve_precision(args, device)
    recipe = recipe_of(args, precision)
    stored = stored_recipe(out, args, recipe)
    if stored is not None:
        recipe = stored
        print(f"continuing the run in {out} (recipe.json: {recipe['epochs']} ELBO epochs, "
              f"{recipe['iwae_epochs']} IWAE k={recipe['iwae_k']} epochs)")
    model_path = out / "model.pth"
    name = device_name(device)
    print(f"{name} ({device}), torch {torch.__version__}, vaelib {vaelib.__version__}, {precision}, "
          f"{torch.get_num_threads()} CPU threads, budget {args.budget_minutes:g} min", flush=True)

    with clock.phase("data"):
        test = vaelib.MNIST("test", binarize="dynamic", subset=args.eval_images if args.eval_images < 10000 else None,
                            device=device)
        trained = model_path.exists()
        train = None if trained else vaelib.MNIST("train", binarize="dynamic", device=device,
                                                  subset=args.train_images if args.train_images < 60000 else None)

    estimates = {"device": name}
    summary_extra = {"estimates": estimates}
    model = None
    with clock.phase("estimate"):
        if trained:
            try:
                model = vaelib.load(model_path, device=device)
            except CheckpointError as err:
                raise RecordError(f"{model_path} cannot be loaded ({str(err).splitlines()[0]}): delete it to train "
                                  f"again, or choose another --out") from None
            print(f"training: reusing {model_path} (delete it to train again)")
            train_estimate = 0.0
        else:
            steps = math.ceil(len(train) / recipe["batch_size"])
            warm = 1 if args.quick else 5
            n_steps = args.estimate_steps
            probe_epochs = recipe["epochs"] if recipe["epochs"] != "auto" else 30
            step = time_training_steps(recipe, train, device, elbo_objective(recipe, probe_epochs, steps),
                                       recipe["batch_size"], n_steps, warm, clock)
            probe = build(recipe, 12345).to(device)
            per_test = time_test_elbo(probe, test, clock)
            test_s, test_cpu = per_test.per_unit * len(test), per_test.cpu_per_unit * len(test)
            save_s = time_checkpoint(probe)
            epoch_s = steps * step.per_unit + test_s + save_s
            epoch_cpu = steps * step.cpu_per_unit + test_cpu + save_s
            estimates.update(train_step_s=step.per_unit, train_step_cpu_s=step.cpu_per_unit, train_steps_timed=n_steps,
                             batch_size=recipe["batch_size"], steps_per_epoch=steps, test_elbo_s=test_s,
                             test_elbo_cpu_s=test_cpu, checkpoints_s=save_s, epoch_s=epoch_s, epoch_cpu_s=epoch_cpu)
            print(f"measured: {n_steps} ELBO steps of batch {recipe['batch_size']} at {step.per_unit * 1000:.1f} ms "
                  f"each ({step.cpu_per_unit * 1000:.0f} CPU-ms; after {warm} warm-up steps), fit's test ELBO of "
                  f"{len(test):,} images {test_s:.2f} s (from {per_test.units:,}), its checkpoints {save_s:.2f} s: "
                  f"{epoch_s:.1f} s per epoch of {len(train):,} images ({epoch_cpu:.0f} CPU-s)", flush=True)
            tune_s = 0.0
            if recipe["iwae_epochs"]:
                from vaelib.objectives import IWAEObjective
                n_iwae = max(3, n_steps // 3)
                iwae = time_training_steps(recipe, train, device, IWAEObjective(recipe["iwae_k"]),
                                           recipe["iwae_batch_size"], n_iwae, warm, clock)
                iwae_steps = math.ceil(len(train) / recipe["iwae_batch_size"])
                tune_epoch_s = iwae_steps * iwae.per_unit + test_s + save_s
                tune_epoch_cpu = iwae_steps * iwae.cpu_per_unit + test_cpu + save_s
                tune_s = recipe["iwae_epochs"] * tune_epoch_s
                estimates.update(iwae_step_s=iwae.per_unit, iwae_step_cpu_s=iwae.cpu_per_unit, iwae_steps_timed=n_iwae,
                                 iwae_epoch_s=tune_epoch_s, iwae_epoch_cpu_s=tune_epoch_cpu)
                print(f"measured: {n_iwae} IWAE k={recipe['iwae_k']} steps of batch {recipe['iwae_batch_size']} at "
                      f"{iwae.per_unit * 1000:.1f} ms each ({iwae.cpu_per_unit * 1000:.0f} CPU-ms): "
                      f"{tune_epoch_s:.1f} s per fine-tuning epoch ({tune_epoch_cpu:.0f} CPU-s)", flush=True)
            done = {"train": last_epoch(out / "train" / "checkpoint_last.pth"),
                    "finetune": last_epoch(out / "finetune" / "checkpoint_last.pth")}
            model = probe
        # the evaluation, timed on the first images still to do with an untrained model of the recipe's shape
        # (what it costs does not depend on the weights); those bounds are thrown away
        from vaelib.evaluation import BoundsRecord
        bounds_path = out / "bounds.json"
        already = set()
        if bounds_path.exists() and trained:
            try:
                already = set(BoundsRecord.read(bounds_path)["bounds"])
            except ValueError as err:
                raise RecordError(str(err)) from None
        todo = [i for i in range(len(test)) if i not in already]
        if args.eval_limit is not None:
            todo = todo[:args.eval_limit]
        eval_estimate = 0.0
        # a trained model is timed by the evaluation itself, on its first images (kept), before it goes on
        if todo and (not trained or args.estimate_only):
            probe_images = todo[:max(12, min(len(todo), 400))]
            timing = eval_timing(model, test, args, precision, probe_images, clock,
                                 2.0 if args.quick or device.type != "cpu" else 20.0)
            per_image, cpu_per_image = timing.per_unit or 0.0, timing.cpu_per_unit or 0.0
            how = "one batch, its warm-up included" if timing.exhausted and timing.units == len(probe_images) else \
                "after one warm-up batch"
            eval_estimate = per_image * len(todo)
            estimates.update(evaluate_s_per_image=per_image, evaluate_cpu_s_per_image=cpu_per_image,
                             evaluate_images_timed=timing.units, k=args.k)
            print(f"measured: k={args.k} evaluation at {per_image * 100:.2f} s per 100 images "
                  f"({cpu_per_image * 100:.0f} CPU-s; {timing.units} images in {timing.seconds:.2f} s, {how}): "
                  f"{minutes(eval_estimate)} for {len(todo):,} images", flush=True)
        if not trained:
            del probe
            model = None
            if recipe["epochs"] == "auto":
                reserve = 15 + 0.03 * budget  # loading, saving, the summary
                room = budget_left() - tune_s - eval_estimate - reserve
                fits = int(room // epoch_s) if room > 0 else 0
                if fits < MIN_AUTO_EPOCHS and not args.force and not args.estimate_only:
                    raise RecordError(f"refused: the budget ({args.budget_minutes:g} min) leaves room for {fits} ELBO "
                                      f"epochs of {epoch_s:.1f} s after the fine-tune ({minutes(tune_s)}) and the "
                                      f"evaluation ({minutes(eval_estimate)}); at least {MIN_AUTO_EPOCHS} are needed: "
                                      f"raise --budget-minutes, or --force", 2)
                recipe["epochs"] = min(MAX_AUTO_EPOCHS, max(fits, MIN_AUTO_EPOCHS))
                print(f"--epochs auto: {recipe['epochs']} ELBO epochs fit the budget"
                      + (f" (capped at {MAX_AUTO_EPOCHS})" if fits > MAX_AUTO_EPOCHS else ""))
            left_train = max(0, recipe["epochs"] - done["train"]) * epoch_s
            left_tune = tune_s * max(0, recipe["iwae_epochs"] - done["finetune"]) / max(recipe["iwae_epochs"], 1)
            train_estimate = left_train + left_tune
            print(f"ESTIMATE training: {minutes(left_train)} for {recipe['epochs'] - done['train']} ELBO epochs + "
                  f"{minutes(left_tune)} for {recipe['iwae_epochs'] - done['finetune']} IWAE epochs", flush=True)
    total = train_estimate + eval_estimate
    estimates.update(train_total_s=train_estimate, evaluate_total_s=eval_estimate, setup_s=clock.elapsed())
    evaluation = (f"evaluation {minutes(eval_estimate)}" if not (trained and todo) or args.estimate_only else
                  f"the evaluation of {len(todo):,} images to be timed on its first ones")
    print(f"ESTIMATE all: {minutes(clock.elapsed() + total)} (so far {minutes(clock.elapsed())}, training "
          f"{minutes(train_estimate)}, {evaluation}) against the budget of {args.budget_minutes:g} min", flush=True)
    if args.estimate_only:
        return {"estimates": estimates, "recipe": recipe}
    if clock.elapsed() + total > budget and not args.force:
        raise RecordError(f"refused: the estimate ({minutes(clock.elapsed() + total)}) exceeds --budget-minutes "
                          f"{args.budget_minutes:g}: pass --force to run anyway, or fewer --epochs / --iwae-epochs, or "
                          f"--eval-limit N to evaluate part now and continue later", 2)

    out.mkdir(parents=True, exist_ok=True)
    if stored is None:
        steps = math.ceil(recipe["train_images"] / recipe["batch_size"])
        recipe.update(steps_per_epoch=steps, lr_warmup_steps_used=lr_warmup(recipe, recipe["epochs"], steps),
                      kl_warmup_steps_used=kl_warmup_steps(recipe, recipe["epochs"], steps)
                      if recipe["kl_warmup_epochs"] else 0)
        write_json(out / "recipe.json", recipe)
    if not trained:
        model, history = train_phase(recipe, train, test, device, out, clock)
        with clock.phase("save"):
            vaelib.save(model, model_path, epoch=len(history), history=history, train_args=recipe,
                        data=model.data_info)
        print(f"saved {model_path}", flush=True)
    record = evaluate_phase(model, test, args, precision, out, model_path, clock, budget_left, summary_extra)
    summary = write_summary(out, args, recipe, model, model_path, record, test, precision, device, name, clock,
                            summary_extra)
    if summary["complete"] or args.gpu_check == "run":
        gpu = gpu_check_phase(args, device, out, budget_left, clock=clock)
    else:
        gpu = {"ran": False, "why": "the evaluation is not complete yet"}
    print("gpu check: " + (("ran, wrote gpu_check.json" if gpu.get("ok") else f"ran and failed: {gpu.get('error')}")
                           if gpu["ran"] else f"skipped: {gpu['why']}"))
    summary["gpu_check"] = gpu
    add_timings(summary, clock)
    write_json(out / "summary.json", summary)
    return summary


def add_timings(summary: dict, clock) -> None:
    """This run's seconds and CPU-seconds per phase, and the sums over all runs of this folder."""
    seconds = {k: round(v, 2) for k, v in clock.seconds.items()}
    seconds["total"] = round(clock.elapsed(), 2)
    cpu = {k: round(v, 2) for k, v in clock.cpu_seconds.items()}
    cpu["total"] = round(clock.cpu_total(), 2)
    summary["seconds"], summary["cpu_seconds"] = seconds, cpu
    summary["runs"][-1].update(seconds=seconds, cpu_seconds=cpu)
    for key in ("seconds", "cpu_seconds"):
        totals = {}
        for run in summary["runs"]:
            for phase, value in run[key].items():
                totals[phase] = round(totals.get(phase, 0.0) + value, 2)
        summary[f"{key}_all_runs"] = totals


def write_summary(out, args, recipe, model, model_path, record, test, precision, device, name, clock, extra) -> dict:
    from vaelib.evaluation import file_sha256, summarize_bounds
    bounds = [record.bounds[i] for i in sorted(record.bounds)]
    result = summarize_bounds(bounds, test.image_shape, args.k, args.seed) if bounds else {"nll": None, "n": 0}
    complete = len(record.bounds) == len(test)
    previous = []
    if (out / "summary.json").exists():
        try:
            previous = json.loads((out / "summary.json").read_text()).get("runs", [])
        except (OSError, ValueError, AttributeError):
            previous = []
    this_run = {"device": str(device), "device_name": name,
                "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - clock.elapsed())),
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
                "images_evaluated": len(record.bounds) - extra["bounds_before"], "estimates": extra["estimates"]}
    ckpt = load_checkpoint(model_path)
    last = (ckpt.get("history") or [{}])[-1]
    by_phase = {row.get("phase", "?"): round(row["test_elbo"], 3) for row in ckpt.get("history") or []
                if row.get("test_elbo") is not None}  # each phase's last epoch
    protocol = len(test) == 10000 and args.k == 5000
    summary = {
        "nll": result["nll"], "std_error": result.get("std_error"), "bits_per_dim": result.get("bits_per_dim"),
        "n": len(record.bounds), "n_images": len(test), "complete": complete, "k": args.k, "seed": args.seed,
        "protocol": ("the literature's: all 10,000 dynamically binarized MNIST test images, k = 5000" if protocol
                     else f"NOT the literature's protocol: the first {len(test):,} test images, k = {args.k}"),
        "eval_precision": precision, "test_elbo": last.get("test_elbo"), "test_kl": last.get("test_kl"),
        "active_units": last.get("active_units"), "test_elbo_after": by_phase,
        "epochs_trained": ckpt.get("epoch"),
        "checkpoint": model_path.name, "checkpoint_sha256": file_sha256(model_path), "bounds": "bounds.json",
        "recipe": recipe, "parameters": model.num_parameters() if hasattr(model, "num_parameters") else None,
        "runs": previous + [this_run],
        "device": str(device), "device_name": name, "torch": torch.__version__, "cuda": torch.version.cuda,
        "vaelib": vaelib.__version__, "python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
        "quick": args.quick,
    }
    add_timings(summary, clock)
    write_json(out / "summary.json", summary)
    if complete:
        print(f"test NLL (IWAE, k={args.k}): {result['nll']:.2f} nats (standard error {result['std_error']:.2f} over "
              f"{result['n']:,} images) = {result['bits_per_dim']:.4f} bits/dim" + ("" if protocol else
                                                                                    " [not the full protocol]"))
    else:
        shown = f"{result['nll']:.2f} nats so far" if bounds else "no images yet"
        print(f"PARTIAL: {len(record.bounds):,} of {len(test):,} images evaluated ({shown}): run the same command "
              f"again to continue")
    print(f"wrote {out / 'summary.json'} ({minutes(clock.elapsed())}, {clock.cpu_total():.0f} CPU-seconds)", flush=True)
    return summary


def cli(argv=None) -> int:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a timeout's SIGTERM saves the bounds as Ctrl-C does
    try:
        main(argv)
    except RecordError as err:
        print(f"error: {err}" if not str(err).startswith("refused") else str(err), file=sys.stderr)
        return err.code
    except (DataError, CheckpointError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: what was finished is kept in the --out folder (checkpoints each epoch, the bounds file); "
              "run the same command again to continue", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(cli())
