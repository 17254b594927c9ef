"""Writing files so that nothing the user had is lost: atomic writes, and run names that stay put.

``atomic_write(path)`` writes to a temporary file beside ``path`` and renames it over ``path`` only
once the new content is complete and on disk. A crash, a full disk or Ctrl-C half way leaves the
old file as it was (a reader sees the old file or the new one, never half of one). Ctrl-C during
the write itself is held back until the rename is done, then raised: the file on disk is always a
whole one. A temporary left by a killed process (SIGKILL cannot be held back) is removed by the
next write of the same file.

``run_folder(runs_dir, name)`` turns a run name into a folder that is guaranteed to lie inside
``runs_dir``: one plain folder name, no ``..``, no separators, not absolute.
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import tempfile
import threading
from pathlib import Path

__all__ = ["atomic_write", "run_folder", "describe_os_error", "deferred_interrupt", "named_os_error"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def deferred_interrupt():
    """Hold back SIGINT (Ctrl-C) inside the block and raise ``KeyboardInterrupt`` once it ends.

    Only the main thread can install signal handlers; elsewhere the block runs unprotected.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    except ValueError:  # not the main interpreter: nothing to defer
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def _stale_temporaries(path: Path):
    return path.parent.glob(f".{path.name}.*.tmp")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs):
    """Open a temporary file for writing; on success it replaces ``path`` in one rename.

    The folder must exist. Yields the open file. Permissions follow the user's umask, as a plain
    ``open`` would give them.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    for stale in _stale_temporaries(path):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files
        with deferred_interrupt():
            f = os.fdopen(fd, mode, **open_kwargs)
            try:
                try:
                    yield f
                except OSError as err:  # a write inside the block (an image writer's, say): name the file too
                    raise named_os_error(err, path) from None
                try:
                    f.flush()
                    os.fsync(f.fileno())
                    f.close()
                except OSError as err:  # a full disk shows here: name the file the user asked for
                    raise named_os_error(err, path) from None
            except BaseException:
                with contextlib.suppress(OSError):
                    f.close()  # after a failed write its buffer fails again: the first error is the one to report
                raise
            os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def named_os_error(err: OSError, path: str | os.PathLike) -> OSError:
    """``err`` as an OSError of the same kind (errno) whose filename is ``path``, unless it names one.

    A buffered write or a flush that fails (a full disk, a file-size limit) says no file name (or the
    number of its file descriptor), and a failure while writing a temporary file should name the
    file the user asked for.
    """
    if isinstance(err.filename, (str, bytes, os.PathLike)) or err.errno is None:
        return err
    return OSError(err.errno, err.strerror or os.strerror(err.errno), str(path))


def describe_os_error(err: OSError, action: str = "write") -> str:
    """One line for a failed read or write: what, where, and what to do about it."""
    where = err.filename or "the file"
    if err.errno == errno.ENOSPC:
        return f"no space left on the disk while writing {where}: free some space and run again"
    if err.errno == getattr(errno, "EDQUOT", None):
        return f"no space left in your disk quota while writing {where}: free some space, or ask for a larger quota"
    if err.errno == errno.EFBIG:
        return (f"cannot write {where}: the file would be larger than this system allows (a file-size limit such "
                f"as 'ulimit -f', or the file system's largest file): raise the limit, or write to another disk")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot {action} {where}: permission denied (choose a folder you can {action}, or fix its permissions)"
    if err.errno == errno.ENOTDIR:
        return f"cannot {action} {where}: a part of that path is a file, not a folder"
    if err.errno == errno.EISDIR:
        return f"cannot {action} {where}: it is a folder; give a file name"
    if err.errno == errno.ENOENT:
        return f"cannot {action} {where}: no such file or folder"
    return f"cannot {action} {where}: {err.strerror or err}"


def run_folder(runs_dir: str | os.PathLike, name: str) -> Path:
    """``runs_dir / name``, after checking that ``name`` is one plain folder name.

    Raises ``ValueError`` for an empty name, ``.`` or ``..``, a name with a path separator, an
    absolute path, or one whose folder would resolve outside ``runs_dir`` (through a link).
    """
    if (not name or name.strip() != name or name in (".", "..") or any(c in name for c in "/\\\0")
            or not name.isprintable()):  # a newline or escape sequence would garble every line that names the run
        raise ValueError(f"run name {name!r} is not a plain folder name: use letters, digits, '-', '_' or '.', "
                         f"without '/' or '..' (the run goes to {Path(runs_dir) / '<name>'})")
    runs = Path(runs_dir)
    folder = runs / name
    if runs.resolve() not in folder.resolve().parents:
        raise ValueError(f"run folder {folder} resolves to {folder.resolve()}, outside {runs}: "
                         f"remove that link or choose another run name")
    return folder


def check_writable(path: str | os.PathLike) -> None:
    """Refuse, before any work, an output file that cannot be written: a folder, a path below a file,
    or a folder without write permission (``ValueError``, one line). Missing folders are fine: they
    are created when the file is written."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise ValueError(f"output path {path} is a folder: give a file name, e.g. {path / 'samples.png'}")
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write {path}: no permission to write in {folder}")
