"""Training objectives: what each optimizer step of ``vaelib.fit`` maximizes.

An objective is called on one batch, ``objective(model, x, y, step)``, and returns an
:class:`Estimate`: the scalar ``loss`` to minimize (minus the objective, averaged over the batch)
and ``sums``, the batch's sums of the numbers an epoch reports (fit divides them by the number of
images and records them as ``train_<name>``).

* :class:`ELBOObjective`: the ELBO, reconstruction - KL; with ``beta`` (a number, or a schedule
  ``beta(step)`` from vaelib.schedules) the beta-ELBO, reconstruction - beta * KL (notebook 06).
  Reports ``elbo`` (always the true bound, beta = 1), ``reconstruction`` and ``kl``. With
  ``free_bits`` lambda > 0 (Kingma et al. 2016), the KL of each latent dimension, averaged over the
  batch, counts as at least lambda nats: a dimension below that is not pushed further towards the
  prior, which keeps a strong decoder (``pixelcnn``) from switching z off (posterior collapse).
* :class:`IWAEObjective`: the importance-weighted bound L_k with k samples per image (Burda et al.
  2015): a tighter bound than the ELBO, k decoder passes per image. Reports ``iwae_bound``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from .bounds import iwae_bound
from .schedules import Constant
from .validation import positive_number, whole_number

__all__ = ["Estimate", "ELBOObjective", "IWAEObjective", "make_objective", "checked_beta"]


@dataclass
class Estimate:
    """What an objective returns for one batch: ``loss`` (scalar) and ``sums`` (name -> scalar tensor)."""

    loss: torch.Tensor
    sums: dict = field(default_factory=dict)
    beta: float | None = None


def checked_beta(beta):
    """``beta`` as a schedule ``beta(step)``: a number >= 0 becomes :class:`~vaelib.schedules.Constant`, a
    schedule must start at a number >= 0; else one ``ValueError`` saying so.

    A negative beta rewards the KL: q(z|x) runs away from the prior while training looks fine.
    """
    if isinstance(beta, type):  # LinearWarmup instead of LinearWarmup(...)
        raise ValueError(f"beta={beta.__name__} is a class: pass a schedule made from it, "
                         f"e.g. vaelib.schedules.LinearWarmup(beta_max=1.0, warmup_steps=1000)")
    first = beta(0) if callable(beta) else beta
    try:
        value = positive_number("beta", first, allow_zero=True)
    except ValueError:
        if callable(beta):
            raise ValueError(f"beta's schedule {beta!r} starts at beta(0) = {first!r}: a schedule must give "
                             f"numbers >= 0 (the weight on the KL term)")
        raise ValueError(f"beta must be a number >= 0 (the weight on the KL term) or a schedule beta(step) "
                         f"from vaelib.schedules, got {beta!r}")
    return beta if callable(beta) else Constant(value)


class ELBOObjective:
    """The ELBO (``beta = 1``) or the beta-ELBO, optionally with free bits; ``compile=True`` runs it
    through ``torch.compile`` (or a compile mode such as ``"reduce-overhead"``: CUDA graphs on a GPU)."""

    def __init__(self, beta=1.0, compile: bool = False, free_bits: float = 0.0):
        self.schedule = checked_beta(beta)
        self.compile, self.free_bits = compile, float(free_bits)
        if self.free_bits < 0:
            raise ValueError(f"free_bits must be >= 0 nats, got {free_bits}")
        if self.free_bits and compile:
            raise ValueError("compile is not supported with free_bits yet: drop one of them")
        self._compiled = None

    def __call__(self, model, x, y, step: int) -> Estimate:
        beta = self.schedule(step)
        if isinstance(beta, (int, float)) and not beta >= 0:  # a schedule that turns negative later (no GPU sync)
            raise ValueError(f"beta's schedule {self.schedule!r} gives beta = {beta} at step {step}: "
                             f"beta must stay >= 0")
        if self.compile:
            reconstruction, kl = self._compiled_terms(model, x, y)
            loss = -(reconstruction - beta * kl).mean()
        else:
            terms = model.elbo_terms(x, beta=beta, y=y)
            reconstruction, kl, loss = terms.reconstruction, terms.kl, terms.loss
            if self.free_bits:
                loss = -(reconstruction.mean() - beta * self._free_bits_kl(terms, model.latent_dim))
        sums = {"elbo": (reconstruction - kl).sum(), "reconstruction": reconstruction.sum(), "kl": kl.sum()}
        return Estimate(loss, sums, beta)

    def _free_bits_kl(self, terms, latent_dim: int) -> torch.Tensor:
        """sum_j max(lambda, mean_batch KL_j); without per-dimension KLs (a learned prior or a flow
        posterior), the whole KL counts as at least lambda * D."""
        if terms.kl_per_dim is not None:
            return terms.kl_per_dim.mean(0).clamp(min=self.free_bits).sum()
        return terms.kl.mean().clamp(min=self.free_bits * latent_dim)

    def _compiled_terms(self, model, x, y):
        # beta stays outside the compiled graph: a schedule changes it every step, and a Python float
        # inside would make torch.compile recompile each time.
        if self._compiled is None:
            def terms(x, y):
                t = model.elbo_terms(x, y=y)
                return t.reconstruction, t.kl
            mode = self.compile if isinstance(self.compile, str) else None
            self._compiled = torch.compile(terms, mode=mode)
        try:
            return self._compiled(x, y)
        except Exception as err:  # no C++ compiler, an unsupported op, ...: train anyway, eagerly
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                          "training without it", stacklevel=4)
            self.compile = False
            terms = model.elbo_terms(x, y=y)
            return terms.reconstruction, terms.kl

    def __repr__(self) -> str:
        extras = (", compiled" if self.compile else "") + (f", free_bits={self.free_bits:g}" if self.free_bits else "")
        return f"ELBOObjective(beta={self.schedule!r}{extras})"


class IWAEObjective:
    """Maximize L_k: ``k`` samples of z per image, weighted by p(x, z) / q(z|x)."""

    def __init__(self, k: int):
        self.k = whole_number("k", k)

    def __call__(self, model, x, y, step: int) -> Estimate:
        bound = iwae_bound(model, x, self.k, y=model.labels(y, len(x)))
        return Estimate(-bound.mean(), {"iwae_bound": bound.sum()})

    def __repr__(self) -> str:
        return f"IWAEObjective(k={self.k})"


def make_objective(beta=1.0, iwae_k: int = 1, compile: bool = False, free_bits: float = 0.0):
    """The objective that ``fit``'s ``beta``, ``iwae_k``, ``compile`` and ``free_bits`` arguments describe."""
    iwae_k = whole_number("iwae_k", iwae_k)
    if iwae_k == 1:
        return ELBOObjective(beta, compile, free_bits)
    if free_bits:
        raise ValueError("free bits change the ELBO's KL term; IWAE training (iwae_k > 1) has none: drop one of them")
    if (beta.beta if isinstance(beta, Constant) else beta) != 1:
        raise ValueError("IWAE training (iwae_k > 1) maximizes L_k, which has no beta: use beta = 1")
    if compile:
        raise ValueError("compile is not supported with iwae_k > 1 yet: drop one of them")
    return IWAEObjective(iwae_k)
