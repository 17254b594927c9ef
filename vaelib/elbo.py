"""The old name of :mod:`vaelib.bounds` (vaelib 0.1): ``vaelib.elbo.ELBO``, ``vaelib.elbo.elbo``,
``vaelib.elbo.iwae_bound``... keep working. New code imports from ``vaelib.bounds``."""
from .bounds import *  # noqa: F401,F403
from .bounds import ELBO, ELBOTerms, elbo, elbo_terms, iwae_bound, log_importance_weights, posterior  # noqa: F401

__all__ = ["ELBO", "ELBOTerms", "elbo", "elbo_terms", "iwae_bound", "log_importance_weights", "posterior"]
