"""Instructor reference numbers for the two capstone projects (notebooks/README.md, "Capstone projects").

    python benchmarks/capstone_reference.py            # trains, evaluates, writes benchmarks/results/capstone-cpu.json
    python benchmarks/capstone_reference.py --table    # prints the table of the JSON file again
    python benchmarks/capstone_reference.py --quick    # the same code on a few images, a smoke run (not written)

Every model is a Bernoulli VAE trained with ``vaelib.fit`` on dynamically binarized Fashion-MNIST (60,000
training images, batch 128, Adam 1e-3, seed 0), the budget a learner has on a laptop CPU:

- Part 1: ``mlp`` (latent 20, 400 hidden units) and ``conv`` (latent 20);
- Part 2: each of the four levers on the Part-1 model of the same architecture: IWAE training (k = 5), an IAF
  posterior, a VampPrior (500 pseudo-inputs) on the MLP; a ``pixelcnn`` decoder on the conv model.

Each is measured as the capstones ask: the test ELBO on all 10,000 test images (seed 0), -L_k at k = 5000 on
the first ``--images`` test images (dynamic binarization, seed 0) in nats and bits/dim with its standard error,
the paired difference to its Part-1 baseline on the same images and binarization, and the sample scores of
10,000 binary samples against the binarized test set under the Fashion-MNIST classifier
(``pretrained/fashion_mnist_classifier.pth``).
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
from vaelib.course import sample_quality as sq  # noqa: E402
from vaelib.evaluation import evaluate_elbo, iwae_nll  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "capstone-cpu.json"
MLP = {"arch": "mlp", "latent_dim": 20, "hidden": 400}
CONV = {"arch": "conv", "latent_dim": 20}
# name (also the file name under --save): (what it is, part, baseline, VAEConfig fields, fit's arguments, epochs)
MODELS = {
    "mlp": ("MLP VAE", 1, None, MLP, {}, 30),
    "conv": ("conv VAE", 1, None, CONV, {"precision": "bf16"}, 10),
    "mlp_iwae": ("mlp + IWAE training (k = 5)", 2, "mlp", MLP, {"iwae_k": 5}, 30),
    "mlp_iaf": ("mlp + IAF posterior", 2, "mlp", {**MLP, "posterior_kind": "iaf"}, {}, 30),
    "mlp_vamp": ("mlp + VampPrior", 2, "mlp", {**MLP, "prior_kind": "vamp"}, {}, 30),
    "conv_pixelcnn": ("conv + pixelcnn decoder", 2, "conv", {**CONV, "likelihood": "pixelcnn"}, {"precision": "bf16"},
                      10),
}


def paired(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error of ``a - b`` over the same images (nats; negative: ``a`` is better)."""
    d = (a - b).double()
    return d.mean().item(), d.std().item() / math.sqrt(len(d))


def run(images: int, k: int, samples: int, quick: bool, save: Path | None = None) -> dict:
    train = vaelib.FashionMNIST("train", binarize="dynamic", subset=2000 if quick else None)
    test = vaelib.FashionMNIST("test", binarize="dynamic")
    nll_data = vaelib.FashionMNIST("test", binarize="dynamic", subset=images)
    rows, per_image = {}, {}
    for name, (label, part, baseline, fields, fit_args, epochs) in MODELS.items():
        epochs = 1 if quick else epochs
        model = vaelib.build_vae(config=vaelib.VAEConfig(**fields, image_shape=(1, 28, 28)))
        start, cpu = time.perf_counter(), time.process_time()
        settings = dict(fit_args)
        if "iwae_k" in settings:      # what fit(iwae_k=k), vaelib 0.2's spelling, meant
            settings["objective"] = vaelib.objectives.IWAEObjective(settings.pop("iwae_k"))
        history = vaelib.fit(model, train, None if quick else test, epochs=epochs, seed=0, progress=False,
                             **settings)
        train_s, train_cpu = time.perf_counter() - start, time.process_time() - cpu
        model.eval()
        if save is not None:
            save.mkdir(parents=True, exist_ok=True)
            vaelib.save(model, save / f"fashion_{name}.pth", history=history)
        elbo = evaluate_elbo(model, test if not quick else nll_data, seed=0)["elbo"]
        start = time.perf_counter()
        nll = iwae_nll(model, nll_data, k=k, seed=0, per_image=True, progress=False)
        eval_s = time.perf_counter() - start
        per_image[name] = nll["per_image"]
        start = time.perf_counter()
        scores = sq.model_scores(model, samples, seed=0, dataset="fashion_mnist")   # as check_capstone_gain does
        sample_s = time.perf_counter() - start
        row = {"model": label, "part": part, "baseline": baseline, "config": fields, "fit": fit_args, "epochs": epochs,
               "parameters": sum(p.numel() for p in model.parameters()), "train_seconds": round(train_s, 1),
               "train_cpu_seconds": round(train_cpu, 1), "elbo_10000": round(elbo, 2),
               "nll": round(nll["nll"], 2), "nll_se": round(nll["std_error"], 2),
               "bits_per_dim": round(nll["bits_per_dim"], 4), "eval_seconds": round(eval_s, 1),
               "fd": round(scores["fd"], 1), "confidence": round(scores["confidence"], 3),
               "label_entropy": round(scores["label_entropy"], 3), "sample_seconds": round(sample_s, 1),
               "active_units": history[-1].get("active_units") if history else None}
        if baseline is not None:
            gain, se = paired(per_image[name], per_image[baseline])
            row["paired_nll_difference"], row["paired_se"] = round(gain, 2), round(se, 2)
            row["paired_bits_per_dim"] = round(gain / (784 * math.log(2)), 4)
        rows[name] = row
        print(f"{name}: {json.dumps(row)}", flush=True)
    return {"protocol": {"dataset": "fashion_mnist", "binarize": "dynamic", "seed": 0, "n_images": images, "k": k,
                         "samples": samples, "elbo_images": 10000},
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
            "torch": torch.__version__, "rows": rows}


def table(result: dict) -> str:
    p = result["protocol"]
    lines = [f"Fashion-MNIST, dynamic binarization (seed {p['seed']}); NLL = -L_{p['k']} on the first "
             f"{p['n_images']} test images; ELBO on all 10,000; FD of {p['samples']:,} binary samples against the "
             "binarized test set",
             "", "| part | model | epochs | train s (CPU s) | test ELBO | NLL +- se | bits/dim | paired vs Part 1 | FD | "
             "confidence |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in result["rows"].items():
        gain = (f"{r['paired_nll_difference']:+.2f} +- {r['paired_se']:.2f} nats ({r['paired_bits_per_dim']:+.4f})"
                if r["baseline"] else "")
        lines.append(f"| {r['part']} | {r['model']} | {r['epochs']} | {r['train_seconds']:.0f} "
                     f"({r['train_cpu_seconds']:.0f}) | {r['elbo_10000']:.2f} | {r['nll']:.2f} +- {r['nll_se']:.2f} "
                     f"| {r['bits_per_dim']:.4f} | {gain} | {r['fd']:.1f} | {r['confidence']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="1 epoch on 2,000 images, k = 10 on 20 images")
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--save", type=Path, default=None, help="a folder for the trained models")
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(OUT.read_text())))
        return 0
    if args.quick:
        args.images, args.k, args.samples = 20, 10, 1000
    result = run(args.images, args.k, args.samples, args.quick, args.save)
    if not args.quick:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
