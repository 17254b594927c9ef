"""Schedules for beta, the weight on the KL term: small callables ``beta = schedule(step)``.

``step`` counts optimizer steps from 0 (vaelib.training.fit passes it). Starting with a small beta
(KL annealing, "warm-up") lets the decoder learn to use z before the KL term pushes q(z|x) onto
the prior; it is the classic cure for posterior collapse (Bowman et al. 2016). Cyclical annealing
(Fu et al. 2019) repeats the warm-up several times.

    >>> LinearWarmup(beta_max=1.0, warmup_steps=1000)(500)
    0.5
"""
from __future__ import annotations

import math

__all__ = ["Constant", "LinearWarmup", "Cyclical", "Sigmoid", "WarmupCosine", "make_schedule", "SCHEDULES"]


class Constant:
    """beta(step) = beta."""

    def __init__(self, beta: float = 1.0):
        self.beta = float(beta)

    def __call__(self, step: int) -> float:
        return self.beta

    def __repr__(self):
        return f"Constant(beta={self.beta:g})"


class LinearWarmup:
    """beta grows by beta_max / warmup_steps per step from ``start`` and stays at ``beta_max``."""

    def __init__(self, beta_max: float = 1.0, warmup_steps: int = 1000, start: float = 0.0):
        if warmup_steps <= 0:
            raise ValueError(f"warmup_steps must be positive, got {warmup_steps}")
        self.beta_max, self.warmup_steps, self.start = float(beta_max), int(warmup_steps), float(start)

    def __call__(self, step: int) -> float:
        return min(self.beta_max, self.start + step * self.beta_max / self.warmup_steps)

    def __repr__(self):
        return f"LinearWarmup(beta_max={self.beta_max:g}, warmup_steps={self.warmup_steps}, start={self.start:g})"


class Cyclical:
    """Repeat a linear warm-up every ``period`` steps: rise over the first ``ratio`` of each cycle, then hold."""

    def __init__(self, beta_max: float = 1.0, period: int = 1000, ratio: float = 0.5):
        if period <= 0 or not 0 < ratio <= 1:
            raise ValueError(f"need period > 0 and 0 < ratio <= 1, got period={period}, ratio={ratio}")
        self.beta_max, self.period, self.ratio = float(beta_max), int(period), float(ratio)

    def __call__(self, step: int) -> float:
        tau = (step % self.period) / self.period
        return self.beta_max * min(1.0, tau / self.ratio)

    def __repr__(self):
        return f"Cyclical(beta_max={self.beta_max:g}, period={self.period}, ratio={self.ratio:g})"


class Sigmoid:
    """A smooth warm-up: beta_max / (1 + exp(-(step - midpoint) / width))."""

    def __init__(self, beta_max: float = 1.0, midpoint: int = 1000, width: float = 100.0):
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        self.beta_max, self.midpoint, self.width = float(beta_max), int(midpoint), float(width)

    def __call__(self, step: int) -> float:
        t = (step - self.midpoint) / self.width
        return self.beta_max / (1.0 + math.exp(-t)) if t > -700 else 0.0

    def __repr__(self):
        return f"Sigmoid(beta_max={self.beta_max:g}, midpoint={self.midpoint}, width={self.width:g})"


class WarmupCosine:
    """A learning-rate factor: rises linearly from 0 to 1 over ``warmup_steps``, then follows a cosine
    down to ``final`` at ``total_steps`` (and stays there). ``fit(lr_schedule=...)`` multiplies the
    learning rate by it each step: a larger batch can take a larger learning rate this way."""

    def __init__(self, total_steps: int, warmup_steps: int = 0, final: float = 0.0):
        if total_steps <= 0 or not 0 <= warmup_steps < total_steps:
            raise ValueError(f"need 0 <= warmup_steps < total_steps, got {warmup_steps} and {total_steps}")
        self.total_steps, self.warmup_steps, self.final = int(total_steps), int(warmup_steps), float(final)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        t = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * t))

    def __repr__(self):
        return f"WarmupCosine(total_steps={self.total_steps}, warmup_steps={self.warmup_steps}, final={self.final:g})"


SCHEDULES = {"constant": Constant, "linear": LinearWarmup, "cyclical": Cyclical, "sigmoid": Sigmoid}


def make_schedule(name: str, beta_max: float = 1.0, period: int = 1000, start: float = 0.0):
    """Build a schedule by name with one length, ``period`` steps, for all of them.

    ``constant``: beta_max throughout. ``linear``: warm-up from ``start`` over ``period`` steps.
    ``cyclical``: warm-up cycles of ``period`` steps each. ``sigmoid``: midpoint at ``period / 2``.
    """
    if name == "constant":
        return Constant(beta_max)
    if name == "linear":
        return LinearWarmup(beta_max, period, start)
    if name == "cyclical":
        return Cyclical(beta_max, period)
    if name == "sigmoid":
        return Sigmoid(beta_max, period // 2, max(period / 10, 1e-6))
    raise ValueError(f"unknown beta schedule {name!r}: choose one of {', '.join(SCHEDULES)}")
