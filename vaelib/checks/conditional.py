"""Checks for notebook 09 (conditional VAEs)."""
from __future__ import annotations

__all__: list[str] = []
