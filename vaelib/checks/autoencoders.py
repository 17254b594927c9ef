"""Checks for notebook 01 (autoencoders and why they do not generate)."""
from __future__ import annotations

__all__: list[str] = []
