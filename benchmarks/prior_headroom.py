"""How much could a learned prior give a trained VAE? Measured on a checkpoint, without retraining it.

    python benchmarks/prior_headroom.py pretrained/conv_pixelcnn.pth --shard 0/20 --k 500
    python benchmarks/prior_headroom.py pretrained/conv_pixelcnn.pth --shard 0/20 --k 500 --mog 100 --epochs 3 --lr 1e-4

1. Splits the average KL of the training images into the mutual information I(n; z) between an
   image's index and its code, and KL(q(z) || p(z)) between the aggregate posterior
   q(z) = (1/N) sum_n q(z|x_n) and the prior (notebook 13, section 2). The second part is what the
   best prior for this encoder, q(z) itself, would take off the training ELBO.
2. Scores the test images of ``--shard`` (their IWAE bound L_k, as `vaelib evaluate` computes it:
   the same binarization and samples of z) with the model's prior and with the aggregate posterior
   of the training set in its place, a mixture of N Gaussians, and prints the paired difference:
   what that prior is worth in NLL with the encoder and decoder as they are.
3. With ``--mog C``: replaces the prior by a mixture of C Gaussians, fits it alone to the training
   images' codes, fine-tunes the whole model for ``--epochs`` at ``--lr`` (ELBO), and scores it on
   the same images. ``--out`` keeps that model as a checkpoint.

MNIST-style binary data under dynamic binarization (the literature's likelihood protocol); an
unconditional model with a diagonal Gaussian posterior and any prior.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import torch  # noqa: E402
from torch import nn  # noqa: E402

import vaelib  # noqa: E402
from vaelib.checkpoints import CheckpointError, load, save  # noqa: E402
from vaelib.cli import nonneg_int, positive_float, positive_int, shard_spec  # noqa: E402
from vaelib.data import DataError, load_dataset  # noqa: E402
from vaelib.evaluation import evaluate_elbo, iwae_bounds, summarize_bounds  # noqa: E402
from vaelib.vae import build_vae  # noqa: E402


class AggregatePosterior(nn.Module):
    """p(z) = (1/N) sum_n N(z; mu_n, diag(exp(logvar_n))) for ``(N, D)`` means and log-variances.

    ``log_prob`` of ``z`` ``(..., D)`` returns ``(...)``. The N Gaussian log-densities of a code are
    one matrix product, sum_d [z_d^2 a_nd - 2 z_d mu_nd a_nd] with a = exp(-logvar), plus a constant
    per component, so 60,000 components cost a (codes, 2D) x (2D, N) product, done in chunks of codes.
    (vaelib.VampPrior with the training images as pseudo-images is the same density, but it would
    encode them at every call and hold a (codes, N, D) tensor.)
    """

    analytic_kl = False

    def __init__(self, mu: torch.Tensor, logvar: torch.Tensor, chunk: int = 2048):
        super().__init__()
        a = torch.exp(-logvar)
        self.register_buffer("weights", torch.cat([a, -2 * mu * a], 1).T.contiguous())
        n, d = mu.shape
        self.register_buffer("const", -0.5 * ((mu ** 2 * a).sum(1) + logvar.sum(1) + d * math.log(2 * math.pi))
                             - math.log(n))
        self.chunk = chunk

    def forward(self):
        return self  # the VAE calls prior() for a distribution; this module is its own

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        shape = z.shape[:-1]
        z = z.reshape(-1, z.shape[-1]).float()
        out = [torch.logsumexp(-0.5 * (torch.cat([c ** 2, c], 1) @ self.weights) + self.const, 1)
               for c in z.split(self.chunk)]
        return torch.cat(out).reshape(shape)


@torch.no_grad()
def training_codes(model, train, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """q(z|x_n) of every training image (one binarization each): means and log-variances ``(N, D)``."""
    model.eval()
    mus, logvars = [], []
    for start in range(0, len(train), 1000):
        q = model.encode(train.prepare(train.images[start:start + 1000], generator))
        mus.append(q.mu)
        logvars.append(q.logvar)
    return torch.cat(mus), torch.cat(logvars)


@torch.no_grad()
def kl_split(model, mu, logvar, n: int, generator) -> dict:
    """E_n KL(q(z|x_n) || p) = I(n; z) + KL(q(z) || p), each a Monte-Carlo mean over ``n`` codes."""
    pick = torch.randperm(len(mu), generator=generator)[:n]
    q = torch.distributions.Independent(torch.distributions.Normal(mu[pick], (0.5 * logvar[pick]).exp()), 1)
    z = q.sample()
    log_q, log_agg, log_p = q.log_prob(z), AggregatePosterior(mu, logvar).log_prob(z), model.prior().log_prob(z)
    return {"kl": (log_q - log_p).mean().item(), "mutual_information": (log_q - log_agg).mean().item(),
            "marginal_kl": (log_agg - log_p).mean().item(), "log_n": math.log(len(mu))}


def bounds(model, test, k: int, indices) -> torch.Tensor:
    return torch.cat([b for _, b in iwae_bounds(model, test, k, indices=indices)]).double()


def paired(name: str, base: torch.Tensor, other: torch.Tensor, seconds: float) -> dict:
    nll = summarize_bounds(other, (1, 28, 28), 0, 0)
    diff = summarize_bounds(other - base, (1,), 0, 0)  # the NLL of the differences: their mean, negated
    print(f"{name}: NLL {nll['nll']:.3f} +- {nll['std_error']:.3f}; against the model's prior, image by image: "
          f"{diff['nll']:+.3f} +- {diff['std_error']:.3f} nats ({seconds:.0f} s)", flush=True)
    return {"nll": nll["nll"], "std_error": nll["std_error"], "difference": diff["nll"],
            "difference_std_error": diff["std_error"]}


def mixture_model(model, mu, logvar, components: int, generator, steps: int = 1500):
    """The same model with a mixture of ``components`` Gaussians as its prior, fitted to the codes.

    The mixture starts at the posteriors of random training images, twice as wide (each stands for
    many), and is fitted alone (max E_q log p(z), the rest of the model frozen) so that fine-tuning
    starts from a better ELBO, not a worse one: started unfitted, 50 components cost 8 nats of test
    ELBO at step 0 and fine-tuning went on from there.
    """
    new = build_vae(config=dataclasses.replace(model.config, prior_kind="mog", prior_components=components))
    mine = {k: v for k, v in model.state_dict().items() if not k.startswith("prior.")}
    missing, unexpected = new.load_state_dict(mine, strict=False)
    assert not unexpected and all(k.startswith("prior.") for k in missing), (missing, unexpected)
    start = torch.randperm(len(mu), generator=generator)[:components]
    with torch.no_grad():
        new.prior.means.copy_(mu[start])
        new.prior.logvars.copy_(logvar[start] + math.log(2.0))
    optimizer = torch.optim.Adam(new.prior.parameters(), lr=1e-2)
    for _ in range(steps):
        b = torch.randint(len(mu), (4096,), generator=generator)
        z = mu[b] + (0.5 * logvar[b]).exp() * torch.randn(4096, mu.shape[1], generator=generator)
        loss = -new.prior().log_prob(z).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return new


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--k", type=positive_int, default=500, help="importance samples per test image (default: 500)")
    parser.add_argument("--shard", type=shard_spec, default="0/20", help="test images I mod N (default: 0/20, 500 images)")
    parser.add_argument("--train-subset", type=positive_int, default=None, help="first N training images only (quick runs)")
    parser.add_argument("--kl-codes", type=positive_int, default=2000, help="codes for the KL split (default: 2000)")
    parser.add_argument("--mog", type=nonneg_int, default=0, help="also fit and fine-tune a mixture of this many Gaussians")
    parser.add_argument("--epochs", type=positive_int, default=3, help="with --mog: fine-tuning epochs (default: 3)")
    parser.add_argument("--lr", type=positive_float, default=1e-4, help="with --mog: fine-tuning learning rate (default: 1e-4)")
    parser.add_argument("--prior-steps", type=nonneg_int, default=1500, help="with --mog: steps fitting the mixture alone")
    parser.add_argument("--out", default=None, help="with --mog: write the fine-tuned model here")
    args = parser.parse_args(argv)
    i, n = args.shard
    generator = torch.Generator().manual_seed(1)

    model = load(args.checkpoint).eval()
    if model.posterior is not None or model.num_classes:
        raise SystemExit(f"error: {args.checkpoint} has a flow posterior or is conditional: this measures "
                         f"unconditional models with a diagonal Gaussian posterior (the codes are mixed as Gaussians)")
    train = load_dataset("mnist", "train", "dynamic", args.train_subset)
    test = load_dataset("mnist", "test", "dynamic")
    if i >= len(test):
        raise SystemExit(f"error: shard {i}/{n} holds none of the {len(test):,} test images: choose I < {len(test):,}")
    if args.mog > len(train):
        raise SystemExit(f"error: --mog {args.mog} starts each component at a training image, and {len(train):,} "
                         f"are loaded: choose fewer components or a larger --train-subset")
    indices = torch.arange(i, len(test), n)
    mu, logvar = training_codes(model, train, generator)
    split = kl_split(model, mu, logvar, args.kl_codes, generator)
    print(f"{len(mu):,} training images: KL {split['kl']:.3f} = I(n; z) {split['mutual_information']:.3f} "
          f"(at most log N = {split['log_n']:.3f}) + KL(q(z) || p(z)) {split['marginal_kl']:.3f} nats", flush=True)

    t = time.perf_counter()
    base = bounds(model, test, args.k, indices)
    nll = summarize_bounds(base, (1, 28, 28), args.k, 0)
    print(f"{len(indices)} test images, k = {args.k}: NLL {nll['nll']:.3f} +- {nll['std_error']:.3f} with the "
          f"model's prior ({time.perf_counter() - t:.0f} s)", flush=True)
    result = {"split": split, "base": {"nll": nll["nll"], "std_error": nll["std_error"]}}

    prior = model.prior
    model.prior = AggregatePosterior(mu, logvar)
    t = time.perf_counter()
    result["aggregate"] = paired(f"the aggregate posterior of {len(mu):,} training images as the prior",
                                 base, bounds(model, test, args.k, indices), time.perf_counter() - t)
    model.prior = prior

    if args.mog:
        tuned = mixture_model(model, mu, logvar, args.mog, generator, args.prior_steps)
        before = evaluate_elbo(tuned, test)["elbo"]
        t = time.perf_counter()
        history = vaelib.fit(tuned, train, test, epochs=args.epochs, lr=args.lr, progress=False)
        seconds = time.perf_counter() - t
        print(f"mixture of {args.mog} fitted to the codes: test ELBO {before:.3f} (the model's own: "
              f"{evaluate_elbo(model, test)['elbo']:.3f}); after {args.epochs} epochs at lr {args.lr:g} "
              f"({seconds:.0f} s): {history[-1]['test_elbo']:.3f}", flush=True)
        if args.out:
            save(tuned, args.out, epoch=args.epochs, history=history)
        t = time.perf_counter()
        result["mog"] = paired(f"mixture of {args.mog}, fine-tuned", base, bounds(tuned, test, args.k, indices),
                               time.perf_counter() - t)
    return result


if __name__ == "__main__":
    try:
        main()
    except (CheckpointError, DataError) as error:  # one line that names the problem, not a traceback
        raise SystemExit(f"error: {error}")
