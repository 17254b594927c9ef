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
# # 06 · β-VAE, posterior collapse and KL annealing
#
# **Learning objectives**
#
# - Derive the β-VAE objective, see that β = 1 gives back the ELBO, and read it as a trade-off between
#   **rate** (the KL term) and **distortion** (minus the reconstruction term).
# - Trace a rate-distortion curve by training one small VAE per β.
# - Recognize **posterior collapse**: the KL falls to 0, no latent unit stays active, every sample looks the same; and
#   let `vaelib.fit` warn about it.
# - Write the linear warm-up and cyclical β schedules in plain Python, check them against `vaelib.schedules`, and
#   compare constant β, warm-up and cyclical annealing by their KL curves and active units.
#
# **Prerequisites**
#
# - Notebook 03 (the KL term, KL per latent dimension, active units), 04 (reparameterization) and 05 (training a VAE
#   with `vaelib.fit` and reading its `History`).
# - Maths: the ELBO $\mathbb E_q[\log p(x|z)] - \mathrm{KL}(q(z|x)\,\|\,p(z))$ and its two terms; the idea of a Lagrange
#   multiplier helps for one paragraph but is not needed.

# %%
# NBVAL_IGNORE_OUTPUT
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import torch

import vaelib
import vaelib.evaluation
import vaelib.kl
import vaelib.course.pretrained
import vaelib.reparameterization
from vaelib.plotting import show_images
from vaelib.course import save_figure
from vaelib.schedules import Constant, Cyclical, LinearWarmup, Sigmoid

FAST = vaelib.course.fast_mode()      # True when VAELIB_FAST=1: the smoke-test mode that CI uses
print(vaelib.course.mode_name())    # what made the outputs below: learner mode, or CI's fast mode
TRAIN_FROM_SCRATCH = False     # set True to retrain instead of loading pretrained/ checkpoints
torch.manual_seed(0)
device = "cpu"
torch.set_num_threads(1)       # these small MLPs train fastest on one CPU thread (more threads mostly wait on each other)

train = vaelib.MNIST("train", binarize="dynamic", subset=3000 if FAST else 20000)
test = vaelib.MNIST("test", binarize="dynamic", subset=1000 if FAST else 5000)
print(train)
print(test)

# %% [markdown]
# This notebook trains several small VAEs itself (the six of the β sweep in section 2 come pretrained, trained on all of
# MNIST), so it uses subsets of MNIST (more images in full mode, `FAST = False`). All models are the MLP VAE of
# notebook 05 with 200 hidden units and a 10-dimensional latent space, a Bernoulli likelihood and dynamic binarization.
#
# ## 1. The β-VAE objective
#
# Recall the ELBO of an image $x$ (notebook 02):
#
# $$\mathrm{ELBO}(x) = \underbrace{\mathbb E_{q(z|x)}[\log p(x|z)]}_{\text{reconstruction}}
#   - \underbrace{\mathrm{KL}\big(q(z|x)\,\|\,p(z)\big)}_{\text{KL}} \;\le\; \log p(x).$$
#
# The **β-VAE** (Higgins et al., 2017) puts a weight $\beta \ge 0$ on the KL term:
#
# $$\mathcal L_\beta(x) = \mathbb E_{q(z|x)}[\log p(x|z)] - \beta\,\mathrm{KL}\big(q(z|x)\,\|\,p(z)\big).$$
#
# - $\beta = 1$ is the ELBO itself: the only choice that trains the tightest bound on $\log p(x)$.
# - $\beta > 1$ charges more for every nat of KL. Since the KL is $\ge 0$, $\mathcal L_\beta \le \mathrm{ELBO}$: still a
#   lower bound, but a looser one. The encoder is pushed to put less information into $z$.
# - $\beta < 1$ charges less; $\mathcal L_\beta$ is then *not* a bound on $\log p(x)$ any more. The model behaves more like a
#   plain autoencoder (notebook 01), with sharper reconstructions and worse samples.
#
# **Where β comes from.** Suppose we want the best reconstruction while the code carries at most $C$ nats:
# maximize $\mathbb E_q[\log p(x|z)]$ subject to $\mathrm{KL} \le C$. The Lagrangian of this constrained problem is
# $\mathbb E_q[\log p(x|z)] - \beta\,(\mathrm{KL} - C)$, and for a fixed multiplier $\beta$ the constant $\beta C$ does not
# matter: that is $\mathcal L_\beta$. Each $\beta$ corresponds to some budget $C$; a large $\beta$ to a small budget.
#
# **Rate and distortion.** Average over the data and give the two terms names (Alemi et al., 2018):
#
# $$D = -\,\mathbb E_x\,\mathbb E_{q(z|x)}[\log p(x|z)] \quad\text{(distortion)}, \qquad
#   R = \mathbb E_x\,\mathrm{KL}\big(q(z|x)\,\|\,p(z)\big) \quad\text{(rate)} .$$
#
# Both are in nats and both are $\ge 0$ for binary images. The rate is an upper bound on how much information $z$ carries
# about $x$; the distortion is how badly $x$ is reconstructed from $z$. Then $-\mathrm{ELBO} = D + R$, and training with
# $\beta$ minimizes $D + \beta R$. In the $(R, D)$ plane the lines $D + \beta R = \text{const}$ have slope $-\beta$: a large
# $\beta$ favours points with a low rate, a small $\beta$ points with a low distortion, and $\beta = 1$ the point with the
# smallest $D + R$, the best ELBO.
#
# In plain torch the objective is one line; `vaelib`'s `ELBO` object (notebook 05) computes the same thing as
# `terms.objective` (per image) and `terms.loss` (minus its batch mean, what the optimizer minimizes). We check it on a
# batch of test images with the pretrained 2-D VAE:

# %%
model_2d, _ = vaelib.course.pretrained.load_or_train("vae_2d", train, test,
                                                     train_from_scratch=TRAIN_FROM_SCRATCH, device=device)
model_2d = model_2d.to(device).eval()
x, _ = test.first(256, seed=0)


def my_beta_loss(reconstruction, kl, beta):
    """Minus the beta-VAE objective, averaged over the batch: what training minimizes."""
    return -(reconstruction - beta * kl).mean()


with torch.no_grad():
    for beta in (0.5, 1.0, 4.0):
        torch.manual_seed(0)
        terms = model_2d.elbo_terms(x, beta=beta)
        mine = my_beta_loss(terms.reconstruction, terms.kl, beta)
        assert torch.allclose(mine, terms.loss)
        print(f"beta = {beta}: reconstruction {terms.reconstruction.mean():.0f}, KL {terms.kl.mean():.1f}, "
              f"loss {mine:.0f}  matches ELBO.loss: True")

# %% [markdown]
# The reconstruction and the KL do not depend on $\beta$ (for a fixed model); only the weight between them does, so the
# loss grows with $\beta$ by $\Delta\beta \times \mathrm{KL}$. $\beta$ changes what *training* does, not how a model is
# *scored*: `vaelib.evaluation.evaluate_elbo` always reports the plain ELBO ($\beta = 1$), which is the number to compare
# models by.
#
# ## 2. A rate-distortion curve
#
# One VAE per $\beta \in \{0.25, 0.5, 1, 2, 4, 8\}$, all with the same architecture (784-200-10) and the same
# initialization, trained for 30 epochs on all of MNIST: they ship in `pretrained/mlp_beta_*.pth` (a minute each on a
# laptop CPU; the commands are in `pretrained/README.md`). We measure rate and distortion on the test subset. With
# `TRAIN_FROM_SCRATCH = True` the notebook trains them here instead, from their recipes (30 epochs each on this
# notebook's training subset, 2 in fast mode; the recipe passes `beta` to `fit`, which passes it to the objective: a
# number means a constant $\beta$).

# %%
# NBVAL_IGNORE_OUTPUT
betas = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]


def make_model():
    """The small MLP VAE of this notebook, always with the same initial weights."""
    torch.manual_seed(0)
    return vaelib.build_vae("mlp", latent_dim=10, hidden=200)


sweep, models_by_beta = {}, {}
for beta in betas:
    model, _ = vaelib.course.pretrained.load_or_train(f"mlp_beta_{beta:g}", train, test,
                                                      train_from_scratch=TRAIN_FROM_SCRATCH, device=device)
    models_by_beta[beta] = model.to(device).eval()
    ev = vaelib.evaluation.evaluate_elbo(models_by_beta[beta], test)
    sweep[beta] = dict(rate=ev["kl"], distortion=-ev["reconstruction"], elbo=ev["elbo"],
                       active_units=ev["active_units"])
    print(f"beta = {beta:4}: rate {sweep[beta]['rate']:5.1f}  distortion {sweep[beta]['distortion']:6.1f}  "
          f"test ELBO {sweep[beta]['elbo']:7.1f}  active units {ev['active_units']}/10")

# %%
rates = [sweep[b]["rate"] for b in betas]
distortions = [sweep[b]["distortion"] for b in betas]
fig, ax = plt.subplots(figsize=(6, 4.2))
ax.plot(rates, distortions, "o-", color="C0")
for b, r, d in zip(betas, rates, distortions):
    ax.annotate(f"β = {b:g}", (r, d), textcoords="offset points", xytext=(6, 4), fontsize=9)
r1, d1 = sweep[1.0]["rate"], sweep[1.0]["distortion"]
r_line = torch.linspace(0, max(rates), 50)
ax.plot(r_line, d1 + r1 - r_line, "k--", lw=0.8, label="D + R = that of β = 1 (equal ELBO)")
ax.set(xlabel="rate R = KL (nats)", ylabel="distortion D = -reconstruction (nats)",
       title="rate-distortion trade-off of the β-VAE", ylim=(min(distortions) - 5, max(distortions) + 5))
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
save_figure(fig, "rate_distortion.png")
plt.show()

# %% [markdown]
# Each point is one trained model. Going down the curve from $\beta = 8$ to $\beta = 0.25$ the rate grows and the
# distortion falls: buying better reconstructions costs nats of KL, and the exchange rate gets worse as we go (the curve
# flattens: the first nats of information, roughly "which digit, how slanted", save far more distortion than the last
# ones). Points on the dashed line of slope $-1$ have the same ELBO as $\beta = 1$; points above it have a worse ELBO,
# and in a converged sweep all other $\beta$ would sit above it, since $\beta = 1$ is the one that maximizes the ELBO.
# The pretrained sweep shows it: $\beta = 1$ has the best test ELBO. (Models trained briefly with
# `TRAIN_FROM_SCRATCH = True` are not converged, so there a neighbour of $\beta = 1$ can come out level with it.)

# %%
# NBVAL_IGNORE_OUTPUT
best = max(betas, key=lambda b: sweep[b]["elbo"])
print(f"best test ELBO in the sweep: beta = {best} ({sweep[best]['elbo']:.1f} nats)")

# %% [markdown]
# To see the trade-off rather than read it off a curve, `vaelib.course.widgets.beta_explorer` switches among the pretrained
# models of the sweep: eight test digits, their reconstructions, and eight samples from the prior, for the $\beta$ you pick.
# At small $\beta$ the reconstructions are sharp and the samples messy (the codes fill the prior unevenly); at large
# $\beta$ everything turns into the same few smooth average digits. The panel it draws comes from `beta_panel`:

# %%
from vaelib.course.widgets import beta_explorer, beta_panel

x_eight, _ = test.first(8)
print("panel for beta = 1:", tuple(beta_panel(models_by_beta, 1.0, x_eight).shape),
      "= 8 inputs, 8 reconstructions, 8 samples")

# %%
# NBVAL_IGNORE_OUTPUT
beta_explorer(models_by_beta, test)

# %% [markdown]
# ## 3. Posterior collapse
#
# Push $\beta$ further and the cheapest way to lower $D + \beta R$ is to send **no** information at all: $q(z|x) = p(z)$
# for every $x$, rate $0$, and a decoder that ignores $z$ and outputs the same blurry average digit for everything. This
# is **posterior collapse**. Two forces lead there:
#
# - **The objective**: when every nat of rate costs $\beta$ nats of distortion and no nat saves that much, the collapsed
#   model *is* the optimum. A large $\beta$ does this.
# - **The optimization**: at the start of training the decoder is random, so information in $z$ does not lower the
#   distortion yet, while the KL's pull on $q(z|x)$ toward the prior acts from the first step. If the KL wins this race,
#   $z$ becomes pure noise, the decoder learns to ignore it, and the gradient that would teach the model to use $z$ is
#   tiny: a trap that training leaves slowly, or not at all. Decoders that can model $x$ well without $z$ (autoregressive
#   decoders such as PixelCNN or an LSTM, Bowman et al. 2016) fall into it even with $\beta = 1$.
#
# The symptoms: the KL per latent dimension falls to 0, no unit stays active (notebook 03), and all samples look alike.
# `fit(..., callbacks=[vaelib.callbacks.CollapseWarning(t)])` warns the first time the mean KL per latent dimension on the test set drops below `t`
# nats. Here is a collapse caused by a large $\beta$:

# %%
# NBVAL_IGNORE_OUTPUT
import warnings

collapsed = make_model()
with warnings.catch_warnings(record=True) as caught:  # shown below as one line, without the file it came from
    warnings.simplefilter("always")
    history_collapsed = vaelib.fit(collapsed, train, test, epochs=5, beta=30.0, device=device, progress=False,
                                   callbacks=[vaelib.callbacks.CollapseWarning(0.05)])
print("warning:", *[w.message for w in caught if "posterior collapse" in str(w.message)])
for row in history_collapsed:
    print(f"epoch {row['epoch']}: test KL {row['test_kl']:.3f} nats, active units {row['active_units']}/10, "
          f"test reconstruction {row['test_reconstruction']:.1f}")

# %%
# NBVAL_IGNORE_OUTPUT
ev_collapsed = vaelib.evaluation.evaluate_elbo(collapsed.eval(), test)
print("KL per latent dimension (nats):", [round(v, 3) for v in ev_collapsed["kl_per_dim"]])
print("active units:", ev_collapsed["active_units"])

# %% [markdown]
# Every dimension carries essentially nothing. Now the samples: 16 draws from the collapsed model, beside 16 from the
# pretrained 2-D VAE ($\beta = 1$, 30 epochs), decoded from the same kind of prior draws:

# %%
gen = torch.Generator().manual_seed(0)
samples_collapsed = collapsed.sample(16, generator=gen)
samples_healthy = model_2d.sample(16, generator=torch.Generator().manual_seed(0))
fig, axes = plt.subplots(1, 2, figsize=(9, 2.6))
show_images(samples_collapsed, nrow=8, title="collapsed (β = 30): z is ignored", ax=axes[0])
show_images(samples_healthy, nrow=8, title="pretrained VAE (β = 1)", ax=axes[1])
plt.show()

# %% [markdown]
# Left: 16 different $z$ give the same smudge, the average of all digits, because the decoder has learned to ignore its
# input. Right: a model that uses $z$ turns different $z$ into different digits. The pixel-wise spread across the samples
# puts a number on it:

# %%
spread_healthy = samples_healthy.std(dim=0).mean().item()
print(f"pretrained VAE: pixel std across its 16 samples, averaged over pixels: {spread_healthy:.2f}")

# %%
# NBVAL_IGNORE_OUTPUT
spread_collapsed = samples_collapsed.std(dim=0).mean().item()
print(f"collapsed model: {spread_collapsed:.3f}, {spread_healthy / spread_collapsed:.0f} times less varied")

# %% [markdown]
# ## 4. KL annealing: schedules for β
#
# The classic cure for the optimization side of collapse is to **anneal** $\beta$ (Bowman et al., 2016): start at $\beta = 0$,
# where the model is a plain autoencoder and learns to put information into $z$, and raise $\beta$ only once the decoder
# relies on it. In vaelib a schedule is a callable `beta(step)` of the optimizer step (counted from 0), and `fit(beta=...)`
# accepts one. Two schedules, written out in plain Python:
#
# - **linear warm-up**: $\beta(t) = \min\big(\beta_\text{max},\; \beta_\text{max}\, t / T_\text{warm}\big)$;
# - **cyclical** (Fu et al., 2019): repeat the warm-up every $P$ steps, rising during the first fraction $\rho$ of each
#   cycle and holding $\beta_\text{max}$ for the rest: with $\tau = (t \bmod P)/P$, $\beta(t) = \beta_\text{max}\min(1, \tau/\rho)$.

# %%
# NBVAL_IGNORE_OUTPUT
def my_linear_warmup(step, beta_max, warmup_steps):
    return min(beta_max, beta_max * step / warmup_steps)


def my_cyclical(step, beta_max, period, ratio=0.5):
    tau = (step % period) / period
    return beta_max * min(1.0, tau / ratio)


beta_max = 10.0
epochs = 20
steps_per_epoch = -(-len(train) // 128)          # ceil: fit's default batch size is 128
total_steps = epochs * steps_per_epoch
schedules = {
    "constant": Constant(beta_max),
    "linear warm-up": LinearWarmup(beta_max=beta_max, warmup_steps=total_steps // 2),
    "cyclical": Cyclical(beta_max=beta_max, period=total_steps // 4, ratio=0.5),
}
ok = (all(my_linear_warmup(t, beta_max, total_steps // 2) == schedules["linear warm-up"](t) for t in range(total_steps))
      and all(abs(my_cyclical(t, beta_max, total_steps // 4) - schedules["cyclical"](t)) < 1e-12 for t in range(total_steps)))
assert ok
print("matches vaelib.schedules.LinearWarmup and Cyclical:", ok)
for name, schedule in schedules.items():
    print(f"{name:15s} {schedule!r}")

# %% [markdown]
# The schedules are drawn over 20 epochs of the MLP above (warm-up over the first half, four cycles); their lengths
# count optimizer steps, so they differ between fast and full mode.

# %%
steps = torch.arange(total_steps)
fig, ax = plt.subplots(figsize=(7, 3))
for name, schedule in schedules.items():
    ax.plot(steps, [schedule(int(t)) for t in steps], label=name, lw=2 if name != "constant" else 1.2)
ax.set(xlabel="optimizer step", ylabel="β", title=f"β schedules over {epochs} epochs ({total_steps} steps)")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The constant schedule applies the full $\beta$ from the first step. The linear warm-up rises from 0 and holds
# $\beta_\text{max}$ over the second half of training. The cyclical schedule repeats a faster warm-up four times, so the
# model gets several chances to re-learn to use $z$ at low $\beta$.
#
# ## 5. Collapse where it really happens, and its cure
#
# With the MLP decoders of this notebook, $\beta = 1$ does not collapse: a decoder that draws every pixel independently
# given $z$ needs $z$ for every stroke, so information in $z$ pays for itself from the start. Collapse at $\beta = 1$
# happens with decoders that can model an image well *without* $z$. The `pixelcnn` likelihood of notebook 11 is one:
# each pixel is predicted from $z$ **and** from a 7x7 window of the pixels above and to its left, so the decoder can
# draw plausible strokes from the pixels it has already drawn, and $z$ is only worth its KL if it adds something the
# window cannot.
#
# Four runs of the same small model (a conv encoder, latent size 20, the `pixelcnn` decoder; 12 epochs on all of
# MNIST, bf16, seed 0) differ only in how the KL enters the objective: **no cure** ($\beta = 1$ from the first step),
# a **linear warm-up** of $\beta$ from 0 to 1 over the first 6 epochs, **cyclical** annealing (the warm-up of section
# 4 repeated: four cycles of 3 epochs, $\beta$ rising from 0 to 1 over the first half of each), and **free bits** (each
# latent dimension's KL counts as at least 0.25 nats, exercise 1's idea: below that, the KL exerts no pull). They took
# 8 to 19 minutes each on a 2-core CPU (12 epochs of 24 to 189 s each, by the `seconds` of their stored histories), so
# they come pretrained (`pretrained/pixel_*.pth`, commands in `pretrained/README.md`); their
# stored histories hold the curves. (Without the files, or with `TRAIN_FROM_SCRATCH = True`, `load_or_train`
# trains each from its recipe on this notebook's training subset instead: 12 epochs, 2 in fast mode.)

# %%
# NBVAL_IGNORE_OUTPUT
pixel_runs = {"no cure": "pixel_plain", "KL warm-up": "pixel_warmup", "free bits 0.25": "pixel_freebits",
              "cyclical": "pixel_cyclical"}
pixel_models, pixel_histories = {}, {}
for name, file in pixel_runs.items():
    pixel_models[name], pixel_histories[name] = vaelib.course.pretrained.load_or_train(
        file, train, test, train_from_scratch=TRAIN_FROM_SCRATCH, device=device)
for name, history in pixel_histories.items():
    last = history[-1]
    print(f"{name:15s} {len(history):2d} epochs: KL after epoch 1 {history[0]['test_kl']:5.2f} nats, at the end "
          f"{last['test_kl']:5.2f}; active units {last['active_units']:2d}/20; test ELBO {last['test_elbo']:6.1f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
for name, history in pixel_histories.items():
    axes[0].plot(history["epoch"], history["beta"], marker="o", ms=3, label=name)
    axes[1].plot(history["epoch"], history["test_kl"], marker="o", ms=3, label=name)
    axes[2].plot(history["epoch"], history["active_units"], marker="o", ms=3, label=name)
axes[0].set(xlabel="epoch", ylabel="mean β during the epoch", title="β")
axes[1].set(xlabel="epoch", ylabel="test KL (nats)", title="rate: test KL per epoch")
axes[2].set(xlabel="epoch", ylabel="active units (of 20)", title="active units", ylim=(-0.5, 20.5))
for ax in axes:
    ax.grid(alpha=0.3)
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Middle panel, the key one. Without a cure (blue) the model collapses at once: after the first epoch its test KL is
# below 0.1 nats, because the window-based decoder gets good on its own faster than the encoder learns anything worth
# its KL, and the KL's pull keeps $q(z|x)$ on the prior. Here the trap is not permanent: once the decoder has learned
# what the window can tell it, the little that $z$ adds (which digit, how thick, which slant) starts to pay for itself
# and the KL climbs back, slowly, over the next ten epochs (right panel: the active units rise, then fall to a few as
# the code concentrates in the dimensions that carry most; the warm-up run's code concentrates too). With the warm-up
# (orange) the first epochs cost almost nothing for information in $z$, so the encoder learns a code from the start,
# and it keeps a somewhat larger one when $\beta$ reaches 1, with the best test ELBO of the first three. Free bits
# (green) never pay for the first 0.25 nats of each dimension, so all 20 dimensions stay in use and the KL is high,
# but the ELBO is the lowest: the floor makes the model carry information that the ELBO says is not worth its cost.
#
# The cyclical run (red) shows why Fu et al. (2019) repeat the warm-up. Its first cycle is too short to beat the
# decoder's head start: the KL stays near 1 nat, as in the run without a cure. The second cycle starts again at
# $\beta = 0$ with a decoder that has already learned what the window can tell it, and now information in $z$ pays:
# the KL jumps to 7.4 nats in one epoch, and each later restart lifts it again (to 10.0 and 10.5) before $\beta$ climbs
# back to 1 and squeezes out what is not worth its cost. It ends with the best test ELBO of the four (-84.87, against
# -85.20 for the warm-up) and a code of 8.5 nats in 10 active dimensions. The printed lines above give each run's
# numbers.
#
# Collapse is not only a number: decode the same 8 prior draws with each model. With a collapsed code, $z$ changes
# nothing but the random strokes the decoder draws pixel by pixel.

# %%
# NBVAL_IGNORE_OUTPUT
z_show = torch.randn(8, 20, generator=torch.Generator().manual_seed(0))
fig, axes = plt.subplots(1, 4, figsize=(17, 1.8))
for ax, (name, m) in zip(axes, pixel_models.items()):
    show_images(m.decode_mean(z_show, generator=torch.Generator().manual_seed(1)), nrow=8, ax=ax, title=name)
plt.show()
final = {name: history[-1] for name, history in pixel_histories.items()}
if not TRAIN_FROM_SCRATCH:  # what the text says of the pretrained runs
    assert pixel_histories["no cure"][0]["test_kl"] < 0.5 < final["no cure"]["test_kl"]   # collapse, then a code
    assert final["no cure"]["test_kl"] < final["KL warm-up"]["test_kl"] < final["free bits 0.25"]["test_kl"]
    three = {name: final[name] for name in ("no cure", "KL warm-up", "free bits 0.25")}
    assert max(three, key=lambda name: three[name]["test_elbo"]) == "KL warm-up"
    assert max(final, key=lambda name: final[name]["test_elbo"]) == "cyclical"
    assert min(final, key=lambda name: final[name]["test_elbo"]) == "free bits 0.25"
    assert final["free bits 0.25"]["active_units"] == 20
    cycles = pixel_histories["cyclical"]["test_kl"]
    assert max(cycles[:3]) < 2 < 5 < cycles[3]        # the first cycle nearly collapses; the second restarts the code

# %% [markdown]
# Each panel decodes the same eight $z$, drawn from $\mathcal{N}(0, I)$, drawing every image pixel by pixel. Read the
# panels with the KLs printed above: all four codes carry 6 to 9 nats after 12 epochs (6.33, 7.25, 8.05, 8.55), so different $z$ give different
# digits in each panel, and what varies beyond that (the stroke's details) the decoder draws by itself. The cures
# did not decide *whether* this model ends with a code, only how soon it has one and how it is spread.
#
# Annealing and free bits cure the *optimization* side of collapse, the race that the KL wins at the start. Neither cures
# the *objective* side: anneal to $\beta = 30$ and even the MLP of section 3 collapses once $\beta$ gets there, because
# then the collapsed model is the optimum. Against that, lower $\beta$ (or give a little KL for free).
#
# ## Key takeaways
#
# - The β-VAE maximizes reconstruction $- \beta\,$KL. $\beta = 1$ is the ELBO; models are always *compared* by the ELBO.
# - Rate $R$ = KL, distortion $D$ = minus reconstruction; $-\mathrm{ELBO} = D + R$ and the β-VAE minimizes $D + \beta R$.
#   A sweep over $\beta$ traces the rate-distortion curve: large $\beta$, little information and blurry reconstructions.
# - Posterior collapse: KL $\to 0$, no active units, identical samples. The `CollapseWarning` callback warns. A large
#   $\beta$ causes it with any decoder; a decoder that can model images without $z$ (the `pixelcnn` decoder) falls into it
#   even at $\beta = 1$, at least early in training.
# - Schedules are callables of the optimizer step (`vaelib.schedules.LinearWarmup`, `Cyclical`, ...). Starting with a small
#   $\beta$ lets the model learn to use $z$ before the KL bites, and free bits remove the KL's pull below a floor: both
#   avoid the early collapse, neither a collapse that the final objective prefers.
#
# ## Exercises
#
# Each exercise names its tier: *warm-up* (apply what a section showed), *core* (the notebook's main idea in a
# new setting), *stretch* (goes beyond the notebook; optional).
#
# **Exercise 1 (core): free bits.** Kingma et al. (2016) give each latent dimension $\lambda$ nats for free: the KL part of the
# loss becomes $\beta\sum_j \max\big(\lambda,\ \overline{\mathrm{KL}}_j\big)$, where $\overline{\mathrm{KL}}_j$ is the KL of dimension $j$
# averaged over the batch. Below $\lambda$ a dimension's KL costs nothing, so the encoder has no reason to shut it off.
# First write `free_bits_kl(kl_per_dim, free_nats)`: from the KL of each example and dimension, shape `(B, D)` as
# `vaelib.kl.gaussian_kl_per_dim` returns it, the term $\sum_j \max\big(\lambda,\ \overline{\mathrm{KL}}_j\big)$ as one number
# through which gradients flow, and run `check_free_bits_kl(free_bits_kl)`.
# Then write a training loop in plain torch (Adam, learning rate $10^{-3}$, batches of 128, 5 epochs on `train`) for
# `make_model()` with $\beta = 30$ and $\lambda = 0.5$ nats, using the model's `encoder` and `decode`,
# `vaelib.reparameterization.reparameterize`, `vaelib.kl.gaussian_kl_per_dim` and your `free_bits_kl`. Then compare the
# test KL and active units with the collapsed model of section 3.

# %%
from vaelib.course.checks import check_free_bits_kl


def free_bits_kl(kl_per_dim, free_nats):
    ### BEGIN SOLUTION
    return torch.clamp(kl_per_dim.mean(0), min=free_nats).sum()   # batch average per dimension, then max(lambda, .)
    ### END SOLUTION


check_free_bits_kl(free_bits_kl)

# %%
# NBVAL_IGNORE_OUTPUT
### BEGIN SOLUTION
model_fb = make_model()
optimizer = torch.optim.Adam(model_fb.parameters(), lr=1e-3)
beta_fb, free_nats = 30.0, 0.5
for epoch in range(5):
    g = torch.Generator().manual_seed(epoch)
    for x, _ in train.batches(128, shuffle=True, generator=g):
        mu, logvar = model_fb.encoder(x)
        z = vaelib.reparameterization.reparameterize(mu, logvar)
        reconstruction = model_fb.decode(z).log_prob(x)                       # (B,)
        kl_per_dim = vaelib.kl.gaussian_kl_per_dim(mu, logvar)                # (B, D)
        loss = -reconstruction.mean() + beta_fb * free_bits_kl(kl_per_dim, free_nats)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
ev_fb = vaelib.evaluation.evaluate_elbo(model_fb.eval(), test)
print(f"free bits:  test KL {ev_fb['kl']:.1f} nats, active units {ev_fb['active_units']}/10, "
      f"reconstruction {ev_fb['reconstruction']:.1f}")
print(f"collapsed:  test KL {ev_collapsed['kl']:.2f} nats, active units {ev_collapsed['active_units']}/10, "
      f"reconstruction {ev_collapsed['reconstruction']:.1f}")
# With free bits a dimension's first 0.5 nats cost nothing (up to 5 nats in total), so the encoder keeps putting
# information into z: all units stay active, the KL is nats rather than hundredths of a nat, and the reconstruction
# is better than the collapsed model's, at the same beta = 30.
### END SOLUTION

# %% [markdown]
# **Exercise 2 (warm-up): a smooth schedule.** `vaelib.schedules.Sigmoid(beta_max, midpoint, width)` is
# $\beta(t) = \beta_\text{max} / \big(1 + e^{-(t - \text{midpoint})/\text{width}}\big)$. Write it in plain Python as
# `my_sigmoid(step, beta_max, midpoint, width)` and run `check_sigmoid_schedule(my_sigmoid)`. Then check it against
# vaelib's for $\beta_\text{max} = 1$, midpoint 500, width 50 over steps 0 to 1999, print its repr, and find the first step at
# which it exceeds $0.99\,\beta_\text{max}$ (by search, then by solving the formula for $t$).

# %%
from vaelib.course.checks import check_sigmoid_schedule


def my_sigmoid(step, beta_max, midpoint, width):
    ### BEGIN SOLUTION
    return beta_max / (1 + math.exp(-(step - midpoint) / width))
    ### END SOLUTION


check_sigmoid_schedule(my_sigmoid)

# %%
### BEGIN SOLUTION
sigmoid = Sigmoid(beta_max=1.0, midpoint=500, width=50)
assert all(abs(my_sigmoid(t, 1.0, 500, 50) - sigmoid(t)) < 1e-12 for t in range(2000))
print(repr(sigmoid), "matches my_sigmoid: True")
first = next(t for t in range(2000) if sigmoid(t) > 0.99)
print("first step above 0.99 * beta_max:", first)
# Solving 1 / (1 + exp(-(t - 500) / 50)) = 0.99 gives t = 500 + 50 * ln(99) = 729.8, so step 730.
print(f"by the formula: {500 + 50 * math.log(99):.1f}")
### END SOLUTION

# %% [markdown]
# **Exercise 3 (core, written): reading the collapse runs.** In section 5 the run without a cure and the warm-up run
# optimize the same objective, the ELBO with $\beta = 1$, from epoch 7 on. (a) The run without a cure has almost no KL
# after its first epoch, yet a code of several nats at the end. What happened in between, and why does the warm-up run
# still end with a larger code and a better ELBO? (b) If you anneal the MLP of section 3 to $\beta_\text{max} = 30$
# instead, what do you expect at the end of training, and why? (c) The sweep of section 2 is a
# way to pick $\beta$; which $\beta$ would you pick to compare against published test log-likelihoods, and which to get a
# code that holds only the coarsest information about each digit?
#
# ### BEGIN SOLUTION
# (a) The run without a cure fell into collapse in its first epoch: its decoder learned to draw digits from the pixels
# already drawn before $z$ carried anything, and the KL's pull kept $q(z|x)$ on the prior. The trap is shallow here:
# once the window has taught the decoder all it can, the information only $z$ has (the digit's identity, thickness,
# slant) is worth more than its KL, and the encoder slowly learns a code, but it starts late and ends up in a few
# dimensions. The warm-up run learned a code while the KL was nearly free, and a decoder that relies on it; raising
# $\beta$ then only trims the code. Same objective, different points reached after 12 epochs: the objective alone does
# not decide what training finds, nor how fast.
# (b) Collapse again, only later: once $\beta$ reaches 30 the collapsed model is the optimum of the objective (section 3), so
# the KL is driven to 0 whatever happened before. Annealing delays it; a smaller $\beta$ or free bits prevent it.
# (c) $\beta = 1$: only then is the objective the ELBO, the bound that log-likelihood comparisons use. For a coarse code, a
# large $\beta$ (low rate), accepting blurrier reconstructions.
# ### END SOLUTION


# %% [markdown]
# **Exercise 4 (stretch): let the rate choose β.** Section 1 read $\beta$ as the Lagrange multiplier of the constraint
# $\mathrm{KL} \le C$. Instead of fixing $\beta$ and taking whatever rate comes out, fix the budget $C$ and let $\beta$ find
# itself, by *dual ascent* on the multiplier: after every optimizer step, raise $\beta$ when the batch's KL is above
# $C$ and lower it when below, $\beta \leftarrow \max\big(0,\ \beta + \eta\,(\mathrm{KL} - C)\big)$ (Rezende and Viola 2018
# adapt a multiplier in this spirit, for a constraint on the reconstruction). Write `update_beta(beta, kl, target, lr)`,
# returning the new $\beta$ as a plain number (the controller sets $\beta$; it is not learned by backpropagation), and run
# `check_beta_update`. Then train `make_model()` for 10 epochs on `train` in plain torch (Adam, learning rate
# $10^{-3}$, batches of 128, loss $= -$reconstruction $+\ \beta\,$KL with batch means), starting from $\beta = 1$ with the
# target $C = 5$ nats and $\eta = 0.02$, updating $\beta$ after every step. Plot $\beta$ and the batch KL against the
# step, and print the test KL (`evaluate_elbo`) and the final $\beta$. Is the rate on target? Which $\beta$ of the sweep
# in section 2 gave a rate near 5 nats, and why may the controller's $\beta$ differ from it?

# %%
from vaelib.course.checks import check_beta_update


def update_beta(beta, kl, target, lr):
    ### BEGIN SOLUTION
    kl = kl.item() if isinstance(kl, torch.Tensor) else kl          # a number: no gradient flows into beta
    return max(0.0, beta + lr * (kl - target))                        # dual ascent, clipped: a multiplier stays >= 0
    ### END SOLUTION


check_beta_update(update_beta)

# %%
# NBVAL_IGNORE_OUTPUT
### BEGIN SOLUTION
model_c = make_model()
optimizer = torch.optim.Adam(model_c.parameters(), lr=1e-3)
beta_c, target_rate = 1.0, 5.0
beta_trace, kl_trace = [], []
for epoch in range(10):
    g = torch.Generator().manual_seed(epoch)
    for x, _ in train.batches(128, shuffle=True, generator=g):
        mu, logvar = model_c.encoder(x)
        z = vaelib.reparameterization.reparameterize(mu, logvar)
        kl = vaelib.kl.gaussian_kl(mu, logvar).mean()
        loss = -model_c.decode(z).log_prob(x).mean() + beta_c * kl
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        beta_c = update_beta(beta_c, kl, target_rate, 0.02)
        beta_trace.append(beta_c)
        kl_trace.append(kl.item())
ev_c = vaelib.evaluation.evaluate_elbo(model_c.eval(), test)
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(kl_trace, lw=0.8, label="batch KL (nats)")
ax.plot(beta_trace, lw=2, label="β")
ax.axhline(target_rate, color="0.4", ls=":", lw=1)
ax.set(xlabel="optimizer step", title="dual ascent on β for a rate of 5 nats")
ax.legend(fontsize=8)
plt.show()
print(f"controller: test KL {ev_c['kl']:.2f} nats (target {target_rate}), final beta {beta_c:.2f}")
# The rate ends near the target, but beta is still moving: dual ascent follows the constraint while the model
# trains instead of settling at once (in a short run it can overshoot and swing back). In the
# sweep, a rate near 5 nats took a larger beta than the controller ends with: those models trained for 30 epochs on
# all of MNIST, and a well-trained decoder saves more distortion per nat of rate, so it takes a higher price per
# nat to hold the rate at 5. The beta that meets a budget depends on the model and on how far training has got;
# the budget is what you chose, and what you can report.
### END SOLUTION

# %% [markdown]
# ## References
#
# - Alemi, A. A., Poole, B., Fischer, I., Dillon, J. V., Saurous, R. A. and Murphy, K. (2018). Fixing a broken ELBO.
#   *Proceedings of the 35th International Conference on Machine Learning (ICML)*, PMLR 80.
#   [arXiv:1711.00464](https://arxiv.org/abs/1711.00464)
# - Bowman, S. R., Vilnis, L., Vinyals, O., Dai, A. M., Jozefowicz, R. and Bengio, S. (2016). Generating sentences
#   from a continuous space. *Proceedings of the 20th SIGNLL Conference on Computational Natural Language Learning
#   (CoNLL)*. [arXiv:1511.06349](https://arxiv.org/abs/1511.06349)
# - Fu, H., Li, C., Liu, X., Gao, J., Celikyilmaz, A. and Carin, L. (2019). Cyclical annealing schedule: a simple
#   approach to mitigating KL vanishing. *Proceedings of NAACL-HLT 2019*. [arXiv:1903.10145](https://arxiv.org/abs/1903.10145)
# - Higgins, I., Matthey, L., Pal, A., Burgess, C., Glorot, X., Botvinick, M., Mohamed, S. and Lerchner, A. (2017).
#   beta-VAE: learning basic visual concepts with a constrained variational framework. *International Conference on
#   Learning Representations (ICLR) 2017*. [openreview.net/forum?id=Sy2fzU9gl](https://openreview.net/forum?id=Sy2fzU9gl)
# - Kingma, D. P., Salimans, T., Jozefowicz, R., Chen, X., Sutskever, I. and Welling, M. (2016). Improved variational
#   inference with inverse autoregressive flow. *Advances in Neural Information Processing Systems 29 (NIPS 2016)*.
#   [arXiv:1606.04934](https://arxiv.org/abs/1606.04934)
# - Rezende, D. J. and Viola, F. (2018). Taming VAEs. [arXiv:1810.00597](https://arxiv.org/abs/1810.00597)
