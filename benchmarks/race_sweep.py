"""Tune the race recipe: vaelib's side of the time-to-quality race for a grid of recipes.

Runs only vaelib's side (the reference loop does not change with the recipe; its time is in
``benchmarks/results/race-cpu.json``), one recipe after the other, and prints the training seconds
until the binarized test -ELBO reaches the target, or the best -ELBO when it does not.

    python benchmarks/race_sweep.py --arch mlp --batch_size 256 512 --lr 3e-3 --horizon 12 15 18
    python benchmarks/race_sweep.py --arch conv --batch_size 256 --lr 3e-3 4e-3 --horizon 8 10
    python benchmarks/race_sweep.py --quick --horizon 2 3   # seconds: a smoke test, numbers meaningless
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import throughput  # noqa: E402  (benchmarks/ is on sys.path when this file runs)
from vaelib import MNIST, pick_device


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=sorted(throughput.RECIPES), default="mlp")
    parser.add_argument("--batch_size", type=int, nargs="+")
    parser.add_argument("--lr", type=float, nargs="+")
    parser.add_argument("--horizon", type=int, nargs="+", help="epochs the cosine decay spans")
    parser.add_argument("--warmup", type=int, nargs="+")
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"])
    parser.add_argument("--minutes", type=float, default=5.0, help="give up a recipe after this")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    parser.add_argument("--quick", action="store_true", help="a few hundred images, an easy target: checks that it runs")
    args = parser.parse_args(argv)

    device = pick_device(args.device)
    base = throughput.RECIPES[args.arch]
    grid = {key: getattr(args, key) or [base[key]] for key in base}
    train = MNIST("train", binarize="dynamic", subset=512 if args.quick else None, device=device)
    test = MNIST("test", binarize="dynamic", subset=256 if args.quick else None, device=device)
    target = 540.0 if args.quick else throughput.TARGETS[args.arch]
    print(f"{args.arch}: seconds to test -ELBO {target:g} nats on {device}; the shipped recipe is {base}")
    rows = []
    for values in itertools.product(*grid.values()):
        recipe = dict(zip(grid, values))
        seconds, curve = throughput.race_vaelib(args.arch, device, train, test, target, args.minutes * 60, recipe)
        rows.append({"recipe": recipe, "seconds": seconds, "epochs": len(curve), "curve": curve})
        result = f"{seconds:6.1f} s in {len(curve)} epochs" if seconds else \
            f"not reached (best {min(c[1] for c in curve):.2f} in {len(curve)} epochs)"
        print(f"  {recipe}: {result}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"arch": args.arch, "device": str(device), "target": target,
                                              "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
