"""Checks for notebook 06 (beta and KL annealing)."""
from __future__ import annotations

from ._feedback import _report, _call

__all__ = ['check_linear_warmup']


def check_linear_warmup(fn) -> bool:
    """``fn(step, beta_max, warmup_steps)``: linear KL warm-up from 0, capped at ``beta_max``."""
    from vaelib.schedules import LinearWarmup
    name = "check_linear_warmup"
    for beta_max, warmup in ((1.0, 100), (4.0, 10)):
        reference = LinearWarmup(beta_max, warmup)
        for step in (0, warmup // 4, warmup // 2, warmup, 3 * warmup):
            out, error = _call(name, fn, step, beta_max, warmup)
            if error:
                return _report(name, False, error)
            value, expected = float(out), reference(step)
            if abs(value - expected) < 1e-9:
                continue
            if step > warmup and value > beta_max:
                return _report(name, False, f"beta keeps growing after the warm-up ({value:g} at step {step}). "
                                            "Hint: cap it at beta_max with min(...)")
            if abs(value - step / warmup) < 1e-9:
                return _report(name, False, "beta_max is ignored. Hint: scale the ramp by beta_max")
            return _report(name, False, f"beta({step}) = {value:g} for beta_max={beta_max:g}, warmup={warmup}: "
                                        "should rise linearly from 0 and reach beta_max at warmup_steps")
    return _report(name, True, "correct at the start, during and after the warm-up")
