#!/usr/bin/env python
"""The original project's sampling script, kept so that its README works as written::

    python scripts/generate.py --checkpoint_path pretrained/checkpoint_best.pth --info_only
    python scripts/generate.py --checkpoint_path pretrained/checkpoint_best.pth --num_samples 64 \\
        --output_path samples.png --grid_size 8

It is ``python -m vaelib generate`` with the same flags (``--help`` lists them).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's vaelib, installed or not

from vaelib.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["generate", *sys.argv[1:]]))
