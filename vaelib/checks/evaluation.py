"""Checks for notebook 08 (evaluating VAEs)."""
from __future__ import annotations

import math

from ._feedback import _report, _call

__all__ = ['check_bits_per_dim']


def check_bits_per_dim(fn) -> bool:
    """``fn(nats)``: nats per 28x28 image -> bits per pixel."""
    name = "check_bits_per_dim"
    for nats in (80.0, 543.43, 100.0):
        out, error = _call(name, fn, nats)
        if error:
            return _report(name, False, error)
        value = float(out)
        expected = nats / (784 * math.log(2))
        if abs(value - expected) < 1e-6 * max(1.0, expected):
            continue
        if abs(value - nats / math.log(2)) < 1e-6 * nats:
            return _report(name, False, "that is bits per image. Hint: divide by the 784 pixels too")
        if abs(value - nats / 784) < 1e-9 * nats:
            return _report(name, False, "that is nats per pixel. Hint: one nat is 1/ln 2 bits")
        if abs(value - nats * math.log(2) / 784) < 1e-9 * nats:
            return _report(name, False, "you multiplied by ln 2. Hint: bits = nats / ln 2")
        return _report(name, False, "wrong value. Hint: bits/dim = nats / (784 * ln 2)")
    return _report(name, True, "correct (80 nats is about 0.147 bits/dim)")
