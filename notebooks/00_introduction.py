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
# # 00 · Introduction: generative models, the roadmap, and MNIST
#
# **Learning objectives**
#
# - Say what a generative model is, what we want from one, and how maximum likelihood trains one.
# - Know the roadmap of this series, notebooks 00 to 13.
# - Load MNIST with `vaelib.MNIST` and describe its pixel statistics: shapes, grey levels, labels.
# - Explain why a continuous density on MNIST's grey levels is ill-posed, and what binarization
#   (dynamic or static) and a Bernoulli likelihood do about it.
# - Write the Bernoulli log-likelihood of an image in plain torch, check it against `vaelib`, and use it
#   to score a first (bad) generative model.
#
# **Prerequisites**
#
# - No earlier notebook. Basic probability: random variables, probability vs. probability *density*,
#   expectation, independence, the log-likelihood of a data set.
# - Basic PyTorch: tensors, indexing, broadcasting, `torch.nn.functional`.

# %% [markdown]
# ## 1. What is a generative model?
#
# We are given data $x^{(1)}, \dots, x^{(N)}$, here $N = 60{,}000$ images of handwritten digits, that we
# assume were drawn independently from some unknown distribution $p_\text{data}(x)$. A **generative
# model** is a distribution $p_\theta(x)$ with parameters $\theta$ that we fit so that
# $p_\theta \approx p_\text{data}$. Once we have it we can
#
# 1. **sample**: draw new images $x \sim p_\theta(x)$ that look like the data;
# 2. **score**: compute $\log p_\theta(x)$ of an image, to compare models or spot outliers;
# 3. **represent**: (for latent-variable models such as the VAE) map an image to a short code $z$
#    that captures what it shows.
#
# The standard way to fit $\theta$ is **maximum likelihood**: make the observed data as probable as possible,
#
# $$\theta^\star = \arg\max_\theta \frac{1}{N}\sum_{i=1}^{N} \log p_\theta\big(x^{(i)}\big).$$
#
# Why is that the right thing? The average is a Monte-Carlo estimate of $\mathbb{E}_{p_\text{data}}[\log p_\theta(x)]$, and
#
# $$\mathrm{KL}\big(p_\text{data}\,\|\,p_\theta\big)
#   = \mathbb{E}_{p_\text{data}}\big[\log p_\text{data}(x) - \log p_\theta(x)\big]
#   = \underbrace{\mathbb{E}_{p_\text{data}}[\log p_\text{data}(x)]}_{\text{does not depend on }\theta}
#     - \mathbb{E}_{p_\text{data}}[\log p_\theta(x)],$$
#
# so maximizing the expected log-likelihood is the same as minimizing the KL divergence from the data
# distribution to the model (notebook 03 is all about the KL divergence; for now: it is $\ge 0$ and is $0$ only
# when the two distributions are equal). Log-likelihoods of images are reported in **nats** (natural log)
# per image, summed over pixels; higher is better.
#
# Several families of models can do this: autoregressive models (PixelCNN), normalizing flows, GANs
# (which sample but do not score), diffusion models, and **variational autoencoders** (VAEs, Kingma and
# Welling 2014; Rezende et al. 2014), the subject of this course. A VAE explains each image by a hidden
# *latent* code $z$, and learns at the same time a decoder $p_\theta(x\mid z)$ and an encoder
# $q_\phi(z\mid x)$ that guesses $z$ from $x$.

# %% [markdown]
# ## 2. The roadmap
#
# | notebook | title | what you will do |
# | --- | --- | --- |
# | **00** | introduction | generative models, MNIST, binarization, the Bernoulli likelihood (this notebook) |
# | **01** | autoencoders | train a plain autoencoder with a 2-D code and see why it cannot generate |
# | **02** | latent variables and the ELBO | $p(x) = \int p(x\mid z)p(z)\,dz$, importance sampling, the evidence lower bound |
# | **03** | KL divergence | the KL between two Gaussians in closed form, and by Monte Carlo |
# | **04** | reparameterization | gradients through sampling: $z = \mu + \sigma\,\varepsilon$ |
# | **05** | training a VAE | the training loop, written out and then with `vaelib.fit` |
# | **06** | beta and KL annealing | the $\beta$-VAE, warm-up schedules, posterior collapse |
# | **07** | exploring the latent space | latent scatter plots, the decoded manifold, interpolation |
# | **08** | evaluating VAEs | test ELBO, importance-weighted log-likelihood, bits per dimension |
# | **09** | conditional VAE | generate a digit of the class you ask for |
# | **10** | your own data | your own networks on Fashion-MNIST and colour images; likelihoods for grey levels, in bits/dim |
# | **11** | autoregressive decoders | a decoder that draws pixel by pixel: exact likelihoods, 784-step sampling, collapse |
# | **12** | better posteriors | the approximation and amortization gaps; normalizing flows and an IAF posterior |
# | **13** | better priors | the aggregate posterior and its holes; mixture and VampPrior priors |
#
# Each concept is written out once in plain torch, checked against `vaelib`, and then used from `vaelib`.

# %% [markdown]
# ## 3. Setup
#
# `FAST` is true when the environment variable `VAELIB_FAST=1` is set: the smoke-test mode of the
# continuous integration, in which notebooks train briefly. This notebook trains nothing: section 6 loads one
# pretrained model, which `TRAIN_FROM_SCRATCH = True` would retrain instead. `FAST` is in every notebook of
# the series, and `TRAIN_FROM_SCRATCH` in every one that loads a pretrained model (all but 10, which trains
# its own small models).

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import vaelib
from vaelib.plotting import show_images
from vaelib.course import load_or_train

FAST = vaelib.course.fast_mode()      # True when VAELIB_FAST=1: the smoke-test mode that CI uses
print(vaelib.course.mode_name())    # what made the outputs below: learner mode, or CI's fast mode
TRAIN_FROM_SCRATCH = False     # set True to retrain instead of loading pretrained/ checkpoints
torch.manual_seed(0)
device = "cpu"

# %% [markdown]
# ## 4. MNIST through `vaelib.MNIST`
#
# `vaelib.MNIST(split)` loads a whole split once as a `uint8` tensor (grey levels 0 to 255) and serves
# batches by indexing it. Where the files come from: the `VAELIB_DATA` environment variable (a folder that
# holds `MNIST/raw/`), else a `data/` folder, else a download.

# %%
train = vaelib.MNIST("train")   # binarize=None: grey levels
test = vaelib.MNIST("test")
print(train)
print(test)
print("images:", tuple(train.images.shape), train.images.dtype, "| labels:", tuple(train.labels.shape), train.labels.dtype)
print("grey levels stored as integers from", train.images.min().item(), "to", train.images.max().item())

# %% [markdown]
# Each image is a $1 \times 28 \times 28$ tensor (one channel, 784 pixels). Batches come out as floats in
# $[0, 1]$ (the integer divided by 255), ready for a network:

# %%
x, y = next(train.batches(32))
print("batch:", tuple(x.shape), x.dtype, f"values in [{x.min().item():.0f}, {x.max().item():.0f}]")
print("labels:", y.tolist())

# %%
show_images(x, nrow=16, title="the first 32 training images")
plt.show()

# %% [markdown]
# The first 32 training images, in the order of the labels printed above (5, 0, 4, 1, ...). The digits
# are centred, white on black, and come in many styles: thick and thin strokes, slanted, open and closed
# loops. That variety of *style* within each *class* is what a generative model has to capture.
#
# ### Label counts
#
# The labels are not used to train an unconditional VAE (notebooks 01 to 08), but they colour the latent
# plots and condition the VAE of notebook 09.

# %%
train_counts = torch.bincount(train.labels, minlength=10)
test_counts = torch.bincount(test.labels, minlength=10)
print("digit:", *range(10), sep="\t")
print("train:", *train_counts.tolist(), sep="\t")
print("test: ", *test_counts.tolist(), sep="\t")
assert train_counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
print(f"most frequent: {train_counts.argmax().item()} ({train_counts.max().item() / len(train):.1%}), "
      f"least frequent: {train_counts.argmin().item()} ({train_counts.min().item() / len(train):.1%})")

# %%
fig, ax = plt.subplots(figsize=(6, 2.8))
ax.bar(torch.arange(10) - 0.2, train_counts / len(train), width=0.4, label="train")
ax.bar(torch.arange(10) + 0.2, test_counts / len(test), width=0.4, label="test")
ax.axhline(0.1, color="k", lw=0.8, ls="--")
ax.set_xticks(range(10))
ax.set_xlabel("digit")
ax.set_ylabel("fraction of images")
ax.set_ylim(0, 0.15)
ax.legend(ncol=2, loc="upper center")
ax.set_title("MNIST label frequencies")
plt.show()

# %% [markdown]
# The bars are all close to the dashed line at 10%: the classes are roughly balanced, with more 1s
# (11.2%) and fewer 5s (9.0%), and the test split has the same proportions as the training split. A good
# unconditional model learns these proportions too: about one sample in nine it draws should be a 1.

# %% [markdown]
# ### Pixel statistics
#
# Look at the values themselves. We convert all 60,000 training images to grey levels in $[0, 1]$:

# %%
grey = train.images.float() / 255          # (60000, 1, 28, 28)
print(f"mean grey level {grey.mean():.3f}, standard deviation {grey.std():.3f}")
print(f"pixels exactly 0:       {(grey == 0).float().mean():.1%}")
print(f"pixels strictly between 0.1 and 0.9: {((grey > 0.1) & (grey < 0.9)).float().mean():.1%}")
print(f"pixels above 0.9:       {(grey > 0.9).float().mean():.1%}")
print(f"pixels exactly 1:       {(grey == 1).float().mean():.1%}")
never_on = train.images.amax(0) == 0       # pixels that are 0 in every training image
print("pixels that are 0 in every one of the 60,000 training images:", never_on.sum().item(), "of 784")

# %%
levels = torch.bincount(train.images.flatten().long(), minlength=256)   # how often each grey level 0..255 occurs
mean_image = grey.mean(0)[0]
std_image = grey.std(0)[0]

fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), gridspec_kw={"width_ratios": [1.6, 1, 1]})
axes[0].bar(torch.arange(256) / 255, levels / levels.sum(), width=1 / 255)
axes[0].set_yscale("log")
axes[0].set_xlabel("grey level")
axes[0].set_ylabel("fraction of pixels (log scale)")
axes[0].set_title("histogram of grey levels")
im = axes[1].imshow(mean_image, cmap="gray", vmin=0, vmax=1)
axes[1].set_title("mean image")
fig.colorbar(im, ax=axes[1], fraction=0.046)
im = axes[2].imshow(std_image, cmap="magma")
axes[2].set_title("per-pixel standard deviation")
fig.colorbar(im, ax=axes[2], fraction=0.046)
for ax in axes[1:]:
    ax.axis("off")
plt.show()

# %% [markdown]
# **Left:** the histogram (note the log scale) has a tall spike at 0, where 81% of all pixels lie, a
# second peak at the right end (values near 1, the ink), and a thin floor in between: the grey levels
# there are the anti-aliased edges of the strokes. MNIST is *almost* a black-and-white data set.
# **Middle:** the mean image is a blurry blob: averaging digits of all classes and styles gives no digit at all.
# **Right:** the standard deviation is highest over a broad oval that
# fills the middle of the image, where strokes of different digits disagree; it falls off towards the edges
# and is exactly 0 on the border: those 67 pixels are black in every training image.

# %% [markdown]
# ## 5. Why a likelihood needs binarization
#
# To fit by maximum likelihood we need $\log p_\theta(x)$ for an image. The obvious choice for grey levels
# is a density on $[0,1]^{784}$, say a Gaussian per pixel. Take one of the 67 pixels that are 0 in every
# image, and give it the density $\mathcal{N}(x_j;\, 0, \sigma^2)$. At $x_j = 0$,
#
# $$\log \mathcal{N}(0;\, 0, \sigma^2) = -\log\sigma - \tfrac12\log(2\pi) \;\xrightarrow[\sigma \to 0]{}\; +\infty .$$
#
# A *density* is not a probability: it can exceed 1, and here it can be made as large as we like. The
# same happens, less blatantly, at every pixel: 81% of all values are *exactly* 0, a point mass, and a
# continuous density can put an ever narrower, ever taller peak there. The maximum likelihood is
# $+\infty$, training chases it instead of learning digits, and log-likelihood numbers stop meaning anything.

# %%
sigmas = torch.tensor([0.1, 0.01, 1e-3, 1e-6])
per_pixel = -torch.log(sigmas) - 0.5 * math.log(2 * math.pi)
for s, lp in zip(sigmas.tolist(), per_pixel.tolist()):
    print(f"sigma = {s:g}: log-density per always-black pixel {lp:6.2f} nats, "
          f"from the 67 of them alone {67 * lp:7.1f} nats per image")

# %% [markdown]
# So the log-likelihood grows without bound just by shrinking $\sigma$ on pixels that carry no
# information. There are three standard ways out:
#
# 1. **Dequantize**: add uniform noise to the 256 integer levels, so there are no point masses (normalizing flows do this);
# 2. use a **discrete** likelihood over the 256 grey levels (PixelCNN does this);
# 3. **binarize** the images to $\{0, 1\}$ and use a **Bernoulli** likelihood: the classic VAE benchmark, and
#    what this course does.
#
# A Bernoulli variable $x_j \in \{0, 1\}$ with parameter $\pi_j = P(x_j = 1)$ has probability
#
# $$p(x_j) = \pi_j^{\,x_j} (1 - \pi_j)^{1 - x_j}, \qquad
#   \log p(x_j) = x_j \log \pi_j + (1 - x_j)\log(1 - \pi_j) \le 0 .$$
#
# It is a probability, at most 1, so the log-likelihood of an image is at most 0 and the maximum
# likelihood problem is well posed. The formula is the (negative) *binary cross-entropy*. Plugging grey
# levels $x_j \in (0, 1)$ into it is common, but then it is no longer a normalized distribution over the
# data: the function $x \mapsto \pi^x(1-\pi)^{1-x}$ does not integrate to 1 over $[0, 1]$:

# %%
pi = 0.9
xs = torch.linspace(0, 1, 10_001, dtype=torch.float64)
integral = torch.trapezoid(pi ** xs * (1 - pi) ** (1 - xs), xs)
closed_form = (2 * pi - 1) / (math.log(pi) - math.log(1 - pi))
print(f"integral over [0, 1] of pi^x (1-pi)^(1-x) for pi = {pi}: {integral:.4f} (closed form {closed_form:.4f}), not 1")

# %% [markdown]
# (The *continuous Bernoulli* of Loaiza-Ganem and Cunningham (2019) divides by this integral;
# `vaelib.likelihoods` has it.) Binarizing avoids the issue: we treat each grey level as the probability
# that the pixel is on, and draw
#
# $$x^\text{bin}_j \sim \text{Bernoulli}(x^\text{grey}_j), \qquad \mathbb{E}\big[x^\text{bin}_j\big] = x^\text{grey}_j .$$
#
# There are two protocols, and `vaelib.MNIST` has both:
#
# - **dynamic** (`binarize="dynamic"`): a fresh draw every time a batch is served. The model never sees the
#   same binary image twice; on average it sees the grey image. It acts as **data augmentation** and makes
#   overfitting harder (Burda et al. 2015 and most later papers).
# - **static** (`binarize="static"`): one draw, made once with a fixed seed when the split is loaded: a
#   **fixed data set** of binary images. The classic benchmark of Larochelle and Murray (2011) is a
#   static binarization (theirs is one particular published draw; vaelib's is its own, seed 1234, so
#   numbers are comparable in kind, not digit for digit). With a fixed data set the model can memorize
#   the noise of the particular draw, so it overfits more.
#
# Papers report numbers for one protocol or the other, and they are not interchangeable.

# %%
dynamic = vaelib.MNIST("train", binarize="dynamic", subset=1000)
static = vaelib.MNIST("train", binarize="static", subset=1000)

d0, _ = dynamic.first(8, seed=0)      # a fixed batch: the first 8 images, binarized with seed 0
d1, _ = dynamic.first(8, seed=1)      # the same 8 images, a different draw
s0, _ = static.first(8, seed=0)
s1, _ = static.first(8, seed=1)
g8 = dynamic.images[:8].float() / 255

print("values after binarization:", torch.unique(d0).tolist())
print(f"dynamic: fraction of pixels that differ between two draws {(d0 != d1).float().mean():.3f}, "
      f"expected 2 g (1 - g) averaged over pixels {(2 * g8 * (1 - g8)).mean():.3f}")
print("static: the two 'draws' are identical:", torch.equal(s0, s1))
print(f"mean of the binary images {d0.mean():.3f} vs. mean grey level {g8.mean():.3f}")

# %%
show_images(torch.cat([g8, d0, d1, s0]), nrow=8,
            title="grey levels; two dynamic draws; the static draw")
plt.show()

# %% [markdown]
# Row 1 shows grey images, rows 2 and 3 two dynamic binarizations of them, row 4 the static one. The
# binary digits stay perfectly readable: the strokes are nearly black-and-white already, so only the
# grey edges flip from draw to draw (3.9% of pixels, as printed above), which roughens the outlines.
# Averaging many draws gives back the grey image:

# %%
draws = torch.cat([dynamic.first(1, seed=s)[0] for s in range(2000)])   # 2000 draws of the first image
print(f"largest |average of 2000 draws - grey level| over the 784 pixels: {(draws.mean(0) - g8[:1]).abs().max():.2f}")

# %% [markdown]
# ## 6. The Bernoulli log-likelihood, and a first generative model
#
# For a whole binary image, a model gives each pixel its own $\pi_j$. If the pixels are independent,
# the log-likelihood is the sum over the 784 pixels (the series' convention: **sum over pixels**):
#
# $$\log p(x) = \sum_{j=1}^{784} \big[x_j \log \pi_j + (1 - x_j) \log(1 - \pi_j)\big].$$
#
# Networks output a real number $\ell_j$ per pixel, the **logit**, and $\pi_j = \sigma(\ell_j) = 1/(1 + e^{-\ell_j})$.
# Substituting $\log\sigma(\ell) = \ell - \log(1 + e^{\ell})$ and $\log(1 - \sigma(\ell)) = -\log(1 + e^{\ell})$
# gives a form that never takes the log of 0:
#
# $$\log p(x) = \sum_j \big[x_j \ell_j - \operatorname{softplus}(\ell_j)\big], \qquad \operatorname{softplus}(\ell) = \log(1 + e^{\ell}).$$
#
# The simplest generative model of MNIST makes every pixel independent, with $\pi_j$ the fraction of
# training images in which pixel $j$ is on: the mean image (clamped away from 0 and 1, since a pixel that
# was never on in training would otherwise give a test image that has it on probability 0).

# %%
def bernoulli_log_likelihood(x, logits):
    """log p(x) of images x (B, 1, 28, 28) in {0, 1} under independent Bernoulli(sigmoid(logits)) pixels: (B,)."""
    return (x * logits - F.softplus(logits)).sum(dim=(1, 2, 3))


pi = mean_image.clamp(1e-3, 1 - 1e-3)          # (28, 28): P(pixel on), from the grey training images
logits = torch.log(pi) - torch.log1p(-pi)       # the inverse of the sigmoid
static_test = vaelib.MNIST("test", binarize="static")
x_test, _ = static_test.first(10_000)           # the 10,000 test images, statically binarized
mine = bernoulli_log_likelihood(x_test, logits.expand(len(x_test), 1, 28, 28))
theirs = vaelib.likelihoods.BernoulliLikelihood()(logits.expand(len(x_test), 1, 28, 28)).log_prob(x_test)
ok = torch.allclose(mine, theirs, atol=1e-3)
assert ok
print("log p(x) shape:", tuple(mine.shape))
print("matches vaelib.likelihoods.BernoulliLikelihood:", ok)
print(f"independent-pixel model, mean test log-likelihood: {mine.mean():.1f} nats per image")

# %% [markdown]
# From now on the series uses `vaelib.likelihoods.BernoulliLikelihood` (what `build_vae(likelihood="bernoulli")`
# puts on top of its decoder). For scale, score a real VAE on the *same* 10,000 statically binarized test
# images: the 2-D VAE of `pretrained/vae_2d.pth`, which notebooks 01 and 02 take apart. `load_or_train` loads
# it from `pretrained/` (or trains it, with `TRAIN_FROM_SCRATCH = True`), and
# `vaelib.evaluation.evaluate_elbo` returns its average ELBO, a *lower bound* on its log-likelihood (notebook 02).
# Comparing numbers measured on different binarizations would mix two protocols, the mistake that notebook 08
# warns against; here both models see the same binary images.

# %%
vae_2d, _ = load_or_train("vae_2d", vaelib.MNIST("train", binarize="dynamic", subset=10_000 if FAST else None),
                          train_from_scratch=TRAIN_FROM_SCRATCH)
vae_elbo = vaelib.evaluation.evaluate_elbo(vae_2d, static_test, seed=0)["elbo"]
gain = vae_elbo - mine.mean().item()
print(f"same static test images: 2-D VAE ELBO {vae_elbo:.1f}, independent pixels {mine.mean():.1f} nats per image")
print(f"the VAE's bound is {gain:.0f} nats higher: a factor of at least e^{gain:.0f} = 10^{gain / math.log(10):.0f} "
      "in probability, per image (a geometric mean over the test images)")

# %% [markdown]
# Even a lower bound on the VAE's log-likelihood beats the independent-pixel model by tens of nats per image
# (the margin printed above), and a nat is a factor of $e$ in probability. Where does the independent-pixel
# model go wrong? Sample from it:

# %%
torch.manual_seed(0)
samples = torch.bernoulli(pi.expand(16, 1, 28, 28))
show_images(samples, nrow=16, title="samples from the independent-pixel model")
plt.show()

# %% [markdown]
# These samples are speckled blobs in the shape of the mean image, not digits. Each pixel is drawn on
# its own, so nothing makes the pixels of one stroke switch on *together*. Real images have strong
# dependencies: once you know a few pixels of a 7, you know most of the others. A **latent variable**
# captures them: first draw a hidden code $z$ (which digit, which style), then draw the pixels
# independently *given* $z$. That is the VAE, and notebook 02 builds it; notebook 01 first looks at the
# deterministic ancestor of the idea, the autoencoder.

# %% [markdown]
# ## Key takeaways
#
# - A generative model is a distribution $p_\theta(x)$ we can sample and (usually) score; maximum
#   likelihood fits it, which is the same as minimizing $\mathrm{KL}(p_\text{data}\,\|\,p_\theta)$.
# - `vaelib.MNIST` holds a split as a `uint8` tensor `(N, 1, 28, 28)` and serves float batches; the
#   classes are roughly balanced (train counts 5923 ... 5949).
# - MNIST's grey levels are nearly binary: 81% of pixels are exactly 0, 67 pixels are black in every image.
# - A continuous density on such data has an unbounded likelihood; a Bernoulli likelihood on binarized
#   images is a probability, so $\log p(x) \le 0$ and maximum likelihood is well posed.
# - Dynamic binarization draws fresh 0/1 images every batch (augmentation); static draws one fixed data
#   set (overfits more). Reported numbers depend on the protocol.
# - Independent pixels make a poor model ($-206.0$ nats per test image, speckled samples): we need
#   latent variables to tie pixels together.

# %% [markdown]
# ## Exercises
#
# Each exercise names its tier: *warm-up* (apply what a section showed), *core* (the notebook's main idea in a
# new setting), *stretch* (goes beyond the notebook; optional).
#
# The solutions are inline, in the cell of each exercise between two marker comments: try the exercise before you
# read its solution, and run the check after it, which names the mistake it finds. An instructor hands out
# versions without them: `python -m vaelib coursework notebooks/ --out student/` replaces each solution by a
# stub, or `--nbgrader course/` writes an nbgrader course that grades the checks (notebooks/README.md).
#
# **Exercise 1 (warm-up): class means.** Write `class_means(images, labels)`: the mean image of each digit class, shape `(10, 1, 28, 28)`
# (row `c` is the average of the images whose label is `c`), and `closest_pair(means)`: the two *different* classes
# whose mean images are closest in Euclidean distance, as a pair `(a, b)`. Check them with `check_class_means` and
# `check_closest_pair`; then, in the next cell, apply them to the grey training images (`grey`, `train.labels`),
# show the ten means in one row, and print the closest pair and its distance.

# %%
from vaelib.course.checks import check_class_means, check_closest_pair


def class_means(images, labels):
    ### BEGIN SOLUTION
    return torch.stack([images[labels == c].mean(0) for c in range(10)])
    ### END SOLUTION


def closest_pair(means):
    ### BEGIN SOLUTION
    dist = torch.cdist(means.flatten(1), means.flatten(1))
    dist.fill_diagonal_(float("inf"))            # a class is at distance 0 from itself
    return divmod(dist.argmin().item(), len(means))
    ### END SOLUTION


check_class_means(class_means)
check_closest_pair(closest_pair)

# %%
### BEGIN SOLUTION
means = class_means(grey, train.labels)          # (10, 1, 28, 28)
show_images(means, nrow=10, title="mean image of each digit")
plt.show()
a, b = closest_pair(means)
print(f"closest class means: {a} and {b} (distance {(means[a] - means[b]).norm():.2f})")
### END SOLUTION

# %% [markdown]
# **Exercise 2 (core): the expected log-likelihood.** Under dynamic binarization the model sees a random binary image $x^\text{bin}$ each
# time. Show that the *expected* Bernoulli log-likelihood is the binary cross-entropy with the grey
# levels as targets, $\mathbb{E}\big[\log p(x^\text{bin})\big] = \sum_j \big[g_j \log \pi_j + (1-g_j)\log(1-\pi_j)\big]$
# (it follows from $\mathbb{E}[x^\text{bin}_j] = g_j$ and linearity), and check it by Monte Carlo. Write
# `expected_log_likelihood_mc(grey, logits, n, generator)`: draw `n` dynamic binarizations of one image's grey
# levels `grey` (shape `(1, 28, 28)`) with `generator`, score each with `bernoulli_log_likelihood`, and return
# their average. Check it with `check_expected_log_likelihood_mc`, then, in the next cell, run it on the first
# test image and the independent-pixel model (`logits`) with 5000 draws, and compare with the formula.

# %%
from vaelib.course.checks import check_expected_log_likelihood_mc


def expected_log_likelihood_mc(grey, logits, n, generator):
    ### BEGIN SOLUTION
    x_bin = torch.bernoulli(grey.expand(n, 1, 28, 28), generator=generator)   # n binary versions of the image
    return bernoulli_log_likelihood(x_bin, logits.expand(n, 1, 28, 28)).mean()
    ### END SOLUTION


check_expected_log_likelihood_mc(expected_log_likelihood_mc)

# %%
### BEGIN SOLUTION
g_img = test.images[0].float() / 255                       # (1, 28, 28) grey levels of the first test image
mc = expected_log_likelihood_mc(g_img, logits, 5000, torch.Generator().manual_seed(0))
exact = bernoulli_log_likelihood(g_img[None], logits.expand(1, 1, 28, 28))[0]   # the same formula with grey targets
print(f"Monte Carlo {mc:.1f} nats, grey-target formula {exact:.1f} nats")
assert abs(mc - exact) < 1.0
### END SOLUTION

# %% [markdown]
# **Exercise 3 (core, written): static or dynamic?** A VAE trained on statically binarized MNIST usually reaches a *better* training
# ELBO but a *worse* test ELBO than the same VAE trained with dynamic binarization. Explain why.

# %% [markdown]
# ### BEGIN SOLUTION
#
# With static binarization the training set is one fixed set of 60,000 binary images, and the noise of
# that particular draw (which edge pixels happen to be on) is part of the data. A flexible model can
# memorize it, which raises the training likelihood but does not carry over to the test images, whose
# edge pixels were drawn independently: the model overfits. With dynamic binarization every epoch shows
# new random versions of each digit, so the only thing worth learning is what all draws share, the
# underlying grey image; the training ELBO is evaluated on fresh noise and stays lower, and the gap
# between training and test is smaller.
#
# ### END SOLUTION


# %% [markdown]
# **Exercise 4 (stretch): a mixture ties the pixels together.** The independent-pixel model cannot switch the
# pixels of a stroke on together. A *mixture* can: first draw a component $k$ with probability $w_k$, then
# every pixel independently with component $k$'s probabilities $\pi_{kj} = \sigma(\ell_{kj})$:
#
# $$p(x) = \sum_{k=1}^{K} w_k \prod_{j=1}^{784} \pi_{kj}^{\,x_j}(1 - \pi_{kj})^{1 - x_j}.$$
#
# This is a latent-variable model with a *discrete* latent $k$, the simplest ancestor of the VAE. Write
# `mixture_log_likelihood(x, logits, weights)`: for binary images `x` of shape `(B, 1, 28, 28)`, component logits
# `logits` of shape `(K, 1, 28, 28)` and weights `weights` of shape `(K,)` (summing to 1), return $\log p(x)$,
# one number per image, shape `(B,)`. Each component gives an image a probability of about $e^{-200}$ or far
# less, which underflows, so stay in log space. Check it with `check_mixture_log_likelihood`. Then, in the next
# cell, build a mixture of $K = 10$ components from the class means of exercise 1 (clamped as in section 6, with
# the training set's class frequencies as weights), score the first 2,000 static test images `x_test[:2000]`,
# print its mean log-likelihood next to the independent-pixel model's on the same images, and show 16 samples
# (draw $k$, then the pixels). How much does knowing *which digit* buy, and do the samples look like digits?

# %%
from vaelib.course.checks import check_mixture_log_likelihood


def mixture_log_likelihood(x, logits, weights):
    ### BEGIN SOLUTION
    per_component = (x[:, None] * logits[None] - F.softplus(logits)[None]).sum(dim=(2, 3, 4))   # (B, K)
    return torch.logsumexp(per_component + weights.log(), dim=1)    # log sum_k w_k p_k(x), without leaving logs
    ### END SOLUTION


check_mixture_log_likelihood(mixture_log_likelihood)

# %%
### BEGIN SOLUTION
pi_k = class_means(grey, train.labels)[:, 0].clamp(1e-3, 1 - 1e-3)     # (10, 28, 28): one component per digit
mix_logits = (torch.log(pi_k) - torch.log1p(-pi_k))[:, None]            # (10, 1, 28, 28)
mix_weights = train_counts / train_counts.sum()
mix_ll = mixture_log_likelihood(x_test[:2000], mix_logits, mix_weights)
print(f"first 2,000 static test images: mixture of the 10 class means {mix_ll.mean():.1f}, "
      f"independent pixels {mine[:2000].mean():.1f} nats per image")
g = torch.Generator().manual_seed(0)
k = torch.multinomial(mix_weights, 16, replacement=True, generator=g)   # a component for each sample
show_images(torch.bernoulli(pi_k[k, None], generator=g), nrow=16, title="samples from the 10-component mixture")
plt.show()
# Knowing the digit is worth tens of nats per image: a component switches on the pixels of its class together.
# The samples are still speckled blobs, each shaped like one class mean: within a component the pixels are
# independent again, and ten components cannot hold the styles of 60,000 digits. The VAE keeps the idea and
# replaces the ten discrete choices by a continuous code z, and the ten mean images by a decoder network.
### END SOLUTION

# %% [markdown]
# ## References
#
# - Burda, Y., Grosse, R. and Salakhutdinov, R. (2015). Importance weighted autoencoders. *International
#   Conference on Learning Representations (ICLR) 2016*. [arXiv:1509.00519](https://arxiv.org/abs/1509.00519)
# - Kingma, D. P. and Welling, M. (2014). Auto-encoding variational Bayes. *International Conference on Learning
#   Representations (ICLR) 2014*. [arXiv:1312.6114](https://arxiv.org/abs/1312.6114)
# - Larochelle, H. and Murray, I. (2011). The neural autoregressive distribution estimator. *Proceedings of the
#   14th International Conference on Artificial Intelligence and Statistics (AISTATS)*, PMLR 15:29-37.
#   [proceedings.mlr.press/v15/larochelle11a](https://proceedings.mlr.press/v15/larochelle11a.html)
# - Loaiza-Ganem, G. and Cunningham, J. P. (2019). The continuous Bernoulli: fixing a pervasive error in
#   variational autoencoders. *Advances in Neural Information Processing Systems 32 (NeurIPS 2019)*.
#   [arXiv:1907.06845](https://arxiv.org/abs/1907.06845)
# - Rezende, D. J., Mohamed, S. and Wierstra, D. (2014). Stochastic backpropagation and approximate inference in
#   deep generative models. *Proceedings of the 31st International Conference on Machine Learning (ICML 2014)*,
#   PMLR 32. [arXiv:1401.4082](https://arxiv.org/abs/1401.4082)
