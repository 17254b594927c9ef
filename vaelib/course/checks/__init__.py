"""Checks for the exercises: call one on your own function and read what it says.

Each check runs your function on several cases, compares it with the reference, and prints either
one success line or what is wrong with a hint (the usual mistakes are recognized by the numbers
they produce: a flipped sign, a missing sum over dimensions, a variance where a log-variance was
meant). The reference solution is never shown. Every check returns ``True`` or ``False``.

    from vaelib.course.checks import check_gaussian_kl
    check_gaussian_kl(my_kl)

For grading, set ``VAELIB_CHECKS_STRICT=1``: a failing check then raises ``AssertionError``, so a
notebook run under nbval (``pytest --nbval-lax student/``) fails where a check fails.
"""
# One module per notebook, in course order, then the capstone projects; each lists its checks in __all__.
from . import (introduction, autoencoders, elbo, kl, reparameterization, training, beta, latent_space,  # noqa: E402
               evaluation, conditional, your_own_data, autoregressive, posteriors, priors, hierarchical, vq,
               diffusion, capstone)

_MODULES = (introduction, autoencoders, elbo, kl, reparameterization, training, beta, latent_space, evaluation,
            conditional, your_own_data, autoregressive, posteriors, priors, hierarchical, vq, diffusion, capstone)
__all__ = [name for module in _MODULES for name in module.__all__]
globals().update({name: getattr(module, name) for module in _MODULES for name in module.__all__})
