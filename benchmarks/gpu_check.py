"""The one GPU check: everything that needs a GPU, in one go, within about 8 minutes on one GPU.

    python benchmarks/gpu_check.py                 # on a machine with CUDA: writes benchmarks/results/gpu-<name>.json
    python benchmarks/gpu_check.py --quick         # on the CPU, a few seconds: checks that it runs (a test does this)

It measures, for the MLP 784-400-20 and the default conv VAE:

1. throughput of the pytorch/examples loop (a DataLoader, batch 128) and of vaelib at batch 128 in
   three variants: fp32 on device-resident data with fused Adam (the default), bf16 autocast, and
   ``torch.compile(mode="reduce-overhead")`` (CUDA graphs) with bf16; target >= 10x for the MLP;
2. the same vaelib variants at batch 1024;
3. the time-to-quality race of benchmarks/throughput.py (training seconds until the binarized test
   -ELBO reaches 100 nats for the MLP, 95 for the conv VAE).

It prints one table and writes one JSON record. Each measurement is bounded (one timed epoch; the
race gives up after ``--race-minutes``), so the whole check fits in a short lease of a GPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import throughput  # noqa: E402

import vaelib  # noqa: E402
from vaelib import MNIST, build_vae, fit, pick_device  # noqa: E402
from vaelib.data import DataError, data_root  # noqa: E402

VARIANTS = {"fp32": {}, "bf16": {"precision": "bf16"},
            "bf16+reduce-overhead": {"precision": "bf16", "compile": "reduce-overhead"}}


def time_vaelib(arch, device, batch_size, train, variant):
    """One warm-up epoch (compiles, captures graphs), then one timed epoch: images per second."""
    torch.manual_seed(0)
    model = build_vae(arch, latent_dim=20)
    history = fit(model, train, epochs=2, batch_size=batch_size, device=device, progress=False,
                  **throughput.fit_settings(VARIANTS, variant))
    return len(train) / history["seconds"][1]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CPU, a few hundred images, seconds: it runs")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --quick)")
    parser.add_argument("--race-minutes", type=float, default=2.0, help="give up a side of the race after this")
    parser.add_argument("--out", default=None, help="JSON record (default benchmarks/results/gpu-<name>.json)")
    args = parser.parse_args(argv)
    device = pick_device(args.device or ("cpu" if args.quick else "cuda"))
    n_train = 512 if args.quick else 60000
    variants = ["fp32", "bf16"] if args.quick else list(VARIANTS)
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine()
    root = data_root()
    train = MNIST("train", subset=n_train, device=device)  # grey levels, as the reference's ToTensor gives
    t_start = time.perf_counter()
    print(f"{name} ({device}), torch {torch.__version__}, vaelib {vaelib.__version__}, {n_train:,} training images")
    rows = []
    for arch in ("mlp", "conv"):
        _, ref = throughput.time_reference(arch, device, 128, n_train, 1, root, workers=0 if args.quick else 4)
        row = {"arch": arch, "reference_img_per_s": ref, "vaelib": {}}
        for batch in (128, 1024):
            for variant in variants:
                ours = time_vaelib(arch, device, batch, train, variant)
                row["vaelib"][f"{variant}, batch {batch}"] = {"img_per_s": ours, "ratio": ours / ref}
        rows.append(row)
    race = throughput.race(["mlp", "conv"], device, n_train, root, 0.05 if args.quick else args.race_minutes,
                           {"mlp": 540.0, "conv": 540.0} if args.quick else throughput.TARGETS)
    seconds = time.perf_counter() - t_start

    print(f"\n{'model':<6} {'loop':<34} {'img/s':>12} {'vs reference':>13}")
    for row in rows:
        print(f"{row['arch']:<6} {'pytorch/examples, batch 128':<34} {row['reference_img_per_s']:>12,.0f} {'1.00x':>13}")
        for variant, v in row["vaelib"].items():
            print(f"{'':<6} {'vaelib ' + variant:<34} {v['img_per_s']:>12,.0f} {v['ratio']:>12.2f}x")
    for r in race:
        show = lambda s: f"{s:.1f} s" if s else "not reached"  # noqa: E731
        print(f"race {r['arch']:<5} to {r['target_nats']:g} nats: reference {show(r['reference_seconds'])}, "
              f"vaelib {show(r['vaelib_seconds'])}" + (f" ({r['speedup']:.2f}x)" if r["speedup"] else ""))
    print(f"the whole check took {seconds:.0f} s")
    record = {"device": str(device), "device_name": name, "torch": torch.__version__, "vaelib": vaelib.__version__,
              "quick": args.quick, "seconds": seconds, "throughput": rows, "race": race}
    if args.quick and not args.out:
        return record
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / f"gpu-{slug}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    return record


if __name__ == "__main__":
    try:
        main()
    except DataError as err:
        raise SystemExit(f"error: {err}") from None
