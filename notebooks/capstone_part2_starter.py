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
# # Capstone, Part 2 · One lever, measured (starter)
#
# This is the starting point for the Part-2 capstone project (after notebooks 11-13). The task, the check and the
# rubric are in the course guide, [notebooks/README.md](README.md#capstone-projects).
#
# **The task**: take your Part-1 Fashion-MNIST VAE and improve it with **one** of the four levers of the advanced
# track, then measure what it bought:
#
# | lever | what changes | notebook |
# | --- | --- | --- |
# | `"pixelcnn"` | an autoregressive decoder (`likelihood="pixelcnn"`, on the conv VAE: on the MLP its feature map makes a 10M-parameter decoder) | 11 |
# | `"iaf"` | a flow posterior (`posterior_kind="iaf"`) | 12 |
# | `"iwae"` | the training objective: the importance-weighted bound (`objective=IWAEObjective(k=5)`), the same network | 12 |
# | `"prior"` | a learned prior (`prior_kind="vamp"`, or `"mog"`) | 13 |
#
# Report the paired gain at k = 5000 in nats and bits/dim, with its standard error, and the sample scores of both
# models; `check_capstone_gain` checks the lot. Everything below runs as it is (with the IWAE lever on the
# reference MLP); the cells marked **TODO** are yours.

# %% [markdown]
# ## 0. Setup

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
import dataclasses
import math

import matplotlib.pyplot as plt
import torch

import vaelib
from vaelib.course.checks import capstone_report, check_capstone_gain
from vaelib.course.sample_quality import model_scores
from vaelib.plotting import show_images

FAST = vaelib.course.fast_mode()      # True when VAELIB_FAST=1: the smoke-test mode that CI uses
print(vaelib.course.mode_name())
EPOCHS = 1 if FAST else 30
N_IMAGES, K = (100, 50) if FAST else (1000, 5000)   # the protocol of section 3
SAMPLES = 1000 if FAST else 10_000                  # section 4: the course's protocol is 10,000
BASELINE_FILE = None    # TODO: the path of your Part-1 model (vaelib.save(model, path)); None trains the reference MLP
LEVER = "iwae"          # TODO: your lever: "pixelcnn", "iaf", "iwae" or "prior"
torch.manual_seed(0)

train = vaelib.FashionMNIST("train", binarize="dynamic", subset=2000 if FAST else None)
test = vaelib.FashionMNIST("test", binarize="dynamic", subset=1000 if FAST else None)

# %% [markdown]
# ## 1. The Part-1 model
#
# Yours, loaded from its file, or the reference MLP of the guide's table (400 hidden units, a 20-dimensional
# latent, 30 epochs: about 3 minutes on a 2-core CPU). The `"pixelcnn"` lever needs a convolutional baseline: train
# `vaelib.build_vae("conv", latent_dim=20)` in Part 1, or here.

# %%
# NBVAL_IGNORE_OUTPUT
if BASELINE_FILE is not None:
    baseline = vaelib.load(BASELINE_FILE)
    baseline_history = None
else:
    baseline = vaelib.build_vae("mlp", latent_dim=20, hidden=400)
    baseline_history = vaelib.fit(baseline, train, test, epochs=EPOCHS, seed=0)
baseline = baseline.eval()

# %%
print(baseline.config)

# %% [markdown]
# ## 2. The lever
#
# One change to the baseline's config (`dataclasses.replace`), and what `fit` needs for it; everything else
# stays as it was, so that the difference is the lever's. The same epochs, seed and data as the baseline.
# **TODO**: say why you chose this lever and what you expect it to change (the ELBO, the gap, the samples?).

# %%
# NBVAL_IGNORE_OUTPUT
changes = {"pixelcnn": ({"likelihood": "pixelcnn"}, {}), "iaf": ({"posterior_kind": "iaf"}, {}),
           "iwae": ({}, {"objective": vaelib.objectives.IWAEObjective(k=5)}), "prior": ({"prior_kind": "vamp"}, {})}
config_change, fit_change = changes[LEVER]
improved = vaelib.build_vae(config=dataclasses.replace(baseline.config, **config_change))
improved_history = vaelib.fit(improved, train, test, epochs=EPOCHS, seed=0, **fit_change)
improved = improved.eval()

# %%
# NBVAL_IGNORE_OUTPUT
ax = plt.subplots(figsize=(6, 3.5))[1]
for name, history in (("baseline", baseline_history), (LEVER, improved_history)):
    if history is not None:
        ax.plot([r["epoch"] for r in history], [r["test_elbo"] for r in history], marker="o", ms=3, label=name)
ax.set(xlabel="epoch", ylabel="test ELBO (nats)", title="test ELBO per epoch")
ax.legend()
plt.show()

# %% [markdown]
# **TODO**: read the curves. An IWAE-trained model reports a *lower* ELBO than its baseline and a better
# $\mathcal{L}_k$ (notebook 12): which number should compare the two?

# %% [markdown]
# ## 3. The paired gain, in nats and bits/dim
#
# Both models on the same images, the same binarization and the same $k$: then the per-image differences pair up,
# and their standard error is far smaller than either model's own (notebook 08, exercise 4).
# `capstone_report` builds each model's Part-1 report under one protocol.

# %%
# NBVAL_IGNORE_OUTPUT
reports = {which: capstone_report(model, "fashion_mnist", "dynamic", seed=0, n_images=N_IMAGES, k=K)
           for which, model in (("baseline", baseline), ("improved", improved))}
d = reports["improved"]["nll_per_image"].double() - reports["baseline"]["nll_per_image"].double()
gain, gain_se = d.mean().item(), d.std().item() / math.sqrt(len(d))
print(f"first {N_IMAGES} test images, dynamic binarization (seed 0), k = {K}")
for which, r in reports.items():
    print(f"{which:>9}: ELBO {r['elbo']:8.2f}   NLL {r['nll']:7.2f} nats   {r['bits_per_dim']:.4f} bits/dim")
print(f"improved - baseline: {gain:+.2f} +- {gain_se:.2f} nats per image ({gain / (784 * math.log(2)):+.4f} bits/dim)")

# %% [markdown]
# ## 4. Samples
#
# The Frechet distance of `SAMPLES` binary samples of each model against the binarized test set, under the
# Fashion-MNIST classifier (`vaelib.course.sample_quality`, the scale notebooks 11 and 13 use for MNIST), and
# the first 32 samples of each, not picked.

# %%
# NBVAL_IGNORE_OUTPUT
scores = {which: model_scores(model, SAMPLES, seed=0, dataset="fashion_mnist")
          for which, model in (("baseline", baseline), ("improved", improved))}
for which, s in scores.items():
    print(f"{which:>9}: FD {s['fd']:6.1f}   confidence {s['confidence']:.3f}   label entropy {s['label_entropy']:.3f}")
for which, model in (("baseline", baseline), ("improved", improved)):
    drawn = model.sample(32, draw=True, generator=torch.Generator().manual_seed(0))
    _ = show_images(drawn, nrow=16, title=f"{which}: 32 binary samples (seed 0)")

# %% [markdown]
# ## 5. The check

# %%
# NBVAL_IGNORE_OUTPUT
report = {"baseline": reports["baseline"], "improved": reports["improved"], "lever": LEVER,
          "nll_difference": gain, "nll_difference_se": gain_se,
          "bits_per_dim_difference": gain / (784 * math.log(2)),
          "samples": {"n": SAMPLES, "seed": 0, "fd_baseline": scores["baseline"]["fd"],
                      "fd_improved": scores["improved"]["fd"]}}
check_capstone_gain(baseline, improved, report)

# %% [markdown]
# ## 6. Report
#
# **TODO**, in this cell: the lever and why; the paired gain with its standard error and protocol, in nats and
# bits/dim; the sample scores; where the gain comes from (the gap to $\log p(x)$, the prior's holes, the
# decoder's blur: notebooks 11-13 each give a way to tell) and what you could not measure. The guide's
# instructor reference table gives the numbers the four levers reached on the reference MLP and conv VAE.
