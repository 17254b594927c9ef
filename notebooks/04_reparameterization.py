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
# # 04 · The reparameterization trick: gradients through sampling
#
# **Learning objectives**
#
# - Explain why a sample $z \sim q_\phi(z)$ carries no gradient with respect to $\phi$, and see it in torch
#   (`z = q.sample()` has no `grad_fn`).
# - Derive the two classic estimators of $\nabla_\phi\,\mathbb E_{q_\phi}[f(z)]$: the **score-function**
#   (REINFORCE) estimator and the **pathwise** (reparameterization) estimator.
# - Measure their variances on a problem with a known answer and see why VAEs use the pathwise one.
# - Write $z = \mu + \sigma\,\varepsilon$ in plain torch and check it against `vaelib.reparameterization.reparameterize`
#   and against `torch.distributions.Normal.rsample`.
# - Explain why the encoder outputs a **log-variance** rather than a variance or a standard deviation.
#
# **Prerequisites**
#
# - Notebooks 02 (the ELBO, whose reconstruction term is an expectation under $q(z|x)$) and 03 (the KL term).
# - Maths: expectations, the Gaussian density, the chain rule, $\frac{d}{dx}\log g(x) = g'(x)/g(x)$, the variance of
#   an average of $n$ independent terms ($\operatorname{Var}/n$).
# - PyTorch: autograd (`requires_grad`, `backward`, `.grad`).

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import torch
from torch.distributions import Normal

import vaelib
import vaelib.course.pretrained
import vaelib.reparameterization

FAST = vaelib.course.fast_mode()      # True when VAELIB_FAST=1: the smoke-test mode that CI uses
print(vaelib.course.mode_name())    # what made the outputs below: learner mode, or CI's fast mode
TRAIN_FROM_SCRATCH = False     # set True to retrain instead of loading pretrained/ checkpoints
torch.manual_seed(0)
device = "cpu"

# %% [markdown]
# ## 1. The problem: the gradient of an expectation
#
# The ELBO's reconstruction term is $\mathbb E_{z \sim q_\phi(z|x)}[\log p_\theta(x|z)]$. To train the encoder we need its
# gradient with respect to the encoder's parameters $\phi$, and $\phi$ sits in the *distribution* we average over, not in
# the function being averaged. The natural recipe, "draw $z$, compute the loss, call `backward()`", fails: a sample is
# just a number, and autograd has no record of how it depended on $\mu$ and $\sigma$.

# %%
mu = torch.tensor(2.0, requires_grad=True)
sigma = torch.tensor(1.0, requires_grad=True)
q = Normal(mu, sigma)
z = q.sample((5,))
print("z.requires_grad:", z.requires_grad, "  z.grad_fn:", z.grad_fn)
loss = (z**2).mean()
print("loss.requires_grad:", loss.requires_grad)
try:
    loss.backward()
except RuntimeError:
    print("loss.backward() raises RuntimeError: there is no graph back to mu and sigma")

# %% [markdown]
# `sample()` runs without gradient tracking: the five numbers in `z` are cut off from `mu` and `sigma`. Yet the *average*
# of $z^2$ obviously depends on $\mu$. We need another way to write the gradient.
#
# **A test problem with a known answer.** Take $q = \mathcal N(\mu, \sigma^2)$ and $f(z) = z^2$. Then
# $\mathbb E_q[z^2] = \operatorname{Var}(z) + (\mathbb E z)^2 = \sigma^2 + \mu^2$, so
#
# $$\frac{\partial}{\partial\mu}\,\mathbb E_q[f(z)] = 2\mu, \qquad \frac{\partial}{\partial\sigma}\,\mathbb E_q[f(z)] = 2\sigma .$$
#
# We use $\mu = 2$, $\sigma = 1$: the exact gradient with respect to $\mu$ is $4$.

# %%
mu0, sigma0 = 2.0, 1.0


def f(z):
    return z**2


def f_prime(z):
    return 2 * z


exact = 2 * mu0
print("exact gradient d/dmu E[z^2] =", exact)

# %% [markdown]
# ## 2. The score-function (REINFORCE) estimator
#
# Write the expectation as an integral and move the derivative inside (allowed for smooth densities):
#
# $$\nabla_\mu\,\mathbb E_{q_\mu}[f(z)] = \nabla_\mu \int f(z)\,q_\mu(z)\,dz = \int f(z)\,\nabla_\mu q_\mu(z)\,dz .$$
#
# This is no longer an expectation (there is no $q_\mu(z)$ in front), but the **log-derivative trick**
# $\nabla_\mu q_\mu(z) = q_\mu(z)\,\nabla_\mu \log q_\mu(z)$ (the chain rule for $\log$, read backwards) makes it one again:
#
# $$\nabla_\mu\,\mathbb E_{q_\mu}[f(z)] = \int q_\mu(z)\,f(z)\,\nabla_\mu \log q_\mu(z)\,dz
#   = \mathbb E_{q_\mu}\big[f(z)\,\nabla_\mu \log q_\mu(z)\big] .$$
#
# $\nabla_\mu \log q_\mu(z)$ is called the *score*. For a Gaussian, $\log q = -\frac{(z-\mu)^2}{2\sigma^2} - \log\sigma - \frac12\log 2\pi$,
# so the score is $(z-\mu)/\sigma^2$, and averaging over $n$ samples gives the **score-function estimator**
#
# $$\hat g_\text{SF} = \frac1n\sum_{i=1}^n f(z_i)\,\frac{z_i - \mu}{\sigma^2}, \qquad z_i \sim \mathcal N(\mu, \sigma^2).$$
#
# It needs only the *values* of $f$, never its derivative: it works for a non-differentiable $f$ and for discrete $z$,
# which is why reinforcement learning uses it. In torch one gets it from autograd through a *surrogate* whose gradient
# is the estimator: $\frac1n\sum_i \text{stop\_grad}(f(z_i))\,\log q_\mu(z_i)$. Both ways, on the same samples:

# %%
n = 10
torch.manual_seed(0)
z = Normal(mu0, sigma0).sample((n,))

g_sf_formula = (f(z) * (z - mu0) / sigma0**2).mean()              # the formula

mu = torch.tensor(mu0, requires_grad=True)
surrogate = (f(z).detach() * Normal(mu, sigma0).log_prob(z)).mean()  # autograd on the surrogate
surrogate.backward()
ok = torch.allclose(mu.grad, g_sf_formula)
assert ok
print(f"score-function estimate with n={n}: {g_sf_formula:.2f} (exact {exact})")
print("formula matches autograd on the surrogate:", ok)

# %% [markdown]
# ## 3. The pathwise (reparameterization) estimator
#
# A sample of $\mathcal N(\mu, \sigma^2)$ can be produced in two steps: draw $\varepsilon \sim \mathcal N(0, 1)$, which does
# not depend on anything, then set
#
# $$z = \mu + \sigma\,\varepsilon .$$
#
# ($z$ is Gaussian with mean $\mu + \sigma\cdot 0 = \mu$ and variance $\sigma^2\cdot 1$.) The expectation over $q$ becomes an
# expectation over the fixed distribution of $\varepsilon$, so the gradient can go inside, and the chain rule does the rest:
#
# $$\nabla_\mu\,\mathbb E_{q_\mu}[f(z)] = \nabla_\mu\,\mathbb E_{\varepsilon}[f(\mu + \sigma\varepsilon)]
#   = \mathbb E_\varepsilon\big[f'(\mu + \sigma\varepsilon)\cdot 1\big],
#   \qquad \nabla_\sigma\,\mathbb E_{q}[f(z)] = \mathbb E_\varepsilon\big[f'(\mu + \sigma\varepsilon)\,\varepsilon\big].$$
#
# The **pathwise estimator** averages $f'(z_i)$ over samples; for $f(z) = z^2$, $\hat g_\text{PW} = \frac1n\sum_i 2z_i$.
# It uses the derivative of $f$ (so $f$ must be differentiable, and $z$ continuous), and autograd computes it for free:
# the sample is now an ordinary differentiable function of $\mu$ and $\sigma$.

# %%
torch.manual_seed(0)
eps = torch.randn(n)
mu = torch.tensor(mu0, requires_grad=True)
z = mu + sigma0 * eps                         # the reparameterized sample: it has a grad_fn
f(z).mean().backward()

g_pw_formula = f_prime(mu0 + sigma0 * eps).mean()
ok = torch.allclose(mu.grad, g_pw_formula)
assert ok
print("z has a grad_fn:", z.grad_fn is not None)
print(f"pathwise estimate with n={n}: {g_pw_formula:.2f} (exact {exact})")
print("formula matches autograd through z = mu + sigma * eps:", ok)

# %% [markdown]
# Both estimators are **unbiased**: their expectation is the exact gradient. With many samples both land on $4$:

# %%
torch.manual_seed(0)
z = Normal(mu0, sigma0).sample((1_000_000,))
print(f"score function, 1e6 samples: {(f(z) * (z - mu0) / sigma0**2).mean():.1f}")
print(f"pathwise,       1e6 samples: {f_prime(z).mean():.1f}")

# %% [markdown]
# ## 4. Same mean, very different variances
#
# In training we use one sample (or a few) per step, so what matters is the **variance** of the estimate. For this problem it
# can be computed by hand. Write $z = \mu + \varepsilon$ ($\sigma = 1$) and use $\mathbb E\varepsilon^2 = 1$,
# $\mathbb E\varepsilon^4 = 3$, $\mathbb E\varepsilon^6 = 15$, odd moments $0$:
#
# - pathwise, one sample: $\operatorname{Var}(2z) = 4\sigma^2 = 4$;
# - score function, one sample: $f(z)(z-\mu) = (\mu+\varepsilon)^2\varepsilon = \mu^2\varepsilon + 2\mu\varepsilon^2 + \varepsilon^3$, whose mean
#   is $2\mu$ and whose second moment is $\mu^4 + 4\mu^2\cdot 3 + 15 + 2\mu^2\cdot 3 = \mu^4 + 18\mu^2 + 15$, so
#   $\operatorname{Var} = \mu^4 + 14\mu^2 + 15 = 87$ for $\mu = 2$.
#
# With $n$ samples both variances are divided by $n$. We check this by repeating each estimator many times for several $n$:

# %%
torch.manual_seed(0)
repeats = 20000
ns = [1, 4, 16, 64, 256, 1024]
var_sf, var_pw = [], []
for n in ns:
    z = Normal(mu0, sigma0).sample((repeats, n))          # `repeats` independent estimates of n samples each
    g_sf = (f(z) * (z - mu0) / sigma0**2).mean(1)
    g_pw = f_prime(z).mean(1)
    var_sf.append(g_sf.var().item())
    var_pw.append(g_pw.var().item())
predicted_sf = mu0**4 + 14 * mu0**2 + 15
print(f"one sample: variance score function {var_sf[0]:.0f} (predicted {predicted_sf:.0f}), "
      f"pathwise {var_pw[0]:.1f} (predicted {4 * sigma0**2:.0f})")
print(f"ratio at n = {ns[-1]}: {var_sf[-1] / var_pw[-1]:.0f}")

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.8))
ax.loglog(ns, var_sf, "o-", label="score function (REINFORCE)")
ax.loglog(ns, var_pw, "o-", label="pathwise (reparameterization)")
ax.loglog(ns, [predicted_sf / n for n in ns], "k--", lw=0.8, label="predicted: 87/n and 4/n")
ax.loglog(ns, [4 * sigma0**2 / n for n in ns], "k--", lw=0.8)
ax.set(xlabel="samples per estimate n", ylabel="variance of the gradient estimate",
       title=r"$\partial_\mu\,\mathbb{E}_{\mathcal{N}(\mu,1)}[z^2]$ at $\mu=2$")
ax.grid(alpha=0.3, which="both")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Both lines fall with slope $-1$ (variance $\propto 1/n$), on top of the predictions, but the score-function line sits
# $87/4 \approx 22$ times higher (the printed ratio at $n = 1024$ is 22): to match the pathwise estimator's precision it
# needs about 22 times more samples. In a VAE
# the gap is usually much larger. The score multiplies $f$, here $\log p(x|z)$, a sum over 784 pixels of order $-100$
# nats, by a random factor of either sign, in every one of the $D$ latent dimensions; the pathwise estimator instead
# follows the decoder's own gradient $\nabla_z \log p(x|z)$. This is why Kingma and Welling's VAE uses
# reparameterization, and why the score function (Williams 1992 called it REINFORCE) is kept for discrete latents, where
# no pathwise estimator exists (often with a *baseline*, exercise 1).
#
# **When the pathwise estimator loses.** It is not better everywhere. The pathwise estimator averages $f'(z)$, the score
# function averages $f(z)$ times the score: a function that wiggles fast has a large derivative while its values stay
# bounded. Take $f(z) = \sin(\omega z)$. Its exact gradient, $\partial_\mu\,\mathbb E[\sin(\omega z)] = \omega\cos(\omega\mu)\,e^{-\omega^2\sigma^2/2}$,
# is tiny for large $\omega$ (the oscillations average out), yet the pathwise term $\omega\cos(\omega z)$ has a variance
# that grows like $\omega^2/2$, while the score-function term $\sin(\omega z)\,(z-\mu)/\sigma^2$ never has a variance above
# $\mathbb E[(z-\mu)^2]/\sigma^4 = 1/\sigma^2$, whatever $\omega$ (Mohamed et al. 2020 discuss this and other cases). Per
# sample, at $\mu = 2$, $\sigma = 1$:

# %%
torch.manual_seed(0)
z = Normal(mu0, sigma0).sample((100_000,))
print("omega | exact gradient | variance per sample: pathwise, score function")
for omega in (1.0, 3.0, 10.0, 30.0):
    exact_omega = omega * math.cos(omega * mu0) * math.exp(-(omega * sigma0) ** 2 / 2)
    pathwise_terms = omega * torch.cos(omega * z)                  # f'(z) for f(z) = sin(omega z)
    score_terms = torch.sin(omega * z) * (z - mu0) / sigma0**2     # f(z) times the score (z - mu) / sigma^2
    print(f"{omega:5.0f} | {exact_omega:14.2g} | {pathwise_terms.var():8.2f}, {score_terms.var():.2f}")

# %% [markdown]
# The score function wins already at $\omega = 1$, narrowly, and by a factor of about $\omega^2$ beyond: at $\omega = 10$
# the pathwise variance is 49.84 (close to $\omega^2/2 = 50$), the score function's 0.50. A VAE's decoder is a smooth function of
# $z$ on the scale of the posterior's width, the opposite case, and there the pathwise estimator is far better.
#
# ## 5. In torch: `rsample`, and vaelib's `reparameterize`
#
# `torch.distributions` offers both: `sample()` draws without gradient, `rsample()` ("reparameterized sample") draws
# $\varepsilon$ and returns $\mu + \sigma\varepsilon$, differentiable in $\mu$ and $\sigma$.

# %%
mu = torch.tensor(mu0, requires_grad=True)
q = Normal(mu, sigma0)
print("sample():  requires_grad =", q.sample().requires_grad)
print("rsample(): requires_grad =", q.rsample().requires_grad)

# %% [markdown]
# The VAE's encoder outputs, for each image, a mean vector $\mu$ and a **log-variance** vector $\log\sigma^2$, both of shape
# $(B, D)$. The standard deviation is $\sigma = \exp(\tfrac12\log\sigma^2)$, so the reparameterized sample is
#
# $$z = \mu + \exp\!\big(\tfrac12\log\sigma^2\big)\odot\varepsilon, \qquad \varepsilon \sim \mathcal N(0, I),$$
#
# with $\odot$ the elementwise product. In plain torch, checked against vaelib (same $\varepsilon$) and against
# `Normal.rsample` (same random seed, which gives the same $\varepsilon$):

# %%
def my_reparameterize(mu, logvar, eps):
    """z = mu + sigma * eps with sigma = exp(logvar / 2): a sample of N(mu, diag(exp(logvar))), differentiable."""
    return mu + torch.exp(0.5 * logvar) * eps


B, D = 4, 3
mu = torch.randn(B, D, requires_grad=True)
logvar = torch.randn(B, D, requires_grad=True)
eps = torch.randn(B, D)
z = my_reparameterize(mu, logvar, eps)

ok_vaelib = torch.allclose(z, vaelib.reparameterization.reparameterize(mu, logvar, eps))
torch.manual_seed(123)
z_rsample = Normal(mu, torch.exp(0.5 * logvar)).rsample()
torch.manual_seed(123)
ok_rsample = torch.allclose(z_rsample, my_reparameterize(mu, logvar, torch.randn(B, D)))
assert ok_vaelib and ok_rsample
print("z:", tuple(z.shape))
print("matches vaelib.reparameterization.reparameterize (same eps):", ok_vaelib)
print("matches Normal(mu, sigma).rsample() (same seed):", ok_rsample)

# %% [markdown]
# The gradients that flow back are exactly what the chain rule says: $\partial z/\partial\mu = 1$ and
# $\partial z/\partial \log\sigma^2 = \tfrac12\,\sigma\,\varepsilon$ (derivative of $\exp(\tfrac12 v)$ is $\tfrac12\exp(\tfrac12 v)$).

# %%
z.sum().backward()
print("dz/dmu == 1:", torch.allclose(mu.grad, torch.ones(B, D)))
print("dz/dlogvar == sigma * eps / 2:", torch.allclose(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps))

# %% [markdown]
# From here on the course uses `vaelib.reparameterization.reparameterize(mu, logvar)`, which draws $\varepsilon$ itself
# when none is given; `vaelib.bounds.elbo_terms` calls it once per image.
#
# ## 6. Why the encoder outputs a log-variance
#
# The encoder's last layer is linear: its outputs can be any real numbers. A variance (or a standard deviation) must be
# positive. Three ways to read a linear output $h$:
#
# | the output means | valid for every $h$? | what goes wrong |
# | --- | --- | --- |
# | $\sigma^2 = h$ or $\sigma = h$ | no | $h < 0$ is not a distribution: $\sqrt{h}$ and $\log h$ are NaN |
# | $\sigma^2 = \operatorname{softplus}(h)$ | yes | fine in range, but $\log\sigma^2$ still needs a $\log$ of a possibly tiny number |
# | $\log\sigma^2 = h$ | yes | nothing: $\sigma^2 = e^h > 0$ always, and the KL uses $h$ directly |
#
# **Negative outputs happen at once.** A freshly initialized linear layer outputs negative numbers about half of the time:

# %%
torch.manual_seed(0)
head = torch.nn.Linear(400, 20)                  # the size of an MLP encoder's logvar head
h = head(torch.relu(torch.randn(128, 400)))      # a batch of 128 hidden vectors -> (128, 20)
print(f"fraction of negative outputs: {(h < 0).float().mean():.1f}")
print("read as a variance, sqrt gives NaN for", int(torch.isnan(torch.sqrt(h)).sum()), "of", h.numel(), "entries")
try:
    Normal(torch.zeros_like(h), h)               # read as a standard deviation
except ValueError:
    print("read as a standard deviation: Normal(mu, h) raises ValueError (scale must be positive)")
print("read as a log-variance: all variances exp(h) > 0:", bool((torch.exp(h) > 0).all()))

# %% [markdown]
# **Even a valid start can be pushed out of range by one gradient step.** Take a single latent dimension with mean 0 and a
# loss that wants a small variance, as a sharp reconstruction term does: $L = 50\,\sigma^2 + \mathrm{KL}$, with the KL from
# notebook 03, $\tfrac12(\sigma^2 - \log\sigma^2 - 1)$. Its minimum is at $\sigma^2 = 0.5/50.5 \approx 0.0099$. Run plain
# gradient descent (learning rate $0.05$) from $\sigma^2 = 1$, once on the variance itself and once on the log-variance:

# %%
def loss_fn(var):
    return 50 * var + 0.5 * (var - torch.log(var) - 1)


var = torch.tensor(1.0, requires_grad=True)           # parameterized by the variance
logvar = torch.tensor(0.0, requires_grad=True)        # parameterized by the log-variance
lr = 0.05
for step in range(1, 201):
    loss_fn(var).backward()                           # gradient with respect to the variance
    loss_fn(torch.exp(logvar)).backward()             # gradient with respect to the log-variance
    with torch.no_grad():
        var -= lr * var.grad
        logvar -= lr * logvar.grad
    var.grad, logvar.grad = None, None
    if step in (1, 2, 10, 50, 200):
        print(f"step {step:3d}: on the variance: variance {var.item():6.3f}, loss {loss_fn(var).item():6.3f}   |"
              f"  on the log-variance: variance {math.exp(logvar.item()):.4f}, loss {loss_fn(torch.exp(logvar)).item():.3f}")
print(f"optimum: variance {0.5 / 50.5:.4f}, loss {loss_fn(torch.tensor(0.5 / 50.5)).item():.3f}")

# %% [markdown]
# On the variance, the gradient at $\sigma^2 = 1$ is $50$ and the first step lands on $1 - 0.05\times 50 = -1.5$: the variance becomes negative, its log is NaN, and
# training is over. On the log-variance the same learning rate gives a step of $-2.5$ in $\log\sigma^2$, a *multiplicative*
# change of the variance: it shrinks by a factor $e^{2.5}$ but stays positive, and descent settles at the optimum. The
# gradient with respect to $\log\sigma^2$ is $\sigma^2\,\partial L/\partial\sigma^2$: it automatically scales down as the
# variance gets small, where a step on $\sigma^2$ itself would overshoot zero.
#
# **Tiny variances underflow; log-variances do not.** A trained encoder is very sure of some latent coordinates. Those
# variances can be too small for a float32 (smallest positive value about $10^{-45}$), but their logs are modest numbers:

# %%
v = torch.tensor(1e-46)                                    # a variance below float32's range
print("variance stored as float32:", v.item(), "  log of it:", torch.log(v).item())
lv = torch.tensor(math.log(1e-46))                         # the same variance as a log-variance
print(f"as a log-variance: {lv.item():.1f}, and the KL term uses it directly: "
      f"{vaelib.kl.gaussian_kl(torch.zeros(1, 1), lv.reshape(1, 1)).item():.1f} nats")

# %% [markdown]
# **What a trained encoder actually outputs.** The pretrained convolutional VAE (latent size 20) tells us which range of
# variances a real encoder needs. Its log-variance head is a plain `nn.Linear`:

# %%
test = vaelib.MNIST("test", binarize="dynamic", subset=1000)
train = vaelib.MNIST("train", binarize="dynamic", subset=5000 if FAST else None)   # only used to (re)train
model, _ = vaelib.course.pretrained.load_or_train("conv_vae", train, test,
                                                  train_from_scratch=TRAIN_FROM_SCRATCH, device=device)
model = model.to(device).eval()
print("log-variance head:", model.encoder.logvar)
x, _ = test.first(1000, seed=0)
with torch.no_grad():
    _, logvar_x = model.encoder(x)                       # (1000, 20)
print("log-variances:", tuple(logvar_x.shape))

# %%
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.hist(logvar_x.flatten().numpy(), bins=80, color="C0")
ax.set(xlabel=r"$\log\sigma^2$ output by the encoder (1000 test images x 20 dimensions)", ylabel="count",
       title="log-variances output by a trained encoder")
ax.axvline(0, color="k", lw=0.8, ls="--")
ax.text(0.2, ax.get_ylim()[1] * 0.85, r"$\sigma^2=1$" + "\n(prior)", fontsize=8)
plt.show()

# %% [markdown]
# Two groups: a sharp peak at $\log\sigma^2 \approx 0$, the inactive dimensions whose posterior is the prior (notebook 03),
# and a broad spread of negative values, the active dimensions, where the encoder pins $z_j$ down to a small fraction of
# the prior's width. The encoder has to express variances over more than two powers of ten (printed below), most of them
# crowded close to 0 on a linear scale, where a slightly-too-large step of a variance output would cross into negative
# numbers. In log units the same values are an ordinary range of numbers around $-3$ for a linear layer to produce.

# %%
lo, hi = logvar_x.min().item(), logvar_x.max().item()
print(f"smallest and largest variance: {math.exp(lo):.0e} and {math.exp(hi):.0e} "
      f"({(hi - lo) / math.log(10):.1f} powers of ten)")

# %% [markdown]
# ## Key takeaways
#
# - `q.sample()` cuts the graph: a sample has no gradient with respect to the distribution's parameters.
# - Score function (REINFORCE): $\nabla\,\mathbb E_q[f] = \mathbb E_q[f\,\nabla\log q]$. Unbiased, needs only values of $f$,
#   works for discrete $z$, but has high variance.
# - Pathwise (reparameterization): $z = \mu + \sigma\varepsilon$ makes the sample a differentiable function of $(\mu, \sigma)$, so
#   $\nabla\,\mathbb E_q[f] = \mathbb E_\varepsilon[\nabla f(\mu+\sigma\varepsilon)]$. Unbiased and, here, 22 times less variance per sample (4 against 87).
#   Not always: it differentiates $f$, so a rapidly oscillating $f$ (large $f'$, bounded $f$) favours the score function.
# - In torch it is `rsample()`; in vaelib `vaelib.reparameterization.reparameterize(mu, logvar)`.
# - The encoder outputs $\log\sigma^2$: any real number is valid, gradient steps change the variance multiplicatively
#   and never make it negative, tiny variances do not underflow, and the KL uses $\log\sigma^2$ directly.
#
# ## Exercises
#
# Each exercise names its tier: *warm-up* (apply what a section showed), *core* (the notebook's main idea in a
# new setting), *stretch* (goes beyond the notebook; optional).
#
# **Exercise 1 (core): a baseline for REINFORCE.** Because $\mathbb E_q[\nabla_\mu\log q(z)] = 0$, subtracting any constant $b$
# from $f$ leaves the score-function estimator unbiased: $\mathbb E_q[(f(z) - b)\,\nabla_\mu\log q(z)] = \nabla_\mu\,\mathbb E_q[f]$.
# Write `reinforce_terms(f, z, mu, sigma, b)`: the one-sample estimates $(f(z_i) - b)\,\nabla_\mu\log q(z_i)$ for
# $q = \mathcal N(\mu, \sigma^2)$, one per sample (shape `(n,)`, like `z`), and run `check_reinforce_baseline(reinforce_terms)`.
# Then, with $\mu = 2$, $\sigma = 1$ and $10^5$ samples, compare the variance of these terms with $b = 0$ and with
# $b = \mathbb E_q[f] = \mu^2 + \sigma^2$ (in practice $b$ would be a running average of $f$). Check that both means are
# close to 4.

# %%
from vaelib.course.checks import check_reinforce_baseline


def reinforce_terms(f, z, mu, sigma, b):
    ### BEGIN SOLUTION
    return (f(z) - b) * (z - mu) / sigma**2
    ### END SOLUTION


check_reinforce_baseline(reinforce_terms)

# %%
### BEGIN SOLUTION
torch.manual_seed(0)
z = Normal(mu0, sigma0).sample((100_000,))
for b in (0.0, mu0**2 + sigma0**2):
    g = reinforce_terms(f, z, mu0, sigma0, b)
    print(f"baseline b = {b}: mean {g.mean():.1f}, variance {g.var():.0f}")
# With b = E[f] = 5 the variance drops from 87 to 42 (by hand: 8 mu^2 + 10): (f - b) is small where f is typical, so
# the random sign of the score multiplies smaller numbers. It is still ten times the pathwise estimator's 4.
### END SOLUTION

# %% [markdown]
# **Exercise 2 (core): the other parameter.** The exact gradient with respect to $\sigma$ is $\partial_\sigma\,\mathbb E[z^2] = 2\sigma = 2$.
# Write both estimators of $\partial_\sigma\,\mathbb E_q[f(z)]$ as functions that return one number, computed by autograd
# with `sigma` made a tensor with `requires_grad=True`:
# `pathwise_grad_sigma(f, mu, sigma, eps)` through $z = \mu + \sigma\varepsilon$ for the given standard-normal noise `eps`
# (what `rsample` computes), and `score_grad_sigma(f, mu, sigma, z)` through the surrogate
# $\text{stop\_grad}(f(z))\log q(z)$ for the given samples `z` (what `sample()` draws), both averaged over the samples.
# Run `check_sigma_gradients(pathwise_grad_sigma, score_grad_sigma)`, then apply them to $10^5$ samples each and print
# both estimates and the variance of their per-sample terms.

# %%
from vaelib.course.checks import check_sigma_gradients


def pathwise_grad_sigma(f, mu, sigma, eps):
    ### BEGIN SOLUTION
    sigma = torch.tensor(sigma, requires_grad=True)
    z = mu + sigma * eps                                   # what Normal(mu, sigma).rsample() computes
    return torch.autograd.grad(f(z).mean(), sigma)[0]      # the average of f'(z_i) * eps_i
    ### END SOLUTION


def score_grad_sigma(f, mu, sigma, z):
    ### BEGIN SOLUTION
    sigma = torch.tensor(sigma, requires_grad=True)
    surrogate = (f(z).detach() * Normal(mu, sigma).log_prob(z)).mean()
    return torch.autograd.grad(surrogate, sigma)[0]
    ### END SOLUTION


check_sigma_gradients(pathwise_grad_sigma, score_grad_sigma)

# %%
### BEGIN SOLUTION
torch.manual_seed(0)
n = 100_000
eps = torch.randn(n)
z = mu0 + sigma0 * eps
terms_pw = f_prime(z) * eps                                                          # f'(z) * eps, per sample
print(f"pathwise:       {pathwise_grad_sigma(f, mu0, sigma0, eps).item():.2f}  (per-sample variance {terms_pw.var():.0f})")

z = Normal(mu0, sigma0).sample((n,))
terms_sf = f(z) * ((z - mu0) ** 2 / sigma0**3 - 1 / sigma0)                          # f(z) * d/dsigma log q(z)
print(f"score function: {score_grad_sigma(f, mu0, sigma0, z).item():.2f}  (per-sample variance {terms_sf.var():.0f})")
# Both are close to 2; the score-function terms are again far noisier.
### END SOLUTION

# %% [markdown]
# **Exercise 3 (warm-up): reparameterizing another distribution.** An exponential variable with rate $\lambda$ can be written as
# $z = -\log(u)/\lambda$ with $u \sim \text{Uniform}(0, 1)$ (the inverse of its CDF). Its mean is $1/\lambda$, so
# $\partial_\lambda\,\mathbb E[z] = -1/\lambda^2$. Write the reparameterized sample in plain torch as
# `exponential_rsample(rate, u)`, differentiable in `rate` (a tensor with `requires_grad=True`), and run
# `check_exponential_rsample(exponential_rsample)`. Then, with $\lambda = 2$, estimate the gradient with $10^5$ samples
# through autograd, compare with $-1/\lambda^2 = -0.25$, and with the gradient through
# `torch.distributions.Exponential(rate).rsample`, torch's own reparameterized sampler.

# %%
from vaelib.course.checks import check_exponential_rsample


def exponential_rsample(rate, u):
    ### BEGIN SOLUTION
    return -torch.log(u) / rate                            # pathwise: a differentiable function of rate
    ### END SOLUTION


check_exponential_rsample(exponential_rsample)

# %%
### BEGIN SOLUTION
n = 100_000
rate = torch.tensor(2.0, requires_grad=True)
torch.manual_seed(0)
z = exponential_rsample(rate, torch.rand(n))
grad_mine = torch.autograd.grad(z.mean(), rate)[0]
print(f"pathwise estimate {grad_mine.item():.3f}, exact {-1 / 2.0**2}")

rate2 = torch.tensor(2.0, requires_grad=True)
torch.manual_seed(0)
z_torch = torch.distributions.Exponential(rate2).rsample((n,))
grad_torch = torch.autograd.grad(z_torch.mean(), rate2)[0]
print(f"Exponential.rsample gives {grad_torch.item():.3f}")
# torch draws its uniform numbers in a different way (it uses an exponential_ kernel), so the two estimates differ in
# the last digits: both are unbiased estimates of -0.25.
### END SOLUTION


# %% [markdown]
# **Exercise 4 (stretch): a full-covariance Gaussian.** A diagonal $q(z|x)$ cannot express correlations between latent
# coordinates; a full-covariance Gaussian $\mathcal N(\mu, \Sigma)$ can, and it is reparameterized the same way: for any
# matrix $L$ with $LL^\top = \Sigma$, the sample $z = \mu + L\varepsilon$, $\varepsilon \sim \mathcal N(0, I)$, has mean $\mu$ and covariance
# $\mathbb E[L\varepsilon\varepsilon^\top L^\top] = LL^\top$. An encoder outputs an unconstrained $D\times D$ matrix `raw_scale`, and $L$ is built
# from it the way section 6 builds a variance from a log-variance: lower triangular, with the entries of `raw_scale`
# below the diagonal, $\exp$ of its diagonal on the diagonal (so that it is positive), and zeros above (the Cholesky
# factor of $\Sigma$). Write `full_covariance_rsample(mu, raw_scale, eps)` for a batch, `mu` of shape `(B, D)`,
# `raw_scale` of shape `(B, D, D)` and `eps` of shape `(B, D)`, returning $z$ of shape `(B, D)` with gradients that
# reach `mu` and `raw_scale`, and run `check_full_covariance_rsample` on it. Then, in the next cell, for $D = 2$,
# $\mu = (1, -1)$ and a `raw_scale` of your choice: (i) draw $10^5$ samples and compare their covariance with
# $LL^\top$ and with the covariance of `torch.distributions.MultivariateNormal(mu, scale_tril=L)`; (ii) estimate the
# gradient of $\mathbb E\lVert z\rVert^2$ with respect to `raw_scale` by autograd through your samples, and compare it
# with the exact one: $\mathbb E\lVert z\rVert^2 = \lVert\mu\rVert^2 + \operatorname{tr}(LL^\top) = \lVert\mu\rVert^2 + \sum_{ij} L_{ij}^2$, so its
# derivative is $2L_{ij}$ below the diagonal, $2L_{ii}^2$ on it (the chain rule through $\exp$) and 0 above.

# %%
from vaelib.course.checks import check_full_covariance_rsample


def full_covariance_rsample(mu, raw_scale, eps):
    ### BEGIN SOLUTION
    diagonal = torch.diagonal(raw_scale, dim1=-2, dim2=-1).exp()                 # positive, like exp(logvar / 2)
    L = torch.tril(raw_scale, diagonal=-1) + torch.diag_embed(diagonal)           # (B, D, D), lower triangular
    return mu + (L @ eps.unsqueeze(-1)).squeeze(-1)                               # z = mu + L eps, per example
    ### END SOLUTION


check_full_covariance_rsample(full_covariance_rsample)

# %%
### BEGIN SOLUTION
n = 100_000
mu2 = torch.tensor([1.0, -1.0])
raw = torch.tensor([[0.3, 0.7], [0.8, -0.5]], requires_grad=True)     # the 0.7 above the diagonal is not used
torch.manual_seed(0)
z = full_covariance_rsample(mu2.expand(n, 2), raw.expand(n, 2, 2), torch.randn(n, 2))
L = torch.tril(raw.detach(), -1) + torch.diag(raw.detach().diagonal().exp())
mvn = torch.distributions.MultivariateNormal(mu2, scale_tril=L)
print("covariance of the samples:", [[round(v, 2) for v in row] for row in torch.cov(z.detach().T).tolist()])
print("L L^T:                    ", [[round(v, 2) for v in row] for row in (L @ L.T).tolist()])
print("MultivariateNormal's covariance equals L L^T:", torch.allclose(mvn.covariance_matrix, L @ L.T))
grad = torch.autograd.grad(z.pow(2).sum(1).mean(), raw)[0]                # pathwise, through the samples
exact = 2 * torch.tril(L, -1) + torch.diag(2 * L.diagonal() ** 2)
print("pathwise gradient of E|z|^2:", [[round(v, 2) for v in row] for row in grad.tolist()])
print("exact gradient:             ", [[round(v, 2) for v in row] for row in exact.tolist()])
# The covariances agree to Monte-Carlo precision, and so do the gradients; the unused entry above the diagonal
# gets exactly 0. Full-covariance posteriors (and normalizing flows) are trained this way: any sample that is a
# differentiable function of the parameters and of fixed noise has a pathwise gradient.
### END SOLUTION

# %% [markdown]
# **Exercise 5 (stretch): a discrete latent.** A categorical $z$ (one of $K$ values, probabilities $\pi = \mathrm{softmax}
# (\ell)$ from logits $\ell$) has no reparameterization: a sample is an integer, and nudging $\ell$ changes it by
# jumps or not at all. The **Gumbel-max trick** still writes it as a function of fixed noise: with
# $u_k \sim \text{Uniform}(0, 1)$ and $g_k = -\log(-\log u_k)$ (Gumbel noise), $\arg\max_k (\ell_k + g_k)$ is distributed
# exactly as $\pi$. The argmax is flat, so replace it by a softmax at a temperature $\tau$: the **Gumbel-softmax**, or
# Concrete, sample $y = \mathrm{softmax}((\ell + g)/\tau)$ (Jang, Gu and Poole 2017; Maddison, Mnih and Teh 2017), a
# point inside the simplex that is differentiable in $\ell$ and tends to the one-hot Gumbel-max sample as $\tau \to 0$.
# Write `gumbel_softmax_sample(logits, tau, u)` for logits and noise of shape `(B, K)`, and run
# `check_gumbel_softmax`. Then, in the next cell, for $\pi = (0.1, 0.2, 0.7)$: (i) draw $10^5$ samples at $\tau = 0.1$
# and compare how often each $k$ is the largest entry with $\pi$; (ii) compare the mean largest entry of $y$ at
# $\tau = 0.1$ and $\tau = 1$ (how one-hot the samples are); (iii) check that a gradient reaches the logits. The price of
# the relaxation is a bias: a model trained on relaxed samples sees points inside the simplex, not one-hot codes.

# %%
from vaelib.course.checks import check_gumbel_softmax


def gumbel_softmax_sample(logits, tau, u):
    ### BEGIN SOLUTION
    g = -torch.log(-torch.log(u))                                # Gumbel(0, 1) noise, from the uniform u
    return torch.softmax((logits + g) / tau, dim=-1)            # the relaxed one-hot sample, (B, K)
    ### END SOLUTION


check_gumbel_softmax(gumbel_softmax_sample)

# %%
### BEGIN SOLUTION
n = 100_000
logits = torch.log(torch.tensor([0.1, 0.2, 0.7])).requires_grad_()
u = torch.rand(n, 3, generator=torch.Generator().manual_seed(0)).clamp(1e-6, 1 - 1e-6)
y_cold, y_warm = gumbel_softmax_sample(logits, 0.1, u), gumbel_softmax_sample(logits, 1.0, u)
freq = torch.bincount(y_cold.argmax(-1), minlength=3).float() / n
print("how often each k is the largest entry:", [round(v, 3) for v in freq.tolist()], "against pi = [0.1, 0.2, 0.7]")
print(f"mean largest entry: {y_cold.max(-1).values.mean():.3f} at tau = 0.1, {y_warm.max(-1).values.mean():.3f} at tau = 1")
value = torch.tensor([1.0, 2.0, 3.0])                            # a function of the code: E[y . value]
grad = torch.autograd.grad((y_cold @ value).mean(), logits)[0]
print("gradient of E[y . value] with respect to the logits:", [round(v, 3) for v in grad.tolist()])
# The argmax of the relaxed sample is the Gumbel-max sample, so its frequencies match pi to Monte-Carlo precision at
# any tau; at tau = 0.1 the samples are nearly one-hot, at tau = 1 they are soft mixtures. The gradient exists and
# points the right way: raising the logit of the largest value (k = 2) raises E[y . value], lowering the others does.
### END SOLUTION

# %% [markdown]
# ## References
#
# - Kingma, D. P. and Welling, M. (2014). Auto-encoding variational Bayes. *International Conference on Learning
#   Representations (ICLR) 2014*. [arXiv:1312.6114](https://arxiv.org/abs/1312.6114)
# - Jang, E., Gu, S. and Poole, B. (2017). Categorical reparameterization with Gumbel-softmax. *International
#   Conference on Learning Representations (ICLR) 2017*. [arXiv:1611.01144](https://arxiv.org/abs/1611.01144)
# - Maddison, C. J., Mnih, A. and Teh, Y. W. (2017). The Concrete distribution: a continuous relaxation of discrete
#   random variables. *International Conference on Learning Representations (ICLR) 2017*.
#   [arXiv:1611.00712](https://arxiv.org/abs/1611.00712)
# - Mohamed, S., Rosca, M., Figurnov, M. and Mnih, A. (2020). Monte Carlo gradient estimation in machine learning.
#   *Journal of Machine Learning Research* 21(132):1-62. [arXiv:1906.10652](https://arxiv.org/abs/1906.10652)
# - Williams, R. J. (1992). Simple statistical gradient-following algorithms for connectionist reinforcement learning.
#   *Machine Learning* 8(3-4):229-256. [doi:10.1007/BF00992696](https://doi.org/10.1007/BF00992696)
