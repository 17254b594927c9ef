"""A training run: how it goes (:class:`RunConfig`), where it is written (:class:`RunClaim`), and what
its checkpoints hold (:func:`stored_data`, :func:`model_to_train`, :func:`describe`, :func:`sample_grid`).
This is the library behind ``python -m vaelib train|generate``, callable from a notebook.

    config = RunConfig(epochs=30, lr=3e-3, batch_size=256, lr_schedule="cosine")
    history = vaelib.fit(model, train, test, config=config)      # or fit(..., epochs=30, lr=3e-3, ...)

A :class:`RunConfig` is everything ``fit`` needs besides the model, the data, the objective and the
callbacks. Each checkpoint of the run stores it (``run_config``), so ``fit(model, train, test,
resume_from=path)`` continues a run as it was set up; settings given again override it (a larger
``epochs`` to train on, a lower ``lr`` to finish).

The run's folder:

    claim = RunClaim("runs/my_run", resume_if_exists=False)
    checkpoint = claim.acquire()     # None: a new run; else the checkpoint_last.pth to continue
    try:
        ...                          # train, writing into runs/my_run
    finally:
        claim.release()              # the lock goes; a run that wrote nothing leaves no folder

    with RunClaim("runs/my_run", resume_if_exists=True) as checkpoint:   # the same, as a block
        ...

Any non-empty run folder is an existing run, continued only when asked to. The folder is claimed
at the moment it is checked, by creating a lock file in it exclusively (``O_EXCL``): of two
processes started with the same run name, one trains and the other is refused, instead of both
training and one silently overwriting the other's checkpoints. A lock left by a process that no
longer runs (killed, or a machine that crashed) is taken over.

A run's checkpoints, read back (each function takes a checkpoint path or a model from ``vaelib.load``):

    print(describe("runs/my_run/checkpoint_best.pth"))              # generate --info_only
    sample_grid("runs/my_run/checkpoint_best.pth", "samples.png")   # generate
    test = stored_split("runs/my_run/checkpoint_best.pth", "test")  # the data it was trained on
    model = model_to_train("runs/my_run/checkpoint_last.pth")       # to continue it, or fine-tune it
"""
from __future__ import annotations

import dataclasses
import errno
import os
import socket
from pathlib import Path

from .precision import checked_precision
from .validation import positive_number, whole_number

__all__ = ["RunConfig", "RunClaim", "RunFolderError", "LOCK_NAME", "LR_SCHEDULES", "stored_data", "stored_split",
           "model_to_train", "describe", "printable", "grid_labels", "sample_grid"]

LR_SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """How one training run goes. Every field is a plain value, stored in the run's checkpoints.

    Attributes:
        epochs: the total number of epochs, counting those of a resumed run.
        lr: Adam's learning rate (``lr_schedule`` multiplies it step by step).
        batch_size: images per optimizer step (per process, under torchrun).
        seed: seeds the shuffling, the dynamic binarization and every sample of z, epoch by epoch,
            so a resumed run repeats the epochs an uninterrupted run would have made.
        clip_grad: clip the gradient norm to this value (``None``: no clipping); each epoch's record counts the
            steps it clipped, ``clipped_steps``.
        skip_grad: skip the update of a step whose gradient norm (before clipping) exceeds this value or is not
            finite (VDVAE's skip threshold); each epoch's record counts them, ``skipped_steps``. A threshold
            below every step's norm would skip every update and stall the run for ever (openai/vdvae #25), so
            an epoch that skipped all its steps stops the run with ``TrainingDiverged``, naming the norms seen.
        precision: ``"fp32"``, or ``"bf16"`` autocast of the forward pass (vaelib.precision).
        lr_schedule: ``"constant"``, or ``"cosine"``: decay to 0 along a cosine by the last step of
            ``epochs``; or a function ``f(step)``, the factor of each step (not stored: pass it again
            to resume). ``warmup_steps`` > 0 first raises the rate linearly from 0.
        warmup_steps: optimizer steps of linear learning-rate warm-up.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``; ``None`` picks CUDA, then MPS, then CPU.
        eval_batch_size: images per batch of the test evaluation after each epoch.
        threads: torch's CPU threads during the run (``None``: torch's default, one per core); 1 can be
            several times faster on a busy or shared machine (vaelib.threads). Restored afterwards.
        progress: show a progress bar and one line per epoch.
        command: the command line that started the run (``vaelib train`` records its flags here, and
            ``generate --info_only`` shows them); ``None`` from Python.
    """

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 128
    seed: int = 0
    clip_grad: float | None = None
    skip_grad: float | None = None
    precision: str = "fp32"
    lr_schedule: object = "constant"
    warmup_steps: int = 0
    device: str | None = None
    eval_batch_size: int = 1000
    threads: int | None = None
    progress: bool = True
    command: dict | None = None

    def __post_init__(self):
        whole_number("epochs", self.epochs, 0)
        positive_number("lr", self.lr)
        whole_number("batch_size", self.batch_size)
        whole_number("seed", self.seed, 0)
        if self.clip_grad is not None:
            positive_number("clip_grad", self.clip_grad)
        if self.skip_grad is not None:
            positive_number("skip_grad", self.skip_grad)
        checked_precision(self.precision)
        if isinstance(self.lr_schedule, type):  # WarmupCosine instead of WarmupCosine(...): it would fail at step 0
            raise ValueError(f"lr_schedule={self.lr_schedule.__name__} is a class: pass an instance made from it, "
                             f"e.g. vaelib.schedules.WarmupCosine(total_steps)")
        if not (self.lr_schedule in LR_SCHEDULES or callable(self.lr_schedule)):
            raise ValueError(f"lr_schedule must be 'constant', 'cosine' or a function f(step) giving the learning "
                             f"rate's factor (e.g. vaelib.schedules.WarmupCosine(total_steps)), got {self.lr_schedule!r}")
        whole_number("warmup_steps", self.warmup_steps, 0)
        if self.device is not None and not isinstance(self.device, str):
            object.__setattr__(self, "device", str(self.device))  # a torch.device: stored by its name
        whole_number("eval_batch_size", self.eval_batch_size)
        if self.threads is not None:
            whole_number("threads", self.threads)
        if not isinstance(self.progress, bool):
            raise ValueError(f"progress must be True or False, got {self.progress!r}")
        if self.command is not None and not isinstance(self.command, dict):
            raise ValueError(f"command must be a dict of the command line's flags, got {type(self.command).__name__}")

    def replace(self, **changes) -> "RunConfig":
        """A copy with ``changes``; an unknown name is one line that lists the known ones."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown run setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: the "
                             f"settings are {', '.join(f.name for f in dataclasses.fields(self))} (vaelib.RunConfig)")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain values, as checkpoints store them (a function ``lr_schedule`` by its repr)."""
        values = dataclasses.asdict(self)
        if callable(self.lr_schedule):
            values["lr_schedule"] = f"function: {self.lr_schedule!r}"
        return values

    @classmethod
    def from_dict(cls, values: dict, lr_schedule=None) -> "RunConfig":
        """The config a checkpoint stored; a run that had its own ``lr_schedule`` function needs it again."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in known}  # a newer vaelib's extra settings: ignored
        stored = values.get("lr_schedule", "constant")
        if stored not in LR_SCHEDULES:
            if lr_schedule is None:
                raise ValueError(f"the run used its own learning-rate schedule ({stored}): pass it again to resume, "
                                 f"fit(..., lr_schedule=...)")
            values["lr_schedule"] = lr_schedule
        return cls(**values)

LOCK_NAME = ".vaelib-run.lock"


class RunFolderError(ValueError):
    """The run folder cannot be used as asked: it exists, another process trains it, or it holds no run."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


class RunClaim:
    """The claim of one process on one run folder (see the module's docstring).

    Args:
        run_dir: the run's folder (``runs_dir / run_name``, from vaelib.files.run_folder).
        resume_if_exists: continue an existing run (its ``checkpoint_last.pth``) instead of refusing it.
        lock: take the lock (``False`` for the other processes of a torchrun run: rank 0 holds it).
    """

    def __init__(self, run_dir, resume_if_exists: bool = False, lock: bool = True):
        self.run_dir, self.resume_if_exists, self.lock = Path(run_dir), resume_if_exists, lock
        self.lock_path = self.run_dir / LOCK_NAME
        self.created: list[Path] = []
        self.held = False

    def acquire(self) -> Path | None:
        """Claim the folder; return the checkpoint to resume, or ``None`` for a new run.

        Raises RunFolderError (one line, saying what to do) for a run that exists and is not to be
        resumed, one that another process trains right now, or a folder that holds files but no run.
        """
        name = self.run_dir.name
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise RunFolderError(f"{self.run_dir} is a file, not a run folder: choose another run name or runs folder")
        if self.lock:
            self.created = [p for p in [self.run_dir, *self.run_dir.parents] if not p.exists()]
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._lock(name)
        try:
            return self._existing(name)
        except BaseException:
            self.release()
            raise

    def _lock(self, name: str) -> None:
        for attempt in range(2):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if attempt == 0 and holder is not None and holder[0] == socket.gethostname() and not _alive(holder[1]):
                    self.lock_path.unlink(missing_ok=True)  # its process is gone: the claim is stale
                    continue
                who = f"process {holder[1]} on {holder[0]}" if holder else "another process"
                raise RunFolderError(
                    f"run {name!r} already exists and {who} is training it right now: wait for it to finish, or "
                    f"choose another run name (if no process uses it, delete {self.lock_path})") from None
            with os.fdopen(fd, "w") as f:
                f.write(f"{socket.gethostname()} {os.getpid()}\n")
            self.held = True
            return

    def _holder(self) -> tuple[str, int] | None:
        try:
            host, pid = self.lock_path.read_text().split()
            return host, int(pid)
        except (OSError, ValueError):
            return None

    def _existing(self, name: str) -> Path | None:
        contents = [p for p in self.run_dir.iterdir() if p.name != LOCK_NAME] if self.run_dir.is_dir() else []
        if not contents:
            return None
        if not self.resume_if_exists:
            raise RunFolderError(f"run {name!r} already exists ({self.run_dir} is not empty): resume it "
                                 f"(resume_if_exists=True), or choose another run name")
        last = self.run_dir / "checkpoint_last.pth"
        if not last.exists():
            raise RunFolderError(f"run folder {self.run_dir} holds files but no checkpoint_last.pth to resume from: "
                                 f"choose another run name (its files are left as they are)")
        return last

    def release(self) -> None:
        """Give the folder up; remove the folders ``acquire`` created if nothing was written in them."""
        if self.held:
            self.lock_path.unlink(missing_ok=True)
            self.held = False
        for folder in self.created:  # deepest first
            try:
                folder.rmdir()  # only ever removes an empty folder
            except OSError as err:
                if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                    raise
                break
        self.created = []

    def __enter__(self) -> Path | None:
        """``with RunClaim(run_dir) as resume:``: :meth:`acquire` on entry, :meth:`release` on exit."""
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# A run's checkpoints, read back: the data it was trained on, its model, its description, its samples.
# Every function below takes a checkpoint path or a model loaded from one (vaelib.load).

def _model(checkpoint, device="cpu"):
    """``checkpoint`` itself when it is a model; else the model the checkpoint file holds, on ``device``."""
    import torch

    from .checkpoints import load
    return checkpoint if isinstance(checkpoint, torch.nn.Module) else load(checkpoint, device=device)


def _stored(checkpoint) -> dict:
    """The checkpoint dict of a path, a dict, or a model loaded from a checkpoint."""
    import torch

    from .checkpoints import load_checkpoint
    if isinstance(checkpoint, dict):
        return checkpoint
    if not isinstance(checkpoint, torch.nn.Module):
        return load_checkpoint(checkpoint)  # any module's checkpoint records its data, even one vaelib cannot build
    stored = getattr(checkpoint, "checkpoint", None)
    if stored is None:
        raise ValueError("the model was not loaded from a checkpoint, so there is no record of its run: pass the "
                         "checkpoint's path, or a model from vaelib.load(path)")
    return stored


def stored_data(checkpoint) -> dict:
    """The data a checkpoint was trained on: ``{"dataset", "image_shape", "binarize"}``.

    ``checkpoint`` is a path, a model from ``vaelib.load`` or a checkpoint dict
    (``vaelib.checkpoints.load_checkpoint``). ``dataset`` is a name of ``vaelib.load_dataset``, or
    the name of the user's own images; ``image_shape`` is ``[C, H, W]``; ``binarize`` is ``None``,
    ``"dynamic"`` or ``"static"``. A checkpoint that records no data (format version 1, from before
    vaelib trained on anything else) was trained on 1x28x28 MNIST, binarized as its training
    arguments say.
    """
    ckpt = _stored(checkpoint)
    if ckpt.get("data"):
        return ckpt["data"]
    binarize = (ckpt.get("train_args") or {}).get("binarize")
    return {"dataset": "mnist", "image_shape": [1, 28, 28],
            "binarize": None if binarize in (None, "none") else binarize}


KEEP = "as trained"  # stored_split's default binarization: the checkpoint's own


def stored_split(checkpoint, split: str = "test", *, dataset: str | None = None, binarize=KEEP,
                 subset: int | None = None, device="cpu", root=None):
    """One split of the data set a checkpoint was trained on, prepared as it was (vaelib.ImageData).

    The images get the checkpoint's size and, unless ``binarize`` says otherwise (``None``,
    ``"dynamic"``, ``"static"``), its binarization. ``dataset`` names another data set to load
    instead (at the same image size); it is needed for a model trained on the user's own images,
    which vaelib cannot load by name (a ``ValueError`` says so). ``subset``, ``device`` and ``root``
    are those of ``vaelib.load_dataset``.
    """
    from .data import DATASETS, load_dataset
    stored = stored_data(checkpoint)
    if dataset is None and stored["dataset"] not in DATASETS:
        raise ValueError(f"this model was trained on your own images ({stored['dataset']!r}), which vaelib cannot "
                         f"load by name: pass them to vaelib.evaluation, or pass dataset=NAME")
    return load_dataset(dataset or stored["dataset"], split, stored["binarize"] if binarize == KEEP else binarize,
                        subset, device, root, image_size=stored["image_shape"][-1])


def model_to_train(path):
    """The model checkpoint ``path`` holds, rebuilt from its config with its weights, on the CPU and in
    train mode: ready for ``vaelib.fit``, to continue its run (``resume_from=path``, which also restores
    the optimizer) or to start from its weights (fine-tuning).

    ``model.checkpoint`` holds the rest of the file: ``epoch`` (epochs trained), ``train_args`` (the
    flags of the ``vaelib train`` command that ran it, if one did), ``history``; :func:`stored_data`
    reads its data. A ``CheckpointError`` names what is wrong with a damaged file, or one of an
    architecture vaelib cannot rebuild (load that with ``vaelib.load(path, model=...)``).
    """
    return _model(path).train()


def printable(text) -> str:
    """``text`` with every control character escaped (``\\x1b``, ``\\n``...). Strings read from a file
    (a run name, training arguments) go through here before they reach a terminal, where an escape
    sequence can clear the screen, retitle the window or, on some terminals, set the clipboard."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def describe(checkpoint, path=None) -> str:
    """What a checkpoint holds, in lines (what ``vaelib generate --info_only`` prints): vaelib version,
    architecture, data, epochs, best test ELBO, training arguments, and every layer's shape.

    ``checkpoint`` is a path (loaded on the CPU) or a model from ``vaelib.load``; ``path`` names it on
    the first line (a path names itself). Every control character read from the file is escaped
    (:func:`printable`), so the text is safe to print.
    """
    model = _model(checkpoint)
    ckpt, data = _stored(model), stored_data(model)
    path = checkpoint if path is None and model is not checkpoint else path
    config = model.config
    lines = [f"checkpoint: {path}"] if path is not None else []
    if isinstance(config, dict):   # another of vaelib's models (vaelib.hierarchical, vaelib.vqvae): its arguments
        architecture = f"model: {type(model).__name__}, " + ", ".join(f"{k}={v!r}" for k, v in config.items())
    else:
        architecture = (f"architecture: {config.arch}, latent size {model.latent_dim}, likelihood {config.likelihood}"
                        + (f" ({config.pixelcnn_layers} layers)" if config.pixelcnn_layers > 1 else "")
                        + f", posterior {config.posterior_kind}, prior {config.prior_kind}"
                        + (f", conditional on {model.num_classes} classes" if model.num_classes else ""))
    if type(model).__name__ == "CodePixelCNN":   # a prior over codes: trained on a VQ-VAE's codes, not on images
        codes_of = (ckpt.get("train_args") or {}).get("codes_of")
        grid = tuple(config["grid"])
        trained_on = (f"trained on: the codes of the VQ-VAE {codes_of}, grid {grid}" if codes_of else
                      f"trained on: codes on a grid {grid} (the VQ-VAE they came from is not recorded)")
    elif type(model).__name__ == "DDPM":         # trained on vectors: a VAE's latents
        args = ckpt.get("train_args") or {}
        latents_of = args.get("latents_of") or args.get("vae")
        trained_on = (f"trained on: the latents of the VAE {latents_of} (divided by scale {config['scale']:.4g})"
                      if latents_of else f"trained on: {config['dim']}-dimensional vectors")
    else:
        trained_on = (f"trained on: {data['dataset']}, images {tuple(data['image_shape'])}, "
                      f"binarization {data['binarize'] or 'none'}")
    lines += [f"vaelib version: {ckpt.get('vaelib_version')} (format {ckpt.get('format_version')})",
              architecture, trained_on,
              f"epochs trained: {ckpt.get('epoch', 0)}",
              _best_line(ckpt)]
    args = ckpt.get("train_args") or {}
    if args:
        lines += ["training arguments:", *(f"  {k}: {v}" for k, v in sorted(args.items()))]
    lines += ["layers:", f"  {'name':<34} {'shape':<22} {'parameters':>12}",
              *(f"  {name:<34} {str(tuple(p.shape)):<22} {p.numel():>12,}" for name, p in model.named_parameters()),
              f"  {'total':<57} {sum(p.numel() for p in model.parameters()):>12,}"]
    return "\n".join(printable(line) for line in lines)


def _best_line(ckpt: dict) -> str:
    best = ckpt.get("best_test_elbo")
    if best is None:
        return "best test ELBO: unknown"
    subset = (ckpt.get("train_args") or {}).get("subset")
    on = (f"the first {subset:,} test images (trained with --subset)" if isinstance(subset, int)
          else "the whole test set")
    return f"best test ELBO: {best:.2f} nats on {on}"


def grid_labels(model, n: int, nrow: int = 8, digit: int | None = None):
    """The labels :func:`sample_grid` draws: ``None`` for an unconditional model; for a conditional one
    ``digit`` for every image, or without it one label per row, 0, 1, 2... (row r: r mod the classes)."""
    import torch
    classes = model.num_classes
    if digit is not None and not classes:
        raise ValueError(f"digit={digit} needs a conditional model; this one is unconditional: drop digit=")
    if digit is not None and not 0 <= digit < classes:
        raise ValueError(f"digit={digit}: this model knows labels 0 to {classes - 1}")
    if not classes:
        return None
    labels = torch.full((n,), digit) if digit is not None else torch.arange(n) // nrow % classes
    return labels.to(model.device)


def sample_grid(checkpoint, path, n: int = 64, nrow: int = 8, seed: int = 0, digit: int | None = None,
                temperature: float = 1.0, device="cpu"):
    """Sample ``n`` new images from a trained model and write them as one grid, ``nrow`` images a row
    (PNG, or the format of ``path``'s extension): what ``python -m vaelib generate`` does. Returns the path.

    ``checkpoint`` is a checkpoint path (loaded on ``device``) or a model. z is drawn by a
    ``torch.Generator`` on the model's device seeded with ``seed``, so the grid shows exactly
    ``model.sample(n, temperature=temperature, y=grid_labels(model, n, nrow, digit), generator=...)``.
    ``digit`` picks the label of a conditional model (:func:`grid_labels`); ``temperature`` below 1
    gives cleaner, less varied images (a model with a learned prior takes only 1). A wrong argument is
    a ``ValueError`` raised before anything is sampled.
    """
    import torch

    from .images import image_format, save_image_grid
    image_format(path)  # an unknown extension fails before the sampling, which can be slow (pixelcnn)
    model = _model(checkpoint, device)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    if not hasattr(model, "num_classes"):   # another of vaelib's models: a hierarchy, or a VQ-VAE (which refuses)
        if digit is not None:
            raise ValueError(f"digit={digit} picks the class of a conditional VAE; this {type(model).__name__} is not "
                             "conditional: drop it")
        layers = len(getattr(model, "latent_dims", ()))
        images = model.sample(n, generator=generator, temperature=[temperature] * layers)
        return save_image_grid(images, path, nrow=nrow)
    y = grid_labels(model, n, nrow, digit)
    return save_image_grid(model.sample(n, temperature=temperature, y=y, generator=generator), path, nrow=nrow)
