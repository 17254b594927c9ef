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
# # 05 · Training a VAE
#
# **Learning objectives**
#
# - Draw the VAE as one picture: encoder, reparameterization, decoder, and the two terms of the loss.
# - Write the complete training loop of a VAE in plain torch (encoder, $z = \mu + \sigma\,\varepsilon$,
#   decoder, minus the ELBO, Adam), and check that its loss is exactly `model.elbo_terms(x).loss` of `vaelib`.
# - Train the same model with `vaelib.fit`, and read loss curves, reconstructions and samples.
# - Generate new digits by decoding $z \sim \mathcal{N}(0, I)$ with a pretrained convolutional VAE.
# - Choose a decoder likelihood: Bernoulli, Gaussian (summed MSE), continuous Bernoulli, learned
#   $\sigma$; say what $\sigma$ means and why a smaller $\sigma$ acts like a smaller $\beta$.
# - Recognize the "mean instead of sum" bug: `F.mse_loss(reduction="mean")` plus a summed KL is a
#   $\beta$ of 784 in disguise.
#
# **Prerequisites**
#
# - Notebook 00 (binarization, the Bernoulli log-likelihood), 02 (the ELBO), 03 (the Gaussian KL in
#   closed form), 04 (the reparameterization trick).
# - PyTorch: `nn.Module`, `nn.Linear`, autograd, an optimizer's `zero_grad` / `backward` / `step`.
# - Maths: the Gaussian density, logarithms, expectations.

# %% [markdown]
# ## 1. Setup

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.patches import FancyBboxPatch
from torch import nn

import vaelib
from vaelib.plotting import plot_history, show_images, show_reconstructions
from vaelib.course import figure_path, load_or_train, save_figure

FAST = vaelib.course.fast_mode()      # True when VAELIB_FAST=1: the smoke-test mode that CI uses
print(vaelib.course.mode_name())    # what made the outputs below: learner mode, or CI's fast mode
TRAIN_FROM_SCRATCH = False     # set True to retrain instead of loading pretrained/ checkpoints
torch.manual_seed(0)
device = "cpu"

# %% [markdown]
# ## 2. The whole model in one picture
#
# Everything of notebooks 02 to 04 fits in one diagram. For an image $x$:
#
# 1. the **encoder** network outputs the parameters of a Gaussian $q_\phi(z\mid x) = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$:
#    a mean $\mu$ and a log-variance $\log\sigma^2$ (notebook 04: any real number is a valid log-variance);
# 2. we draw $z = \mu + \sigma \odot \varepsilon$ with $\varepsilon \sim \mathcal{N}(0, I)$: a sample of
#    $q_\phi(z\mid x)$ through which gradients flow to $\mu$ and $\sigma$ (the reparameterization trick);
# 3. the **decoder** network maps $z$ to the parameters of a distribution $p_\theta(x\mid z)$ over images;
# 4. the loss is minus the ELBO of notebook 02,
#
# $$\text{loss}(x) = -\Big(\underbrace{\mathbb{E}_{q_\phi(z\mid x)}\big[\log p_\theta(x\mid z)\big]}_{\text{reconstruction term}}
#   \;-\; \underbrace{\mathrm{KL}\big(q_\phi(z\mid x)\,\|\,\mathcal{N}(0, I)\big)}_{\text{KL term}}\Big).$$
#
# The reconstruction term rewards a decoder that puts high probability on the very image that was
# encoded; the KL term keeps every $q_\phi(z\mid x)$ close to the prior $\mathcal{N}(0, I)$, which is what
# later lets us generate by decoding $z \sim \mathcal{N}(0, I)$.

# %%
def draw_vae_architecture():
    """The VAE as boxes and arrows (matplotlib only)."""
    fig, ax = plt.subplots(figsize=(12, 4.6))
    ax.set_xlim(0, 12)
    ax.set_ylim(-0.3, 4.6)
    ax.axis("off")

    def box(x, y, w, h, text, color, fontsize=12):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.06", fc=color, ec="black", lw=1.2))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)

    def arrow(start, end, color="black", style="-|>", **kw):
        ax.annotate("", xy=end, xytext=start,
                    arrowprops=dict(arrowstyle=style, lw=1.6, color=color, shrinkA=2, shrinkB=2, **kw))

    box(0.1, 1.4, 1.1, 1.1, "image\n$x$", "#eeeeee")
    box(1.8, 1.2, 1.7, 1.5, "encoder\nnetwork\n$q_\\phi(z\\mid x)$", "#cfe2f3")
    box(4.1, 2.3, 1.3, 0.7, "$\\mu$", "#cfe2f3")
    box(4.1, 0.9, 1.3, 0.7, "$\\log\\sigma^2$", "#cfe2f3")
    box(6.0, 1.5, 2.0, 0.9, "$z = \\mu + \\sigma \\odot \\varepsilon$", "#fff2cc")
    box(6.1, -0.1, 1.8, 0.7, "$\\varepsilon \\sim \\mathcal{N}(0, I)$", "#eeeeee", fontsize=11)
    box(8.6, 1.2, 1.7, 1.5, "decoder\nnetwork\n$p_\\theta(x\\mid z)$", "#d9ead3")
    box(10.8, 1.4, 1.1, 1.1, "image\nmean $\\hat x$", "#eeeeee", fontsize=11)

    arrow((1.25, 1.95), (1.8, 1.95))
    arrow((3.55, 2.2), (4.1, 2.65))
    arrow((3.55, 1.7), (4.1, 1.25))
    arrow((5.45, 2.65), (6.0, 2.1))
    arrow((5.45, 1.25), (6.0, 1.8))
    arrow((7.0, 0.65), (7.0, 1.5))
    arrow((8.05, 1.95), (8.6, 1.95))
    arrow((10.35, 1.95), (10.8, 1.95))

    # the KL term acts on (mu, log sigma^2); the reconstruction term compares the decoder's p(x|z) with x
    ax.add_patch(FancyBboxPatch((3.95, 0.75), 1.6, 2.4, boxstyle="round,pad=0.05", fc="none", ec="#cc0000",
                                lw=1.8, ls="--"))
    ax.text(4.75, 3.55, "KL term\n$\\mathrm{KL}(q_\\phi(z\\mid x)\\,\\|\\,\\mathcal{N}(0, I))$",
            ha="center", va="center", color="#cc0000", fontsize=11)
    arrow((11.35, 2.6), (0.65, 2.6), color="#38761d", style="<|-|>", connectionstyle="arc3,rad=0.28")
    ax.text(6.0, 4.35, "reconstruction term $\\log p_\\theta(x\\mid z)$: how probable the decoder finds the input $x$",
            ha="center", va="center", color="#38761d", fontsize=11)
    ax.set_title("loss = $-$(reconstruction term $-$ KL term) = $-$ELBO", fontsize=12, y=-0.08)
    return fig


fig = draw_vae_architecture()
save_figure(fig, "vae_architecture.png")
plt.show()

# %% [markdown]
# Read the diagram from left to right: the image goes through the encoder to two vectors, $\mu$ and
# $\log\sigma^2$; noise $\varepsilon$ enters from below, outside the network, so that $z$ is a
# differentiable function of $\mu$ and $\sigma$; the decoder turns $z$ into a distribution over images,
# shown as its mean $\hat x$. The red dashed box marks what the KL term looks at (only the encoder's
# output, no decoding needed: it has a closed form); the green arc marks the reconstruction term, which
# compares the decoder's distribution with the input image itself.

# %% [markdown]
# ## 3. The loss of one batch, in plain torch
#
# We write the VAE of the pytorch/examples repository (its `vae` example): an MLP with one hidden layer of 400 units, a latent vector of
# $D = 20$ dimensions, and a Bernoulli decoder on dynamically binarized MNIST (notebook 00).
# For a batch of $B$ images, with one sample $z^{(b)} = \mu^{(b)} + \sigma^{(b)} \odot \varepsilon^{(b)}$ per image,
#
# $$\text{loss} = \frac{1}{B}\sum_{b=1}^{B}\Big[
#   \underbrace{-\sum_{j=1}^{784} \Big(x^{(b)}_j \log \lambda_j(z^{(b)}) + (1 - x^{(b)}_j)\log\big(1 - \lambda_j(z^{(b)})\big)\Big)}_{-\log p_\theta(x^{(b)}\mid z^{(b)}):\ \text{binary cross-entropy, summed over pixels}}
#   + \underbrace{\frac12\sum_{d=1}^{D}\Big(\mu_d^{(b)2} + \sigma_d^{(b)2} - \log\sigma_d^{(b)2} - 1\Big)}_{\mathrm{KL}(q\,\|\,\mathcal{N}(0, I)),\ \text{notebook 03}}\Big],$$
#
# where $\lambda(z) = \operatorname{sigmoid}(\text{decoder}(z))$ are the pixel probabilities. Three
# conventions matter, and `vaelib` follows all three:
#
# - **sum over pixels and latent dimensions**: $\log p(x\mid z)$ of an image is the sum of 784
#   per-pixel terms, and the KL of $z$ is the sum of $D$ per-dimension terms. Only then is the loss a
#   bound on $-\log p(x)$ (section 8 shows what averaging does);
# - **mean over the batch**: so the learning rate does not depend on the batch size;
# - the decoder outputs **logits**, and `F.binary_cross_entropy_with_logits` computes the Bernoulli
#   log-probability from them without ever forming $\log(\operatorname{sigmoid}(\cdot))$, which would underflow.

# %%
class Encoder(nn.Module):
    """x (B, 1, 28, 28) -> (mu, logvar), each (B, latent_dim)."""

    def __init__(self, latent_dim=20, hidden=400):
        super().__init__()
        self.fc = nn.Linear(784, hidden)
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def forward(self, x):
        h = torch.relu(self.fc(x.flatten(1)))
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """z (B, latent_dim) -> logits (B, 1, 28, 28): one real number per pixel."""

    def __init__(self, latent_dim=20, hidden=400):
        super().__init__()
        self.fc = nn.Linear(latent_dim, hidden)
        self.out = nn.Linear(hidden, 784)

    def forward(self, z):
        return self.out(torch.relu(self.fc(z))).view(-1, 1, 28, 28)


def negative_elbo(encoder, decoder, x):
    """Minus the one-sample ELBO, averaged over the batch; also the per-image terms."""
    mu, logvar = encoder(x)
    eps = torch.randn_like(mu)                                   # eps ~ N(0, I)
    z = mu + torch.exp(0.5 * logvar) * eps                       # reparameterization
    logits = decoder(z)
    reconstruction = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=(1, 2, 3))  # (B,)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(dim=1)                                          # (B,)
    return -(reconstruction - kl).mean(), reconstruction, kl


# %% [markdown]
# The data: in FAST mode the first 10,000 training images (the notebook must run in a minute on a CPU),
# otherwise all 60,000; a fixed batch of 128 test images serves to compare losses.

# %%
# NBVAL_IGNORE_OUTPUT
train = vaelib.MNIST("train", binarize="dynamic", subset=10000 if FAST else None)
test = vaelib.MNIST("test", binarize="dynamic", subset=1000 if FAST else None)
x_fixed, _ = test.first(128, seed=0)        # 128 test images, binarized once with seed 0
print(train)
print(test)
print("fixed batch:", tuple(x_fixed.shape), "values", sorted(x_fixed.unique().tolist()))

# %% [markdown]
# ### Same weights, same noise, same loss as `vaelib`
#
# `vaelib.build_vae("mlp")` builds exactly this architecture, with the same layer names, so we can copy
# our weights into it. `model.elbo_terms(x)` draws its noise with `torch.randn_like(mu)` as we do, so seeding
# the generator before each call gives both the same $\varepsilon$. Then the two losses must be equal:

# %%
LATENT, HIDDEN = 20, 400
torch.manual_seed(0)
encoder, decoder = Encoder(LATENT, HIDDEN), Decoder(LATENT, HIDDEN)

model = vaelib.build_vae("mlp", latent_dim=LATENT, hidden=HIDDEN, likelihood="bernoulli")
model.encoder.load_state_dict(encoder.state_dict())
model.decoder.load_state_dict(decoder.state_dict())

with torch.no_grad():
    torch.manual_seed(1)
    my_loss, my_rec, my_kl = negative_elbo(encoder, decoder, x_fixed)
    torch.manual_seed(1)
    terms = model.elbo_terms(x_fixed)
ok = (torch.allclose(my_loss, terms.loss) and torch.allclose(my_rec, terms.reconstruction)
      and torch.allclose(my_kl, terms.kl))
assert ok
print("matches model.elbo_terms(x).loss (and its reconstruction and KL terms):", ok)
print(f"loss of the untrained model: {my_loss.item():.1f} nats per image "
      f"(reconstruction {-my_rec.mean().item():.1f}, KL {my_kl.mean().item():.2f}); 784 ln 2 = {784 * math.log(2):.1f}")

# %% [markdown]
# An untrained decoder outputs logits near 0, that is pixel probabilities near $\frac12$, and a
# Bernoulli($\frac12$) costs $\ln 2$ nats per pixel: $784 \ln 2 \approx 543$ nats per image. The untrained model
# above costs 550.9, close to that, and that is where training starts. The KL is small because an untrained encoder outputs $\mu \approx 0$ and
# $\log\sigma^2 \approx 0$, which *is* the prior.
#
# ## 4. The training loop, in plain torch
#
# Adam, mini-batches of 64, 1,000 steps (FAST mode) or 5,000. Each step: a batch (a fresh
# binarization every time), the loss, `zero_grad`, `backward`, `step`. We record the loss and its two
# terms at every step. The learning rate is $2\times10^{-3}$, twice the usual $10^{-3}$, to get somewhere
# in few steps.

# %%
# NBVAL_IGNORE_OUTPUT
NUM_STEPS = 1000 if FAST else 5000
BATCH, LR = 64, 2e-3

optimizer = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=LR)
g = torch.Generator().manual_seed(0)           # shuffling and binarization
log = {"loss": [], "reconstruction": [], "kl": []}
step = 0
while step < NUM_STEPS:
    for x, _ in train.batches(BATCH, shuffle=True, generator=g):
        loss, rec, kl = negative_elbo(encoder, decoder, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        log["loss"].append(loss.item())
        log["reconstruction"].append(-rec.mean().item())
        log["kl"].append(kl.mean().item())
        step += 1
        if step % 100 == 0:
            print(f"step {step:5d}  loss {loss.item():7.2f}  (-reconstruction {-rec.mean().item():7.2f}, KL {kl.mean().item():5.2f})")
        if step == NUM_STEPS:
            break

# %% [markdown]
# That is the whole algorithm. Now the loss curve, with a running mean over 20 steps drawn over the
# noisy per-batch values (log scale), and its two terms:

# %%
def running_mean(values, window=20):
    v = torch.tensor(values)
    kernel = torch.ones(window) / window
    return F.conv1d(v.view(1, 1, -1), kernel.view(1, 1, -1)).flatten()


fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
steps = torch.arange(1, len(log["loss"]) + 1)
axes[0].plot(steps, log["loss"], color="tab:blue", alpha=0.3, lw=0.8, label="per batch")
axes[0].plot(steps[19:], running_mean(log["loss"]), color="tab:blue", label="running mean (20 steps)")
axes[0].set_yscale("log")
axes[0].set_title("loss = $-$ELBO (nats per image)")
axes[0].set_xlabel("step")
axes[0].legend()
axes[1].plot(steps[19:], running_mean(log["reconstruction"]), label="$-$reconstruction term")
axes[1].plot(steps[19:], running_mean(log["kl"]), label="KL term")
axes[1].set_yscale("log")
axes[1].set_title("the two terms (running means)")
axes[1].set_xlabel("step")
axes[1].legend()
for ax in axes:
    ax.grid(alpha=0.3, which="both")
plt.show()

# %% [markdown]
# **Left:** the loss drops fast from the untrained model's 550.9 nats (printed above) and then keeps improving
# slowly; the per-batch values are noisy because every batch holds other images, another binarization
# and another draw of $\varepsilon$. **Right:** the two terms move in opposite directions. The KL starts near 0
# (0.11 nats for the untrained model, printed above) and jumps up within the first 20 steps (where its running mean
# begins); in the next few dozen steps it *drops* back to a few nats (the dip of the orange curve): the encoder's
# outputs are pulled toward the prior while the decoder has not yet learned to use $z$. Then the KL *rises* again,
# to about 26 nats in the last printed steps, while the
# reconstruction cost keeps falling: the model pays KL to put information about each image into $z$,
# because that buys a larger drop in reconstruction cost. The ELBO is the balance of the two.
#
# After training, the check of section 3 still holds with the trained weights (same batch, same noise):

# %%
model.encoder.load_state_dict(encoder.state_dict())
model.decoder.load_state_dict(decoder.state_dict())
model.eval()
with torch.no_grad():
    torch.manual_seed(1)
    my_loss, _, _ = negative_elbo(encoder, decoder, x_fixed)
    torch.manual_seed(1)
    ok = torch.allclose(my_loss, model.elbo_terms(x_fixed).loss)
assert ok
print("trained weights: notebook loss == model.elbo_terms(x).loss:", ok)

# %% [markdown]
# Because `model` now holds our trained weights, all of `vaelib` works on it, for instance the test ELBO
# of `vaelib.evaluation.evaluate_elbo` (mean over the test images, a fixed binarization):

# %%
# NBVAL_IGNORE_OUTPUT
plain_eval = vaelib.evaluation.evaluate_elbo(model, test)
print(f"plain loop after {NUM_STEPS} steps: test ELBO {plain_eval['elbo']:.1f} nats "
      f"(reconstruction {plain_eval['reconstruction']:.1f}, KL {plain_eval['kl']:.1f}), "
      f"active units {plain_eval['active_units']}/{LATENT}")

# %% [markdown]
# ## 5. The same with `vaelib.fit`
#
# `vaelib.fit(model, train, test, epochs=...)` runs the loop above, plus what a real run needs:
# a progress bar; an evaluation on the test set after each epoch; a history of per-epoch numbers;
# optional checkpoints (`run_dir=`: last, and best by test ELBO) and resuming (`resume_from=`); gradient
# clipping (`clip_grad=`); a guard that stops on a NaN loss and restores the last good weights; and a
# warning when the posterior collapses (notebook 06). Seeds are per epoch, so a resumed run repeats the
# epochs an uninterrupted run would have made. We train a fresh model of the same size, with the same
# batch size and learning rate, for about as many steps:

# %%
# NBVAL_IGNORE_OUTPUT
EPOCHS = 6 if FAST else 5      # FAST: 6 x 157 steps on 10,000 images; full: 5 x 938 steps on 60,000
torch.manual_seed(0)
fit_model = vaelib.build_vae("mlp", latent_dim=LATENT, hidden=HIDDEN, likelihood="bernoulli")
history = vaelib.fit(fit_model, train, test, epochs=EPOCHS, lr=LR, batch_size=BATCH, device=device)

# %% [markdown]
# `fit` returns a `vaelib.History`: a list with one dict per epoch, whose columns can also be read by
# name (`history["test_elbo"]`). These are its keys:

# %%
# NBVAL_IGNORE_OUTPUT
print(list(history[0].keys()))
print("epochs:", history["epoch"], "| optimizer steps:", history["step"][-1])

# %%
plot_history(history)
plt.show()

# %% [markdown]
# The test ELBO (orange) is measured after each epoch, the train ELBO (blue) is the average over the
# epoch's batches while the model was still improving, which is why it can sit *below* the test curve
# early in training. Both rise (the ELBO is minus the loss: higher is better) and end close to the
# test ELBO of our plain loop, which made about as many steps: same recipe, same result.
#
# ## 6. A fully trained model: the pretrained convolutional VAE
#
# Our plain loop is a start, not a finished model: 5,000 steps of a small MLP in the learner's default mode (1,000 on a
# subset in FAST mode). `pretrained/conv_vae.pth` is the course's default
# model, trained on all 60,000 images for the number of epochs printed below: the convolutional encoder and decoder of
# `vaelib.networks` (two stride-2 convolutions down to $7\times 7$ and back up), latent size 20, Bernoulli
# likelihood, dynamic binarization. `load_or_train` loads it, or trains it when the file is missing or
# `TRAIN_FROM_SCRATCH` is set, from its recipe (30 epochs: about 9 minutes on a 2-core CPU, a few seconds per epoch on
# a GPU). A checkpoint carries its training history:

# %%
conv_vae, conv_history = load_or_train("conv_vae", train, test, train_from_scratch=TRAIN_FROM_SCRATCH, device=device)
print(conv_vae.config)
print(f"{conv_vae.num_parameters():,} parameters; {len(conv_history)} epochs; "
      f"final test ELBO {conv_history[-1]['test_elbo']:.1f} nats")

# %%
plot_history(conv_history, title="pretrained conv VAE: ELBO per epoch (nats)")
plt.show()

# %% [markdown]
# The stored history of the pretrained model (`model.checkpoint["history"]`): most of the gain comes in
# the first few epochs, then the curves flatten; the test ELBO keeps creeping up, so the model did not
# yet overfit (dynamic binarization works as data augmentation). Its final test ELBO is well above that
# of our briefly trained MLP.
#
# ### Reconstructions
#
# `model.reconstruct(x)` encodes each image to the posterior mean $\mu$ and decodes it to the pixel
# probabilities $\lambda(\mu)$: what the model "thinks" the image is.

# %%
x_show, _ = test.first(10, seed=0)
show_reconstructions(x_show, conv_vae.reconstruct(x_show), title="pretrained conv VAE",
                     save=figure_path("reconstructions.png"))
plt.show()
show_reconstructions(x_show, model.reconstruct(x_show), title=f"plain-loop MLP after {NUM_STEPS} steps")
plt.show()

# %% [markdown]
# Top rows: ten binarized test images, which the models never trained on; bottom rows: their
# reconstructions. The pretrained conv VAE gives back the same digit in the same style, smoothed:
# it reconstructs the grey-level *probabilities*, not the speckle of one particular binarization. The
# MLP of our plain loop (5,000 steps in the learner's default mode) also gets all ten digits right here, but it is
# blurrier on some of them (look at the second 4 and the 9 after it). A per-pixel measure of the
# reconstruction quality, on the test images:

# %%
# NBVAL_IGNORE_OUTPUT
rec_err = vaelib.evaluation.reconstruction_error(conv_vae, test)
print(f"pretrained conv VAE: squared error {rec_err['mse_sum']:.1f} per image = {rec_err['mse']:.3f} per pixel")

# %% [markdown]
# ### Looking at one image at a time
#
# `vaelib.course.widgets.reconstruction_viewer` puts a slider over the test set: for the chosen image it shows
# the input, the reconstruction from the posterior mean, and six decodes of samples $z \sim q(z\mid x)$.
# Their spread is the encoder's uncertainty made visible: a clear digit gives six near-identical
# decodes, an ambiguous one gives a mix of readings. What the widget draws is computed by a plain
# function, `reconstruction_panel`, which we can call directly:

# %%
from vaelib.course.widgets import reconstruction_panel, reconstruction_viewer

panel = reconstruction_panel(conv_vae, test, index=0, n_samples=6)
print("panel for test image 0:", tuple(panel.shape), "= input, reconstruction, 6 samples from q(z|x)")

# %%
# NBVAL_IGNORE_OUTPUT
reconstruction_viewer(conv_vae, test)

# %% [markdown]
# ## 7. New digits from $\mathcal{N}(0, I)$
#
# This is what the whole construction was for. The KL term has kept every $q_\phi(z\mid x)$ near the
# prior, so the prior's samples land where the decoder has learned to draw digits. To generate:
#
# $$z \sim \mathcal{N}(0, I), \qquad \hat x = \operatorname{sigmoid}(\text{decoder}(z)).$$
#
# `model.sample(n)` does exactly this and returns the *mean* image $\hat x$ (pixel probabilities), the
# usual thing to show.

# %%
g = torch.Generator().manual_seed(0)
samples = conv_vae.sample(64, generator=g)
_ = save_figure(samples, "samples.png")
print("samples:", tuple(samples.shape), f"values in [{samples.min().item():.2f}, {samples.max().item():.2f}]")
show_images(samples, nrow=8, title="64 new digits: $z \\sim \\mathcal{N}(0, I)$, decoded")
plt.show()

# %% [markdown]
# 64 digits that are in no data set: each is the decoding of a random 20-dimensional Gaussian vector.
# Look at three things. How many can you read as a digit, and do all ten classes appear (the prior does not
# choose the class; the model's samples should have MNIST's proportions)? Which ones sit between two classes,
# a 4 that could be a 9, say: those $z$ fell between regions the decoder associates with different classes.
# And the blur: each image is a mean of pixel probabilities, so strokes the model is unsure of come out grey.
# The grid is saved as `figures/samples.png`.
#
# A sample *of the model* $p_\theta(x)$ is one step further: draw each pixel from its Bernoulli. Those
# are binary images with speckle, like the binarized training data; that is why the mean is shown:

# %%
draws = torch.bernoulli(samples[:8], generator=torch.Generator().manual_seed(0))
show_images(torch.cat([samples[:8], draws]), nrow=8, title="top: mean images; bottom: one Bernoulli draw of each")
plt.show()

# %% [markdown]
# Each bottom image is a binary image drawn from the distribution whose mean is shown above it: the
# same digit, with ragged edges where the probabilities are in between 0 and 1.
#
# **The same from the command line.** The original project trained with a script; `vaelib` keeps its
# flags. A long run with the original project's default likelihood (summed MSE, section 8) is
#
# ```bash
# python -m vaelib train my_run --likelihood_type mse --num_epochs 100
# python -m vaelib generate --checkpoint_path runs/my_run/checkpoint_best.pth --num_samples 64 \
#     --output_path samples.png --grid_size 8
# ```
#
# `train` calls `vaelib.fit` with checkpoints in `runs/my_run/` and rewrites `runs/my_run/samples.png`
# (64 digits from a fixed $z$) after every epoch, so you can watch the digits sharpen. We do not run it
# here: 100 epochs take a while.

# %% [markdown]
# ## 8. Which likelihood? Bernoulli, Gaussian (MSE), continuous Bernoulli, learned $\sigma$
#
# The decoder outputs one number per pixel; the **likelihood** decides which distribution over images
# these numbers parameterize, and so what the reconstruction term measures. On grey-level images
# $x \in [0, 1]^{784}$ four choices are common (all in `vaelib.likelihoods`, all giving
# $\log p(x\mid z)$ summed over the 784 pixels):
#
# **Bernoulli** (`"bernoulli"`, alias `"bce"`): $\log p(x\mid z) = \sum_j x_j\log\lambda_j + (1-x_j)\log(1-\lambda_j)$,
# minus the binary cross-entropy. A probability for binary data; applied to grey levels it is the
# common shortcut of notebook 00, not a normalized density.
#
# **Gaussian with fixed $\sigma$** (`"gaussian"`, alias `"mse"`): each pixel is
# $\mathcal{N}(x_j;\ m_j, \sigma^2)$ with mean $m = \operatorname{sigmoid}(\text{decoder}(z))$. Then
#
# $$-\log p(x\mid z) = \sum_{j=1}^{784}\Big[\frac{(x_j - m_j)^2}{2\sigma^2} + \frac12\log(2\pi\sigma^2)\Big]
#   = \frac{1}{2\sigma^2}\sum_j (x_j - m_j)^2 + 392\log(2\pi\sigma^2).$$
#
# With $\sigma^2 = \frac12$ the factor $\frac{1}{2\sigma^2}$ is 1, and the **summed squared error** is
# exactly $-\log p(x\mid z)$ up to the constant $392\log\pi$: the loss `F.mse_loss(m, x, reduction="sum")`
# of the original project's default `--likelihood_type mse` is a Gaussian likelihood with
# $\sigma = \sqrt{1/2} \approx 0.71$, vaelib's default for `"gaussian"`.
#
# **What $\sigma$ means.** $\sigma$ is how much pixel noise the model assumes around its mean image: the
# decoder claims "the image is $m$, give or take $\sigma$". A large $\sigma$ says reconstruction errors
# are cheap; a small one says they are expensive. Multiply the loss by the positive constant $2\sigma^2$
# (this does not move the minimum):
#
# $$2\sigma^2\Big[\frac{1}{2\sigma^2}\sum_j (x_j - m_j)^2 + \mathrm{KL}\Big] + \text{const}
#   = \sum_j (x_j - m_j)^2 + \underbrace{2\sigma^2}_{\beta}\,\mathrm{KL} + \text{const}:$$
#
# a Gaussian with noise $\sigma$ trains like summed MSE with a weight $\beta = 2\sigma^2$ on the KL
# (the $\beta$-VAE of notebook 06). **A smaller $\sigma$ is a smaller $\beta$**: sharper reconstructions,
# a latent code that carries more information, a prior that is matched less well (and samples that can
# be worse). $\sigma = 0.71$ on pixels in $[0, 1]$ is a lot of noise: a large effective $\beta$, which is
# why summed-MSE VAEs are known for blurry samples.
#
# **Continuous Bernoulli** (`"continuous_bernoulli"`): the Bernoulli formula made into a proper density
# on $[0, 1]$ by dividing by its integral (notebook 00 computed that integral),
#
# $$p(x_j\mid\lambda_j) = C(\lambda_j)\,\lambda_j^{x_j}(1-\lambda_j)^{1-x_j},\qquad
#   C(\lambda) = \frac{2\operatorname{artanh}(1 - 2\lambda)}{1 - 2\lambda}\ \ (C(\tfrac12) = 2)$$
#
# (Loaiza-Ganem and Cunningham 2019). The extra term $\log C(\lambda)$ is large when $\lambda$ is near 0
# or 1, so confident pixels are rewarded: sharper images than the plain Bernoulli on grey levels.
#
# **Learned $\sigma$** (`"learned_gaussian"`, the $\sigma$-VAE of Rybkin et al. 2021): the Gaussian with one
# $\sigma$ for all pixels, learned with the rest. For a fixed mean, setting the derivative with respect
# to $\sigma$ of $\frac{1}{2\sigma^2}\sum_j (x_j - m_j)^2 + 784\log\sigma$ to zero gives
# $\sigma^{\star 2} = \frac{1}{784}\sum_j (x_j - m_j)^2$: $\sigma$ tracks the reconstruction error, and so the
# effective $\beta = 2\sigma^2$ is tuned by the data instead of by hand.
#
# First, the Gaussian and the continuous Bernoulli log-densities in plain torch, checked against
# `vaelib.likelihoods`:

# %%
torch.manual_seed(0)
params = 2 * torch.randn(4, 1, 28, 28)          # what a decoder outputs: one real number per pixel
x_grey = torch.rand(4, 1, 28, 28)               # grey-level "images" in [0, 1]
mean = torch.sigmoid(params)

sigma = math.sqrt(0.5)
my_gauss = (-(x_grey - mean) ** 2 / (2 * sigma**2) - 0.5 * math.log(2 * math.pi * sigma**2)).sum(dim=(1, 2, 3))
lib_gauss = vaelib.likelihoods.GaussianLikelihood(sigma)(params).log_prob(x_grey)
summed_mse = F.mse_loss(mean, x_grey, reduction="none").sum(dim=(1, 2, 3))
ok_gauss = torch.allclose(my_gauss, lib_gauss) and torch.allclose(-my_gauss, summed_mse + 392 * math.log(math.pi))
assert ok_gauss
print("Gaussian log p matches vaelib.likelihoods.GaussianLikelihood, and -log p == summed MSE + 392 log(pi):", ok_gauss)
print(f"the constant 392 log(pi) = {392 * math.log(math.pi):.1f} nats")

lam = torch.sigmoid(params).double()
log_C = torch.where((lam - 0.5).abs() < 1e-4, torch.full_like(lam, math.log(2.0)),
                    torch.log(2 * torch.atanh(1 - 2 * lam) / (1 - 2 * lam)))
my_cb = (log_C + x_grey * torch.log(lam) + (1 - x_grey) * torch.log1p(-lam)).sum(dim=(1, 2, 3)).float()
lib_cb = vaelib.likelihoods.ContinuousBernoulliLikelihood()(params).log_prob(x_grey)
ok_cb = torch.allclose(my_cb, lib_cb, rtol=1e-4, atol=1e-3)
assert ok_cb
print("continuous Bernoulli log p matches vaelib.likelihoods.ContinuousBernoulliLikelihood:", ok_cb)

# %%
lams = torch.linspace(0.001, 0.999, 999, dtype=torch.float64)
C = 2 * torch.atanh(1 - 2 * lams) / (1 - 2 * lams)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(lams, torch.log(C))
ax.set_xlabel("$\\lambda$ (pixel parameter)")
ax.set_ylabel("$\\log C(\\lambda)$ (nats)")
ax.set_title("what the continuous Bernoulli adds to the BCE, per pixel")
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# The normalizing term $\log C(\lambda)$ is smallest, $\log 2$, at $\lambda = \frac12$ and grows (slowly,
# but without bound) towards 0 and 1. Plain BCE on grey levels leaves this term out, and so it under-rewards confident
# pixels, which is one reason Bernoulli VAEs on grey levels look washed out.
#
# ### Four likelihoods, trained the same way
#
# Same data (grey levels, no binarization: the Gaussian and continuous Bernoulli are densities on
# $[0, 1]$), same MLP as above (784-400-20), same seed, same recipe; only the likelihood differs. A few hundred
# steps are not enough to compare likelihoods fairly (every model is still blurry then), so the four models
# below were trained much longer beforehand, 20 epochs on all 60,000 images each (a minute or two per model on a
# laptop CPU; the commands are in `pretrained/README.md`), and `load_or_train` loads them. Set
# `TRAIN_FROM_SCRATCH = True` to train them here instead, from their recipes (20 epochs on this section's images,
# about 3 minutes each on a 2-core CPU). The learned $\sigma$ started at 1.

# %%
# NBVAL_IGNORE_OUTPUT
grey_train = vaelib.MNIST("train", binarize=None, subset=10000 if FAST else 30000)
grey_test = vaelib.MNIST("test", binarize=None, subset=1000)
LIKELIHOOD_NAMES = ["bernoulli", "gaussian", "continuous_bernoulli", "learned_gaussian"]


def make_grey_model(likelihood):
    torch.manual_seed(0)
    return vaelib.build_vae("mlp", latent_dim=LATENT, hidden=HIDDEN, likelihood=likelihood)


grey_models, grey_histories = {}, {}
for name in LIKELIHOOD_NAMES:
    grey_models[name], grey_histories[name] = load_or_train(f"grey_{name}", grey_train, grey_test,
                                                            train_from_scratch=TRAIN_FROM_SCRATCH, device=device)
    ev = vaelib.evaluation.evaluate_elbo(grey_models[name], grey_test)
    print(f"{name:21s} {len(grey_histories[name]):2d} epochs   test ELBO {ev['elbo']:9.1f}   KL {ev['kl']:5.1f}   "
          f"active units {ev['active_units']:2d}/{LATENT}")
learned = grey_models["learned_gaussian"]
rms = math.sqrt(vaelib.evaluation.reconstruction_error(learned, grey_test)["mse"])
print(f"learned sigma: {learned.likelihood.sigma:.3f}; root-mean-square reconstruction error of that model: {rms:.3f}")
kls = {name: vaelib.evaluation.evaluate_elbo(m, grey_test)["kl"] for name, m in grey_models.items()}
assert kls["gaussian"] == min(kls.values()) and learned.likelihood.sigma < 0.5

# %% [markdown]
# Do **not** compare these ELBOs across likelihoods. The Bernoulli one is a probability (of binary
# images; here misused on grey levels), the three others are log-*densities* on $[0, 1]^{784}$, which can
# be positive and depend on the units (notebook 00: a density can be made as large as you like). Even
# the two Gaussians differ mainly by $392\log(2\pi\sigma^2)$. Within one likelihood, higher is better;
# across likelihoods, look at the images (notebook 10 compares likelihoods properly, in bits per dimension). The
# learned $\sigma$ has fallen far below the fixed $0.71$, to about the root-mean-square reconstruction error printed
# next to it, as the formula for $\sigma^\star$ predicts.
#
# **Train it yourself.** How fast does $\sigma$ get there? The next cell trains a fresh learned-$\sigma$ model for
# a few hundred steps (more in learner mode) and prints $\sigma$ after each epoch:

# %%
# NBVAL_IGNORE_OUTPUT
torch.manual_seed(0)
own = vaelib.build_vae("mlp", latent_dim=LATENT, hidden=HIDDEN, likelihood="learned_gaussian")
sigmas = []
vaelib.fit(own, grey_train, epochs=2 if FAST else 4, lr=LR, batch_size=BATCH, device=device, progress=False,
           callbacks=[vaelib.callbacks.EpochEnd(lambda record, m: sigmas.append(m.likelihood.sigma))])
print("sigma after each epoch:", ", ".join(f"{s:.3f}" for s in sigmas), f"(the converged model: {learned.likelihood.sigma:.3f})")
assert sigmas[-1] < sigmas[0] < 1.0

# %% [markdown]
# It falls steadily but slowly: Adam moves $\log\sigma$ by about the learning rate per step, so the many steps of
# the converged model were needed to reach $\sigma^\star$. This is why the $\sigma$-VAE paper sets $\sigma$ to
# $\sigma^\star$ in closed form instead (exercise 2).

# %%
x_grey_show, _ = grey_test.first(8)
titles = {"bernoulli": "Bernoulli (BCE)", "gaussian": "Gaussian, $\\sigma$ = 0.71 (summed MSE)",
          "continuous_bernoulli": "continuous Bernoulli", "learned_gaussian": "Gaussian, learned $\\sigma$"}
fig, axes = plt.subplots(2, 4, figsize=(16, 3.5))
for col, name in enumerate(LIKELIHOOD_NAMES):
    m = grey_models[name]
    show_images(m.sample(16, generator=torch.Generator().manual_seed(0)), nrow=8, ax=axes[0, col],
                title=titles[name] + "\nsamples")
    show_images(torch.cat([x_grey_show, m.reconstruct(x_grey_show)]), nrow=8, ax=axes[1, col],
                title="test images / reconstructions")
fig.tight_layout()
plt.show()

# %% [markdown]
# Top: samples from the prior; bottom: eight test images over their reconstructions; one column per
# likelihood, same network, data and training. The **fixed-$\sigma$ Gaussian** (summed MSE) gives the
# softest images: $\sigma = 0.71$ is a large effective $\beta$, so its code carries the least information
# (the smallest KL printed above) and the decoder draws averages of similar digits. The **Bernoulli**
# on grey levels is a little crisper but washed out: its BCE under-rewards confident pixels. The
# **learned-$\sigma$** model lowers its $\sigma$, which lowers its effective $\beta$: it uses more of its
# latent code (a larger KL) and reconstructs much more sharply; its samples can be less clean, because
# with a small $\beta$ the encoder's posteriors cover the prior less well, so prior samples land where
# the decoder was rarely trained. The **continuous Bernoulli** pushes pixel values towards 0 and 1: its
# reconstructions are high-contrast, bold white strokes on black, and its samples, just as contrasted, are
# mostly broken strokes and blobs, only some of them readable digits.
#
# One caveat about that last column: what it shows is not the continuous Bernoulli's mean. `model.sample` and
# `model.reconstruct` draw the likelihood's `mean`, which for the continuous Bernoulli is its parameter
# $\lambda = \operatorname{sigmoid}(\text{decoder}(z))$, as Loaiza-Ganem and Cunningham show it. The distribution's
# actual mean, $\frac{\lambda}{2\lambda - 1} + \frac{1}{2\operatorname{artanh}(1 - 2\lambda)}$, is pulled towards $\frac12$
# (the cell prints it for $\lambda = 0.9$), so images of the mean would look much greyer:

# %%
# NBVAL_IGNORE_OUTPUT
cb_model = grey_models["continuous_bernoulli"]
with torch.no_grad():
    cb_params = cb_model.decoder(cb_model.encoder(x_grey_show)[0])            # decode the posterior means
cb_lambda = torch.sigmoid(cb_params)                                          # what the figure shows
cb_mean = torch.distributions.ContinuousBernoulli(logits=cb_params).mean      # the distribution's mean
print(f"one pixel with lambda = 0.9 has mean {torch.distributions.ContinuousBernoulli(probs=torch.tensor(0.9)).mean:.2f}")
print(f"eight reconstructions: pixels above 0.9 in lambda {(cb_lambda > 0.9).float().mean():.1%}, "
      f"in the mean {(cb_mean > 0.9).float().mean():.1%}; largest gap |lambda - mean| {(cb_lambda - cb_mean).abs().max():.2f}")

# %% [markdown]
# The printed numbers make the point: the sharp, high-contrast look of the continuous Bernoulli column belongs to
# $\lambda$; the images of its mean have far fewer pixels near 1.
#
# ## 9. Sum or mean? A $\beta$ of 784 in disguise
#
# A frequent bug in VAE code on the web:
#
# ```python
# recon = F.mse_loss(x_hat, x)                                  # reduction="mean": averages over B * 784 numbers
# kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=1).mean()   # summed over the latent dims
# loss = recon + kl
# ```
#
# `F.mse_loss` averages over all $B \times 784$ numbers by default, that is over the batch *and* over the
# pixels, while the KL is summed over the latent dimensions. Write $\text{SSE}^{(b)} = \sum_j (x^{(b)}_j - m^{(b)}_j)^2$:
#
# $$\text{loss} = \frac{1}{B}\sum_b\Big[\frac{\text{SSE}^{(b)}}{784} + \mathrm{KL}^{(b)}\Big]
#   = \frac{1}{784}\cdot\frac{1}{B}\sum_b\Big[\text{SSE}^{(b)} + 784\,\mathrm{KL}^{(b)}\Big].$$
#
# Up to the factor $\frac{1}{784}$, which only rescales the gradients (and Adam, which normalizes them, nearly ignores it), this
# is the summed-MSE loss of section 8, $\sigma^2 = \frac12$, with **$\beta = 784$**. In terms of the
# Gaussian: $\beta = 2\sigma^2 = 784$ means $\sigma \approx 19.8$, on pixels between 0 and 1. Numerically,
# with vaelib's Gaussian model and the same noise:

# %%
gauss_model = grey_models["gaussian"]
x_batch, _ = grey_test.first(64)
with torch.no_grad():
    torch.manual_seed(2)
    mu, logvar = gauss_model.encoder(x_batch)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    x_hat = gauss_model.likelihood.mean(gauss_model.decoder(z))
    buggy = F.mse_loss(x_hat, x_batch) + vaelib.kl.gaussian_kl(mu, logvar).mean()
    torch.manual_seed(2)
    beta_784 = gauss_model.elbo_terms(x_batch, beta=784).loss     # vaelib: sums over pixels, beta = 784
ok = torch.allclose(784 * buggy + 392 * math.log(math.pi), beta_784)
assert ok
print("784 * (mse_loss(mean) + KL) + 392 log(pi) == model.elbo_terms(x, beta=784).loss:", ok)
print(f"the buggy loss corresponds to sigma = sqrt(784 / 2) = {math.sqrt(392):.1f}")

# %% [markdown]
# What does training with it do? A KL that costs 784 times more than it should is not worth paying: the
# encoder outputs the prior for every image, $z$ carries no information (the **posterior collapses**),
# and the decoder learns to draw the one image that is closest, on average, to all digits. We train with
# $\beta = 784$, which is the buggy loss:

# %%
# NBVAL_IGNORE_OUTPUT
collapsed_model = make_grey_model("gaussian")
collapsed_history = vaelib.fit(collapsed_model, grey_train, grey_test, epochs=2 if FAST else 3, lr=LR,
                               batch_size=BATCH, beta=784, device=device, progress=False)
for label, h in [("summed MSE, beta = 1", grey_histories["gaussian"]), ("mean MSE (beta = 784)", collapsed_history)]:
    print(f"{label:22s} test KL {h[-1]['test_kl']:6.2f} nats, active units {h[-1]['active_units']:2d}/{LATENT}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
for ax, (label, m) in zip(axes, [("summed MSE ($\\beta$ = 1)", grey_models["gaussian"]),
                                 ("F.mse_loss mean + KL ($\\beta$ = 784)", collapsed_model)]):
    show_images(m.sample(32, generator=torch.Generator().manual_seed(0)), nrow=8, ax=ax, title=label)
plt.show()

# %% [markdown]
# Left: samples of the summed-MSE model of section 8; right: samples of the same model trained with
# the averaged loss. On the right every sample is the same blurry blob: the decoder ignores $z$, and the
# KL printed above is essentially 0, with no active units. That is posterior collapse, caused here by
# nothing but a `reduction` argument. Two fixes: sum over pixels (`reduction="sum"`, then divide by the
# batch size), or use `vaelib`, whose convention is **sum over pixels and latent dimensions, mean over
# the batch** everywhere. If you *want* a $\beta$, write it explicitly (notebook 06).

# %% [markdown]
# ## Key takeaways
#
# - Training a VAE is an ordinary PyTorch loop: encode to $(\mu, \log\sigma^2)$, draw
#   $z = \mu + \sigma\odot\varepsilon$, decode, loss $= -\log p(x\mid z) + \mathrm{KL}$, Adam. Our
#   plain-torch loss equals `model.elbo_terms(x).loss` for the same weights and noise.
# - `vaelib.fit` is that loop plus test evaluation, history, checkpoints, resuming, clipping and a NaN
#   guard; `plot_history` draws its curves (also the stored history of a checkpoint).
# - Generation is decoding $z \sim \mathcal{N}(0, I)$: `model.sample(64)`. It works because the KL term
#   has kept the encoder's posteriors close to the prior.
# - The likelihood fixes what "reconstruct well" means. Summed MSE is a Gaussian with
#   $\sigma^2 = \frac12$; a Gaussian with noise $\sigma$ trains like $\beta = 2\sigma^2$; learning $\sigma$ tunes
#   that balance from the data; the continuous Bernoulli is the normalized version of BCE on grey levels.
#   ELBOs of different likelihoods are not comparable.
# - Sum over pixels and latent dimensions, mean over the batch. `F.mse_loss`'s default mean makes
#   $\beta = 784$ and collapses the posterior.

# %% [markdown]
# ## Exercises
#
# Each exercise names its tier: *warm-up* (apply what a section showed), *core* (the notebook's main idea in a
# new setting), *stretch* (goes beyond the notebook; optional).
#
# **Exercise 1 (stretch): $\sigma$ is $\beta$.** Write `gaussian_vae_loss(x, mean, mu, logvar, sigma, beta)`: the loss of a VAE
# whose decoder has a Gaussian likelihood $\mathcal{N}(x_j;\ m_j, \sigma^2)$ per pixel and a weight $\beta$ on the KL,
# that is the mean over the batch of $-\log p(x\mid z)$ (summed over the 784 pixels, normalizing constant included)
# plus $\beta$ times the KL (summed over the latent dimensions). `x` and the decoder means `mean` have shape
# `(B, 1, 28, 28)`, `mu` and `logvar` shape `(B, D)`; the result is one number. Run
# `check_gaussian_vae_loss(gaussian_vae_loss)`. Then show numerically that a Gaussian likelihood with $\sigma = 0.1$
# and $\beta = 1$ is the summed-MSE loss ($\sigma^2 = \frac12$) with $\beta = 2\sigma^2 = 0.02$, rescaled and
# shifted: for the same encoder outputs and decoder means,
# $\text{loss}_{\sigma}(\beta{=}1) = \frac{1}{2\sigma^2}\big(\text{loss}_{\sqrt{1/2}}(\beta{=}2\sigma^2) - 392\log\pi\big) + 392\log(2\pi\sigma^2)$.
# Take them from `grey_models["gaussian"]` on `x_batch` with fixed noise, and confirm that your
# $\text{loss}_{\sigma}(\beta{=}1)$ is the `elbo(x_batch).loss` of
# `vaelib.build_vae("mlp", latent_dim=20, hidden=400, likelihood="gaussian", sigma=0.1)` with the weights of
# `grey_models["gaussian"]` copied into it, for the same noise.

# %%
from vaelib.course.checks import check_gaussian_vae_loss


def gaussian_vae_loss(x, mean, mu, logvar, sigma, beta):
    ### BEGIN SOLUTION
    reconstruction = ((x - mean) ** 2 / (2 * sigma**2) + 0.5 * math.log(2 * math.pi * sigma**2)).sum(dim=(1, 2, 3))
    kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(dim=1)
    return (reconstruction + beta * kl).mean()
    ### END SOLUTION


check_gaussian_vae_loss(gaussian_vae_loss)

# %%
### BEGIN SOLUTION
s = 0.1
with torch.no_grad():
    torch.manual_seed(3)
    mu, logvar = gauss_model.encoder(x_batch)
    m = gauss_model.likelihood.mean(gauss_model.decoder(vaelib.reparameterization.reparameterize(mu, logvar)))
loss_sigma = gaussian_vae_loss(x_batch, m, mu, logvar, s, 1.0)
loss_mse = gaussian_vae_loss(x_batch, m, mu, logvar, math.sqrt(0.5), 2 * s**2)
predicted = (loss_mse - 392 * math.log(math.pi)) / (2 * s**2) + 392 * math.log(2 * math.pi * s**2)

narrow = vaelib.build_vae("mlp", latent_dim=LATENT, hidden=HIDDEN, likelihood="gaussian", sigma=s)
narrow.load_state_dict(gauss_model.state_dict())
with torch.no_grad():
    torch.manual_seed(3)                                   # the same noise as above
    loss_vaelib = narrow.elbo_terms(x_batch, beta=1.0).loss
ok = torch.allclose(loss_sigma, predicted, rtol=1e-4) and torch.allclose(loss_sigma, loss_vaelib, rtol=1e-4)
assert ok
print("sigma = 0.1 is summed MSE with beta = 0.02:", ok)
### END SOLUTION

# %% [markdown]
# **Exercise 2 (warm-up): the optimal $\sigma$.** Write `optimal_sigma(x, mean)`: the closed-form optimum
# $\sigma^\star = \sqrt{\frac{1}{784 B}\sum_{b,j}(x^{(b)}_j - m^{(b)}_j)^2}$ for a batch of images `x` and reconstruction
# means `mean`, both of shape `(B, 1, 28, 28)`: one $\sigma$ shared by the batch, returned as one number. Run
# `check_optimal_sigma(optimal_sigma)`. Then, for the fixed-$\sigma$ Gaussian model `grey_models["gaussian"]` and
# the batch `x_batch`, compute the reconstruction means $m$ for fixed noise and their $\sigma^\star$, and check that
# $\sum_b \log \mathcal{N}(x^{(b)}; m^{(b)}, \sigma^2)$ is larger at $\sigma^\star$ than at
# $0.9\,\sigma^\star$ and at $1.1\,\sigma^\star$, using `vaelib.likelihoods.GaussianLikelihood`.

# %%
from vaelib.course.checks import check_optimal_sigma


def optimal_sigma(x, mean):
    ### BEGIN SOLUTION
    return (x - mean).pow(2).mean().sqrt()
    ### END SOLUTION


check_optimal_sigma(optimal_sigma)

# %%
### BEGIN SOLUTION
with torch.no_grad():
    torch.manual_seed(4)
    mu, logvar = gauss_model.encoder(x_batch)
    params_batch = gauss_model.decoder(vaelib.reparameterization.reparameterize(mu, logvar))
    m = torch.sigmoid(params_batch)
sigma_star = optimal_sigma(x_batch, m).item()


def total_log_p(sig):
    return vaelib.likelihoods.GaussianLikelihood(sig)(params_batch).log_prob(x_batch).sum().item()


best = total_log_p(sigma_star)
assert best > total_log_p(0.9 * sigma_star) and best > total_log_p(1.1 * sigma_star)
print("the closed-form sigma* beats 0.9 sigma* and 1.1 sigma*:", True)
### END SOLUTION

# %% [markdown]
# **Exercise 3 (core): temperature.** `model.sample(n, temperature=t)` draws $z \sim \mathcal{N}(0, t^2 I)$.
# Write `diversity(images)`: for a batch of images of shape `(n, 1, 28, 28)`, the mean over the $n$ images of their
# squared distance (summed over pixels) to the batch's own average image, one number; run `check_diversity(diversity)`.
# Then draw 16 samples from the pretrained `conv_vae` at $t = 0.5, 1, 1.5$ (same generator seed each time),
# show them, and check that their diversity grows with $t$. What do low temperatures trade away?

# %%
from vaelib.course.checks import check_diversity


def diversity(images):
    ### BEGIN SOLUTION
    return (images - images.mean(0)).pow(2).sum(dim=(1, 2, 3)).mean()
    ### END SOLUTION


check_diversity(diversity)

# %%
### BEGIN SOLUTION
fig, axes = plt.subplots(1, 3, figsize=(15, 2.6))
diversities = []
for ax, t in zip(axes, [0.5, 1.0, 1.5]):
    imgs = conv_vae.sample(16, temperature=t, generator=torch.Generator().manual_seed(0))
    diversities.append(diversity(imgs).item())
    show_images(imgs, nrow=8, ax=ax, title=f"temperature {t}")
plt.show()
assert diversities[0] < diversities[1] < diversities[2]
print("diversity grows with the temperature:", diversities[0] < diversities[1] < diversities[2])
# Low temperatures keep z near the centre of the prior, where the decoder draws smooth, "average",
# blurrier digits with less variety (and they are no longer samples of the model p(x)); high
# temperatures give bolder, more varied digits and reach regions of z the decoder rarely saw, where
# shapes get odd.
### END SOLUTION


# %% [markdown]
# **Exercise 4 (core): hidden betas.** Section 9 found a $\beta$ of 784 hidden in a `reduction` argument. Every way of
# reducing the two terms hides some weight between them. Below, `logits` and binary images `x` have shape
# `(B, 1, 28, 28)`, and `kl = 0.5 * (mu**2 + logvar.exp() - logvar - 1)` has shape `(B, 20)`: one KL per example and
# latent dimension, not yet summed. For each loss, find the $\beta$ it trains with: write it as a positive constant
# times the batch mean of $\big[-\log p(x\mid z) + \beta\,\mathrm{KL}\big]$, plus a constant, with $-\log p(x\mid z)$
# summed over the pixels and the KL over the 20 dimensions.
#
# - (a) `F.binary_cross_entropy_with_logits(logits, x, reduction="sum") + kl.sum()`
# - (b) `F.binary_cross_entropy_with_logits(logits, x) + kl.sum(1).mean()`
# - (c) `F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x) + kl.mean()`
# - (d) `F.binary_cross_entropy_with_logits(logits, x) + kl.mean()`
# - (e) `F.mse_loss(torch.sigmoid(logits), x, reduction="sum") / len(x) + kl.sum(1).mean()`, read as a Gaussian
#   likelihood with $\sigma = 0.1$ (section 8).
#
# Put your five answers in a list `betas` and run `check_effective_betas(betas)`. Then, in the next cell, confirm
# each answer numerically on random tensors: compute the loss as written and your constant times
# $\frac1B\sum_b\big[-\log p(x_b\mid z) + \beta\,\mathrm{KL}_b\big]$ plus your constant, and check that they agree.

# %%
from vaelib.course.checks import check_effective_betas

### BEGIN SOLUTION
# (a) sums over the batch too: both terms grow by B, the ratio does not.     beta = 1 (constant B)
# (b) BCE averaged over B * 784 numbers, KL only over B:                       beta = 784 (constant 1/784)
# (c) KL averaged over B * 20 numbers, BCE only over B:                        beta = 1/20 (constant 1)
# (d) both averaged over all their numbers:                                    beta = 784/20 (constant 1/784)
# (e) -log N(x; m, s^2) = SSE / (2 s^2) + const, so SSE + KL = 2 s^2 [SSE / (2 s^2) + KL / (2 s^2)]: beta = 1/(2 s^2)
betas = [1.0, 784.0, 1 / 20, 784 / 20, 1 / (2 * 0.1**2)]
### END SOLUTION
check_effective_betas(betas)

# %%
### BEGIN SOLUTION
g = torch.Generator().manual_seed(0)
B, s = 8, 0.1
logits = torch.randn(B, 1, 28, 28, generator=g)
x = torch.bernoulli(torch.rand(B, 1, 28, 28, generator=g), generator=g)
mu, logvar = torch.randn(B, LATENT, generator=g), torch.randn(B, LATENT, generator=g)
kl = 0.5 * (mu**2 + logvar.exp() - logvar - 1)                                            # (B, 20)
nll_bernoulli = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=(1, 2, 3))
m = torch.sigmoid(logits)
nll_gauss = ((x - m) ** 2 / (2 * s**2) + 0.5 * math.log(2 * math.pi * s**2)).sum(dim=(1, 2, 3))
losses = {  # name: (the loss as written, constant c, -log p(x|z) per image, additive constant)
    "a": (F.binary_cross_entropy_with_logits(logits, x, reduction="sum") + kl.sum(), B, nll_bernoulli, 0.0),
    "b": (F.binary_cross_entropy_with_logits(logits, x) + kl.sum(1).mean(), 1 / 784, nll_bernoulli, 0.0),
    "c": (F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / B + kl.mean(), 1.0, nll_bernoulli, 0.0),
    "d": (F.binary_cross_entropy_with_logits(logits, x) + kl.mean(), 1 / 784, nll_bernoulli, 0.0),
    "e": (F.mse_loss(m, x, reduction="sum") / B + kl.sum(1).mean(), 2 * s**2, nll_gauss,
          -2 * s**2 * 392 * math.log(2 * math.pi * s**2)),
}
for (name, (loss, c, nll, const)), beta in zip(losses.items(), betas):
    ok = torch.allclose(loss, c * (nll + beta * kl.sum(1)).mean() + const, rtol=1e-5)
    assert ok
    print(f"({name}) beta = {beta:g}, times {c:g}: {ok}")
# The constant c rescales the gradient (with Adam, nearly harmless); beta changes what the model learns.
### END SOLUTION

# %% [markdown]
# ## References
#
# - Loaiza-Ganem, G. and Cunningham, J. P. (2019). The continuous Bernoulli: fixing a pervasive error in
#   variational autoencoders. *Advances in Neural Information Processing Systems 32 (NeurIPS 2019)*.
#   [arXiv:1907.06845](https://arxiv.org/abs/1907.06845)
# - PyTorch examples: the variational autoencoder example, `vae/main.py` of
#   [github.com/pytorch/examples](https://github.com/pytorch/examples/tree/main/vae) (software).
# - Rybkin, O., Daniilidis, K. and Levine, S. (2021). Simple and effective VAE training with calibrated decoders.
#   *Proceedings of the 38th International Conference on Machine Learning (ICML)*, PMLR 139.
#   [arXiv:2006.13202](https://arxiv.org/abs/2006.13202)
