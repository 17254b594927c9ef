"""A run folder's life: new, resumed or refused, and claimed by one process at a time.

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

import errno
import os
import socket
from pathlib import Path

__all__ = ["RunClaim", "RunFolderError", "LOCK_NAME"]

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
