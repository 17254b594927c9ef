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
# # Capstone, Part 1 · A VAE for Fashion-MNIST, measured honestly (starter)
#
# This is the starting point for the Part-1 capstone project (after notebooks 00-09). The task, the check and
# the rubric are in the course guide, [notebooks/README.md](README.md#capstone-projects); read them first.
#
# **What you hand in** is this notebook, grown: it must run top to bottom (fast mode included) and its markdown
# cells are your report. Everything below already runs: one model trained, evaluated under a stated protocol and
# checked. The cells marked **TODO** are yours; each names the notebook that taught what it needs.
#
# **What the project shows** (the rubric's parts):
#
# 1. models and training: two or more VAEs, choices justified, curves, collapse checked;
# 2. log-likelihood: ELBO, NLL and bits/dim with their protocol, L_k against k; `check_capstone_report` passes;
# 3. comparisons: the independent-pixel baseline, a paired comparison, static vs dynamic binarization;
# 4. samples and their nearest training images;
# 5. the latent space;
# 6. the write-up: every number with its protocol, claims that match the figures, limitations stated.
#
# Budget: 6 to 10 hours. The MLP below trains in about a minute on a laptop CPU; a convolutional VAE takes
# minutes per epoch.

# %% [markdown]
# ## 0. Setup

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import torch

import vaelib
from vaelib.course.checks import check_capstone_report
from vaelib.evaluation import active_units, evaluate_elbo, iwae_nll
from vaelib.plotting import plot_history, show_images

FAST = vaelib.course.fast_mode()      # True when VAELIB_FAST=1: the smoke-test mode that CI uses
print(vaelib.course.mode_name())
EPOCHS = 1 if FAST else 30            # TODO: your choice, justified in section 1
N_IMAGES, K = (100, 50) if FAST else (1000, 5000)   # the protocol of section 2 (all 10,000 images: hours of CPU)
torch.manual_seed(0)

train = vaelib.FashionMNIST("train", binarize="dynamic", subset=2000 if FAST else None)
test = vaelib.FashionMNIST("test", binarize="dynamic", subset=1000 if FAST else None)
print(f"{len(train):,} training and {len(test):,} test images")

# %% [markdown]
# Dynamically binarized Fashion-MNIST: each pixel is drawn as a coin flip with its grey level as the probability,
# anew each time an image is served (notebook 00). The items lose their textures but keep their shapes:

# %%
_ = show_images(test.images[:32].float().div(255).bernoulli(generator=torch.Generator().manual_seed(0)), nrow=16)

# %% [markdown]
# ## 1. Models and training
#
# A first model, to start from: the MLP VAE of notebook 05 (400 hidden units, a 20-dimensional latent), a
# Bernoulli likelihood, beta = 1, trained with `vaelib.fit`.

# %%
# NBVAL_IGNORE_OUTPUT
mlp = vaelib.build_vae("mlp", latent_dim=20, hidden=400)
mlp_history = vaelib.fit(mlp, train, test, epochs=EPOCHS, seed=0)
models = {"mlp": mlp}
histories = {"mlp": mlp_history}

# %% [markdown]
# **TODO: a second model** (and more if you like): a convolutional VAE (`vaelib.build_vae("conv", ...)`), another
# latent size, ... Add it to `models` and `histories` and say in a sentence why you chose it.

# %%
# TODO: second = vaelib.build_vae(...); histories["second"] = vaelib.fit(second, train, test, epochs=EPOCHS, seed=0)
#       models["second"] = second

# %% [markdown]
# The curves, and the active units (notebooks 03 and 06: a latent dimension is active when its posterior mean
# varies with x, covariance > 0.01). **TODO**: read them in a sentence: has training converged, has any dimension
# collapsed?

# %%
# NBVAL_IGNORE_OUTPUT
for name, history in histories.items():
    plot_history(history, title=f"{name}: ELBO per epoch (nats, higher is better)")
    plt.show()
    print(f"{name}: {active_units(models[name], test)} of {models[name].latent_dim} latent dimensions active")

# %% [markdown]
# ## 2. Log-likelihood, with its protocol
#
# The report that `check_capstone_report` reads (the guide shows it): the test ELBO and $-\mathcal{L}_k$ on the
# first `N_IMAGES` test images, dynamically binarized by seed 0, in nats per image and in bits per dimension.
# The check re-derives them from the model: the ELBO exactly, $\mathcal{L}_k$ on a few images.

# %%
# NBVAL_IGNORE_OUTPUT
nll_data = vaelib.FashionMNIST("test", binarize="dynamic", subset=N_IMAGES)
reports = {}
for name, model in models.items():
    nll = iwae_nll(model, nll_data, k=K, seed=0, per_image=True)
    reports[name] = {"dataset": "fashion_mnist", "binarize": "dynamic", "seed": 0, "n_images": N_IMAGES, "k": K,
                     "elbo": evaluate_elbo(model, nll_data, seed=0)["elbo"], "nll": nll["nll"],
                     "nll_per_image": nll["per_image"], "bits_per_dim": nll["bits_per_dim"]}
    check_capstone_report(model, reports[name])

# %%
# NBVAL_IGNORE_OUTPUT
print(f"first {N_IMAGES} test images, dynamic binarization (seed 0), k = {K}")
for name, r in reports.items():
    se = r["nll_per_image"].std().item() / math.sqrt(r["n_images"])
    print(f"{name:>8}: ELBO {r['elbo']:8.2f}   NLL {r['nll']:7.2f} +- {se:.2f} nats   {r['bits_per_dim']:.4f} bits/dim")

# %% [markdown]
# **TODO**: $\mathcal{L}_k$ against $k$ for one model (notebook 08, section 2: `vaelib.bounds.iwae_bound`, or
# `iwae_nll` at k = 1, 10, 100, 1000, 5000 on fewer images), plotted and read in a sentence.

# %% [markdown]
# ## 3. Comparisons
#
# **TODO**: the exact independent-pixel baseline (notebook 08), in the same units and on the same images.
#
# The paired comparison of two models on the same images (notebook 08, exercise 4): the mean of the per-image
# differences, and its standard error, which is much smaller than the two models' own errors because the images
# that are hard for one are hard for the other.

# %%
names = list(reports)
if len(names) < 2:
    print("add a second model in section 1 to compare two")
else:
    a, b = names[:2]
    d = reports[b]["nll_per_image"].double() - reports[a]["nll_per_image"].double()
    print(f"{b} - {a}: {d.mean().item():+.2f} +- {d.std().item() / math.sqrt(len(d)):.2f} nats per image "
          f"({d.mean().item() / (784 * math.log(2)):+.4f} bits/dim)")

# %% [markdown]
# **TODO**: the static-vs-dynamic difference for your best model, measured (`binarize="static"`), not assumed.

# %% [markdown]
# ## 4. Samples and nearest neighbours
#
# Samples at temperature 1, not picked: the first 64 of a fixed seed. Decoder means (grey), as notebook 05 shows
# them. **TODO**: each sample's nearest training images with their distances, beside the same for real test
# images (notebook 08).

# %%
for name, model in models.items():
    means = model.sample(64, generator=torch.Generator().manual_seed(0))
    _ = show_images(means, nrow=16, title=f"{name}: 64 samples (decoder means, seed 0)")

# %% [markdown]
# ## 5. Latent space
#
# **TODO**: the decoded manifold of a 2-D model, or spherical interpolations in a larger one (notebook 07), and the
# KL per latent dimension (notebook 03; `vaelib.fit`'s history records it as `kl_per_dim`), each read in a sentence.

# %% [markdown]
# ## 6. Report
#
# **TODO**, in this cell: what you trained and why, the numbers with their protocol (data set, binarization and
# seed, number of images, k, standard errors), what the figures show, and what you could not measure.
