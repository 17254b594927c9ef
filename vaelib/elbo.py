"""Deprecated: the old name of :mod:`vaelib.bounds` (vaelib 0.1), kept until vaelib 0.3. Every name of
vaelib.bounds (and its old names ``ELBO``, ``elbo``, ``posterior``) is reachable here, with a
``DeprecationWarning``; new code imports from ``vaelib.bounds``."""
from . import bounds
from .deprecation import deprecated


def __getattr__(name: str):
    new = bounds.RENAMED.get(name, name)
    value = getattr(bounds, new)  # an unknown name: bounds' AttributeError
    deprecated(f"vaelib.elbo.{name}", f"vaelib.bounds.{new}")
    return value
