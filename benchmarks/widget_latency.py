"""How long a widget takes to redraw after a slider move: the update function plus PNG encoding.

Measures ``decode_point`` + ``to_png`` (the latent explorer and the digit selector),
``interpolate_point`` + ``to_png`` (the interpolation slider) and ``reconstruction_panel`` +
``to_png`` (the reconstruction viewer) and ``importance_panel`` + ``to_png`` at k = 100 and
k = 300, the largest k the importance explorer offers, for the pretrained models when present, else untrained ones
of the same shape. Prints the median and 95th percentile in milliseconds; the target is well under
100 ms on a laptop CPU. The browser's own drawing is not included (a few ms for a 112x112 PNG).

    python benchmarks/widget_latency.py            # 200 redraws each
    python benchmarks/widget_latency.py --quick    # 10 redraws each: a smoke test
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vaelib import build_vae  # noqa: E402
from vaelib.data import MNIST, DataError  # noqa: E402
from vaelib.course.pretrained import load_pretrained  # noqa: E402
from vaelib.course.widgets import decode_point, importance_panel, interpolate_point, reconstruction_panel, to_png  # noqa: E402


def timed(fn, repeats):
    fn()  # warm-up
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main(argv=None):
    parser = argparse.ArgumentParser(description="widget redraw latency")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 10 if args.quick else 200
    models = {
        "vae_2d (mlp, latent 2)": load_pretrained("vae_2d") or build_vae("mlp", latent_dim=2).eval(),
        "conv_vae (conv, latent 20)": load_pretrained("conv_vae") or build_vae("conv", latent_dim=20).eval(),
    }
    data = MNIST("test", binarize="dynamic", subset=100)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {repeats} redraws each (milliseconds)")
    rows = []
    for name, model in models.items():
        d = model.latent_dim
        z0, z1 = torch.randn(d), torch.randn(d)
        cases = {
            "latent slider": lambda i=0: to_png(decode_point(model, z0 + 0.01 * i)),
            "interpolation": lambda i=0: to_png(interpolate_point(model, z0, z1, (i % 50) / 49, "spherical")),
            "reconstruction": lambda i=0: to_png(reconstruction_panel(model, data, i % 100), nrow=8),
            "importance k=100": lambda i=0: to_png(importance_panel(model, data, i % 100, 100)["images"], nrow=7),
            "importance k=300": lambda i=0: to_png(importance_panel(model, data, i % 100, 300)["images"], nrow=7),
        }
        for case, fn in cases.items():
            median, p95 = timed(fn, repeats)
            rows.append((name, case, median, p95))
            print(f"{name:<28} {case:<17} median {median:6.2f} ms   p95 {p95:6.2f} ms")
    worst = max(p95 for *_, p95 in rows)
    print(f"slowest p95: {worst:.1f} ms ({'under' if worst < 100 else 'OVER'} the 100 ms target)")
    return rows


if __name__ == "__main__":
    try:
        main()
    except DataError as err:
        raise SystemExit(f"error: {err}") from None
