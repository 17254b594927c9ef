"""Pretrained checkpoints shipped in the repository's ``pretrained/`` folder, and the recipe of each.

A notebook loads a model from here when it is present and trains it from its recipe otherwise (or
when the notebook's ``TRAIN_FROM_SCRATCH`` switch says so), the way the UvA deep learning tutorials do:

    model, history = load_or_train("conv_vae", train, test)

:data:`RECIPES` is the one place where each checkpoint's recipe is written: the model, the run that
trained the shipped file (its ``vaelib train`` command is what ``pretrained/README.md`` shows, and a
test keeps the two equal), and a short fast-mode variant for CI (``VAELIB_FAST=1``).
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..checkpoints import load, load_checkpoint
from ..data import as_data
from ..hierarchical import hierarchical_objective
from ..schedules import make_schedule
from ..train_models import CALLBACKS, MODELS, OBJECTIVES
from ..training import History, fit
from ..vae import VAEConfig, build_vae
from .settings import fast_mode

__all__ = ["Recipe", "RECIPES", "pretrained_dir", "pretrained_path", "load_pretrained", "load_or_train"]


@dataclass(frozen=True)
class Recipe:
    """How one checkpoint of ``pretrained/`` was trained (batch 128, Adam, seed 0 unless ``fit`` says
    otherwise), on the data its notebook passes.

    Attributes:
        model: ``vaelib.VAEConfig``'s fields (the image shape is the data's; ``conditional``: its classes).
        epochs: the run that made the shipped file; ``fast_epochs``: the smoke run of fast mode.
        fit: ``vaelib.fit``'s other arguments (``lr``, ``precision``, ``iwae_k``, ``free_bits``, ``beta``,
            ``warmup_steps``: scaled as ``warmup_epochs`` for a shorter run).
        warmup_epochs, schedule: beta annealing, ``schedule`` (vaelib.schedules.make_schedule's name)
            over ``warmup_epochs`` epochs: the same fraction of a shorter run.
        then: settings the run was continued with, each a ``fit`` of the same run (``epochs`` the new
            total, ``lr`` the new rate), as ``vaelib train --resume_if_exists`` continues it.
        keep: ``"best"`` (best test ELBO) or ``"last"`` epoch's weights, as the shipped file holds.
        command: the ``python -m vaelib train`` command(s) that trained the shipped file.
        minutes: about how long ``epochs`` took on this project's 2-core CPU.
        kind: ``"vae"`` (``model`` is a VAEConfig's fields), or another model of vaelib.train_models.MODELS,
            ``model`` its constructor's arguments: ``"hierarchical"`` (``warmup_epochs`` and ``fit["free_bits"]`` are
            its objective's), ``"vqvae"`` (trained on grey images), ``"code_prior"`` (a prior over a VQ-VAE's
            codes, trained on them as ``vaelib.code_prior.codes_as_images`` gives them) or ``"latent_ddpm"`` (a
            DDPM over a VAE's latents, trained on ``vaelib.latent_diffusion.posterior_parameters`` of its images).
    """
    model: dict
    epochs: int
    command: str
    minutes: float
    fast_epochs: int = 1
    fit: dict = field(default_factory=dict)
    warmup_epochs: int = 0
    schedule: str = "linear"
    then: tuple = ()
    keep: str = "best"
    kind: str = "vae"

    def fit_arguments(self, epochs: int, steps_per_epoch: int) -> dict:
        """``fit``'s arguments for a run of ``epochs`` epochs (the warm-up scaled to the run's length)."""
        settings = {"epochs": epochs, **self.fit}
        if "warmup_steps" in settings:  # the learning rate's warm-up: the same fraction of a shorter run
            settings["warmup_steps"] = min(round(settings["warmup_steps"] * epochs / self.epochs),
                                           epochs * steps_per_epoch // 2)
        period = self.warmup_epochs and max(1, round(self.warmup_epochs / self.epochs * epochs * steps_per_epoch))
        if self.kind == "hierarchical":  # its KL warm-up and free bits are the objective's (vaelib.hierarchical)
            settings["objective"] = hierarchical_objective(period, settings.pop("free_bits", 0.0))
        elif self.kind in OBJECTIVES:
            settings["objective"] = OBJECTIVES[self.kind]
        elif period:
            settings["beta"] = make_schedule(self.schedule, beta_max=self.fit.get("beta", 1.0), period=period)
        return settings


def _train_command(name: str, flags: str = "", *, epochs: int, run: str | None = None) -> str:
    return f"python -m vaelib train {run or name}{' ' + flags if flags else ''} --num_epochs {epochs}"


_MLP20 = {"arch": "mlp", "latent_dim": 20}
_PIXEL = {"arch": "conv", "latent_dim": 20, "hidden": 128, "channels": 16, "likelihood": "pixelcnn"}
_PIXEL_FLAGS = "--likelihood_type pixelcnn --channels 16 --hidden_units 128"
_HIERARCHY = {"latent_dims": [32, 16]}
_HIERARCHY_FLAGS = "--model hierarchical --latent_dims 32 16 --lr_schedule cosine"
_VQ_FASHION = "python benchmarks/vq_fashion.py --save pretrained"
_VQ_MNIST = "python benchmarks/vq_mnist.py --features 96 --layers 8 --prior_epochs 5 --save pretrained"
_LATENT_DDPM = ("python benchmarks/latent_diffusion.py --steps 20000 --eval_at 1500 4000 8000 12000 "
                "--save pretrained/latent_ddpm.pth")
_GREY = {"bernoulli": "bce", "gaussian": "mse", "continuous_bernoulli": "continuous_bernoulli",
         "learned_gaussian": "learned_gaussian"}

# name -> recipe; the file is pretrained/<name>.pth (pretrained/README.md adds each file's size, seconds per
# epoch and test ELBO)
RECIPES: dict[str, Recipe] = {
    "checkpoint_best": Recipe({"arch": "conv", "latent_dim": 20, "likelihood": "gaussian"}, 100, minutes=45,
                              command="python scripts/train.py my_run --likelihood_type mse --num_epochs 100"),
    "conv_vae": Recipe({"arch": "conv", "latent_dim": 20}, 30, _train_command("conv_vae", epochs=30), minutes=9),
    "vae_2d": Recipe({"arch": "mlp", "latent_dim": 2}, 30, _train_command("vae_2d", "--arch mlp --hidden_dim 2", epochs=30),
                     minutes=3, fast_epochs=2),
    "cvae_2d": Recipe({"arch": "mlp", "latent_dim": 2, "conditional": True}, 30,
                      _train_command("cvae_2d", "--arch mlp --hidden_dim 2 --conditional", epochs=30), minutes=5,
                      fast_epochs=2),
    **{f"mlp_beta_{beta:g}": Recipe(
        {"arch": "mlp", "latent_dim": 10, "hidden": 200}, 30, minutes=1, fast_epochs=2, fit={"beta": beta}, keep="last",
        command=_train_command(f"mlp_beta_{beta:g}", f"--arch mlp --hidden_units 200 --hidden_dim 10 --beta {beta:g}",
                               epochs=30)) for beta in (0.25, 0.5, 1, 2, 4, 8)},
    "conv_iwae": Recipe({"arch": "conv", "latent_dim": 20}, 60, minutes=30, fit={"iwae_k": 5, "precision": "bf16"},
                        keep="last", command=_train_command("conv_iwae", "--iwae_k 5 --precision bf16", epochs=60,
                                                            run="conv_iwae5")),
    "conv_pixelcnn": Recipe(
        {"arch": "conv", "latent_dim": 20, "likelihood": "pixelcnn"}, 67, minutes=40, fit={"precision": "bf16"},
        warmup_epochs=10, then=({"epochs": 77, "lr": 3e-4},), keep="last",
        command=_train_command("conv_pixelcnn", "--likelihood_type pixelcnn --precision bf16 --beta_annealing_period 10",
                               epochs=67) + ", then " + _train_command(
            "conv_pixelcnn", "--likelihood_type pixelcnn --precision bf16 --beta_annealing_period 10", epochs=77)
        + " --learning_rate 3e-4 --resume_if_exists"),
    "mlp_vae": Recipe(_MLP20, 50, _train_command("mlp_vae", "--arch mlp --hidden_dim 20", epochs=50), minutes=3),
    "mlp_iaf": Recipe({**_MLP20, "posterior_kind": "iaf"}, 50, minutes=10, keep="last",
                      command=_train_command("mlp_iaf", "--arch mlp --hidden_dim 20 --posterior iaf", epochs=50)),
    "mlp_mog": Recipe({**_MLP20, "prior_kind": "mog"}, 50, minutes=6, keep="last",
                      command=_train_command("mlp_mog", "--arch mlp --hidden_dim 20 --prior mog", epochs=50)),
    "mlp_vamp": Recipe({**_MLP20, "prior_kind": "vamp"}, 50, minutes=16, keep="last",
                       command=_train_command("mlp_vamp", "--arch mlp --hidden_dim 20 --prior vamp", epochs=50)),
    "pixel_plain": Recipe(_PIXEL, 12, minutes=10, fast_epochs=2, fit={"precision": "bf16"}, keep="last",
                          command=_train_command("pixel_plain", _PIXEL_FLAGS, epochs=12) + " --precision bf16"),
    "pixel_warmup": Recipe(_PIXEL, 12, minutes=10, fast_epochs=2, fit={"precision": "bf16"}, warmup_epochs=6, keep="last",
                           command=_train_command("pixel_warmup", _PIXEL_FLAGS, epochs=12)
                           + " --precision bf16 --beta_annealing_period 6"),
    "pixel_freebits": Recipe(_PIXEL, 12, minutes=10, fast_epochs=2, fit={"precision": "bf16", "free_bits": 0.25},
                             keep="last", command=_train_command("pixel_freebits", _PIXEL_FLAGS, epochs=12)
                             + " --precision bf16 --free_bits 0.25"),
    "pixel_cyclical": Recipe(_PIXEL, 12, minutes=8, fast_epochs=2, fit={"precision": "bf16"}, warmup_epochs=3,
                             schedule="cyclical", keep="last", command=_train_command("pixel_cyclical", _PIXEL_FLAGS, epochs=12)
                             + " --precision bf16 --beta_schedule cyclical --beta_annealing_period 3"),
    **{f"grey_{name}": Recipe(
        {"arch": "mlp", "latent_dim": 20, "hidden": 400, "likelihood": name}, 20, minutes=3, fast_epochs=2, keep="last",
        command=_train_command(f"grey_{name}", f"--arch mlp --hidden_units 400 --hidden_dim 20 --likelihood_type {flag} "
                               f"--binarize none", epochs=20, run=f"grey_{flag}")) for name, flag in _GREY.items()},
    # notebook 14: a two-layer hierarchy (top-down inference) with both cures, without them, and inferred bottom-up
    "hvae": Recipe(_HIERARCHY, 40, "python benchmarks/hierarchical_mnist.py --save pretrained/hvae.pth", minutes=12,
                   kind="hierarchical", fit={"lr_schedule": "cosine", "free_bits": 0.5}, warmup_epochs=10, keep="last"),
    "hvae_plain": Recipe(_HIERARCHY, 40, _train_command("hvae_plain", _HIERARCHY_FLAGS, epochs=40), minutes=20,
                         kind="hierarchical", fit={"lr_schedule": "cosine"}, keep="last"),
    "hvae_bottom_up": Recipe(
        {**_HIERARCHY, "inference": "bottom_up"}, 40, minutes=23, kind="hierarchical",
        fit={"lr_schedule": "cosine", "free_bits": 0.5}, warmup_epochs=10, keep="last",
        command=_train_command("hvae_bottom_up", _HIERARCHY_FLAGS + " --inference bottom_up --beta_annealing_period 10 "
                               "--free_bits 0.5", epochs=40)),
    # notebook 15: VQ-VAEs on grey images with each quantizer, and PixelCNN priors over the ema_restart codes (a
    # prior trains on vaelib.code_prior.codes_as_images(codes of the training images) when its file is missing)
    **{f"vq_fashion_{quantizer}": Recipe({"quantizer": quantizer}, 5, _VQ_FASHION, minutes=2, kind="vqvae", keep="last")
       for quantizer in ("vq", "ema", "ema_restart", "fsq")},
    "vq_fashion_prior": Recipe({"num_codes": 256, "features": 64, "layers": 4, "kernel_size": 9}, 2, _VQ_FASHION,
                               minutes=2, kind="code_prior", keep="last",
                               fit={"lr": 8e-3, "lr_schedule": "cosine", "warmup_steps": 100}),
    "vq_mnist": Recipe({"quantizer": "ema_restart"}, 5, _VQ_MNIST, minutes=4, kind="vqvae", keep="last"),
    "vq_mnist_prior": Recipe({"num_codes": 256, "features": 96, "layers": 8, "kernel_size": 5}, 5, _VQ_MNIST,
                             minutes=10, kind="code_prior", fit={"lr": 1e-3, "lr_schedule": "cosine"}, keep="last"),
    # notebook 16: a DDPM over conv_vae's latents (20,000 steps of batch 256: 85 epochs of the 60,000 images' q(z|x));
    # scale is the std of z ~ q(z|x) that the benchmark measured on them
    "latent_ddpm": Recipe({"dim": 20, "steps": 200, "hidden": 512, "blocks": 3, "scale": 0.9955, "ema_decay": 0.999},
                          85, _LATENT_DDPM, minutes=10, kind="latent_ddpm", keep="last",
                          fit={"lr": 1e-3, "batch_size": 256}),
}


def pretrained_dir() -> Path:
    """``$VAELIB_PRETRAINED`` if set, else ``pretrained/`` beside the vaelib source folder."""
    env = os.environ.get("VAELIB_PRETRAINED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "pretrained"


def pretrained_path(name: str) -> Path:
    """Path of the pretrained checkpoint ``name`` (``"conv_vae"`` -> ``pretrained/conv_vae.pth``)."""
    return pretrained_dir() / (name if name.endswith(".pth") else f"{name}.pth")


def load_pretrained(name: str, device="cpu"):
    """The pretrained model ``name`` in eval mode, or ``None`` when the file is not there."""
    path = pretrained_path(name)
    return load(path, device=device) if path.exists() else None


def load_or_train(name: str, train, test=None, *, train_from_scratch: bool = False, epochs: int | None = None,
                  device=None, progress: bool = False):
    """Return ``(model, history)``: the pretrained ``name`` in eval mode if its file is there, else the
    model of its recipe (:data:`RECIPES`) trained on ``train`` (tested on ``test``), from scratch.

    Training runs the recipe's ``epochs`` (what made the shipped file; about ``minutes`` on a 2-core
    CPU), its ``fast_epochs`` in fast mode, or ``epochs`` when given (a shorter substitute). The
    history of a pretrained model is the one recorded when it was trained.
    """
    if name not in RECIPES:
        raise ValueError(f"name={name!r} is not a pretrained model: choose one of {', '.join(RECIPES)}")
    if callable(train) and not isinstance(train, torch.nn.Module):  # vaelib 0.2's load_or_train(name, make_model, ...)
        raise TypeError(f"load_or_train({name!r}, train, test) takes the model from its recipe, RECIPES[{name!r}]: drop "
                        f"the make_model function (a model of your own: build it and train it with vaelib.fit)")
    if not train_from_scratch:
        model = load_pretrained(name)
        if model is not None:     # load keeps the record of every model it rebuilds, a VAE or a hierarchy
            return model, History(model.checkpoint.get("history", []))
    recipe, train = RECIPES[name], as_data(train)
    epochs = epochs or (recipe.fast_epochs if fast_mode() else recipe.epochs)
    print(f"training {name} from its recipe: {epochs} epochs on {len(train):,} images"
          + (f" (the full run took about {recipe.minutes:g} min on a 2-core CPU)" if epochs == recipe.epochs else ""))
    model_args = dict(recipe.model)
    if model_args.pop("conditional", False):
        model_args["num_classes"] = train.num_classes
    with torch.random.fork_rng(devices=[]):  # the recipe's initial weights, whatever the caller's RNG holds
        torch.manual_seed(recipe.fit.get("seed", 0))
        if recipe.kind == "vae":
            model = build_vae(config=VAEConfig(**model_args, image_shape=train.image_shape))
        else:
            model = MODELS[recipe.kind](**model_args)
    steps = math.ceil(len(train) / recipe.fit.get("batch_size", 128))
    callbacks = [CALLBACKS[recipe.kind]()] if recipe.kind in CALLBACKS else []
    with tempfile.TemporaryDirectory() as run_dir:  # fit's checkpoints, for the continued runs and "best"
        history = fit(model, train, test, run_dir=run_dir, device=device, progress=progress, callbacks=callbacks,
                      **recipe.fit_arguments(epochs, steps))
        for more in recipe.then if epochs == recipe.epochs else ():
            history = fit(model, train, test, run_dir=run_dir, device=device, progress=progress,
                          resume_from=Path(run_dir) / "checkpoint_last.pth",
                          **{**recipe.fit_arguments(epochs, steps), **more})
        if recipe.keep == "best":  # the weights alone: the model they fit is this one
            model.load_state_dict(load_checkpoint(Path(run_dir) / "checkpoint_best.pth")["state_dict"])
    return model.eval(), history


def recipe_table() -> str:
    """The recipes as the Markdown table of ``pretrained/README.md`` (``python -m vaelib.course.pretrained``)."""
    rows = ["| name | model | command | about |", "| --- | --- | --- | --- |"]
    for name, recipe in RECIPES.items():
        model = ("" if recipe.kind == "vae" else f"{recipe.kind}: ") + ", ".join(f"{k}={v!r}" for k, v in recipe.model.items())
        rows.append(f"| `{name}` | {model} | `{recipe.command}` | {recipe.minutes:g} min |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(recipe_table())
