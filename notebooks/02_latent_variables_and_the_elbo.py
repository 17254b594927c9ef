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
# # 02 · Latent variables and the ELBO
#
# **Learning objectives**
#
# - Write a latent-variable model's likelihood as an integral, $p(x) = \int p(x\mid z)\,p(z)\,dz$, and its
#   posterior $p(z\mid x)$ by Bayes' rule; compute both in closed form for a linear-Gaussian toy model.
# - Estimate $p(x)$ by naive Monte Carlo from the prior, and explain (and measure) why its variance
#   explodes: on the toy model, and on MNIST.
# - Derive importance sampling, and see that the best proposal is the posterior.
# - Derive the evidence lower bound (ELBO) with Jensen's inequality, and the identity
#   $\log p(x) = \mathrm{ELBO}(q) + \mathrm{KL}\big(q(z)\,\|\,p(z\mid x)\big)$; see the gap as a function of $q$.
# - Write a VAE's ELBO and the importance-weighted bound (IWAE) in plain torch, and check them against `vaelib`.
#
# **Prerequisites**
#
# - Notebooks 00 (the Bernoulli likelihood) and 01 (why an autoencoder needs a distribution on codes).
# - Probability: Bayes' rule, expectations, the Gaussian density
#   $\mathcal{N}(v;\,\mu,\sigma^2) = \frac{1}{\sqrt{2\pi}\sigma}e^{-(v-\mu)^2/2\sigma^2}$, variance of a sum of
#   independent variables. The KL divergence $\mathrm{KL}(q\,\|\,p) = \mathbb{E}_q[\log q - \log p] \ge 0$ is
#   used by its definition here; notebook 03 studies it in depth.

# %% [markdown]
# ## 1. A latent-variable model
#
# Notebook 01 ended with the plan: draw a code $z$ from a known distribution, then decode it. As a
# probabilistic model, this is a two-step **generative story**:
#
# $$z \sim p(z) \quad \text{(the prior, e.g. } \mathcal{N}(0, I)\text{)}, \qquad x \sim p_\theta(x\mid z) \quad \text{(the decoder, e.g. independent Bernoulli pixels)}.$$
#
# It defines a joint distribution $p_\theta(x, z) = p_\theta(x\mid z)\,p(z)$. We only observe $x$, so the
# likelihood we want to maximize is the **marginal** likelihood (also called the **evidence**),
#
# $$p_\theta(x) = \int p_\theta(x\mid z)\,p(z)\,dz = \mathbb{E}_{p(z)}\big[p_\theta(x\mid z)\big],$$
#
# and the code that explains a given image is described by the **posterior**, by Bayes' rule,
#
# $$p_\theta(z\mid x) = \frac{p_\theta(x\mid z)\,p(z)}{p_\theta(x)} .$$
#
# Even though $p_\theta(x\mid z)$ makes the pixels independent, $p_\theta(x)$ does not: it is a
# continuous *mixture* of such distributions, one per $z$, which is how the model ties pixels together
# (notebook 00's independent-pixel model was the case of a single $z$).
#
# When the decoder is a neural network, the integral has no closed form, and neither does the posterior
# (its normalizer is the same integral). This notebook is about what to do instead. We first study a
# model small enough that everything *is* computable, so every approximation can be checked.

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

import vaelib
from vaelib.course import load_or_train, save_figure

FAST = vaelib.course.fast_mode()      # True when VAELIB_FAST=1: the smoke-test mode that CI uses
print(vaelib.course.mode_name())    # what made the outputs below: learner mode, or CI's fast mode
TRAIN_FROM_SCRATCH = False     # set True to retrain instead of loading pretrained/ checkpoints
torch.manual_seed(0)
device = "cpu"

# %% [markdown]
# ## 2. A toy model with a tractable posterior
#
# One latent number and one observed number, with a linear "decoder":
#
# $$z \sim \mathcal{N}(0, 1), \qquad x \mid z \sim \mathcal{N}(w z + b,\; s^2).$$
#
# **The evidence.** Write $x = wz + b + s\,\varepsilon$ with $\varepsilon \sim \mathcal{N}(0,1)$ independent of $z$.
# A sum of independent Gaussians is Gaussian, with the means and the variances added:
#
# $$p(x) = \mathcal{N}\big(x;\; b,\; w^2 + s^2\big).$$
#
# **The posterior.** As a function of $z$, the log of the numerator of Bayes' rule is
#
# $$\log p(x\mid z) + \log p(z) = -\frac{(x - b - wz)^2}{2s^2} - \frac{z^2}{2} + \text{const}
#   = -\frac12\Big(\underbrace{\tfrac{w^2 + s^2}{s^2}}_{1/\sigma_\star^2}\, z^2 - 2z\,\frac{w(x - b)}{s^2}\Big) + \text{const},$$
#
# a quadratic in $z$, so the posterior is Gaussian. Completing the square, $-\frac{1}{2\sigma_\star^2}(z - \mu_\star)^2$ with
#
# $$p(z\mid x) = \mathcal{N}\big(z;\; \mu_\star,\; \sigma_\star^2\big), \qquad
#   \mu_\star = \frac{w\,(x - b)}{w^2 + s^2}, \qquad \sigma_\star^2 = \frac{s^2}{w^2 + s^2}.$$
#
# We take $w = 1$, $b = 0$, a small noise $s = 0.2$, and observe $x = 2$: a value the model finds
# fairly surprising (two standard deviations out), as a test image is for a real model. Everything in
# float64, and checked against brute-force numerical integration over a fine grid of $z$:

# %%
w, b, s = 1.0, 0.0, 0.2
x0 = torch.tensor(2.0, dtype=torch.float64)
b64 = torch.tensor(b, dtype=torch.float64)      # a float64 tensor makes Normal(b64, ...) compute in float64

log_px = Normal(b64, math.sqrt(w**2 + s**2)).log_prob(x0)           # log p(x), closed form
post_mean = w * (x0 - b) / (w**2 + s**2)
post_std = torch.tensor(s / math.sqrt(w**2 + s**2), dtype=torch.float64)
posterior = Normal(post_mean, post_std)                                # p(z | x), closed form


def log_joint(z):
    """log p(x0, z) = log p(x0 | z) + log p(z), for any tensor of z's."""
    return Normal(w * z + b, s).log_prob(x0) + Normal(0.0, 1.0).log_prob(z)


zs = torch.linspace(-10, 10, 400_001, dtype=torch.float64)
joint = log_joint(zs).exp()
px_numeric = torch.trapezoid(joint, zs)
post_numeric = joint / px_numeric                                      # Bayes' rule on the grid
mean_numeric = torch.trapezoid(zs * post_numeric, zs)
std_numeric = torch.trapezoid((zs - mean_numeric) ** 2 * post_numeric, zs).sqrt()
print(f"log p(x):          closed form {log_px:.6f}   numerical integral {px_numeric.log():.6f}")
print(f"posterior mean:    closed form {post_mean:.6f}   numerical {mean_numeric:.6f}")
print(f"posterior std:     closed form {post_std:.6f}   numerical {std_numeric:.6f}")

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.2))
zz = torch.linspace(-3, 4, 1401, dtype=torch.float64)
ax.plot(zz, Normal(0.0, 1.0).log_prob(zz).exp(), label="prior $p(z)$")
lik = Normal(w * zz + b, s).log_prob(x0).exp()
ax.plot(zz, lik / lik.max(), "--", label=r"likelihood $p(x\,|\,z)$ (rescaled to max 1)")
ax.plot(zz, posterior.log_prob(zz).exp(), label=r"posterior $p(z\,|\,x)$")
ax.set_xlabel("z")
ax.set_title(f"toy model, observed x = {x0.item():g}")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The prior (blue) is wide and centred at 0. The likelihood (dashed) says which $z$ explain $x = 2$
# well: those near 2, within about $s/w = 0.2$. The posterior (green) is their product, renormalized: a
# narrow bump at $\mu_\star = 1.92$, pulled slightly toward the prior's centre. Note how little of the
# prior's mass lies under the posterior: that is the whole difficulty of the next section.
#
# ## 3. Naive Monte Carlo, and why its variance explodes
#
# $p(x) = \mathbb{E}_{p(z)}[p(x\mid z)]$ suggests the obvious estimator: draw $z_1, \dots, z_S$ from the
# prior and average,
#
# $$\hat p_S(x) = \frac1S \sum_{i=1}^S p(x\mid z_i), \qquad z_i \sim p(z).$$
#
# It is **unbiased**, $\mathbb{E}[\hat p_S] = p(x)$, and its variance is $\operatorname{Var}[p(x\mid z)]/S$.
# What matters is the error *relative* to $p(x)$:
#
# $$\frac{\operatorname{Var}[\hat p_S]}{p(x)^2} = \frac{1}{S}\left(\frac{\mathbb{E}_{p(z)}\big[p(x\mid z)^2\big]}{p(x)^2} - 1\right) = \frac{r}{S}.$$
#
# For the toy model $r$ has a closed form. Squaring a Gaussian density gives another Gaussian density,
# $\mathcal{N}(x;\,\mu,s^2)^2 = \frac{1}{2\sqrt{\pi}\,s}\,\mathcal{N}(x;\,\mu,s^2/2)$, so by the same
# "sum of Gaussians" argument as for $p(x)$,
#
# $$\mathbb{E}_{p(z)}\big[p(x\mid z)^2\big] = \frac{1}{2\sqrt{\pi}\,s}\;\mathcal{N}\big(x;\; b,\; w^2 + s^2/2\big).$$

# %%
second_moment = Normal(b64, math.sqrt(w**2 + s**2 / 2)).log_prob(x0).exp() / (2 * math.sqrt(math.pi) * s)
r = second_moment / log_px.exp() ** 2 - 1

g = torch.Generator().manual_seed(0)
lik_prior = Normal(w * torch.randn(1_000_000, generator=g, dtype=torch.float64) + b, s).log_prob(x0).exp()
r_empirical = lik_prior.var() / lik_prior.mean() ** 2
print(f"relative variance of one prior sample: closed form r = {r:.1f}, from a million samples {r_empirical:.1f}")
print(f"samples needed for a 10% relative error: S = r / 0.1^2 = {r / 0.01:.0f}")

# %% [markdown]
# One prior sample has a standard deviation $\sqrt{r} \approx 4.8$ times the quantity it estimates, and
# we need thousands of samples for a 10% error on a one-dimensional integral. The reason is visible in
# the plot above: most prior samples land where $p(x\mid z)$ is nearly 0, and the estimate rests on the
# rare few that fall under the posterior.
#
# **Importance sampling** fixes this by sampling $z$ where it matters. For any distribution $q(z)$
# that is positive wherever $p(x\mid z)p(z)$ is,
#
# $$p(x) = \int q(z)\,\frac{p(x\mid z)\,p(z)}{q(z)}\,dz = \mathbb{E}_{q(z)}\big[\underbrace{p(x\mid z)\,p(z)/q(z)}_{\text{importance weight } w(z)}\big]
# \quad\Longrightarrow\quad \hat p^{\,q}_S(x) = \frac1S\sum_{i=1}^S w(z_i),\;\; z_i \sim q .$$
#
# It is unbiased for every such $q$; naive Monte Carlo is the case $q = p(z)$. The best $q$ is the posterior:
# with $q = p(z\mid x)$, Bayes' rule gives $w(z) = p(x\mid z)p(z)/p(z\mid x) = p(x)$ for *every* $z$,
# an estimator with zero variance. We cannot use it in practice (it needs $p(x)$), but any $q$ close to it
# does well. Compare naive sampling with a deliberately imperfect guess,
# $q = \mathcal{N}(\mu_\star + 0.1,\; (1.5\,\sigma_\star)^2)$:

# %%
q_guess = Normal(post_mean + 0.1, 1.5 * post_std)
R = 2000                                                   # independent repetitions of each estimator
g = torch.Generator().manual_seed(1)
estimates = {}
for S in (10, 100, 1000):
    z_prior = torch.randn(R, S, generator=g, dtype=torch.float64)
    naive = Normal(w * z_prior + b, s).log_prob(x0).exp().mean(1)
    z_q = q_guess.mean + q_guess.stddev * torch.randn(R, S, generator=g, dtype=torch.float64)
    importance = (log_joint(z_q) - q_guess.log_prob(z_q)).exp().mean(1)
    estimates[S] = (naive / log_px.exp(), importance / log_px.exp())   # ratios to the true p(x)
    print(f"S = {S:4d}: relative std  naive {estimates[S][0].std():.3f} (theory {math.sqrt(r / S):.3f}),  "
          f"importance {estimates[S][1].std():.3f};  "
          f"estimates off by more than 50%: naive {(estimates[S][0] - 1).abs().gt(0.5).float().mean():.0%}, "
          f"importance {(estimates[S][1] - 1).abs().gt(0.5).float().mean():.0%}")

z_post = posterior.sample((5,))
weights_post = (log_joint(z_post) - posterior.log_prob(z_post)).exp()
print("with q = the exact posterior, every weight equals p(x):", torch.allclose(weights_post, log_px.exp()))

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3), sharey=True)
bins = torch.linspace(0, 3, 61)
for ax, S in zip(axes, estimates):
    naive, importance = estimates[S]
    ax.hist(naive.clamp(max=3).numpy(), bins=bins.numpy(), alpha=0.6, label="naive (prior)")
    ax.hist(importance.clamp(max=3).numpy(), bins=bins.numpy(), alpha=0.6, label="importance (q)")
    ax.axvline(1.0, color="k", lw=1)
    ax.set_title(f"S = {S} samples per estimate")
    ax.set_xlabel(r"estimate / true $p(x)$")
axes[0].set_ylabel(f"count of {R} estimates")
axes[0].legend(fontsize=8)
plt.show()

# %% [markdown]
# Each histogram shows 2000 independent estimates of $p(x)$, divided by the true value (1 is right; values
# above 3 are piled into the last bin). With 10 prior samples, most naive estimates are near 0 (no sample
# hit the posterior) and a few are far too large: the average is right, a typical estimate is not.
# Importance sampling with a rough guess of the posterior is accurate with 10 samples.
#
# **How it scales.** The toy model has one latent dimension. With $D$ independent copies of it
# ($z \in \mathbb{R}^D$ and $x \in \mathbb{R}^D$, each coordinate as above), $p(x\mid z)$ and $p(x)$ are
# products over coordinates, so $\mathbb{E}[p(x\mid z)^2]/p(x)^2 = (1 + r)^D$: the relative variance of naive
# Monte Carlo grows **exponentially** with the dimension. It also grows as the likelihood sharpens
# ($s \to 0$), since the posterior shrinks while the prior does not:

# %%
noise = torch.logspace(-2, 0, 50, dtype=torch.float64)
r_of_s = (Normal(b, (w**2 + noise**2 / 2).sqrt()).log_prob(x0).exp() / (2 * math.sqrt(math.pi) * noise)
          / Normal(b, (w**2 + noise**2).sqrt()).log_prob(x0).exp() ** 2 - 1)
dims = torch.arange(1, 21)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
axes[0].loglog(noise, r_of_s)
axes[0].axvline(s, color="gray", ls=":")
axes[0].set_xlabel("likelihood noise s")
axes[0].set_ylabel("relative variance r (one sample)")
axes[0].set_title("sharper likelihood, worse naive MC")
axes[1].semilogy(dims, (1 + r) ** dims - 1, marker="o", ms=3)
axes[1].set_xlabel("latent dimension D")
axes[1].set_ylabel("relative variance (one sample)")
axes[1].set_title(f"D independent copies, s = {s}")
plt.show()
print(f"relative variance for D = 1, 10, 20: {r:.0f}, {(1 + r) ** 10 - 1:.1e}, {(1 + r) ** 20 - 1:.1e}")

# %% [markdown]
# Left: the relative variance of one prior sample as a function of the noise $s$ (dotted line: our
# $s = 0.2$); it grows like $1/s$. Right: with $D$ latent dimensions it grows like $(1+r)^D$; at $D = 20$
# it is $4.0\times 10^{27}$ (printed above), and so is the number of samples needed.
#
# ### The same on MNIST
#
# A VAE's decoder is far sharper than $s = 0.2$: $\log p(x\mid z)$ sums 784 Bernoulli terms, so moving
# $z$ a little changes it by tens or hundreds of nats, i.e. $p(x\mid z)$ by factors like $e^{100}$. Take the
# pretrained 2-D VAE of notebook 01 and one test image, draw 20,000 codes from the prior, and look at
# $\log p(x\mid z)$:

# %%
train = vaelib.MNIST("train", binarize="dynamic", subset=10_000 if FAST else None)  # only used to train if needed
test = vaelib.MNIST("test", binarize="dynamic")
vae, _ = load_or_train("vae_2d", train, test, train_from_scratch=TRAIN_FROM_SCRATCH)
vae.eval()
x_batch, y_batch = test.first(64, seed=0)     # 64 fixed binarized test images
x1 = x_batch[:1]                              # the first one, a 7
print("image label:", y_batch[0].item(), "| latent dim:", vae.latent_dim)

n_samples = 20_000
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    z_prior = torch.randn(n_samples, 2, generator=g)
    log_lik = vae.decode(z_prior).log_prob(x1.expand(n_samples, 1, 28, 28))        # log p(x|z), (20000,)
    mu1, logvar1 = vae.encoder(x1)
    q1 = vaelib.bounds.diagonal_gaussian(mu1, logvar1)                              # the encoder's q(z|x)
    z_q = mu1 + torch.exp(0.5 * logvar1) * torch.randn(n_samples, 2, generator=g)   # (20000, 2) from q(z|x)
    log_w_q = (vae.decode(z_q).log_prob(x1.expand(n_samples, 1, 28, 28))            # log importance weights
               + vae.prior().log_prob(z_q) - q1.log_prob(z_q))
log_share = log_lik.max() - torch.logsumexp(log_lik, 0)
print(f"log p(x|z) over prior samples: max {log_lik.max():.0f}, median {log_lik.median():.0f}, min {log_lik.min():.0f} nats")
print(f"the single best of the 20,000 samples carries {log_share.exp():.0%} of the naive sum")
kl1 = vaelib.kl.gaussian_kl(mu1, logvar1).item()
print(f"KL(q(z|x) || p(z)) for this image: {kl1:.1f} nats, exp(KL) = {math.exp(kl1):.0f}")

# %%
chunks = 200                                   # split the 20,000 samples into 200 estimates of 100 samples each
naive_chunks = torch.logsumexp(log_lik.view(chunks, -1), 1) - math.log(n_samples // chunks)
is_chunks = torch.logsumexp(log_w_q.view(chunks, -1), 1) - math.log(n_samples // chunks)
print(f"all 20,000 samples:  naive log p(x) {torch.logsumexp(log_lik, 0) - math.log(n_samples):.1f}, "
      f"importance (q = encoder) {torch.logsumexp(log_w_q, 0) - math.log(n_samples):.1f} nats")
print(f"200 estimates from 100 samples each: naive  spread (std) {naive_chunks.std():.2f} nats, "
      f"lowest {naive_chunks.min():.1f}")
print(f"                                     importance spread (std) {is_chunks.std():.2f} nats, "
      f"lowest {is_chunks.min():.1f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"wspace": 0.35})
order = log_lik.argsort()
floor = log_lik.max() - 40                     # colour only the 40 nats below the best sample
pts = axes[0].scatter(z_prior[order, 0], z_prior[order, 1], c=log_lik[order].clamp(min=floor), s=2, cmap="viridis")
fig.colorbar(pts, ax=axes[0], label=r"$\log p(x\,|\,z)$, clipped 40 nats below its max")
t = torch.linspace(0, 2 * math.pi, 100)
sd = (0.5 * logvar1[0]).exp()
axes[0].plot(mu1[0, 0] + 3 * sd[0] * torch.cos(t), mu1[0, 1] + 3 * sd[1] * torch.sin(t), "r", lw=1.5,
             label=r"$q(z\,|\,x)$, 3 std")
axes[0].set_xlabel("z[0]")
axes[0].set_ylabel("z[1]")
axes[0].set_title("20,000 prior samples, coloured by log-likelihood")
axes[0].legend(loc="lower right", fontsize=8)
bins = torch.linspace(min(naive_chunks.min(), is_chunks.min()).item() - 1, max(naive_chunks.max(), is_chunks.max()).item() + 1, 50)
axes[1].hist(naive_chunks.numpy(), bins=bins.numpy(), alpha=0.6, label="naive: z from the prior")
axes[1].hist(is_chunks.numpy(), bins=bins.numpy(), alpha=0.6, label="importance: z from the encoder's q")
axes[1].set_xlabel(r"estimate of $\log p(x)$ from 100 samples (nats)")
axes[1].set_ylabel("count of 200 estimates")
axes[1].legend(fontsize=8)
plt.show()

# %% [markdown]
# **Left:** the prior samples in the latent plane, coloured by $\log p(x\mid z)$ from the best sample
# (yellow) down to 40 nats below it (dark purple, and everything lower). Remember the log scale: 10 nats
# less is $e^{10} \approx 22{,}000$ times less likely. The codes that explain this 7 about as well as the
# best one fill a small region, and the encoder's $q(z\mid x)$ (red ellipse, 3 standard deviations) sits on it. **Right:** 200 estimates of $\log p(x)$ from 100 samples each. With
# prior samples the estimates scatter over tens of nats (a standard deviation of 7.17 nats, the lowest at $-149.7$,
# printed above) and are often far too low (a low estimate is one where
# no sample hit the small region; the rare lucky ones are high); sampling from the encoder's $q$ gives
# nearly the same answer every time.
#
# Why this becomes hopeless in higher dimensions: the prior must land in the posterior's region, and a
# rule of thumb (Chatterjee and Diaconis 2018) says importance sampling from a proposal needs about
# $\exp\big(\mathrm{KL}(\text{target}\,\|\,\text{proposal})\big)$ samples. Here the target is the posterior and
# the proposal the prior; the encoder's $\mathrm{KL}(q\,\|\,p(z))$ printed above, 5.5 nats, is a stand-in for
# it: $e^{\mathrm{KL}} \approx 255$ samples (printed above), which is why 100 are not enough and 20,000 are. The pretrained 20-dimensional
# conv VAE (`pretrained/conv_vae.pth`, used from notebook 05 on) has a KL of 24 nats per test image (notebook 03): $e^{24} \approx 2.6\times 10^{10}$ decoder passes
# *per image* for naive Monte Carlo, against a few hundred with the encoder's $q$. So a VAE
# learns $q$ along with the decoder, and the quantity it trains is built on $q$: the ELBO.

# %% [markdown]
# ## 4. The evidence lower bound (ELBO)
#
# We want $\log p(x)$ (the log-likelihood, summed over images, is what maximum likelihood maximizes),
# and we have the importance-sampling identity $p(x) = \mathbb{E}_q\big[p(x, z)/q(z)\big]$ for any $q$.
#
# **Jensen's inequality.** $\log$ is concave: its graph lies below each of its tangent lines,
# $\log v \le \log a + (v - a)/a$ for all $v, a > 0$. Put $v = V$ (a positive random variable) and
# $a = \mathbb{E}[V]$, and take expectations: the right-hand side averages to $\log \mathbb{E}[V]$, so
# $\mathbb{E}[\log V] \le \log \mathbb{E}[V]$. With $V = p(x, z)/q(z)$, $z \sim q$:
#
# $$\log p(x) = \log \mathbb{E}_{q(z)}\!\left[\frac{p(x, z)}{q(z)}\right] \;\ge\; \mathbb{E}_{q(z)}\big[\log p(x, z) - \log q(z)\big] =: \mathrm{ELBO}(q).$$
#
# The ELBO is an expectation of a *log*, so one sample of $z$ gives an unbiased estimate of it, with no
# exponentially rare events to wait for. Splitting $\log p(x, z) = \log p(x\mid z) + \log p(z)$ gives the
# form a VAE computes:
#
# $$\mathrm{ELBO}(q) = \underbrace{\mathbb{E}_{q(z)}\big[\log p(x\mid z)\big]}_{\text{reconstruction}} \;-\; \underbrace{\mathbb{E}_{q(z)}\big[\log q(z) - \log p(z)\big]}_{\mathrm{KL}(q(z)\,\|\,p(z))}.$$
#
# **How loose is the bound?** Write the joint the other way round, $p(x, z) = p(z\mid x)\,p(x)$:
#
# $$\mathrm{ELBO}(q) = \mathbb{E}_{q}\big[\log p(z\mid x) + \log p(x) - \log q(z)\big]
#   = \log p(x) - \mathbb{E}_{q}\big[\log q(z) - \log p(z\mid x)\big],$$
#
# because $\log p(x)$ does not depend on $z$. The last expectation is a KL divergence, so
#
# $$\boxed{\;\log p(x) = \mathrm{ELBO}(q) + \mathrm{KL}\big(q(z)\,\|\,p(z\mid x)\big)\;}$$
#
# Since a KL is $\ge 0$ and is 0 only when the two distributions are equal, this re-proves the bound and
# says more: the **gap** is exactly how far $q$ is from the true posterior. Maximizing the ELBO over $q$
# is **approximate posterior inference**, and maximizing it over the decoder's parameters pushes
# $\log p(x)$ up. A VAE does both at once, with $q = q_\phi(z\mid x)$ produced by the encoder.
#
# ## 5. The gap on the toy model
#
# Take a Gaussian $q(z) = \mathcal{N}(m, \sigma^2)$ and write $\sigma = e^{\lambda}$ ($\lambda$ is the log-std).
# Each term of the ELBO is an expectation of a quadratic under a Gaussian, using
# $\mathbb{E}_q[z] = m$, $\mathbb{E}_q[z^2] = m^2 + \sigma^2$ and $\mathbb{E}_q[(x - b - wz)^2] = (x - b - wm)^2 + w^2\sigma^2$:
#
# $$\begin{aligned}
# \mathbb{E}_q[\log p(x\mid z)] &= -\tfrac12\log(2\pi s^2) - \frac{(x - b - wm)^2 + w^2\sigma^2}{2s^2},\\
# \mathbb{E}_q[\log p(z)] &= -\tfrac12\log(2\pi) - \frac{m^2 + \sigma^2}{2},\\
# -\mathbb{E}_q[\log q(z)] &= \tfrac12\log(2\pi) + \lambda + \tfrac12 \quad\text{(the entropy of } q\text{)},
# \end{aligned}$$
#
# and the ELBO is their sum. We evaluate it on a grid of $(m, \lambda)$, subtract it from $\log p(x)$, and
# compare the gap with $\mathrm{KL}(q\,\|\,p(z\mid x))$ computed independently by
# `torch.distributions.kl_divergence` (a closed form that notebook 03 derives).

# %%
def toy_elbo(m, log_std):
    """ELBO(q) for q = N(m, exp(log_std)^2) on the toy model and the observed x0, in closed form."""
    var = torch.exp(2 * log_std)
    reconstruction = -0.5 * math.log(2 * math.pi * s**2) - ((x0 - b - w * m) ** 2 + w**2 * var) / (2 * s**2)
    log_prior = -0.5 * math.log(2 * math.pi) - (m**2 + var) / 2
    entropy = 0.5 * math.log(2 * math.pi) + log_std + 0.5
    return reconstruction + log_prior + entropy


# check the closed form against a Monte-Carlo average of log p(x, z) - log q(z), z ~ q, at one q
m_test, log_std_test = torch.tensor(0.5, dtype=torch.float64), torch.tensor(-1.0, dtype=torch.float64)
q_test = Normal(m_test, log_std_test.exp())
g = torch.Generator().manual_seed(0)
z = m_test + log_std_test.exp() * torch.randn(200_000, generator=g, dtype=torch.float64)
mc = log_joint(z) - q_test.log_prob(z)
print(f"ELBO at m = 0.5, log-std = -1: closed form {toy_elbo(m_test, log_std_test):.3f}, "
      f"Monte Carlo {mc.mean():.3f} +- {mc.std() / math.sqrt(len(z)):.3f}")

ms = torch.linspace(-1, 4, 201, dtype=torch.float64)
log_stds = torch.linspace(-4, 1, 201, dtype=torch.float64)
M, LS = torch.meshgrid(ms, log_stds, indexing="xy")                   # (201 log-stds, 201 means)
gap = log_px - toy_elbo(M, LS)
kl_to_posterior = kl_divergence(Normal(M, LS.exp()), posterior)
ok = torch.allclose(gap, kl_to_posterior, rtol=1e-9, atol=1e-9)
assert ok and (gap > -1e-12).all()
print(f"log p(x) - ELBO(q) equals KL(q || p(z|x)) at all {gap.numel()} grid points:", ok)
i = gap.argmin()
print(f"smallest gap on the grid: {gap.flatten()[i]:.3f} nats at m = {M.flatten()[i]:.3f}, log-std = {LS.flatten()[i]:.3f} "
      f"(posterior: {post_mean:.3f}, {post_std.log():.3f})")
print(f"gap for q = the prior N(0, 1): {log_px - toy_elbo(torch.tensor(0.0), torch.tensor(0.0)):.2f} nats")

# %%
from matplotlib.colors import LogNorm

fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
levels = [0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300]
cs = axes[0].contourf(M, LS, gap.clamp(min=1e-3), levels=[1e-3] + levels, norm=LogNorm(1e-3, 300), cmap="viridis_r",
                      extend="max")
axes[0].contour(M, LS, gap, levels=levels, colors="k", linewidths=0.4)
fig.colorbar(cs, ax=axes[0], label=r"gap $\log p(x) - \mathrm{ELBO}(q)$ (nats, log scale)", ticks=[0.01, 0.1, 1, 10, 100])
axes[0].plot(post_mean, post_std.log(), "r*", ms=14, label=r"$q = p(z\,|\,x)$: gap 0")
axes[0].plot(0, 0, "wo", mec="k", label=r"$q = p(z)$, the prior")
axes[0].set_xlabel(r"mean $m$ of $q$")
axes[0].set_ylabel(r"log-std $\lambda$ of $q$")
axes[0].set_title(r"the ELBO gap over $q = \mathcal{N}(m, e^{2\lambda})$")
axes[0].legend(loc="lower left", fontsize=8)

j = (log_stds - post_std.log()).abs().argmin()                        # the row at the posterior's log-std
k = (ms - post_mean).abs().argmin()                                   # the column at the posterior's mean
axes[1].plot(ms, gap[j], label=rf"gap, log-std fixed at {log_stds[j]:.2f}, varying $m$")
axes[1].plot(ms[::8], kl_to_posterior[j, ::8], "o", ms=4, mfc="none", color="C0", label=r"KL$(q\,\|\,p(z\,|\,x))$")
axes[1].plot(log_stds, gap[:, k], label=rf"gap, mean fixed at {ms[k]:.2f}, varying log-std")
axes[1].plot(log_stds[::8], kl_to_posterior[::8, k], "s", ms=4, mfc="none", color="C1", label=r"KL$(q\,\|\,p(z\,|\,x))$")
axes[1].set_yscale("log")
axes[1].set_ylim(1e-4, 1e5)
axes[1].set_yticks([1e-4, 1e-2, 1, 1e2])
axes[1].set_xlabel(r"$m$ or $\lambda$")
axes[1].set_ylabel("nats (log scale)")
axes[1].set_title("two slices: the gap (lines) is the KL (markers)")
axes[1].legend(fontsize=8, ncol=2, loc="upper center")
fig.tight_layout()
save_figure(fig, "elbo_gap.png")
plt.show()

# %% [markdown]
# **Left:** the gap between $\log p(x)$ and the ELBO for every Gaussian $q$, on a log colour scale
# (contours at 0.01, 0.03, 0.1, ... nats). It is never negative, and it falls to 0 at exactly one point,
# the true posterior (red star); for $q$ = the prior (white dot) the gap is 58.95 nats (printed above). The valley is narrow along
# the mean axis: a mean off by one posterior standard deviation (0.2) already costs half a nat. Along
# $\lambda$ it is lopsided. At the posterior mean the gap is the KL between two Gaussians with the same mean,
# $(\lambda_\star - \lambda) + \tfrac12 e^{2(\lambda - \lambda_\star)} - \tfrac12$ with $\lambda_\star = \log\sigma_\star$
# (notebook 03 derives the formula). Toward small $\lambda$, a $q$ too narrow, it grows only linearly, one nat
# per unit of $\lambda$ (the log of the ratio of the widths); toward large $\lambda$, a $q$ too wide that puts
# mass where the posterior has almost none, it grows like $e^{2\lambda}$. The ELBO forgives a $q$ that is too
# narrow far more readily than one that is too wide, which is why variational posteriors tend to come out too
# narrow (notebook 03, section 5).
# **Right:** two slices through the star. The lines are $\log p(x) - \mathrm{ELBO}$ computed from the
# ELBO's formula; the markers are $\mathrm{KL}(q\,\|\,p(z\mid x))$ computed from the two Gaussians; they coincide,
# as the boxed identity says. (Saved as `figures/elbo_gap.png`.)

# %% [markdown]
# ## 6. The ELBO of a VAE, in plain torch
#
# For a VAE, everything is per image: the encoder gives $q_\phi(z\mid x) = \mathcal{N}\big(\mu, \operatorname{diag}(\sigma^2)\big)$
# with $(\mu, \log\sigma^2)$ = `vae.encoder(x)`, the prior is $\mathcal{N}(0, I)$, and the decoder gives the
# logits of the Bernoulli $p_\theta(x\mid z)$. One sample $z = \mu + \sigma \odot \varepsilon$,
# $\varepsilon \sim \mathcal{N}(0, I)$, gives an unbiased estimate of the ELBO:
#
# $$\widehat{\mathrm{ELBO}}(x) = \underbrace{\sum_{j=1}^{784} \big[x_j \ell_j - \operatorname{softplus}(\ell_j)\big]}_{\log p_\theta(x\mid z),\ \ell = \text{decoder}(z)}
#   + \underbrace{\sum_{d=1}^{D} \log\mathcal{N}(z_d;\, 0, 1)}_{\log p(z)} - \underbrace{\sum_{d=1}^{D} \log\mathcal{N}(z_d;\, \mu_d, \sigma_d^2)}_{\log q_\phi(z\mid x)} .$$
#
# (Writing $z$ this way, as a function of $\varepsilon$, is the *reparameterization trick* of notebook 04;
# here it just lets us reuse the same noise as `vaelib`.) Since $z_d = \mu_d + \sigma_d\varepsilon_d$,
# $\log\mathcal{N}(z_d;\mu_d,\sigma_d^2) = -\tfrac12\varepsilon_d^2 - \tfrac12\log\sigma_d^2 - \tfrac12\log 2\pi$.
#
# `vaelib.bounds.elbo_terms` (what `model.elbo_terms(x)` calls) computes the same reconstruction term with one sample,
# but subtracts the KL in **closed form** (notebook 03), which removes the KL's sampling noise. So we
# compare in two steps: with the same $\varepsilon$ (same seed), the reconstruction terms must be identical
# and our $\log q - \log p$ must equal `vaelib.kl.monte_carlo_kl` on the same $z$; averaged over many
# $\varepsilon$, our ELBO must agree with vaelib's.

# %%
def plain_elbo(vae, x, eps):
    """One-sample ELBO per image, (B,), with the noise eps (B, D) given: plain torch, no vaelib."""
    mu, logvar = vae.encoder(x)
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = vae.decoder(z)
    log_px_z = (x * logits - F.softplus(logits)).sum(dim=(1, 2, 3))
    log_pz = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(1)
    log_qz = (-0.5 * eps**2 - 0.5 * logvar - 0.5 * math.log(2 * math.pi)).sum(1)
    return log_px_z + log_pz - log_qz, log_px_z, log_qz - log_pz, z


with torch.no_grad():
    mu, logvar = vae.encoder(x_batch)
    torch.manual_seed(123)
    eps = torch.randn_like(mu)                                # the draw vaelib makes after the same seed
    mine, mine_rec, mine_kl, z = plain_elbo(vae, x_batch, eps)
    torch.manual_seed(123)
    terms = vae.elbo_terms(x_batch)                           # vaelib.bounds.ELBOTerms, one value per image
    vaelib_mc_kl = vaelib.kl.monte_carlo_kl(vaelib.bounds.diagonal_gaussian(mu, logvar), vae.prior(), z=z)
ok_rec = torch.allclose(mine_rec, terms.reconstruction, atol=1e-4)
ok_kl = torch.allclose(mine_kl, vaelib_mc_kl, atol=1e-4)
assert ok_rec and ok_kl
print("shapes:", tuple(mine.shape), tuple(terms.value.shape))
print("reconstruction term matches vaelib (same noise):", ok_rec)
print("log q - log p matches vaelib.kl.monte_carlo_kl (same z):", ok_kl)

# %% [markdown]
# Now the expectations: average both one-sample estimates over 250 draws of $\varepsilon$ per image (the
# reconstruction terms still share their noise, so the only difference left is the sampled versus the
# closed-form KL).

# %%
n_draws = 250
with torch.no_grad():
    x_rep = x_batch.repeat(n_draws, 1, 1, 1)                 # (16000, 1, 28, 28)
    mu_rep, _ = vae.encoder(x_rep)
    torch.manual_seed(7)
    eps_rep = torch.randn_like(mu_rep)
    mine_rep = plain_elbo(vae, x_rep, eps_rep)[0].view(n_draws, -1)
    torch.manual_seed(7)
    vaelib_rep = vae.elbo_terms(x_rep)
mine_mean = mine_rep.mean()
vaelib_mean = vaelib_rep.value.mean()
std_error = mine_rep.std() / math.sqrt(mine_rep.numel())
print(f"ELBO averaged over 64 images x {n_draws} draws: plain torch {mine_mean:.2f}, vaelib {vaelib_mean:.2f} nats "
      f"(difference {mine_mean - vaelib_mean:+.2f}, standard error {std_error:.2f})")
assert abs(mine_mean - vaelib_mean) < 4 * std_error + 0.05
print(f"its parts (vaelib): reconstruction {vaelib_rep.reconstruction.mean():.2f}, KL {vaelib_rep.kl.mean():.2f} nats")

# %% [markdown]
# The two agree to within their Monte-Carlo error. The ELBO on these 64 images is $-145.81$ nats per image
# ($-152.1$ on the whole test set: the best test ELBO in the model's training history, printed in notebook 07), and $\log p(x)$ is higher by $\mathrm{KL}(q_\phi(z\mid x)\,\|\,p_\theta(z\mid x))$, which we cannot
# compute directly. The next section gets much closer to $\log p(x)$.
#
# ## 7. The importance-weighted bound
#
# Section 3 estimated $p(x)$ by averaging $k$ importance weights $w_i = p(x, z_i)/q(z_i\mid x)$. Apply Jensen
# to that average instead of to a single weight (Burda et al. 2015):
#
# $$\mathcal{L}_k(x) = \mathbb{E}_{z_1, \dots, z_k \sim q}\left[\log \frac1k\sum_{i=1}^k w_i\right] \;\le\; \log \mathbb{E}\left[\frac1k\sum_{i=1}^k w_i\right] = \log p(x).$$
#
# For $k = 1$ it is the ELBO. As $k$ grows the average of the weights concentrates around $p(x)$, so the
# bound tightens: $\mathrm{ELBO} = \mathcal{L}_1 \le \mathcal{L}_2 \le \dots \le \log p(x)$ (notebook 08, section 2,
# proves it in three lines), and $\mathcal{L}_k \to \log p(x)$. It is what papers report as a VAE's "negative log-likelihood", with $k = 5000$.
#
# In code, the weights must stay in log space: $\log w_i$ is around $-150$ nats, and $e^{-150} \approx 10^{-65}$
# is below the smallest float32 ($\approx 10^{-38}$, or $10^{-45}$ for subnormal numbers), so averaging $e^{\log w_i}$ gives $\log 0 = -\infty$.
# The **log-sum-exp** trick, $\log\sum_i e^{a_i} = a_{\max} + \log\sum_i e^{a_i - a_{\max}}$, avoids it
# (`torch.logsumexp`).

# %%
def plain_iwae(vae, x, eps):
    """L_k per image, (B,), from noise eps (k, B, D): plain torch, no vaelib."""
    k, batch = eps.shape[:2]
    mu, logvar = vae.encoder(x)
    z = mu + torch.exp(0.5 * logvar) * eps                                   # (k, B, D)
    logits = vae.decoder(z.reshape(k * batch, -1)).view(k, batch, 1, 28, 28)
    log_px_z = (x * logits - F.softplus(logits)).sum(dim=(2, 3, 4))          # (k, B)
    log_pz = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_qz = (-0.5 * eps**2 - 0.5 * logvar - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_w = log_px_z + log_pz - log_qz                                       # (k, B) log importance weights
    return torch.logsumexp(log_w, dim=0) - math.log(k), log_w


k = 100
with torch.no_grad():
    eps = torch.randn((k, *mu.shape), generator=torch.Generator().manual_seed(0))   # (100, 64, 2)
    mine, log_w = plain_iwae(vae, x_batch, eps)
    theirs = vaelib.iwae_bound(vae, x_batch, k, generator=torch.Generator().manual_seed(0))
ok = torch.allclose(mine, theirs, atol=1e-3)
assert ok
print("L_k shape:", tuple(mine.shape))
print(f"matches vaelib.bounds.iwae_bound (same generator, k = {k}):", ok)
naive_average = torch.log(torch.exp(log_w).mean(0))
print(f"log-weights range from {log_w.min():.0f} to {log_w.max():.0f} nats; "
      f"log(mean(exp(log w))) in float32 is -inf for {torch.isinf(naive_average).sum().item()} of 64 images")

# %%
ks = [1, 2, 5, 10, 50, 200, 1000]
bounds = []
with torch.no_grad():
    for kk in ks:
        bounds.append(vaelib.iwae_bound(vae, x_batch, kk, generator=torch.Generator().manual_seed(1)).mean().item())
for kk, value in zip(ks, bounds):
    print(f"k = {kk:4d}: L_k = {value:.1f} nats (mean over 64 test images)")
print(f"L_1000 - ELBO: {bounds[-1] - vaelib_mean.item():.1f} nats, a lower bound on the average gap KL(q || p(z|x))")

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.4))
ax.semilogx(ks, bounds, "o-", label=r"$\mathcal{L}_k$")
ax.axhline(vaelib_mean.item(), color="gray", ls="--", label="ELBO (250 draws)")
ax.set_xlabel("k (samples per image)")
ax.set_ylabel("nats per image")
ax.set_title("importance-weighted bounds, 2-D VAE")
ax.legend()
plt.show()

# %% [markdown]
# The bound rises with $k$, quickly at first and then more slowly: from the ELBO (dashed line; $\mathcal{L}_1$
# is a one-sample estimate of it) by the amount printed above at $k = 1000$. (Each point is itself a random
# estimate from 64 images, so the curve is a little bumpy; the increase holds in expectation.) It has not
# levelled off: the last points still rise, and $\mathcal{L}_k$ reaches $\log p(x)$ only as $k \to \infty$.
# Since $\mathcal{L}_{1000} \le \log p(x)$, the printed $\mathcal{L}_{1000} - \mathrm{ELBO}$ is a *lower bound* on the
# average gap $\mathrm{KL}(q_\phi(z\mid x)\,\|\,p_\theta(z\mid x))$ of this VAE, not its value: the encoder is a
# decent, not perfect, posterior, off by at least that many nats per image. Notebook 08 uses $\mathcal{L}_{5000}$
# to evaluate models.

# %% [markdown]
# ## Key takeaways
#
# - A latent-variable model has likelihood $p(x) = \int p(x\mid z)p(z)\,dz$ and posterior
#   $p(z\mid x) = p(x\mid z)p(z)/p(x)$; with a neural decoder neither has a closed form.
# - Naive Monte Carlo from the prior is unbiased but its relative variance grows like $1/s$ as the likelihood
#   sharpens and exponentially with the latent dimension; roughly $e^{\mathrm{KL}}$ samples are needed
#   ($e^{24} \approx 2.6\times10^{10}$ per image for the 20-D conv VAE, whose KL is 24 nats).
# - Importance sampling with a proposal $q$ close to the posterior fixes the variance; the posterior itself
#   gives zero variance.
# - Jensen gives $\log p(x) \ge \mathrm{ELBO}(q) = \mathbb{E}_q[\log p(x\mid z)] - \mathrm{KL}(q\,\|\,p(z))$, and exactly
#   $\log p(x) = \mathrm{ELBO}(q) + \mathrm{KL}(q\,\|\,p(z\mid x))$: maximizing the ELBO over $q$ is posterior inference.
# - `model.elbo_terms(x)` is the one-sample ELBO with the KL in closed form; `vaelib.iwae_bound` is the tighter
#   $\mathcal{L}_k$, computed with log-sum-exp.

# %% [markdown]
# ## Exercises
#
# Each exercise names its tier: *warm-up* (apply what a section showed), *core* (the notebook's main idea in a
# new setting), *stretch* (goes beyond the notebook; optional).
#
# **Exercise 1 (warm-up): a $q$ of fixed width.** On the toy model, restrict $q$ to a standard deviation of 1 ($\lambda = 0$). Using
# `toy_elbo` on a grid of means, find the best mean `best_m` and the smallest gap `smallest_gap`
# $= \log p(x) - \mathrm{ELBO}$ you can reach, and run `check_fixed_std_q(best_m, smallest_gap)`. Check the
# smallest gap against `kl_divergence(Normal(m, 1), posterior)`. Why can it not reach 0?

# %%
from vaelib.course.checks import check_fixed_std_q

### BEGIN SOLUTION
m_grid = torch.linspace(-1, 4, 5001, dtype=torch.float64)
gaps = log_px - toy_elbo(m_grid, torch.zeros_like(m_grid))
best = gaps.argmin()
best_m, smallest_gap = m_grid[best], gaps[best]
print(f"best mean {best_m:.3f} (posterior mean {post_mean:.3f}), smallest gap {smallest_gap:.3f} nats")
kl_best = kl_divergence(Normal(best_m, torch.tensor(1.0, dtype=torch.float64)), posterior)
assert torch.allclose(smallest_gap, kl_best)
print(f"KL(N(m*, 1) || p(z|x)) = {kl_best:.3f}")
# The posterior has std 0.196; no q with std 1 equals it, so KL(q || p(z|x)) > 0 for all of them.
# Restricting the family of q costs a gap that no choice of mean removes (the best mean is the posterior's).
### END SOLUTION
check_fixed_std_q(best_m, smallest_gap)

# %% [markdown]
# **Exercise 2 (core): the prior as proposal.** On the toy model, compute the importance-weighted bound $\mathcal{L}_k$ with the *prior* as
# proposal, $q = p(z)$. Write `toy_iwae_prior(z)`: given `z` of shape `(R, k)`, R independent sets of k draws
# from the prior, return $\log \frac1k\sum_i p(x\mid z_i)$ for each set, shape `(R,)`, and check it with
# `check_toy_iwae_prior`. Then, in the next cell, average it over 2000 repetitions for $k = 1, 10, 100, 1000$.
# Check that $\mathcal{L}_1$ agrees with `toy_elbo(0, 0)` and that the bounds increase toward `log_px`.

# %%
from vaelib.course.checks import check_toy_iwae_prior


def toy_iwae_prior(z):
    ### BEGIN SOLUTION
    log_w = Normal(w * z + b, s).log_prob(x0)                # with q = p(z) the weight is p(x|z)
    return torch.logsumexp(log_w, dim=1) - math.log(z.shape[1])
    ### END SOLUTION


check_toy_iwae_prior(toy_iwae_prior)

# %%
### BEGIN SOLUTION
gen = torch.Generator().manual_seed(0)
values = []
for kk in (1, 10, 100, 1000):
    zk = torch.randn(2000, kk, generator=gen, dtype=torch.float64)
    values.append(toy_iwae_prior(zk).mean().item())
    print(f"k = {kk:4d}: L_k = {values[-1]:7.2f}")
print(f"ELBO(prior) = {toy_elbo(torch.tensor(0.0), torch.tensor(0.0)):.2f}, log p(x) = {log_px:.2f}")
assert values == sorted(values) and values[-1] < log_px
assert abs(values[0] - toy_elbo(torch.tensor(0.0), torch.tensor(0.0))) < 1.5
### END SOLUTION

# %% [markdown]
# **Exercise 3 (core, written): a decoder that ignores $z$.** Suppose a decoder so powerful that it ignores $z$: $p_\theta(x\mid z) = p_\theta(x)$ for
# every $z$. What are the posterior $p_\theta(z\mid x)$, the $q$ that maximizes the ELBO, the KL term
# $\mathrm{KL}(q\,\|\,p(z))$ and the gap? What does the encoder learn?

# %% [markdown]
# ### BEGIN SOLUTION
#
# By Bayes' rule $p_\theta(z\mid x) = p_\theta(x)\,p(z)/p_\theta(x) = p(z)$: the image says nothing about $z$,
# so the posterior is the prior. The ELBO is maximized by $q = p(z\mid x) = p(z)$, for which
# $\mathrm{KL}(q\,\|\,p(z)) = 0$ and the gap $\mathrm{KL}(q\,\|\,p(z\mid x)) = 0$: the bound is tight and
# $\mathrm{ELBO} = \log p_\theta(x)$. The encoder learns to output the prior for every image, so the codes
# carry no information about the images. This is **posterior collapse**, the subject of notebook 06: it
# happens when the decoder can model the data without $z$ (e.g. an autoregressive decoder), because then
# the KL term only costs and never pays.
#
# ### END SOLUTION


# %% [markdown]
# **Exercise 4 (stretch): a posterior that no Gaussian fits.** Replace the toy model's linear decoder by a
# square: $z \sim \mathcal{N}(0, 1)$, $x \mid z \sim \mathcal{N}(z^2,\, 0.2^2)$, and observe $x = 2$. Now $z \approx \sqrt 2$
# and $z \approx -\sqrt 2$ explain $x$ equally well, the posterior has two separate bumps, and the ELBO has no closed
# form. (a) Write `elbo_mc(log_joint, m, log_std, eps)`: the Monte-Carlo ELBO of $q = \mathcal{N}(m, e^{2\,\text{log\_std}})$
# for *any* model with a one-dimensional latent whose $\log p(x, z)$ is the function `log_joint`, built from the
# given standard-normal noise `eps` of shape `(n,)`: with $z_i = m + e^{\text{log\_std}}\varepsilon_i$, the average
# over the samples (the last dimension) of $\log p(x, z_i) - \log q(z_i)$. Check it with `check_elbo_mc`.
# (b) In the next cell, write the log-joint of the squared model, compute $\log p(x)$ by numerical integration on
# a fine grid of $z$ (as in section 2), evaluate your ELBO with 1,000 fixed noise draws on a grid of means and
# log-stds, and print the smallest gap $\log p(x) - \mathrm{ELBO}$ and the $q$ that reaches it. Compare the gap
# with $\log 2$ and explain the number. (c) Use that best $q$ as the proposal of the importance-weighted bound
# $\mathcal{L}_k$ (section 7) for $k = 10$ and $1000$: does a larger $k$ close the gap here?

# %%
from vaelib.course.checks import check_elbo_mc


def elbo_mc(log_joint, m, log_std, eps):
    ### BEGIN SOLUTION
    z = m + torch.exp(log_std) * eps                                  # samples of q, built from the given noise
    log_q = -0.5 * eps**2 - log_std - 0.5 * math.log(2 * math.pi)     # log N(z; m, e^(2 log_std)), as (z - m)/std = eps
    return (log_joint(z) - log_q).mean(-1)
    ### END SOLUTION


check_elbo_mc(elbo_mc)

# %%
### BEGIN SOLUTION
x_sq = torch.tensor(2.0, dtype=torch.float64)


def log_joint_sq(z):
    """log p(x = 2, z) for z ~ N(0, 1), x | z ~ N(z^2, 0.2^2)."""
    return Normal(z**2, 0.2).log_prob(x_sq) + Normal(0.0, 1.0).log_prob(z)


z_fine = torch.linspace(-6, 6, 600_001, dtype=torch.float64)
log_px_sq = torch.trapezoid(log_joint_sq(z_fine).exp(), z_fine).log()
eps_sq = torch.randn(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
m_grid = torch.linspace(-2.5, 2.5, 101, dtype=torch.float64)
log_std_grid = torch.linspace(-4, 1, 51, dtype=torch.float64)
elbos = torch.stack([elbo_mc(log_joint_sq, m_grid[:, None], ls, eps_sq) for ls in log_std_grid])  # (51, 101)
gaps_sq = log_px_sq - elbos
row, col = divmod(int(gaps_sq.argmin()), len(m_grid))
best_q = (m_grid[col], log_std_grid[row])
print(f"log p(x) = {log_px_sq:.3f}; smallest gap {gaps_sq.min():.3f} nats (log 2 = {math.log(2):.3f}) "
      f"at m = {best_q[0]:.2f}, std = {best_q[1].exp():.3f}")
print(f"smallest gap of a q centred at 0: {gaps_sq[:, (m_grid.abs() < 1e-9).nonzero()[0, 0]].min():.1f} nats")
g = torch.Generator().manual_seed(1)
for k in (10, 1000):
    e = torch.randn(200, k, generator=g, dtype=torch.float64)
    log_w = log_joint_sq(best_q[0] + best_q[1].exp() * e) - (-0.5 * e**2 - best_q[1] - 0.5 * math.log(2 * math.pi))
    print(f"k = {k:4d}: log p(x) - L_k = {log_px_sq - (torch.logsumexp(log_w, 1) - math.log(k)).mean():.3f} nats")
# The best Gaussian sits on one bump (m close to +-sqrt(2), a width like the bump's) and misses the other. The
# posterior puts mass 1/2 on each bump, so on its bump p(z|x) is about q(z)/2, and the gap KL(q || p(z|x)) =
# E_q[log q - log p(z|x)] is about log 2. A q centred at 0 that straddles both bumps puts its mass where the
# posterior has none and does far worse. More samples do not help: a draw from the narrow q essentially never
# lands on the other bump, so every weight is about p(x)/2 and L_k stays log 2 below log p(x) for any practical k.
### END SOLUTION

# %% [markdown]
# ## References
#
# - Burda, Y., Grosse, R. and Salakhutdinov, R. (2015). Importance weighted autoencoders. *International
#   Conference on Learning Representations (ICLR) 2016*. [arXiv:1509.00519](https://arxiv.org/abs/1509.00519)
# - Chatterjee, S. and Diaconis, P. (2018). The sample size required in importance sampling. *The Annals of
#   Applied Probability* 28(2):1099-1135. [arXiv:1511.01437](https://arxiv.org/abs/1511.01437)
