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
# # 16 · From VAEs to diffusion
#
# A diffusion model (Ho, Jain and Abbeel 2020) is a hierarchical VAE with two odd choices: its encoder is *fixed*
# (it only adds Gaussian noise, step by step, until nothing of the data is left) and it has as many latent layers
# as noise levels, each the size of the data. Everything the course has built applies: the bound is an ELBO with one
# KL per layer (notebook 14), and the decoder of every layer is a Gaussian whose mean a network predicts. Today's
# image generators put the two together the other way round as well: Stable Diffusion runs its diffusion model in
# the latent space of a VAE. This notebook does both at MNIST scale: it derives the diffusion bound and checks it
# in plain torch, then trains (or loads) a small DDPM over the latents of the course's `conv_vae` and measures how
# much better its samples are than the VAE's own N(0, I) prior.
#
# **Learning objectives**
#
# - Write the forward process q(x_t | x_0) in closed form, check it against simulation, and read its
#   signal-to-noise ratio SNR(t).
# - Split the diffusion bound into L_T + sum_t L_t-1 + L_0, compute each part for a trained model, and put it
#   beside the VAE's ELBO of notebook 02.
# - Derive L_simple as the bound with its weights dropped, compute the weights, and say what dropping them costs
#   and buys.
# - Train a DDPM on a VAE's latents z ~ q(z|x), sample it, decode the samples, and score them against the VAE's
#   own prior and its aggregate posterior (the ceiling of any prior over these latents).
# - Explain the autoencoder of latent diffusion as a *tokenizer*: why its KL weight is tiny, what Stable
#   Diffusion's `scaling_factor` is, and how reconstruction and generation quality move together.
#
# **Prerequisites**
#
# - Notebooks 02 (the ELBO), 03 (the Gaussian KL), 05 (training a VAE), 13 (priors, the aggregate posterior and
#   the sample scores: Frechet distance under the course's MNIST classifier) and 14 (hierarchical VAEs: one KL
#   per layer to a conditional prior).
# - Maths: products of Gaussians, the KL of two Gaussians with equal variances.

# %% [markdown]
# ## 1. Setup
#
# Two checkpoints of `pretrained/` carry the notebook:
#
# - `conv_vae`: the course's convolutional VAE (20 latent dimensions, Bernoulli decoder, notebook 05);
# - `latent_ddpm`: a DDPM over its latents, `vaelib.diffusion.DDPM` (T = 200 noise levels, a residual MLP of
#   3 blocks of 512 units that predicts the noise, 2.1M parameters), trained by
#   `benchmarks/latent_diffusion.py` for 20,000 steps of batch 256 on draws z ~ q(z|x) of the 60,000 training
#   images (562 s, 1,110 CPU-seconds on a 2-core CPU); the moving average of its weights is what samples.
#
# `python -m vaelib train RUN --model latent_ddpm --latents_of pretrained/conv_vae.pth` trains the same kind of
# model from the command line, and `python -m vaelib generate --checkpoint_path pretrained/conv_vae.pth --prior
# pretrained/latent_ddpm.pth` decodes its samples. With `TRAIN_FROM_SCRATCH = True` the notebook trains both from
# their recipes instead (about 20 minutes on a 2-core CPU).

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
import json
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import vaelib
from vaelib.course import load_or_train, save_figure
from vaelib.course.sample_quality import copying_ratio, load_classifier, sample_scores, test_reference
from vaelib.course.widgets import chain_panel, reverse_chain_explorer
from vaelib.diffusion import DDPM, NoisePredictor
from vaelib.latent_diffusion import decode_samples, latent_draws, posterior_parameters

FAST = vaelib.course.fast_mode()      # True when VAELIB_FAST=1: the smoke-test mode that CI uses
TRAIN_FROM_SCRATCH = False            # True: train both models from their recipes instead of loading them
torch.manual_seed(0)
print("fast mode" if FAST else "learner mode")

# %%
# NBVAL_IGNORE_OUTPUT
start = time.perf_counter()
train = vaelib.MNIST("train", binarize="dynamic", subset=5000 if FAST else None)
test = vaelib.MNIST("test", binarize="dynamic", subset=2000 if FAST else None)
vae, _ = load_or_train("conv_vae", train, test, train_from_scratch=TRAIN_FROM_SCRATCH)
x_train, y_train = train.first(len(train), seed=0)
x_test, _ = test.first(len(test), seed=0)
params = posterior_parameters(vae, x_train)          # q(z|x) of each training image: (N, 2, 20), means and stds
test_params = posterior_parameters(vae, x_test)
ddpm, history = load_or_train("latent_ddpm", params, test_params, train_from_scratch=TRAIN_FROM_SCRATCH)
print(f"{len(params):,} training posteriors {tuple(params.tensor.shape)}; DDPM: T = {ddpm.steps}, "
      f"{sum(p.numel() for p in ddpm.predictor.parameters()):,} parameters, scale {ddpm.scale:.4f}; "
      f"{time.perf_counter() - start:.0f} s")

# %% [markdown]
# ## 2. The forward process, in closed form and simulated
#
# The encoder of a diffusion model has no parameters. Step t adds noise of variance beta_t and shrinks what was
# there so that the variance stays 1:
#
# $$q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big).$$
#
# Two Gaussian steps compose into one Gaussian, so every layer's marginal given the data is closed form. With
# $\alpha_t = 1-\beta_t$ and $\bar\alpha_t = \prod_{s\le t}\alpha_s$, unrolling
# $x_t = \sqrt{\alpha_t}x_{t-1} + \sqrt{1-\alpha_t}\,\epsilon_t$ gives a sum of independent Gaussians whose
# variances add to $1-\bar\alpha_t$:
#
# $$q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big), \qquad
#   x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon .$$
#
# That is the reparameterization trick of notebook 04, applied to a fixed encoder: a draw of any layer costs one
# step. We use DDPM's linear schedule (beta from 1e-4 to 0.02 over T = 1000), rescaled to T = 200 steps so that
# the total noise is the same. Below, in plain torch: the schedule, 100,000 chains of one number x_0 = 1.5 run step
# by step, and the closed form beside them.

# %%
T = 200
betas = torch.cat([torch.zeros(1), torch.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T)]).double()  # betas[0] unused
alpha_bar = torch.cumprod(1 - betas, 0)                                                             # alpha_bar[0] = 1
assert torch.allclose(alpha_bar.float(), ddpm.schedule.alpha_bar)       # vaelib's NoiseSchedule is this schedule

g = torch.Generator().manual_seed(0)
x0 = 1.5
x = torch.full((100_000,), x0, dtype=torch.float64)
print("   t   mean: simulated  closed form   variance: simulated  closed form")
for t in range(1, T + 1):
    x = (1 - betas[t]).sqrt() * x + betas[t].sqrt() * torch.randn(x.shape, generator=g, dtype=torch.float64)
    if t in (1, 10, 50, 100, 200):
        mean, var = alpha_bar[t].sqrt() * x0, 1 - alpha_bar[t]
        print(f"{t:4d}   {x.mean():15.4f}  {mean:11.4f}   {x.var():19.5f}  {var:11.5f}")
        assert abs(x.mean() - mean) < 0.01 * max(1.0, abs(mean)) and abs(x.var() / var - 1) < 0.01

# %% [markdown]
# Means and variances agree within 1% at every t shown (the asserts check it; for a mean near 0, within 1% of the
# data's scale: 0.0137 against 0.0083 at t = 200). How much of x_0 is left at step t is the
# **signal-to-noise ratio**
#
# $$\mathrm{SNR}(t) = \frac{\bar\alpha_t}{1-\bar\alpha_t},$$
#
# which falls from about 2,000 at t = 1 to 3e-5 at t = T: by then q(x_T | x_0) is N(0, I) up to a KL we will
# compute below (L_T). Kingma et al. (2021) showed that the bound depends on the schedule only through SNR(t) at
# its ends, which is why papers plot log-SNR rather than beta. On the right: one test digit's latent z_0 pushed
# through q(z_t | z_0) and decoded by the VAE at each t. The digit dissolves into *another digit*, not into noise:
# z_T is a draw of N(0, I), the VAE's own prior, and the decoder turns any such draw into something digit-like.

# %%
snr = alpha_bar[1:] / (1 - alpha_bar[1:])
assert torch.allclose(snr.float(), ddpm.schedule.snr(torch.arange(1, T + 1)), rtol=1e-4)
print(f"SNR(1) = {snr[0]:.0f}, SNR(100) = {snr[99]:.3f}, SNR(200) = {snr[-1]:.2e}")

shown = [0, 5, 20, 50, 100, 150, 200]
z0 = test_params.tensor[:1, 0]                                     # the posterior mean of test image 0
noise = torch.randn(1, 20, generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    images = [vae.decode(z0).mean] + [
        vae.decode(ddpm.schedule.q_sample(z0, torch.tensor([t]), noise)).mean for t in shown[1:]]
fig, axes = plt.subplots(1, 2, figsize=(12, 3), gridspec_kw={"width_ratios": [1, 2]})
axes[0].semilogy(range(1, T + 1), snr.numpy())
axes[0].set(xlabel="t", ylabel="SNR(t)", title="signal-to-noise ratio of q(x_t | x_0)")
axes[1].imshow(torch.cat([im[0, 0] for im in images], 1).numpy(), cmap="gray")
axes[1].set_xticks([14 + 28 * i for i in range(len(shown))], [f"t = {t}" for t in shown])
axes[1].set_yticks([])
axes[1].set_title("z_t ~ q(z_t | z_0) of one test digit, decoded (one draw of the noise)")
fig.tight_layout()
save_figure(fig, "16_forward_process.png")
plt.show()

# %% [markdown]
# ## 3. Diffusion as a hierarchical VAE: the bound, term by term
#
# Take the latents x_1 ... x_T as the layers of notebook 14's hierarchy, with the fixed q as the inference model
# and a learned top-down generative model
# $p(x_{0:T}) = p(x_T)\prod_t p_\theta(x_{t-1}\mid x_t)$, $p(x_T) = \mathcal N(0, I)$. The ELBO is, as always,
# $\mathbb E_q[\log p(x_{0:T}) - \log q(x_{1:T}\mid x_0)]$. Writing q top-down with Bayes' rule,
# $q(x_{t-1}\mid x_t, x_0)$, turns it into one KL per layer to the conditional prior, exactly as in notebook 14:
#
# $$-\mathrm{ELBO} = \underbrace{\mathrm{KL}\big(q(x_T\mid x_0)\,\|\,p(x_T)\big)}_{L_T}
#   + \sum_{t=2}^{T}\underbrace{\mathbb E_q\,\mathrm{KL}\big(q(x_{t-1}\mid x_t,x_0)\,\|\,p_\theta(x_{t-1}\mid x_t)
#   \big)}_{L_{t-1}}
#   \ \underbrace{-\ \mathbb E_q\log p_\theta(x_0\mid x_1)}_{L_0}.$$
#
# Everything in it is Gaussian. The posterior $q(x_{t-1}\mid x_t, x_0)$ has mean
# $\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}x_0 +
# \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t$ and variance
# $\tilde\beta_t = \beta_t\frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}$; the model uses the same variance and
# predicts the mean through the noise, $\mu_\theta = \big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}
# \epsilon_\theta(x_t, t)\big)/\sqrt{\alpha_t}$. Here x_0 is a VAE latent z (divided by the DDPM's `scale`, about
# 1, so that the schedule sees unit variance), and the bound is on the *density* of z.
#
# First, one layer's KL in plain torch, checked against `DDPM.elbo_terms` with the same draws of the noise
# (it draws one eps per step, t = 2 first):

# %%
z = latent_draws(test_params.tensor[:64], torch.Generator().manual_seed(0))      # z ~ q(z|x) of 64 test images
terms = ddpm.elbo_terms(z, generator=torch.Generator().manual_seed(0))

g, t_check = torch.Generator().manual_seed(0), 10
for t in range(2, t_check + 1):                       # the same eps as elbo_terms drew for t = 2 .. t_check
    eps = torch.randn(z.shape, generator=g)
z0 = z / ddpm.scale
a, a_prev, beta = alpha_bar[t_check].float(), alpha_bar[t_check - 1].float(), betas[t_check].float()
zt = a.sqrt() * z0 + (1 - a).sqrt() * eps
q_mean = (a_prev.sqrt() * beta * z0 + (1 - beta).sqrt() * (1 - a_prev) * zt) / (1 - a)
var = beta * (1 - a_prev) / (1 - a)                   # the posterior's variance, which p uses too
with torch.no_grad():
    p_mean = (zt - beta / (1 - a).sqrt() * ddpm.predictor(zt, torch.full((64,), t_check))) / (1 - beta).sqrt()
kl = (q_mean - p_mean).pow(2).sum(1) / (2 * var)      # KL of two Gaussians with equal variances
assert torch.allclose(kl, terms["diffusion"][t_check - 2], rtol=1e-3, atol=1e-4)
print(f"L_{t_check - 1} for 64 test latents: {kl.mean():.4f} nats (plain torch) = "
      f"{terms['diffusion'][t_check - 2].mean():.4f} (vaelib)")

# %% [markdown]
# Now every term, for z ~ q(z|x) of test images, next to the ELBO of notebook 02. A VAE with the DDPM as its prior
# is still a VAE: its ELBO is $\mathbb E_q[\log p(x\mid z)] - \mathbb E_q[\log q(z\mid x)] + \mathbb E_q[\log
# p(z)]$, and replacing $\log p(z)$ by the DDPM's lower bound on it keeps the whole a lower bound on log p(x). So
# the two bars below are two valid bounds on the same images, one z each: the VAE's prior N(0, I) on the left, the
# DDPM on the right, the DDPM's cross-entropy split into L_T, the sum of the L_t-1 and L_0.

# %%
# NBVAL_IGNORE_OUTPUT
n_bound = 200 if FAST else 1000
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    q = vae.encode(x_test[:n_bound])
    z = q.rsample(generator=g)
    reconstruction = -vae.decode(z).log_prob(x_test[:n_bound])            # -log p(x|z)       (n,)
    neg_entropy = q.log_prob(z)                                             # log q(z|x)        (n,)
    cross_gauss = -vae.prior().log_prob(z)                                  # -log N(z; 0, I)   (n,)
    parts = ddpm.elbo_terms(z, generator=g)
kl_vae = neg_entropy + cross_gauss
bound_ddpm = reconstruction + neg_entropy + parts["nll_bound"]
print(f"{n_bound} test images, one z ~ q(z|x) each, nats:")
print(f"  VAE with N(0, I):  -ELBO {(reconstruction + kl_vae).mean():6.2f} = reconstruction "
      f"{reconstruction.mean():.2f} + KL {kl_vae.mean():.2f}")
print(f"  VAE with the DDPM: -ELBO {bound_ddpm.mean():6.2f} = reconstruction {reconstruction.mean():.2f} "
      f"+ E log q {neg_entropy.mean():.2f} + L_T {parts['prior'].mean():.4f} "
      f"+ sum L_t-1 {parts['diffusion'].sum(0).mean():.2f} + L_0 {parts['decoder'].mean():.2f}")
print(f"  -log p(z) under N(0, I): {cross_gauss.mean():.2f}; the DDPM's bound on it: {parts['nll_bound'].mean():.2f}")
per_step = parts["diffusion"].mean(1)
print("L_t-1 at t = 2, 3, 5, 10, 50, 100, 200: " + ", ".join(
    f"{per_step[t - 2]:.3f}" for t in (2, 3, 5, 10, 50, 100, 200)))

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
bars = {"VAE, N(0, I) prior": [("reconstruction", reconstruction.mean()), ("KL", kl_vae.mean())],
        "VAE, DDPM prior": [("reconstruction", reconstruction.mean()), ("E log q(z|x)", neg_entropy.mean()),
                            ("L_T", parts["prior"].mean()), ("sum of L_t-1", parts["diffusion"].sum(0).mean()),
                            ("L_0", parts["decoder"].mean())]}
colors = {"reconstruction": "C0", "KL": "C1", "E log q(z|x)": "C3", "L_T": "C4", "sum of L_t-1": "C5", "L_0": "C6"}
for i, (name, items) in enumerate(bars.items()):
    bottom_pos, bottom_neg = 0.0, 0.0          # positive terms stack up from 0, negative ones down
    for label, value in items:
        value = float(value)
        base = bottom_pos if value >= 0 else bottom_neg
        axes[0].bar(i, value, bottom=base, color=colors[label], edgecolor="white")
        axes[0].text(i, base + value / 2, f"{label}\n{value:.1f}", ha="center", va="center", fontsize=7)
        bottom_pos, bottom_neg = (bottom_pos + value, bottom_neg) if value >= 0 else (bottom_pos, bottom_neg + value)
    axes[0].plot([i - 0.4, i + 0.4], [sum(float(v) for _, v in items)] * 2, "k-")
axes[0].set_xticks([0, 1], list(bars))
axes[0].set(ylabel="nats per image", title="-ELBO, split into its terms (black line: the total)")
axes[0].axhline(0, color="grey", lw=0.5)
axes[1].semilogy(range(2, T + 1), per_step.numpy())
axes[1].set(xlabel="t", ylabel="nats", title="L_t-1: the KL of each layer, averaged over the test latents")
fig.tight_layout()
save_figure(fig, "16_bound_terms.png")
plt.show()

# %% [markdown]
# Read the two bars together (1,000 test images). The reconstruction term, 67.91 nats, is the same: the prior does
# not touch it. On the left the KL is one number, 23.75; on the right the same place is taken by E log q(z|x)
# (-4.65) plus the DDPM's bound on -log p(z), spread over 200 layers, and the total is *larger*: -ELBO 106.73
# against 91.65. The DDPM's bound on -log p(z) (43.47 nats) is looser than N(0, I)'s exact value (28.40), although
# section 5 shows that its samples are far better. L_T is 0.0003 (SNR(T) is 3e-5), and L_0 is negative (-47.61)
# because it is the log-*density* of a continuous latent under a very narrow Gaussian. The curve on the right says
# where the bound is lost: the first steps. The layer of t = 2 alone costs 19.95 nats, t = 3 9.77, t = 10 2.10,
# and every layer above t = 100 less than 0.05. The next section explains why.

# %% [markdown]
# ## 4. L_simple is a reweighted ELBO
#
# Substitute the two means into one layer's KL. Both are linear in x_t, and with
# $x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\epsilon$ their difference is
# $\tilde\mu_t - \mu_\theta = \frac{\beta_t}{\sqrt{\alpha_t}\sqrt{1-\bar\alpha_t}}\big(\epsilon_\theta - \epsilon\big)$,
# so with equal variances
#
# $$L_{t-1} = \mathbb E\,\frac{\|\tilde\mu_t-\mu_\theta\|^2}{2\tilde\beta_t}
#   = w_t\ \mathbb E\,\|\epsilon - \epsilon_\theta(x_t, t)\|^2, \qquad
#   w_t = \frac{\beta_t^2}{2\tilde\beta_t\,\alpha_t\,(1-\bar\alpha_t)} .$$
#
# The bound is a *weighted* sum of noise-prediction errors. DDPM trains on
# $L_\text{simple} = \mathbb E_{t\sim U\{1..T\}}\|\epsilon-\epsilon_\theta(x_t,t)\|^2$: the same errors with every
# weight set to 1. Kingma and Gao (2023) showed that such weightings are still ELBOs in a precise sense (for
# monotone weightings, a bound on data with noise added); here we only compute how far L_simple is from the
# bound's own weights. The cell computes w_t in plain torch and checks the identity on the trained model at three
# steps, with the draws of section 3.

# %%
alphas = 1 - betas
beta_tilde = torch.cat([torch.zeros(2), betas[2:] * (1 - alpha_bar[1:-1]) / (1 - alpha_bar[2:])])
w = torch.zeros(T + 1, dtype=torch.float64)
w[2:] = betas[2:] ** 2 / (2 * beta_tilde[2:] * alphas[2:] * (1 - alpha_bar[2:]))

z = latent_draws(test_params.tensor[:64], torch.Generator().manual_seed(0))
terms = ddpm.elbo_terms(z, generator=torch.Generator().manual_seed(0))
g = torch.Generator().manual_seed(0)
for t in range(2, T + 1):                                  # the same eps, in the same order, as elbo_terms
    eps = torch.randn(z.shape, generator=g)
    if t in (2, 20, 150):
        tt = torch.full((64,), t)
        with torch.no_grad():
            error = (eps - ddpm.predictor(ddpm.schedule.q_sample(z / ddpm.scale, tt, eps), tt)).pow(2).sum(1)
        # rtol 1e-2: at t = 2 elbo_terms subtracts two nearly equal means in float32, which costs about 3 digits
        assert torch.allclose(terms["diffusion"][t - 2], w[t].float() * error, rtol=1e-2, atol=1e-5)
        print(f"t = {t:3d}: w_t = {w[t]:9.4f}, mean ||eps - eps_theta||^2 = {error.mean():7.3f}, "
              f"L_t-1 = {terms['diffusion'][t - 2].mean():.4f}")
print(f"w_t falls from {w[2]:.3f} at t = 2 to {w[T]:.5f} at t = T: a ratio of {w[2] / w[T]:,.0f}")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.semilogy(range(2, T + 1), w[2:].numpy(), label="w_t, the bound's weight")
ax.axhline(1, color="C1", label="L_simple's weight (1)")
ax.set(xlabel="t", ylabel="weight of ||eps - eps_theta||^2", title="The ELBO's weights against L_simple's")
ax.legend()
fig.tight_layout()
save_figure(fig, "16_elbo_weights.png")
plt.show()

# %% [markdown]
# The weight simplifies to $w_t = \beta_t / (2\alpha_t(1-\bar\alpha_{t-1}))$: 1.001 at t = 2, 0.0556 at t = 20
# and at t = T. The bound weighs its first steps about 18 times more than the rest; L_simple weighs every step
# alike, which moves the network's effort away from denoising almost-clean data (a detail that changes little of
# what a sample looks like) to the middle and large t, where a sample's shape is decided. Ho et al. found that this
# gave better samples and a worse likelihood.
#
# The weights are not the whole story of section 3's loose first step, though: the error is. At t = 2 the network
# leaves E||eps - eps_theta||^2 = 19.97, about one per latent dimension (20), as if it could not predict the noise
# at all, and it cannot: the noise added by t = 2 (standard deviation 0.039) is far smaller than the spread of the
# latents z ~ q(z|x) themselves, so x_2 says almost nothing about which eps was drawn. With p's variance fixed to
# the small posterior variance beta_tilde_t, that unpredictable noise costs w_2 x 20 nats. At t = 150 the noise
# dominates, the network predicts it almost exactly (error 0.067) and the layer costs 0.003 nats. Learning p's
# variances (Nichol and Dhariwal 2021) or a continuous-time bound with a learned schedule (Kingma et al. 2021)
# recovers most of this likelihood; latent diffusion, like DDPM, keeps L_simple and fixed variances, and lets the
# likelihood go.

# %% [markdown]
# ## 5. Latent diffusion: a DDPM as the VAE's prior
#
# Notebook 13 found holes in `conv_vae`'s latent space: the aggregate posterior $q(z) = \frac1N\sum_n q(z\mid
# x_n)$, where the decoder was trained, does not fill N(0, I), and draws from N(0, I) in the gaps decode to blurry
# non-digits. Its learned priors (a mixture, the VampPrior) closed part of the gap. A DDPM is a far more flexible
# density: train it on draws z ~ q(z|x), a fresh draw for every batch, and it learns q(z) itself. `conv_vae`'s
# decoder is untouched. This is latent diffusion (Rombach et al. 2022) at toy scale; `vaelib.latent_diffusion` is
# the whole recipe in a page:
#
# 1. `posterior_parameters(vae, images)`: the mean and standard deviation of q(z|x) of every training image, once;
# 2. `latent_scale(params)`: the standard deviation of the draws over all images and dimensions, here about 1
#    (`conv_vae` was trained with the KL to N(0, I), which keeps its latents near unit scale); the DDPM divides by
#    it;
# 3. `fit(DDPM(20, scale=..., ema_decay=0.999), params, objective=latent_ddpm_objective,
#    callbacks=[EMAUpdate()])`: L_simple on fresh z ~ q(z|x), and a moving average of the weights that samples;
# 4. `decode_samples(vae, ddpm, n)`: z from the DDPM's reverse chain, decoded.
#
# Below, the same number of latents from three sources, each decoded with 0/1 pixels drawn from p(x|z) and scored
# against the binarized test images under the course's classifier (notebook 13's protocol): N(0, I), the DDPM, and
# q(z|x) of random training images, the aggregate posterior. That last one is the **ceiling**: a perfect prior over
# these latents would produce exactly those, so no prior on this VAE can score better.

# %%
# NBVAL_IGNORE_OUTPUT
n = 300 if FAST else 2000
g = torch.Generator().manual_seed(1)
reference, classifier = test_reference("mnist", binarized=True, seed=0), load_classifier()
with torch.no_grad():
    start = time.perf_counter()
    z_ddpm = ddpm.sample(n, generator=g)
    seconds = time.perf_counter() - start
    z_prior = torch.randn(n, 20, generator=g)
    z_aggregate = latent_draws(params.tensor[torch.randperm(len(params), generator=g)[:n]], g)
    latents = {"N(0, I), the VAE's prior": z_prior, "the DDPM": z_ddpm, "q(z|x), the aggregate posterior": z_aggregate}
    scores = {name: sample_scores(vae.likelihood.draw(vae.decoder(zs), g), reference, classifier)
              for name, zs in latents.items()}
print(f"{n:,} latents each ({n:,} DDPM samples in {seconds:.1f} s, {T} steps):")
for name, s in scores.items():
    print(f"  {name:33s} FD {s['fd']:6.1f}   confidence {s['confidence']:.3f}   label entropy {s['label_entropy']:.3f}")
assert scores["the DDPM"]["fd"] < scores["N(0, I), the VAE's prior"]["fd"]

with torch.no_grad():
    grids = [vae.decode(zs[:64]).mean for zs in (z_prior, z_ddpm)]
fig, axes = plt.subplots(1, 2, figsize=(10, 5))
for ax, images, title in zip(axes, grids, ["z ~ N(0, I), decoded", "z from the DDPM, decoded"]):
    ax.imshow(torch.cat([torch.cat(list(images[r * 8:(r + 1) * 8, 0]), 1) for r in range(8)], 0).numpy(), cmap="gray")
    ax.set(title=title, xticks=[], yticks=[])
fig.tight_layout()
save_figure(fig, "16_samples.png")
plt.show()

# %% [markdown]
# The DDPM's digits are cleaner and fewer of them are ambiguous, and its FD (14.2) is a fifth of N(0, I)'s (69.3),
# with the aggregate posterior at 7.1; 2,000 samples took about 10 s. These FDs use the notebook's budget of 2,000
# samples, so they sit above the benchmark's figures for 10,000 (FD falls with n):
# `benchmarks/latent_diffusion.py` measured N(0, I) 65.1, the DDPM **12.1** and the aggregate posterior 6.6 at
# n = 10,000, beside the VampPrior's 16.1 (notebook 13). So the DDPM is better than every prior of notebook 13, and
# still short of the ceiling.
#
# Where do its samples lie? Project the three clouds of latents on a plane where the aggregate posterior has
# structure (the DTU 02460 course's picture): the two principal directions of the ten digits' mean latents, with
# the aggregate posterior's points coloured by the digit of the image they encode.

# %%
# NBVAL_IGNORE_OUTPUT
class_means = torch.stack([params.tensor[y_train == digit, 0].mean(0) for digit in range(10)])   # (10, 20)
center = class_means.mean(0)
_, _, directions = torch.linalg.svd(class_means - center, full_matrices=False)
directions = directions[:2].T                                                     # (20, 2): where the digits differ
g = torch.Generator().manual_seed(2)
pick = torch.randperm(len(params), generator=g)[:n]
shown = {"N(0, I), the VAE's prior": (z_prior, None), "the DDPM": (z_ddpm, None),
         "q(z|x), the aggregate posterior": (latent_draws(params.tensor[pick], g), y_train[pick])}
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharex=True, sharey=True)
for ax, (name, (zs, labels)) in zip(axes, shown.items()):
    xy = (zs - center) @ directions
    ax.scatter(xy[:, 0], xy[:, 1], s=2, alpha=0.5, c=labels, cmap="tab10" if labels is not None else None)
    ax.set(title=name, xlabel="direction 1")
axes[0].set_ylabel("direction 2")
fig.suptitle("The same number of latents, projected on the plane of the ten digits' mean latents")
fig.tight_layout()
save_figure(fig, "16_latents_pca.png")
plt.show()

# %% [markdown]
# On this plane the aggregate posterior is a set of overlapping lobes, one per digit (the 1s, orange, at the upper
# left; the 0s, blue, at the lower right). N(0, I) is a round cloud that also fills the corners where no digit's
# lobe reaches, the holes of notebook 13. The DDPM's cloud has the aggregate posterior's outline, its sparse corners
# and its denser regions. Two directions of twenty show only part of the picture: the FD is the measure.
#
# ## 6. How long it takes: FD against training CPU-seconds
#
# The shipped DDPM's checkpoint records its benchmark run: FD of 10,000 samples after 1,500, 4,000, 8,000, 12,000
# and 20,000 steps. A short run is *worse* than no diffusion at all, then the curve falls below the VampPrior's
# score.

# %%
for row in history:
    print(f"step {row['step']:6,}: {row['train_seconds']:5.0f} s ({row['train_cpu_seconds']:5.0f} CPU-s), "
          f"L_simple {row['loss_simple']:.3f}, FD {row['fd']:5.1f}")
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot([r["train_cpu_seconds"] for r in history], [r["fd"] for r in history], "o-", label="the latent DDPM")
for level, name, style in ((65.1, "N(0, I), the VAE's own prior", "C3"), (16.1, "VampPrior (notebook 13)", "C2"),
                           (6.6, "the aggregate posterior: the ceiling", "k")):
    ax.axhline(level, color=style, ls="--", label=f"{name}: {level}")
ax.set(xlabel="training CPU-seconds (2-core CPU)", ylabel="FD of 10,000 samples", yscale="log",
       title="Latent DDPM on conv_vae: FD over training")
ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "16_fd_over_training.png")
plt.show()

# %% [markdown]
# 1,500 steps (95 CPU-seconds) give FD 56.8, barely better than N(0, I)'s 65.1: a small latent DDPM needs
# thousands of steps before it beats the Gaussian prior. That is why fast mode loads the shipped DDPM like learner
# mode does; trained from scratch in fast mode (`TRAIN_FROM_SCRATCH` with `VAELIB_FAST=1`: one epoch of 5,000
# latents, 20 steps) it would be no better than N(0, I). It passes the VampPrior's 16.1 between 8,000 and 12,000
# steps and reaches 12.1 at 20,000, three quarters of the way from N(0, I) to the ceiling on the figure's log scale.
# Its remaining gap to 6.6 is what a larger network or a longer run would buy; the calibration measured the
# ceiling at 6.05 with other draws.
#
# ## 7. The reverse chain, step by step
#
# Sampling runs the hierarchy top-down: z_T ~ N(0, I), then 200 draws of p(z_t-1 | z_t). Every z_t is a point of
# the VAE's latent space, so the decoder can show each one. Move the slider: at step 0 (t = 200) the decodes are
# `conv_vae`'s own prior samples; the digits settle in the last few dozen steps, where SNR(t) rises above 1.

# %%
g = torch.Generator().manual_seed(3)
_, path = ddpm.sample(8, generator=g, trajectory=True)       # (T + 1, 8, 20): z_T first, z_0 last
steps_shown = [0, 100, 150, 170, 185, 195, 200]
rows = [chain_panel(vae, path, s) for s in steps_shown]
fig, ax = plt.subplots(figsize=(8, 7))
ax.imshow(torch.cat([torch.cat(list(r[:, 0]), 1) for r in rows], 0).numpy(), cmap="gray")
ax.set_yticks([14 + 28 * i for i in range(len(steps_shown))], [f"t = {T - s}" for s in steps_shown])
ax.set_xticks([])
ax.set_title("Eight reverse chains in latent space, decoded (top: z_T ~ N(0, I); bottom: the samples)")
fig.tight_layout()
save_figure(fig, "16_reverse_chain.png")
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
reverse_chain_explorer(vae, path)

# %% [markdown]
# ## 8. The VAE as a tokenizer
#
# In Stable Diffusion the VAE is not the generative model: the diffusion model is, and the VAE's job is to
# compress (a 512x512x3 image to a 64x64x4 latent) and to decode faithfully. Its `AutoencoderKL` is trained with a
# KL weight of about 1e-6: almost a plain autoencoder, whose posterior is nearly a point and whose own prior is
# useless. Its latents are then far from unit variance, which is what `scaling_factor` fixes: SD 1.x multiplies its
# latents by 0.18215, the inverse of their standard deviation (about 5.5), before the diffusion model sees them,
# as `DDPM(scale=...)` divides by it here.
#
# `benchmarks/latent_diffusion.py` ran the same DDPM recipe (8,000 steps) on the latents of five VAEs: three MLP
# VAEs of notebook 06 (beta = 0.25, 1, 4), `conv_vae` (beta = 1) and the same conv VAE trained with beta = 1e-6.
# Each point is a VAE: its reconstruction error against the FD of its latent DDPM's samples.

# %%
results = json.loads((Path(vaelib.__file__).resolve().parents[1] / "benchmarks" / "results"
                      / "latent_diffusion-cpu.json").read_text())
print("VAE              latent  scale  recon. MSE  N(0, I) FD  aggregate FD  DDPM FD (8,000 steps)")
sweep = {}
for name, r in results.items():
    point = next(p for p in r["points"] if p["step"] == 8000)
    sweep[name] = (r["reconstruction_mse"], point["fd"])
    baselines = r["baselines"]
    print(f"{name:16s} {r['latent_dim']:6d} {r['scale']:6.3f} {r['reconstruction_mse']:11.4f} "
          f"{baselines['N(0, I)']['fd']:11.1f} {baselines['aggregate posterior']['fd']:13.1f} {point['fd']:10.1f}")
fig, ax = plt.subplots(figsize=(6, 4))
for name, (mse, fd) in sweep.items():
    ax.plot(mse, fd, "o")
    ax.annotate(name, (mse, fd), textcoords="offset points", xytext=(5, 3), fontsize=8)
ax.set(xlabel="reconstruction MSE per pixel (test set)", ylabel="latent DDPM FD (10,000 samples)", yscale="log",
       title="Reconstruction against generation, one point per VAE")
fig.tight_layout()
save_figure(fig, "16_tokenizer_sweep.png")
plt.show()

# %% [markdown]
# Three things to read off the table:
#
# - **The tiny KL weight wins here on both axes.** The beta = 1e-6 conv VAE reconstructs best (0.0207) and its
#   latent DDPM scores FD 4.2, against 17.9 for `conv_vae`'s after the same 8,000 steps. Its own prior is useless
#   (N(0, I) FD 393), its latents spread wider (scale 2.84, so `scaling_factor` would be 0.35), and its aggregate
#   posterior sits at the FD floor (2.2). That is the recipe of latent diffusion: a near-lossless autoencoder, with
#   all of the generation left to the prior. Does its DDPM copy training digits? The cell below checks.
# - **The DDPM follows the aggregate posterior, its ceiling.** Along the MLP sweep, a smaller beta gives both a
#   better reconstruction and a better latent DDPM, because the aggregate posterior (28.3, 37.8, 85.0) improves.
# - **The trade-off appears elsewhere.** VA-VAE and DC-AE 1.5 report at ImageNet scale that a tokenizer with more
#   latent channels reconstructs better and generates worse, because its latent space gets harder to model. At
#   MNIST scale with 10-20 latent numbers we are far from that regime; a sweep over the latent size is the
#   experiment to run next.

# %% [markdown]
# A low FD could also mean that the model copies its training data: the FD compares feature statistics and does
# not see copies. The check: for 1,000 decoded DDPM samples, the distance to the nearest of the VAE's
# reconstructions of the training images, against the same distance for 1,000 reconstructed *test* images, which
# are new digits by construction (`copying_ratio`, medians; like with like: both sides are decoder means). A ratio
# near 1 means the samples are as far from the training set as new digits are; a ratio well below 1, copies.

# %%
# NBVAL_IGNORE_OUTPUT
with torch.no_grad():
    train_recons = torch.cat([vae.decode(m).mean for m in params.tensor[:, 0].split(2000)])
    test_recons = vae.decode(test_params.tensor[:1000, 0]).mean
    decoded = decode_samples(vae, ddpm, 1000, torch.Generator().manual_seed(2), binary=False)
copying = copying_ratio(decoded, test_recons, train_recons)
print(f"conv_vae's DDPM, measured here against {len(train_recons):,} training reconstructions: median distance "
      f"{copying['samples']:.3f} for the samples, {copying['held_out']:.3f} for test digits, ratio "
      f"{copying['ratio']:.2f}")
c = results["conv_beta_1e-6"]["copying"]
print(f"the beta = 1e-6 VAE's DDPM (the benchmark, 60,000 training images): median distance {c['samples']:.3f} for "
      f"the samples, {c['held_out']:.3f} for test digits, ratio {c['ratio']:.2f}")

# %% [markdown]
# Neither DDPM copies. The samples of `conv_vae`'s DDPM sit at a median distance of 3.385 from the nearest training
# reconstruction, test digits at 3.186 (ratio 1.06); those of the beta = 1e-6 VAE's DDPM at 4.155 against 4.128
# (ratio 1.01). With 60,000 training images and a DDPM of 2 million parameters that sees each latent 34 to 85
# times, we are far from the regime where diffusion models memorize: few training images and a large model
# (exercise 4 goes there).

# %% [markdown]
# ## 9 (optional). The same loop with a flow-matching target
#
# Flow matching (Lipman et al. 2023), in its rectified-flow form (Liu et al. 2023), drops the noise schedule and
# the Markov chain: draw t ~ U(0, 1) and eps ~ N(0, I), put the latent on the straight line
# $z_t = (1-t)\,z_0 + t\,\epsilon$, and regress a network $v_\theta(z_t, t)$ on that line's velocity
# $\epsilon - z_0$. Sampling integrates $dz/dt = v_\theta$ from t = 1 (noise) back to t = 0 with a few Euler
# steps. The cell trains two small networks side by side on the *same* batches of z ~ q(z|x): a DDPM on L_simple
# and a flow on the velocity target, both `NoisePredictor`s of 3 blocks of 256 units, without weight averages,
# then scores 2,000 samples of each (the DDPM in its 200 steps, the flow in 50 Euler steps).

# %%
# NBVAL_IGNORE_OUTPUT
steps_fm = 200 if FAST else 2000
with torch.random.fork_rng():
    torch.manual_seed(0)
    small_ddpm = DDPM(20, steps=200, hidden=256, blocks=3, scale=ddpm.scale)
    flow = NoisePredictor(20, hidden=256, blocks=3)
optimizers = [torch.optim.Adam(net.parameters(), lr=1e-3) for net in (small_ddpm, flow)]
g = torch.Generator().manual_seed(0)
start = time.perf_counter()
for step in range(steps_fm):
    z0 = latent_draws(params.tensor[torch.randint(len(params), (256,), generator=g)], g) / ddpm.scale
    t = torch.rand(256, 1, generator=g)
    eps = torch.randn(z0.shape, generator=g)
    velocity = flow((1 - t) * z0 + t * eps, (t[:, 0] * 1000).long())      # the time embedding takes 0 .. 1000
    losses = [small_ddpm.loss_simple(z0 * ddpm.scale, generator=g).mean(),
              (velocity - (eps - z0)).pow(2).sum(1).mean()]
    for optimizer, loss in zip(optimizers, losses):
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
print(f"{steps_fm:,} steps of both in {time.perf_counter() - start:.0f} s")

g = torch.Generator().manual_seed(4)
with torch.no_grad():
    z_flow = torch.randn(n, 20, generator=g)
    for i in range(50, 0, -1):                                               # Euler from t = 1 down to t = 0
        z_flow = z_flow - flow(z_flow, torch.full((n,), i * 1000 // 50)) / 50
    flow_latents = {"DDPM (eps target, 200 steps)": small_ddpm.sample(n, generator=g),
                    "flow (velocity target, 50 Euler steps)": z_flow * ddpm.scale}
    for name, zs in flow_latents.items():
        fd = sample_scores(vae.likelihood.draw(vae.decoder(zs), g), reference, classifier)["fd"]
        print(f"  {name:40s} FD {fd:6.1f}  ({n:,} samples)")

# %% [markdown]
# After the same 2,000 steps on the same batches, the flow scores FD 26.3 and the DDPM 46.1 (2,000 samples each,
# no weight averages; the shipped DDPM reached 14.2 at this n after 20,000 steps with one). One run each at one
# budget is a hint, not a ranking: the straight paths of rectified flow are easy to learn early, and its 50 Euler
# steps sample four times faster than the DDPM's 200. The two objectives are closer than they look: both regress
# an affine function of z_0 and eps at a noisy point (eps, or eps - z_0), and Kingma and Gao (2023) write both as
# weighted ELBOs. The latent DDPM of `pretrained/` keeps the eps target, as Stable Diffusion 1.x did; Stable
# Diffusion 3 moved to rectified flow.

# %% [markdown]
# ## Key takeaways
#
# - A diffusion model is a hierarchical VAE whose encoder is fixed: q(x_t | x_0) is Gaussian in closed form, and
#   the bound is L_T + one KL per layer + L_0, each a Gaussian KL or log-density.
# - Each layer's KL is a weighted noise-prediction error; L_simple drops the weights. That buys samples and costs
#   likelihood: the first few steps carry much of our model's loose bound.
# - A DDPM over a trained VAE's latents is a better prior than N(0, I) and than notebook 13's priors (FD 12.1
#   against 65.1 and 16.1 at n = 10,000), with the aggregate posterior (6.6) as its ceiling. It needs thousands of
#   steps to get there.
# - In latent diffusion the VAE is a tokenizer: a tiny KL weight, a `scaling_factor` to bring its latents to unit
#   variance, and the generation left to the diffusion model.

# %% [markdown]
# ## Exercises
#
# **1 (warm-up).** At which t does SNR(t) cross 1 for this schedule, and what does the reverse chain's figure show
# at that step? Compute it from `alpha_bar`.

# %%
### BEGIN SOLUTION
t_half = int((snr < 1).nonzero()[0]) + 1          # snr[0] is t = 1
print(f"SNR(t) < 1 from t = {t_half} on: below it the signal dominates, and the figure's chains settle there")
### END SOLUTION

# %% [markdown]
# **2 (core).** Write the forward marginal: `marginal(x0, betas, t)` returns the mean and standard deviation of
# q(x_t | x_0), with `betas` as in section 2 (`betas[0]` unused). Run `check_forward_marginal`.

# %%
from vaelib.course.checks import check_forward_marginal


def marginal(x0, betas, t):
    ### BEGIN SOLUTION
    a = torch.cumprod(1 - betas, 0)[t]
    return a.sqrt() * x0, (1 - a).sqrt()
    ### END SOLUTION


check_forward_marginal(marginal)

# %% [markdown]
# **3 (core).** Write the bound's weights: `elbo_weights(betas)` returns w (one per entry of `betas`, entries 0
# and 1 unchecked) with L_t-1 = w_t ||eps - eps_theta||^2, derived in section 4 without looking back. Run
# `check_elbo_weight`. Then say in one sentence why w_t is largest at small t.

# %%
from vaelib.course.checks import check_elbo_weight


def elbo_weights(betas):
    ### BEGIN SOLUTION
    a = torch.cumprod(1 - betas, 0)
    w = torch.zeros_like(betas)
    tilde = betas[2:] * (1 - a[1:-1]) / (1 - a[2:])
    w[2:] = betas[2:] ** 2 / (2 * tilde * (1 - betas[2:]) * (1 - a[2:]))
    return w
    ### END SOLUTION


check_elbo_weight(elbo_weights)

# %% [markdown]
# ### BEGIN SOLUTION
# At small t the posterior variance beta_tilde_t is tiny, so a given error in the predicted noise moves p's mean
# by many of its own standard deviations: the KL divides by 2 beta_tilde_t.
# ### END SOLUTION
#
# **4 (stretch).** Copying with less data. Train a DDPM on the latents of only 1,000 training images (`python -m
# vaelib train ld --model latent_ddpm --latents_of pretrained/conv_vae.pth --subset 1000 --num_epochs 2000
# --batch_size 256`, about 8,000 steps) and repeat section 8's copying check against those 1,000 images. Does the
# ratio fall? Then do the same for a beta = 1e-6 VAE (`python -m vaelib train conv_beta_1e-6 --beta 1e-6
# --num_epochs 30`), whose latents carry more of each image.
#
# **5 (stretch).** Flow matching at the shipped model's budget. Section 9 raced both objectives for 2,000 steps
# without weight averages. Train section 9's flow at the shipped DDPM's size (3 blocks of 512) for 20,000 steps of
# 256 with a moving average of its weights (decay 0.999, `torch.optim.swa_utils.AveragedModel`), and compare the FD
# of 10,000 of its samples with the shipped DDPM's 12.1. How few Euler steps keep it within 1 FD of its 200-step
# score?

# %% [markdown]
# ## References
#
# - Ho, Jain and Abbeel (2020). Denoising diffusion probabilistic models. NeurIPS.
# - Kingma, Salimans, Poole and Ho (2021). Variational diffusion models. NeurIPS.
# - Kingma and Gao (2023). Understanding diffusion objectives as the ELBO with simple data augmentation. NeurIPS.
# - Rombach, Blattmann, Lorenz, Esser and Ommer (2022). High-resolution image synthesis with latent diffusion
#   models. CVPR.
# - Yao, Yang and Wang (2025). Reconstruction vs. generation: taming optimization dilemma in latent diffusion
#   models (VA-VAE). CVPR.
# - Chen et al. (2025). DC-AE 1.5: accelerating diffusion model convergence with structured latent space.
# - Lipman, Chen, Ben-Hamu, Nickel and Le (2023). Flow matching for generative modeling. ICLR.

# %% [markdown]
# ## Where to go next
#
# - **Hierarchical VAEs at scale**: NVAE (Vahdat and Kautz 2020) and VDVAE (Child 2021) take notebook 14's
#   hierarchy to dozens of layers and to 256x256 images; their code is `NVlabs/NVAE` and `openai/vdvae`.
# - **Tokenizers**: VQ-GAN (Esser et al. 2021) adds a perceptual and an adversarial loss to notebook 15's VQ-VAE;
#   FSQ (Mentzer et al. 2023) is the quantizer of section 6 there. MAGVIT-v2 and the image tokens of multimodal
#   models follow.
# - **Stable Diffusion's VAE**: `AutoencoderKL` in Hugging Face `diffusers`, its configs (`kl_weight` 1e-6,
#   `scaling_factor` 0.18215) and the latent-diffusion paper (Rombach et al. 2022).
# - **Courses**: MIT 6.S184 (Holderrieth and Erives, flow matching and diffusion models) builds section 4's
#   continuous-time view; Sander Dieleman's blog post "Generative modelling in latent space" (2025) discusses the
#   tokenizer trade-offs of section 8.
# - **The theory**: Kingma et al. 2021 (variational diffusion models), Kingma and Gao 2023 (weighted ELBOs),
#   Lipman et al. 2023 and Liu et al. 2023 (flow matching, rectified flow).
