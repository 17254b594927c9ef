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
# # 11 · Autoregressive decoders: when the decoder draws the strokes itself
#
# **Learning objectives**
#
# - Explain why a decoder whose pixels are independent given $z$ must put every stroke into $z$, and why its draws
#   are a blur sprinkled with noise.
# - Write a masked convolution (PixelCNN's mask "A") in plain torch, check with gradients that no pixel sees itself or
#   the pixels after it, and check it against `vaelib.autoregressive`.
# - Derive why $\log p(x\mid z)$ stays exact and costs one pass (teacher forcing), and why drawing an image costs 784
#   sequential steps; time both.
# - Draw the receptive field of one masked window and of a stack of them, and find the blind spot of the stack.
# - Measure what the autoregressive decoder gains (ELBO, importance-weighted bound, sample scores) and what $z$ stops
#   carrying (KL, active units, draws of one $z$).
# - Recognize posterior collapse as the price of a strong decoder, and read KL warm-up and free bits as its cures
#   from training curves.
#
# **Prerequisites**
#
# - Notebooks 02 (the ELBO), 03 (KL per dimension, active units), 05 (the conv VAE, `vaelib.fit`), 06 (posterior
#   collapse, KL warm-up, free bits) and 08 (the importance-weighted bound, comparing models on the same images).
# - PyTorch: `F.conv2d`, autograd (`torch.autograd.functional.jacobian`).
# - Maths: the chain rule of probability, $p(a, b) = p(a)\,p(b\mid a)$; covariance.

# %% [markdown]
# ## 1. Setup

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import vaelib
from vaelib.evaluation import evaluate_elbo, iwae_nll
from vaelib.objectives import ELBOObjective
from vaelib.plotting import show_images
from vaelib.course import load_or_train, save_figure
from vaelib.course.sample_quality import classifier_outputs, classifier_scores, frechet_distance, load_classifier
from vaelib.course.sample_quality import mnist_test_reference

FAST = vaelib.course.fast_mode()      # True when VAELIB_FAST=1: the smoke-test mode that CI uses
print(vaelib.course.mode_name())    # what made the outputs below: learner mode, or CI's fast mode
TRAIN_FROM_SCRATCH = False     # set True to retrain instead of loading pretrained/ checkpoints
torch.manual_seed(0)
device = "cpu"
torch.set_num_threads(1)       # drawing pixel by pixel is hundreds of tiny steps: fastest on one CPU thread

train = vaelib.MNIST("train", binarize="dynamic", subset=3000 if FAST else 10000)  # only for models trained here
test = vaelib.MNIST("test", binarize="dynamic", subset=1000)   # the first 1,000 test images, as benchmarks/RESULTS.md

# %% [markdown]
# Two pretrained models share everything but the decoder's likelihood: `conv_vae.pth`, the course's conv VAE of
# notebook 05 (latent size 20, every pixel an independent Bernoulli given $z$), and `conv_pixelcnn.pth`, the same
# encoder and decoder networks whose last layer outputs 32 feature maps instead of one map of logits, read by an
# autoregressive likelihood (trained with a KL warm-up, $\beta$ rising from 0 to 1 over its first 10 epochs; the commands
# are in `pretrained/README.md`).
# With `TRAIN_FROM_SCRATCH = True`, or without the files, `load_or_train` trains both from their recipes instead
# (about 9 and 40 minutes on a 2-core CPU; a single epoch in fast mode), and the numbers below change.

# %%
conv_vae, _ = load_or_train("conv_vae", train, test, train_from_scratch=TRAIN_FROM_SCRATCH, device=device)
conv_pixelcnn, _ = load_or_train("conv_pixelcnn", train, test, train_from_scratch=TRAIN_FROM_SCRATCH, device=device)
conv_vae, conv_pixelcnn = conv_vae.eval(), conv_pixelcnn.eval()
for name, m in (("conv_vae", conv_vae), ("conv_pixelcnn", conv_pixelcnn)):
    print(f"{name:14s} {m.num_parameters():,} parameters, likelihood {m.likelihood.name}")
print(f"the autoregressive part adds {conv_pixelcnn.num_parameters() - conv_vae.num_parameters():,} parameters:")
print(conv_pixelcnn.likelihood)

# %% [markdown]
# The autoregressive part is small: a masked 7x7 convolution of the image (`window`, 1 input channel, 32 outputs) and a
# per-pixel two-layer network (`head`, 1x1 convolutions), 18,592 parameters on top of the conv VAE's 1,691,369.
# What it changes is *what the pixels may depend on*.
#
# ## 2. Why a factorized decoder blurs: $z$ must carry every stroke
#
# Every decoder of notebooks 05 to 09 is **factorized**: given $z$, the pixels are independent,
#
# $$p(x\mid z) = \prod_{i=1}^{784} \mathrm{Bernoulli}\big(x_i;\ \lambda_i(z)\big), \qquad
#   p(x_i, x_j \mid z) = p(x_i\mid z)\,p(x_j\mid z) \quad (i \ne j).$$
#
# So all the dependence between pixels of $p(x) = \int p(z)\,p(x\mid z)\,dz$ comes from $z$. By the law of total
# covariance, for two different pixels
#
# $$\mathrm{Cov}(x_i, x_j) = \underbrace{\mathbb E_z\big[\mathrm{Cov}(x_i, x_j\mid z)\big]}_{=\,0\ \text{(independent given } z)}
#   + \mathrm{Cov}_z\big(\lambda_i(z), \lambda_j(z)\big).$$
#
# Neighbouring pixels of a digit are strongly correlated: a stroke that passes through pixel $i$ very likely continues
# through one of its neighbours. A factorized decoder can only produce that correlation by letting $z$ decide, for
# every stroke, exactly which pixels it covers. Whatever the code does not pin down, the decoder hedges on: a pixel
# that the stroke covers under half of the plausible paths gets $\lambda_i \approx \frac12$. The mean image is then a
# blur, and a draw from $p(x\mid z)$ is that blur with every pixel flipped independently: salt-and-pepper noise, never
# a second plausible stroke. Here is the conv VAE on one test digit:

# %%
x_test, y_test = test.first(16, seed=0)        # 16 test images, binarized once with seed 0
with torch.no_grad():
    lam = torch.sigmoid(conv_vae.decoder(conv_vae.posterior_mean(x_test[:1])))       # lambda(z) at z = E_q[z|x]
    vae_draws = torch.bernoulli(lam.expand(6, -1, -1, -1), generator=torch.Generator().manual_seed(0))
unsure = ((lam > 0.1) & (lam < 0.9)).sum().item()
print(f"pixels with 0.1 < lambda_i < 0.9 in the decoded image: {unsure} of 784")

fig, axes = plt.subplots(1, 8, figsize=(10, 1.6))
panels = [(x_test[0], "test digit"), (lam[0], "mean λ(z)")] + [(d, f"draw {i + 1}") for i, d in enumerate(vae_draws)]
for ax, (img, title) in zip(axes, panels):
    ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# The mean (second panel) is the digit with soft edges: along every edge the decoder is unsure whether the stroke
# covers the pixel, and the count above says how many such pixels there are. The six draws of $p(x\mid z)$ from the same
# $z$ differ only by isolated specks along those edges, because no pixel knows what its neighbour drew. To make the
# edges crisp, $z$ itself would have to say where every edge lies, and every nat of that information costs a nat of
# KL. (This is also why notebooks 05 to 09 show the mean image, not a draw.)
#
# An **autoregressive** decoder removes the independence. By the chain rule of probability, in raster order (row by
# row, left to right, $x_{<i}$ = the pixels before $i$), *any* distribution over images can be written as
#
# $$p(x\mid z) = \prod_{i=1}^{784} p(x_i \mid x_{<i}, z),$$
#
# with no approximation. A decoder that models each conditional can continue a stroke from the pixels already drawn:
# $z$ is left to say *which* digit in *which* pose, and the window says how its edges go. vaelib's `pixelcnn` likelihood
# (`vaelib.autoregressive`) gives pixel $i$ the logit
#
# $$\ell_i = \text{head}\Big(\mathrm{relu}\big(\text{params}_i(z) + \text{window}(x)_i\big)\Big), \qquad
#   p(x_i = 1 \mid x_{<i}, z) = \sigma(\ell_i),$$
#
# where $\text{params}(z)$ is the decoder network's feature map (32 features per pixel), $\text{window}(x)_i$ a 7x7
# convolution of the image that sees only pixels before $i$, and the head a small per-pixel network: a one-layer
# PixelCNN (van den Oord et al. 2016) under a VAE, the PixelVAE of Gulrajani et al. (2017) at its smallest.
#
# ## 3. A masked convolution, in plain torch
#
# A 7x7 convolution at pixel $i$ reads the 49 pixels around it: $i$ itself and 24 pixels *after* it in raster order. Multiplying
# its weights by a 0/1 **mask** removes them. PixelCNN's mask "A" keeps the rows above the centre and the pixels to the
# left of the centre in its row; the centre itself is hidden too. (Mask "B" also keeps the centre: section 6.)

# %%
def causal_mask(kernel_size, include_centre=False):
    """A k x k mask of 0/1: 1 where the window may look. Mask "A" by default, mask "B" with include_centre=True."""
    k, c = kernel_size, kernel_size // 2
    mask = torch.zeros(k, k)
    mask[:c] = 1                 # every row above the centre
    mask[c, :c] = 1              # the centre row, left of the centre
    if include_centre:
        mask[c, c] = 1           # mask "B" (later layers of a stack)
    return mask


print(causal_mask(7).int())
lik = conv_pixelcnn.likelihood
print("the same as the mask of vaelib's MaskedConv2d:", torch.equal(causal_mask(7), lik.window.mask))

# %% [markdown]
# 24 ones: 3 full rows of 7 above the centre and 3 pixels to its left. Now the whole likelihood in plain torch: the
# masked convolution is `F.conv2d` with the weights times the mask, and the head's 1x1 convolutions are matrix products
# over the feature axis at every pixel. We copy the weights of the pretrained `conv_pixelcnn` and compare with vaelib on
# 16 test digits, with $z$ the posterior mean of each:

# %%
weights = {"w": lik.window.weight.detach(), "b": lik.window.bias.detach(),
           "w1": lik.head[1].weight.detach()[:, :, 0, 0], "b1": lik.head[1].bias.detach(),
           "w2": lik.head[3].weight.detach()[:, :, 0, 0], "b2": lik.head[3].bias.detach()}


def masked_conv(x, w, b, mask):
    """A "same"-padded convolution whose weights are zero wherever the mask is."""
    return F.conv2d(x, w * mask, b, padding=w.shape[-1] // 2)


def my_logits(params, x, p=weights):
    """(B, 1, H, W): the logit of every pixel given the features params (B, F, H, W) and the pixels of x before it."""
    h = torch.relu(params + masked_conv(x, p["w"], p["b"], causal_mask(7)))
    h = torch.relu(torch.einsum("gf,bfhw->bghw", p["w1"], h) + p["b1"][:, None, None])   # 1x1 convolution
    return torch.einsum("gf,bfhw->bghw", p["w2"], h) + p["b2"][:, None, None]


with torch.no_grad():
    z_test = conv_pixelcnn.posterior_mean(x_test)          # (16, 20)
    params = conv_pixelcnn.decoder(z_test)                  # (16, 32, 28, 28): 32 features per pixel, not logits
    same_window = torch.allclose(masked_conv(x_test, weights["w"], weights["b"], causal_mask(7)), lik.window(x_test),
                                 atol=1e-5)
    same_logits = torch.allclose(my_logits(params, x_test), lik.logits(params, x_test), atol=1e-4)
assert same_window and same_logits
print("decoder output:", tuple(params.shape))
print("masked convolution matches vaelib.autoregressive.MaskedConv2d:", same_window)
print("logits match PixelCNNBernoulliLikelihood.logits:", same_logits)

# %% [markdown]
# ### Causality, checked with gradients
#
# The mask is meant to make pixel $i$'s logit a function of $x_{<i}$ only. Autograd can prove it for a whole image:
# the Jacobian $J_{ij} = \partial \ell_i / \partial x_j$ of the 784 logits with respect to the 784 pixels must be zero
# wherever $j \ge i$ (the pixel itself and every later one). In raster order that is a *strictly lower-triangular*
# matrix. `torch.autograd.functional.jacobian` computes all $784 \times 784$ entries in one vectorized call:

# %%
x0, params0 = x_test[:1], params[:1]
J = torch.autograd.functional.jacobian(lambda v: my_logits(params0, v.view(1, 1, 28, 28)).flatten(), x0.flatten(),
                                       vectorize=True)         # J[i, j] = d logit_i / d x_j, (784, 784)
strictly_lower = bool((torch.triu(J) == 0).all())              # triu keeps j >= i, the diagonal included
assert strictly_lower
print("Jacobian", tuple(J.shape), "zero on and above the diagonal:", strictly_lower)
print("most pixels any logit depends on:", int((J != 0).sum(dim=1).max()))

# %%
i_show = 14 * 28 + 14                                          # pixel (14, 14), in the middle of the digit
with torch.no_grad():
    p_teacher = torch.sigmoid(lik.logits(params0, x0))[0, 0]    # p(x_i = 1 | x_<i, z) for every pixel
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
axes[0].imshow(x0[0, 0], cmap="gray", vmin=0, vmax=1)
axes[0].set_title("test digit x")
axes[1].imshow(p_teacher, cmap="gray", vmin=0, vmax=1)
axes[1].set_title("p(x_i = 1 | x_<i, z), every i")
axes[2].imshow(J[i_show].abs().view(28, 28), cmap="magma")
axes[2].set_title("|d logit(14, 14) / d x_j|")
for ax in axes:
    ax.plot(14, 14, "s", mfc="none", mec="tab:cyan", ms=7)
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# Left, a test digit (the cyan square marks pixel (14, 14)). Middle, what the model predicts for every pixel given $z$
# and the *true* pixels before it: much crisper than the factorized decoder's mean in section 2, because along an edge
# the window already knows where the stroke went in the rows above. Right, one row of the Jacobian: the logit of pixel
# (14, 14) depends on the 24 pixels of the mask's window and on nothing else of the image (the rest of what it knows
# about the digit comes from $z$, through its features).
#
# ### Why the centre must be hidden: a distribution that sums to 1
#
# The product of the conditionals is a proper distribution, summing to exactly 1 over all images, *because* each
# conditional is a normalized Bernoulli over $x_i$ that does not depend on $x_i$ itself. For a 4x4 patch of the image
# we can check that by brute force: the patch has $2^{16} = 65{,}536$ possible values, and we sum $p(x\mid z)$ over all
# of them, with the features of rows 12 to 15, columns 16 to 19 of the test digit (where its stroke passes) and zeros
# around the patch. Then we let each logit peek
# at its own pixel, as a window with the centre let through (mask "B" in the first layer, the classic bug) could learn
# to: we add $c\,(2x_i - 1)$ to logit $i$, a nudge toward whatever value the pixel has, of strength $c$.

# %%
all_patches = ((torch.arange(2 ** 16)[:, None] >> torch.arange(16)) & 1).float().view(-1, 1, 4, 4)
params_patch, real_patch = params0[:, :, 12:16, 16:20], x0[:, :, 12:16, 16:20]   # where the 7's stroke passes


def log_p_patches(patches, peek=0.0):
    """log of prod_i sigmoid(+-logit_i) for each 4x4 patch, each logit nudged by peek * (2 x_i - 1)."""
    out = []
    with torch.no_grad():
        for chunk in patches.split(8192):
            logits = my_logits(params_patch.expand(len(chunk), -1, -1, -1), chunk) + peek * (2 * chunk - 1)
            out.append(-F.binary_cross_entropy_with_logits(logits, chunk, reduction="none").sum(dim=(1, 2, 3)))
    return torch.cat(out)


for peek in (0.0, 1.0, 3.0, 10.0):
    total = log_p_patches(all_patches, peek).logsumexp(0).exp().item()
    shown = f"{total:.4f}" if total < 10 else f"{total:,.0f}"
    print(f"peek strength c = {peek:4.1f}: sum over all 65,536 patches {shown:>8s}; "
          f"'log p' of the digit's own patch {log_p_patches(real_patch, peek).item():7.3f} nats")
assert abs(log_p_patches(all_patches).logsumexp(0).exp().item() - 1) < 1e-4

# %% [markdown]
# With $c = 0$, mask A as trained, the 65,536 probabilities sum to 1 to float precision: the likelihood is exact. As soon
# as a logit may look at its own pixel, every patch gains, the digit's own patch included, and the total exceeds 1: the
# numbers are no longer probabilities. At $c = 10$ every one of the 65,536 patches scores near 1 (log near 0) and the
# total approaches $2^{16}$. Training maximizes the likelihood of the data, so a window that could see its own pixel
# would learn to do exactly this, and report a log-likelihood near 0 that means nothing.
#
# ## 4. Teacher forcing: the exact $\log p(x\mid z)$ in one pass
#
# To *score* an image we already know all of its pixels. Each conditional $p(x_i\mid x_{<i}, z)$ needs only the true
# $x_{<i}$, so one forward pass on the true image computes all 784 conditionals at once, and
#
# $$\log p(x\mid z) = \sum_{i=1}^{784} \Big(x_i \log\sigma(\ell_i) + (1 - x_i)\log\big(1 - \sigma(\ell_i)\big)\Big),
#   \qquad \ell = \text{logits}(\text{params}(z),\ x),$$
#
# minus the binary cross-entropy of the teacher-forced logits. Feeding the true previous values instead of the model's
# own draws is called **teacher forcing**; it is not an approximation here, because the conditionals *are* defined on
# the true previous pixels. So $\log p(x\mid z)$ is exact and costs one pass, as for a factorized decoder: the ELBO,
# the importance-weighted bound and `vaelib evaluate` work unchanged. In plain torch, against vaelib's `log_prob`:

# %%
with torch.no_grad():
    mine = -F.binary_cross_entropy_with_logits(my_logits(params, x_test), x_test, reduction="none").sum(dim=(1, 2, 3))
    theirs = conv_pixelcnn.decode(z_test).log_prob(x_test)
assert torch.allclose(mine, theirs, atol=1e-3)
print("teacher-forced log p(x|z) matches conv_pixelcnn.decode(z).log_prob(x):", torch.allclose(mine, theirs, atol=1e-3))
print(f"log p(x|z) at the posterior mean, 16 test digits: mean {mine.mean().item():.1f} nats")

# %% [markdown]
# ## 5. Sampling: 784 steps, one pixel at a time
#
# Drawing an image is another matter: pixel $i$ needs $x_{<i}$, which does not exist until it has been drawn. So a
# sample takes 784 steps in sequence: draw pixel 1, feed it back, draw pixel 2, and so on
# (`model.likelihood.sample(params)`). The steps of different images run side by side in one batch, but the steps of
# one image cannot. We time a teacher-forced $\log p(x\mid z)$ of a batch of 64 against drawing the same batch:

# %%
# NBVAL_IGNORE_OUTPUT
def seconds(f, repeats=3):
    """The fastest of a few runs of f(), in seconds (the others include warm-up and interruptions)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return best


z64 = torch.randn(64, 20, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    params64 = conv_pixelcnn.decoder(z64)
    x64, _ = lik.sample(params64, generator=torch.Generator().manual_seed(1))
    t_score = seconds(lambda: lik(params64).log_prob(x64))
    t_draw = seconds(lambda: lik.sample(params64, generator=torch.Generator().manual_seed(1)), repeats=2)
print(f"64 images, one CPU thread: teacher-forced log p(x|z) {1000 * t_score:.0f} ms, "
      f"drawing them pixel by pixel {t_draw:.2f} s ({t_draw / t_score:.0f} times longer; "
      f"{1000 * t_draw / 784:.1f} ms per step)")
assert t_draw > 5 * t_score

# %% [markdown]
# Drawing takes far longer than scoring (the ratio above; it varies with the machine and its load). Two costs add up:
# each step of vaelib's sampler runs the window and the head on the 4 rows that the pixel's window spans (up to 112
# positions, to use one), and the 784 steps run one after the other. The first is an implementation choice; the second
# is the nature of the model.
#
# A step needs much less: the pixel's own 32 features and the 24 pixels of its window. Here is a sampler that computes
# exactly that, in plain torch: a matrix product of the window's pixels (we read the 4 rows that hold them, 28 pixels,
# 4 of which the mask zeroes) with the masked weights, then the head, for all images at once:

# %%
@torch.no_grad()
def draw_pixels(likelihood, params, generator=None, given=None):
    """Images drawn pixel by pixel, each step computing only what its pixel needs. Returns (x, probs), as
    likelihood.sample: probs holds each pixel's probability given the pixels drawn before it. ``given``
    (B, 1, h, W): the first h rows, kept as they are; drawing starts at row h (probs 0 above it)."""
    w = likelihood.window.weight * likelihood.window.mask          # (F, 1, k, k), masked
    k = w.shape[-1]
    c = k // 2
    w_rows = w[:, 0, :c + 1].reshape(len(w), -1).T                 # the k//2 + 1 rows that hold the window: (4k, F)
    w1, b1 = likelihood.head[1].weight[:, :, 0, 0].T, likelihood.head[1].bias
    w2, b2 = likelihood.head[3].weight[:, :, 0, 0].T, likelihood.head[3].bias
    batch, _, height, width = params.shape
    features = params.float().permute(2, 3, 0, 1) + likelihood.window.bias    # (H, W, B, F): z's part, every pixel
    padded = torch.zeros(batch, height + c, width + 2 * c)          # x with c zero rows above and c zero columns aside
    start = 0 if given is None else given.shape[-2]
    if given is not None:
        padded[:, c:c + start, c:width + c] = given[:, 0]
    probs = torch.zeros(batch, 1, height, width)
    for r in range(start, height):
        for col in range(width):
            window = padded[:, r:r + c + 1, col:col + k].reshape(batch, -1)       # rows r - c .. r around (r, col)
            h = torch.relu(features[r, col] + window @ w_rows)
            p = torch.sigmoid((torch.relu(h @ w1 + b1) @ w2 + b2)[:, 0])
            probs[:, 0, r, col] = p
            padded[:, r + c, col + c] = torch.bernoulli(p, generator=generator)   # the drawn pixel, fed back
    return padded[:, None, c:, c:width + c], probs


with torch.no_grad():
    x_lean, p_lean = draw_pixels(lik, params64, generator=torch.Generator().manual_seed(1))
    consistent = torch.allclose(p_lean, torch.sigmoid(lik.logits(params64, x_lean)), atol=1e-5)
assert consistent
print("each probability it drew with = the teacher-forced conditional on the image it drew:", consistent)

# %% [markdown]
# That check ties the two directions together: the probabilities used while drawing, pixel after pixel, are exactly the
# conditionals that teacher forcing computes in one pass on the finished image. With the same generator the two
# samplers draw the same images (the random numbers are consumed in the same order), and the lean one is faster:

# %%
# NBVAL_IGNORE_OUTPUT
same_pixels = (x_lean == x64).float().mean().item()
z_many = torch.randn(1000, 20, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    params_many = conv_pixelcnn.decoder(z_many)
    t_lean64 = seconds(lambda: draw_pixels(lik, params64, torch.Generator().manual_seed(1)))
    start = time.perf_counter()
    x_many, _ = draw_pixels(lik, params_many, torch.Generator().manual_seed(1))
    t_lean1000 = time.perf_counter() - start
    t_score1000 = seconds(lambda: lik(params_many).log_prob(x_many), repeats=1)
print(f"pixels equal to vaelib's draws with the same generator: {same_pixels:.2%}")
print(f"lean sampler: 64 images {t_lean64:.2f} s, 1,000 images {t_lean1000:.2f} s "
      f"({1000 * t_lean1000 / 784:.2f} ms per step); teacher-forced scoring of 1,000 images {t_score1000:.2f} s")
assert same_pixels > 0.99

# %% [markdown]
# The lean sampler is many times faster than vaelib's general one, and 1,000 images cost fewer than 16 times what 64 do:
# within a step, the images of a batch are computed together. On one CPU thread, drawing 1,000 images this way takes
# about as long as scoring them once, or less: both do about the same arithmetic (every pixel's window and head, once), and with
# 1,000 images per step the cost of a step's bookkeeping is small beside it. What no implementation removes is the 784
# steps in sequence. It hurts where hardware could do far more at once (a GPU computes a whole teacher-forced pass in
# parallel, but a step of one pixel leaves it mostly idle) and where each step is expensive: with a deep PixelCNN
# every step runs the whole network (caching what earlier steps computed helps: Ramachandran et al. 2017). Scoring
# stays one pass however deep the network.
# Exercise 2 writes a sampler for *any* autoregressive model and counts its steps.
#
# ### Completion: the bottom half from the top
#
# The sampler can also start later: give it the first 14 rows of a test image and it draws only the other 14, each
# pixel given everything above it, the given rows included. That is the standard demonstration of an autoregressive
# model (the conditional VAE of notebook 09 completed digits the other way, through $z$). Here $z$ still has to be
# chosen: it should be a code that explains the top half, drawn from $p(z \mid x_{\text{top}}) \propto p(z)\,
# p(x_{\text{top}} \mid z)$, where $p(x_{\text{top}} \mid z)$ is the product of the first 392 conditionals, which one
# teacher-forced pass gives (a pixel of the top half depends on no pixel below it).
#
# Sampling that posterior by importance sampling from the prior fails, as the next cell measures: the top half pins
# $z$ down so tightly that among 1,000 prior draws a handful carry almost all the weight: the effective sample size of
# the weights $w_i \propto p(x_{\text{top}} \mid z_i)$, $(\sum_i w_i)^2 / \sum_i w_i^2$, is between 1.0 and 6.6 for
# these eight images. So we take the single
# most probable code instead, by gradient ascent on $\log p(z) + \log p(x_{\text{top}} \mid z)$ from the encoder's mean
# for the image with its bottom half blanked, and let the sampler provide the variety.

# %%
# NBVAL_IGNORE_OUTPUT
TOP = 14                                                  # rows given
x_full, y_full = test.first(8, seed=0)
x_top = x_full.clone()
x_top[:, :, TOP:] = 0                                     # the bottom half blanked (the encoder's starting point only)


def log_p_top(z, x):
    """log p(x's first TOP rows | z), one number per code: the first TOP * 28 conditionals of one teacher-forced pass."""
    logits = lik.logits(conv_pixelcnn.decoder(z), x)
    return torch.distributions.Bernoulli(logits=logits).log_prob(x)[:, :, :TOP].sum((1, 2, 3))


with torch.no_grad():
    z_prior = torch.randn(1000, 20, generator=torch.Generator().manual_seed(0))
    ess = [1 / (torch.softmax(log_p_top(z_prior, x_top[i:i + 1].expand(1000, -1, -1, -1)), 0) ** 2).sum().item()
           for i in range(len(x_top))]
print("effective sample size of 1,000 prior draws, per image:", " ".join(f"{e:.1f}" for e in ess))

z_map = conv_pixelcnn.encode(x_top).mu.detach().requires_grad_(True)
optimizer = torch.optim.Adam([z_map], lr=0.05)
for step in range(300):
    objective = log_p_top(z_map, x_top) - 0.5 * (z_map ** 2).sum(1)       # log p(x_top | z) + log p(z) + const
    optimizer.zero_grad()
    z_grad, = torch.autograd.grad(-objective.sum(), z_map)                # only z moves: the model is left as it is
    z_map.grad = z_grad
    optimizer.step()
print("log p(x_top | z) at the chosen codes:", " ".join(f"{v:.1f}" for v in log_p_top(z_map, x_top).tolist()))

with torch.no_grad():
    repeats = 4                                                            # completions per image
    params_top = conv_pixelcnn.decoder(z_map.detach().repeat_interleave(repeats, 0))
    completed, _ = draw_pixels(lik, params_top, torch.Generator().manual_seed(0),
                               given=x_top[:, :, :TOP].repeat_interleave(repeats, 0))
assert torch.equal(completed[:, :, :TOP], x_top[:, :, :TOP].repeat_interleave(repeats, 0))   # the top rows untouched
rows = torch.cat([x_full[:, None], x_top[:, None], completed.view(8, repeats, 1, 28, 28)], 1)
fig = show_images(rows.reshape(-1, 1, 28, 28), nrow=2 + repeats,
                  title="each row: test image, its top half, four completions")
_ = save_figure(fig, "11_completions.png")

# %% [markdown]
# Each row is a test digit, its first 14 rows, and four completions drawn by the sampler from the same code. The
# completions continue the strokes that cross row 14, close the loops that the top half opens, and differ in the
# details no top half decides: where a tail ends, how wide a loop is, how thick the stroke. The effective sample
# sizes printed above are the reason for the shortcut: a few prior draws out of 1,000 would have decided every
# completion; the encoder's $q$ for the blanked image as the proposal, even widened, gave sizes from 1 to 31 when we
# tried it while writing this section, because $p(x_{\text{top}} \mid z)$ of a sharp decoder is sharp. A sampler for $p(z \mid x_{\text{top}})$ itself (Markov chain
# Monte Carlo, or an encoder trained on half images) would add the remaining variety: completions that are different
# digits.
#
# ## 6. What one window sees, and what stacking would add
#
# With a single masked layer, pixel $i$'s window is its whole view of the image: the 24 pixels of section 3. Anything
# further away (the top of a 7 when drawing its foot, the left half of a 0 when closing it) reaches pixel $i$ only
# through $z$. A PixelCNN stacks masked layers to see further: the first with mask A, the later ones with mask B, which
# may read their own position because the features there already only saw the past. The receptive field of a stack
# follows from the same gradient trick, with all weights set to 1 where the masks allow (then no gradient can cancel):

# %%
def receptive_field(n_layers, kernel_size=7, size=28, pixel=(14, 14)):
    """(size, size) bool: the input pixels that can change the output at `pixel` of a stack of n masked layers."""
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    h = x
    for layer in range(n_layers):
        mask = causal_mask(kernel_size, include_centre=layer > 0)     # mask A first, then mask B
        h = F.conv2d(h, mask[None, None], padding=kernel_size // 2)
    h[0, 0, pixel[0], pixel[1]].backward()
    return x.grad[0, 0] > 0


past = torch.zeros(28, 28, dtype=torch.bool)
past[:14] = True
past[14, :14] = True                                  # the pixels before (14, 14) in raster order
fields = {n: receptive_field(n) for n in (1, 2, 3)}
for n, field in fields.items():
    box = torch.zeros_like(past)
    box[14 - 3 * n:15, 14 - 3 * n:15 + 3 * n] = True   # the rows and columns the field spans
    blind = past & box & ~field
    print(f"{n} layer{'s' if n > 1 else ' '}: pixel (14, 14) sees {int(field.sum()):3d} pixels, "
          f"none after it: {not bool((field & ~past).any())}; past pixels inside its span that it cannot see: "
          f"{int(blind.sum())}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.3), layout="constrained")
for ax, (n, field) in zip(axes, fields.items()):
    box = torch.zeros_like(past)
    box[14 - 3 * n:15, 14 - 3 * n:15 + 3 * n] = True
    picture = torch.full((28, 28), 0.0)
    picture[past] = 0.25                               # the past, not seen: z must supply it
    picture[past & box & ~field] = 0.55                # the blind spot of the stack
    picture[field] = 0.8                               # what the layers see
    picture[14, 14] = 1.0                              # the pixel being predicted
    ax.imshow(picture[2:18, 2:27], cmap="viridis", vmin=0, vmax=1, extent=(1.5, 26.5, 17.5, 1.5))
    ax.set_xticks(range(2, 27, 2))
    ax.set_xticks([c + 0.5 for c in range(1, 27)], minor=True)
    ax.set_yticks([r + 0.5 for r in range(1, 18)], minor=True)
    ax.grid(which="minor", color="white", lw=0.3)
    ax.tick_params(which="both", length=0, labelsize=7)
    ax.set_title(f"{n} masked layer{'s' if n > 1 else ''}: {int(field.sum())} pixels seen", fontsize=10)
fig.suptitle("rows 2-17 of the image; pixel (14, 14) yellow: seen (green), blind spot (teal), other past pixels "
             "(blue), future (purple)", fontsize=10)
save_figure(fig, "11_receptive_field.png")
plt.show()

# %% [markdown]
# Yellow is the pixel being predicted; purple the future it must not see; green what the layers see. With one layer
# (left) that is the 24-pixel window; everything blue is past that the model may use but this window cannot reach:
# for `conv_pixelcnn`, all of it comes through $z$. Two and three layers see 3 and 6 more rows and columns, 81 and
# 171 pixels, but a wedge to the upper right (teal), past pixels well inside the span of the field, is never seen, and
# it grows with depth: the **blind spot** of stacked masked convolutions. The masks let information move right only
# from a row above: one layer reaches 3 columns to the right in the rows above, and every further 3 columns to the right
# cost one more row up. So in the row just above, a stack of any depth sees no further right than 3 columns. Van den Oord
# et al. (2016, conditional PixelCNN) remove the blind spot by splitting the network into a vertical stack (the rows
# above, full width) and a horizontal stack (the current row).
#
# Why keep the window small? A decoder that sees more needs $z$ less. With a deep, blind-spot-free PixelCNN the decoder
# can model MNIST well on its own, and the VAE's objective then prefers to send nothing through $z$ (section 9). Chen
# et al. (2017, the variational lossy autoencoder) restrict the autoregressive receptive field *on purpose*, so that
# the local detail goes to the decoder and the global shape must go through $z$: a small window is that choice.
#
# vaelib lets you try the other choice: `python -m vaelib train deep --likelihood_type pixelcnn --pixelcnn_layers 3`
# puts two gated masked layers (3x3, mask B, each also reading $z$'s feature map, as in the conditional PixelCNN)
# between the window and the per-pixel head. Each adds one row up and one column left to what pixel $i$ sees. Measured
# on the record recipe's first two epochs (`benchmarks/RESULTS.md`), three layers reach a test ELBO 3.9-4.2 nats
# better than one at the same epoch, but each epoch costs 3.5-4.4 times as much on a CPU: its 3x3 convolutions run at
# the full 28x28 resolution.
#
# ## 7. What the likelihood gains: the two pretrained models on the same images
#
# Same encoder and decoder networks, same data, same binarization of the same 1,000 test images (seed 0): the test ELBO
# and its two terms, and the active units (notebook 03: latent dimensions whose posterior mean varies across images).

# %%
results = {name: evaluate_elbo(m, test, seed=0) for name, m in (("conv_vae", conv_vae), ("conv_pixelcnn", conv_pixelcnn))}
print(f"{'first 1,000 test images':24s} {'-ELBO':>7s} {'-reconstruction':>16s} {'KL':>6s} {'active units':>13s}")
for name, r in results.items():
    print(f"{name:24s} {-r['elbo']:7.2f} {-r['reconstruction']:16.2f} {r['kl']:6.2f} {r['active_units']:8d}/20")

# %% [markdown]
# The reconstruction terms are close (69.27 and 67.99 nats): both decoders explain the test digits about equally well
# *given their codes*. The KL is not: 11.13 nats for the autoregressive decoder against 23.83, with 12 active latent
# dimensions against 16. The masked window models the edges and the stroke continuations that the factorized decoder
# had to buy through $z$, so the code carries about half as much information for the same reconstruction, and the
# ELBO improves by the difference (11.42 nats, below).
#
# The ELBO is only a bound. Notebook 08's importance-weighted bound $\mathcal L_k$ comes closer to $\log p(x)$; here
# with a small $k$ on a few hundred images (more would take minutes: every sample of $z$ is another teacher-forced
# pass), compared per image on the same images (notebook 08, exercise 4):

# %%
# NBVAL_IGNORE_OUTPUT
N_BOUND, K_BOUND = (50, 10) if FAST else (200, 50)
test_bound = vaelib.MNIST("test", binarize="dynamic", subset=N_BOUND)
bounds = {name: iwae_nll(m, test_bound, k=K_BOUND, seed=0, progress=False, per_image=True)
          for name, m in (("conv_vae", conv_vae), ("conv_pixelcnn", conv_pixelcnn))}
gap = bounds["conv_vae"]["per_image"] - bounds["conv_pixelcnn"]["per_image"]
gap_se = gap.std().item() / math.sqrt(len(gap))
for name, b in bounds.items():
    print(f"{name:14s} -L_{K_BOUND} on the first {N_BOUND} test images: {b['nll']:6.2f} +- {b['std_error']:.2f} nats")
print(f"conv_vae minus conv_pixelcnn, paired: {gap.mean().item():.2f} +- {gap_se:.2f} nats")
assert gap.mean().item() > 3 * gap_se

# %% [markdown]
# The paired difference is several nats, many standard errors from 0. The full protocol, $k = 5000$, takes minutes per
# model on 2 CPU cores even on 1,000 images; its results are stored in `benchmarks/RESULTS.md` (same images, same
# binarization):

# %%
stored = {"conv_vae": (91.82, 86.08, 8), "conv_pixelcnn": (80.40, 78.88, 22)}   # -ELBO, NLL at k=5000, minutes
print(f"{'benchmarks/RESULTS.md, first 1,000':36s} {'-ELBO':>7s} {'NLL, k=5000':>12s} {'ELBO gap':>9s} {'k=5000 took':>12s}")
for name, (nelbo, nll, minutes) in stored.items():
    print(f"{name:36s} {nelbo:7.2f} {nll:12.2f} {nelbo - nll:9.2f} {minutes:6d} minutes")
print(f"the autoregressive decoder gains {stored['conv_vae'][1] - stored['conv_pixelcnn'][1]:.2f} nats of NLL "
      f"and {stored['conv_vae'][0] - stored['conv_pixelcnn'][0]:.2f} of ELBO")

# %% [markdown]
# 7.20 nats of log-likelihood per image, from 18,592 parameters. The ELBO gains more (11.42) because the ELBO's own gap,
# $\mathrm{KL}(q(z\mid x)\,\|\,p(z\mid x))$, shrinks too: from at least 5.74 to at least 1.52 nats (each is the
# -ELBO minus the $k = 5000$ NLL, and $\mathcal L_{5000}$ is itself below $\log p(x)$, so these are lower bounds on the gaps). With less information in $z$ the
# true posterior is plausibly simpler, and the encoder's Gaussian fits it better. Where the KL went, per latent
# dimension:

# %%
fig, ax = plt.subplots(figsize=(8, 3))
for offset, (name, r) in zip((-0.2, 0.2), results.items()):
    kl_sorted = sorted(r["kl_per_dim"], reverse=True)
    ax.bar([j + offset for j in range(20)], kl_sorted, width=0.4, label=f"{name} (total {r['kl']:.1f} nats)")
ax.set(xlabel="latent dimension, sorted by its KL", ylabel="KL (nats)", title="KL per latent dimension, 1,000 test images",
       xticks=range(0, 20, 2))
ax.legend(fontsize=8)
ax.grid(alpha=0.3, axis="y")
plt.show()

# %% [markdown]
# Both models switch some dimensions off (KL near 0: the inactive units), but the autoregressive model switches off
# more, and each dimension it keeps carries less. The dimensions that survive presumably hold what the window cannot
# know: which digit, its size and slant, where the far parts of the shape lie (section 8 checks the first).
#
# ### The ELBO as a code length, and why the window wins
#
# Why should a decoder that sees more of the image want *less* from $z$? Read $-\mathrm{ELBO}$ as the length of a
# message. To send a digit $x$, the sender picks a code $z \sim q(z\mid x)$, sends $z$ with a code built on the
# prior, $-\log p(z)$ nats, then sends $x$ with a code built on the decoder, $-\log p(x\mid z)$ nats. The receiver
# decodes $z$, then $x$, and can then run the same encoder on $x$ and recover the random choices the sender made
# to pick $z$ from $q(z\mid x)$: those $-\log q(z\mid x)$ nats were extra data riding along, and they come back
# ("bits back", Hinton and van Camp 1993; Frey and Hinton 1997). The expected net length is
# $$\mathbb{E}_q[-\log p(x\mid z)] + \mathbb{E}_q[\log q(z\mid x) - \log p(z)] = -\log p(x\mid z)\text{ on average} +
# \mathrm{KL}\big(q(z\mid x)\,\|\,p(z)\big) = -\mathrm{ELBO}.$$
# So the table of section 7 is a table of code lengths: the conv VAE codes a test digit in 91.82 nats (132.5 bits,
# dividing by $\ln 2$), the autoregressive one in 80.40 (116.0 bits). The shortest possible code is $-\log p(x)$, the
# NLL (86.08 and 78.88 nats): the ELBO's own gap is this code's overhead, the price of an encoder whose $q$ is not the
# true posterior.
#
# That overhead is the **information preference** of Chen et al. (2017): whatever goes through $z$ pays its KL and
# the overhead; whatever the decoder can predict from the pixels already sent pays only its own
# $-\log p(x_i\mid x_{<i}, z)$. A stroke's continuation, visible in the window, is cheaper to send directly than
# through $z$. So the optimum sends through $z$ only what the window cannot see: which digit, its pose, the far end of
# the shape (section 8 measures the first). Section 7's numbers are this trade: the KL fell by 12.70 nats (23.83 to
# 11.13), and the reconstruction term did not rise to pay for it, it fell too (69.27 to 67.99): the local detail
# that the conv VAE had to send through $z$, the window now sends for free. A decoder that sees everything it needs
# without $z$ has no reason to use $z$ at all: that is the collapse of section 9.
#
# A ceiling from notebook 13 (section 5) puts a number on "only what the window cannot see". On $N$ training images
# the average KL is $I(n; z) + \mathrm{KL}(q_N(z)\,\|\,p(z))$, and the first term, how much $z$ says about *which*
# image it came from, is at most $\log N = 11.0$ nats for 60,000 images. The autoregressive model's KL, 11.13 nats
# here, sits at that ceiling: `benchmarks/RESULTS.md` splits its KL on the training set into 9.40 nats of $I(n; z)$
# and 1.71 of mismatch between the codes and the prior. The conv VAE's 23.83 nats are twice the ceiling: more than
# half of its code is precision beyond telling the training images apart, detail that a decoder with a window codes
# more cheaply itself.
#
# ## 8. What $z$ stops carrying
#
# Decode the *same* $z$ several times. For the factorized decoder, section 2 showed specks around one blurry mean. For
# the autoregressive decoder each draw is a full, crisp digit, drawn stroke by stroke. Rows: six test digits; then the
# conv VAE's mean image and two draws from its $p(x\mid z)$; then six draws from the autoregressive decoder, all with $z$
# the posterior mean of that digit:

# %%
# NBVAL_IGNORE_OUTPUT
n_digits, n_draws = 6, 6
with torch.no_grad():
    lam6 = torch.sigmoid(conv_vae.decoder(conv_vae.posterior_mean(x_test[:n_digits])))
    vae_two = torch.bernoulli(lam6.repeat_interleave(2, 0), generator=torch.Generator().manual_seed(0))
    pix_params = conv_pixelcnn.decoder(conv_pixelcnn.posterior_mean(x_test[:n_digits])).repeat_interleave(n_draws, 0)
    pix_draws, _ = draw_pixels(lik, pix_params, torch.Generator().manual_seed(0))
fig, axes = plt.subplots(n_digits, 4 + n_draws, figsize=(10, 6.4))
for row in range(n_digits):
    images = ([x_test[row], lam6[row]] + list(vae_two[2 * row:2 * row + 2])
              + list(pix_draws[row * n_draws:(row + 1) * n_draws]))
    for col, img in enumerate(images):
        axes[row, col].imshow(img[0], cmap="gray", vmin=0, vmax=1)
        axes[row, col].axis("off")
for col, title in enumerate(["input", "conv_vae mean", "draw", "draw"] + ["pixelcnn draw"] * n_draws):
    axes[0, col].set_title(title, fontsize=8)
plt.tight_layout()
save_figure(fig, "11_same_z_draws.png")
plt.show()

# %% [markdown]
# Each row of the autoregressive draws is the same digit in the same pose, but the strokes differ: a little thicker or
# thinner, an end that curls differently, a loop that closes a pixel earlier. That variation is what $z$ no longer
# carries: the decoder draws it. Two numbers make it measurable, on the first 100 test digits with 10 draws from each
# one's $z$: how often the MNIST classifier of `vaelib.course.sample_quality` reads a draw as the input's digit, and how much
# horizontally neighbouring pixels vary *together* across draws of the same $z$ (their correlation, averaged over the
# pairs where both pixels vary).

# %%
# NBVAL_IGNORE_OUTPUT
classifier = load_classifier()
x100, y100 = test.first(100, seed=0)
R = 10
with torch.no_grad():
    lam100 = torch.sigmoid(conv_vae.decoder(conv_vae.posterior_mean(x100))).repeat_interleave(R, 0)
    draws100 = {"conv_vae": torch.bernoulli(lam100, generator=torch.Generator().manual_seed(2)),
                "conv_pixelcnn": draw_pixels(lik, conv_pixelcnn.decoder(conv_pixelcnn.posterior_mean(x100))
                                             .repeat_interleave(R, 0), torch.Generator().manual_seed(2))[0]}


def neighbour_correlation(draws, n_images, n_draws):
    """Correlation across the draws of one z between each pixel and its right neighbour, averaged over the pairs
    where both vary (std > 0.2) and over images."""
    a = draws.reshape(n_images, n_draws, 28, 28)
    left, right = a[..., :, :-1], a[..., :, 1:]
    left, right = left - left.mean(1, keepdim=True), right - right.mean(1, keepdim=True)
    s_left, s_right = left.pow(2).mean(1).sqrt(), right.pow(2).mean(1).sqrt()
    varies = (s_left > 0.2) & (s_right > 0.2)
    return ((left * right).mean(1)[varies] / (s_left * s_right)[varies]).mean().item()


agreement, correlation = {}, {}
for name, d in draws100.items():
    labels = classifier_outputs(classifier, d)[1].argmax(1)
    agreement[name] = (labels == y100.repeat_interleave(R)).float().mean().item()
    correlation[name] = neighbour_correlation(d, 100, R)
    differ = (d.reshape(100, R, -1)[:, 0] != d.reshape(100, R, -1)[:, 1]).float().sum(1).mean().item()
    print(f"{name:14s} draws read as the input's digit {agreement[name]:.1%}; two draws differ in {differ:.0f} pixels; "
          f"neighbour correlation across draws {correlation[name]:+.2f}")
assert agreement["conv_pixelcnn"] > 0.85 and correlation["conv_pixelcnn"] > 0.2 > abs(correlation["conv_vae"])

# %% [markdown]
# Both models' draws are read as the right digit almost always (the printed percentages): $z$ still carries the digit.
# But the draws of the factorized decoder vary pixel by pixel with no relation between neighbours (a correlation near
# 0, by construction), while the autoregressive draws vary in *connected* pieces (a clearly positive correlation): when
# a draw makes a stroke thicker at one pixel, it does so at the neighbour too. The stroke detail has moved out of $z$
# and into the decoder.
#
# ### Samples, scored
#
# New digits from the prior, $z \sim \mathcal N(0, I)$. Following the protocol of `vaelib.course.sample_quality` we score
# binary images against the binarized test set: the conv VAE's draws (its mean images, then Bernoulli noise) and the
# autoregressive decoder's images drawn pixel by pixel. The Frechet distance (FD) on the classifier's features is
# biased upward with few images, so we also score as many real training images, binarized, which sets the floor for
# this number of images. Scores: FD (lower is better), mean confidence, label entropy (2.30 when all ten digits are
# equally common: log 10) and the classifier score (from 1 to 10).

# %%
# NBVAL_IGNORE_OUTPUT
N_SAMPLES = 500 if FAST else 2000
reference = mnist_test_reference(binarized=True)                      # all 10,000 test images, one binarization
reference_features = classifier_outputs(classifier, reference)[0]
with torch.no_grad():
    vae_means = conv_vae.sample(N_SAMPLES, generator=torch.Generator().manual_seed(0))
    prior_z = torch.randn(N_SAMPLES, 20, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    pix_samples, pix_probs = draw_pixels(lik, conv_pixelcnn.decoder(prior_z), torch.Generator().manual_seed(1))
    t_samples = time.perf_counter() - start
sample_sets = {
    f"floor: {N_SAMPLES:,} training images": torch.bernoulli(vaelib.MNIST("train").images[:N_SAMPLES].float() / 255,
                                                               generator=torch.Generator().manual_seed(1)),
    "conv_vae, draws": torch.bernoulli(vae_means, generator=torch.Generator().manual_seed(1)),
    "conv_pixelcnn, draws": pix_samples,
}
scores = {}
for name, images in sample_sets.items():
    features = classifier_outputs(classifier, images)[0]
    scores[name] = {"fd": frechet_distance(features, reference_features), **classifier_scores(images, classifier)}
print(f"{N_SAMPLES:,} samples drawn pixel by pixel in {t_samples:.1f} s")
print(f"{'':32s} {'FD':>6s} {'confidence':>11s} {'label entropy':>14s} {'classifier score':>17s}")
for name, s in scores.items():
    print(f"{name:32s} {s['fd']:6.1f} {s['confidence']:11.3f} {s['label_entropy']:14.3f} {s['classifier_score']:17.2f}")
pix_scores, vae_scores = scores["conv_pixelcnn, draws"], scores["conv_vae, draws"]
assert all(pix_scores[key] < vae_scores[key] for key in ("fd", "mean_entropy"))
assert all(pix_scores[key] > vae_scores[key] for key in ("confidence", "classifier_score"))

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.3))
show_images(vae_means[:32], nrow=8, ax=axes[0], title="conv_vae: mean images")
show_images(sample_sets["conv_vae, draws"][:32], nrow=8, ax=axes[1], title="conv_vae: draws")
show_images(pix_samples[:32], nrow=8, ax=axes[2], title="conv_pixelcnn: drawn pixel by pixel")
plt.tight_layout()
plt.show()

# %% [markdown]
# The same $z$ do not give the same digits in the two models (they have different latent spaces); compare the panels as
# sets. The conv VAE's mean images (left) look smooth but are not samples of its model; its actual draws (middle) are
# those means with independent speckle, and the classifier's features see it: a much larger FD. The autoregressive
# draws (right) are binary digits with ragged strokes, some of them malformed (a stroke that wanders off, an ambiguous
# shape), and come far closer to the floor. The classifier's confidence and score agree on the ranking; the label
# entropies of both are close to the floor's, so neither model favours a few digits. Remember what these scores
# measure: one small classifier's opinion of single images and of their spread, not log-likelihood (notebook 08).
#
# ## 9. Posterior collapse: the price, and its cures
#
# Section 7's KL was 11.13 nats, not 0, but that took care: `conv_pixelcnn` was trained with a KL warm-up. Notebook 06
# explains why a strong decoder needs one. At the start of training the decoder is random, so information in $z$ does
# not yet lower the reconstruction cost, while the KL's pull on $q(z\mid x)$ toward the prior acts from the first step.
# A factorized decoder cannot model digits without $z$, so the reconstruction term soon pays for a code. The window of
# an autoregressive decoder *can* model a lot alone (strokes continue, background stays background), so the decoder
# learns to do without $z$ first, the KL pushes $q(z\mid x)$ onto the prior, and the gradient that would teach the
# model to use $z$ fades: **posterior collapse**, at $\beta = 1$.
#
# Two cures change the start of training. **KL warm-up** (Bowman et al. 2016) raises $\beta$ from 0 to 1, so that early
# on information in $z$ is (almost) free. **Free bits** (Kingma et al. 2016) replace the KL term by
# $\sum_j \max\big(\lambda, \overline{\mathrm{KL}}_j\big)$, with $\overline{\mathrm{KL}}_j$ the batch mean of dimension $j$'s KL:
# below $\lambda$ nats a dimension feels no pull toward the prior at all. Written out on a batch and checked against
# vaelib's objective (`fit(..., objective=ELBOObjective(free_bits=...))`) with the same noise:

# %%
x_batch, _ = test.first(128, seed=0)
free_nats = 0.25
with torch.no_grad():
    torch.manual_seed(3)
    lib_loss = ELBOObjective(beta=1.0, free_bits=free_nats)(conv_pixelcnn, x_batch, None, 0).loss
    torch.manual_seed(3)
    mu, logvar = conv_pixelcnn.encoder(x_batch)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    reconstruction = conv_pixelcnn.decode(z).log_prob(x_batch)                 # (B,)
    kl_per_dim = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)                  # (B, D), notebook 03
    my_loss = -(reconstruction.mean() - kl_per_dim.mean(0).clamp(min=free_nats).sum())
assert torch.allclose(my_loss, lib_loss, atol=1e-3)
print(f"free-bits loss in plain torch {my_loss.item():.2f} = vaelib's ELBOObjective(free_bits=0.25): "
      f"{torch.allclose(my_loss, lib_loss, atol=1e-3)}")
print(f"dimensions of conv_pixelcnn below 0.25 nats on this batch (free): {int((kl_per_dim.mean(0) < free_nats).sum())}"
      " of 20")

# %% [markdown]
# (For the pretrained model, the dimensions it switched off sit far below $\lambda$; under free bits they would have cost
# 0.25 nats each, whatever they carry, so the encoder loses nothing by using them.)
#
# Three runs of one small model make the comparison: a conv encoder and decoder (16 and 32 channels, 128 hidden units,
# latent size 20) with the `pixelcnn` likelihood, trained for 12 epochs on all of MNIST in bf16 with seed 0, differing
# only in the objective: **no cure** ($\beta = 1$ from the first step), a **linear warm-up** of $\beta$ over the first
# 6 epochs, and **free bits** with $\lambda = 0.25$ nats per dimension. Notebook 06 (section 5) shows their KL curves;
# here we look at what their codes carry. They come pretrained (`pretrained/pixel_*.pth`, commands in
# `pretrained/README.md`). Without the files (or with `TRAIN_FROM_SCRATCH = True`) `load_or_train` trains each from
# its recipe on this notebook's training images instead (12 epochs, about 10 minutes each on a 2-core CPU; in fast mode
# 2 epochs, short runs whose curves have only a couple of points).

# %%
# NBVAL_IGNORE_OUTPUT
pixel_runs = {"no cure": "pixel_plain", "KL warm-up": "pixel_warmup", "free bits 0.25": "pixel_freebits"}
pixel_models, pixel_histories = {}, {}
start = time.perf_counter()
for name, file in pixel_runs.items():
    model, history = load_or_train(file, train, test, train_from_scratch=TRAIN_FROM_SCRATCH, device=device)
    pixel_models[name], pixel_histories[name] = model.eval(), history
pretrained_runs = all(len(h) >= 12 for h in pixel_histories.values())
print(("the pretrained runs" if pretrained_runs else f"trained here, {len(history)} epochs on {len(train):,} images")
      + f" ({time.perf_counter() - start:.0f} s)")
for name, history in pixel_histories.items():
    last = history[-1]
    print(f"{name:15s} {len(history):2d} epochs: test KL after epoch 1 {history[0]['test_kl']:5.2f} nats, at the end "
          f"{last['test_kl']:5.2f}; active units {last['active_units']:2d}/20; test ELBO {last['test_elbo']:7.2f}")
final_kl = {name: h[-1]["test_kl"] for name, h in pixel_histories.items()}
assert final_kl["free bits 0.25"] > final_kl["no cure"]
if pretrained_runs:     # what the text below says of the pretrained runs
    assert pixel_histories["no cure"][0]["test_kl"] < 0.1 < final_kl["no cure"]
    assert final_kl["no cure"] < final_kl["KL warm-up"] < final_kl["free bits 0.25"]
    final_elbo = {name: h[-1]["test_elbo"] for name, h in pixel_histories.items()}
    assert final_elbo["free bits 0.25"] < final_elbo["no cure"] < final_elbo["KL warm-up"]

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
for k, (name, history) in enumerate(pixel_histories.items()):
    axes[0].semilogy(history["epoch"], history["test_kl"], marker="o", ms=3, label=name)
    axes[1].plot(history["epoch"], history["test_elbo"], marker="o", ms=3, label=name)
    axes[2].bar([j + 0.27 * (k - 1) for j in range(20)], sorted(history[-1]["kl_per_dim"], reverse=True), width=0.27,
                label=name)
axes[0].set(xlabel="epoch", ylabel="test KL (nats, log scale)", title="rate: test KL per epoch")
axes[1].set(xlabel="epoch", ylabel="test ELBO (nats)", title="test ELBO per epoch")
axes[2].set(xlabel="latent dimension, sorted by its KL", ylabel="KL (nats)", title="KL per dimension, last epoch")
axes[2].axhline(0.25, color="0.4", ls=":", lw=1)
for ax in axes:
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Left, the rate on a log scale, the panel that shows collapse. With the pretrained runs (learner mode), the run without
# a cure collapses at once: after its first epoch its test KL is below 0.1 nats (the lines printed above). The window
# learned to draw digits before the code was worth its price, and the KL's pull kept $q(z\mid x)$ on the prior. With a
# window this small the trap is shallow: once the window has taught the decoder all it can, what only $z$ knows (which
# digit, how thick, which slant) starts to pay for its KL, and the rate climbs back over the next epochs, but it ends
# the smallest of the three. The warm-up run builds a code while $\beta$ is small and keeps it once $\beta$ reaches 1;
# the free-bits run never feels a pull on a dimension below 0.25 nats and ends with the largest rate. (In fast mode,
# two short epochs on a subset, the warm-up is over after one epoch, too soon for its code to survive, and only free
# bits stands apart at the end.)
# Middle, the test ELBO: the warm-up run ends best, the run without a cure close behind, and free bits last, about
# 1.5 nats lower: the floor makes the model carry information that the ELBO says is not worth its cost. Right, each
# dimension's KL after the last epoch, with $\lambda$ dotted: the run without a cure and the warm-up run each use five
# or six dimensions and switch the others off; under free bits most dimensions sit right at $\lambda$, because up to
# 0.25 nats they cost nothing, so they hold that much whether or not it helps the reconstruction.
#
# A KL above 0 does not yet say the code is *useful*. Measured as in section 8: draw 5 images from the posterior mean of
# each of 50 test digits and ask the classifier whether they show the input's digit. A collapsed code cannot say which
# digit to draw, so its draws would match only by chance (about one in ten).

# %%
# NBVAL_IGNORE_OUTPUT
x50, y50 = test.first(50, seed=0)
carried = {}
for name, m in pixel_models.items():
    with torch.no_grad():
        d, _ = draw_pixels(m.likelihood, m.decoder(m.posterior_mean(x50)).repeat_interleave(5, 0),
                           torch.Generator().manual_seed(4))
    carried[name] = (classifier_outputs(classifier, d)[1].argmax(1) == y50.repeat_interleave(5)).float().mean().item()
    print(f"{name:15s} draws from a test digit's z read as that digit: {carried[name]:.0%}")
if pretrained_runs:     # what the text says of the pretrained runs
    assert 0.3 < carried["no cure"] < carried["KL warm-up"] < carried["free bits 0.25"]

# %%
z_show = torch.randn(16, 20, generator=torch.Generator().manual_seed(0))
fig, axes = plt.subplots(1, 3, figsize=(13, 2.2))
for ax, (name, m) in zip(axes, pixel_models.items()):
    with torch.no_grad():
        shown, _ = draw_pixels(m.likelihood, m.decoder(z_show), torch.Generator().manual_seed(1))
    show_images(shown, nrow=8, ax=ax, title=name)
plt.tight_layout()
plt.show()

# %% [markdown]
# The same 16 prior draws $z$, decoded by each run pixel by pixel. With the pretrained runs all three codes carry the
# digit after 12 epochs (the percentages above, far above one in ten), and the samples change digit with $z$. The late
# code of the run without a cure is the least reliable of the three, the free-bits code the most, even though the
# free-bits model has the lowest ELBO. (The fast-mode runs are two epochs old: none of them draws digits yet, and their
# percentages mean little.)
#
# The cures act on the *optimization*: which solution training finds, not which one the objective prefers. A decoder
# strong enough to model the data perfectly without $z$ makes the collapsed model the best ELBO there is; then no
# schedule helps, and the remedy is to weaken the decoder (a small window, as here; Chen et al. 2017) or to change the
# objective.
#
# ## Key takeaways
#
# - A factorized decoder makes pixels independent given $z$: every correlation between pixels, every stroke, must be
#   encoded in $z$, and whatever $z$ leaves open becomes blur in the mean and speckle in the draws.
# - An autoregressive decoder models $p(x\mid z) = \prod_i p(x_i\mid x_{<i}, z)$, exact by the chain rule. A masked
#   convolution (mask A: rows above, pixels to the left, not the centre) keeps pixel $i$ from seeing itself or the
#   future; a strictly lower-triangular Jacobian proves it, and the probabilities of all images sum to 1.
# - Teacher forcing: scoring an image is one pass on the true image, so $\log p(x\mid z)$, the ELBO and $\mathcal L_k$ stay
#   exact and cheap. Sampling is 784 sequential steps, one per pixel.
# - One masked 7x7 window sees 24 pixels; stacks see more but have a blind spot to the upper right.
# - On the same 1,000 test images the pixelcnn decoder gains 7.20 nats of NLL at $k = 5000$ (78.88 vs 86.08) with a KL
#   of 11.13 instead of 23.83 nats and 12 instead of 16 active units: $z$ keeps the digit and its pose, the decoder
#   draws the strokes. Its samples score far better.
# - The price is posterior collapse: a decoder that can do without $z$ learns to, at least early on. With a 7x7 window
#   the collapse here lasted a few epochs before a smaller code came back; KL warm-up keeps a code from the start (and
#   ended with the best ELBO), free bits keep every dimension at 0.25 nats or more (at some cost in ELBO).

# %% [markdown]
# ## Exercises
#
# Each exercise names its tier: *warm-up* (apply what a section showed), *core* (the notebook's main idea in a
# new setting), *stretch* (goes beyond the notebook; optional).
#
# **Exercise 1 (warm-up): what a pixel sees at the border.** Section 3 counted 24 pixels for pixel (14, 14). Near the
# border part of the window falls outside the image, where the zero padding holds nothing to see. Write
# `pixels_seen(row, col, kernel_size, height, width)`: the number of pixels of a `height x width` image that pixel
# `(row, col)` reads through one masked window of size `kernel_size` (mask A), and run `check_pixels_seen`. Then print
# it for the first pixel (0, 0), for (0, 5), (1, 0) and (27, 27) of an MNIST image with the 7x7 window: what does the
# first pixel's distribution depend on?

# %%
from vaelib.course.checks import check_pixels_seen


def pixels_seen(row, col, kernel_size, height, width):
    ### BEGIN SOLUTION
    r = kernel_size // 2
    mask = causal_mask(kernel_size)                                      # the window's mask A
    inside = F.pad(torch.ones(height, width), (r, r, r, r))[row:row + kernel_size, col:col + kernel_size]
    return int((mask * inside).sum())                                    # window pixels that are inside the image
    ### END SOLUTION


check_pixels_seen(pixels_seen)

# %%
### BEGIN SOLUTION
for pixel in [(0, 0), (0, 5), (1, 0), (27, 27), (14, 14)]:
    print(f"pixel {pixel}: sees {pixels_seen(*pixel, 7, 28, 28)} pixels")
# Pixel (0, 0) sees nothing: its distribution depends on z alone, through its features params[:, :, 0, 0].
# The first row sees only pixels to its left (at most 3), the first columns lose the part left of the image.
### END SOLUTION

# %% [markdown]
# **Exercise 2 (core): a sampler for any autoregressive model.** Section 5's sampler knows the inside of vaelib's
# likelihood. A sampler that knows nothing but a function `logits_fn(x)`, returning the teacher-forced logits
# `(B, 1, H, W)` of every pixel given the pixels of `x` before it, works for any autoregressive model. Write
# `sample_autoregressive(logits_fn, shape, generator)`, which draws `shape = (B, 1, H, W)` images in raster order:
# start from zeros; for each pixel, call `logits_fn` on the current images, draw that pixel from
# $\mathrm{Bernoulli}(\sigma(\ell))$ with `torch.bernoulli(..., generator=generator)` for the whole batch, and write it
# into the images. Run `check_autoregressive_sampler` (it also counts your calls of `logits_fn`: one per pixel). Then
# draw 8 digits from `conv_pixelcnn` with `logits_fn = lambda x: lik.logits(params8, x)` for the features `params8` of
# 8 prior draws of $z$, time it against `draw_pixels` on the same features, and show the digits. How many passes of the
# network did your sampler make, and how many would scoring the 8 digits need?

# %%
from vaelib.course.checks import check_autoregressive_sampler


def sample_autoregressive(logits_fn, shape, generator=None):
    ### BEGIN SOLUTION
    x = torch.zeros(shape)
    for r in range(shape[2]):
        for c in range(shape[3]):
            p = torch.sigmoid(logits_fn(x)[:, :, r, c])                 # pixel (r, c) given the pixels before it
            x[:, :, r, c] = torch.bernoulli(p, generator=generator)      # drawn, and fed back for the next pixels
    return x
    ### END SOLUTION


check_autoregressive_sampler(sample_autoregressive)

# %%
# NBVAL_IGNORE_OUTPUT
### BEGIN SOLUTION
calls = 0


def counting_logits(x):
    global calls
    calls += 1
    return lik.logits(params8, x)


with torch.no_grad():
    params8 = conv_pixelcnn.decoder(torch.randn(8, 20, generator=torch.Generator().manual_seed(5)))
    start = time.perf_counter()
    digits8 = sample_autoregressive(counting_logits, (8, 1, 28, 28), torch.Generator().manual_seed(6))
    t_generic = time.perf_counter() - start
    t_lean8 = seconds(lambda: draw_pixels(lik, params8, torch.Generator().manual_seed(6)), repeats=1)
print(f"{calls} passes of the whole network ({t_generic:.1f} s) against one pass to score the 8 digits; "
      f"draw_pixels: {t_lean8:.2f} s")
show_images(digits8, nrow=8, title="8 digits drawn with sample_autoregressive")
plt.show()
# 784 calls, each a full teacher-forced pass over all 784 pixels of the 8 images: 784 times the work of scoring them.
# draw_pixels computes only the pixel being drawn and is much faster, but makes the same 784 steps in sequence.
### END SOLUTION

# %% [markdown]
# **Exercise 3 (core, written): a deeper window.** (a) Section 6 counted 24, 81 and 171 pixels for 1, 2 and 3 masked
# layers. Suppose `conv_pixelcnn`'s likelihood had 3 layers instead of 1 and were trained the same way. What do you
# expect for the test KL, the number of active units and the test NLL, and why? (b) Why does a stronger decoder make
# posterior collapse more likely, and why can KL warm-up fail to prevent it with a decoder that sees the whole past?
# (c) A free-bits run ends with a KL of about $20 \times 0.25 = 5$ nats, every dimension near $\lambda$. Does that mean
# its code carries 5 nats of useful information about the digit? What would you measure to find out?
#
# ### BEGIN SOLUTION
# (a) A larger field lets the decoder model more of the image from the pixels already drawn (whole stroke segments,
# not just edges), so $z$ is needed for less: a smaller KL and fewer active units, while the NLL should improve further
# (the decoder models more dependencies directly), as long as training does not collapse. (b) The better the decoder
# models $x$ without $z$, the less the reconstruction term gains from information in $z$, while the KL still charges
# for every nat; at the start of training the gain is smallest of all. If the decoder alone can reach the best ELBO,
# the collapsed model *is* the optimum of the objective: warm-up only changes the path, and once $\beta$ reaches 1 the
# KL is driven to 0 anyway. (c) No: below $\lambda$ a dimension's KL is free, so the encoder may spend it on anything,
# including noise that the decoder ignores. Measure whether the code is *used*: active units (does the posterior mean
# vary across images?), and whether decoding a test digit's $z$ gives back that digit (the classifier agreement of
# section 9), or the drop in reconstruction when $z$ is replaced by a prior draw.
# ### END SOLUTION

# %% [markdown]
# **Exercise 4 (stretch): where the nats go, pixel by pixel.** Write `per_pixel_nll(model, z, x)`: for a vaelib VAE,
# its latents `z` `(B, D)` and binary images `x`, the map `(B, 1, H, W)` of $-\log p(x_i \mid x_{<i}, z)$ for the
# `pixelcnn` decoder and of $-\log p(x_i\mid z)$ for a factorized Bernoulli decoder (`model.likelihood.name` tells
# which), so that each map sums to `-model.decode(z).log_prob(x)`; run `check_per_pixel_nll`. Then, for the first 200
# test images with $z$ the posterior mean, sort the pixels of each image into four groups by their value and the value
# of the pixel just above them (on below on: a stroke continues downward; on below off: a stroke begins; off below on:
# a stroke ends; off below off: background), and print, for both pretrained models, the nats per image each group
# costs. Show the two maps of one digit side by side. Where does the autoregressive decoder save its nats, where does
# it pay more, and why?

# %%
from vaelib.course.checks import check_per_pixel_nll


def per_pixel_nll(model, z, x):
    ### BEGIN SOLUTION
    params = model.decoder(z)
    logits = model.likelihood.logits(params, x) if model.likelihood.name == "pixelcnn" else params   # teacher forcing
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    ### END SOLUTION


check_per_pixel_nll(per_pixel_nll)

# %%
### BEGIN SOLUTION
x200, _ = test.first(200, seed=0)
with torch.no_grad():
    maps = {name: per_pixel_nll(m, m.posterior_mean(x200), x200)
            for name, m in (("conv_vae", conv_vae), ("conv_pixelcnn", conv_pixelcnn))}
above = F.pad(x200, (0, 0, 1, 0))[:, :, :-1]             # the pixel above each pixel (0 above the first row)
groups = {"on, above on (stroke continues)": (x200 == 1) & (above == 1),
          "on, above off (stroke begins)": (x200 == 1) & (above == 0),
          "off, above on (stroke ends)": (x200 == 0) & (above == 1),
          "off, above off (background)": (x200 == 0) & (above == 0)}
print(f"{'nats per image, first 200 test images':40s} {'conv_vae':>9s} {'conv_pixelcnn':>14s} {'pixels':>7s}")
for group, where in groups.items():
    print(f"{group:40s} {maps['conv_vae'][where].sum().item() / 200:9.2f} "
          f"{maps['conv_pixelcnn'][where].sum().item() / 200:14.2f} {where.sum().item() / 200:7.1f}")
print(f"{'all pixels: -log p(x|z) at the posterior mean':40s} {maps['conv_vae'].sum().item() / 200:9.2f} "
      f"{maps['conv_pixelcnn'].sum().item() / 200:14.2f}")
fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
axes[0].imshow(x200[1, 0], cmap="gray")
axes[0].set_title("test digit")
for ax, (name, v) in zip(axes[1:], maps.items()):
    ax.imshow(v[1, 0], cmap="magma", vmin=0, vmax=3)
    ax.set_title(f"{name}: {v[1].sum().item():.1f} nats", fontsize=10)
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()
# The autoregressive decoder is cheaper where a stroke continues downward: the window sees the pixels above, so a
# stroke that was on in the row above is a good bet. It pays more where a stroke begins or ends, and in total, at the
# posterior mean: whether a stroke starts at this very pixel is not in the rows above, and its code, with half the KL,
# places edges less precisely than the conv VAE's. The ELBO still favours it by far: the nats it loses in
# reconstruction are fewer than the KL it saves (11.13 nats against 23.83, section 7).
### END SOLUTION

# %% [markdown]
# **Exercise 5 (stretch): a gated stack of your own.** Section 6 described what `--pixelcnn_layers 3` adds: gated
# masked layers between the window and the head. Build that stack. Write `GatedStack(features, layers)`, an
# `nn.Module` whose `forward(x, params)` takes binary images `x` `(B, 1, H, W)` and $z$'s feature map `params`
# `(B, features, H, W)` and returns `h` `(B, features, H, W)`: first `h` = a mask-A 7x7 window on `x`
# (`vaelib.autoregressive.MaskedConv2d(1, features, 7)`) plus `params`; then `layers - 1` times
# $h \leftarrow h + W_{\text{out}}(\tanh(a) \odot \sigma(b))$, where $(a, b)$ are the two halves of the channels of a
# mask-B 3x3 convolution of `h` (`MaskedConv2d(features, 2 * features, 3, include_centre=True)`) plus a 1x1
# convolution of `params`, and $W_{\text{out}}$ is a 1x1 convolution. Run `check_gated_stack(GatedStack)`, which tests
# it through its gradients. Then count, with section 6's gradient trick on your own stack (random weights), the pixels
# that the output at (14, 14) of a 3-layer stack reads, and compare with section 6's 7x7 stacks. Why does a gate
# (rather than a ReLU) suit a layer that reads both the pixels and $z$?

# %%
from torch import nn

from vaelib.autoregressive import MaskedConv2d
from vaelib.course.checks import check_gated_stack


class GatedStack(nn.Module):
    ### BEGIN SOLUTION
    def __init__(self, features, layers):
        super().__init__()
        self.window = MaskedConv2d(1, features, 7)                                  # mask A: never the pixel itself
        self.convs = nn.ModuleList(MaskedConv2d(features, 2 * features, 3, include_centre=True)
                                   for _ in range(layers - 1))                     # mask B: h there saw only the past
        self.conditions = nn.ModuleList(nn.Conv2d(features, 2 * features, 1) for _ in range(layers - 1))
        self.outs = nn.ModuleList(nn.Conv2d(features, features, 1) for _ in range(layers - 1))

    def forward(self, x, params):
        h = self.window(x) + params
        for conv, condition, out in zip(self.convs, self.conditions, self.outs):
            a, b = (conv(h) + condition(params)).chunk(2, dim=1)
            h = h + out(torch.tanh(a) * torch.sigmoid(b))
        return h
    ### END SOLUTION


check_gated_stack(GatedStack)

# %%
### BEGIN SOLUTION
with torch.random.fork_rng():
    torch.manual_seed(0)
    stack3 = GatedStack(8, 3)
x_probe = torch.bernoulli(torch.full((1, 1, 28, 28), 0.5), generator=torch.Generator().manual_seed(0)).requires_grad_()
stack3(x_probe, torch.randn(1, 8, 28, 28, generator=torch.Generator().manual_seed(1)))[0, :, 14, 14].sum().backward()
reads = x_probe.grad[0, 0] != 0
print(f"a 7x7 window and two gated 3x3 layers: pixel (14, 14) reads {int(reads.sum())} pixels, none after it: "
      f"{not bool((reads & ~past).any())}; section 6's 7x7 stacks: {', '.join(str(int(f.sum())) for f in fields.values())}")
# The window reads 24 pixels; each 3x3 mask-B layer widens the view by one row up and one column to the left, so the
# stack reads 57: more than one 7x7 window (24), fewer than two or three 7x7 layers (81, 171), and with the same blind
# spot to the upper right. A gate multiplies
# two views of the same input, tanh(a) the content and sigmoid(b) how much of it to pass: where z already says what
# a pixel is, the gate can shut what the pixels above would add, and open it where z is vague (the conditional
# PixelCNN's argument for gates, van den Oord et al. 2016). A ReLU can only add the two contributions.
### END SOLUTION

# %% [markdown]
# ## References
#
# - Bowman, S. R., Vilnis, L., Vinyals, O., Dai, A. M., Jozefowicz, R. and Bengio, S. (2016). Generating sentences
#   from a continuous space. *Proceedings of the 20th SIGNLL Conference on Computational Natural Language Learning
#   (CoNLL)*. [arXiv:1511.06349](https://arxiv.org/abs/1511.06349)
# - Chen, X., Kingma, D. P., Salimans, T., Duan, Y., Dhariwal, P., Schulman, J., Sutskever, I. and Abbeel, P.
#   (2017). Variational lossy autoencoder. *International Conference on Learning Representations (ICLR) 2017*.
#   [arXiv:1611.02731](https://arxiv.org/abs/1611.02731)
# - Frey, B. J. and Hinton, G. E. (1997). Efficient stochastic source coding and an application to a Bayesian
#   network source model. *The Computer Journal* 40(2/3), 157-165.
# - Gulrajani, I., Kumar, K., Ahmed, F., Taiga, A. A., Visin, F., Vazquez, D. and Courville, A. (2017). PixelVAE: a
#   latent variable model for natural images. *International Conference on Learning Representations (ICLR) 2017*.
#   [arXiv:1611.05013](https://arxiv.org/abs/1611.05013)
# - Hinton, G. E. and van Camp, D. (1993). Keeping the neural networks simple by minimizing the description length
#   of the weights. *Proceedings of the 6th Annual Conference on Computational Learning Theory (COLT)*, 5-13.
# - Kingma, D. P., Salimans, T., Jozefowicz, R., Chen, X., Sutskever, I. and Welling, M. (2016). Improved variational
#   inference with inverse autoregressive flow. *Advances in Neural Information Processing Systems 29 (NIPS 2016)*.
#   [arXiv:1606.04934](https://arxiv.org/abs/1606.04934)
# - Ramachandran, P., Paine, T. L., Khorrami, P., Babaeizadeh, M., Chang, S., Zhang, Y., Hasegawa-Johnson, M. A.,
#   Campbell, R. H. and Huang, T. S. (2017). Fast generation for convolutional autoregressive models. *ICLR 2017
#   Workshop*. [arXiv:1704.06001](https://arxiv.org/abs/1704.06001)
# - van den Oord, A., Kalchbrenner, N. and Kavukcuoglu, K. (2016). Pixel recurrent neural networks. *Proceedings of the
#   33rd International Conference on Machine Learning (ICML)*, PMLR 48. [arXiv:1601.06759](https://arxiv.org/abs/1601.06759)
#   (PixelCNN, masks A and B).
# - van den Oord, A., Kalchbrenner, N., Vinyals, O., Espeholt, L., Graves, A. and Kavukcuoglu, K. (2016). Conditional
#   image generation with PixelCNN decoders. *Advances in Neural Information Processing Systems 29 (NIPS 2016)*,
#   4790-4798. [arXiv:1606.05328](https://arxiv.org/abs/1606.05328) (the blind spot, and the gated PixelCNN without it).
