"""A training run: how it goes (:class:`RunConfig`) and where it is written (:class:`RunClaim`).

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

Any non-empty run folder is an existing run, continued only when asked to. The folder is claimed
at the moment it is checked, by creating a lock file in it exclusively (``O_EXCL``): of two
processes started with the same run name, one trains and the other is refused, instead of both
training and one silently overwriting the other's checkpoints. A lock left by a process that no
longer runs (killed, or a machine that crashed) is taken over.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import socket
from pathlib import Path

from .precision import checked_precision
from .validation import positive_number, whole_number

__all__ = ["RunConfig", "RunClaim", "RunFolderError", "LOCK_NAME", "LR_SCHEDULES"]

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
        clip_grad: clip the gradient norm to this value (``None``: no clipping).
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
        checked_precision(self.precision)
        if isinstance(self.lr_schedule, type) or not (self.lr_schedule in LR_SCHEDULES or callable(self.lr_schedule)):
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
                                 f"(resume_if_exists), or choose another run name")
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
