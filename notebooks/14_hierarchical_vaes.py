# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 14 · Hierarchical VAEs
#
# Every VAE so far had one layer of latent variables: one $z$, one prior $\mathcal N(0, I)$, one KL term. The
# VAEs that hold the likelihood records on MNIST (NVAE, BIVA) and the ones that generate faces at 256x256
# (NVAE, VDVAE) stack several. This notebook builds the smallest such model, two stochastic layers with the
# ladder VAE's **top-down inference** in NVAE's residual form, derives its ELBO, checks every part of it in
# plain torch, and then asks what the second layer buys: in likelihood, on the course's $k = 5000$ protocol, and
# in what each layer ends up encoding.
#
# **Learning objectives**
#
# - Write the generative model $p(z_2)\,p(z_1\mid z_2)\,p(x\mid z_1)$ and the top-down posterior
#   $q(z_2\mid x)\,q(z_1\mid z_2, x)$, with $q(z_1\mid z_2, x)=\mathcal N(\mu_p+\Delta\mu,\ \sigma_p\cdot\Delta\sigma)$.
# - Derive the ELBO with one KL per layer, each to the *conditional* prior inside the expectation over the layers
#   above; compute it in plain torch and check it against `vaelib.hierarchical`, the closed-form KLs against
#   Monte Carlo, and the ELBO against the importance-weighted bound.
# - Explain why upper layers go inactive, and measure what KL warm-up and free bits per layer do about it.
# - Read what each layer encodes by redrawing one layer and holding the others, and compare top-down with
#   bottom-up inference on the same generative model.
# - Place our number among the literature's (Burda et al., LVAE, the VampPrior HVAE, NVAE) on the same protocol,
#   and sample with a temperature per layer without mistaking it for the model.
#
# **Prerequisites**
#
# - Notebooks 03 (KL divergence between Gaussians), 04 (reparameterization), 06 (KL warm-up, free bits,
#   posterior collapse), 08 (the importance-weighted bound, paired comparisons on the same images), 11 (active
#   units) and 13 (sample scores: the Frechet distance under the course's MNIST classifier).
# - Maths: the chain rule of probability, Jensen's inequality, the KL of two Gaussians.

# %% [markdown]
# ## 1. Setup
#
# Three checkpoints of `pretrained/` carry the notebook, all with the same generative model (two stochastic layers
# of 32 and 16 dimensions, a conv decoder), data (dynamically binarized MNIST), seed and recipe: 40 epochs, batch
# 128, Adam 1e-3 with a cosine decay. The two top-down ones have 1.93M parameters, the bottom-up one 1.74M (its
# inference networks are smaller).
#
# - `hvae`: top-down inference, KL warm-up over the first 10 epochs and 0.5 free nats per layer (the cures of
#   section 4);
# - `hvae_plain`: the same without warm-up and free bits;
# - `hvae_bottom_up`: the cures, with bottom-up inference (section 6).
#
# `conv_vae`, the one-layer conv VAE of notebook 05, is the baseline. The notebook's numbers use the first 1,000
# test images, binarized once with seed 0: the images of `benchmarks/RESULTS.md`.

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
import math
import time

import matplotlib.pyplot as plt
import torch
from torch.distributions import Normal, kl_divergence

import vaelib
from vaelib.course import load_or_train, pretrained_path, save_figure
from vaelib.course.sample_quality import model_scores
from vaelib.evaluation import iwae_nll
from vaelib.hierarchical import layer_statistics
from vaelib.plotting import image_grid

FAST = vaelib.course.fast_mode()      # True when VAELIB_FAST=1: the smoke-test mode that CI uses
print(vaelib.course.mode_name())    # what made the outputs below: learner mode, or CI's fast mode
TRAIN_FROM_SCRATCH = False     # set True to retrain instead of loading pretrained/ checkpoints
torch.manual_seed(0)
started = time.perf_counter()

test = vaelib.MNIST("test", binarize="dynamic", subset=1000)   # the first 1,000 test images, as benchmarks/RESULTS.md
train = vaelib.MNIST("train", binarize="dynamic", subset=5000 if FAST else None)  # used to (re)train only
x_test, _ = test.first(1000, seed=0)                  # one fixed binarization
NAMES = ("hvae", "hvae_plain", "hvae_bottom_up")
PRETRAINED = not TRAIN_FROM_SCRATCH and all(pretrained_path(name).exists() for name in NAMES)
models, histories = {}, {}
for name in NAMES:
    models[name], histories[name] = load_or_train(name, train, test, train_from_scratch=TRAIN_FROM_SCRATCH)
hvae = models["hvae"]
conv, _ = load_or_train("conv_vae", train, test, train_from_scratch=TRAIN_FROM_SCRATCH)
print(f"hvae: {hvae.config}, {sum(p.numel() for p in hvae.parameters()):,} parameters")
print("all three pretrained, trained alike:", PRETRAINED)

# %% [markdown]
# ## 2. Two layers of latents, and their ELBO
#
# **The generative model.** Draw the top layer from the standard normal, the bottom layer from a Gaussian whose
# mean and variance the top layer chooses, and the image from the bottom layer:
#
# $$z_2 \sim \mathcal N(0, I),\qquad z_1 \sim p(z_1\mid z_2)=\mathcal N\big(\mu_p(z_2),\ \sigma_p^2(z_2)\big),\qquad
#   x \sim p(x\mid z_1)=\prod_i \mathrm{Bernoulli}(x_i;\ \pi_i(z_1)).$$
#
# The prior of $z_1$ is no longer fixed: it is $p(z_1) = \int p(z_2)\,p(z_1\mid z_2)\,dz_2$, an infinite mixture of
# Gaussians that the network learns, the thing notebook 13 gave a one-layer VAE by hand. In `vaelib` a small
# network `down` turns $z_2$ into a *top-down state* $s_1$, and a linear head reads $(\mu_p, \log\sigma_p^2)$ from it.
#
# **Top-down inference.** The posterior is factorized in the same order as the prior,
# $q(z_1, z_2\mid x) = q(z_2\mid x)\,q(z_1\mid z_2, x)$. A deterministic bottom-up pass computes features $h_1$ and
# $h_2$ of $x$; then
#
# $$q(z_2\mid x)=\mathcal N\big(\mu(h_2), \sigma^2(h_2)\big),\qquad
#   q(z_1\mid z_2, x) = \mathcal N\big(\mu_p + \Delta\mu,\ (\sigma_p\cdot\Delta\sigma)^2\big),
#   \quad (\Delta\mu, \log\Delta\sigma^2) = g(s_1, h_1).$$
#
# The posterior of $z_1$ is written as a *correction* to its conditional prior: the ladder VAE's idea (Sønderby et
# al. 2016) in NVAE's residual form (Vahdat and Kautz 2020). At $\Delta\mu = 0$, $\Delta\sigma = 1$ the posterior *is*
# the prior and the layer's KL is 0, which is where `vaelib` initializes it; and the inference path shares the
# top-down computation with the generative path, so the two cannot drift apart.
#
# **The ELBO.** Jensen's inequality with this $q$, then the chain rule of both distributions:
#
# $$\log p(x) \ge \mathbb E_{q(z_1, z_2\mid x)}\Big[\log \frac{p(x\mid z_1)\,p(z_1\mid z_2)\,p(z_2)}
#   {q(z_1\mid z_2, x)\,q(z_2\mid x)}\Big]
#   = \mathbb E_q\big[\log p(x\mid z_1)\big]
#   - \mathrm{KL}\big(q(z_2\mid x)\,\|\,p(z_2)\big)
#   - \mathbb E_{q(z_2\mid x)}\Big[\mathrm{KL}\big(q(z_1\mid z_2, x)\,\|\,p(z_1\mid z_2)\big)\Big].$$
#
# The last step splits $\mathbb E_{q(z_2)q(z_1\mid z_2)}[\log q(z_1\mid z_2)/p(z_1\mid z_2)]$ into an outer expectation
# over $z_2$ and an inner one over $z_1$, which is a KL between two Gaussians in closed form. Two things to read in it:
#
# - **The KL of $z_1$ is to its conditional prior $p(z_1\mid z_2)$**, with $z_2$ the *posterior* sample, not to
#   $\mathcal N(0, I)$. Computing it against $\mathcal N(0, I)$ is a filed bug class (AntixK/PyTorch-VAE #25,
#   NVlabs/NVAE #50): the result is the ELBO of another model, and not a bound on this one's likelihood.
# - **With one sample of $z_2$** (what training uses) the outer expectation is a one-sample Monte-Carlo estimate:
#   the reconstruction and the lower KL are evaluated at the same $z_2$, the upper KL is exact. With $L$ layers the
#   pattern repeats: one KL per layer, each inside the expectation over the layers above.
#
# ## 3. The ELBO in plain torch
#
# The whole computation for a batch, written with `torch.distributions` and the trained model's layers, with the
# noise drawn in `vaelib`'s order (the top layer first). `vaelib` clamps every log-variance to $[-8, 8]$, so that
# no layer can blow up a KL or a sample; the plain version does the same.

# %%
def gaussian(mu, logvar):
    return Normal(mu, torch.exp(0.5 * logvar.clamp(-8, 8)))


def two_layer_elbo(model, x, eps_2, eps_1):
    """(reconstruction, KL of z_2, KL of z_1), each (B,) nats, with z_l = mu + sigma * eps_l."""
    h_1 = model.encoder(x)                                          # bottom-up features (B, 256)
    h_2 = model.up[0](h_1)
    q_2 = gaussian(*model.top_posterior(h_2).chunk(2, -1))          # q(z_2 | x)
    z_2 = q_2.loc + q_2.scale * eps_2
    s_1 = model.down[0](z_2)                                        # top-down state
    mu_p, logvar_p = model.prior_heads[0](s_1).chunk(2, -1)
    p_1 = gaussian(mu_p, logvar_p)                                  # p(z_1 | z_2)
    d_mu, d_logvar = model.posterior_heads[0](torch.cat([s_1, h_1], -1)).chunk(2, -1)
    q_1 = gaussian(mu_p + d_mu, logvar_p.clamp(-8, 8) + d_logvar)   # q(z_1 | z_2, x): sigma_p * delta_sigma
    z_1 = q_1.loc + q_1.scale * eps_1
    logits = model.decoder(z_1)
    reconstruction = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
    kl_2 = kl_divergence(q_2, Normal(0.0, 1.0)).sum(-1)
    kl_1 = kl_divergence(q_1, p_1).sum(-1)                          # to the conditional prior
    return reconstruction, kl_2, kl_1, (q_1, p_1, z_2)


x = x_test[:256]
g = torch.Generator().manual_seed(0)
eps_2, eps_1 = torch.randn(256, 16, generator=g), torch.randn(256, 32, generator=g)   # top first, as vaelib draws
with torch.no_grad():
    rec, kl_2, kl_1, (q_1, p_1, z_2) = two_layer_elbo(hvae, x, eps_2, eps_1)
    terms = hvae.terms(x, generator=torch.Generator().manual_seed(0))
mine = rec - kl_2 - kl_1
print(f"plain torch: reconstruction {rec.mean():.2f}, KL(z_2) {kl_2.mean():.2f}, KL(z_1 | z_2) {kl_1.mean():.2f}, "
      f"ELBO {mine.mean():.2f} nats")
print(f"vaelib:      reconstruction {terms.reconstruction.mean():.2f}, KL(z_2) {terms.kl[1].mean():.2f}, "
      f"KL(z_1 | z_2) {terms.kl[0].mean():.2f}, ELBO {terms.value.mean():.2f} nats")
assert torch.allclose(mine, terms.value, atol=1e-3)
assert torch.allclose(terms.value, terms.reconstruction - sum(terms.kl))      # the ELBO is the sum of its parts
with torch.no_grad():
    wrong = kl_divergence(q_1, Normal(0.0, 1.0)).sum(-1)                     # the bug: z_1's KL to N(0, I)
print(f"KL of z_1 to N(0, I) instead: {wrong.mean():.2f} nats; the 'ELBO' it gives differs by "
      f"{(wrong - kl_1).mean():+.2f} nats per image and bounds nothing")

# %% [markdown]
# Both columns agree image by image (the cell asserts it), so `HierarchicalVAE.terms` computes exactly the
# derivation above. The last line is the bug of section 2 made concrete: measured against $\mathcal N(0, I)$, the
# posterior of $z_1$ looks many nats more expensive than it is, because the prior the top layer chose for it sits
# far from the origin and is narrower than 1. An ELBO with that term is neither this model's bound nor
# a useful training signal: it pulls every $q(z_1\mid z_2, x)$ back to the origin and makes $z_2$ pointless.
#
# **The closed-form KLs against Monte Carlo.** For one image and its sample of $z_2$, draw $10^5$ samples of $z_1$
# from $q(z_1\mid z_2, x)$ and average $\log q - \log p$; do the same for $z_2$. Each estimate must land within 1%
# of the closed form.

# %%
with torch.no_grad():
    mc = torch.Generator().manual_seed(1)
    q_img = Normal(q_1.loc[0].double(), q_1.scale[0].double())
    p_img = Normal(p_1.loc[0].double(), p_1.scale[0].double())
    z = q_img.loc + q_img.scale * torch.randn(100_000, 32, generator=mc, dtype=torch.float64)
    kl_1_mc = (q_img.log_prob(z) - p_img.log_prob(z)).sum(-1).mean().item()
    q2_img = gaussian(*hvae.top_posterior(hvae.up[0](hvae.encoder(x[:1]))).chunk(2, -1))
    q2_img = Normal(q2_img.loc[0].double(), q2_img.scale[0].double())
    z = q2_img.loc + q2_img.scale * torch.randn(100_000, 16, generator=mc, dtype=torch.float64)
    kl_2_mc = (q2_img.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1).mean().item()
for layer, closed, estimate in (("z_1 | z_2", kl_1[0].item(), kl_1_mc), ("z_2", kl_2[0].item(), kl_2_mc)):
    print(f"KL of {layer}: closed form {closed:.4f}, Monte Carlo (10^5 samples) {estimate:.4f}, "
          f"relative difference {abs(estimate - closed) / closed:.2%}")
    assert abs(estimate - closed) < 0.01 * closed

# %% [markdown]
# **The ELBO is the weakest importance-weighted bound.** Notebook 08's $\mathcal L_k = \mathbb E\log\frac1k
# \sum_i p(x, z^{(i)})/q(z^{(i)}\mid x)$ needs the joint $p(x, z_1, z_2)$ and $q(z_1, z_2\mid x)$ of whole-hierarchy
# samples; `HierarchicalVAE.log_importance_weights` provides them, so `vaelib.iwae_bound` and `iwae_nll` evaluate
# the hierarchy as they evaluate every other model. $\mathcal L_1$ is the ELBO (in expectation), and the bound
# rises with $k$:

# %%
with torch.no_grad():
    elbo_100 = torch.stack([hvae.terms(x[:100], generator=torch.Generator().manual_seed(s)).value
                            for s in range(8)]).mean(0)          # the ELBO, averaged over 8 draws
    bounds = {k: vaelib.iwae_bound(hvae, x[:100], k, generator=torch.Generator().manual_seed(2))
              for k in (1, 4, 16, 64)}
print(f"first 100 test images: ELBO {elbo_100.mean():.2f}; " + ", ".join(
    f"L_{k} {b.mean():.2f}" for k, b in bounds.items()) + " nats")
assert all(bounds[a].mean() <= bounds[b].mean() for a, b in ((1, 4), (4, 16), (16, 64)))
assert elbo_100.mean() <= bounds[64].mean()

# %% [markdown]
# ## 4. Why upper layers go inactive, and the cures
#
# Each layer's KL is what the layer costs. At the start of training the decoder cannot use the latents yet, so every
# nat of KL is paid for nothing, and the cheapest ELBO sets $q = p$ layer by layer: KL 0, the layer *inactive*
# (collapsed), as notebook 06 showed for one layer. In a hierarchy the top layer is the most exposed. It reaches the
# image only through the layer below, so whatever it could encode, $z_1$ can usually encode more cheaply first, and
# once the decoder has learned to do without $z_2$ nothing pulls it back. Two cures, both from the ladder VAE line
# of work:
#
# - **KL warm-up**: multiply the KL terms by $\beta$ rising from 0 to 1 over the first epochs, so the layers are
#   used before they are charged for. The LVAE paper found it crucial (together with batch norm).
# - **Free bits per layer (group)**: in the loss, each layer's batch-mean KL counts as at least $\lambda$ nats,
#   $\sum_l \max(\lambda,\ \overline{\mathrm{KL}}_l)$, so a layer below $\lambda$ costs nothing to use
#   (`addtt/ladder-vae-pytorch` uses $\lambda = 0.5$ for up to six layers). Exercise 2 writes it.
#
# The reported ELBO never includes either: both change the gradient, not the bound. `hvae` was trained with both
# (`hierarchical_objective(warmup_steps=10 epochs, free_bits=0.5)`), `hvae_plain` with neither. Their test KL per
# layer, epoch by epoch, stacked, as `vaelib.fit` recorded it at the end of each epoch (on the first 1,000 test
# images for `hvae`, whose benchmark tested on those; on all 10,000 for `hvae_plain`):

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
for ax, name, title in zip(axes, ("hvae", "hvae_plain"), ("with warm-up and free bits", "without")):
    history = histories[name]
    epochs = [r["epoch"] for r in history]
    ax.stackplot(epochs, [r["test_kl_1"] for r in history], [r["test_kl_2"] for r in history],
                 labels=["KL of z_1 (bottom, 32 dims)", "KL of z_2 (top, 16 dims)"], alpha=0.8)
    ax.set_title(f"{name}: {title}", fontsize=10)
    ax.set_xlabel("epoch")
axes[0].set_ylabel("test KL per layer (nats)")
axes[0].legend(loc="upper right", fontsize=8)
save_figure(fig, "14_kl_per_layer.png")
plt.show()
for name in ("hvae", "hvae_plain"):
    last = histories[name][-1]
    print(f"{name}: after {last['epoch']} epochs, test ELBO {last['test_elbo']:.2f}, KL of z_1 "
          f"{last['test_kl_1']:.2f}, KL of z_2 {last['test_kl_2']:.2f} nats")

# %% [markdown]
# The KL alone does not say how many dimensions carry information: a layer may spend its nats on a few of them.
# Notebook 11's criterion counts a dimension as **active** when its posterior mean varies with the image,
# $\mathrm{Cov}_x\,\mathbb E_q[z_j] > 0.01$ (for $z_1$, with $z_2$ sampled). `vaelib.hierarchical.layer_statistics`
# computes it per layer:

# %%
# NBVAL_IGNORE_OUTPUT
layers = {name: layer_statistics(models[name], x_test) for name in NAMES}
print(f"{'first 1,000 test images':24s} {'KL z_1':>7s} {'active z_1':>11s} {'KL z_2':>7s} {'active z_2':>11s}")
for name, stats in layers.items():
    (s1, s2) = stats
    print(f"{name:24s} {s1['kl']:7.2f} {s1['active_units']:8d}/32 {s2['kl']:7.2f} {s2['active_units']:8d}/16")
if PRETRAINED:                  # the claims below, about the checkpoints
    assert all(s["active_units"] >= 1 for s in layers["hvae"])

# %% [markdown]
# **Does the top layer collapse without the cures? Here, no.** `hvae_plain`, trained with neither warm-up nor
# free bits, ends with 13.0 nats in $z_2$ and 9 of its 16 dimensions active, against 17.3 nats and 14 active with
# the cures; $z_1$ is fully active in both. The cures still pay a little: on the same 1,000 images (section 6's
# table) `hvae` is 0.2 nats better in ELBO and 0.4 nats better in $\mathcal L_{100}$, and it moves information from
# the bottom layer to the top (the stacked plots: with warm-up, the KL starts high while $\beta$ is small and settles
# at about 25 nats, two thirds of it in $z_2$). Two things protect this model where the LVAE paper's deeper MLP
# hierarchies collapsed: it has only two layers, and the residual posterior starts at $q = p$, so a layer costs
# nothing until it is used and never has to climb back from a bad start. With five or more layers, or with the
# top layer far from the image, the cures matter much more (LVAE found warm-up crucial; `ladder-vae-pytorch` uses
# free bits for all its models). Read the KL per layer *and* the active units: a layer can hold several nats in a
# few dimensions.

# %% [markdown]
# ## 5. What each layer encodes
#
# Encode a test image, keep the posterior sample of some layers, and redraw the others from their conditional
# priors given the layers above (`HierarchicalVAE.resample`): the figure of the ladder VAE papers and of VDVAE's
# Fig. 4. Each column is one test image. Rows: the image; its reconstruction (both layers kept); three redraws of
# $z_1$ from $p(z_1\mid z_2)$ with the image's own $z_2$ kept; and, for scale, three redraws of both layers (samples of
# the model, unrelated to the column).

# %%
# NBVAL_IGNORE_OUTPUT
columns = x_test[:10]
rows = [columns, hvae.resample(columns, keep=[0, 1], generator=torch.Generator().manual_seed(3))]
rows += [hvae.resample(columns, keep=[1], generator=torch.Generator().manual_seed(4 + s)) for s in range(3)]
rows += [hvae.resample(columns, keep=[], generator=torch.Generator().manual_seed(7 + s)) for s in range(3)]
fig, ax = plt.subplots(figsize=(8, 6.6))
ax.imshow(image_grid(torch.cat(rows), len(columns)).numpy(), cmap="gray")
ax.set_yticks([14 + 30 * i for i in range(len(rows))],
              ["image", "both kept", "z_2 kept, z_1 redrawn", "", "", "both redrawn", "", ""])
ax.set_xticks([])
ax.tick_params(length=0)
save_figure(fig, "14_resample_layers.png")
plt.show()

# %% [markdown]
# Keeping $z_2$ keeps the digit: the three rows where only $z_1$ is redrawn are mostly the same digit as the
# column's image, with a different stroke width, slant and shape, while the rows where both layers are redrawn
# are unrelated digits. The top layer carries the identity and the global shape, the bottom one the strokes, as in
# the VDVAE and ladder-VAE figures. The split is not clean: in a few columns a redraw of $z_1$ changes the class
# (a 1 becomes an 8, a 9 a 6), because with two layers $z_1$ still carries 7.7 nats of its own (section 4's
# table), some of them about which digit it is. Deeper hierarchies divide the work more finely.
#
# ## 6. The same generative model, inferred bottom-up
#
# Top-down inference is one way to factorize $q$. The older one (Burda et al.'s two-layer IWAE, most "stacked" VAEs)
# goes the other way, each layer inferred from the one below: $q(z_1\mid x)\,q(z_2\mid z_1)$. The generative model
# has the same form and the same networks, $p(z_2)\,p(z_1\mid z_2)\,p(x\mid z_1)$, and so does the ELBO, but now
# the posterior of $z_1$ cannot know which $z_2$ will be drawn, and $q(z_2 \mid z_1)$ sees the image only through a
# noisy $z_1$. `hvae_bottom_up` was trained with the same recipe and cures as `hvae` (so its generative model has the
# same architecture, with weights of its own); the table compares them on the same images, with the same samples of
# the bound ($\mathcal L_k$ with $k$ = `K_IW`, a smaller $k$ than the protocol's), and `hvae_plain` beside them.

# %%
# NBVAL_IGNORE_OUTPUT
N_IW, K_IW = (100, 20) if FAST else (500, 100)
first = vaelib.MNIST("test", binarize="dynamic", subset=N_IW)
table = {}
for name in ("hvae", "hvae_bottom_up", "hvae_plain"):
    with torch.no_grad():
        elbo = torch.stack([models[name].terms(x_test, generator=torch.Generator().manual_seed(s)).value
                            for s in range(4)]).mean(0)
    bound = iwae_nll(models[name], first, k=K_IW, seed=0, per_image=True, progress=False)
    table[name] = {"elbo": elbo.mean().item(), "nll": bound["nll"], "per_image": bound["per_image"],
                   "elbo_first": elbo[:N_IW].mean().item()}
print(f"{'':16s} {'-ELBO (1,000)':>14s} {f'-ELBO ({N_IW})':>12s} {f'-L_{K_IW} ({N_IW})':>14s} {'gap':>6s}")
for name, r in table.items():
    print(f"{name:16s} {-r['elbo']:14.2f} {-r['elbo_first']:12.2f} {r['nll']:14.2f} {-r['elbo_first'] - r['nll']:6.2f}")
d = table["hvae_bottom_up"]["per_image"] - table["hvae"]["per_image"]
print(f"bottom-up minus top-down, -L_{K_IW}: {d.mean():+.2f} +- {d.std() / math.sqrt(len(d)):.2f} nats (paired)")

# %% [markdown]
# Top-down inference wins on every line. Inferred bottom-up, the same kind of model is 2.2 nats worse in ELBO
# (88.71 against 86.53 on 1,000 images) and 0.81 +- 0.15 nats worse in $-\mathcal L_{100}$ (paired, on the same 500
# images and samples), and its gap between the two, 4.64 nats against 3.08, says that its posterior fits the true
# one less well. The layer table of section 4 shows where the information went: bottom-up, $z_1$ carries 22.6 nats
# and $z_2$ only 7.6 (10 of 16 active), the reverse of top-down. A posterior $q(z_2\mid z_1)$ that sees the image
# only through $z_1$ can say little more than $z_1$ already says, so the model keeps its information low, and the
# learned prior of $z_1$ has less to do. This is why the ladder VAE, BIVA, NVAE and VDVAE all infer top-down.
#
# ## 7. The likelihood, against the literature
#
# The course's protocol (notebook 08, `benchmarks/RESULTS.md`): $-\mathcal L_{5000}$ on the first 1,000 test images,
# dynamically binarized with seed 0, each image's samples from its own seed. It takes 8 to 20 minutes per
# model on two CPU cores, so the notebook prints the stored results of `python benchmarks/hierarchical_mnist.py`
# (which trained `hvae`) and re-measures the *paired difference* to `conv_vae` at the smaller $k$ of section 6 on the
# same images, which it can afford.

# %%
# NBVAL_IGNORE_OUTPUT
conv_bound = iwae_nll(conv.eval(), first, k=K_IW, seed=0, per_image=True, progress=False)
d = table["hvae"]["per_image"] - conv_bound["per_image"]
print(f"-L_{K_IW} on the first {N_IW} test images: conv_vae {conv_bound['nll']:.2f}, hvae {table['hvae']['nll']:.2f}; "
      f"paired difference {d.mean():+.2f} +- {d.std() / math.sqrt(len(d)):.2f} nats")
print(f"notebook so far: {time.perf_counter() - started:.0f} s")

# %% [markdown]
# The anchors, all on dynamically binarized MNIST, in nats (lower is better), beside ours. Ours are the stored
# $k = 5000$ results of `benchmarks/RESULTS.md` (first 1,000 test images); the others are the papers' own, on all
# 10,000 test images with their own $k$ (5,000 for Burda et al., LVAE and the VampPrior paper), so read them as
# positions, not as a paired comparison.

# %%
# NBVAL_IGNORE_OUTPUT
ANCHORS = [   # (model, NLL in nats, where it comes from)
    ("Burda et al. 2016: VAE, 1 stochastic layer (MLP)", 86.76, "IWAE paper, Table 1"),
    ("Burda et al. 2016: VAE, 2 stochastic layers (MLP)", 85.33, "IWAE paper, Table 1"),
    ("LVAE (Sønderby et al. 2016), its best MNIST model", 81.74, "LVAE paper"),
    ("VampPrior HVAE, 2 layers (Tomczak and Welling 2018)", 81.24, "VampPrior paper"),
    ("NVAE (Vahdat and Kautz 2020), 2x V100, about 21 h", 78.01, "NVAE paper"),
]
OURS = [      # benchmarks/RESULTS.md, first 1,000 test images, k = 5000 (python benchmarks/hierarchical_mnist.py)
    ("vaelib conv_vae, 1 layer, 9 min on 2 CPU cores", 86.12, "RESULTS.md"),
    ("vaelib conv_iwae, 1 layer, IWAE training, 30 min", 83.71, "RESULTS.md"),
    ("vaelib hvae, 2 layers, 12 min (24 CPU min)", 82.82, "RESULTS.md, +- 0.70; paired to conv_vae -3.30 +- 0.12"),
]
for name, nll, source in sorted(ANCHORS + OURS, key=lambda row: -row[1]):
    print(f"{name:56s} {nll:6.2f}   {source}")
print("statically binarized MNIST, a small conv ladder VAE (addtt/ladder-vae-pytorch, k = 1000): "
      "3 / 6 / 12 layers 79.24 / 78.52 / 78.30")

# %% [markdown]
# One more stochastic layer takes the conv VAE from 86.12 to 82.82 nats on the protocol: a paired gain of 3.30 +- 0.12
# nats (`benchmarks/RESULTS.md`; the cell above it measures 3.63 +- 0.18 at $k = 100$ on 500 images, a looser bound on
# fewer images, same sign and size). That is more than the literature's +1 layer (1.43 nats for Burda et al.'s MLPs,
# 2.4 in the VampPrior paper), and it passes `conv_iwae`, the best one-layer model with a factorized decoder, in 24
# CPU-minutes of training. The rest of the gap to NVAE's 78.01 is depth and scale: the ladder results on static MNIST
# fall from 79.24 to 78.30 as the layers go from 3 to 12, and their author found the number of stochastic layers
# mattered more than the width of the networks between them. NVAE adds residual cells, spatial latents, batch
# normalization, spectral regularization and about 21 GPU-hours.

# %% [markdown]
# ## 8. Samples, and a temperature per layer
#
# Sampling runs the generative model top-down: $z_2\sim\mathcal N(0, I)$, $z_1\sim p(z_1\mid z_2)$, then the decoder.
# NVAE samples with a *temperature* $t < 1$, shrinking each layer's prior standard deviation: the samples look
# cleaner, because they avoid the prior's tails where the decoder has seen few codes. But they are no longer
# samples of the model, whose likelihood we measured; `HierarchicalVAE.sample(n, temperature=[t_1, t_2])` takes one
# per layer, bottom to top, defaulting to 1. Below: decoder means at $t = 1$ (the model) and at $t = 0.7$ on both
# layers, from the same noise. Only $t = 1$ is scored: the FD of 10,000 binary samples (2,000 in fast mode) under
# the course's MNIST classifier, against `conv_vae`'s prior samples on the same scale.

# %%
# NBVAL_IGNORE_OUTPUT
fig, axes = plt.subplots(1, 2, figsize=(11, 5.6))
for ax, t in zip(axes, (1.0, 0.7)):
    images = hvae.sample(64, generator=torch.Generator().manual_seed(11), temperature=[t, t])
    ax.imshow(image_grid(images, 8).numpy(), cmap="gray")
    ax.set_title(f"temperature {t:g}" + (" (the model)" if t == 1 else " (not the model: never scored)"), fontsize=10)
    ax.set_axis_off()
save_figure(fig, "14_samples_temperature.png")
plt.show()
n_fd = 2000 if FAST else 10_000
scores = {name: model_scores(model, n_fd, seed=0, binary=True) for name, model in (("hvae", hvae), ("conv_vae", conv))}
for name, s in scores.items():
    print(f"{name}: FD of {n_fd:,} binary prior samples {s['fd']:.1f}, confidence {s['confidence']:.3f}, "
          f"label entropy {s['label_entropy']:.3f}")
print(f"notebook: {time.perf_counter() - started:.0f} s")

# %% [markdown]
# The second layer improves the samples as much as the likelihood: FD 43.9 against 65.6 for `conv_vae`'s prior
# samples, on the same scale and seed (`benchmarks/RESULTS.md` quotes 66.6 for `conv_vae`, another draw of 10,000).
# The learned prior $p(z_1) = \mathbb E_{p(z_2)}\,p(z_1\mid z_2)$ puts its mass where the codes are, which notebook 13
# did with a VampPrior (16.1 for its MLP). The $t = 0.7$ grid is thicker and cleaner than the $t = 1$ grid from the
# same noise; it is the picture papers show, and not the model: its likelihood was never measured, and the FD above
# is for $t = 1$.

# %% [markdown]
# ## Key takeaways
#
# - A hierarchical VAE learns its prior: $p(z_1) = \int p(z_2)\,p(z_1\mid z_2)\,dz_2$. Top-down inference
#   factorizes the posterior in the prior's order and, in NVAE's residual form, writes each layer's posterior as a
#   correction to its conditional prior.
# - The ELBO has one KL per layer, each to the **conditional** prior, inside the expectation over the layers
#   above; with one sample of the upper layers the lower KL is evaluated at that sample. A KL to $\mathcal N(0, I)$
#   for a lower layer is a bug, and the number it gives bounds nothing.
# - Everything checks in plain torch: the ELBO equals the sum of its parts, each closed-form KL equals a $10^5$-sample
#   Monte-Carlo estimate within 1%, and the ELBO sits below $\mathcal L_k$, which rises with $k$.
# - Upper layers go inactive when their KL is charged before the decoder can use them. KL warm-up and free bits
#   per layer are the standard cures; read the KL per layer *and* the active units, and report the true ELBO.
# - Redrawing one layer and holding the others shows what each encodes. Temperatures below 1 give cleaner
#   samples of another distribution: show them, never score them as the model.

# %% [markdown]
# ## Exercises
#
# Each exercise names its tier: *warm-up* (apply what a section showed), *core* (the notebook's main idea in a
# new setting), *stretch* (goes beyond the notebook; optional).
#
# **Exercise 1 (warm-up): the KL to a conditional prior.** Write `conditional_kl(mu_q, logvar_q, mu_p, logvar_p)`:
# $\mathrm{KL}(q\,\|\,p)$ for $q = \mathcal N(\mu_q, \operatorname{diag} e^{\text{logvar}_q})$ and
# $p = \mathcal N(\mu_p, \operatorname{diag} e^{\text{logvar}_p})$, all four `(B, D)`, summed over the dimensions:
# `(B,)`. Use the closed form (notebook 03, now with a prior that is not standard), not `torch.distributions`, and
# run `check_conditional_kl`. Then apply it to section 3's `q_1` and `p_1` and compare with `kl_1`.

# %%
from vaelib.course.checks import check_conditional_kl


def conditional_kl(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p))), (B, D) each, summed over D: (B,)."""
    ### BEGIN SOLUTION
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1).sum(-1)
    ### END SOLUTION


check_conditional_kl(conditional_kl)

# %%
### BEGIN SOLUTION
with torch.no_grad():
    mine = conditional_kl(q_1.loc, 2 * q_1.scale.log(), p_1.loc, 2 * p_1.scale.log())
print(f"closed form by hand {mine.mean():.4f}, section 3 {kl_1.mean():.4f} nats; largest difference "
      f"{(mine - kl_1).abs().max():.1e}")
### END SOLUTION

# %% [markdown]
# **Exercise 2 (core): free bits per layer.** Write `free_bits_kl(kl, free_bits)`: the KL part of the training loss
# with free bits, where `kl` is `(L, B)` (each layer's KL for each image of a batch): each layer's batch-mean KL counts
# as at least `free_bits` nats, and the layers are summed. Run `check_free_bits`. Then, for `hvae_plain` on the
# first 128 test images, print each layer's batch-mean KL and the term with $\lambda = 0.5$: which layer would the
# free bits protect, and what does its gradient become while it is under the threshold?

# %%
from vaelib.course.checks import check_free_bits


def free_bits_kl(kl, free_bits):
    """sum over layers of max(mean over the batch of the layer's KL, free_bits): one number."""
    ### BEGIN SOLUTION
    return kl.mean(1).clamp_min(free_bits).sum()
    ### END SOLUTION


check_free_bits(free_bits_kl)

# %%
### BEGIN SOLUTION
with torch.no_grad():
    kl = torch.stack(models["hvae_plain"].terms(x_test[:128], generator=torch.Generator().manual_seed(0)).kl)
print("hvae_plain, batch-mean KL per layer (z_1, z_2):", [round(v, 3) for v in kl.mean(1).tolist()],
      f"; free-bits term {free_bits_kl(kl, 0.5):.3f} nats, plain sum {kl.mean(1).sum():.3f}")
### END SOLUTION

# %% [markdown]
# ### BEGIN SOLUTION
# At the end of training both of `hvae_plain`'s layers are far above the threshold (9.8 and 13.0 nats), so the
# free-bits term equals the plain sum and would change nothing. Free bits act only on a layer whose batch-mean KL is
# below $\lambda$: there `max` returns the constant $\lambda$, the KL's gradient for that layer is zero, and the
# layer may use up to $\lambda$ nats for free; early in training, when every layer starts near $q = p$, that is what
# lets a layer start being used before it is charged. The reported ELBO stays the true one.
# ### END SOLUTION
#
# **Exercise 3 (stretch): what the top layer's posterior is worth.** Any $q$ gives a lower bound, so replace
# $q(z_2\mid x)$ by the prior $\mathcal N(0, I)$ and keep the rest of `hvae`'s posterior: the top KL becomes 0, and
# $q(z_1\mid z_2, x)$ is computed from a *prior* sample of $z_2$. Write `elbo_with_prior_top(model, x, eps_2, eps_1)`
# from the pieces of section 3's `two_layer_elbo`, and compare it with the full ELBO on the first 200 test images,
# averaged over 8 draws of the noise. How many nats does the top layer's posterior buy, and how does that compare
# with what its KL costs?

# %%
### BEGIN SOLUTION
def elbo_with_prior_top(model, x, eps_2, eps_1):
    """The ELBO when q(z_2 | x) is replaced by p(z_2) = N(0, I): (B,) nats."""
    h_1 = model.encoder(x)
    z_2 = eps_2                                                    # a prior sample of the top layer
    s_1 = model.down[0](z_2)
    mu_p, logvar_p = model.prior_heads[0](s_1).chunk(2, -1)
    p_1 = gaussian(mu_p, logvar_p)
    d_mu, d_logvar = model.posterior_heads[0](torch.cat([s_1, h_1], -1)).chunk(2, -1)
    q_1 = gaussian(mu_p + d_mu, logvar_p.clamp(-8, 8) + d_logvar)
    z_1 = q_1.loc + q_1.scale * eps_1
    rec = -torch.nn.functional.binary_cross_entropy_with_logits(model.decoder(z_1), x, reduction="none").sum((1, 2, 3))
    return rec - kl_divergence(q_1, p_1).sum(-1)


with torch.no_grad():
    x200 = x_test[:200]
    draws = [(torch.randn(200, 16, generator=torch.Generator().manual_seed(s)),
              torch.randn(200, 32, generator=torch.Generator().manual_seed(100 + s))) for s in range(8)]
    full = torch.stack([sum(p * w for p, w in zip(two_layer_elbo(hvae, x200, *e)[:3], (1, -1, -1))) for e in draws])
    prior_top = torch.stack([elbo_with_prior_top(hvae, x200, *e) for e in draws])
    kl_top = torch.stack([two_layer_elbo(hvae, x200, *e)[1] for e in draws])
print(f"ELBO with q(z_2 | x): {full.mean():.2f}; with q(z_2 | x) = N(0, I): {prior_top.mean():.2f}; "
      f"difference {(full - prior_top).mean():+.2f} nats; the top layer's KL {kl_top.mean():.2f} nats")
### END SOLUTION

# %% [markdown]
# ### BEGIN SOLUTION
# The top layer's posterior is worth about 232 nats of ELBO (-84.71 against -317.10) and costs 17.1 nats of KL: with
# $z_2$ drawn from the prior, $q(z_1\mid z_2, x)$ must explain the image starting from a conditional prior that was
# chosen for another digit, and both its KL and the reconstruction pay. The KL of a layer is its price, not its
# value: a layer can be worth far more ELBO than it costs, which is why the ELBO keeps it.
# ### END SOLUTION

# %% [markdown]
# ## References
#
# - Sønderby, C. K., Raiko, T., Maaløe, L., Sønderby, S. K. and Winther, O. (2016). Ladder variational
#   autoencoders. *NeurIPS 2016*. [arXiv:1602.02282](https://arxiv.org/abs/1602.02282)
# - Vahdat, A. and Kautz, J. (2020). NVAE: a deep hierarchical variational autoencoder. *NeurIPS 2020*.
#   [arXiv:2007.03898](https://arxiv.org/abs/2007.03898)
# - Child, R. (2021). Very deep VAEs generalize autoregressive models and can outperform them on images. *ICLR 2021*.
#   [arXiv:2011.10650](https://arxiv.org/abs/2011.10650)
# - Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance weighted autoencoders. *ICLR 2016*.
#   [arXiv:1509.00519](https://arxiv.org/abs/1509.00519)
# - Tomczak, J. M. and Welling, M. (2018). VAE with a VampPrior. *AISTATS 2018*.
#   [arXiv:1705.07120](https://arxiv.org/abs/1705.07120)
# - Maaløe, L., Fraccaro, M., Liévin, V. and Winther, O. (2019). BIVA: a very deep hierarchy of latent variables for
#   generative modeling. *NeurIPS 2019*. [arXiv:1902.02102](https://arxiv.org/abs/1902.02102)
# - Dittadi, A. `ladder-vae-pytorch`: a ladder VAE in PyTorch, with free bits per layer and likelihoods on statically
#   binarized MNIST for 3, 6 and 12 layers. [github.com/addtt/ladder-vae-pytorch](https://github.com/addtt/ladder-vae-pytorch)
# - Kingma, D. P., Salimans, T., Jozefowicz, R., Chen, X., Sutskever, I. and Welling, M. (2016). Improved variational
#   inference with inverse autoregressive flow (free bits). *NeurIPS 2016*. [arXiv:1606.04934](https://arxiv.org/abs/1606.04934)
