"""VQ-VAE on Fashion-MNIST: the four quantizers on one model, and a PixelCNN prior over the codes (issue 27).

    python benchmarks/vq_fashion.py                 # writes benchmarks/results/vq_fashion-cpu.json, prints a table
    python benchmarks/vq_fashion.py --save pretrained   # the same, and the five models as notebook 15 loads them
    python benchmarks/vq_fashion.py --table         # prints the table of the JSON file again
    python benchmarks/vq_fashion.py --quick         # a smoke run on 2,000 images (not written)

Each model: ``vaelib.vqvae.VQVAE`` (K = 256 codes of 16 dimensions on a 7x7 grid, 81k parameters; FSQ [8, 6, 5]:
240 codes, 69k), trained by ``vaelib.fit`` with ``vq_objective`` on the 60,000 grey training images (batch 128,
Adam 1e-3, seed 0) for ``--epochs`` epochs. Measured on the 10,000 test images: MSE per pixel and PSNR, the codes
used and their perplexity over the whole test set, and the mean perplexity of 8-image batches (which under-reads
usage: 8 x 49 = 392 cells cannot show 256 codes evenly). Then a ``CodePixelCNN`` prior is fitted to the training
codes of the EMA + restart model (Adam ``--prior_lr`` after a linear warm-up of ``--prior_warmup_steps`` steps,
then a cosine decay; batch 128) and its test bits per image read against 49 * log2(256) = 392 for uniform codes.
Its first masked convolution is 9x9 (``--prior_kernel``): on the 7x7 grid it sees every earlier cell within four
rows and columns, nearly all of them (13x13 sees all, and measured 1 bit better in 25% more time).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vaelib  # noqa: E402
from vaelib.code_prior import CodePixelCNN, code_prior_objective, codes_as_images  # noqa: E402
from vaelib.vq import QUANTIZERS  # noqa: E402
from vaelib.vqvae import VQVAE, reconstruction_and_usage, vq_objective  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "vq_fashion-cpu.json"


def measure(model: VQVAE, images: torch.Tensor) -> tuple[dict, torch.Tensor]:
    measured, codes = reconstruction_and_usage(model, images)
    measured["batch8_perplexity"] = measured.pop("batch_perplexity")     # the JSON's name
    return measured, codes


def run(epochs: int, prior_epochs: int, quick: bool, save: Path | None, prior: dict, prior_lr: float,
        prior_warmup: int) -> dict:
    subset = 2000 if quick else None
    train = vaelib.FashionMNIST("train", subset=subset).images.float().div(255)
    test = vaelib.FashionMNIST("test", subset=subset).images.float().div(255)
    rows, train_codes, test_codes = {}, None, None
    command = {"command": " ".join(["benchmarks/vq_fashion.py", *sys.argv[1:]])}   # stored beside each model
    for kind in QUANTIZERS:
        model = VQVAE(kind)
        start, cpu = time.perf_counter(), time.process_time()
        history = vaelib.fit(model, train, objective=vq_objective, epochs=epochs, seed=0, progress=False)
        row = {"parameters": sum(p.numel() for p in model.parameters()), "num_codes": model.num_codes,
               "epochs": epochs, "train_seconds": round(time.perf_counter() - start, 1),
               "train_cpu_seconds": round(time.process_time() - cpu, 1)}
        per_epoch = None
        # usage after the first epoch too: the collapse is clearest early (re-measured from a 1-epoch copy)
        if epochs > 1:
            first = VQVAE(kind)
            vaelib.fit(first, train, objective=vq_objective, epochs=1, seed=0, progress=False)
            per_epoch = measure(first, test)[0]["used"]
        measured, codes = measure(model, test)
        per_epoch = measured["used"] if per_epoch is None else per_epoch
        row.update({k: round(v, 5 if k == "mse" else 2) for k, v in measured.items()}, used_after_1_epoch=per_epoch,
                   restarts=int(getattr(model.quantizer, "restarts", torch.zeros(())).item()),
                   train_mse_last=round(history[-1]["train_mse"], 5))
        rows[kind] = row
        print(f"{kind}: {json.dumps(row)}", flush=True)
        if save is not None:
            save.mkdir(parents=True, exist_ok=True)
            vaelib.save(model, save / f"vq_fashion_{kind}.pth", history=history, run_config=command, epoch=epochs,
                        data={"dataset": "fashion_mnist", "image_shape": [1, 28, 28], "binarize": None})
        if kind == "ema_restart":
            train_codes, test_codes = model.encode_codes(train), codes
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        prior_model = CodePixelCNN(256, **prior)
    start, cpu = time.perf_counter(), time.process_time()
    history = vaelib.fit(prior_model, codes_as_images(train_codes), codes_as_images(test_codes),
                         objective=code_prior_objective, epochs=prior_epochs, lr=prior_lr, lr_schedule="cosine", seed=0,
                         warmup_steps=0 if quick else prior_warmup, progress=False)
    prior_row = {"config": prior_model.config, "parameters": sum(p.numel() for p in prior_model.parameters()),
                 "epochs": prior_epochs, "lr": prior_lr, "warmup_steps": prior_warmup,
                 "train_seconds": round(time.perf_counter() - start, 1),
                 "train_cpu_seconds": round(time.process_time() - cpu, 1),
                 "test_bits_per_image": round(history[-1]["test_bits"], 1), "uniform_bits": 49 * 8}
    print(f"prior: {json.dumps(prior_row)}", flush=True)
    if save is not None:
        vaelib.save(prior_model, save / "vq_fashion_prior.pth", history=history, run_config=command, epoch=prior_epochs)
    return {"data": "Fashion-MNIST, grey levels", "train_images": len(train), "test_images": len(test),
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
            "torch": torch.__version__, "quantizers": rows, "prior": prior_row}


def table(result: dict) -> str:
    lines = [f"Fashion-MNIST, {result['test_images']:,} test images; K = 256 (FSQ: 240)", "",
             "| quantizer | parameters | epochs | train s (CPU s) | test MSE | PSNR dB | codes used (after 1 epoch) | "
             "test-set perplexity | 8-image batch perplexity |", "|" + " --- |" * 9]
    for kind, r in result["quantizers"].items():
        lines.append(f"| {kind} | {r['parameters']:,} | {r['epochs']} | {r['train_seconds']:.0f} "
                     f"({r['train_cpu_seconds']:.0f}) | {r['mse']:.4f} | {r['psnr']:.2f} | {r['used']} of "
                     f"{r['num_codes']} ({r['used_after_1_epoch']}) | {r['perplexity']:.1f} | "
                     f"{r['batch8_perplexity']:.1f} |")
    p = result["prior"]
    shape = ", ".join(f"{k} {v}" for k, v in p.get("config", {}).items() if k in ("features", "layers", "kernel_size"))
    shape = f", {shape}" if shape else ""
    lines += ["", f"PixelCNN prior over the ema_restart codes ({p['parameters']:,} parameters{shape}, "
              f"{p['epochs']} epochs, {p['train_seconds']:.0f} s, {p['train_cpu_seconds']:.0f} CPU s): "
              f"{p['test_bits_per_image']:.1f} bits per test image, against {p['uniform_bits']} for uniform codes"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--prior_epochs", type=int, default=2)
    parser.add_argument("--prior_features", type=int, default=64)
    parser.add_argument("--prior_layers", type=int, default=4)
    parser.add_argument("--prior_kernel", type=int, default=9)
    parser.add_argument("--prior_lr", type=float, default=8e-3)
    parser.add_argument("--prior_warmup_steps", type=int, default=100)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--save", type=Path, default=None, help="a folder for the trained models")
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(OUT.read_text())))
        return 0
    if args.quick:
        args.epochs, args.prior_epochs = 1, 1
    prior = {"features": args.prior_features, "layers": args.prior_layers, "kernel_size": args.prior_kernel}
    result = run(args.epochs, args.prior_epochs, args.quick, None if args.quick else args.save, prior, args.prior_lr,
                 args.prior_warmup_steps)
    if not args.quick:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
