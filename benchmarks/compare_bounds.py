"""Compare two `vaelib evaluate --bounds` files of the same images, image by image.

Made for the question "does bf16 move the NLL?": evaluate the same images twice, once with
``--precision fp32`` and once with ``--precision bf16`` (the same seed, so the same binarization and
the same samples of z), then

    python benchmarks/compare_bounds.py fp32.json bf16.json

prints both NLLs, the mean per-image difference with its standard error, the largest difference,
and the standard error of the NLL itself, against which the difference is to be judged.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from vaelib.evaluation import BoundsRecord  # noqa: E402


def compare(path_a, path_b) -> dict:
    stored_a, stored_b = BoundsRecord._read(path_a), BoundsRecord._read(path_b)
    common = sorted(set(stored_a["bounds"]) & set(stored_b["bounds"]))
    if len(common) < 2:
        raise SystemExit(f"error: {path_a} and {path_b} share {len(common)} images: evaluate the same ones")
    a = [stored_a["bounds"][i] for i in common]
    b = [stored_b["bounds"][i] for i in common]
    diff = [y - x for x, y in zip(a, b)]
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    sd = lambda v: math.sqrt(sum((t - mean(v)) ** 2 for t in v) / (len(v) - 1))  # noqa: E731
    return {"n": len(common), "nll_a": -mean(a), "nll_b": -mean(b), "nll_std_error": sd(a) / math.sqrt(len(a)),
            "diff_mean": -mean(diff), "diff_std_error": sd(diff) / math.sqrt(len(diff)),
            "diff_max": max(abs(d) for d in diff)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    args = parser.parse_args(argv)
    r = compare(args.a, args.b)
    print(f"{r['n']:,} images: NLL {r['nll_a']:.3f} ({args.a}) and {r['nll_b']:.3f} ({args.b}) nats, "
          f"standard error {r['nll_std_error']:.2f}")
    print(f"per-image NLL difference (b - a): {r['diff_mean']:+.4f} +- {r['diff_std_error']:.4f} nats "
          f"(mean and its standard error), largest {r['diff_max']:.2f}")
    return r


if __name__ == "__main__":
    main()
