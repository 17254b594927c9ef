#!/usr/bin/env python
"""The original project's training script, kept so that its README works as written::

    python scripts/train.py my_run --likelihood_type mse --num_epochs 100

It is ``python -m vaelib train`` with the same flags (``--help`` lists them).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's vaelib, installed or not

from vaelib.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
