"""Callbacks: what ``vaelib.fit`` does around the training loop, one small class each.

A callback overrides any of four hooks, each given the :class:`Run` (the model, the optimizer,
the history so far, the epoch and step counters):

    on_fit_start(run)              before the first epoch (after resuming)
    on_batch_end(run, estimate)    after each optimizer step (estimate: vaelib.objectives.Estimate)
    on_epoch_end(run, record)      after each epoch and its test evaluation (record: one history row);
                                   setting ``run.stop = True`` ends training after this epoch
    on_fit_end(run)                after the last epoch, also when training stops with an error

``fit`` adds :class:`NaNGuard` and :class:`ProgressBar` itself, and :class:`Checkpoints` and
:class:`CollapseWarning` when it is given ``run_dir`` and ``collapse_threshold``; pass others as
``fit(..., callbacks=[SampleGrid("samples.png"), TensorBoard("runs/x/tensorboard")])``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoints import save
from .distributed import all_sum
from .validation import user_stacklevel

__all__ = ["Run", "Callback", "NaNGuard", "ProgressBar", "Checkpoints", "CollapseWarning", "SampleGrid",
           "TensorBoard", "EpochEnd", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the model holds the last good weights again."""


@dataclass
class Run:
    """The state of one ``fit`` call, shared with the callbacks."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    epochs: int                     # the total to reach
    history: list = field(default_factory=list)
    epoch: int = 0                  # epochs finished (counting resumed ones)
    step: int = 0                   # optimizer steps taken
    batch: int = 0                  # index of the batch just trained, within the epoch
    steps_per_epoch: int = 0
    best: float = -math.inf         # best score so far: test ELBO (train ELBO without test data)
    train: object = None            # the data (vaelib.ImageData)
    test: object = None
    train_args: dict | None = None  # recorded in checkpoints (the command line's flags)
    stop: bool = False              # a callback sets it to end training after this epoch
    best_metric: tuple | None = None  # (history key, higher is better) that run.best scores
    device: torch.device | None = None
    run_dir: object = None          # where the checkpoints go, or None
    config: object = None           # the vaelib.RunConfig of the run

    @property
    def last_batch(self) -> bool:
        return self.batch == self.steps_per_epoch - 1


class Callback:
    """Base class: every hook does nothing."""

    def on_fit_start(self, run: Run) -> None: ...

    def on_batch_end(self, run: Run, estimate) -> None: ...

    def on_epoch_end(self, run: Run, record: dict) -> None: ...

    def on_fit_end(self, run: Run) -> None: ...


def _number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _count(data) -> str:
    """How many images ``data`` holds, all processes' shards together, e.g. ``'10,000'``."""
    from .distributed import world_size
    return f"{len(data) * world_size():,}" if data is not None else "no"


def _state_copy(model) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


# What "best" means, in order of preference: a bound on the test set, the test loss, then the same
# on the training data (a run without a test set); each as (history key, higher is better).
BEST = (("test_elbo", True), ("test_loss", False), ("train_elbo", True), ("train_iwae_bound", True),
        ("train_loss", False))


def best_metric(record: dict) -> tuple[str, bool] | None:
    """The history key "best" is judged by in ``record``, and whether higher is better; None if none."""
    for key, higher in BEST:
        if record.get(key) is not None:
            return key, higher
    return None


def score(record: dict) -> float:
    """``record``'s value of :func:`best_metric`, signed so that higher is better (-inf without one)."""
    metric = best_metric(record)
    if metric is None:
        return -math.inf
    return record[metric[0]] if metric[1] else -record[metric[0]]


class NaNGuard(Callback):
    """Stop on a NaN or infinite loss and put the weights of the last finished epoch back.

    Reading the loss forces a GPU sync, so it is checked every ``every`` steps and at each epoch's end.
    ``fit`` also calls :meth:`diverged` when a step fails before its loss exists (torch.distributions
    refusing a NaN, infinite or out-of-range parameter from the networks).
    """

    def __init__(self, every: int = 50, run_dir=None):
        self.every, self.run_dir = every, run_dir

    def on_fit_start(self, run):
        self.good = _state_copy(run.model)

    def on_batch_end(self, run, estimate):
        if run.batch % self.every and not run.last_batch:
            return
        value = all_sum(estimate.loss.detach()).item()  # NaN on any process stops every process
        if not math.isfinite(value):
            self.diverged(run, f"loss became {value}", run.step)

    def diverged(self, run, what: str, step: int):
        """Put the last good weights back and raise :class:`TrainingDiverged`: ``what`` happened at
        ``step`` (the optimizer steps of the run, the failing one included)."""
        run.model.load_state_dict(self.good)
        saved = self.run_dir is not None and (Path(self.run_dir) / "checkpoint_last.pth").exists()
        where = f"; the checkpoints in {self.run_dir} are the last good ones" if saved else ""
        # from None: torch's error that led here prints every value of a tensor; this line says it all
        raise TrainingDiverged(
            f"{what} at epoch {run.epoch + 1}, step {step}: weights restored to the end of "
            f"epoch {run.epoch}{where}. Try a lower learning rate or gradient clipping (clip_grad=100)") from None

    def on_epoch_end(self, run, record):
        self.good = _state_copy(run.model)


class ProgressBar(Callback):
    """A tqdm bar over all steps, with the loss every 50 steps and one summary line per epoch."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def on_fit_start(self, run):
        from tqdm.auto import tqdm
        total = max(0, run.epochs - run.epoch) * run.steps_per_epoch
        self.bar = tqdm(total=total, disable=not self.enabled or total == 0, desc="training", unit="step",
                        dynamic_ncols=True)

    def on_batch_end(self, run, estimate):
        if self.enabled and (run.batch % 50 == 0 or run.last_batch):
            beta = "" if estimate.beta is None else f"{estimate.beta:.3g}"
            self.bar.set_postfix(epoch=run.epoch + 1, loss=f"{estimate.loss.item():.2f}", beta=beta, refresh=False)
        self.bar.update(1)

    def on_epoch_end(self, run, record):
        if not self.enabled:
            return
        train = ", ".join(f"{k[6:].replace('_', ' ')} {v:.2f}" for k, v in record.items()
                          if k.startswith("train_") and k != "train_reconstruction" and _number(v))
        if "test_elbo" in record and "active_units" in record:   # a vaelib.VAE's own report
            test = (f"  test ELBO {record['test_elbo']:.2f} ({_count(run.test)} images)  KL {record['test_kl']:.2f}  "
                    f"active units {record['active_units']}/{run.model.latent_dim}")
        else:  # any other model (a user's, a hierarchy): what its objective reports
            test = "".join(f"  test {k[5:].replace('_', ' ')} {v:.2f}" for k, v in record.items()
                           if k.startswith("test_") and _number(v))
            test += f" ({_count(run.test)} images)" if test else ""
        beta = f"  beta {record['beta']:.3g}" if "beta" in record else ""
        steps = "".join(f"  {record[k]} steps {k[:-6]}" for k in ("clipped_steps", "skipped_steps") if k in record)
        self.bar.write(f"epoch {record['epoch']}/{run.epochs}  train {train}{test}{beta}{steps}  "
                       f"{record['seconds']:.1f}s")

    def on_fit_end(self, run):
        self.bar.close()


class Checkpoints(Callback):
    """Every epoch: ``checkpoint_last.pth``, ``checkpoint_best.pth`` (when the score improved) and
    ``history.csv`` in ``run_dir``. Each file is written atomically."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)

    def on_fit_start(self, run):
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def _save(self, name, run):
        save(run.model, self.run_dir / name, optimizer=run.optimizer, epoch=run.epoch, history=run.history,
             train_args=run.train_args, data=run.train, run_config=_run_config(run), **_best_fields(run))

    def on_epoch_end(self, run, record):
        if score(record) > run.best:
            run.best, run.best_metric = score(record), best_metric(record)
            self._save("checkpoint_best.pth", run)
        self._save("checkpoint_last.pth", run)
        run.history.to_csv(self.run_dir / "history.csv")


def _run_config(run) -> dict | None:
    return None if run.config is None else run.config.to_dict()


def _best_fields(run) -> dict:
    """What a checkpoint records of "best": the metric, its value, and ``best_test_elbo`` where it is a bound."""
    metric = getattr(run, "best_metric", None)
    if metric is None:
        return {"best_test_elbo": None if math.isinf(run.best) else run.best}
    key, higher = metric
    # save writes best_test_elbo (vaelib 0.2's field) from it: the value when the metric is the test ELBO
    return {"best": {"metric": key, "value": run.best if higher else -run.best, "higher_is_better": higher}}


class CollapseWarning(Callback):
    """Warn (once) when the mean test KL per latent dimension falls below ``threshold`` nats: the
    decoder has learned to ignore z. With ``run_dir``, also save ``checkpoint_posterior_collapse.pth``."""

    def __init__(self, threshold: float = 0.01, run_dir=None):
        self.threshold, self.run_dir, self.warned = threshold, run_dir, False

    def on_epoch_end(self, run, record):
        if self.warned or "test_kl" not in record or not getattr(run.model, "latent_dim", None):
            return
        self.run_dir = self.run_dir if self.run_dir is not None else run.run_dir
        kl_per_dim = record["test_kl"] / run.model.latent_dim
        if kl_per_dim < self.threshold:
            self.warned = True
            msg = (f"posterior collapse: mean KL per latent dimension {kl_per_dim:.4f} nats < {self.threshold} at "
                   f"epoch {record['epoch']} (the decoder ignores z; try KL annealing)")
            if self.run_dir is not None:
                path = Path(self.run_dir) / "checkpoint_posterior_collapse.pth"
                save(run.model, path, epoch=run.epoch, history=run.history, train_args=run.train_args,
                     data=run.train, run_config=_run_config(run), **_best_fields(run))
                msg += f"; saved {path}"
            warnings.warn(msg, stacklevel=user_stacklevel())  # at the user's fit(...) line


def _fixed_latents(model, n: int, seed: int):
    """The same ``n`` prior samples every epoch (and labels cycling 0..K-1 for a conditional model)."""
    z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    y = torch.arange(n) % model.num_classes if model.num_classes else None
    return z, y


class SampleGrid(Callback):
    """After each epoch, decode the same ``n`` prior samples and write them as one grid image to ``path``."""

    def __init__(self, path, n: int = 64, nrow: int = 8, seed: int = 0):
        self.path, self.n, self.nrow, self.seed = Path(path), n, nrow, seed

    def on_epoch_end(self, run, record):
        from .images import save_image_grid
        z, y = _fixed_latents(run.model, self.n, self.seed)
        images = run.model.decode_mean(z.to(run.model.device), y, torch.Generator(run.model.device).manual_seed(self.seed))
        save_image_grid(images, self.path, nrow=self.nrow)


class TensorBoard(Callback):
    """Log each epoch's numbers (train and test ELBO, reconstruction, KL, beta, active units...) as
    scalars and a grid of ``n`` fixed prior samples as an image, for TensorBoard (``pip install tensorboard``)."""

    def __init__(self, log_dir, n: int = 64, seed: int = 0):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError("the TensorBoard callback needs the tensorboard package: pip install tensorboard "
                              "(or pip install -e '.[tensorboard]')") from None
        self.log_dir, self.n, self.seed, self._writer_class, self.writer = Path(log_dir), n, seed, SummaryWriter, None

    def on_fit_start(self, run):
        self.writer = self._writer_class(str(self.log_dir))

    def on_epoch_end(self, run, record):
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "epoch" and math.isfinite(value):
                self.writer.add_scalar(key.replace("_", "/", 1) if key.startswith(("train_", "test_")) else key,
                                       value, record["epoch"])
        z, y = _fixed_latents(run.model, self.n, self.seed)
        images = run.model.decode_mean(z.to(run.model.device), y, torch.Generator(run.model.device).manual_seed(self.seed))
        self.writer.add_images("samples", images.float().cpu(), record["epoch"])
        self.writer.flush()

    def on_fit_end(self, run):
        if self.writer is not None:
            self.writer.close()


class EpochEnd(Callback):
    """Call ``fn(record, model)`` after each epoch (``fit``'s ``on_epoch_end`` argument)."""

    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, run, record):
        self.fn(record, run.model)

