"""CPU threads: how many cores torch's CPU kernels use for a block of work.

torch uses one thread per core by default. On a shared or busy machine (another job, a laptop
running a browser, a CI runner) its threads wait for each other, and one thread can be several
times faster: 4-7x was measured on a loaded 2-core machine, with identical numbers. ``fit``
(``threads=``), ``vaelib train --threads`` and ``vaelib evaluate --threads`` set it for their run
and put the previous count back afterwards; the count never changes what is computed.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from .validation import whole_number

__all__ = ["cpu_threads"]


@contextmanager
def cpu_threads(n: int | None):
    """Run the block with torch's CPU thread count set to ``n`` (``None``: as it is), then restore it."""
    if n is None:
        yield
        return
    n = whole_number("threads", n, 1)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
