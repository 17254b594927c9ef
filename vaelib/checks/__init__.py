"""Checks for the exercises: call one on your own function and read what it says.

Each check runs your function on several cases, compares it with the reference, and prints either
one success line or what is wrong with a hint (the usual mistakes are recognized by the numbers
they produce: a flipped sign, a missing sum over dimensions, a variance where a log-variance was
meant). The reference solution is never shown. Every check returns ``True`` or ``False``.

    from vaelib.checks import check_gaussian_kl
    check_gaussian_kl(my_kl)

For grading, set ``VAELIB_CHECKS_STRICT=1``: a failing check then raises ``AssertionError``, so a
notebook run under nbval (``pytest --nbval-lax student/``) fails where a check fails.
"""
from __future__ import annotations

# One module per notebook, in course order, then the capstone projects; each lists its checks in __all__.
from . import (introduction, autoencoders, elbo, kl, reparameterization,
               training, beta, latent_space, evaluation, conditional, priors, capstone)
from .autoencoders import *  # noqa: F401,F403
from .beta import *  # noqa: F401,F403
from .capstone import *  # noqa: F401,F403
from .conditional import *  # noqa: F401,F403
from .elbo import *  # noqa: F401,F403
from .evaluation import *  # noqa: F401,F403
from .introduction import *  # noqa: F401,F403
from .kl import *  # noqa: F401,F403
from .latent_space import *  # noqa: F401,F403
from .priors import *  # noqa: F401,F403
from .reparameterization import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403

__all__ = [name for module in (introduction, autoencoders, elbo, kl, reparameterization,
                                  training, beta, latent_space, evaluation, conditional, priors, capstone)
           for name in module.__all__]
