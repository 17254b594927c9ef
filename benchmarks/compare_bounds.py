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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import torch  # noqa: E402

from vaelib.evaluation import BoundsRecord, summarize_bounds  # noqa: E402


def compare(path_a, path_b) -> dict:
    stored_a, stored_b = BoundsRecord.read(path_a), BoundsRecord.read(path_b)
    common = sorted(set(stored_a["bounds"]) & set(stored_b["bounds"]))
    if len(common) < 2:
        raise SystemExit(f"error: {path_a} and {path_b} share {len(common)} images: evaluate the same ones")
    a = torch.tensor([stored_a["bounds"][i] for i in common])
    b = torch.tensor([stored_b["bounds"][i] for i in common])
    # vaelib's own NLL and standard error of a set of bounds; on b - a it gives the paired difference
    na, nb, nd = (summarize_bounds(v, (1,), k=0, seed=0) for v in (a, b, b - a))
    return {"n": len(common), "nll_a": na["nll"], "nll_b": nb["nll"], "nll_std_error": na["std_error"],
            "diff_mean": nd["nll"], "diff_std_error": nd["std_error"], "diff_max": (b - a).abs().max().item()}


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
