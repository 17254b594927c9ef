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
# # 01 · Autoencoders, and why they cannot generate
#
# **Learning objectives**
#
# - Write a plain (deterministic) autoencoder in plain torch: an encoder to a 2-D code, a decoder back
#   to pixel logits, trained to minimize the Bernoulli reconstruction loss.
# - Read its reconstructions and its code space (a scatter of codes coloured by digit).
# - See, by decoding a grid of codes and random codes, why an autoencoder is not a generative model:
#   there is no distribution to sample codes from, and the decoder is meaningless in the holes between codes.
# - State the two changes that turn it into a variational autoencoder (noisy codes, a prior on codes),
#   and see their effect in the pretrained 2-D VAE, whose codes fill a Gaussian blob.
#
# **Prerequisites**
#
# - Notebook 00 (MNIST in `vaelib`, binarization, the Bernoulli log-likelihood with logits).
# - PyTorch: `nn.Module`, `nn.Sequential`, a training loop with `torch.optim.Adam`.

# %% [markdown]
# ## 1. The autoencoder
#
# An **autoencoder** is two networks trained together:
#
# - an **encoder** $f_\phi : \mathbb{R}^{784} \to \mathbb{R}^{d}$ that compresses an image $x$ into a
#   **code** $z = f_\phi(x)$ (also called the latent representation), and
# - a **decoder** $g_\theta : \mathbb{R}^{d} \to \mathbb{R}^{784}$ that maps the code back to one logit per
#   pixel, $\ell = g_\theta(z)$, i.e. to the pixel probabilities $\pi = \sigma(\ell)$.
#
# The code is a **bottleneck**: with $d = 2$ numbers for 784 pixels, the networks must find the few
# directions along which digits vary. Training minimizes the **reconstruction loss**, the negative
# Bernoulli log-likelihood of notebook 00 (binary cross-entropy), summed over pixels and averaged over a batch:
#
# $$\mathcal{L}(\phi, \theta) = \frac{1}{B}\sum_{i=1}^{B} -\log p\big(x^{(i)} \,\big|\, \ell = g_\theta(f_\phi(x^{(i)}))\big)
#  = \frac{1}{B}\sum_{i=1}^{B}\sum_{j=1}^{784} \Big[\operatorname{softplus}\big(\ell^{(i)}_j\big) - x^{(i)}_j\,\ell^{(i)}_j\Big].$$
#
# Nothing here is random once $x$ is given: the same image always gets the same code. We use a 2-D
# code so that we can *look* at the code space, and the same layer sizes (784-400-2) as the 2-D VAE we
# compare with at the end.

# %% [markdown]
# ## 2. Setup and data
#
# The autoencoder is trained here (its training is the lesson): briefly in `FAST` mode, longer
# otherwise. The 2-D VAE at the end is loaded from `pretrained/vae_2d.pth` unless `TRAIN_FROM_SCRATCH`.

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import vaelib
from vaelib.likelihoods import BernoulliLikelihood
from vaelib.plotting import image_grid, plot_latent_scatter, plot_manifold, show_images, show_reconstructions
from vaelib.course import load_or_train

FAST = vaelib.course.fast_mode()      # True when VAELIB_FAST=1: the smoke-test mode that CI uses
print(vaelib.course.mode_name())    # what made the outputs below: learner mode, or CI's fast mode
TRAIN_FROM_SCRATCH = False     # set True to retrain instead of loading pretrained/ checkpoints
torch.manual_seed(0)
device = "cpu"

train = vaelib.MNIST("train", binarize="dynamic", subset=20_000 if FAST else None)
test = vaelib.MNIST("test", binarize="dynamic")
x_test, y_test = test.first(5000, seed=0)      # a fixed set of 5000 binarized test images, for every figure
print(test)
print("fixed test batch:", tuple(x_test.shape), "labels:", tuple(y_test.shape))

# %% [markdown]
# ## 3. The model, in plain torch

# %%
class Autoencoder(nn.Module):
    """784 -> hidden -> code_dim -> hidden -> 784 pixel logits."""

    def __init__(self, code_dim: int = 2, hidden: int = 400):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, code_dim))
        self.decoder = nn.Sequential(nn.Linear(code_dim, hidden), nn.ReLU(), nn.Linear(hidden, 784),
                                     nn.Unflatten(1, (1, 28, 28)))

    def forward(self, x):
        return self.decoder(self.encoder(x))     # logits, (B, 1, 28, 28)


def reconstruction_loss(logits, x):
    """Binary cross-entropy summed over pixels, averaged over the batch: minus the Bernoulli log-likelihood."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)


torch.manual_seed(0)
ae = Autoencoder(code_dim=2)
print(ae)
print("parameters:", sum(p.numel() for p in ae.parameters()))
with torch.no_grad():
    codes = ae.encoder(x_test[:8])
    logits = ae.decoder(codes)
print("codes:", tuple(codes.shape), " logits:", tuple(logits.shape))

# %% [markdown]
# `F.binary_cross_entropy_with_logits` is the Bernoulli log-likelihood of notebook 00 with the sign flipped.
# Check it against `vaelib`'s Bernoulli likelihood, and look at the loss of the untrained network: its
# logits are all near 0, i.e. $\pi_j \approx 1/2$ for every pixel, which costs close to $784 \log 2 \approx 543$ nats per
# image (the untrained network below: 546).

# %%
with torch.no_grad():
    logits = ae(x_test[:256])
    loss0 = reconstruction_loss(logits, x_test[:256])
    vaelib_loss = -BernoulliLikelihood()(logits).log_prob(x_test[:256]).mean()
ok = torch.allclose(loss0, vaelib_loss)
assert ok
print("matches -vaelib.likelihoods.BernoulliLikelihood().log_prob, averaged:", ok)
print(f"loss before training: {loss0:.0f} nats per image; 784 log 2 = {784 * torch.log(torch.tensor(2.0)):.0f}")

# %% [markdown]
# ## 4. Training
#
# A plain loop: for each batch, encode, decode, compute the loss, step with Adam. Dynamic binarization
# gives a fresh 0/1 version of every image each epoch (notebook 00).

# %%
# NBVAL_IGNORE_OUTPUT
epochs = 5 if FAST else 10
optimizer = torch.optim.Adam(ae.parameters(), lr=1e-3)
torch.manual_seed(0)
losses = []                                   # one value per batch
for epoch in range(epochs):
    ae.train()
    epoch_losses = []
    for x, _ in train.batches(128, shuffle=True):
        loss = reconstruction_loss(ae(x), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        epoch_losses.append(loss.item())
    losses += epoch_losses
    print(f"epoch {epoch + 1}/{epochs}: mean training loss {sum(epoch_losses) / len(epoch_losses):.1f} nats per image")
ae.eval()
with torch.no_grad():
    ae_codes = ae.encoder(x_test)              # (5000, 2)
    ae_test_loss = reconstruction_loss(ae.decoder(ae_codes), x_test).item()
print(f"test reconstruction loss: {ae_test_loss:.1f} nats per image")

# %%
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(losses, lw=0.8)
ax.set_ylim(top=300)
ax.set_xlabel("batch")
ax.set_ylabel("loss (nats per image)")
ax.set_title("autoencoder training loss")
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# The loss falls fast from the untrained network's 546 nats, close to $784\log 2 \approx 543$ (cut off at the top of
# the plot), and then slowly;
# the batch-to-batch jitter is the varying difficulty of batches and the fresh binarization noise.
#
# ## 5. Reconstructions

# %%
with torch.no_grad():
    x_rec = torch.sigmoid(ae(x_test[:12]))     # pixel probabilities: the image to show
show_reconstructions(x_test[:12], x_rec, n=12, title="autoencoder with a 2-D code")
plt.show()

# %% [markdown]
# Top: test images; bottom: $\sigma(g_\theta(f_\phi(x)))$. Two numbers per image keep the rough shape and
# slant of most digits but lose detail: similar-looking digits (a 4 and a 9, say) get mixed up, and
# the reconstructions are blurry because the decoder outputs probabilities averaged over everything a code could mean.
#
# ## 6. The code space
#
# Every test image is now a point in the plane. Colour the points by their label (which the
# autoencoder never saw):

# %%
fig, ax = plt.subplots(figsize=(5.2, 4.4))
points = ax.scatter(ae_codes[:, 0], ae_codes[:, 1], c=y_test, cmap="tab10", s=3, alpha=0.7, vmin=-0.5, vmax=9.5)
fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
ax.set_xlabel("z[0]")
ax.set_ylabel("z[1]")
ax.set_title("autoencoder codes of 5000 test images")
plt.show()

# %% [markdown]
# Digits of the same class land near each other, without labels: the code captures what the digit
# is. But look at the *shape* of the cloud: its position and scale are arbitrary (nothing in the loss
# prefers codes near 0 or of size 1), classes form elongated arms and dense clumps, and large parts of
# the plane contain no code at all. (The exact picture changes with the seed and the training length.)
#
# ## 7. Decoding codes that no image has
#
# A generative model should turn *any* sensible code into an image. Take a regular $15 \times 15$ grid over
# the bounding box of the test codes and decode every grid point:

# %%
n = 15
lo, hi = ae_codes.min(0).values, ae_codes.max(0).values
gx = torch.linspace(lo[0].item(), hi[0].item(), n)
gy = torch.linspace(hi[1].item(), lo[1].item(), n)          # top row = largest z[1]
zy, zx = torch.meshgrid(gy, gx, indexing="ij")
grid_codes = torch.stack([zx.flatten(), zy.flatten()], 1)    # (225, 2), row by row
with torch.no_grad():
    grid_images = torch.sigmoid(ae.decoder(grid_codes))
print("grid of codes:", tuple(grid_codes.shape), "-> images:", tuple(grid_images.shape))
# a grid point's tile: the rectangle around it, half a grid step to each side
half_step = torch.tensor([(gx[1] - gx[0]).item(), (gy[0] - gy[1]).item()]) / 2
occupied = ((ae_codes[None] - grid_codes[:, None]).abs() <= half_step).all(-1).any(1)   # (225,)

fig, axes = plt.subplots(1, 2, figsize=(12, 5.4))
axes[0].scatter(ae_codes[:, 0], ae_codes[:, 1], c=y_test, cmap="tab10", s=3, alpha=0.7, vmin=-0.5, vmax=9.5)
axes[0].scatter(*grid_codes[occupied].T, marker="+", c="k", s=18, lw=0.7, label="grid point, tile has codes")
axes[0].scatter(*grid_codes[~occupied].T, marker="x", c="r", s=14, lw=0.7, label="grid point, empty tile")
axes[0].legend(loc="lower right", fontsize=8)
axes[0].set_title("codes (colour = digit) and the grid")
axes[0].set_xlabel("z[0]")
axes[0].set_ylabel("z[1]")
axes[1].imshow(image_grid(grid_images, n, padding=0).numpy(), cmap="gray", vmin=0, vmax=1,
               extent=[gx[0].item(), gx[-1].item(), gy[-1].item(), gy[0].item()], aspect="auto")
axes[1].set_title("the decoded grid")
axes[1].set_xlabel("z[0]")
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
print(f"tiles that contain no test code: {(~occupied).sum().item()} of {n * n}")

# %% [markdown]
# Each tile on the right is the decoder's output at the grid point in the same place on the left (red
# crosses: no test image has its code in that tile; the count is printed above). Look at three things:
#
# - **The empty regions.** A large part of the box holds no code. The decoder was never trained there;
#   it extrapolates, typically repeating a stretched or thickened version of the nearest class over
#   whole rows of tiles. Nothing guarantees what comes out, and nothing tells us these regions are empty.
# - **The borders between classes.** Tiles there are smudged blends that look like no digit.
# - **The crowded regions.** Several classes are packed into a small area that gets only a few tiles,
#   so some digits barely appear in the grid, while the classes with spread-out codes fill many tiles.
#   Decoding evenly spread codes does not give evenly spread digits.
#
# Generation needs a *distribution* to draw codes from, and the autoencoder gives none. The best we can
# do is improvise one, e.g. a Gaussian with the mean and covariance of the test codes:

# %%
torch.manual_seed(0)
code_mean, code_cov = ae_codes.mean(0), torch.cov(ae_codes.T)
fitted = torch.distributions.MultivariateNormal(code_mean, code_cov)
z_new = fitted.sample((32,))
with torch.no_grad():
    ae_samples = torch.sigmoid(ae.decoder(z_new))
show_images(ae_samples, nrow=16, title="autoencoder: decoded codes from a Gaussian fitted to the codes")
plt.show()

# %% [markdown]
# Some of these are digits, many are blends or blobs: the fitted Gaussian puts much of its mass in
# regions where the codes are sparse or absent (its elliptical contours cannot follow the arms and
# clumps of the scatter).
# And even this crude fix needed the codes of real images after training; nothing in the training
# made the code distribution Gaussian or anything else we could write down.
#
# ## 8. What a probabilistic model changes
#
# The autoencoder fails to generate for three reasons:
#
# 1. **No distribution on codes.** We do not know where codes live, so we cannot sample new ones.
# 2. **Holes.** The decoder is trained only at the finitely many codes of training images; nothing makes
#    the space between them decode to anything sensible.
# 3. **No smoothness.** Nothing penalizes two nearby codes decoding to very different images, or an
#    image's code being far from all others.
#
# The **variational autoencoder** (Kingma and Welling 2014; Rezende et al. 2014) changes two things, which
# notebook 02 derives from first principles:
#
# - The encoder outputs a *distribution* over codes, $q_\phi(z\mid x) = \mathcal{N}\big(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x)\big)$,
#   and the decoder is trained on *samples* $z \sim q_\phi(z\mid x)$. Every image now covers a small
#   region instead of a point, so the decoder must decode whole neighbourhoods sensibly.
# - A **prior** $p(z) = \mathcal{N}(0, I)$ is fixed in advance, and a penalty $\mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big)$
#   pulls every image's region toward it. The codes can no longer drift to arbitrary places and scales,
#   and to generate we sample $z \sim p(z)$, a distribution we know.
#
# The loss becomes $-\big(\mathbb{E}_{q_\phi(z\mid x)}[\log p_\theta(x\mid z)] - \mathrm{KL}(q_\phi(z\mid x)\,\|\,p(z))\big)$:
# reconstruction plus KL. That is minus the **ELBO**, and notebook 02 shows it is a lower bound on
# $\log p_\theta(x)$, so minimizing it is (approximately) maximum likelihood.
#
# ## 9. The 2-D VAE: codes that fill a Gaussian blob
#
# `pretrained/vae_2d.pth` is a VAE with exactly this autoencoder's layer sizes (784-400-2 and back),
# trained for 30 epochs on all of MNIST with dynamic binarization. The next cells use a few tools of `vaelib`
# that later notebooks take apart; for now, what each one does:
#
# - `vaelib.build_vae("mlp", latent_dim=2, likelihood="bernoulli")` builds an (untrained) VAE from plain
#   arguments: an MLP encoder and decoder, a 2-D code, a Bernoulli likelihood on the pixels (notebook 05).
# - `load_or_train(name, train, test)` loads `pretrained/name.pth` if the file is there, and otherwise (or with
#   `TRAIN_FROM_SCRATCH = True`) builds the model of its recipe, `vaelib.course.pretrained.RECIPES[name]` (here
#   an MLP VAE with a 2-D code, 30 epochs), and trains it with `vaelib.fit` (notebook 05).
# - `vae.encoder(x)` returns, per image, the mean $\mu(x)$ and the log-variance $\log\sigma^2(x)$ of its code
#   distribution; `vae.decode(z)` returns the distribution $p(x\mid z)$ over images, whose `log_prob(x)` is the
#   Bernoulli log-likelihood of notebook 00; `vae.decode_mean(z)` returns its mean image, the pixel probabilities
#   $\sigma(\text{logits})$, as `torch.sigmoid(ae.decoder(z))` does for the autoencoder.
# - `vae.sample(n)` draws $n$ codes from $\mathcal{N}(0, I)$ and decodes them with `decode_mean`;
#   `vae.reconstruct(x)` decodes each image's mean code $\mu(x)$.
# - `vaelib.plotting.plot_latent_scatter(vae, data)` draws the mean codes of test images coloured by label, and
#   `plot_manifold(vae, n)` decodes an $n \times n$ grid of codes and shows each image in its place (notebook 07
#   explains how the grid is spaced).

# %%
vae, vae_history = load_or_train("vae_2d", train, test, train_from_scratch=TRAIN_FROM_SCRATCH)
vae.eval()
print(vae.config)
with torch.no_grad():
    mu, logvar = vae.encoder(x_test)
    vae_rec_loss = -vae.decode(mu).log_prob(x_test).mean()   # decode the mean code, as the autoencoder does
print(f"reconstruction loss at the posterior mean: {vae_rec_loss:.0f} nats per image")
sigma = torch.exp(0.5 * logvar)
print("posterior means mu(x):       mean", [round(v, 1) + 0.0 for v in mu.mean(0).tolist()],
      " std", [round(v, 2) for v in mu.std(0).tolist()])
print("posterior std sigma(x), average:", [round(v, 2) for v in sigma.mean(0).tolist()])
inside = (mu.pow(2).sum(1) < 5.991).float().mean()   # 5.991: the 95% quantile of a chi-square with 2 degrees of freedom
print(f"fraction of codes mu(x) inside the circle holding 95% of N(0, I): {inside:.2f}")

# %% [markdown]
# The VAE's reconstruction loss (decoding each image's mean code $\mu(x)$, as the autoencoder decodes
# its code) is 145 nats per image (printed above); the autoencoder above reached the value printed after its
# training (146.0 nats after 10 epochs on all the data, the learner's default mode; about 157 after the short
# `FAST` run). Becoming
# a generative model cost the VAE next to nothing in reconstruction. Each image now gets a mean
# $\mu(x)$ and a standard deviation $\sigma(x)$ per dimension. The means are
# centred at 0 with spreads of 1.04 and 1.31, close to the scale 1 the prior $\mathcal{N}(0, I)$ asked for, and
# each image's region is small (standard deviations of 0.07 and 0.08 on average), but not a point. Most codes
# (84%) lie inside the circle that holds 95% of the prior's mass, so samples from the prior mostly land where the
# data is. Not 95%: the spread of 1.31 along the second axis puts more codes far out than $\mathcal{N}(0, I)$
# would, and the KL term, which charges each code's region for its distance from the prior, only pulls them in
# until a nat of KL costs more than the reconstruction it buys. The prior's outer 5% and the codes' outer 16%
# are where samples and data disagree (notebook 13 maps them).

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
axes[0].scatter(ae_codes[:, 0], ae_codes[:, 1], c=y_test, cmap="tab10", s=3, alpha=0.7, vmin=-0.5, vmax=9.5)
axes[0].set_title("autoencoder codes")
axes[0].set_xlabel("z[0]")
axes[0].set_ylabel("z[1]")
plot_latent_scatter(vae, test, n=5000, ax=axes[1])
axes[1].add_patch(plt.Circle((0, 0), 5.991 ** 0.5, fill=False, ls="--", color="k"))
axes[1].set_title("VAE posterior means")
axes[1].set_aspect("equal")
plt.show()

# %% [markdown]
# Left, the autoencoder's codes again; right, the VAE's posterior means of test images, in the same
# colours. The VAE's codes form one roundish blob centred at the origin, mostly inside the dashed circle
# that holds 95% of $\mathcal{N}(0, I)$, with the classes as neighbouring regions. There are still
# sparse areas between classes, but the decoder has been trained on noisy codes around every image, so
# it decodes them too:

# %%
plot_manifold(vae, n=15)
plt.show()

# %% [markdown]
# The decoded grid of the VAE, spaced evenly in probability under the prior (so each tile covers the
# same prior mass): every tile is a digit or a plausible in-between shape, and the digits morph smoothly
# from one class to its neighbours (in the pretrained model: 1 at the top left turning into 6 at the top right,
# with 3 and 8 in the rows just below; 2 on the left; 9 and 7 along the bottom; 0 in the middle; 5 at the right
# edge). Every class appears except the 4, which shares the 9s' region and is drawn as 9s and 4/9 blends.
# Compare with the autoencoder's decoded
# grid in section 7. So sampling is simply $z \sim \mathcal{N}(0, I)$, then decode:

# %%
samples = vae.sample(32, generator=torch.Generator().manual_seed(0))
show_images(samples, nrow=16, title="VAE: z ~ N(0, I), decoded")
plt.show()
with torch.no_grad():
    x_rec_vae = vae.reconstruct(x_test[:12])
show_reconstructions(x_test[:12], x_rec_vae, n=12, title="VAE with a 2-D code: reconstructions")
plt.show()

# %% [markdown]
# Top: 32 samples from the prior, decoded: recognizable digits of many classes (blurry, as anything
# decoded from only 2 numbers is). Bottom: the VAE's reconstructions of the same 12 test images as in
# section 5, which match the reconstruction losses printed above.

# %% [markdown]
# ## Key takeaways
#
# - An autoencoder compresses $x$ to a code $z = f_\phi(x)$ and decodes it back; it is trained on the
#   reconstruction loss, here the Bernoulli negative log-likelihood (binary cross-entropy) summed over pixels.
# - Even a 2-D code groups the digits by class without labels, and reconstructs their rough shape.
# - An autoencoder is not a generative model: there is no distribution to sample codes from, the codes
#   sit at arbitrary positions and scales, and the decoder's output in the holes between them is arbitrary.
# - The VAE fixes this with noisy codes, $z \sim q_\phi(z\mid x)$, and a prior $p(z) = \mathcal{N}(0, I)$
#   that the codes are pulled toward; its 2-D codes fill a Gaussian blob and every region decodes to a digit.

# %% [markdown]
# ## Exercises
#
# Each exercise names its tier: *warm-up* (apply what a section showed), *core* (the notebook's main idea in a
# new setting), *stretch* (goes beyond the notebook; optional).
#
# **Exercise 1 (warm-up): interpolating codes.** Write `interpolate_codes(z0, z1, n)`: `n` evenly spaced points on the straight line from the code
# `z0` to the code `z1`, both ends included, shape `(n, D)`, and check it with `check_interpolate_codes`. Then, in
# the next cell, pick the first test image of a 1 and the first test image of a 0, print their labels, and decode
# 10 points between their codes, for the autoencoder (`ae`, codes from `ae.encoder`) and for the VAE (`vae`,
# posterior means from `vae.encoder(x)[0]`, decode with `vae.decode_mean`, section 9). Show both rows of images
# and describe what happens in between.

# %%
from vaelib.course.checks import check_interpolate_codes


def interpolate_codes(z0, z1, n):
    ### BEGIN SOLUTION
    t = torch.linspace(0, 1, n).unsqueeze(1)     # (n, 1): 0 at z0, 1 at z1
    return (1 - t) * z0 + t * z1
    ### END SOLUTION


check_interpolate_codes(interpolate_codes)

# %%
### BEGIN SOLUTION
i1, i0 = (y_test == 1).nonzero()[0].item(), (y_test == 0).nonzero()[0].item()
print("labels:", y_test[i1].item(), y_test[i0].item())
with torch.no_grad():
    a, b = ae.encoder(x_test[[i1, i0]])
    ae_path = torch.sigmoid(ae.decoder(interpolate_codes(a, b, 10)))
    m = vae.encoder(x_test[[i1, i0]])[0]
    vae_path = vae.decode_mean(interpolate_codes(m[0], m[1], 10))
show_images(torch.cat([ae_path, vae_path]), nrow=10, title="top: autoencoder, bottom: VAE")
plt.show()
# The VAE's path passes through shapes that look like digits all the way; the autoencoder's path can
# cross regions with no training codes, where the images are blurry blends or blobs.
### END SOLUTION

# %% [markdown]
# **Exercise 2 (core): a 16-D code.** A bigger bottleneck reconstructs better. Train `ae16 = Autoencoder(code_dim=16)` for one
# epoch on `train` (same loss and optimizer settings), compute its test reconstruction loss `loss16` on `x_test`
# and print it next to the 2-D autoencoder's (`ae_test_loss`), then decode 16 codes drawn from $\mathcal{N}(0, I)$
# and show them. Does the better autoencoder generate better? `check_autoencoder_16d(ae16, loss16, x_test)`
# checks the trained model and the loss you report.

# %%
# NBVAL_IGNORE_OUTPUT
from vaelib.course.checks import check_autoencoder_16d

### BEGIN SOLUTION
torch.manual_seed(0)
ae16 = Autoencoder(code_dim=16)
opt16 = torch.optim.Adam(ae16.parameters(), lr=1e-3)
for x, _ in train.batches(128, shuffle=True):
    loss = reconstruction_loss(ae16(x), x)
    opt16.zero_grad()
    loss.backward()
    opt16.step()
with torch.no_grad():
    loss16 = reconstruction_loss(ae16(x_test), x_test).item()
    random_decodes = torch.sigmoid(ae16.decoder(torch.randn(16, 16)))
print(f"test reconstruction loss: 16-D code {loss16:.1f}, 2-D code {ae_test_loss:.1f} nats per image")
assert loss16 < ae_test_loss
show_images(random_decodes, nrow=16, title="16-D autoencoder: decoded N(0, I) codes")
plt.show()
# No: it reconstructs better, but random codes decode to blobs, because nothing placed its codes
# where N(0, I) puts its mass; in 16 dimensions the holes are even bigger.
### END SOLUTION
check_autoencoder_16d(ae16, loss16, x_test)

# %% [markdown]
# **Exercise 3 (stretch, written): a penalty on the codes.** A first idea to make the autoencoder generative: add a penalty
# $\lambda \lVert z \rVert^2$ to the loss, so the codes stay near the origin, then sample
# $z \sim \mathcal{N}(0, I)$. Why does this not work, and what does the VAE's KL term do differently?

# %% [markdown]
# ### BEGIN SOLUTION
#
# The penalty can be made as small as we like without changing anything: the encoder multiplies its
# codes by a tiny factor $c$, and the decoder's first layer divides its weights by $c$, so
# reconstructions are unchanged while $\lambda\lVert z\rVert^2$ goes to 0. The codes then all sit in a
# tiny region around the origin, and samples from $\mathcal{N}(0, I)$ land far outside it. There is still
# no noise, so the holes between codes are still there. The VAE's KL term,
# $\tfrac12\sum_j(\mu_j^2 + \sigma_j^2 - \log\sigma_j^2 - 1)$ (notebook 03), also has a $-\log\sigma_j^2$
# term that punishes small noise: shrinking the codes would require shrinking $\sigma$ with them, which
# costs KL. The KL fixes the scale of the code space to the prior's, and the noise fills the holes.
#
# ### END SOLUTION


# %% [markdown]
# ## References
#
# - Kingma, D. P. and Welling, M. (2014). Auto-encoding variational Bayes. *International Conference on Learning
#   Representations (ICLR) 2014*. [arXiv:1312.6114](https://arxiv.org/abs/1312.6114)
# - Rezende, D. J., Mohamed, S. and Wierstra, D. (2014). Stochastic backpropagation and approximate inference in
#   deep generative models. *Proceedings of the 31st International Conference on Machine Learning (ICML 2014)*,
#   PMLR 32. [arXiv:1401.4082](https://arxiv.org/abs/1401.4082)
