"""Old names that still work for one more minor version, each with a ``DeprecationWarning`` that
names its replacement (the list, with the version that removes each, is in CHANGELOG.md): renamed
functions and arguments, and the course's modules that moved to ``vaelib.course``."""
from __future__ import annotations

import importlib
import runpy
import sys
import warnings

REMOVED_IN = "0.3"


def deprecated(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new``; ``stacklevel`` 3 points at the caller of
    the function that calls this."""
    warnings.warn(f"{old} is deprecated and goes in vaelib {REMOVED_IN}: use {new}", DeprecationWarning,
                  stacklevel=stacklevel)


def module_getattr(module: str, renamed: dict, namespace: dict):
    """A module ``__getattr__`` (PEP 562) for renamed names: ``renamed`` maps each old name to its new
    one, looked up in ``namespace`` (the module's ``globals()``) and returned with a warning."""
    def __getattr__(name: str):
        if name in renamed:
            deprecated(f"{module}.{name}", f"{module}.{renamed[name]}")
            return namespace[renamed[name]]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return __getattr__


def moved_names(module: str, moved: dict):
    """A module ``__getattr__`` (PEP 562) for names that moved to another module: ``moved`` maps each
    old name to the module that now holds it (imported only when the old name is used)."""
    def __getattr__(name: str):
        if name in moved:
            deprecated(f"{module}.{name}", f"{moved[name]}.{name}")
            return getattr(importlib.import_module(moved[name]), name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return __getattr__


def moved_module(old: str, new: str, name: str) -> None:
    """Called by the stub left at a module's old path (``name``: the stub's ``__name__``): warn, then
    make ``import old`` give ``new`` (the import system returns what ``sys.modules[old]`` holds once the
    stub has run), or, under ``python -m old``, run ``new`` as the script."""
    deprecated(old, new, stacklevel=4)
    if name == "__main__":
        runpy.run_module(new, run_name="__main__", alter_sys=True)
    else:
        sys.modules[old] = importlib.import_module(new)
