"""A hierarchical VAE on dynamically binarized MNIST against the conv VAE, on the course's protocol (issue 27).

    python benchmarks/hierarchical_mnist.py --save pretrained/hvae.pth      # trains, evaluates, writes the JSON
    python benchmarks/hierarchical_mnist.py --table                        # prints the JSON's summary again
    python benchmarks/hierarchical_mnist.py --quick                        # a smoke run (not written)

Trains ``vaelib.hierarchical.HierarchicalVAE`` with ``vaelib.fit`` and ``hierarchical_objective`` (KL warm-up
over ``--warmup_epochs``, free bits per layer), batch 128, Adam, cosine decay, seed 0, then measures: -L_k at
k = 5000 on the first 1,000 test images (dynamic binarization, seed 0), the paired difference to
``pretrained/conv_vae.pth`` on the same images and samples of z (its per-image bounds are computed once and kept in
``benchmarks/results/conv_vae-k5000-first1000.json``), the test ELBO, the KL and active units of each layer, and the
FD of 10,000 binary prior samples (``vaelib.course.sample_quality``, MNIST classifier). Times in wall and CPU seconds.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vaelib  # noqa: E402
from vaelib.evaluation import iwae_nll  # noqa: E402
from vaelib.hierarchical import HierarchicalVAE, hierarchical_objective, layer_statistics  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CONV_BOUNDS = RESULTS / "conv_vae-k5000-first1000.json"


def conv_vae_bounds(data, k: int) -> torch.Tensor:
    """conv_vae's per-image NLLs on ``data`` at k (cached in the JSON for the full protocol)."""
    if k == 5000 and len(data) == 1000 and CONV_BOUNDS.exists():
        return torch.tensor(json.loads(CONV_BOUNDS.read_text())["per_image"], dtype=torch.float64)
    start = time.perf_counter()
    nll = iwae_nll(vaelib.load(ROOT / "pretrained" / "conv_vae.pth"), data, k=k, seed=0, per_image=True,
                   progress=False)
    if k == 5000 and len(data) == 1000:
        CONV_BOUNDS.write_text(json.dumps({"model": "pretrained/conv_vae.pth", "k": k, "seed": 0,
                                           "images": "first 1,000 MNIST test images, dynamic binarization",
                                           "nll": nll["nll"], "seconds": round(time.perf_counter() - start, 1),
                                           "per_image": [round(v, 4) for v in nll["per_image"].tolist()]}) + "\n")
    return nll["per_image"].double()


def run(args) -> dict:
    quick = args.quick
    train = vaelib.MNIST("train", binarize="dynamic", subset=2000 if quick else None)
    test = vaelib.MNIST("test", binarize="dynamic", subset=200 if quick else 1000)
    steps_per_epoch = math.ceil(len(train) / 128)
    torch.manual_seed(0)
    model = HierarchicalVAE(tuple(args.latent_dims), hidden=args.hidden, skip=args.skip, inference=args.inference)
    objective = hierarchical_objective(warmup_steps=args.warmup_epochs * steps_per_epoch, free_bits=args.free_bits)
    start, cpu = time.perf_counter(), time.process_time()
    history = vaelib.fit(model, train, test, objective=objective, epochs=args.epochs, lr=args.lr,
                         lr_schedule="cosine", seed=0, progress=not quick)
    train_s, train_cpu = time.perf_counter() - start, time.process_time() - cpu
    if args.save and not quick:
        vaelib.save(model, args.save, history=history, epoch=args.epochs, data=train,
                    run_config={"command": " ".join(sys.argv)})
    k = 10 if quick else 5000
    start = time.perf_counter()
    nll = iwae_nll(model, test, k=k, seed=0, per_image=True, progress=False)
    eval_s = time.perf_counter() - start
    baseline = conv_vae_bounds(test, k)
    d = nll["per_image"].double() - baseline
    from vaelib.course.sample_quality import model_scores
    start = time.perf_counter()
    scores = model_scores(model, 1000 if quick else 10_000, seed=0, binary=True)
    return {"config": model.config, "epochs": args.epochs, "warmup_epochs": args.warmup_epochs,
            "free_bits": args.free_bits, "lr": args.lr, "parameters": sum(p.numel() for p in model.parameters()),
            "train_seconds": round(train_s, 1), "train_cpu_seconds": round(train_cpu, 1),
            "test_elbo_first_1000": round(history[-1]["test_elbo"], 2),
            "kl_per_epoch": [[round(r[f"test_kl_{i + 1}"], 2) for i in range(len(args.latent_dims))]
                             for r in history],
            "nll": round(nll["nll"], 2), "nll_se": round(nll["std_error"], 2), "k": k, "images": len(test),
            "eval_seconds": round(eval_s, 1), "conv_vae_nll": round(baseline.mean().item(), 2),
            "paired_difference": round(d.mean().item(), 2), "paired_se": round(d.std().item() / math.sqrt(len(d)), 2),
            "layers": layer_statistics(model, test.first(len(test), seed=0)[0]), "fd": round(scores["fd"], 1),
            "sample_seconds": round(time.perf_counter() - start, 1),
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"}


def summary(r: dict) -> str:
    layers = "; ".join(f"z_{i + 1} ({s['dims']}): KL {s['kl']:.2f}, {s['active_units']} active"
                       for i, s in enumerate(r["layers"]))
    return (f"{r['config']}, {r['epochs']} epochs (warm-up {r['warmup_epochs']}, free bits {r['free_bits']}): "
            f"{r['train_seconds']:.0f} s ({r['train_cpu_seconds']:.0f} CPU s); NLL {r['nll']:.2f} +- {r['nll_se']:.2f} "
            f"at k = {r['k']} on {r['images']} images, conv_vae {r['conv_vae_nll']:.2f}, paired "
            f"{r['paired_difference']:+.2f} +- {r['paired_se']:.2f}; {layers}; FD {r['fd']:.1f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latent_dims", type=int, nargs="+", default=[32, 16])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--skip", action="store_true")
    parser.add_argument("--inference", choices=("top_down", "bottom_up"), default="top_down")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--warmup_epochs", type=int, default=10)
    parser.add_argument("--free_bits", type=float, default=0.5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--save", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=RESULTS / "hierarchical-cpu.json")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args(argv)
    if args.table:
        print(summary(json.loads(args.output.read_text())))
        return 0
    if args.quick:
        args.epochs, args.warmup_epochs = 1, 0
    result = run(args)
    if not args.quick:
        args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
