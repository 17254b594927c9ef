"""A VQ-VAE on MNIST and a PixelCNN prior over its codes, scored by the Frechet distance of decoded samples (issue 27).

    python benchmarks/vq_mnist.py --save pretrained     # trains both, scores, writes the JSON and the two checkpoints
    python benchmarks/vq_mnist.py --table              # prints the JSON's summary again
    python benchmarks/vq_mnist.py --quick              # a smoke run on 2,000 images (not written)

The VQ-VAE is ``vaelib.vqvae.VQVAE("ema_restart")`` (K = 256 codes on a 7x7 grid), trained by ``vaelib.fit`` with
``vq_objective`` on the 60,000 grey training images (batch 128, Adam 1e-3, seed 0). The prior is a
``vaelib.code_prior.CodePixelCNN`` fitted to the training images' codes with ``code_prior_objective``. Measured:
test MSE, codes used and test-set perplexity; the prior's test bits per image against 49 * log2(256) = 392; and
``vaelib.course.sample_quality``'s FD (MNIST classifier, against the 10,000 grey test images) of ``--n`` decoded
prior samples, of as many decoded uniform codes, of reconstructions of test images and of real training images.
Times in wall and CPU seconds.
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
from vaelib.course.sample_quality import sample_scores, test_reference  # noqa: E402
from vaelib.vqvae import VQVAE, reconstruction_and_usage, vq_objective  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "vq_mnist-cpu.json"


def timed(fn):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, round(time.perf_counter() - start, 1), round(time.process_time() - cpu, 1)


def run(args) -> dict:
    subset = 2000 if args.quick else None
    train = vaelib.MNIST("train", binarize=None, subset=subset).images.float().div(255)
    test = vaelib.MNIST("test", binarize=None, subset=subset).images.float().div(255)
    model = VQVAE("ema_restart")
    history, seconds, cpu = timed(lambda: vaelib.fit(model, train, objective=vq_objective, epochs=args.epochs, seed=0,
                                                     progress=False))
    measured, test_codes = reconstruction_and_usage(model, test)
    vq_row = {"config": model.config, "parameters": sum(p.numel() for p in model.parameters()), "epochs": args.epochs,
              "train_seconds": seconds, "train_cpu_seconds": cpu, "restarts": int(model.quantizer.restarts.item()),
              **{k: round(v, 5 if k == "mse" else 2) for k, v in measured.items()}}
    print(f"vq-vae: {json.dumps(vq_row)}", flush=True)
    train_codes = model.encode_codes(train)
    torch.manual_seed(0)
    prior = CodePixelCNN(model.num_codes, features=args.features, layers=args.layers)
    prior_history, seconds, cpu = timed(lambda: vaelib.fit(
        prior, codes_as_images(train_codes), codes_as_images(test_codes), objective=code_prior_objective,
        epochs=args.prior_epochs, lr=args.prior_lr, lr_schedule="cosine", seed=0, progress=False))
    prior_row = {"config": prior.config, "parameters": sum(p.numel() for p in prior.parameters()),
                 "epochs": args.prior_epochs, "lr": args.prior_lr, "train_seconds": seconds, "train_cpu_seconds": cpu,
                 "test_bits_per_image": round(prior_history[-1]["test_bits"], 1), "uniform_bits": 49 * 8}
    print(f"prior: {json.dumps(prior_row)}", flush=True)
    if args.save and not args.quick:
        command = {"command": " ".join(["benchmarks/vq_mnist.py", *sys.argv[1:]])}
        vaelib.save(model, args.save / "vq_mnist.pth", history=history, run_config=command, epoch=len(history),
                    data={"dataset": "mnist", "image_shape": [1, 28, 28], "binarize": None})
        vaelib.save(prior, args.save / "vq_mnist_prior.pth", history=prior_history, run_config=command,
                    epoch=len(prior_history))
    n = 200 if args.quick else args.n
    reference = test_reference("mnist", root=None) if not args.quick else test
    g = torch.Generator().manual_seed(0)
    codes, sample_seconds, _ = timed(lambda: prior.sample(n, generator=g))
    uniform = torch.randint(model.num_codes, (n, 7, 7), generator=g)
    sets = {"prior samples": model.decode_codes(codes), "uniform codes": model.decode_codes(uniform),
            "test reconstructions": model.decode_codes(test_codes[:n]), "real training images": train[:n]}
    scores = {name: {k: round(v, 3) for k, v in sample_scores(images, reference).items()
                     if k in ("fd", "confidence", "label_entropy")} for name, images in sets.items()}
    return {"data": "MNIST, grey levels", "train_images": len(train), "test_images": len(test),
            "reference_images": len(reference), "vqvae": vq_row,
            "prior": prior_row, "samples": n, "sample_seconds": sample_seconds, "scores": scores,
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
            "torch": torch.__version__}


def summary(r: dict) -> str:
    v, p = r["vqvae"], r["prior"]
    lines = [f"VQ-VAE (ema_restart, {v['parameters']:,} parameters, {v['epochs']} epochs, {v['train_seconds']:.0f} s, "
             f"{v['train_cpu_seconds']:.0f} CPU s): test MSE {v['mse']:.4f}, PSNR {v['psnr']:.2f} dB, {v['used']} of "
             f"256 codes, test-set perplexity {v['perplexity']:.1f}",
             f"prior ({p['parameters']:,} parameters, {p['config']['layers']} layers, {p['epochs']} epochs, "
             f"{p['train_seconds']:.0f} s, {p['train_cpu_seconds']:.0f} CPU s): {p['test_bits_per_image']:.1f} bits "
             f"per test image against {p['uniform_bits']} uniform",
             f"FD of {r['samples']:,} images against {r.get('reference_images', 10_000):,} grey test images "
             f"(sampling took {r['sample_seconds']:.0f} s):"]
    lines += [f"  {name}: FD {s['fd']:.1f}, confidence {s['confidence']:.3f}, label entropy {s['label_entropy']:.3f}"
              for name, s in r["scores"].items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--features", type=int, default=96)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--prior_epochs", type=int, default=6)
    parser.add_argument("--prior_lr", type=float, default=1e-3)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--save", type=Path, default=None, help="a folder for vq_mnist.pth and vq_mnist_prior.pth")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args(argv)
    if args.table:
        print(summary(json.loads(OUT.read_text())))
        return 0
    if args.quick:
        args.epochs, args.prior_epochs = 1, 1
    result = run(args)
    if not args.quick:
        OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
