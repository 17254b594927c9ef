"""Training a VAE: ``fit`` and what it needs (device choice, seeding, the history it returns).

The loop is the one notebook 05 writes out by hand, plus what a real run needs: a progress bar,
per-epoch test evaluation, checkpoints (last, and best by test ELBO), resuming, gradient clipping,
a guard that stops on a NaN/inf loss and restores the last good weights, and a warning when the
posterior collapses (the KL per latent dimension falls to nothing).
"""
from __future__ import annotations

import csv
import math
import os
import time
import warnings
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint, state_dict_mismatch
from .elbo import ELBO, iwae_bound
from .data import as_data
from .evaluation import evaluate_elbo
from .files import atomic_write
from .schedules import Constant
from .validation import positive_number, whole_number

__all__ = ["fit", "make_adam", "History", "TrainingDiverged", "pick_device", "seed_everything", "fast_mode"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the model holds the last good weights again."""


def fast_mode() -> bool:
    """True when ``VAELIB_FAST`` is set to a true value: notebooks and tests then train briefly."""
    return os.environ.get("VAELIB_FAST", "").strip().lower() not in ("", "0", "false", "no")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA, then Apple's MPS, then the CPU."""
    if device is not None and str(device) != "auto":
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"unknown device {str(device)!r}: use cpu, cuda, cuda:N, mps or auto") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} was asked for but CUDA is not available here: use cpu (or auto)")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
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
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or torch version
        return torch.optim.Adam(params, lr=lr)


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


def _compiled_terms(model):
    # beta stays outside the compiled graph: a schedule changes it every step, and a Python float
    # inside would make torch.compile recompile each time.
    def terms(x, y):
        t = model.elbo(x, y=y)
        return t.reconstruction, t.kl
    return torch.compile(terms)


def _run_compiled(terms_fn, model, x, y, beta):
    """Returns (the function to use from now on, the ELBO terms); eager if compilation fails."""
    try:
        reconstruction, kl = terms_fn(x, y)
        return terms_fn, ELBO(reconstruction, kl, float(beta))
    except Exception as err:  # no C++ compiler, an unsupported op, ...: train anyway, eagerly
        warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                      "training without it", stacklevel=3)
        return None, model.elbo(x, beta=beta, y=y)


def _state_copy(model) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def fit(model, train, test=None, *, epochs: int = 10, lr: float = 1e-3, batch_size: int = 128,
        beta=1.0, device=None, seed: int = 0, clip_grad: float | None = None,
        run_dir: str | os.PathLike | None = None, resume_from: str | os.PathLike | None = None,
        train_args: dict | None = None, collapse_threshold: float | None = None,
        eval_batch_size: int = 1000, progress: bool = True, on_epoch_end=None,
        precision: str = "fp32", compile: bool = False, iwae_k: int = 1) -> History:
    """Train ``model`` on ``train`` (a vaelib.data.MNIST) for ``epochs`` epochs with Adam.

    Args:
        beta: a number, or a schedule ``beta(step)`` from vaelib.schedules (step = optimizer steps).
        device: ``None`` picks CUDA, then MPS, then CPU (the data's tensors move there once).
        seed: seeds weights' noise, shuffling and dynamic binarization, per epoch, so a resumed run
            repeats the epochs an uninterrupted run would have made.
        clip_grad: clip the gradient norm to this value (``None``: no clipping).
        run_dir: where to write ``checkpoint_last.pth`` (every epoch), ``checkpoint_best.pth`` (best
            test ELBO, or train ELBO without test data) and ``history.csv``.
        resume_from: a checkpoint to continue from: weights, optimizer state, history, epoch count;
            ``lr`` replaces the saved learning rate (resume with a lower one to finish a run).
            ``epochs`` is the total, so resuming a finished 10-epoch run with ``epochs=10`` does nothing.
        collapse_threshold: warn (and save ``checkpoint_posterior_collapse.pth``) the first time the
            mean KL per latent dimension on the test set falls below this many nats.
        on_epoch_end: called as ``on_epoch_end(record, model)`` after each epoch.
        precision: ``"fp32"``, or ``"bf16"`` to run the forward pass under bf16 autocast (matrix
            products and convolutions in bfloat16, weights, optimizer and loss sums in float32): faster
            on GPUs and on CPUs with AMX/AVX-512-BF16 (benchmarks/RESULTS.md), same ELBO within noise.
        compile: run the ELBO through ``torch.compile`` (needs a C++ compiler on the CPU). Costs
            10-60 s of compilation in the first epoch, then fuses the element-wise work; falls back
            to eager with a warning when compilation fails.
        iwae_k: with k > 1, maximize the importance-weighted bound L_k (Burda et al. 2015) instead
            of the ELBO: k samples of z per image, k decoder passes per step, a tighter bound and
            usually a better log-likelihood. Needs beta = 1; the ``train_elbo`` column then holds
            L_k and ``train_reconstruction``/``train_kl`` are NaN. Not combined with ``compile``.

    Returns:
        A :class:`History`, one dict per epoch: ``epoch``, ``step``, ``beta``, ``train_elbo``,
        ``train_reconstruction``, ``train_kl``, ``test_elbo``, ``test_reconstruction``, ``test_kl``,
        ``active_units``, ``seconds``. ELBOs are in nats per image (higher is better).

    Raises:
        TrainingDiverged: the loss became NaN/inf; the model is restored to the last good epoch and
            the checkpoints on disk are left as they were.
    """
    epochs = whole_number("epochs", epochs, 0)
    batch_size = whole_number("batch_size", batch_size)
    eval_batch_size = whole_number("eval_batch_size", eval_batch_size)
    positive_number("lr", lr)
    if clip_grad is not None:
        positive_number("clip_grad", clip_grad)
    train = as_data(train)
    test = None if test is None else as_data(test)
    if len(train) == 0:
        raise ValueError("the training data holds no images: check its subset or source")
    if test is not None and len(test) == 0:
        raise ValueError("the test data holds no images: pass test=None to train without a test set")
    if epochs == 0 and resume_from is None:
        raise ValueError("epochs=0 trains nothing: epochs is the total number of epochs (at least 1)")
    iwae_k = whole_number("iwae_k", iwae_k)
    if iwae_k > 1 and (beta.beta if isinstance(beta, Constant) else beta) != 1:
        raise ValueError("IWAE training (iwae_k > 1) maximizes L_k, which has no beta: use beta = 1")
    if iwae_k > 1 and compile:
        raise ValueError("compile is not supported with iwae_k > 1 yet: drop one of them")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    device = pick_device(device)
    model.to(device)
    schedule = beta if callable(beta) else Constant(beta)
    optimizer = make_adam(model.parameters(), lr)
    history, start_epoch, best = History(), 0, -math.inf
    if resume_from is not None:
        ckpt = load_checkpoint(resume_from, map_location=device)
        mismatch = state_dict_mismatch(model, ckpt["state_dict"])
        if mismatch:
            raise CheckpointError(f"cannot resume from {resume_from}: its weights do not fit this model ({mismatch})")
        model.load_state_dict(ckpt["state_dict"])
        if ckpt.get("optimizer"):
            optimizer.load_state_dict(ckpt["optimizer"])
            for group in optimizer.param_groups:  # the saved lr would silently win: lowering it is why people resume
                group["lr"] = lr
        history = History(ckpt.get("history", []))
        start_epoch = int(ckpt.get("epoch", len(history)))
        if ckpt.get("best_test_elbo") is not None:
            best = ckpt["best_test_elbo"]
    if epochs <= start_epoch:
        warnings.warn(f"nothing to train: the model has already trained {start_epoch} epochs and epochs={epochs} "
                      f"is the total; raise epochs to continue", stacklevel=2)
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)

    steps_per_epoch = math.ceil(len(train) / batch_size)
    step = start_epoch * steps_per_epoch
    good_state = _state_copy(model)
    collapse_warned = False
    terms_fn = _compiled_terms(model) if compile else None
    bar = tqdm(total=(epochs - start_epoch) * steps_per_epoch, disable=not progress or epochs <= start_epoch,
               desc="training", unit="step", dynamic_ncols=True)
    for epoch in range(start_epoch, epochs):
        model.train()
        seed_everything(seed * 100003 + epoch)  # per-epoch seeds make resuming reproducible
        g = torch.Generator(device=train.device).manual_seed(seed * 100003 + epoch)
        sums = torch.zeros(3, device=device)
        beta_sum, t0 = 0.0, time.perf_counter()
        for i, (x, y) in enumerate(train.batches(batch_size, shuffle=True, generator=g)):
            x = x.to(device, non_blocking=True)
            y = None if y is None else y.to(device, non_blocking=True)
            b = schedule(step)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                if iwae_k > 1:
                    # L_k as the "reconstruction" of an ELBO with zero KL: terms.loss is then -mean L_k
                    bound = iwae_bound(model, x, iwae_k, **model._cond(y))
                    terms = ELBO(bound, torch.zeros_like(bound), 1.0)
                elif terms_fn is not None:
                    terms_fn, terms = _run_compiled(terms_fn, model, x, y, b)
                else:
                    terms = model.elbo(x, beta=b, y=y)
            loss = terms.loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            optimizer.step()
            sums += torch.stack([terms.elbo.sum(), terms.reconstruction.sum(), terms.kl.sum()]).detach()
            beta_sum += b
            step += 1
            # Reading a value forces a GPU sync: check for NaN every 50 steps and at the end.
            if i % 50 == 0 or i == steps_per_epoch - 1:
                value = loss.item()
                if not math.isfinite(value):
                    model.load_state_dict(good_state)
                    bar.close()
                    saved = run_dir is not None and (run_dir / "checkpoint_last.pth").exists()
                    where = f"; the checkpoints in {run_dir} are the last good ones" if saved else ""
                    raise TrainingDiverged(
                        f"loss became {value} at epoch {epoch + 1}, step {step}: weights restored to the end "
                        f"of epoch {epoch}{where}. Try a lower learning rate or gradient clipping (--clip_grad 100)")
                bar.set_postfix(epoch=epoch + 1, loss=f"{value:.2f}", beta=f"{b:.3g}", refresh=False)
            bar.update(1)
        n = len(train)
        tr_elbo, tr_rec, tr_kl = (sums / n).tolist()
        if iwae_k > 1:
            tr_rec = tr_kl = math.nan
        record = {"epoch": epoch + 1, "step": step, "beta": beta_sum / steps_per_epoch,
                  "train_elbo": tr_elbo, "train_reconstruction": tr_rec, "train_kl": tr_kl}
        if test is not None:
            ev = evaluate_elbo(model, test, eval_batch_size, seed=seed)
            record.update(test_elbo=ev["elbo"], test_reconstruction=ev["reconstruction"], test_kl=ev["kl"],
                          active_units=ev["active_units"], kl_per_dim=ev["kl_per_dim"])
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        good_state = _state_copy(model)
        score = record.get("test_elbo", tr_elbo)
        summary = (f"epoch {epoch + 1}/{epochs}  train ELBO {tr_elbo:.2f}  "
                   + (f"test ELBO {record['test_elbo']:.2f}  KL {record['test_kl']:.2f}  "
                      f"active units {record['active_units']}/{model.latent_dim}  " if test is not None else "")
                   + f"beta {record['beta']:.3g}  {record['seconds']:.1f}s")
        if progress:
            bar.write(summary)
        if run_dir is not None:
            state = dict(optimizer=optimizer, epoch=epoch + 1, history=history, train_args=train_args)
            if score > best:
                best = score
                save_checkpoint(run_dir / "checkpoint_best.pth", model, best_test_elbo=best, **state)
            save_checkpoint(run_dir / "checkpoint_last.pth", model, best_test_elbo=best, **state)
            history.to_csv(run_dir / "history.csv")
        else:
            best = max(best, score)
        if collapse_threshold is not None and test is not None and not collapse_warned:
            kl_per_dim = record["test_kl"] / model.latent_dim
            if kl_per_dim < collapse_threshold:
                collapse_warned = True
                msg = (f"posterior collapse: mean KL per latent dimension {kl_per_dim:.4f} nats < "
                       f"{collapse_threshold} at epoch {epoch + 1} (the decoder ignores z; try KL annealing)")
                if run_dir is not None:
                    save_checkpoint(run_dir / "checkpoint_posterior_collapse.pth", model, epoch=epoch + 1,
                                    history=history, train_args=train_args, best_test_elbo=best)
                    msg += f"; saved {run_dir / 'checkpoint_posterior_collapse.pth'}"
                warnings.warn(msg, stacklevel=2)
        if on_epoch_end is not None:
            on_epoch_end(record, model)
    bar.close()
    return history
