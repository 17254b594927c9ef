"""One of vaelib's VAEs trained on a data set named by ``vaelib.load_dataset``, in a run folder: what
``python -m vaelib train`` does, callable from Python.

    from vaelib.train_run import train_vae
    history = train_vae("runs/demo", {"arch": "conv", "latent_dim": 20}, dataset="mnist", epochs=2)
    history = train_vae("runs/demo", resume_if_exists=True, epochs=4)      # the same run, continued

The folder is claimed first (vaelib.runs.RunClaim): a new run, the run to continue, or a refusal.
A continued run takes its model, data and run settings from its last checkpoint; a run started from
another run's weights (``start_from``) takes its model from that checkpoint. A model or data setting
given here that differs from the checkpoint's is refused (:class:`RunConflict`: nothing is rebuilt
behind the user's back); a run setting given here (``lr=``, ``epochs=``) overrides the stored one.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from . import distributed
from .callbacks import SampleGrid
from .data import load_dataset
from .likelihoods import canonical_name, is_binary
from .runs import RunClaim, RunConfig, model_to_train, stored_data
from .training import fit, pick_device
from .vae import VAEConfig, build_vae, current_fields

__all__ = ["train_vae", "binarization", "RunConflict", "NothingToTrain"]


class RunConflict(ValueError):
    """Settings given for a run that differ from its checkpoint's; ``conflicts`` is
    ``[(name, given, stored), ...]`` in the names of :func:`train_vae`'s arguments."""

    def __init__(self, conflicts: list, source: str):
        self.conflicts, self.source = conflicts, source
        listed = ", ".join(f"{name}={given!r} (the checkpoint has {stored!r})" for name, given, stored in conflicts)
        super().__init__(f"{listed} contradict{'s' * (len(conflicts) == 1)} {source}: drop "
                         f"{'it' if len(conflicts) == 1 else 'them'} (the model and its data are taken from the "
                         f"checkpoint), or start a new run in another folder")


class NothingToTrain(ValueError):
    """A run continued with ``epochs`` no larger than the epochs it has trained (``done``)."""

    def __init__(self, run_dir, done: int, epochs: int):
        self.done, self.epochs = done, epochs
        super().__init__(f"nothing trained: the run in {run_dir} has already trained {done} epochs and epochs={epochs} "
                         f"is the total; raise epochs to continue it")


def binarization(likelihood: str, binarize: str | None) -> str | None:
    """``"auto"``: dynamic binarization for a binary likelihood, none otherwise; ``"none"`` is None."""
    if binarize == "auto":
        return "dynamic" if is_binary(likelihood) else None
    return None if binarize == "none" else binarize


def _conflicts(model, given: dict, data_given: dict) -> list:
    """The given model and data settings that differ from what ``model``'s checkpoint holds."""
    config, data = model.config, stored_data(model)
    stored = {**config.to_dict(), "conditional": bool(config.num_classes), "dataset": data["dataset"],
              "image_size": data["image_shape"][-1], "binarize": data["binarize"]}
    given = {**given, **data_given}
    if "likelihood" in given:
        given["likelihood"] = canonical_name(given["likelihood"])
    if "binarize" in given:
        given["binarize"] = binarization(config.likelihood, given["binarize"])
    return [(name, value, stored[name]) for name, value in given.items() if name in stored and value != stored[name]]


def _idle_fields(given: dict) -> None:
    """Refuse model fields given for a part the model will not have: they would do nothing."""
    likelihood, named = canonical_name(given.get("likelihood", "bernoulli")), given.get("likelihood", "bernoulli")
    for idle, message in (
            ({"iaf_steps", "iaf_hidden"} & set(given) and given.get("posterior_kind") != "iaf",
             "iaf_steps= and iaf_hidden= shape the IAF posterior: add posterior_kind='iaf', or drop them"),
            ("sigma" in given and likelihood not in ("gaussian", "learned_gaussian"),
             f"sigma= is the Gaussian likelihood's standard deviation, and the likelihood is {named}: add "
             f"likelihood='mse' (or likelihood='learned_gaussian'), or drop sigma="),
            ("channels" in given and given.get("arch") == "mlp",
             "channels= sets the conv networks' first convolution, and arch='mlp': add arch='conv', or set the "
             "MLP's width with hidden="),
            (given.get("pixelcnn_layers", 1) != 1 and likelihood != "pixelcnn",
             "pixelcnn_layers= sets the depth of the pixelcnn decoder: add likelihood='pixelcnn', or drop it"),
            ("prior_components" in given and given.get("prior_kind", "standard") == "standard",
             "prior_components= counts the components of a learned prior: add prior_kind='mog' or prior_kind='vamp'")):
        if idle:
            raise ValueError(message)


def _old_run_settings(model, settings: dict) -> dict:
    """A checkpoint of vaelib 0.1 stored no run settings: its learning rate and schedule continue
    from the command line it recorded (under the flags' names)."""
    if model.checkpoint.get("run_config"):
        return settings
    stored = model.checkpoint.get("train_args") or {}
    names = {"learning_rate": "lr", "lr_schedule": "lr_schedule", "warmup_steps": "warmup_steps"}
    return {**{names[k]: v for k, v in stored.items() if k in names}, **settings}


def train_vae(run_dir, model: dict | VAEConfig | None = None, *, dataset: str | None = None,
              image_size: int | None = None, binarize: str | None = None, subset: int | None = None,
              data_root=None, make_objective=None, resume_if_exists: bool = False, start_from=None,
              callbacks=(), log=print, **settings):
    """Train one of vaelib's VAEs into ``run_dir`` and return its history (``vaelib.fit``'s).

    Args:
        run_dir: the run's folder (created; refused if it holds a run, unless ``resume_if_exists``).
        model: ``VAEConfig`` fields by name (``{"arch": "mlp", "latent_dim": 2}``), or a ``VAEConfig``
            (its fields that differ from the defaults count as given; the image shape is the data's);
            ``conditional=True`` sets ``num_classes`` from the data's labels. For a new run, the
            fields not given are VAEConfig's defaults; continued or ``start_from``, only the given
            ones are compared with the checkpoint's.
        dataset, image_size, binarize, subset, data_root: the data, as ``vaelib.load_dataset`` takes it
            (``binarize="auto"`` or None: dynamic for a binary likelihood). ``subset`` cuts the test
            set to its first ``subset`` images too. Defaults: MNIST, as stored, "auto".
        make_objective: ``f(steps_per_epoch) -> (objective, description)`` for schedules counted in
            steps; default: the ELBO, described as "beta 1".
        resume_if_exists: continue the run ``run_dir`` holds (weights, optimizer, history, settings).
        start_from: a checkpoint whose model and weights start the run (fine-tuning).
        callbacks: vaelib.callbacks added to the run's samples.png grid.
        log: where the run's lines go (``print``; under torchrun only the first process speaks).
        settings: ``vaelib.RunConfig`` fields (``epochs``, ``lr``, ``batch_size``, ``seed``, ...).
            ``command`` may also be a function ``command(model, data, stored)`` of the model as built,
            the data (``{"dataset", "image_size", "binarize"}``) and the continued run's command (or
            None), returning the dict to store: ``vaelib train`` records its flags that way.

    Raises :class:`RunConflict`, :class:`NothingToTrain`, ``vaelib.runs.RunFolderError``, and
    ``ValueError`` for a bad setting, each naming the argument.
    """
    say = log if distributed.is_main() else (lambda *a, **k: None)
    with RunClaim(run_dir, resume_if_exists, lock=distributed.is_main()) as resume:
        distributed.barrier()  # every process has looked at the run folder before the first writes in it
        if isinstance(model, VAEConfig):  # its fields that differ from the defaults, as if given by name
            model = {k: v for k, v in vars(model).items() if v != getattr(VAEConfig, k) and k != "image_shape"}
        return _train(Path(run_dir), resume, current_fields(dict(model or {}), "train_vae(model={{{!r}: ...}})"),
                      {k: v for k, v in dict(dataset=dataset, image_size=image_size, binarize=binarize).items()
                       if v is not None}, subset, data_root, make_objective, start_from, callbacks, say, settings)


def _train(run_dir: Path, resume, given: dict, data: dict, subset, data_root, make_objective, start_from,
           callbacks, say, settings) -> list:
    if resume is not None and start_from is not None:
        raise ValueError("start_from and an existing run to resume: use one or the other")
    loaded, done = None, 0
    if resume is None and start_from is None:
        _idle_fields(given)
    if resume is not None or start_from is not None:
        loaded = model_to_train(resume or start_from)
        source = f"the run being resumed ({resume})" if resume else f"start_from={start_from}"
        conflicts = _conflicts(loaded, given, data if resume else {})
        if conflicts:
            raise RunConflict(conflicts, source)
    if resume is not None:
        settings = _old_run_settings(loaded, settings)
    # the settings fit will run with: vaelib's defaults, then the continued run's stored ones, then these
    stored_run = resume is not None and loaded.checkpoint.get("run_config")
    run = (RunConfig.from_dict(stored_run, settings.get("lr_schedule")) if stored_run else RunConfig()).replace(
        **{k: v for k, v in settings.items() if k != "command"})
    if resume is not None:
        done, stored = int(loaded.checkpoint.get("epoch", 0)), stored_data(loaded)
        if done >= run.epochs:
            raise NothingToTrain(run_dir, done, run.epochs)
        data = {"dataset": stored["dataset"], "image_size": stored["image_shape"][-1], "binarize": stored["binarize"]}
        say(f"resuming {resume} after epoch {done}")
    elif start_from is not None:
        say(f"starting from the weights of {start_from} ({loaded.config.arch}, latent {loaded.latent_dim}); its "
            f"model settings are taken from it")
    likelihood = loaded.config.likelihood if loaded is not None else given.get("likelihood", "bernoulli")
    binarize = data.get("binarize") if resume is not None else binarization(likelihood, data.get("binarize", "auto"))
    # loaded on the CPU: fit moves the data (in a distributed run, each process's shard) to the device once
    train, test = (load_dataset(data.get("dataset", "mnist"), split, binarize, n, "cpu", data_root,
                                image_size=data.get("image_size"))
                   for split, n in (("train", subset), ("test", subset and min(subset, 10000))))
    if loaded is None:
        conditional = given.pop("conditional", False)
        given.setdefault("num_classes", train.num_classes if conditional else 0)
        with torch.random.fork_rng(devices=[]):  # the initial weights come from the run's seed, not the caller's RNG
            torch.manual_seed(run.seed)
            loaded = build_vae(config=VAEConfig(**{**given, "image_shape": train.image_shape}))
    world = distributed.world_size()
    steps = math.ceil(len(train) // world / run.batch_size)
    objective, loss = make_objective(steps) if make_objective else (None, "beta 1")
    if distributed.active():
        say(f"{world} processes x batch {run.batch_size} = effective batch {run.batch_size * world}, "
            f"{len(train) // world:,} images per process")
    tested = f"the first {len(test):,} test images" if subset and subset <= len(test) else f"all {len(test):,} test images"
    say(f"training {loaded.config.arch} VAE ({loaded.num_parameters():,} parameters, latent {loaded.latent_dim}, "
        f"{loaded.config.likelihood} likelihood) on {len(train):,} {train.name} images {train.image_shape}, "
        f"tested on {tested}, {pick_device(run.device)}, {loss}")
    if callable(settings.get("command")):
        settings["command"] = settings["command"](loaded, {**data, "dataset": train.name, "binarize": binarize,
                                                           "image_size": train.image_shape[-1]},
                                                  resume and (loaded.checkpoint.get("train_args") or {}))
    callbacks = [SampleGrid(run_dir / "samples.png", seed=run.seed), *callbacks]
    history = fit(loaded, train, test, objective=objective, run_dir=run_dir, resume_from=resume, callbacks=callbacks,
                  **settings)
    say(f"done: {len(history) - done} epoch(s) trained, best test ELBO {max(r['test_elbo'] for r in history):.2f} "
        f"nats on {tested}; checkpoints, history.csv and samples.png in {run_dir}")
    return history
