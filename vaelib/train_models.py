"""vaelib's other latent-variable models trained on a named data set in a run folder: what
``python -m vaelib train RUN --model hierarchical|vqvae|code_prior|latent_ddpm`` does, callable from Python.

    from vaelib.train_models import train_model
    train_model("runs/hvae", "hierarchical", {"latent_dims": [32, 16]}, warmup_epochs=10, free_bits=0.5, epochs=40)
    train_model("runs/vq", "vqvae", {"quantizer": "ema_restart"}, dataset="fashion_mnist", epochs=5)
    train_model("runs/prior", "code_prior", codes_of="runs/vq/checkpoint_last.pth", epochs=2, lr=5e-3)
    train_model("runs/ld", "latent_ddpm", latents_of="pretrained/conv_vae.pth", epochs=85, batch_size=256)

The run folder is claimed as ``train_vae`` claims it (vaelib.runs.RunClaim); ``fit`` writes
``checkpoint_best.pth``, ``checkpoint_last.pth`` and ``history.csv`` there, and ``vaelib.load`` rebuilds the
model from either checkpoint. A continued run (``resume_if_exists``) takes its model from its last checkpoint;
model settings given with it that differ from the checkpoint's are refused.

* ``"hierarchical"``: vaelib.hierarchical.HierarchicalVAE on dynamically binarized images (28x28, one channel),
  trained on the ELBO with a KL warm-up over ``warmup_epochs`` and ``free_bits`` nats per layer.
* ``"vqvae"``: vaelib.vqvae.VQVAE on grey images (28x28, one channel), trained on the MSE and the quantizer's loss.
* ``"code_prior"``: vaelib.code_prior.CodePixelCNN over the codes that the VQ-VAE of the checkpoint ``codes_of``
  gives the images of its own data set (its ``num_codes`` is the VQ-VAE's), trained on their negative
  log-likelihood; ``vaelib generate --prior`` and ``vaelib evaluate --prior`` decode and score its samples.
* ``"latent_ddpm"``: vaelib.diffusion.DDPM over the latents of the VAE of the checkpoint ``latents_of``
  (vaelib.latent_diffusion: trained on L_simple with a fresh z ~ q(z|x) of its data set's images each batch, its
  ``scale`` measured on them unless given, weights averaged with ``ema_decay`` 0.999 unless given); ``vaelib
  generate --prior`` decodes its samples with the VAE, ``vaelib evaluate --prior --samples N`` scores them.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from .checkpoints import load_checkpoint, model_from_checkpoint
from .code_prior import CodePixelCNN, code_prior_objective, codes_as_images
from .data import load_dataset
from .diffusion import DDPM, EMAUpdate
from .hierarchical import HierarchicalVAE, hierarchical_objective
from .latent_diffusion import latent_ddpm_objective, latent_scale, posterior_parameters
from .runs import RunClaim
from .train_run import NothingToTrain
from .training import fit
from .vqvae import VQVAE, vq_objective

__all__ = ["train_model", "MODELS", "OBJECTIVES", "CALLBACKS"]

MODELS = {"hierarchical": HierarchicalVAE, "vqvae": VQVAE, "code_prior": CodePixelCNN, "latent_ddpm": DDPM}
# the objective of each model without settings of its own (a hierarchy's is hierarchical_objective(warm-up, free bits))
OBJECTIVES = {"vqvae": vq_objective, "code_prior": code_prior_objective, "latent_ddpm": latent_ddpm_objective}
# what fit needs beside the objective: a latent DDPM's weight average moves after every step
CALLBACKS = {"latent_ddpm": EMAUpdate}
# a Bernoulli likelihood of binary images; MSE on grey ones (a code prior: the grey images its VQ-VAE encodes; a
# latent DDPM: the images as its VAE was trained on them)
_BINARIZE = {"hierarchical": "dynamic", "vqvae": None, "code_prior": None}
_WHAT = {"hierarchical": "hierarchical VAE", "vqvae": "VQ-VAE", "code_prior": "code prior",
         "latent_ddpm": "latent DDPM"}


def _upstream(kind: str, path):
    """The model whose codes (``kind="code_prior"``, a VQ-VAE) or latents (``"latent_ddpm"``, an unconditional VAE
    with a Gaussian posterior) the prior of ``kind`` models, loaded from ``path`` and refused in one line when it is
    missing or of another kind."""
    from .checkpoints import load
    from .vae import VAE
    key, what, example = {
        "code_prior": ("codes_of", "a code prior models the codes of a trained VQ-VAE", "runs/vq/checkpoint_last.pth"),
        "latent_ddpm": ("latents_of", "a latent DDPM models the latents of a trained VAE", "pretrained/conv_vae.pth"),
    }[kind]
    if path is None:
        raise ValueError(f"{key}= is missing: {what}; give its checkpoint ({key}={example!r})")
    model = load(path)
    if kind == "code_prior" and not isinstance(model, VQVAE):
        raise ValueError(f"{key}={str(path)!r} holds a {type(model).__name__}, not a VQ-VAE: give the checkpoint of a "
                         f"VQ-VAE (train_model(run_dir, 'vqvae', ...))")
    posterior = getattr(getattr(model, "config", None), "posterior_kind", "gaussian")
    if kind == "latent_ddpm" and (not isinstance(model, VAE) or getattr(model, "num_classes", 0)
                                  or posterior != "gaussian"):
        raise ValueError(f"{key}={str(path)!r} holds a {type(model).__name__}, not an unconditional VAE with a "
                         f"Gaussian posterior: give the checkpoint of one ('vaelib train RUN')")
    return model


def train_model(run_dir, kind: str, model: dict | None = None, *, dataset: str | None = None, subset: int | None = None,
                data_root=None, warmup_epochs: int | None = None, free_bits: float | None = None,
                resume_if_exists: bool = False, codes_of=None, latents_of=None, log=print, **settings) -> list:
    """Train a ``kind`` model (:data:`MODELS`) built from ``model`` (its constructor's arguments) into ``run_dir``;
    return the history. ``settings``: vaelib.RunConfig fields (``epochs``, ``lr``, ``batch_size``, ``seed``...).
    The kind, its arguments, the data and the objective's settings are stored as the checkpoints' ``train_args``;
    a continued run keeps its warm-up and free bits unless they are given again.

    Raises ``ValueError`` naming the argument (an unknown kind or model argument, a setting the kind does not
    use, a model setting that contradicts the run being continued), :class:`vaelib.train_run.NothingToTrain`,
    and vaelib.runs.RunFolderError.
    """
    if kind not in MODELS:
        raise ValueError(f"model={kind!r}: choose one of {', '.join(MODELS)} (or vaelib.train_run.train_vae for a VAE)")
    if kind != "hierarchical" and (warmup_epochs or free_bits):
        raise ValueError(f"warmup_epochs= and free_bits= shape a hierarchical VAE's KL terms, and a {_WHAT[kind]} has "
                         f"none: drop them")
    if codes_of is not None and kind != "code_prior":
        raise ValueError(f"codes_of= names the VQ-VAE whose codes a code prior models; a {_WHAT[kind]} does not take "
                         "it: drop it")
    if latents_of is not None and kind != "latent_ddpm":
        raise ValueError(f"latents_of= names the VAE whose latents a latent DDPM models; a {_WHAT[kind]} does not "
                         "take it: drop it")
    given = dict(model or {})
    with RunClaim(run_dir, resume_if_exists) as resume:
        run_dir = Path(run_dir)
        stored = None if resume is None else load_checkpoint(resume)       # read once: model, settings, history
        recorded = {} if stored is None else stored.get("train_args") or {}
        if dataset is not None and recorded.get("dataset", dataset) != dataset:
            raise ValueError(f"dataset={dataset!r} contradicts the run being continued ({resume}), trained on "
                             f"{recorded['dataset']!r}: drop it (the data is taken from the checkpoint)")
        from .runs import stored_data
        codes_of = recorded.get("codes_of") if codes_of is None else codes_of
        latents_of = recorded.get("latents_of") if latents_of is None else latents_of
        vq = _upstream(kind, codes_of) if kind == "code_prior" else None
        vae = _upstream(kind, latents_of) if kind == "latent_ddpm" else None
        upstream = vq if vq is not None else vae
        # what the prior's size must match: the VQ-VAE's codebook, or the VAE's latent size
        size_arg, path_arg, path, size, unit = (
            ("num_codes", "codes_of", codes_of, vq.num_codes, "codes") if vq is not None else
            ("dim", "latents_of", latents_of, vae.latent_dim, "latent dimensions") if vae is not None else (None,) * 5)
        if dataset is None:
            dataset = recorded.get("dataset") or (stored_data(upstream)["dataset"] if upstream is not None else "mnist")
        binarize = stored_data(vae)["binarize"] if vae is not None else _BINARIZE[kind]
        train, test = (load_dataset(dataset, split, binarize, n, "cpu", data_root)
                       for split, n in (("train", subset), ("test", subset and min(subset, 10000))))
        name, n_train, n_test = train.name, len(train), len(test)
        if vae is not None:
            if list(train.image_shape) != list(vae.image_shape):
                raise ValueError(f"dataset={dataset!r} holds images {tuple(train.image_shape)} and the VAE of "
                                 f"latents_of= takes {tuple(vae.image_shape)}: give the data set it was trained on")
            # the DDPM's data: q(z|x) of each image (vaelib.latent_diffusion), a fresh z drawn every batch
            train, test = (posterior_parameters(vae, data.first(len(data), seed=0)[0]) for data in (train, test))
        elif tuple(train.image_shape) != (1, 28, 28):
            raise ValueError(f"dataset={dataset!r} holds images {tuple(train.image_shape)}: the {kind} model takes "
                             f"one-channel 28x28 images (mnist, fashion_mnist, kmnist)")
        if resume is not None:
            built = model_from_checkpoint(stored, resume)
            if not isinstance(built, MODELS[kind]):
                raise ValueError(f"the run in {run_dir} holds a {type(built).__name__}, not a {kind} model: continue "
                                 f"it with its own kind, or start a new run in another folder")
            conflicts = {k: v for k, v in given.items() if built.config.get(k) != (list(v) if isinstance(v, tuple)
                                                                                  else v)}
            if conflicts:
                raise ValueError(", ".join(f"{k}={v!r}" for k, v in conflicts.items()) + " contradict the run being "
                                 f"continued ({resume}): drop them (the model is taken from the checkpoint)")
            if upstream is not None and built.config[size_arg] != size:
                raise ValueError(f"{path_arg}={str(path)!r} has {size} {unit}, and the {_WHAT[kind]} being continued "
                                 f"models {built.config[size_arg]}: give the model it was trained on")
            done = len(stored.get("history") or [])
            if done >= settings.get("epochs", 10):
                raise NothingToTrain(run_dir, done, settings.get("epochs", 10))
            warmup_epochs = recorded.get("warmup_epochs", 0) if warmup_epochs is None else warmup_epochs
            free_bits = recorded.get("free_bits", 0.0) if free_bits is None else free_bits
        else:
            if upstream is not None and given.setdefault(size_arg, size) != size:
                raise ValueError(f"{size_arg}={given[size_arg]} contradicts {path_arg}={str(path)!r}, which has {size} "
                                 f"{unit}: drop it (the {_WHAT[kind]} takes its model's)")
            if vae is not None:
                given.setdefault("scale", latent_scale(train, seed=settings.get("seed", 0)))
                given.setdefault("ema_decay", 0.999)
            try:
                with torch.random.fork_rng(devices=[]):     # the initial weights come from the run's seed
                    torch.manual_seed(settings.get("seed", 0))
                    built = MODELS[kind](**given)
            except TypeError as err:
                raise ValueError(f"{kind}: {err}") from None
        warmup_epochs, free_bits = warmup_epochs or 0, free_bits or 0.0
        settings["command"] = {"model": kind, **built.config, "dataset": name, "subset": subset,
                               "warmup_epochs": warmup_epochs, "free_bits": free_bits}
        steps = math.ceil(len(train) / settings.get("batch_size", 128))
        objective = (hierarchical_objective(warmup_epochs * steps, free_bits) if kind == "hierarchical"
                     else OBJECTIVES[kind])
        if kind in CALLBACKS:
            settings["callbacks"] = [CALLBACKS[kind](), *settings.get("callbacks", ())]
        size = sum(p.numel() for p in built.parameters() if p.requires_grad)
        what = (f"images' codes under {codes_of}" if vq is not None else f"images' latents under {latents_of}"
                if vae is not None else "images")
        log(f"training {kind} ({size:,} parameters, {built.config}) on {n_train:,} {name} {what}, tested on "
            f"{n_test:,}{'' if resume is None else f', resuming {resume}'}")
        if vae is not None:
            settings["command"]["latents_of"] = str(latents_of)
        if vq is not None:     # the prior's data: the codes, as fit takes them (vaelib.code_prior.codes_as_images)
            settings["command"]["codes_of"] = str(codes_of)
            train, test = (codes_as_images(vq.encode_codes(data.first(len(data))[0])) for data in (train, test))
        history = fit(built, train, test, objective=objective, run_dir=run_dir, resume_from=resume, **settings)
    last = history[-1]
    reported = (f"test ELBO {last['test_elbo']:.2f} nats, KL per layer " + ", ".join(
        f"{last[f'test_kl_{i + 1}']:.2f}" for i in range(len(built.latent_dims))) if kind == "hierarchical"
        else f"test MSE {last['test_mse']:.5f} per pixel" if kind == "vqvae"
        else f"test L_simple {last['test_loss_simple']:.3f} per latent vector" if kind == "latent_ddpm"
        else f"test {last['test_bits']:.1f} bits per image (uniform codes: "
             f"{math.prod(built.grid) * math.log2(built.num_codes):.0f})")
    log(f"done: {len(history)} epochs, {reported}; checkpoints and history.csv in {run_dir}")
    return history
