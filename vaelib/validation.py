"""Argument checks shared by the library's public functions: a wrong argument fails at once, with a
``ValueError`` that names it, instead of deep inside torch (or, worse, building something broken)."""
from __future__ import annotations

import math
import operator
import sys

__all__ = ["whole_number", "positive_number", "matching_images", "image_batch", "user_stacklevel"]


def whole_number(name: str, value, low: int = 1) -> int:
    """``value`` as an int, or ``ValueError`` if it is not a whole number ``>= low`` (bools are refused)."""
    try:
        number = operator.index(value)  # int, numpy and 0-d integer tensors; never 2.5 or "3"
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    return number


def positive_number(name: str, value, allow_zero: bool = False) -> float:
    """``value`` as a float, or ``ValueError`` unless it is finite and positive (or zero, if allowed)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")
    return number


def matching_images(name: str, shape, expected) -> None:
    """``ValueError`` unless images of shape ``shape`` ``(C, H, W)`` are the ``expected`` ones.

    ``expected`` is the model's ``image_shape``; ``None`` (a hand-built model not yet fitted) takes anything.
    """
    if expected is None or tuple(shape) == tuple(expected):
        return
    raise ValueError(f"{name} holds images of shape {tuple(shape)} (C, H, W), the model takes {tuple(expected)}: "
                     f"pass images of the model's shape (same channels; resize with image_size=)")


def image_batch(name: str, x, expected) -> None:
    """``ValueError`` unless the tensor ``x`` is a batch of images ``(B, C, H, W)`` with ``(C, H, W) == expected``."""
    if expected is None or (x.dim() == 4 and tuple(x.shape[1:]) == tuple(expected)):
        return
    expected = tuple(expected)
    hint = "add the batch dimension, x[None]" if tuple(x.shape) == expected else "pass images of the model's shape"
    raise ValueError(f"{name} must be a batch of images (B, {', '.join(map(str, expected))}) for this model, "
                     f"got shape {tuple(x.shape)}: {hint}")


def user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning of its caller at the first line outside vaelib (the
    user's ``fit(...)``, however deep inside vaelib the warning is raised)."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == "vaelib":
        frame, level = frame.f_back, level + 1
    return level
