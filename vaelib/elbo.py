"""Deprecated: the old name of :mod:`vaelib.bounds` (vaelib 0.1), kept until vaelib 0.3. Every name of
vaelib.bounds (and its old names ``ELBO``, ``elbo``, ``posterior``) is reachable here, with a
``DeprecationWarning``; new code imports from ``vaelib.bounds``."""
import warnings

from . import bounds
from .deprecation import deprecated

RENAMED = {"ELBO": "ELBOTerms", "elbo": "elbo_terms", "posterior": "diagonal_gaussian"}


def __getattr__(name: str):
    value = getattr(bounds, RENAMED.get(name, name))  # an unknown name: bounds' AttributeError
    deprecated(f"vaelib.elbo.{name}", f"vaelib.bounds.{RENAMED.get(name, name)}")
    return value
