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
# # 15 · VQ-VAE: discrete latents
#
# The VAEs so far encoded an image as a point of a continuous space. The VQ-VAE of van den Oord, Vinyals and
# Kavukcuoglu (2017) encodes it as a grid of **discrete codes**: each 28x28 image becomes 7x7 = 49 indices into a
# codebook of $K = 256$ learned vectors. It is the ancestor of the tokenizers inside today's image and audio
# generators (VQ-GAN, SoundStream, the image tokens of multimodal models). This notebook builds it on
# Fashion-MNIST, shows how its codebook collapses and what fixes it, and then gives it what it lacks to generate:
# a prior over the code grid. MNIST comes last, so that its samples can be scored on the course's scale.
#
# **Learning objectives**
#
# - Quantize an encoder's output to its nearest codes in plain torch, and explain the straight-through gradient:
#   what it copies, and why it is biased.
# - Derive the codebook and commitment losses from what each one must move, and say why the VAE's KL term is gone.
# - Measure codebook usage (used codes, perplexity) over a whole test set and over small batches, show the
#   collapse, and compare EMA updates, dead-code restarts and FSQ on one model.
# - Fit an autoregressive prior over the code grid, read its bits per image against $49\log_2 K$, decode its
#   samples, and score them on MNIST with the course's Frechet distance.
# - State what a VQ-VAE's numbers bound and what they do not, next to the VAE likelihoods of notebooks 08-14.
#
# **Prerequisites**
#
# - Notebooks 04 (gradients through sampling), 05 (training a VAE), 10 (Fashion-MNIST, grey levels and an MSE
#   decoder), 11 (masked convolutions, autoregressive models) and 13 (sample scores: the Frechet distance under the
#   course's MNIST classifier).
# - Maths: the KL divergence of two discrete distributions, entropy, k-means.

# %% [markdown]
# ## 1. Setup
#
# Seven checkpoints of `pretrained/` carry the notebook. All the VQ-VAEs are the same network, `vaelib.vqvae.VQVAE`
# (81k parameters; 69k with FSQ), trained for 5 epochs on the 60,000 grey training images (batch 128, Adam 1e-3,
# seed 0) on the mean squared error; only the quantizer differs.
#
# - `vq_fashion_vq`, `vq_fashion_ema`, `vq_fashion_ema_restart`, `vq_fashion_fsq`: Fashion-MNIST with the four
#   quantizers of section 6;
# - `vq_fashion_prior`: a PixelCNN over the codes of `vq_fashion_ema_restart` (section 7);
# - `vq_mnist`, `vq_mnist_prior`: the same pair on MNIST (section 8).
#
# `benchmarks/vq_fashion.py --save pretrained` and `benchmarks/vq_mnist.py --save pretrained` trained them; their
# measurements are in `benchmarks/RESULTS.md`. With `TRAIN_FROM_SCRATCH = True` the notebook retrains each from its
# recipe instead (about 25 minutes in all on a 2-core CPU).

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
import json
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch.distributions import Categorical, kl_divergence

import vaelib
from vaelib.code_prior import codes_as_images
from vaelib.course import load_or_train, pretrained_path, save_figure
from vaelib.course.sample_quality import sample_scores, test_reference
from vaelib.vq import VectorQuantizer, codebook_usage
from vaelib.vqvae import VQVAE, reconstruction_and_usage

FAST = vaelib.course.fast_mode()      # True when VAELIB_FAST=1: the smoke-test mode that CI uses
print(vaelib.course.mode_name())    # what made the outputs below: learner mode, or CI's fast mode
TRAIN_FROM_SCRATCH = False     # set True to retrain instead of loading pretrained/ checkpoints
torch.manual_seed(0)
started = time.perf_counter()

fashion_train = vaelib.FashionMNIST("train")         # grey levels: the codes of section 7, and (re)training
fashion_test = vaelib.FashionMNIST("test")
x_test = fashion_test.images.float().div(255)                     # all 10,000 test images, (N, 1, 28, 28) in [0, 1]
QUANTIZER_NAMES = ("vq", "ema", "ema_restart", "fsq")
models, histories = {}, {}
for kind in QUANTIZER_NAMES:
    models[kind], histories[kind] = load_or_train(f"vq_fashion_{kind}", fashion_train, fashion_test,
                                                  train_from_scratch=TRAIN_FROM_SCRATCH)
vq = models["ema_restart"]
NAMES = [f"vq_fashion_{kind}" for kind in QUANTIZER_NAMES] + ["vq_fashion_prior", "vq_mnist", "vq_mnist_prior"]
print("all seven pretrained:", not TRAIN_FROM_SCRATCH and all(pretrained_path(n).exists() for n in NAMES))
print(f"VQVAE: {vq.config}, {sum(p.numel() for p in vq.parameters()):,} parameters")

# %% [markdown]
# ## 2. An autoencoder with a codebook
#
# The encoder is notebook 05's conv encoder without its Gaussian head: two stride-2 convolutions take the
# $28\times28$ image to a $7\times7$ grid, and a $1\times1$ convolution gives each cell a vector of $D = 16$
# numbers, $z_e(x)$ of shape `(B, 16, 7, 7)`. Quantization replaces each cell's vector by the nearest of the $K$
# codebook vectors $e_1, \dots, e_K \in \mathbb R^{D}$:
#
# $$c_{ij} = \arg\min_k \lVert z_e(x)_{ij} - e_k\rVert^2,\qquad z_q(x)_{ij} = e_{c_{ij}},$$
#
# and the decoder (transposed convolutions back to $28\times28$, a sigmoid) reconstructs the image from $z_q$. In
# the VAE's words, the posterior is deterministic and one-hot: $q(z = k\mid x)_{ij} = 1$ for $k = c_{ij}$, 0
# otherwise. The image is now 49 integers in $[0, 256)$, $49\times 8 = 392$ bits if written down plainly.
#
# In plain torch, with the trained `ema_restart` model's encoder and codebook, and against `vaelib`'s quantizer:

# %%
x = x_test[:128]
with torch.no_grad():
    z_e = vq.encoder(x)                                          # (128, 16, 7, 7)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 16)               # one row per cell: (128 * 49, 16)
    codebook = vq.quantizer.codebook                             # (256, 16)
    distances = ((flat[:, None, :] - codebook[None, :, :]) ** 2).sum(-1)   # (6272, 256)
    codes = distances.argmin(1).view(128, 7, 7)
    z_q = codebook[codes].permute(0, 3, 1, 2)                    # back to (128, 16, 7, 7)
    vq.eval()
    quantized = vq.quantizer(z_e)
print(f"z_e {tuple(z_e.shape)} -> codes {tuple(codes.shape)} in [0, {vq.num_codes}); "
      f"the same codes as vaelib: {torch.equal(codes, quantized.codes)}")
print(f"mean squared distance of a cell to its code {(flat - codebook[codes.flatten()]).pow(2).sum(1).mean():.4f}, "
      f"to the codebook's mean vector {(flat - codebook.mean(0)).pow(2).sum(1).mean():.4f}")
print("the codes of the first image:")
print(codes[0])
assert torch.equal(codes, quantized.codes) and torch.allclose(z_q, quantized.z_q)

# %% [markdown]
# ## 3. The straight-through gradient
#
# The argmin has no gradient: moving $z_e$ a little leaves $z_q$ where it was, so the reconstruction loss is flat
# in the encoder's output almost everywhere. The VQ-VAE trains the encoder anyway by **copying the decoder's
# gradient at $z_q$ to $z_e$**, the straight-through estimator (Bengio et al. 2013). One line does it:
#
# $$z_q = z_e + \operatorname{sg}(e_c - z_e),$$
#
# where $\operatorname{sg}$ (stop-gradient, `.detach()`) is the identity forward and has zero gradient backward.
# Forward, $z_q = e_c$; backward, $\partial z_q/\partial z_e = I$. Check both on the trained model:

# %%
z_e = vq.encoder(x).detach().requires_grad_(True)                # a leaf, to read its gradient
e = codebook[codes].permute(0, 3, 1, 2)
z_q = z_e + (e - z_e).detach()                                   # straight-through
loss = F.mse_loss(torch.sigmoid(vq.decoder(z_q)), x)
grad_z_e, grad_z_q = torch.autograd.grad(loss, (z_e, z_q))
print(f"forward: z_q equals the codes' vectors (to rounding): {torch.allclose(z_q, e, atol=1e-6)}; backward: the "
      f"gradient at z_e equals the gradient at z_q: {torch.equal(grad_z_e, grad_z_q)}")
assert torch.allclose(z_q, e, atol=1e-6) and torch.equal(grad_z_e, grad_z_q)

# the gradient the decoder would give if it read z_e itself, against the copied one
z_free = z_e.detach().requires_grad_(True)
grad_free, = torch.autograd.grad(F.mse_loss(torch.sigmoid(vq.decoder(z_free)), x), z_free)
cosine = F.cosine_similarity(grad_z_q.flatten(1), grad_free.flatten(1), dim=1)
print(f"cosine between the copied gradient (taken at e) and the decoder's gradient at z_e, per image: mean "
      f"{cosine.mean():.3f}, lowest {cosine.min():.3f}")

# %% [markdown]
# The copy is exact by construction, and it is **biased**: the decoder was differentiated at $e_c$, not at $z_e$,
# so the encoder follows the gradient of a point it did not produce. The two gradients agree only as far as $z_e$
# sits close to its code; on this trained model they point the same way on average (cosine above) but not equally
# for every image. Nothing in the estimator makes the bias small: that is the job of the commitment loss of the
# next section, which keeps $z_e$ near its codes. (Gumbel-softmax relaxations and FSQ's rounding are the other
# answers; section 6 uses FSQ.)
#
# ## 4. The codebook and commitment losses
#
# The straight-through path carries the reconstruction's gradient to the encoder and the decoder, and **none to
# the codebook**: $e_c$ enters $z_q$ only inside the stop-gradient. Two terms supply what is missing, each derived
# from what it must move:
#
# - **the codebook loss** $\lVert \operatorname{sg}(z_e) - e_c\rVert^2$ moves each chosen code towards the encoder
#   outputs assigned to it, and nothing else (the encoder's side is held fixed): the k-means step, by gradient
#   descent;
# - **the commitment loss** $\beta\,\lVert z_e - \operatorname{sg}(e_c)\rVert^2$ moves the encoder towards its codes,
#   and not the codes. Without it, $z_e$ can drift away from every code (the codebook chasing it) and the
#   straight-through bias grows. The paper uses $\beta = 0.25$ and found results robust from 0.1 to 2.
#
# The loss is $\lVert x - \hat x\rVert^2 + \lVert \operatorname{sg}(z_e) - e_c\rVert^2 + \beta\lVert z_e -
# \operatorname{sg}(e_c)\rVert^2$, each distance summed over $D$ and averaged over the cells. The `vq` model trains
# its codebook this way; what each term's gradient reaches, in plain torch:

# %%
plain = models["vq"]
z_e = plain.encoder(x)
flat = z_e.permute(0, 2, 3, 1).reshape(-1, 16)
book = plain.quantizer.codebook                                  # a Parameter: the codebook loss trains it
chosen = book[plain.quantizer.nearest(flat.detach())]
codebook_loss = (flat.detach() - chosen).pow(2).sum(1).mean()
commitment_loss = (flat - chosen.detach()).pow(2).sum(1).mean()
z_q = z_e + (chosen.view(128, 7, 7, 16).permute(0, 3, 1, 2) - z_e).detach()
reconstruction = F.mse_loss(torch.sigmoid(plain.decoder(z_q)), x)
encoder_weight = plain.encoder[0].weight
for name, term in (("reconstruction", reconstruction), ("codebook", codebook_loss), ("commitment", commitment_loss)):
    to_book, to_encoder = torch.autograd.grad(term, (book, encoder_weight), retain_graph=True, allow_unused=True)
    print(f"{name:>14} loss {term.item():.4f}: gradient reaches the codebook "
          f"{to_book is not None and bool(to_book.abs().sum() > 0)}, the encoder "
          f"{to_encoder is not None and bool(to_encoder.abs().sum() > 0)}")
plain.eval()
terms = plain.quantizer(z_e).terms
print(f"vaelib's terms: codebook {terms['codebook']:.4f}, commitment {terms['commitment']:.4f}")
assert torch.allclose(terms["codebook"], codebook_loss) and torch.allclose(terms["commitment"], commitment_loss)

# %% [markdown]
# The two squared distances are the same number, and each moves one side only. The paper's appendix (and Sonnet's
# `VectorQuantizerEMA`) replaces the codebook loss by what its gradient steps converge to: each code becomes the
# **exponential moving average** of the encoder outputs assigned to it, counts $N_k$ and sums $m_k$ decayed by
# $\gamma = 0.99$ each step, $e_k = m_k / N_k$. On a fixed batch that is exactly k-means: a fresh EMA quantizer,
# applied 100 times to the same encoder outputs with a fast decay (0.5), stops changing its assignments and puts
# every used code at the mean of its cluster (up to the tiny Laplace smoothing of the counts).

# %%
with torch.no_grad():
    fixed = vq.encoder(x)
    flat = fixed.permute(0, 2, 3, 1).reshape(-1, 16)
    fresh = VectorQuantizer(256, 16, update="ema", decay=0.5)
    fresh.codebook.data.copy_(flat[torch.randperm(len(flat), generator=torch.Generator().manual_seed(0))[:256]])
    fresh.ema_sum.copy_(fresh.codebook.data)
    fresh.train()
    for _ in range(100):
        before = fresh(fixed).codes.flatten()
    fresh.eval()
    assigned = fresh(fixed).codes.flatten()
    used = assigned.unique()
    means = torch.stack([flat[assigned == k].mean(0) for k in used])
print(f"{len(used)} codes used; assignments changed in the last step: {int((assigned != before).sum())}; largest "
      f"distance of a code from its cluster's mean {(fresh.codebook[used] - means).norm(dim=1).max():.1e}")
assert torch.equal(assigned, before)

# %% [markdown]
# ## 5. Why the KL term vanished
#
# The VQ-VAE is trained without the ELBO's KL term, and it is still a VAE: the term is there, and it is a
# **constant**. The posterior of each cell is one-hot, $q(k) = [k = c]$; take the prior uniform, $p(k) = 1/K$, as
# the paper does while training. Then
#
# $$\mathrm{KL}\big(q\,\|\,p\big) = \sum_k q(k)\log\frac{q(k)}{p(k)} = 1\cdot\log\frac{1}{1/K} = \log K$$
#
# per cell, whatever the image, and $49\log K$ for the grid: no gradient, so the loss leaves it out. With
# `torch.distributions`:

# %%
K = vq.num_codes
one_hot = Categorical(probs=F.one_hot(codes[0].flatten(), K).float())          # the 49 cells of one image
uniform = Categorical(logits=torch.zeros(49, K))
kl = kl_divergence(one_hot, uniform)
print(f"KL per cell: {kl[:3].tolist()} ... = log K = {math.log(K):.4f} nats; for the grid {kl.sum():.2f} nats "
      f"= 49 log K = {49 * math.log(K):.2f}")
assert torch.allclose(kl, torch.full((49,), math.log(K)))

# %% [markdown]
# Two consequences. The ELBO of a VQ-VAE under its training prior is the reconstruction term minus 271.7 nats, so
# its "rate" is fixed at $49\log_2 256 = 392$ bits by the architecture, not learned. And the uniform prior is a
# terrible generative model: decoding uniform codes gives noise (section 7). The VQ-VAE's answer is a second stage:
# fit a prior over the codes *after* training, which is where section 7 goes.
#
# ## 6. Codebook usage, collapse, and the fixes
#
# A codebook of 256 vectors is worth 256 codes only if they are used. Two numbers say how much of it is:
#
# - **used codes**: how many distinct codes occur;
# - **perplexity** $\exp H(p)$ of the codes' frequencies $p$: 1 when one code takes every cell, $K$ when all are
#   equally frequent; the "effective number" of codes.
#
# In plain torch, against `vaelib.vq.codebook_usage`, on the codes of all 10,000 test images:

# %%
measures, test_codes = reconstruction_and_usage(vq, x_test)     # codes (10000, 7, 7) and what they say
counts = torch.bincount(test_codes.flatten(), minlength=K).double()
p = counts / counts.sum()
perplexity = torch.exp(-(p[p > 0] * p[p > 0].log()).sum()).item()   # 0 log 0 = 0
usage = codebook_usage(test_codes, K)
print(f"plain torch: {int((counts > 0).sum())} of {K} codes used, perplexity {perplexity:.2f}")
print(f"vaelib:      {usage['used']} of {K} codes used, perplexity {usage['perplexity']:.2f}")
assert usage["used"] == int((counts > 0).sum()) and abs(usage["perplexity"] - perplexity) < 1e-6

# %% [markdown]
# **Measure it over the test set, not per batch.** Many implementations log the perplexity of each training
# batch. A batch of $B$ images holds $49B$ cells, and a histogram of a few hundred draws cannot show 256 codes
# evenly: the batch perplexity under-reads usage (bshall/VectorQuantizedVAE #3 reports 240 per batch of 52 with
# all 512 codes used). Here, batches of 8 and of 128 test images against the whole test set:

# %%
for size in (8, 128):
    per_batch = [codebook_usage(c, K)["perplexity"] for c in test_codes.split(size)]
    print(f"batches of {size:>3} images ({49 * size:>5} cells): mean perplexity {sum(per_batch) / len(per_batch):6.1f}")
print(f"the whole test set ({49 * len(test_codes):,} cells): perplexity {usage['perplexity']:.1f}")

# %% [markdown]
# With 392 cells, an 8-image batch reads the perplexity about a third low; with 128 images the two agree within a
# few percent. Compare usage on one scale, over a whole set of images.
#
# **The collapse.** With the paper's first recipe (codebook loss, codes initialized uniformly in $\pm 1/K$, near the
# origin), most codes are never the nearest to any encoder output, so they never receive a gradient and never
# move: *dead* codes. Whatever the encoder learns, it learns with the few codes that happened to be chosen early.
# Three fixes, on the same network, data and budget:
#
# - `ema`: the EMA update of section 4. It moves only assigned codes, so on its own it does not revive dead ones,
#   and early it is *worse*: the codes start near the origin, the encoder's outputs move away from it within the
#   first steps, and a code that is never chosen is never moved;
# - `ema_restart`: EMA plus **dead-code restart**: every code whose running count $N_k$ falls below 1 is re-seeded
#   with an encoder output of the current batch (as in Jukebox and many VQ-GAN codebases), so it lands where the data
#   is;
# - `fsq`: **finite scalar quantization** (Mentzer et al. 2023) drops the codebook: $D = 3$ channels, each squashed
#   by a tanh and rounded to 8, 6 and 5 levels, whose $8\cdot6\cdot5 = 240$ grid points are the codes. Every
#   code is a fixed point of a grid the encoder can reach, and there is no codebook or commitment loss.
#
# The four shipped models, on all 10,000 test images:

# %%
measured = {}
for kind in QUANTIZER_NAMES:
    measured[kind], _ = reconstruction_and_usage(models[kind], x_test)
print(f"{'quantizer':>12} | {'test MSE':>8} | {'PSNR dB':>7} | {'codes used':>13} | perplexity | 8-image batches")
for kind, m in measured.items():
    print(f"{kind:>12} | {m['mse']:.5f} | {m['psnr']:7.2f} | {m['used']:>4} of {models[kind].num_codes:<5} | "
          f"{m['perplexity']:10.1f} | {m['batch_perplexity']:6.1f}")

# %% [markdown]
# How the collapse happens is visible in the first steps of training. The loop below trains each quantizer from
# scratch (the same network, Adam 1e-3, batch 128, the same batches) and counts the codes used on 1,000 test images
# as it goes: the training step of a VQ-VAE in plain torch, `x_hat, q = model(x)`, then the MSE plus the
# quantizer's `q.loss`.

# %%
# NBVAL_IGNORE_OUTPUT
steps = 60 if FAST else 240
train_images = fashion_train.images[:steps * 128].float().div(255)
curves = {}
for kind in QUANTIZER_NAMES:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = VQVAE(kind)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    curves[kind] = []
    for step, batch in enumerate(train_images.split(128), 1):
        model.train()
        x_hat, q = model(batch)
        loss = F.mse_loss(x_hat, batch) + q.loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 20 == 0:
            curves[kind].append((step, codebook_usage(model.encode_codes(x_test[:1000]), model.num_codes)["used"]))
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for kind, curve in curves.items():
    ax.plot(*zip(*curve), marker="o", label=kind)
ax.set_xlabel("training step (batch of 128)")
ax.set_ylabel("codes used on 1,000 test images")
ax.set_title("Codebook usage early in training", fontsize=10)
ax.legend()
save_figure(fig, "15_usage_during_training.png")
plt.show()
print("codes used after", steps, "steps:", {kind: curve[-1][1] for kind, curve in curves.items()})

# %% [markdown]
# In these 240 steps (half an epoch), on 1,000 test images: EMA alone is stuck at 7 codes from the first
# measurement, the few codes it chose in the first steps; the plain quantizer climbs to about 95 and falls back below
# 60; FSQ reaches about 130 within 40 steps and stays near 120; only the restarts keep adding codes, from 48 to 218,
# as every code whose running count has decayed below 1 is re-seeded where the encoder's outputs are. After five
# epochs (the table above) plain VQ and EMA alone still use a fifth and a tenth of the codebook (54 and 25 codes),
# the restarts all 256 with a perplexity near 200, FSQ 239 of its 240 with a lower perplexity (89: its grid points
# are fixed, and the encoder uses some far more than others), and the reconstruction error follows usage.
#
# The frequencies themselves, sorted, show what "used" hides:

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for kind in QUANTIZER_NAMES:
    _, kind_codes = reconstruction_and_usage(models[kind], x_test)
    frequencies = codebook_usage(kind_codes, models[kind].num_codes)["counts"].double()
    ax.semilogy(torch.sort(frequencies / frequencies.sum(), descending=True).values, label=kind)
ax.set_xlabel("code, most frequent first")
ax.set_ylabel("frequency over the test set")
ax.set_title("How evenly the codes are used (Fashion-MNIST, 10,000 test images)", fontsize=10)
ax.legend()
save_figure(fig, "15_code_frequencies.png")
plt.show()

# %% [markdown]
# And what the reconstructions look like (top row: test images; then one row per quantizer):

# %%
with torch.no_grad():
    rows = [x_test[:10]] + [models[kind](x_test[:10])[0] for kind in QUANTIZER_NAMES]
fig = vaelib.plotting.show_images(torch.cat(rows), nrow=10,
                                  title="test images; vq, ema, ema_restart, fsq reconstructions")
save_figure(fig, "15_reconstructions.png")
plt.show()

# %% [markdown]
# ## 7. A prior over the codes
#
# To generate, the VQ-VAE needs $p(c)$ over the $7\times 7$ grid, fitted to the codes of the training images after
# the autoencoder is trained. The paper used a PixelCNN; `vaelib.code_prior.CodePixelCNN` is a small one, an
# autoregressive model in raster order,
#
# $$p(c) = \prod_{i=1}^{49} p(c_i\mid c_{<i}),$$
#
# each factor a categorical over $K$ codes read from masked convolutions (notebook 11) over embedded codes. Its first
# convolution is $9\times9$: on a $7\times7$ grid it sees every earlier cell within four rows and columns, nearly all
# of them, so the blind spot of notebook 11 is small. $\log p(c)$ is exact, one forward pass per grid. The shipped
# prior has 4 residual layers of 64 features (529k parameters) and was trained for 2 epochs (Adam, a 100-step warm-up
# to 8e-3, then a cosine decay): about two minutes.
#
# First the property everything rests on, checked in plain torch: **causality**. Change the code of cell $j$; no
# logit at a cell $\le j$ may change.

# %%
train_codes = torch.cat([vq.encode_codes(b.float().div(255)) for b in fashion_train.images.split(1000)])
prior, prior_history = load_or_train("vq_fashion_prior", codes_as_images(train_codes), codes_as_images(test_codes),
                                     train_from_scratch=TRAIN_FROM_SCRATCH)
print(f"CodePixelCNN: {prior.config}, {sum(p.numel() for p in prior.parameters()):,} parameters")
with torch.no_grad():
    grid = test_codes[:1].clone()
    before = prior(grid).flatten(2)                              # (1, K, 49) logits in raster order
    for j in (0, 17, 48):
        changed = grid.clone()
        changed.view(-1)[j] = (changed.view(-1)[j] + 1) % K
        moved = (prior(changed).flatten(2) - before).abs().amax(1)[0] > 0
        print(f"changed cell {j:>2}: logits changed at " + (f"cells {moved.nonzero().min().item()}..48" if moved.any()
              else "no cell (it is the last)") + f", none at or before {j}")
        assert not moved[: j + 1].any()

# %% [markdown]
# **Bits per image.** The prior's negative log-likelihood of the test images' codes, in bits, reads against two
# simpler models of the same codes: uniform codes, $49\log_2 256 = 392$ bits; and independent cells at the codes'
# training frequencies (the best prior that ignores the grid), $49\,H(p)$ in bits, the cross-entropy on the test
# codes.

# %%
with torch.no_grad():
    prior_bits = torch.cat([-prior.log_prob(c) for c in test_codes.split(1000)]) / math.log(2)
frequencies = (torch.bincount(train_codes.flatten(), minlength=K).double() + 1) / (train_codes.numel() + K)
independent_bits = -frequencies.log2()[test_codes.flatten(1)].sum(1)
print(f"bits per test image: uniform {49 * math.log2(K):.1f}; independent cells at the training frequencies "
      f"{independent_bits.mean():.1f}; the PixelCNN prior {prior_bits.mean():.1f} (standard error "
      f"{prior_bits.std() / len(prior_bits) ** 0.5:.1f})")
last = prior_history[-1]
print(f"the prior's training: {last['epoch']} epochs, test bits {last['test_bits']:.1f} as fit recorded it")

# %% [markdown]
# The frequencies alone save only about 20 bits over uniform codes; the context of the earlier cells saves the
# rest. **Uniform codes against prior codes**, decoded, 64 each:

# %%
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    uniform_images = vq.decode_codes(torch.randint(K, (64, 7, 7), generator=g))
    prior_images = vq.decode_codes(prior.sample(64, generator=g))
fig, axes = plt.subplots(1, 2, figsize=(12, 6.2))
vaelib.plotting.show_images(uniform_images, nrow=8, title="uniform codes, decoded", ax=axes[0])
vaelib.plotting.show_images(prior_images, nrow=8, title="codes from the PixelCNN prior, decoded", ax=axes[1])
save_figure(fig, "15_uniform_vs_prior.png")
plt.show()

# %% [markdown]
# Uniform codes decode to a patchwork: every cell is a plausible piece of clothing, but the pieces do not agree.
# Codes from the prior decode to whole items (shirts, trousers, shoes, bags), with the blur of a 5-epoch MSE
# decoder.
#
# ## 8. MNIST, on the course's sample scale
#
# The same pair on MNIST (grey levels), so that the samples can be scored with notebook 13's Frechet distance (FD)
# under the course's MNIST classifier, against the 10,000 grey test images. The MNIST prior is larger (8 residual
# layers of 96 features, 1.02M parameters, 5 epochs, about 10 minutes). Drawing a sample takes 49 forward passes,
# so the notebook scores 1,000 samples (`benchmarks/vq_mnist.py` scores 2,000: see `benchmarks/RESULTS.md`), and
# scores four other sets of the same size on the same reference: decoded uniform codes, reconstructions of test
# images, real training images, and `conv_vae`'s samples from $\mathcal N(0, I)$ (notebook 13's baseline). FD grows
# as $n$ shrinks, so only numbers at the same $n$ compare.

# %%
# NBVAL_IGNORE_OUTPUT
mnist_train = vaelib.MNIST("train", binarize=None, subset=5000 if FAST else None)
mnist_test = vaelib.MNIST("test", binarize=None)
mnist_x = mnist_test.images.float().div(255)
vq_mnist, _ = load_or_train("vq_mnist", mnist_train, mnist_test, train_from_scratch=TRAIN_FROM_SCRATCH)
mnist_measures, mnist_codes = reconstruction_and_usage(vq_mnist, mnist_x)
mnist_train_codes = torch.cat([vq_mnist.encode_codes(b.float().div(255)) for b in mnist_train.images.split(1000)])
mnist_prior, _ = load_or_train("vq_mnist_prior", codes_as_images(mnist_train_codes), codes_as_images(mnist_codes),
                               train_from_scratch=TRAIN_FROM_SCRATCH)
with torch.no_grad():
    mnist_bits = torch.cat([-mnist_prior.log_prob(c) for c in mnist_codes.split(1000)]).mean() / math.log(2)
print(f"vq_mnist: test MSE {mnist_measures['mse']:.5f} (PSNR {mnist_measures['psnr']:.2f} dB), "
      f"{mnist_measures['used']} of 256 codes used, perplexity {mnist_measures['perplexity']:.1f}; "
      f"prior: {mnist_bits:.1f} bits per test image (uniform 392)")

n = 200 if FAST else 1000
g = torch.Generator().manual_seed(0)
start = time.perf_counter()
with torch.no_grad():
    prior_codes = mnist_prior.sample(n, generator=g)
sample_seconds = time.perf_counter() - start
conv, _ = load_or_train("conv_vae", vaelib.MNIST("train", binarize="dynamic", subset=5000 if FAST else None),
                        train_from_scratch=TRAIN_FROM_SCRATCH)
with torch.no_grad():
    sets = {"VQ-VAE + PixelCNN prior": vq_mnist.decode_codes(prior_codes),
            "VQ-VAE, uniform codes": vq_mnist.decode_codes(torch.randint(256, (n, 7, 7), generator=g)),
            "conv_vae, z ~ N(0, I)": conv.sample(n, generator=g),
            "VQ-VAE reconstructions": vq_mnist.decode_codes(mnist_codes[:n]),
            "real training images": mnist_train.images[:n].float().div(255)}
reference = test_reference("mnist")                                 # the 10,000 grey test images
print(f"{n:,} prior samples drawn in {sample_seconds:.0f} s; FD against the 10,000 grey test images:")
for name, images in sets.items():
    s = sample_scores(images, reference)
    print(f"  {name:>24}: FD {s['fd']:6.1f}, confidence {s['confidence']:.3f}, label entropy "
          f"{s['label_entropy']:.3f}")
benchmark = pretrained_path("vq_mnist").parents[1] / "benchmarks" / "results" / "vq_mnist-cpu.json"
if benchmark.exists():         # the same models scored on 2,000 images by benchmarks/vq_mnist.py
    scores = json.loads(benchmark.read_text())["scores"]
    print("benchmarks/vq_mnist.py, 2,000 images each: " + ", ".join(
        f"{name} FD {s['fd']:.1f}" for name, s in scores.items()))
fig = vaelib.plotting.show_images(sets["VQ-VAE + PixelCNN prior"][:64], nrow=8,
                                  title="MNIST: codes from the PixelCNN prior, decoded")
save_figure(fig, "15_mnist_prior_samples.png")
plt.show()

# %% [markdown]
# **Reading it.**
#
# - Decoded prior codes score far better than `conv_vae`'s Gaussian prior on the same $n$ (FD 46.0 against 78.3),
#   and still far from real images (10.2 at this $n$). `benchmarks/vq_mnist.py` measures the prior samples at FD
#   44.1 on 2,000 samples (uniform codes 380.3, reconstructions 9.7, real training images 5.7), within the course's
#   target of 50.
# - The prior, not the autoencoder, limits the samples: the reconstructions score as well as real images (10.3
#   against 10.2), so a perfect prior over these codes would reach about that. A weak prior is worse than none at all: a prior trained
#   for 28 seconds measured FD 92.5 in calibration, worse than `conv_vae`'s $\mathcal N(0, I)$ at 78.0 on the same
#   $n$.
# - Uniform codes are not samples of anything: their FD is off the scale.
#
# ## 9. What these numbers bound, and what they do not
#
# A VAE's negative ELBO bounds $-\log p(x)$, so notebooks 08-14 compare models in nats on binarized MNIST. The
# VQ-VAEs here give no such number:
#
# - **The decoder is an MSE one on grey images.** The MSE is a Gaussian log-likelihood only up to a variance and a
#   constant, and grey images are continuous; a density of continuous data is not comparable with a probability of
#   binary images. Test MSE and PSNR measure reconstruction, not likelihood.
# - **The prior's bits are the cost of the codes, not of the image.** 173 bits per MNIST image (section 8's number
#   is the shipped prior's) is $-\log_2 p_{\text{prior}}(c(x))$ for the codes the encoder chose; the pixels given
#   the codes are not counted.
# - **What would be a bound.** With a Bernoulli decoder on binarized MNIST, $p(x) = \sum_c p(c)\,p(x\mid c) \ge
#   p(c_q(x))\,p(x\mid c_q(x))$ for the code grid $c_q(x)$ the encoder picks, so
#   $$-\log p(x) \le -\log p(x\mid c_q(x)) - \log p_{\text{prior}}(c_q(x))\quad\text{(all in nats)},$$
#   an upper bound on the NLL that may sit beside the VAE rows with that sentence. It is the ELBO of the one-hot
#   posterior with the learned prior in place of the uniform one, so it is usually loose: the posterior spends all
#   its mass on one grid.
#
# The summary of this notebook's runs in wall seconds:

# %%
# NBVAL_IGNORE_OUTPUT
print(f"notebook run time: {time.perf_counter() - started:.0f} s ({vaelib.course.mode_name()})")

# %% [markdown]
# ## Key takeaways
#
# - A VQ-VAE quantizes each cell of the encoder's grid to its nearest codebook vector; the argmin has no gradient,
#   so the straight-through estimator copies the decoder's gradient at $z_q$ to $z_e$, exactly and with a bias.
# - The codebook loss moves the codes, the commitment loss the encoder; the EMA update is their k-means form.
# - With a one-hot posterior and a uniform prior the KL is $\log K$ per cell: a constant, which is why the loss has
#   none and why the rate is fixed by the architecture.
# - Measure usage (used codes, perplexity) over a whole test set; small batches under-read it. Plain VQ and EMA
#   alone collapse onto a fraction of the codebook; dead-code restarts and FSQ use all of it.
# - Generating needs a prior fitted to the codes afterwards; a PixelCNN over the grid turns noise into items, and
#   its bits per image read against $49\log_2 K$. The prior, not the autoencoder, limits the samples.
# - A VQ-VAE with an MSE decoder has no likelihood to compare with the VAEs' nats; a Bernoulli decoder with a
#   learned prior gives an upper bound on the NLL.

# %% [markdown]
# ## Exercises
#
# Each exercise names its tier: *warm-up* (apply what a section showed), *core* (the notebook's main idea in a
# new setting), *stretch* (goes beyond the notebook; optional).
#
# **Exercise 1 (warm-up): the constant KL.** Write `one_hot_kl(num_codes, cells)`: $\mathrm{KL}(q\,\|\,p)$ in nats
# for a one-hot posterior over `num_codes` codes in each of `cells` independent cells, against the uniform prior,
# summed over the cells. Run `check_one_hot_kl`. What is it for FSQ's 240 codes on the same grid, and what does it
# say about the "rate" of the two models?

# %%
from vaelib.course.checks import check_one_hot_kl


def one_hot_kl(num_codes, cells):
    """KL(one-hot || uniform over num_codes), summed over cells: one number, nats."""
    ### BEGIN SOLUTION
    return cells * math.log(num_codes)
    ### END SOLUTION


check_one_hot_kl(one_hot_kl)

# %% [markdown]
# ### BEGIN SOLUTION
# For FSQ, $49\log 240 = 268.6$ nats against $49\log 256 = 271.7$ for the 256-code models: under the uniform
# prior, the rate is set by the grid and the codebook's size alone. It does not depend on the training, the
# data or how many codes are actually used; a collapsed codebook pays the same constant and uses less of it.
# ### END SOLUTION
#
# **Exercise 2 (core): straight-through quantization.** Write `straight_through(z_e, codebook)`: for `z_e`
# `(B, D, H, W)` and `codebook` `(K, D)`, return `z_q` `(B, D, H, W)` whose values are each cell's nearest code and
# whose gradient with respect to `z_e` is the gradient at `z_q`, copied. Run `check_straight_through`.

# %%
from vaelib.course.checks import check_straight_through


def straight_through(z_e, codebook):
    """Nearest-code quantization of z_e (B, D, H, W) with the straight-through gradient: (B, D, H, W)."""
    ### BEGIN SOLUTION
    b, d, h, w = z_e.shape
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
    e = codebook[torch.cdist(flat.detach(), codebook).argmin(1)].view(b, h, w, d).permute(0, 3, 1, 2)
    return z_e + (e - z_e).detach()
    ### END SOLUTION


check_straight_through(straight_through)

# %% [markdown]
# **Exercise 3 (core): the two losses.** Write `vq_losses(z_e, e, beta)`: `(codebook_loss, commitment_loss)` for
# encoder outputs `z_e` `(N, D)` and their chosen codes `e` `(N, D)`, each squared distance summed over $D$ and
# averaged over the $N$ cells; the codebook loss must move only `e`, the commitment loss (times `beta`) only `z_e`.
# Run `check_vq_losses`. Then explain in two sentences what goes wrong in training if the commitment loss is
# dropped.

# %%
from vaelib.course.checks import check_vq_losses


def vq_losses(z_e, e, beta):
    """(||sg(z_e) - e||^2, beta ||z_e - sg(e)||^2), summed over D, averaged over the cells."""
    ### BEGIN SOLUTION
    codebook_loss = (z_e.detach() - e).pow(2).sum(1).mean()
    commitment_loss = beta * (z_e - e.detach()).pow(2).sum(1).mean()
    return codebook_loss, commitment_loss
    ### END SOLUTION


check_vq_losses(vq_losses)

# %% [markdown]
# ### BEGIN SOLUTION
# Without the commitment loss nothing ties the encoder's outputs to the codebook: the reconstruction's
# straight-through gradient moves $z_e$ freely, the codes chase it through the codebook loss, and $z_e$ can grow
# away from every code faster than they follow. The straight-through bias (the decoder differentiated at $e$, not
# at $z_e$) then grows with the distance, and the encoder's updates stop improving what the decoder actually sees.
# ### END SOLUTION
#
# **Exercise 4 (core): codebook usage.** Write `usage(codes, num_codes)`: `(used, perplexity)`, the number of
# distinct codes and $\exp$ of the entropy (nats) of their frequencies. Run `check_codebook_usage`. Then find the
# smallest batch of test images (a power of 2) whose mean batch perplexity is within 5% of the test-set perplexity
# for `ema_restart`.

# %%
from vaelib.course.checks import check_codebook_usage


def usage(codes, num_codes):
    """(distinct codes used, exp(entropy of their frequencies))."""
    ### BEGIN SOLUTION
    counts = torch.bincount(codes.flatten(), minlength=num_codes).double()
    p = counts[counts > 0] / counts.sum()
    return int((counts > 0).sum()), torch.exp(-(p * p.log()).sum()).item()
    ### END SOLUTION


check_codebook_usage(usage)

# %%
### BEGIN SOLUTION
whole = usage(test_codes, K)[1]
for size in (8, 16, 32, 64, 128, 256):
    mean = sum(usage(c, K)[1] for c in test_codes.split(size)) / len(test_codes.split(size))
    print(f"batch of {size:>3}: mean perplexity {mean:.1f} ({mean / whole:.1%} of {whole:.1f})")
    if mean >= 0.95 * whole:
        break
### END SOLUTION

# %% [markdown]
# ### BEGIN SOLUTION
# Batches of 128 images (6,272 cells, about 25 per code) read 97.0% of the test-set perplexity; 64 images read 94.4%,
# just short of the 5%, and 8 images 63.1%. A batch needs many more cells than codes before its histogram shows how
# evenly they are used, which is why per-batch perplexity logged during training says little about a large codebook.
# ### END SOLUTION
#
# **Exercise 5 (stretch): a tiny transformer prior.** Replace the PixelCNN by a causal transformer over the 49 codes
# in raster order (an embedding plus a learned position embedding, 2 layers of `torch.nn.TransformerEncoderLayer`
# with a causal mask, a linear head to $K$ logits; predict code $i$ from codes $< i$ with a start token). Train it
# on `train_codes` for the same two minutes and compare its test bits per image with section 7's prior. Which one
# sees the whole context, and which one is faster to sample from?

# %% [markdown]
# ## References
#
# - van den Oord, A., Vinyals, O. and Kavukcuoglu, K. (2017). Neural discrete representation learning. *NeurIPS
#   2017*. [arXiv:1711.00937](https://arxiv.org/abs/1711.00937)
# - Razavi, A., van den Oord, A. and Vinyals, O. (2019). Generating diverse high-fidelity images with VQ-VAE-2.
#   *NeurIPS 2019*. [arXiv:1906.00446](https://arxiv.org/abs/1906.00446)
# - Mentzer, F., Minnen, D., Agustsson, E. and Tschannen, M. (2023). Finite scalar quantization: VQ-VAE made
#   simple. *ICLR 2024*. [arXiv:2309.15505](https://arxiv.org/abs/2309.15505)
# - Bengio, Y., Léonard, N. and Courville, A. (2013). Estimating or propagating gradients through stochastic neurons
#   for conditional computation. [arXiv:1308.3432](https://arxiv.org/abs/1308.3432)
# - Dhariwal, P., Jun, H., Payne, C., Kim, J. W., Radford, A. and Sutskever, I. (2020). Jukebox: a generative model
#   for music (codebook restarts). [arXiv:2005.00341](https://arxiv.org/abs/2005.00341)
# - Esser, P., Rombach, R. and Ommer, B. (2021). Taming transformers for high-resolution image synthesis (VQ-GAN).
#   *CVPR 2021*. [arXiv:2012.09841](https://arxiv.org/abs/2012.09841)
# - van den Oord, A., Kalchbrenner, N., Vinyals, O., Espeholt, L., Graves, A. and Kavukcuoglu, K. (2016).
#   Conditional image generation with PixelCNN decoders. *NeurIPS 2016*. [arXiv:1606.05328](https://arxiv.org/abs/1606.05328)
# - bshall/VectorQuantizedVAE issue #3: batch perplexity against codebook usage.
#   [github.com/bshall/VectorQuantizedVAE/issues/3](https://github.com/bshall/VectorQuantizedVAE/issues/3)
