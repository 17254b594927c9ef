"""Checks for notebook 07 (exploring the latent space)."""
from __future__ import annotations

import torch

from ._feedback import _report, _call, _close, _as_tensor

__all__ = ['check_slerp']


def check_slerp(fn) -> bool:
    """``fn(z0, z1, t)``: spherical interpolation ``(D,), (D,), (T,) -> (T, D)`` (as vaelib.plotting.slerp)."""
    from vaelib.plotting import lerp, slerp
    name = "check_slerp"
    g = torch.Generator().manual_seed(4)
    t = torch.linspace(0, 1, 7)
    for _ in range(3):
        z0, z1 = torch.randn(16, generator=g), torch.randn(16, generator=g)
        out, error = _call(name, fn, z0.clone(), z1.clone(), t.clone())
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        expected = slerp(z0, z1, t)
        if _close(out, expected, 1e-3):
            continue
        if out.shape == expected.shape and _close(out, lerp(z0, z1, t), 1e-3):
            return _report(name, False, "that is the straight line (lerp). Hint: rotate along the great circle: "
                                        "sin((1-t) omega)/sin(omega) and sin(t omega)/sin(omega)")
        if out.shape == expected.shape and not (_close(out[0], z0, 1e-3) and _close(out[-1], z1, 1e-3)):
            return _report(name, False, "the path does not start at z0 and end at z1. Hint: check t=0 and t=1")
        return _report(name, False, f"wrong values (shape {tuple(out.shape)}, expected {tuple(expected.shape)}). "
                                    "Hint: interpolate the directions on the sphere and the norms linearly")
    return _report(name, True, "correct on 3 random pairs")
