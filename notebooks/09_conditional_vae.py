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
# # 09 · Conditional VAE: telling the model which digit to draw
#
# A VAE trained on MNIST draws a random digit: to get a 7 you would have to search the latent space
# for the region where 7s live (notebook 07 showed where that is in 2-D). But MNIST comes with
# labels, and a **conditional VAE** (CVAE, Sohn et al. 2015) uses them: the encoder and the decoder
# are both told the label $y$, so at generation time we choose the digit and the latent code $z$
# only has to supply the rest, the *style*: slant, thickness, width, the loop of a 2.
#
# **Learning objectives**
#
# - Derive the conditional ELBO, a lower bound on $\log p(x\mid y)$ with encoder $q(z\mid x,y)$,
#   decoder $p(x\mid z,y)$ and prior $p(z)$.
# - Implement conditioning: a one-hot label concatenated to the encoder's input and the decoder's
#   input; write it in plain torch and check it against `vaelib`'s conditional networks.
# - Generate a chosen digit in many styles, one style across all ten digits, and the 2-D style
#   manifold of one digit, with the pretrained `pretrained/cvae_2d.pth`.
# - Explain, with the KL term, why the latent code of a CVAE encodes style and not class, and check
#   it on the scatter of posterior means.
# - Train and sample a CVAE from the command line.
# - Condition on an image: complete the bottom half of a digit from its top half with a CVAE, and show why it
#   beats a deterministic regressor, in the pictures and in the conditional likelihood.
#
# **Prerequisites**
#
# - Notebook 02 (the ELBO and Jensen's inequality), 03 (the Gaussian KL), 05 (training a VAE), and
#   07 (the 2-D latent space: scatter of posterior means, `plot_manifold`).
# - Maths: conditional probability and Bayes' rule, one-hot vectors, matrix-vector products.

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
import math
import os
import tempfile

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import vaelib
import vaelib.course.pretrained
import vaelib.runs
from vaelib.plotting import plot_latent_scatter, plot_manifold, show_images
from vaelib.course import figure_path

FAST = vaelib.course.fast_mode()      # True when VAELIB_FAST=1: the smoke-test mode that CI uses
print(vaelib.course.mode_name())    # what made the outputs below: learner mode, or CI's fast mode
TRAIN_FROM_SCRATCH = False     # set True to retrain instead of loading pretrained/ checkpoints
torch.manual_seed(0)
device = "cpu"

test = vaelib.MNIST("test", binarize="dynamic")
train = vaelib.MNIST("train", binarize="dynamic", subset=5000 if FAST else None)  # only used to (re)train
x_test, y_test = test.first(10000, seed=0)    # one fixed binarization of the test set
print(x_test.shape, y_test.shape, y_test[:10].tolist())

# %% [markdown]
# ## The conditional ELBO
#
# We now model the images of one class, $p(x\mid y)$, with a latent variable $z$. The generative
# story: pick the label $y$ (we choose it), draw a style $z\sim p(z)=\mathcal N(0, I)$, independent of
# $y$, and draw the image from the decoder, $x\sim p(x\mid z, y)$. So
# $$p(x\mid y) = \int p(x\mid z, y)\, p(z)\, dz .$$
# As in notebook 02 the integral is intractable, and we bring in an encoder that sees both the
# image and its label, $q(z\mid x, y)=\mathcal N\big(\mu(x,y), \operatorname{diag}\sigma^2(x,y)\big)$.
# Multiply and divide by it inside the integral, then apply Jensen's inequality ($\log$ is concave):
# $$\log p(x\mid y) = \log \mathbb E_{q(z\mid x,y)}\!\left[\frac{p(x\mid z,y)\,p(z)}{q(z\mid x,y)}\right]
# \;\ge\; \mathbb E_{q(z\mid x,y)}\!\left[\log\frac{p(x\mid z,y)\,p(z)}{q(z\mid x,y)}\right].$$
# Splitting the log of the product gives the **conditional ELBO**:
# $$\boxed{\;\mathcal L(x, y) = \mathbb E_{q(z\mid x,y)}\big[\log p(x\mid z,y)\big]
#  - \mathrm{KL}\big(q(z\mid x,y)\,\big\|\,p(z)\big) \;\le\; \log p(x\mid y).\;}$$
# It is the ELBO of notebook 02 with $y$ added to the conditioning of the encoder and the decoder and
# nothing else changed: the reconstruction term is estimated with one reparameterized sample, the
# KL is the closed form of notebook 03 (the prior is still $\mathcal N(0, I)$), the gap is
# $\mathrm{KL}\big(q(z\mid x,y)\,\|\,p(z\mid x,y)\big)$, and training maximizes
# $\frac1N\sum_n \mathcal L(x_n, y_n)$ over labelled pairs.
#
# ### Why $z$ should end up encoding style, not class
#
# Average the KL term over the images of one class $y$, and call $q(z\mid y)=\mathbb E_{x\mid y}\,
# q(z\mid x,y)$ the aggregate posterior of that class. The mutual-information decomposition of the KL term
# (Hoffman and Johnson's "ELBO surgery", 2016; add and subtract $\log q(z\mid y)$ inside the KL) splits it in two:
# $$\mathbb E_{x\mid y}\,\mathrm{KL}\big(q(z\mid x,y)\,\|\,p(z)\big)
#  = \underbrace{I_q(x; z\mid y)}_{\text{what } z \text{ says about } x \text{ beyond } y}
#  + \mathrm{KL}\big(q(z\mid y)\,\|\,p(z)\big).$$
# Every nat that $z$ carries costs a nat of ELBO. Information about the class is useless for
# reconstruction, because the decoder already receives $y$, so the encoder saves that cost by not
# putting it in $z$; and the second term pushes *each class's* codes towards the same
# $\mathcal N(0, I)$. The optimum keeps in $z$ only what the label does not say: the style. We
# check both predictions on the trained model below.

# %% [markdown]
# ## How conditioning is implemented: concatenate a one-hot label
#
# The label enters both networks as a **one-hot** vector $e_y\in\{0,1\}^{10}$ (a 1 in position $y$)
# appended to what the first dense layer reads:
#
# - encoder: $h = \operatorname{relu}\big(W_1 [x; e_y] + b_1\big)$, then $\mu = W_\mu h + b_\mu$,
#   $\log\sigma^2 = W_\sigma h + b_\sigma$ (for the MLP, $x$ is the 784 flattened pixels, so $W_1$ has
#   $784+10$ columns; a conv encoder appends $e_y$ to its flattened convolutional features instead);
# - decoder: $h' = \operatorname{relu}\big(W_2 [z; e_y] + b_2\big)$, logits $= W_3 h' + b_3$.
#
# Splitting $W_1 = [W_x \; W_y]$ shows what the one-hot does:
# $W_1[x; e_y] = W_x x + W_y e_y = W_x x + (\text{column } y \text{ of } W_y)$: **a learned bias vector
# per class**, added to the first layer. We write both networks in plain torch for a tiny batch, take
# the weights from a small (untrained) `vaelib` CVAE, and check that we get the same numbers.

# %%
small = vaelib.build_vae("mlp", latent_dim=2, hidden=16, num_classes=10)   # a tiny CVAE to check against
x, y = x_test[:4], y_test[:4]
enc, dec = small.encoder, small.decoder
print("encoder first layer:", tuple(enc.fc.weight.shape), " decoder first layer:", tuple(dec.fc.weight.shape))

one_hot = torch.zeros(len(y), 10)
one_hot[torch.arange(len(y)), y] = 1.0                        # e_y, one row per example
assert torch.equal(one_hot, F.one_hot(y, 10).float())

with torch.no_grad():
    W1, b1 = enc.fc.weight, enc.fc.bias                       # weights copied from vaelib's encoder
    h = torch.relu(torch.cat([x.flatten(1), one_hot], 1) @ W1.T + b1)
    my_mu, my_logvar = h @ enc.mu.weight.T + enc.mu.bias, h @ enc.logvar.weight.T + enc.logvar.bias
    ref_mu, ref_logvar = enc(x, y)
    ok_enc = torch.allclose(my_mu, ref_mu, atol=1e-6) and torch.allclose(my_logvar, ref_logvar, atol=1e-6)

    W_x, W_y = W1[:, :784], W1[:, 784:]                       # the one-hot = a per-class bias
    ok_bias = torch.allclose(torch.cat([x.flatten(1), one_hot], 1) @ W1.T, x.flatten(1) @ W_x.T + W_y[:, y].T,
                             atol=1e-6)

    z = torch.randn(4, 2)
    h2 = torch.relu(torch.cat([z, one_hot], 1) @ dec.fc.weight.T + dec.fc.bias)
    my_logits = (h2 @ dec.out.weight.T + dec.out.bias).view(-1, 1, 28, 28)
    ok_dec = torch.allclose(my_logits, dec(z, y), atol=1e-6)
assert ok_enc and ok_bias and ok_dec
print("encoder matches vaelib.networks.MLPEncoder(num_classes=10):", ok_enc)
print("one-hot column == per-class bias:", ok_bias)
print("decoder matches vaelib.networks.MLPDecoder(num_classes=10):", ok_dec)

# %% [markdown]
# Now the whole conditional ELBO for the tiny batch: encode with the label, draw one $z$ with the
# reparameterization trick, decode with the label, and add the Bernoulli log-likelihood (minus the
# binary cross-entropy, summed over pixels) and minus the Gaussian KL. We fix the noise $\varepsilon$ by
# seeding, so `small.elbo_terms(x, y=y)` draws the same one.

# %%
torch.manual_seed(1)
with torch.no_grad():
    mu, logvar = small.encoder(x, y)
    eps = torch.randn_like(mu)
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = small.decoder(z, y)
    reconstruction = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1)
    my_elbo = reconstruction - kl
torch.manual_seed(1)
with torch.no_grad():
    terms = small.elbo_terms(x, y=y)
ok = torch.allclose(my_elbo, terms.value, atol=1e-3)
assert ok
print("conditional ELBO per example (untrained, nats):", [round(v) for v in my_elbo.tolist()])
print("matches vaelib VAE.elbo_terms(x, y=y):", ok)

# %% [markdown]
# In `vaelib`, `build_vae(..., num_classes=10)` builds exactly this, and every method of the model
# takes the labels as `y=`: `model.elbo_terms(x, y=y)`, `model.encode(x, y)`, `model.decode_mean(z, y)`,
# `model.sample(n, y=labels)`. Forgetting them is an error, not a silent unconditional run:

# %%
try:
    small.decode_mean(torch.zeros(1, 2))
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# ## The pretrained CVAE
#
# `pretrained/cvae_2d.pth` is the MLP VAE of notebook 07 (784 → 400 → 2, Bernoulli likelihood,
# dynamic binarization), made conditional, trained for 30 epochs. It was trained with the command
# line:
#
# ```bash
# python -m vaelib train cvae --arch mlp --hidden_dim 2 --conditional --num_epochs 30
# ```
#
# (`--hidden_dim` is the latent size; `--conditional` sets `num_classes=10`; the checkpoint is
# `runs/cvae/checkpoint_best.pth`, and `python -m vaelib export` stripped its optimizer state.) With
# `TRAIN_FROM_SCRATCH = True` the next cell trains one in the notebook instead, briefly in FAST mode.

# %%
cvae, history = vaelib.course.pretrained.load_or_train("cvae_2d", train, test, train_from_scratch=TRAIN_FROM_SCRATCH)
cvae = cvae.to(device).eval()
vae = vaelib.course.pretrained.load_or_train("vae_2d", train, test, train_from_scratch=TRAIN_FROM_SCRATCH)[0].eval()
print("config:", {k: getattr(cvae.config, k) for k in ("arch", "latent_dim", "likelihood", "num_classes")})
print("encoder input:", cvae.encoder.fc.in_features, "= 784 pixels + 10; decoder input:",
      cvae.decoder.fc.in_features, "= 2 + 10")
torch.manual_seed(0)
with torch.no_grad():
    elbo_cvae = cvae.elbo_terms(x_test[:2000], y=y_test[:2000]).value.mean().item()
    elbo_vae = vae.elbo_terms(x_test[:2000]).value.mean().item()

# %% [markdown]
# How much does the label help? Both models have two latent dimensions; we compare their ELBO on
# 2,000 test images (one sample of $z$ each, so the numbers carry a little noise).

# %%
print(f"2-D VAE,  ELBO bound on log p(x):   {elbo_vae:7.1f} nats")
print(f"2-D CVAE, ELBO bound on log p(x|y): {elbo_cvae:7.1f} nats")

# %% [markdown]
# The CVAE's bound is far higher. Part of that is free: by Bayes' rule
# $\log p(x\mid y) = \log p(x) + \log p(y\mid x) - \log p(y)$, and for a clearly written digit
# $p(y\mid x)\approx 1$, $p(y)=\tfrac1{10}$, so knowing the label is worth at most
# $\log 10\approx 2.3$ nats. The rest of the gain is the point of this notebook: the unconditional
# model spends its two latent numbers on *which digit*, the CVAE spends them entirely on *how it is
# written*, and reconstructs better.
#
# ## A chosen digit in many styles
#
# To draw a 7: sample $z\sim\mathcal N(0, I)$ and decode with $y=7$. One label per image:
# `cvae.sample(n, y=torch.full((n,), 7))`.

# %%
digit = 7
g = torch.Generator().manual_seed(0)
sevens = cvae.sample(64, y=torch.full((64,), digit), generator=g)
print("samples:", tuple(sevens.shape), "values in [0, 1]:", bool(sevens.min() >= 0 and sevens.max() <= 1))
fig = show_images(sevens, nrow=8, title=f"64 samples with y = {digit}")
plt.show()

# %% [markdown]
# Every sample is a 7, unlike the unconditional samples of notebook 05, where the digit is left to
# chance; what changes from one to the next is the style: upright or slanted, narrow or wide, a
# straight or a curved stem, a thin or a bold stroke.
#
# ## One style across all ten digits
#
# Now fix $z$ and vary $y$: each row below is one latent code $z$ (drawn from the prior), decoded
# with each of the ten labels.

# %%
g = torch.Generator().manual_seed(1)
n_styles = 8
z_styles = torch.randn(n_styles, 2, generator=g)
z_grid = z_styles.repeat_interleave(10, dim=0)          # each z ten times: (80, 2)
y_grid = torch.arange(10).repeat(n_styles)              # 0..9 for every z:  (80,)
print("z for row 0:", [round(v, 2) for v in z_grid[0].tolist()], "labels of row 0:", y_grid[:10].tolist())
images = cvae.decode_mean(z_grid, y_grid)
fig = show_images(images, nrow=10, title="rows: one z each; columns: y = 0 ... 9",
                  save=figure_path("cvae_styles.png"))
plt.show()

# %% [markdown]
# Read across a row: the same slant, stroke width and size carry over to every digit, so one latent
# code is one "handwriting". Read down a column: the digit never changes, only its style. The label
# and the latent code have split the work between them.

# %% [markdown]
# `vaelib.course.widgets.digit_selector` lets you do this by hand: buttons choose the digit $y$, sliders move the
# style $z$, and the decoded digit follows. Its update function is `decode_point(model, z, y=digit)`:

# %%
from vaelib.course.widgets import decode_point, digit_selector

styled = torch.stack([decode_point(cvae, z_styles[0], y=d) for d in range(10)])
assert torch.allclose(styled, images[:10])   # the first row of the grid above
print("decode_point(cvae, z, y=d) for d = 0..9 gives row 0 of the grid:", tuple(styled.shape))

# %%
# NBVAL_IGNORE_OUTPUT
digit_selector(cvae)

# %% [markdown]
# ### Style transfer from real digits
#
# The encoder gives the style of a real image: encode a test digit with its own label, keep the
# posterior mean, and decode it with all ten labels. The first column is the real digit.

# %%
idx = torch.tensor([(y_test == k).nonzero()[0, 0].item() for k in (0, 2, 4, 7, 9)])   # one test digit of five classes
with torch.no_grad():
    mu_real = cvae.encoder(x_test[idx], y_test[idx])[0]
transferred = cvae.decode_mean(mu_real.repeat_interleave(10, 0), torch.arange(10).repeat(len(idx)))
rows = torch.cat([x_test[idx].unsqueeze(1), transferred.view(len(idx), 10, 1, 28, 28)], dim=1)
fig = show_images(rows.flatten(0, 1), nrow=11, title="real digit, then its style with y = 0 ... 9")
plt.show()

# %% [markdown]
# Each row starts from the first test image of its class (0, 2, 4, 7 and 9, as the cell selects them) and
# carries that digit's style to all ten classes: compare each row with its first column. The coarse style
# travels, the slant (upright digits give upright rows, slanted ones slanted rows) and the width; two numbers
# cannot hold every detail, so finer features of the real digit, such as a stroke's thickness or an unusual
# loop, may not survive.
#
# ## The 2-D style manifold of one digit
#
# `plot_manifold(model, n, ..., y=...)` decodes an $n\times n$ grid of the latent plane, and passes
# `y` straight to `model.decode_mean(z, y)`, so it needs **one label per decoded point**: $n^2$ labels.

# %%
n = 15
y_manifold = torch.full((n * n,), digit)
print("labels for the manifold:", tuple(y_manifold.shape))
fig = plot_manifold(cvae, n=n, y=y_manifold)
fig.axes[0].set_title(f"style manifold of the digit {digit}")
plt.show()

# %% [markdown]
# The whole plane is now 7s. Going down (smaller $z_1$) the 7 leans further to the right and gets
# wider; going right (larger $z_0$) its stroke gets bolder and its corner rounder. Which direction
# means what is an accident of training, but every point is a 7. Compare with the manifold of
# notebook 07, where the same plane held all ten digits.
#
# ## What the latent code encodes now
#
# The derivation predicted that the codes carry no class information. Side by side, the posterior
# means of 5,000 test images for the unconditional 2-D VAE and for the CVAE, coloured by label:

# %%
fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.4))
plot_latent_scatter(vae, test, n=5000, ax=axes[0])
axes[0].set_title("VAE: E[z | x]")
plot_latent_scatter(cvae, test, n=5000, ax=axes[1])
axes[1].set_title("CVAE: E[z | x, y]")
plt.show()

# %% [markdown]
# Left, the familiar clusters, one region per digit. Right, the colours are mixed everywhere: every
# class fills the same round blob centred on the origin, so the position of a code says nothing
# about which digit it came from, only how it was written. A number for this: the fraction of the variance of the codes that
# the label explains (between-class variance over total variance, the $R^2$ of predicting $\mu$ from
# the class centroid), and how far each class's centroid is from the origin.

# %%
def variance_explained_by_label(mu: torch.Tensor, labels: torch.Tensor) -> float:
    """Between-class variance of codes mu (N, D) over their total variance: 0 (no class info) to 1."""
    centroids = torch.stack([mu[labels == k].mean(0) for k in range(10)])
    between = ((centroids[labels] - mu.mean(0)) ** 2).sum()
    total = ((mu - mu.mean(0)) ** 2).sum()
    return (between / total).item()


with torch.no_grad():
    mu_vae = vae.encoder(x_test)[0]
    mu_cvae = cvae.encoder(x_test, y_test)[0]
print(f"variance of the codes explained by the label: VAE {variance_explained_by_label(mu_vae, y_test):.2f}, "
      f"CVAE {variance_explained_by_label(mu_cvae, y_test):.2f}")
norms = torch.stack([mu_cvae[y_test == k].mean(0) for k in range(10)]).norm(dim=1)
print("CVAE class centroids, distance from 0:", [round(v, 1) for v in norms.tolist()])

# %% [markdown]
# For the VAE the label explains most of the spread of the codes; for the CVAE almost none, and
# every class's centroid sits close to the origin: each $q(z\mid y)$ is close to the same prior, as
# the second KL term asked.
#
# ## From the command line
#
# The same model trains and samples without a notebook. Training (several minutes on a laptop CPU
# for 30 epochs, about a minute on a GPU):
#
# ```bash
# python -m vaelib train cvae --arch mlp --hidden_dim 2 --conditional --num_epochs 30
# ```
#
# and sampling a chosen digit from the checkpoint it writes (without `--digit`, a conditional model
# draws rows of 0 to 9):
#
# ```bash
# python -m vaelib generate --checkpoint_path runs/cvae/checkpoint_best.pth --digit 7 \
#     --num_samples 16 --grid_size 4 --output_path sevens.png
# ```
#
# The next cell calls `vaelib.runs.sample_grid`, the function behind `python -m vaelib generate`,
# with the same settings as that command (`n=16, nrow=4, digit=7`), on the checkpoint of our
# model, in a temporary folder, and shows the file it wrote. It draws $z$ with a generator seeded
# by `seed` (`--seed`, default 0), so it must give exactly what `cvae.sample(16, y=...,
# generator=...)` gives with the same seed.

# %%
with tempfile.TemporaryDirectory() as tmp:
    checkpoint = vaelib.course.pretrained.pretrained_path("cvae_2d")
    if TRAIN_FROM_SCRATCH or not checkpoint.exists():
        checkpoint = vaelib.save(cvae, os.path.join(tmp, "cvae.pth"))
    written = vaelib.runs.sample_grid(checkpoint, os.path.join(tmp, "sevens.png"), n=16, nrow=4, seed=0, digit=7)
    print("wrote", written.name)
    grid_png = plt.imread(written)                   # (H, W): a greyscale PNG, values in [0, 1]
g = torch.Generator().manual_seed(0)
api = cvae.sample(16, y=torch.full((16,), 7), generator=g)
big = vaelib.plotting.image_grid(api, 4).repeat_interleave(4, 0).repeat_interleave(4, 1)
same = (torch.from_numpy(grid_png).float() - big).abs().max().item() < 0.01   # up to 8-bit PNG rounding
print("the grid of generate's function equals cvae.sample with the same seed:", same)
fig, ax = plt.subplots(figsize=(3, 3))
ax.imshow(grid_png, cmap="gray", vmin=0, vmax=1)
ax.axis("off")
plt.show()

# %% [markdown]
# The grid that `generate`'s function wrote: sixteen 7s, the same as the first samples drawn through the Python
# API with seed 0.
#
# ## Structured output: the bottom half of a digit from its top half
#
# So far the condition was a label. It can be any input the networks take, an image included: Sohn, Lee and Yan
# (2015) introduced the CVAE for **structured output prediction**, where one input has many right answers. Show the
# top 14 rows of a digit and ask for the bottom 14. The top of a 7 may end as a 7 or a 9, the top of a 3 may close
# as a 3 or an 8. Two models, written here in plain torch and trained by `vaelib.fit` with their own objectives (the
# contract of notebook 10: any `nn.Module`, and a function that returns the loss and the sums to report):
#
# - a **regressor**, top half $\to$ the 392 Bernoulli logits of the bottom half, trained on their log-likelihood.
#   It gives *one* answer per input: where the plausible bottoms disagree, its pixel probabilities average them;
# - a **CVAE** whose condition is the top half: $q(z\mid \text{top}, \text{bottom})$, $p(\text{bottom}\mid
#   \text{top}, z)$ and the prior $\mathcal N(0, I)$ (Sohn et al. also learn a prior $p(z\mid\text{top})$; we keep it
#   simple). Each $z$ decodes to one complete answer. Both train for 10 epochs on 20,000 training images (2 on
#   5,000 in fast mode).

# %%
# NBVAL_IGNORE_OUTPUT
class Regressor(torch.nn.Module):
    """Top half (B, 392) -> Bernoulli logits of the bottom half (B, 392)."""

    def __init__(self, hidden=400):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(392, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 392))

    def forward(self, top):
        return self.net(top)


class CompletionCVAE(torch.nn.Module):
    """q(z | top, bottom) from the whole image (B, 784), and p(bottom | top, z) as Bernoulli logits (..., 392)."""

    def __init__(self, latent=16, hidden=400):
        super().__init__()
        self.latent = latent
        self.encoder = torch.nn.Sequential(torch.nn.Linear(784, hidden), torch.nn.ReLU(),
                                           torch.nn.Linear(hidden, 2 * latent))      # mu and logvar
        self.decoder = torch.nn.Sequential(torch.nn.Linear(392 + latent, hidden), torch.nn.ReLU(),
                                           torch.nn.Linear(hidden, 392))

    def logits(self, top, z):
        return self.decoder(torch.cat([top, z], -1))


def halves(x):
    """Images (B, 1, 28, 28) -> their top and bottom 14 rows, flattened: (B, 392) each."""
    flat = x.flatten(1)
    return flat[:, :392], flat[:, 392:]


def bernoulli_log_prob(logits, target):
    """log p(target) under independent Bernoulli pixels, summed over the last dimension."""
    return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)


def regressor_objective(model, x, y, step):
    top, bottom = halves(x)
    nll = -bernoulli_log_prob(model(top), bottom)
    return vaelib.objectives.Estimate(nll.mean(), {"nll_bottom": nll.sum()})


def cvae_objective(model, x, y, step):
    """Minus the conditional ELBO: E_q[log p(bottom | top, z)] - KL(q(z | top, bottom) || N(0, I))."""
    top, bottom = halves(x)
    mu, logvar = model.encoder(x.flatten(1)).chunk(2, 1)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    rec = bernoulli_log_prob(model.logits(top, z), bottom)
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
    return vaelib.objectives.Estimate((kl - rec).mean(), {"reconstruction": rec.sum(), "kl": kl.sum()})


half_train = vaelib.MNIST("train", binarize="dynamic", subset=5000 if FAST else 20000)
torch.manual_seed(0)
regressor, completion = Regressor(), CompletionCVAE()
for model, objective in ((regressor, regressor_objective), (completion, cvae_objective)):
    history = vaelib.fit(model, half_train, epochs=2 if FAST else 10, objective=objective, progress=False, seed=0)
    print(f"{type(model).__name__:15s} last epoch: " + ", ".join(f"{k} {v:.2f}" for k, v in history[-1].items()
                                                              if k.startswith("train_")))

# %% [markdown]
# How good is each model's answer? Score the bottom halves of 1,000 test images by their conditional
# log-likelihood $\log p(\text{bottom}\mid\text{top})$: exact for the regressor, and for the CVAE notebook 08's
# importance-weighted bound with $k = 100$ samples of $q$ (a lower bound, so the CVAE's number is if anything too
# pessimistic).

# %%
# NBVAL_IGNORE_OUTPUT
x_half = x_test[:1000]
top, bottom = halves(x_half)
k = 100
with torch.no_grad():
    nll_regressor = -bernoulli_log_prob(regressor(top), bottom)                       # (1000,)
    mu, logvar = completion.encoder(x_half.flatten(1)).chunk(2, 1)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    eps = torch.randn(k, *mu.shape, generator=torch.Generator().manual_seed(0))
    z = mu + torch.exp(0.5 * logvar) * eps                                              # (k, 1000, D) from q
    log_w = (bernoulli_log_prob(completion.logits(top.expand(k, -1, -1), z), bottom.expand(k, -1, -1))
             + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z).sum(-1))   # (k, 1000)
    nll_cvae = -(torch.logsumexp(log_w, 0) - math.log(k))
gain = nll_regressor - nll_cvae
print(f"-log p(bottom | top), 1,000 test images: regressor {nll_regressor.mean():.2f} nats, CVAE {nll_cvae.mean():.2f} "
      f"(-L_{k}); paired difference {gain.mean():.2f} +- {gain.std() / math.sqrt(len(gain)):.2f}")
assert gain.mean() > 3 * gain.std() / math.sqrt(len(gain))

# %%
# NBVAL_IGNORE_OUTPUT
n_show, n_answers = 6, 5
top_show, _ = halves(x_test[:n_show])
with torch.no_grad():
    answers = [torch.sigmoid(regressor(top_show))]                                     # one answer per digit
    z_show = torch.randn(n_answers, n_show, completion.latent, generator=torch.Generator().manual_seed(1))
    answers += list(torch.sigmoid(completion.logits(top_show.expand(n_answers, -1, -1), z_show)))   # z ~ N(0, I)
masked = torch.cat([top_show, torch.full_like(top_show, 0.5)], 1)                       # the question: bottom unknown
rows = [x_test[:n_show].flatten(1), masked] + [torch.cat([top_show, a], 1) for a in answers]
grid = torch.stack(rows, 1).reshape(-1, 1, 28, 28)                                       # digit by digit
show_images(grid, nrow=len(rows), title="digit; its top half; the regressor's answer; five CVAE answers (z ~ N(0, I))")
plt.show()

# %% [markdown]
# Read the rows left to right: the digit, the question (its top half, the bottom grey), the regressor's answer, then
# five answers of the CVAE, each from its own $z \sim \mathcal N(0, I)$. The regressor gives one image per question,
# and where the top half leaves the ending open, as for the 2 (second row) and the 1 with a hook (third row), that
# image is a faint average of the endings. The CVAE's answers are each a more definite ending, and they differ: the
# 2's top half ends with a flat base in some, a loop in others, and once as a 3; the 4's strokes stop at different
# lengths. Not every answer fits: $z$ comes from a prior that never sees the top half, so some endings belong to
# another digit. Sohn et al.'s learned prior $p(z\mid\text{top})$ is the cure for that.
#
# The likelihood says the same as the picture: on 1,000 test images the CVAE's bottom halves are 20.82 +- 0.46 nats
# more likely than the regressor's (70.83 nats against at most 50.02). A model that can put its probability on
# several sharp endings beats one that must spread it over every pixel of their average.
#
# ## Key takeaways
#
# - A conditional VAE models $p(x\mid y)$: the conditional ELBO
#   $\mathbb E_{q(z\mid x,y)}[\log p(x\mid z,y)] - \mathrm{KL}(q(z\mid x,y)\,\|\,p(z))$ is the ELBO with
#   $y$ given to both networks; the prior stays $\mathcal N(0, I)$.
# - Conditioning is one concatenation per network: a one-hot label appended to the first dense
#   layer's input, which amounts to a learned per-class bias. In `vaelib`: `num_classes=10` and
#   `y=` everywhere.
# - Because the decoder already knows the class and every nat in $z$ costs KL, the latent code keeps
#   only the style: the posterior means are no longer clustered by label, and the label explains
#   almost none of their variance.
# - Fix $y$ and vary $z$: one digit in many styles. Fix $z$ and vary $y$: one handwriting for all ten
#   digits, including the style of a real image (style transfer).
# - The condition can be an image: a CVAE completes the bottom half of a digit with several sharp answers where a
#   regressor averages them into one blur, and its conditional likelihood is higher by 20.82 nats per image.

# %% [markdown]
# ## Exercises
#
# Each exercise names its tier: *warm-up* (apply what a section showed), *core* (the notebook's main idea in a
# new setting), *stretch* (goes beyond the notebook; optional).
#
# **Exercise 1 (warm-up): same grid, another digit.** First a helper for small grids of decoded digits, one row
# per latent code and one column per digit: write `style_grid(z_rows, digits)`, which returns the batch
# `(z, y)` to decode for such a grid, row by row (image $rC + c$ pairs `z_rows[r]` with `digits[c]`, for
# $C$ digits), and run `check_style_grid` on it. Then draw the style manifold of the digit 2 on the same
# quantile grid (`plot_manifold` with $n=15$) and print the shape of the labels you pass to it. Finally
# check that the style really lives in $z$: for the grid's corner points $z=(\pm1.5, \pm1.5)$, decode the
# digits 1, 2 and 7 with `style_grid` and show them in a $4\times3$ grid (one row per corner).

# %%
from vaelib.course.checks import check_style_grid


def style_grid(z_rows, digits):
    """z_rows (R, D), digits (C,) -> z (R*C, D), y (R*C,): row r of the grid is z_rows[r] with each digit."""
    ### BEGIN SOLUTION
    return z_rows.repeat_interleave(len(digits), 0), digits.repeat(len(z_rows))
    ### END SOLUTION


check_style_grid(style_grid)

# %%
### BEGIN SOLUTION
y_two = torch.full((15 * 15,), 2)
print("labels:", tuple(y_two.shape))
fig = plot_manifold(cvae, n=15, y=y_two)
fig.axes[0].set_title("style manifold of the digit 2")
plt.show()
corners = torch.tensor([[-1.5, 1.5], [1.5, 1.5], [-1.5, -1.5], [1.5, -1.5]])
fig = show_images(cvae.decode_mean(*style_grid(corners, torch.tensor([1, 2, 7]))), nrow=3,
                  title="corners of z: digits 1, 2, 7")
plt.show()
### END SOLUTION

# %% [markdown]
# The 2 manifold is organised like the 7 manifold: upright at the top, slanted at the bottom, and
# to the right the 2 grows a loop at its base. In the small grid the three digits of one row share
# their corner's style: upright in the first two rows, slanted in the last two.
#
# **Exercise 2 (stretch): a CVAE is also a classifier.** Bayes' rule gives $p(y\mid x)\propto p(x\mid y)\,p(y)$,
# and with a uniform $p(y)$ the most likely label is $\arg\max_y \log p(x\mid y)$. Approximate
# $\log p(x\mid y)$ by the conditional ELBO, averaged over `n_samples` samples of $z$: write
# `elbo_scores(model, x, n_samples)`, returning the `(B, 10)` matrix whose column $k$ holds this score of
# each image with the label $k$, and run `check_elbo_scores` on it. Then score the first 500 test images
# with 10 samples, and print the accuracy of the classifier $\arg\max_y$ rounded to 2 decimals. (Seed the
# sampling with `torch.manual_seed(0)` so that the result is reproducible.)

# %%
from vaelib.course.checks import check_elbo_scores


@torch.no_grad()
def elbo_scores(model, x, n_samples):
    """(B, 10): column k is the conditional ELBO of each image of x with the label k, averaged over n_samples z."""
    ### BEGIN SOLUTION
    scores = torch.zeros(len(x), 10)
    for k in range(10):
        label = torch.full((len(x),), k)
        scores[:, k] = torch.stack([model.elbo_terms(x, y=label).value for _ in range(n_samples)]).mean(0)
    return scores
    ### END SOLUTION


check_elbo_scores(elbo_scores)

# %%
### BEGIN SOLUTION
torch.manual_seed(0)
scores = elbo_scores(cvae, x_test[:500], 10)
accuracy = (scores.argmax(1) == y_test[:500]).float().mean().item()
print(f"accuracy of argmax_y ELBO(x, y): {accuracy:.2f}")
assert accuracy > 0.5
### END SOLUTION

# %% [markdown]
# Far above the 0.1 of guessing, without ever training a classifier: with the wrong label the
# decoder draws the wrong digit and the reconstruction term collapses. (It is below a real
# classifier's accuracy: the ELBO is only a bound, and its gap differs from label to label.)
#
# **Exercise 3 (core): can you read the digit from the code?** If $z$ carried the class, a simple classifier
# on $z$ would find it. Write `nearest_centroid_accuracy(z_train, y_train, z_test, y_test)`: compute the
# ten class centroids of the training codes, classify every test code by its nearest centroid
# (`torch.cdist`), and return the fraction classified correctly; run `check_nearest_centroid_accuracy` on
# it. Then encode the training images (`train.first(len(train), seed=0)`) and the test images with each
# model (the CVAE's encoder with the true labels), and print the accuracy for the VAE and for the CVAE,
# rounded to 2 decimals.

# %%
from vaelib.course.checks import check_nearest_centroid_accuracy


def nearest_centroid_accuracy(z_train, y_train, z_test, y_test):
    """Fraction of the test codes (N, D) whose nearest training-class centroid has their label."""
    ### BEGIN SOLUTION
    centroids = torch.stack([z_train[y_train == k].mean(0) for k in range(10)])
    predicted = torch.cdist(z_test, centroids).argmin(1)
    return (predicted == y_test).float().mean().item()
    ### END SOLUTION


check_nearest_centroid_accuracy(nearest_centroid_accuracy)

# %%
# NBVAL_IGNORE_OUTPUT
### BEGIN SOLUTION
x_tr, y_tr = train.first(len(train), seed=0)
with torch.no_grad():
    codes = {"VAE": (vae.encoder(x_tr)[0], vae.encoder(x_test)[0]),
             "CVAE": (cvae.encoder(x_tr, y_tr)[0], cvae.encoder(x_test, y_test)[0])}
for name, (z_tr, z_te) in codes.items():
    accuracy = nearest_centroid_accuracy(z_tr, y_tr, z_te, y_test)
    print(f"{name:4s}: nearest-centroid accuracy from the 2-D code {accuracy:.2f}")
### END SOLUTION

# %% [markdown]
# From the VAE's two numbers the digit can be read most of the time; from the CVAE's, barely more
# often than by guessing (0.1), although its encoder was *given* the label. The KL term made it
# throw that information away, because the decoder gets the label anyway.

# %% [markdown]
# ## References
#
# - Hoffman, M. D. and Johnson, M. J. (2016). ELBO surgery: yet another way to carve up the variational evidence
#   lower bound. *Workshop in Advances in Approximate Bayesian Inference, NIPS 2016*.
# - Sohn, K., Lee, H. and Yan, X. (2015). Learning structured output representation using deep conditional
#   generative models. *Advances in Neural Information Processing Systems 28 (NIPS 2015)*.
#   [papers.nips.cc/paper/5775](https://papers.nips.cc/paper/5775-learning-structured-output-representation-using-deep-conditional-generative-models)
