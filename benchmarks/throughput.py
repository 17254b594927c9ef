"""Training throughput: vaelib's trainer against the loop of pytorch/examples ``vae/main.py``.

Both loops train the same architectures (the 784-400-20 MLP and vaelib's default conv VAE) in
this process, on the same device, batch 128, Adam 1e-3, on grey-level MNIST with the Bernoulli
(binary cross-entropy) likelihood, exactly as the reference does. The reference reads MNIST through
``torchvision.datasets.MNIST`` with ``ToTensor`` and a ``DataLoader``; vaelib indexes tensors that
already live on the device.

vaelib is timed in five variants: ``fp32`` (the default), ``bf16`` (``fit(precision="bf16")``:
bfloat16 autocast), ``bf16+compile`` (plus ``objective=ELBOObjective(compile=True)``), and ``fp32+bf16-matmul`` with and
without ``+compile`` (oneDNN's bfloat16 arithmetic inside float32 matrix products; CPU only). Each vaelib run trains one
warm-up epoch (which also compiles) and then the timed epochs; the reference warms up for 20 steps.
Printed: images/second of each loop, the ratios, the first epoch's extra seconds, the device and
library versions; then the test ELBO each loop reached after the same number of epochs (same model,
same data, so they must agree within noise). A JSON record is written to
``benchmarks/results/throughput-<device>.json``.

    python benchmarks/throughput.py                 # 1 timed epoch each (plus warm-up) and 3 epochs for the ELBO check
    python benchmarks/throughput.py --variants fp32 --archs mlp
    python benchmarks/throughput.py --archs mlp --variants fp32,fp32+bf16-matmul,fp32+bf16-matmul+compile
    python benchmarks/throughput.py --quick         # seconds: a smoke test, numbers meaningless
    python benchmarks/throughput.py --device cuda --large-batch 1024
    python benchmarks/throughput.py --race          # also the time-to-quality race (minutes)

The time-to-quality race (``--race``) measures what a user waits for: the training wall time until
the test -ELBO first reaches a target, 100 nats for the MLP 784-400-20 and 95 for the default conv
VAE, on the protocol's test set (the 10,000 test images, dynamically binarized with seed 0; the
evaluation after each epoch is not counted). The reference is the pytorch/examples loop as above
(grey levels, batch 128, Adam 1e-3, a DataLoader); vaelib runs its recommended recipe,
:data:`RECIPES` (dynamic binarization, a larger batch with a scaled learning rate, warm-up and
cosine decay, bf16 where it pays). Each side stops at the target or after ``--race-minutes``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import vaelib  # noqa: E402
from vaelib import MNIST, build_vae, fit, pick_device  # noqa: E402
from vaelib.data import DataError, data_root  # noqa: E402
from vaelib.callbacks import Callback  # noqa: E402
from vaelib.evaluation import evaluate_elbo  # noqa: E402
from vaelib.objectives import ELBOObjective  # noqa: E402
from vaelib.precision import native_bf16  # noqa: E402
from vaelib.schedules import WarmupCosine  # noqa: E402

TARGETS = {"mlp": 100.0, "conv": 95.0}  # test -ELBO, nats: the race's finishing lines
# vaelib's recommended recipe per architecture: batch, learning rate, warm-up steps, the epochs the
# cosine decay spans, precision. The MLP's was chosen by benchmarks/race_sweep.py (batch 256-1024,
# lr 3e-3 to 1.6e-2, horizons 12-25: benchmarks/RESULTS.md); the conv model's shorter schedules all
# fell short of its target, so it keeps its first choice.
# "bf16" means bf16 where the hardware computes it natively (see recipe()), fp32 elsewhere.
RECIPES = {"mlp": {"batch_size": 512, "lr": 1.2e-2, "warmup": 200, "horizon": 15, "precision": "fp32"},
           "conv": {"batch_size": 256, "lr": 3e-3, "warmup": 200, "horizon": 15, "precision": "bf16"}}


def recipe(arch, device):
    """RECIPES[arch] for ``device``: bf16 only where it is native (emulated, it is slower than fp32)."""
    chosen = dict(RECIPES[arch])
    if chosen["precision"] == "bf16" and native_bf16(device) is False:
        chosen["precision"] = "fp32"
    return chosen


def reference_epoch(model, loader, optimizer, device, max_steps=None, binarize=False):
    """One epoch the way pytorch/examples vae/main.py trains: BCE(sum) + KLD, per DataLoader batch.

    ``binarize``: draw each batch's pixels as Bernoulli(grey level), dynamic binarization, so that a
    race to a binarized test -ELBO compares training recipes, not a grey-vs-binary data mismatch."""
    model.train()
    steps = 0
    for x, _ in loader:
        x = x.to(device)
        if binarize:
            x = torch.bernoulli(x)
        optimizer.zero_grad()
        mu, logvar = model.encoder(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        recon = torch.sigmoid(model.decoder(z))
        bce = F.binary_cross_entropy(recon.view(-1, 784), x.view(-1, 784), reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = bce + kld
        loss.backward()
        optimizer.step()
        steps += 1
        if max_steps and steps >= max_steps:
            break
    return steps


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def reference_loader(root, n_train, batch_size, device, workers=0):
    """The reference's data path: torchvision MNIST, ToTensor per image, a shuffling DataLoader."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    ds = datasets.MNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    if n_train < len(ds):
        ds = Subset(ds, range(n_train))
    kwargs = {"num_workers": workers, "pin_memory": device.type == "cuda"} if workers else {}
    return DataLoader(ds, batch_size=batch_size, shuffle=True, **kwargs)


def time_reference(arch, device, batch_size, n_train, epochs, root, workers):
    loader = reference_loader(root, n_train, batch_size, device, workers)
    torch.manual_seed(0)
    model = build_vae(arch, latent_dim=20).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    reference_epoch(model, loader, optimizer, device, max_steps=20)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        reference_epoch(model, loader, optimizer, device)
    _sync(device)
    seconds = time.perf_counter() - t0
    return model, epochs * len(loader.dataset) / seconds


VARIANTS = {"fp32": {}, "bf16": {"precision": "bf16"}, "bf16+compile": {"precision": "bf16", "compile": True},
            "fp32+bf16-matmul": {}, "fp32+bf16-matmul+compile": {"compile": True}}
# These let oneDNN (CPU) compute float32 matrix products in bfloat16 internally: a process-wide switch,
# set only while such a variant trains, with no casts in the graph (unlike autocast). No effect on CUDA.
BF16_MATMUL = {"fp32+bf16-matmul", "fp32+bf16-matmul+compile"}


def fit_settings(variants: dict, variant: str) -> dict:
    """fit's keyword arguments for ``variant``: its settings, ``compile`` as a fresh compiled ELBO objective."""
    settings = dict(variants[variant])
    mode = settings.pop("compile", False)
    if mode:
        settings["objective"] = ELBOObjective(compile=mode)
    return settings


@contextmanager
def matmul_precision(variant):
    if variant not in BF16_MATMUL:
        yield
        return
    old = torch.backends.mkldnn.matmul.fp32_precision
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    try:
        yield
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = old


def time_vaelib(arch, device, batch_size, train, epochs, variant="fp32"):
    """Train 1 + ``epochs`` epochs; the first is the warm-up (and compilation, for compiled variants).

    Returns the model, img/s over the timed epochs (the seconds each epoch's history records) and the
    extra seconds the first epoch took over a timed one (compilation, caches).
    """
    torch.manual_seed(0)
    model = build_vae(arch, latent_dim=20)
    with matmul_precision(variant):
        history = fit(model, train, epochs=1 + epochs, batch_size=batch_size, device=device, progress=False,
                      **fit_settings(VARIANTS, variant))
    timed = sum(history["seconds"][1:])
    return model, epochs * len(train) / timed, history["seconds"][0] - timed / epochs


class RaceClock(Callback):
    """Times training to a target test -ELBO; the evaluation after each epoch is not counted."""

    def __init__(self, test, target, max_seconds):
        self.test, self.target, self.max_seconds = test, target, max_seconds

    def on_fit_start(self, run):
        self.start, self.paused, self.curve, self.reached = time.perf_counter(), 0.0, [], None

    def on_epoch_end(self, run, record):
        now = time.perf_counter()
        seconds = now - self.start - self.paused
        nelbo = -evaluate_elbo(run.model, self.test, seed=0)["elbo"]
        self.paused += time.perf_counter() - now
        self.curve.append((round(seconds, 1), round(nelbo, 2)))
        if nelbo <= self.target and self.reached is None:
            self.reached = seconds
        run.stop = self.reached is not None or seconds > self.max_seconds


def race_reference(arch, device, n_train, root, test, target, max_seconds):
    """The pytorch/examples loop, epoch by epoch, until the binarized test -ELBO reaches ``target``
    (trained on dynamically binarized batches, as vaelib's side is)."""
    loader = reference_loader(root, n_train, 128, device)
    torch.manual_seed(0)
    model = build_vae(arch, latent_dim=20).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    seconds, curve = 0.0, []
    while seconds <= max_seconds:
        _sync(device)
        t0 = time.perf_counter()
        reference_epoch(model, loader, optimizer, device, binarize=True)
        _sync(device)
        seconds += time.perf_counter() - t0
        curve.append((round(seconds, 1), round(-evaluate_elbo(model, test, seed=0)["elbo"], 2)))
        if curve[-1][1] <= target:
            return seconds, curve
    return None, curve


def race_vaelib(arch, device, train, test, target, max_seconds, recipe):
    """vaelib's recipe: ``fit`` with the recipe's batch, learning-rate schedule and precision."""
    torch.manual_seed(0)
    model = build_vae(arch, latent_dim=20)
    steps = recipe["horizon"] * -(-len(train) // recipe["batch_size"])
    clock = RaceClock(test, target, max_seconds)
    fit(model, train, epochs=recipe["horizon"], lr=recipe["lr"], batch_size=recipe["batch_size"], device=device,
        precision=recipe["precision"], lr_schedule=WarmupCosine(steps, min(recipe["warmup"], steps - 1)),
        progress=False, callbacks=[clock])
    return clock.reached, clock.curve


def race(archs, device, n_train, root, max_minutes, targets=TARGETS):
    """Both sides of the race for each architecture: seconds to the target (None: not reached) and curves."""
    train = MNIST("train", binarize="dynamic", subset=n_train, device=device)
    test = MNIST("test", binarize="dynamic", subset=None if n_train >= 60000 else 500, device=device)
    rows = []
    for arch in archs:
        target = targets[arch]
        ref_s, ref_curve = race_reference(arch, device, n_train, root, test, target, max_minutes * 60)
        chosen = recipe(arch, device)
        our_s, our_curve = race_vaelib(arch, device, train, test, target, max_minutes * 60, chosen)
        speedup = ref_s / our_s if ref_s and our_s else None
        rows.append({"arch": arch, "target_nats": target, "reference_seconds": ref_s, "vaelib_seconds": our_s,
                     "speedup": speedup, "recipe": chosen, "reference_curve": ref_curve,
                     "vaelib_curve": our_curve})
        shown = lambda s, curve: f"{s:7.1f} s" if s else f"not in {curve[-1][0]:.0f} s (best {min(c[1] for c in curve):.2f})"  # noqa: E731
        print(f"{arch:>5}: to test -ELBO {target:g} nats: reference {shown(ref_s, ref_curve)}, "
              f"vaelib {shown(our_s, our_curve)}" + (f"   speed-up {speedup:.2f}x" if speedup else ""), flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few hundred images: checks that it runs")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--archs", default="mlp,conv")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per loop (default 1)")
    parser.add_argument("--check-epochs", type=int, default=3, help="epochs for the ELBO agreement check")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for the reference (default 0)")
    parser.add_argument("--large-batch", type=int, default=0, help="also time vaelib at this batch size")
    parser.add_argument("--variants", default=None,
                        help="vaelib variants to time, of " + ",".join(VARIANTS) + " (default: all; --quick: fp32,bf16)")
    parser.add_argument("--out", default=None, help="JSON record path (default benchmarks/results/...)")
    parser.add_argument("--race", action="store_true", help="also run the time-to-quality race")
    parser.add_argument("--race-minutes", type=float, default=15.0, help="give up a side of the race after this")
    args = parser.parse_args(argv)

    device = pick_device(args.device)
    n_train = 512 if args.quick else 60000
    epochs, check_epochs = (1, 1) if args.quick else (args.epochs, args.check_epochs)
    root = data_root()
    train = MNIST("train", subset=n_train, device=device)  # grey levels, as ToTensor gives
    test = MNIST("test", subset=256 if args.quick else None, device=device)
    info = {"device": str(device), "device_name": torch.cuda.get_device_name() if device.type == "cuda"
            else platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "vaelib": vaelib.__version__, "python": platform.python_version(),
            "native_bf16": native_bf16(device),
            "batch_size": 128, "train_images": n_train, "timed_epochs": epochs, "quick": args.quick}
    print(f"device {device} ({info['device_name']}, {info['threads']} threads, bf16 "
          f"{ {True: 'native', False: 'emulated', None: 'unknown'}[info['native_bf16']] }), torch {torch.__version__}, "
          f"vaelib {vaelib.__version__}, {n_train} training images, batch 128")
    results = []
    variants = (args.variants or ("fp32,bf16" if args.quick else ",".join(VARIANTS))).split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    for arch in args.archs.split(","):
        _, ref = time_reference(arch, device, 128, n_train, epochs, root, args.workers)
        row = {"arch": arch, "reference_img_per_s": ref, "vaelib": {}}
        print(f"{arch:>5}: reference {ref:9,.0f} img/s")
        for variant in variants:
            _, ours, overhead = time_vaelib(arch, device, 128, train, epochs, variant)
            row["vaelib"][variant] = {"img_per_s": ours, "ratio": ours / ref, "first_epoch_extra_s": overhead}
            print(f"{'':>5}  vaelib {variant:<24} {ours:9,.0f} img/s   ratio {ours / ref:5.2f}x   "
                  f"(first epoch {overhead:+.1f} s: warm-up{', compilation' if 'compile' in variant else ''})")
        if args.large_batch:
            for variant in variants:
                _, big, _ = time_vaelib(arch, device, args.large_batch, train, epochs, variant)
                row["vaelib"][f"{variant}, batch {args.large_batch}"] = {"img_per_s": big, "ratio": big / ref}
                print(f"{'':>5}  vaelib {variant} at batch {args.large_batch}: {big:9,.0f} img/s")
        results.append(row)

    print(f"test ELBO after {check_epochs} epoch(s) of each loop (same model, grey-level data, nats):")
    for row in results:
        arch = row["arch"]
        loader = reference_loader(root, n_train, 128, device)
        torch.manual_seed(1)
        ref_model = build_vae(arch, latent_dim=20).to(device)
        opt = torch.optim.Adam(ref_model.parameters(), lr=1e-3)
        for _ in range(check_epochs):
            reference_epoch(ref_model, loader, opt, device)
        ref_elbo = evaluate_elbo(ref_model, test)["elbo"]
        row.update(check_epochs=check_epochs, reference_test_elbo=ref_elbo)
        line = f"{arch:>5}: reference {ref_elbo:8.2f}"
        for variant in variants:
            torch.manual_seed(1)
            our_model = build_vae(arch, latent_dim=20)
            with matmul_precision(variant):
                fit(our_model, train, epochs=check_epochs, device=device, progress=False, seed=1, **fit_settings(VARIANTS, variant))
            our_elbo = evaluate_elbo(our_model, test)["elbo"]
            row["vaelib"][variant]["test_elbo"] = our_elbo
            line += f"   vaelib {variant} {our_elbo:8.2f} ({our_elbo - ref_elbo:+.2f})"
        print(line)

    race_rows = None
    if args.race or args.quick:
        print("time-to-quality race (training seconds until the binarized test -ELBO reaches the target):")
        race_rows = race(args.archs.split(","), device, n_train, root, 0.05 if args.quick else args.race_minutes,
                         {"mlp": 540.0, "conv": 540.0} if args.quick else TARGETS)
    if args.quick and not args.out:  # a smoke run's numbers are meaningless: nothing is recorded
        return results
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / f"throughput-{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**info, "results": results, "race": race_rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    try:
        main()
    except DataError as err:
        raise SystemExit(f"error: {err}") from None
