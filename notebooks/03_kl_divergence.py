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
# # 03 · The KL divergence: definition, Gaussian closed form, Monte Carlo, and its two directions
#
# **Learning objectives**
#
# - State the definition of the Kullback-Leibler (KL) divergence and prove that it is never negative.
# - Derive, step by step, the closed form of $\mathrm{KL}\big(\mathcal N(\mu, \sigma^2)\,\|\,\mathcal N(0, 1)\big)$,
#   then extend it to a diagonal Gaussian in $D$ dimensions as a sum over dimensions.
# - Write the KL term of the VAE in plain torch and check it against `vaelib.kl.gaussian_kl` and
#   `torch.distributions.kl_divergence`.
# - Estimate a KL by Monte Carlo and see its error shrink like $1/\sqrt{n}$.
# - Tell forward from reverse KL: fit a single Gaussian to a two-bump target and see *mass-covering*
#   versus *mode-seeking* behaviour.
# - Read the KL of a trained VAE per latent dimension, and count its **active units**.
#
# **Prerequisites**
#
# - Notebooks 00-02 (MNIST and the Bernoulli likelihood; latent-variable models and the ELBO, where the term
#   $\mathrm{KL}(q(z|x)\,\|\,p(z))$ first appeared).
# - Maths: expectations, the Gaussian density, $\mathbb E[z] = \mu$ and $\mathbb E[(z-\mu)^2] = \sigma^2$ for
#   $z \sim \mathcal N(\mu, \sigma^2)$, logarithms, Jensen's inequality (recalled below).

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal, kl_divergence

import vaelib
import vaelib.evaluation
import vaelib.kl
import vaelib.course.pretrained

FAST = vaelib.course.fast_mode()      # True when VAELIB_FAST=1: the smoke-test mode that CI uses
print(vaelib.course.mode_name())    # what made the outputs below: learner mode, or CI's fast mode
TRAIN_FROM_SCRATCH = False     # set True to retrain instead of loading pretrained/ checkpoints
torch.manual_seed(0)
device = "cpu"

# %% [markdown]
# ## 1. Definition
#
# For two distributions $q$ and $p$ over the same variable $z$, the **KL divergence** of $q$ from $p$ is
#
# $$\mathrm{KL}(q\,\|\,p) = \mathbb E_{z \sim q}\left[\log \frac{q(z)}{p(z)}\right]
#   = \int q(z)\,\big(\log q(z) - \log p(z)\big)\,dz
#   \qquad\Big(\text{a sum } \textstyle\sum_z \text{ for discrete } z\Big).$$
#
# It measures, in **nats** (we use the natural log), how much more surprised you are on average by samples of
# $q$ when you score them with $p$ instead of with $q$ itself. Three facts we will use all the time:
#
# 1. **It is never negative.** Jensen's inequality says $\mathbb E[\log Y] \le \log \mathbb E[Y]$ for a
#    positive random variable $Y$ (the log is concave). With $Y = p(z)/q(z)$ and $z \sim q$:
#
#    $$-\mathrm{KL}(q\,\|\,p) = \mathbb E_q\left[\log \frac{p(z)}{q(z)}\right]
#      \le \log \mathbb E_q\left[\frac{p(z)}{q(z)}\right] = \log \int q(z)\frac{p(z)}{q(z)}\,dz
#      = \log \int p(z)\,dz = \log 1 = 0.$$
#
# 2. **It is zero only when $q = p$** (Jensen is an equality only when $p/q$ is constant, and both integrate to 1).
# 3. **It is not symmetric**: $\mathrm{KL}(q\,\|\,p) \ne \mathrm{KL}(p\,\|\,q)$ in general, so it is not a
#    distance. Which direction we minimize matters (section 5).
#
# A first example with two distributions over three outcomes, written straight from the definition:

# %%
q_probs = torch.tensor([0.7, 0.2, 0.1])
p_probs = torch.tensor([1 / 3, 1 / 3, 1 / 3])

kl_qp = (q_probs * (q_probs.log() - p_probs.log())).sum()
kl_pq = (p_probs * (p_probs.log() - q_probs.log())).sum()
print(f"KL(q || p) = {kl_qp:.4f} nats,  KL(p || q) = {kl_pq:.4f} nats")
print("matches torch.distributions.kl_divergence:",
      torch.allclose(kl_qp, kl_divergence(Categorical(q_probs), Categorical(p_probs)))
      and torch.allclose(kl_pq, kl_divergence(Categorical(p_probs), Categorical(q_probs))))

# %% [markdown]
# Both numbers are positive and they differ: $p$ puts $1/3$ on the third outcome where $q$ puts only $0.1$,
# and $\mathrm{KL}(p\,\|\,q)$ punishes that more than $\mathrm{KL}(q\,\|\,p)$ punishes the reverse mismatch.
#
# ## 2. The Gaussian closed form, one dimension
#
# In a VAE, $q(z|x) = \mathcal N(\mu, \sigma^2)$ is the encoder's output and $p(z) = \mathcal N(0, 1)$ is the prior.
# For Gaussians the expectation in the definition can be done with pen and paper. Take the general case
# $q = \mathcal N(\mu_1, \sigma_1^2)$, $p = \mathcal N(\mu_2, \sigma_2^2)$. The log-density of a Gaussian is
#
# $$\log \mathcal N(z; \mu, \sigma^2) = -\tfrac12 \log(2\pi) - \log \sigma - \frac{(z-\mu)^2}{2\sigma^2}.$$
#
# **Step 1: the log-ratio.** The $-\tfrac12\log 2\pi$ cancels:
#
# $$\log q(z) - \log p(z) = \log\frac{\sigma_2}{\sigma_1} - \frac{(z-\mu_1)^2}{2\sigma_1^2} + \frac{(z-\mu_2)^2}{2\sigma_2^2}.$$
#
# **Step 2: take the expectation under $z \sim q$.** We need two expectations:
#
# - $\mathbb E_q[(z-\mu_1)^2] = \sigma_1^2$ (the definition of the variance of $q$);
# - $\mathbb E_q[(z-\mu_2)^2] = \mathbb E_q[(z-\mu_1 + \mu_1-\mu_2)^2] = \sigma_1^2 + 2(\mu_1-\mu_2)\underbrace{\mathbb E_q[z-\mu_1]}_{=0}
#   + (\mu_1-\mu_2)^2 = \sigma_1^2 + (\mu_1-\mu_2)^2$.
#
# **Step 3: put them together.**
#
# $$\boxed{\mathrm{KL}\big(\mathcal N(\mu_1,\sigma_1^2)\,\|\,\mathcal N(\mu_2,\sigma_2^2)\big)
#   = \log\frac{\sigma_2}{\sigma_1} + \frac{\sigma_1^2 + (\mu_1-\mu_2)^2}{2\sigma_2^2} - \frac12}$$
#
# **Step 4: the VAE's case**, $\mu_2 = 0$, $\sigma_2 = 1$, $\mu_1 = \mu$, $\sigma_1 = \sigma$, and with the
# log-variance $\log\sigma^2$ that the encoder outputs (notebook 04 explains why), using $-\log \sigma = -\tfrac12\log\sigma^2$:
#
# $$\boxed{\mathrm{KL}\big(\mathcal N(\mu,\sigma^2)\,\|\,\mathcal N(0,1)\big) = \tfrac12\big(\mu^2 + \sigma^2 - \log\sigma^2 - 1\big)}$$
#
# Each piece has a meaning: $\mu^2$ pulls the mean to 0; $\sigma^2 - \log\sigma^2 - 1 \ge 0$ is zero only at
# $\sigma^2 = 1$, grows like $\sigma^2$ for a wide $q$ (linearly in the variance, so quadratically in $\sigma$,
# the axis of the plot below) and like $-\log\sigma^2$ for a narrow one (without bound, but only logarithmically).
# In plain torch, checked against torch's own table of closed forms:

# %%
def kl_normal(mu1, sigma1, mu2, sigma2):
    """KL(N(mu1, sigma1^2) || N(mu2, sigma2^2)), elementwise: the boxed general formula."""
    return torch.log(sigma2 / sigma1) + (sigma1**2 + (mu1 - mu2) ** 2) / (2 * sigma2**2) - 0.5


def kl_to_standard_normal(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, 1)), elementwise: the VAE's case."""
    return 0.5 * (mu**2 + logvar.exp() - logvar - 1)


mu1, sigma1, mu2, sigma2 = torch.tensor(1.0), torch.tensor(0.5), torch.tensor(-0.5), torch.tensor(2.0)
mine = kl_normal(mu1, sigma1, mu2, sigma2)
torchs = kl_divergence(Normal(mu1, sigma1), Normal(mu2, sigma2))
print(f"general formula: {mine:.4f}  torch: {torchs:.4f}  equal: {torch.allclose(mine, torchs)}")

mu, logvar = torch.tensor(1.0), torch.tensor(math.log(0.25))
special = kl_to_standard_normal(mu, logvar)
print(f"VAE case (mu=1, sigma=0.5): {special:.4f}, same as the general formula with mu2=0, sigma2=1:",
      torch.allclose(special, kl_normal(mu, torch.tensor(0.5), torch.tensor(0.0), torch.tensor(1.0))))

# %% [markdown]
# What the KL term does to one latent dimension: the two panels below vary $\mu$ (with $\sigma = 1$) and $\sigma$
# (with $\mu = 0$).

# %%
mus = torch.linspace(-3, 3, 201)
sigmas = torch.linspace(0.02, 3, 300)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
axes[0].plot(mus, kl_to_standard_normal(mus, torch.zeros_like(mus)))
axes[0].set(xlabel=r"$\mu$ (with $\sigma=1$)", ylabel="KL (nats)", title=r"KL $=\mu^2/2$: pulls the mean to 0")
axes[1].plot(sigmas, kl_to_standard_normal(torch.zeros_like(sigmas), torch.log(sigmas**2)))
axes[1].set(xlabel=r"$\sigma$ (with $\mu=0$)", ylim=(0, 4),
            title=r"$\frac{1}{2}(\sigma^2-\log\sigma^2-1)$: minimum at $\sigma=1$")
for ax in axes:
    ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()

# %% [markdown]
# The left curve is a parabola: moving the mean away from the prior's costs $\mu^2/2$ nats. The right one is
# zero at $\sigma = 1$ and rises on both sides: like $\sigma^2/2$ for a wide $q$, and without bound as
# $\sigma \to 0$ (like $-\log\sigma$, slowly, yet every halving of $\sigma$ costs another $\log 2$ nats): a very *precise*
# posterior (small $\sigma$) is expensive, which is what stops a VAE's encoder from collapsing each $q(z|x)$ onto
# a single point.
#
# ## 3. Many dimensions: a sum over dimensions
#
# The encoder outputs a vector $\mu \in \mathbb R^D$ and a vector $\log\sigma^2 \in \mathbb R^D$, and
# $q(z|x) = \mathcal N(\mu, \operatorname{diag}(\sigma^2))$, a Gaussian with a **diagonal** covariance: its
# coordinates are independent, $q(z) = \prod_{j=1}^D q_j(z_j)$. The prior $\mathcal N(0, I)$ factorizes too,
# $p(z) = \prod_j p_j(z_j)$. The log of a product is a sum, so
#
# $$\mathrm{KL}(q\,\|\,p) = \mathbb E_q\Big[\sum_{j=1}^D \big(\log q_j(z_j) - \log p_j(z_j)\big)\Big]
#   = \sum_{j=1}^D \mathbb E_{q_j}\big[\log q_j(z_j) - \log p_j(z_j)\big]
#   = \sum_{j=1}^D \mathrm{KL}(q_j\,\|\,p_j),$$
#
# where the middle step uses linearity of expectation and that the $j$-th term depends on $z_j$ only (so the
# other coordinates integrate to 1). With the one-dimensional result:
#
# $$\boxed{\mathrm{KL}\big(q(z|x)\,\|\,\mathcal N(0, I)\big) = \frac12\sum_{j=1}^D\big(\mu_j^2 + \sigma_j^2 - \log\sigma_j^2 - 1\big)}$$
#
# This is the KL term of every VAE in this course. In plain torch, for a batch of $B$ encoder outputs of shape
# $(B, D)$, one KL per example (sum over dimensions, as everywhere in vaelib):

# %%
def my_gaussian_kl(mu, logvar):
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per example: (B, D) -> (B,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(dim=-1)


B, D = 6, 4
mu = torch.randn(B, D)
logvar = torch.randn(B, D)
my_kl = my_gaussian_kl(mu, logvar)

q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)             # event = the whole latent vector
p = Independent(Normal(torch.zeros(D), torch.ones(D)), 1)
ok = torch.allclose(my_kl, vaelib.kl.gaussian_kl(mu, logvar)) and torch.allclose(my_kl, kl_divergence(q, p))
assert ok
print("shape:", tuple(my_kl.shape))
print("matches vaelib.kl.gaussian_kl and torch.distributions.kl_divergence:", ok)
print("sum of the per-dimension KLs:",
      torch.allclose(my_kl, vaelib.kl.gaussian_kl_per_dim(mu, logvar).sum(-1)))

# %% [markdown]
# From here on the course uses `vaelib.kl.gaussian_kl` (per example, summed over dimensions) and
# `vaelib.kl.gaussian_kl_per_dim` (one value per dimension, which section 6 needs).
#
# ## 4. When there is no closed form: the Monte-Carlo estimate
#
# The closed form needs both distributions to be Gaussian. With a learned prior, a mixture, or a flow, it does not
# exist, but the definition is an expectation under $q$, and an expectation can always be estimated by sampling:
#
# $$\mathrm{KL}(q\,\|\,p) \approx \widehat{\mathrm{KL}}_n = \frac1n\sum_{i=1}^n \big(\log q(z_i) - \log p(z_i)\big),
#   \qquad z_i \sim q \text{ independently}.$$
#
# Each term has expectation $\mathrm{KL}(q\,\|\,p)$, so the estimate is **unbiased**. The terms are independent with
# some variance $s^2$, so $\operatorname{Var}\widehat{\mathrm{KL}}_n = s^2/n$ and the typical error (the standard
# deviation) is $s/\sqrt n$: to get one more correct digit you need 100 times more samples.
# A single term can be negative, and so can the average of finitely many (when the KL is small, it sometimes
# is); only the expectation, the KL itself, is guaranteed to be $\ge 0$.
#
# We write the estimator in plain torch, with the log-density of a diagonal Gaussian spelled out
# ($\log \mathcal N(z;\mu,\operatorname{diag}\sigma^2) = -\frac12\sum_j\big[(z_j-\mu_j)^2/\sigma_j^2 + \log\sigma_j^2 + \log 2\pi\big]$),
# and compare it with `vaelib.kl.monte_carlo_kl` on the same samples. We use double precision so that the error
# we measure below is the Monte-Carlo error, not rounding.

# %%
def log_normal_diag(z, mu, logvar):
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * ((z - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)


def my_monte_carlo_kl(z, mu, logvar):
    """Average of log q(z) - log p(z) over the samples z (S, ..., D) of q; p = N(0, I)."""
    zeros = torch.zeros_like(mu)
    return (log_normal_diag(z, mu, logvar) - log_normal_diag(z, zeros, zeros)).mean(0)


mu_q = torch.tensor([[0.5, -1.0, 0.0, 1.5, 0.3]], dtype=torch.float64)   # one q in D = 5 dimensions
logvar_q = torch.tensor([[-1.0, 0.0, -2.0, 0.5, -0.5]], dtype=torch.float64)
q = Independent(Normal(mu_q, torch.exp(0.5 * logvar_q)), 1)
p = Independent(Normal(torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)), 1)
true_kl = vaelib.kl.gaussian_kl(mu_q, logvar_q).item()

torch.manual_seed(0)
z = q.sample((1000,))                                # (1000, 1, 5)
mine = my_monte_carlo_kl(z, mu_q, logvar_q)
ok = torch.allclose(mine, vaelib.kl.monte_carlo_kl(q, p, z=z))
assert ok
print("matches vaelib.kl.monte_carlo_kl:", ok)
print(f"closed form {true_kl:.3f} nats, Monte Carlo with 1000 samples {mine.item():.2f} nats")

# %% [markdown]
# How fast does the estimate converge? For each $n$ we repeat the estimate 100 times, measure its root-mean-square
# error against the closed form, and compare with the prediction $s/\sqrt n$, where $s$ is the standard deviation of
# a single term $\log q(z) - \log p(z)$ (itself estimated from 200,000 samples).

# %%
torch.manual_seed(0)
ns = [1, 3, 10, 30, 100, 300, 1000, 3000, 10000]
repeats = 100
rmse = []
for n in ns:
    z = q.sample((n, repeats))                                  # (n, repeats, 1, 5)
    estimates = (q.log_prob(z) - p.log_prob(z)).mean(0)         # (repeats, 1)
    rmse.append((estimates - true_kl).pow(2).mean().sqrt().item())
z = q.sample((200_000,))
s = (q.log_prob(z) - p.log_prob(z)).std().item()

slope = torch.linalg.lstsq(torch.stack([torch.log(torch.tensor(ns, dtype=torch.float64)),
                                        torch.ones(len(ns), dtype=torch.float64)], 1),
                           torch.log(torch.tensor(rmse, dtype=torch.float64)).unsqueeze(1)).solution[0].item()
print(f"standard deviation of one term s = {s:.1f} nats")
print(f"slope of log(error) against log(n): {slope:.1f}  (1/sqrt(n) predicts -0.5)")

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.8))
ax.loglog(ns, rmse, "o-", label="Monte-Carlo error (RMSE over 100 repeats)")
ax.loglog(ns, [s / math.sqrt(n) for n in ns], "k--", label=r"$s/\sqrt{n}$")
ax.set(xlabel="number of samples n", ylabel="error (nats)",
       title=f"Monte-Carlo KL estimate, true KL = {true_kl:.2f} nats")
ax.grid(alpha=0.3, which="both")
ax.legend(loc="lower left")
plt.show()

# %% [markdown]
# On log-log axes the error is a straight line of slope $-1/2$ lying right on the dashed $s/\sqrt n$ prediction:
# 100 times more samples buy one more digit. This is why vaelib uses the closed form whenever the prior is
# $\mathcal N(0, I)$, and falls back on the (unbiased but noisy) estimate only otherwise; during training a single
# sample per image is used and the noise averages out over many steps.
#
# ## 5. Forward versus reverse KL
#
# Suppose the target $p$ is *bimodal*, an equal mixture of $\mathcal N(-3, 1)$ and $\mathcal N(3, 1)$, and we can
# only use a single Gaussian $q = \mathcal N(m, s^2)$ to approximate it. Which $q$ is "closest" depends on the direction:
#
# - **Forward KL**, $\mathrm{KL}(p\,\|\,q) = \mathbb E_p[\log p - \log q]$: the expectation is under $p$, so wherever
#   $p$ has mass, $q$ must not be small (else $-\log q$ explodes). Minimizing it over $q$ is maximizing $\mathbb E_p[\log q]$,
#   i.e. maximum likelihood, and for a Gaussian $q$ the answer is **moment matching**: $m = \mathbb E_p[z] = 0$,
#   $s^2 = \operatorname{Var}_p(z) = 1 + 3^2 = 10$. The fit is **mass-covering**: wide enough for both bumps.
# - **Reverse KL**, $\mathrm{KL}(q\,\|\,p) = \mathbb E_q[\log q - \log p]$: the expectation is under $q$, so $q$ is
#   punished for putting mass where $p$ is small, and not at all for ignoring part of $p$. The fit is
#   **mode-seeking**: it sits on one bump.
#
# The VAE minimizes the *reverse* direction, $\mathrm{KL}(q(z|x)\,\|\,p(z|x))$ (notebook 02), so its approximate
# posterior tends to lock onto one mode and to be too narrow rather than too wide.
#
# We compute both KLs by numerical integration on a fine grid (the integrands are smooth, so the trapezoid rule is
# accurate) and minimize each over $(m, \log s)$ with gradient descent. Optimizing $\log s$ instead of $s$ keeps $s$
# positive whatever the step (notebook 04 says more).

# %%
grid = torch.linspace(-12, 12, 1201, dtype=torch.float64)
target = MixtureSameFamily(Categorical(torch.tensor([0.5, 0.5], dtype=torch.float64)),
                           Normal(torch.tensor([-3.0, 3.0], dtype=torch.float64), torch.ones(2, dtype=torch.float64)))
log_p = target.log_prob(grid)


def log_normal(z, m, log_s):
    """log N(z; m, s^2), written out (faster than building a distribution at every step)."""
    return -0.5 * ((z - m) / log_s.exp()) ** 2 - log_s - 0.5 * math.log(2 * math.pi)


def forward_kl(m, log_s):
    """KL(p || q) by the trapezoid rule on the grid (m, log_s may be tensors that broadcast)."""
    return torch.trapezoid(log_p.exp() * (log_p - log_normal(grid, m, log_s)), grid)


def reverse_kl(m, log_s):
    """KL(q || p) by the trapezoid rule on the grid."""
    log_q = log_normal(grid, m, log_s)
    return torch.trapezoid(log_q.exp() * (log_q - log_p), grid)


def fit_gaussian(kl_fn, m0, log_s0=0.0, steps=500, lr=0.05):
    """Minimize kl_fn(m, log s) over (m, log s) with Adam from (m0, log_s0); return m, s and the final KL."""
    m = torch.tensor(m0, dtype=torch.float64, requires_grad=True)
    log_s = torch.tensor(log_s0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([m, log_s], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = kl_fn(m, log_s)
        loss.backward()
        opt.step()
    return m.item(), log_s.exp().item(), kl_fn(m, log_s).item()


m_fwd, s_fwd, kl_fwd = fit_gaussian(forward_kl, m0=2.5)
m_rev, s_rev, kl_rev = fit_gaussian(reverse_kl, m0=2.5)
# abs(): m_fwd is 0 up to rounding noise, whose sign would print as "-0.00" on some machines
print(f"forward KL(p||q) fit: m = {abs(m_fwd):.2f}, s = {s_fwd:.2f}   (moment matching: m = 0, s = sqrt(10) = {math.sqrt(10):.2f})")
print(f"reverse KL(q||p) fit: m = {m_rev:.2f}, s = {s_rev:.2f}   (one bump: m = 3, s = 1)")
print(f"reverse KL at its minimum: {kl_rev:.3f} nats  (log 2 = {math.log(2):.3f})")

# %% [markdown]
# Started at $m = 2.5$, the two fits land where the reasoning said. The reverse KL at its minimum is close to $\log 2$,
# just below it (the two numbers printed above): $q$ covers one of the two equally likely bumps, where
# $p \approx q/2$, so "forgetting" half of $p$ costs about $\log 2$ nats, one bit. It is a little less because the
# bumps overlap slightly: under $q$, the tail of the other bump adds a little to $p$.
#
# The reverse objective has a catch, though. Started at $m = 0.5$ instead, gradient descent stops somewhere else:

# %%
m_mid, s_mid, kl_mid = fit_gaussian(reverse_kl, m0=0.5)
print(f"reverse KL(q||p) fit from m = 0.5: m = {abs(m_mid):.2f}, s = {s_mid:.2f}, KL = {kl_mid:.3f} nats (worse than log 2)")

# %% [markdown]
# A wide $q$ straddling both bumps is a *local* minimum of the reverse KL: worse than sitting on one bump, but every small
# change of $m$ or $s$ makes it worse still. Below, the three fits drawn over the target, and the two objectives as a
# function of the mean $m$ (for each $m$, the best $s$ on a grid of 100 values):

# %%
ms = torch.linspace(-6, 6, 97, dtype=torch.float64)
log_ss = torch.linspace(math.log(0.3), math.log(6.0), 100, dtype=torch.float64)
# every (m, s) pair at once, shapes (97, 1, 1) and (1, 100, 1) against the grid: KLs (97, 100), best s per m
profile_fwd = forward_kl(ms[:, None, None], log_ss[None, :, None]).amin(dim=1)
profile_rev = reverse_kl(ms[:, None, None], log_ss[None, :, None]).amin(dim=1)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
axes[0].fill_between(grid, log_p.exp(), color="0.85", label="target p (two bumps)")
axes[0].plot(grid, log_normal(grid, m_fwd, torch.tensor(s_fwd).log()).exp(), lw=2, label="forward KL(p||q): mass-covering")
axes[0].plot(grid, log_normal(grid, m_rev, torch.tensor(s_rev).log()).exp(), lw=2, label="reverse KL(q||p): mode-seeking")
axes[0].plot(grid, log_normal(grid, m_mid, torch.tensor(s_mid).log()).exp(), "C1:", lw=1.5,
             label="reverse KL, local minimum")
axes[0].set(xlim=(-9, 9), xlabel="z", ylabel="density", title="best single Gaussian q")
axes[0].legend(fontsize=8)
axes[1].plot(ms, profile_fwd, label="forward KL(p||q)")
axes[1].plot(ms, profile_rev, label="reverse KL(q||p)")
axes[1].axhline(math.log(2), color="0.5", lw=0.8, ls="--")
axes[1].set(xlabel="mean m of q", ylabel="KL (nats), best s for each m", title="the objectives along m", ylim=(0, 3))
axes[1].legend(fontsize=8)
for ax in axes:
    ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()

# %% [markdown]
# Left: the forward fit (blue) is a wide Gaussian centred between the bumps, with its peak where the target has almost
# no mass; the reverse fit (orange) ignores the left bump and sits on the right one, with (nearly) that bump's mean
# and width, as printed above, but twice its height: $q$ is a whole distribution, while the bump holds only half of
# the target's mass. The dotted orange curve is the reverse KL's local minimum. Right: the forward objective has a single minimum at $m = 0$, while the reverse objective
# has its two best minima on the bumps, at $\log 2$ (dashed line), plus a shallower one at $m = 0$, separated from them by
# barriers near $m = \pm 2$. Reverse-KL fits depend on where they start; the VAE's encoder, which is fitted by the reverse
# KL, inherits this.
#
# ## 6. The KL of a trained VAE, one latent dimension at a time
#
# The KL term of a VAE is a sum over latent dimensions, and averaging $\mathrm{KL}_j$ over the data tells how many nats
# each dimension carries about the image. A dimension with average KL $\approx 0$ has $q(z_j|x) = p(z_j)$ for every
# image: the encoder writes nothing into it and the decoder learns to ignore it. Burda et al. (2015) call a dimension
# **active** when its posterior mean moves with the input:
#
# $$A_j = \operatorname{Cov}_x\big(\mathbb E_{q(z|x)}[z_j]\big) = \operatorname{Var}_x(\mu_j(x)) > 0.01 .$$
#
# We load the pretrained convolutional VAE (latent size 20, Bernoulli likelihood, 30 epochs on MNIST; if the file is
# missing, or with `TRAIN_FROM_SCRATCH = True`, a short training run replaces it) and evaluate it on the test set with
# `vaelib.evaluation.evaluate_elbo`, which returns the KL per dimension and the number of active units.

# %%
# NBVAL_IGNORE_OUTPUT
test = vaelib.MNIST("test", binarize="dynamic", subset=2000 if FAST else None)
train = vaelib.MNIST("train", binarize="dynamic", subset=5000 if FAST else None)   # only used to (re)train
model, _ = vaelib.course.pretrained.load_or_train("conv_vae", train, test,
                                                  train_from_scratch=TRAIN_FROM_SCRATCH, device=device)
model = model.to(device).eval()
print(test)
print("latent dimensions:", model.latent_dim)

# %%
ev = vaelib.evaluation.evaluate_elbo(model, test, seed=0)
kl_per_dim = torch.tensor(ev["kl_per_dim"])
print(f"test ELBO {ev['elbo']:.0f} nats = reconstruction {ev['reconstruction']:.0f} - KL {ev['kl']:.0f}")
print(f"the KL is the sum of the per-dimension KLs: {kl_per_dim.sum():.0f} nats")
print(f"active units: {ev['active_units']} of {model.latent_dim}")

# %% [markdown]
# The active-unit count is simple enough to write out: encode the test images, take the variance of each coordinate of
# the posterior mean over the images, and count the coordinates above the threshold. We compare with
# `vaelib.evaluation.active_units` on the same binarized images (same seed).

# %%
# NBVAL_IGNORE_OUTPUT
with torch.no_grad():
    torch.manual_seed(1)
    mu_x = torch.cat([model.encoder(x)[0] for x, _ in test.batches(1000)])   # (N, D) posterior means
activity = mu_x.var(dim=0)                                                      # Var_x(mu_j(x)), one per dimension
my_active = int((activity > 0.01).sum())
torch.manual_seed(1)
ok = my_active == vaelib.evaluation.active_units(model, test)
assert ok
print("posterior means:", tuple(mu_x.shape))
print("matches vaelib.evaluation.active_units:", ok)

# %%
order = torch.argsort(kl_per_dim, descending=True)
active = activity[order] > 0.01
fig, ax = plt.subplots(figsize=(8, 3.4))
ax.bar(range(len(order)), kl_per_dim[order], color=["C0" if a else "C3" for a in active])
inactive = [i for i, a in enumerate(active) if not a]
ax.plot(inactive, [0.05] * len(inactive), "x", color="C3", ms=8, label="inactive unit (KL $\\approx$ 0)")
ax.set_xticks(range(len(order)), [str(int(j)) for j in order])
ax.set(xlabel="latent dimension j (sorted by KL)", ylabel="average KL_j (nats)",
       title=f"pretrained conv VAE: {ev['active_units']} of {model.latent_dim} units active")
ax.grid(alpha=0.3, axis="y")
ax.legend()
plt.show()

# %% [markdown]
# Sorted, the bars show how unevenly the model uses its code: the 16 active dimensions carry from 0.7 nats (the smallest,
# printed below) to between 2.5 and 3 nats (the two tallest bars), and the 4 at the right carry essentially none (red crosses: their posterior mean does not move with the image, so they
# are inactive). The model had 20 dimensions to spend and decided, through the KL penalty, that only the blue ones were
# worth their price; the others were *pruned* to the prior. When **all** dimensions end up like the red ones the decoder
# ignores $z$ completely: this is **posterior collapse**, the subject of notebook 06.
#
# The two criteria agree on this model, and they should: a dimension whose mean does not move and whose variance
# matches the prior has KL near 0.

# %%
print("KL of the inactive dimensions (nats):", [round(max(v, 0.0), 2) for v in kl_per_dim[activity <= 0.01].tolist()])
print("smallest KL among the active ones (nats):", round(kl_per_dim[activity > 0.01].min().item(), 1))

# %% [markdown]
# ## Key takeaways
#
# - $\mathrm{KL}(q\,\|\,p) = \mathbb E_q[\log q - \log p] \ge 0$, with equality only for $q = p$; it is not symmetric.
# - For the VAE's diagonal Gaussian against $\mathcal N(0, I)$ it has a closed form, a sum over latent dimensions:
#   $\frac12\sum_j(\mu_j^2 + \sigma_j^2 - \log\sigma_j^2 - 1)$ (`vaelib.kl.gaussian_kl`). It pulls means to 0 and
#   variances to 1, and makes very narrow posteriors expensive.
# - Without a closed form, the Monte-Carlo estimate is unbiased and its error falls like $1/\sqrt n$.
# - Forward KL (maximum likelihood) covers all the mass; reverse KL (what variational inference and the VAE minimize)
#   seeks a mode and may ignore the rest.
# - In a trained VAE the KL per dimension shows which latent dimensions carry information (active units) and which are
#   pruned to the prior.
#
# ## Exercises
#
# Each exercise names its tier: *warm-up* (apply what a section showed), *core* (the notebook's main idea in a
# new setting), *stretch* (goes beyond the notebook; optional).
#
# **Exercise 1 (warm-up): two diagonal Gaussians.** Write `kl_diag(mu_q, logvar_q, mu_p, logvar_p)`: the KL between two diagonal Gaussians with *any*
# means and variances, summed over the last dimension, from the general one-dimensional formula of section 2, and
# run `check_kl_diag` on it. Then, in the next cell, check it yourself against `torch.distributions.kl_divergence`
# on random inputs of shape `(8, 5)`, and check that with `mu_p = 0, logvar_p = 0` it reduces to
# `vaelib.kl.gaussian_kl`.

# %%
from vaelib.course.checks import check_kl_diag


def kl_diag(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, diag e^logvar_q) || N(mu_p, diag e^logvar_p)), summed over the last dimension."""
    ### BEGIN SOLUTION
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1).sum(-1)
    ### END SOLUTION


check_kl_diag(kl_diag)

# %%
### BEGIN SOLUTION
g = torch.Generator().manual_seed(0)
mu_q, logvar_q, mu_p, logvar_p = (torch.randn(8, 5, generator=g) for _ in range(4))
reference = kl_divergence(Independent(Normal(mu_q, (0.5 * logvar_q).exp()), 1),
                          Independent(Normal(mu_p, (0.5 * logvar_p).exp()), 1))
assert torch.allclose(kl_diag(mu_q, logvar_q, mu_p, logvar_p), reference, atol=1e-5)
zeros = torch.zeros_like(mu_q)
assert torch.allclose(kl_diag(mu_q, logvar_q, zeros, zeros), vaelib.kl.gaussian_kl(mu_q, logvar_q))
print("kl_diag matches torch and reduces to vaelib.kl.gaussian_kl: True")
### END SOLUTION

# %% [markdown]
# **Exercise 2 (core): when does mode-seeking start?** Replace the target of section 5 by an equal mixture of
# $\mathcal N(-a, 1)$ and $\mathcal N(a, 1)$ and find the *global* minimum of the reverse KL by brute force on a grid of
# $(m, s)$ values (no gradient descent, so no local minima to fall into). Write `best_reverse_fit(a, m_grid, log_s_grid)`:
# the reverse KL for every pair of a mean in `m_grid` and a log-std in `log_s_grid` (integrated on `grid`, as in
# section 5), returning the best `(m, s, kl)` with `s` the standard deviation; check it with
# `check_best_reverse_fit`. Then, in the next cell, choose the two grids and print the
# best $m$, $s$ and KL for each $a \in \{1, 2, 2.5, 3, 4\}$. From which separation does the best single Gaussian sit
# on one bump rather than in the middle? (Hint: the mixture itself has a single mode at 0 as long as $a \le 1$.)

# %%
from vaelib.course.checks import check_best_reverse_fit


def best_reverse_fit(a, m_grid, log_s_grid):
    ### BEGIN SOLUTION
    mix = MixtureSameFamily(Categorical(torch.tensor([0.5, 0.5], dtype=torch.float64)),
                            Normal(torch.tensor([-a, a], dtype=torch.float64), torch.ones(2, dtype=torch.float64)))
    log_p_a = mix.log_prob(grid)
    log_q = log_normal(grid, m_grid[:, None, None], log_s_grid[None, :, None])    # (M, S, grid): every (m, s)
    kls = torch.trapezoid(log_q.exp() * (log_q - log_p_a), grid)                    # (M, S)
    i, j = divmod(int(kls.argmin()), len(log_s_grid))
    return m_grid[i].item(), log_s_grid[j].exp().item(), kls[i, j].item()
    ### END SOLUTION


check_best_reverse_fit(best_reverse_fit)

# %%
### BEGIN SOLUTION
m_grid = torch.linspace(0, 6, 61, dtype=torch.float64)       # m >= 0 suffices: the target is symmetric
log_s_grid = torch.linspace(math.log(0.3), math.log(6.0), 100, dtype=torch.float64)
for a in [1.0, 2.0, 2.5, 3.0, 4.0]:
    m_best, s_best, kl_best = best_reverse_fit(a, m_grid, log_s_grid)
    print(f"a = {a}: best q has m = {m_best:.2f} (or its mirror image -m), s = {s_best:.2f}, KL = {kl_best:.2f} nats")
# Up to a = 2.5 the best single Gaussian is centred at 0 and widens with a: the two bumps overlap enough that covering
# both is cheaper than dropping one. Between a = 2.5 and a = 3 the optimum jumps onto one bump (m close to a, s close to 1)
# and its KL approaches log 2 = 0.69: past that separation, ignoring half of p is the cheapest option.
### END SOLUTION

# %% [markdown]
# **Exercise 3 (core, written): which KL does the encoder minimize?** The VAE's encoder is trained by minimizing $\mathrm{KL}(q(z|x)\,\|\,p(z|x))$ (through the ELBO).
# Using section 5, say what this direction implies for the approximate posterior $q(z|x)$ when the true posterior
# $p(z|x)$ has several modes, and whether the posterior variances a VAE reports tend to be too small or too large.
# Why can a VAE not simply minimize the forward direction instead?
#
# ### BEGIN SOLUTION
# Reverse KL is mode-seeking: where $p(z|x)$ is multimodal, $q(z|x)$ (a single Gaussian) places itself on one mode and
# assigns almost no mass to the others, and even on a single mode it prefers to be too narrow rather than to spill mass
# where $p(z|x)$ is small. So the VAE's posterior variances tend to *underestimate* the true posterior uncertainty.
# The forward direction $\mathbb E_{p(z|x)}[\dots]$ would need samples from the true posterior $p(z|x)$, which is exactly
# what we cannot compute; the reverse direction only needs samples from $q$, which we control.
# ### END SOLUTION


# %% [markdown]
# **Exercise 4 (stretch): a KL with no closed form.** Learned priors are often mixtures, such as the VampPrior
# (Tomczak and Welling 2018): $p(z) = \sum_{k=1}^K w_k\,\mathcal N\big(z;\, m_k, \operatorname{diag} e^{v_k}\big)$. The KL
# from the encoder's Gaussian to such a prior has no closed form, so it is estimated by Monte Carlo (section 4).
# Write `kl_to_mixture_mc(mu, logvar, eps, weights, means, logvars)`: for $B$ examples with
# $q = \mathcal N(\mu, \operatorname{diag} e^{\text{logvar}})$ (`mu`, `logvar` of shape `(B, D)`) and the mixture prior
# (`weights` of shape `(K,)`, `means` and `logvars` of shape `(K, D)`), draw $z = \mu + e^{\text{logvar}/2}\,\varepsilon$
# from the given noise `eps` of shape `(S, B, D)` and return the average over the $S$ samples of
# $\log q(z) - \log p(z)$, shape `(B,)`. Check it with `check_kl_to_mixture_mc`. Then, in the next cell: (i) with a
# single standard-normal component ($K = 1$), compare your estimate from 10,000 samples with
# `vaelib.kl.gaussian_kl`; (ii) for an equal mixture of four components in $D = 2$, with means $(\pm 3, \pm 3)$ and
# unit variances, and $q$ equal to one of the components, estimate the KL and compare it with $\log 4$. Why that
# number?

# %%
from vaelib.course.checks import check_kl_to_mixture_mc


def kl_to_mixture_mc(mu, logvar, eps, weights, means, logvars):
    ### BEGIN SOLUTION
    z = mu + torch.exp(0.5 * logvar) * eps                                     # (S, B, D): samples of q
    log_q = log_normal_diag(z, mu, logvar)                                     # (S, B)
    log_components = log_normal_diag(z[..., None, :], means, logvars)          # (S, B, K): each summed over D first
    log_p = torch.logsumexp(log_components + weights.log(), dim=-1)            # log sum_k w_k N_k(z), in log space
    return (log_q - log_p).mean(0)
    ### END SOLUTION


check_kl_to_mixture_mc(kl_to_mixture_mc)

# %%
### BEGIN SOLUTION
g = torch.Generator().manual_seed(0)
mu_t, logvar_t = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
one = kl_to_mixture_mc(mu_t, logvar_t, torch.randn(10_000, 3, 5, generator=g), torch.ones(1), torch.zeros(1, 5),
                       torch.zeros(1, 5))
print("K = 1, N(0, I): Monte Carlo", [round(v, 2) for v in one.tolist()],
      "closed form", [round(v, 2) for v in vaelib.kl.gaussian_kl(mu_t, logvar_t).tolist()])
corners = torch.tensor([[3.0, 3.0], [3.0, -3.0], [-3.0, 3.0], [-3.0, -3.0]])
kl_corner = kl_to_mixture_mc(corners[:1], torch.zeros(1, 2), torch.randn(10_000, 1, 2, generator=g),
                             torch.full((4,), 0.25), corners, torch.zeros(4, 2))
print(f"q = one of four equal components: {kl_corner.item():.3f} nats, log 4 = {math.log(4):.3f}")
# Under q the other three components are far away, so p(z) is about q(z) / 4 wherever q has its samples, and
# log q - log p is about log 4 at every sample: the two-dimensional version of section 5's log 2. The KL to a
# mixture measures which share of the prior's mass the posterior occupies, not only how far apart they are.
### END SOLUTION

# %% [markdown]
# ## References
#
# - Burda, Y., Grosse, R. and Salakhutdinov, R. (2015). Importance weighted autoencoders. *International
#   Conference on Learning Representations (ICLR) 2016*. [arXiv:1509.00519](https://arxiv.org/abs/1509.00519)
# - Tomczak, J. M. and Welling, M. (2018). VAE with a VampPrior. *Proceedings of the 21st International Conference
#   on Artificial Intelligence and Statistics (AISTATS)*, PMLR 84. [arXiv:1705.07120](https://arxiv.org/abs/1705.07120)
