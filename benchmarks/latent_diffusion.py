"""Latent diffusion at MNIST scale: a small DDPM over the latents of a trained VAE, scored by the FD of its decoded
samples (issue 27, notebook 16).

    python benchmarks/latent_diffusion.py                            # conv_vae: prints, writes the JSON below
    python benchmarks/latent_diffusion.py --save pretrained/latent_ddpm.pth
    python benchmarks/latent_diffusion.py --vae mlp_beta_4 --steps 4000 --eval_at 4000     # one point of a sweep
    python benchmarks/latent_diffusion.py --table                    # the JSON's rows again
    python benchmarks/latent_diffusion.py --quick                    # a smoke run (not written)

1. Encodes the 60,000 training images (dynamically binarized once, seed 0) with the VAE ``--vae`` (a checkpoint of
   ``pretrained/``): the mean and log-variance of q(z|x) of each.
2. ``scale`` is the standard deviation of z ~ q(z|x) over all images and dimensions (one draw each): the latents
   are divided by it, so the DDPM sees unit variance (Stable Diffusion's ``scaling_factor``, 0.18215 in SD 1.x, is
   1 / that std of its autoencoder's latents).
3. Trains ``vaelib.diffusion.DDPM(dim, steps=200)`` (a residual MLP, 3 blocks of 512) on L_simple, with a fresh
   z ~ q(z|x) / scale for every batch (batch 256, Adam ``--lr``), and keeps an exponential moving average of its
   weights (decay 0.999, ``DDPM(ema_decay=0.999)``). At each ``--eval_at`` step it draws 10,000 latents from the
   EMA model (200 ancestral steps), multiplies them by ``scale``, decodes them with 0/1 pixels drawn from p(x|z),
   and scores them under the course's MNIST classifier against the binarized test images: the protocol of
   ``vaelib.course.sample_quality.model_scores``, the one that gives ``conv_vae`` FD 66.6 with z ~ N(0, I).
4. Scores the same way z ~ N(0, I) (the VAE's own prior) and z ~ q(z|x) of 10,000 training images (the aggregate
   posterior: the ceiling of any prior over this VAE's latents), and the VAE's reconstruction error on the 10,000
   binarized test images (the mean squared error per pixel of the decoder's mean at the posterior mean).
5. Checks for copying: the median distance from 1,000 decoded samples (decoder means) to the nearest of the VAE's
   reconstructions of the 60,000 training images, over the same for 1,000 reconstructed test images (``copying``:
   about 1 for samples as novel as new digits, well below 1 for copies).

Times are wall and CPU seconds of this process; the training excludes the evaluations.
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
from vaelib.course import pretrained_path  # noqa: E402
from vaelib.course.sample_quality import copying_ratio, load_classifier, sample_scores, test_reference  # noqa: E402
from vaelib.diffusion import DDPM  # noqa: E402
from vaelib.latent_diffusion import decode_samples, posterior_parameters  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "latent_diffusion-cpu.json"
KEYS = ("fd", "confidence", "label_entropy")


def training_posteriors(vae, subset: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """q(z|x) of every training image, binarized once (seed 0): means and standard deviations ``(N, D)``."""
    train = vaelib.MNIST("train", binarize="dynamic", subset=subset)
    params = posterior_parameters(vae, train.first(len(train), seed=0)[0]).tensor
    return params[:, 0], params[:, 1]


@torch.no_grad()
def scores(vae, z: torch.Tensor, reference, classifier, seed: int = 0) -> dict:
    """The sample scores of latents ``z`` ``(N, D)`` decoded with 0/1 pixels drawn from p(x|z)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.cat([vae.likelihood.draw(vae.decoder(chunk), g) for chunk in z.split(1000)])
    return {k: round(v, 3) for k, v in sample_scores(images, reference, classifier).items() if k in KEYS}


@torch.no_grad()
def reconstruction_mse(vae, subset: int | None) -> float:
    x, _ = vaelib.MNIST("test", binarize="dynamic", subset=subset).first(10_000 if subset is None else subset, seed=0)
    return torch.cat([(vae.reconstruct(b) - b).pow(2).flatten(1).mean(1) for b in x.split(1000)]).mean().item()


@torch.no_grad()
def copying(vae, ddpm, mu: torch.Tensor, subset: int | None, n: int = 1000) -> dict:
    """The memorization check: ``n`` decoded DDPM samples (decoder means) against the VAE's reconstructions of the
    training images (at their posterior means ``mu``), beside ``n`` reconstructed test images: the median distance
    to the nearest training reconstruction of each, and their ratio (vaelib.course.sample_quality.copying_ratio)."""
    x, _ = vaelib.MNIST("test", binarize="dynamic", subset=subset).first(n, seed=0)
    train = torch.cat([vae.decode(m).mean for m in mu.split(2000)])
    samples = decode_samples(vae, ddpm, n, torch.Generator().manual_seed(2), binary=False)
    return {k: round(v, 4) for k, v in copying_ratio(samples, vae.reconstruct(x), train).items()}


def run(args) -> dict:
    torch.manual_seed(0)
    vae = vaelib.load(args.vae if args.vae.endswith(".pth") else pretrained_path(args.vae)).eval()
    subset = 2000 if args.quick else None
    mu, std = training_posteriors(vae, subset)
    g = torch.Generator().manual_seed(0)
    scale = (mu + std * torch.randn(mu.shape, generator=g)).std().item()
    reference = test_reference("mnist", binarized=True, seed=0)
    classifier = load_classifier()
    n = 1000 if args.quick else args.n
    pick = torch.randperm(len(mu), generator=g)[:n]
    baselines = {"N(0, I)": scores(vae, torch.randn(n, vae.latent_dim, generator=g), reference, classifier),
                 "aggregate posterior": scores(vae, mu[pick] + std[pick] * torch.randn(n, vae.latent_dim, generator=g),
                                               reference, classifier)}
    print(f"{args.vae}: scale {scale:.4f}; " + "; ".join(f"{k} FD {v['fd']:.1f}" for k, v in baselines.items()),
          flush=True)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ddpm = DDPM(vae.latent_dim, steps=200, hidden=args.hidden, blocks=3, scale=scale, ema_decay=0.999)
    optimizer = torch.optim.Adam(ddpm.parameters(), lr=args.lr)
    eval_at = sorted(set(args.eval_at) | {args.steps}) if not args.quick else [200]
    steps = eval_at[-1]
    rows, losses, trained, cpu_trained = [], [], 0.0, 0.0
    for step in range(1, steps + 1):
        start, cpu = time.perf_counter(), time.process_time()
        idx = torch.randint(len(mu), (args.batch_size,), generator=g)
        z = mu[idx] + std[idx] * torch.randn(len(idx), vae.latent_dim, generator=g)
        loss = ddpm.loss_simple(z, generator=g).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ddpm.update_ema()
        losses.append(loss.item())
        trained += time.perf_counter() - start
        cpu_trained += time.process_time() - cpu
        if step in eval_at:
            start = time.perf_counter()
            z = ddpm.sample(n, generator=torch.Generator().manual_seed(1))
            sample_seconds = time.perf_counter() - start
            row = {"step": step, "train_seconds": round(trained, 1), "train_cpu_seconds": round(cpu_trained, 1),
                   "loss_simple": round(sum(losses[-500:]) / len(losses[-500:]), 4),
                   "sample_seconds": round(sample_seconds, 1), **scores(vae, z, reference, classifier)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.save and not args.quick:
        command = " ".join(["benchmarks/latent_diffusion.py", *sys.argv[1:]])
        shipped = ddpm.averaged()
        shipped.predictor.half()   # stored in float16 (half the file); vaelib.load casts it back to float32
        vaelib.save(shipped, args.save, epoch=round(steps * args.batch_size / len(mu)), history=rows,
                    run_config={"command": command, "steps": steps, "lr": args.lr, "batch_size": args.batch_size},
                    train_args={"vae": args.vae, "scale": scale, "ema_decay": 0.999})
    return {"vae": Path(args.vae).stem, "latent_dim": vae.latent_dim, "scale": round(scale, 4),
            "reconstruction_mse": round(reconstruction_mse(vae, subset), 5), "samples": n,
            "copying": copying(vae, ddpm, mu, subset, 200 if args.quick else 1000),
            "ddpm": {**ddpm.config, "parameters": sum(p.numel() for p in ddpm.parameters()), "lr": args.lr,
                     "batch_size": args.batch_size, "ema_decay": 0.999},
            "baselines": baselines, "points": rows,
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
            "torch": torch.__version__}


def table(results: dict) -> str:
    lines = ["| VAE | latent | scale | recon. MSE | N(0, I) FD | aggregate posterior FD | DDPM steps | train s (CPU s) | "
             "DDPM FD | confidence | label entropy | 10,000 samples in s |", "|" + " --- |" * 12]
    for r in results.values():
        for p in r["points"]:
            lines.append(f"| `{r['vae']}` | {r['latent_dim']} | {r['scale']:.3f} | {r['reconstruction_mse']:.4f} | "
                         f"{r['baselines']['N(0, I)']['fd']:.1f} | {r['baselines']['aggregate posterior']['fd']:.1f} | "
                         f"{p['step']:,} | {p['train_seconds']:.0f} ({p['train_cpu_seconds']:.0f}) | **{p['fd']:.1f}** | "
                         f"{p['confidence']:.3f} | {p['label_entropy']:.3f} | {p['sample_seconds']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vae", default="conv_vae", help="a VAE of pretrained/ with a binary likelihood, or the path "
                        "of a checkpoint (.pth)")
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--eval_at", type=int, nargs="*", default=[1500, 4000])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--save", type=Path, default=None, help="where to save the EMA model (a .pth file)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args(argv)
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    if args.table:
        print(table(results))
        return 0
    result = run(args)
    if not args.quick:
        results[Path(args.vae).stem] = result      # one entry per VAE: the sweep's points side by side
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(results, indent=1) + "\n")
    print(table({result["vae"]: result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
