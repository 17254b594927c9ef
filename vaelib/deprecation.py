"""Old names that still work for one more minor version, each with a ``DeprecationWarning`` that
names its replacement (the list, with the version that removes each, is in CHANGELOG.md)."""
from __future__ import annotations

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
