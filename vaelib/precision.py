"""Numerical precision of training and evaluation: float32, or bfloat16 autocast where it pays.

``precision="bf16"`` runs the networks' matrix products and convolutions in bfloat16 (autocast);
parameters, optimizer state, log-weights and the KL stay float32. It pays only where the hardware
computes in bfloat16: GPUs from NVIDIA's Ampere on, and CPUs with AVX512-BF16 or AMX (Intel from
Cooper Lake and Sapphire Rapids, AMD from Zen 4). Elsewhere PyTorch emulates it, and it is *slower*
than float32: 10x for the record model's evaluation on an AVX2-only AMD EPYC (benchmarks/RESULTS.md).
"""
from __future__ import annotations

import warnings

import torch

from .validation import user_stacklevel

__all__ = ["PRECISIONS", "checked_precision", "autocast", "native_bf16", "warn_if_emulated"]

PRECISIONS = ("fp32", "bf16")


def checked_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ``ValueError`` naming the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    return precision


def autocast(device: torch.device, precision: str):
    """The context that runs a forward pass at ``precision`` on ``device`` (a no-op for fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def native_bf16(device: torch.device) -> bool | None:
    """Whether ``device`` computes bfloat16 in hardware; ``None`` when PyTorch cannot tell."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8  # Ampere and later
    if device.type == "cpu":
        # The check vLLM and others use; AMX CPUs report AVX512-BF16 too. Private, hence the guard.
        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        return None if probe is None else bool(probe() and torch.backends.mkldnn.is_available())
    return None


def warn_if_emulated(device: torch.device, precision: str) -> None:
    """Warn when bf16 was asked for on a device that would only emulate it (and so run slower)."""
    if precision == "bf16" and native_bf16(device) is False:
        what = "this CPU has no AVX512-BF16 or AMX" if device.type == "cpu" else f"{device} predates Ampere"
        warnings.warn(f"precision bf16: {what}, so PyTorch emulates bfloat16 and runs slower than fp32 "
                      f"(up to 10x): use fp32 here", stacklevel=user_stacklevel())
