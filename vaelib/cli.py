"""The command line: ``python -m vaelib train|generate|evaluate|export|coursework`` (also ``vaelib ...``).
Its flags (those of the original project's ``train.py`` and ``generate.py``) are vaelib.flags::

    python -m vaelib train my_run --likelihood_type mse --num_epochs 100
    python -m vaelib generate --checkpoint_path runs/my_run/checkpoint_best.pth --num_samples 64 \\
        --output_path samples.png --grid_size 8
    python -m vaelib generate --checkpoint_path runs/my_run/checkpoint_best.pth --info_only
    python -m vaelib evaluate --checkpoint_path runs/my_run/checkpoint_best.pth --k 5000
    python -m vaelib export runs/my_run/checkpoint_best.pth pretrained/my_model.pth
    python -m vaelib coursework notebooks/ --out student/        (or --nbgrader course/)

This module parses, calls the library and prints: a training run is vaelib.train_run, the run
folder and the checkpoints vaelib.runs, the evaluation vaelib.evaluation. Bad input ends with one line on stderr that says what
is wrong and how to fix it, and exit code 2 (arguments) or 1 (data, checkpoints, a diverged run);
never a traceback. Library errors name Python arguments; the messages here name the flags.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from .flags import DATA_FLAGS, FLAG_OF, MODEL_FLAGS, OTHER_MODEL_FLAGS, RUN_FLAGS, as_flags, build_parser
from .flags import nonneg_int, positive_float, positive_int, shard_spec  # noqa: F401 (benchmarks/ use them)

__all__ = ["main", "build_parser"]


class UsageError(Exception):
    """Arguments that parse but make no sense together; reported as one line, exit code 2."""


# train ------------------------------------------------------------------------------------------------

def _objective(args, explicit: set):
    """``make_objective`` for train_vae: the loss the flags ask for, its beta schedule counted in epochs."""
    from .objectives import ELBOObjective, IWAEObjective
    from .schedules import Constant, make_schedule
    name = args.beta_schedule or ("linear" if args.beta_annealing_period > 0 else "constant")
    if args.iwae_k > 1 and ({"beta", "beta_max", "beta_annealing_period"} & explicit):
        raise UsageError("--iwae_k trains on L_k, which has no beta: drop --beta, --beta_max and --beta_annealing_period")
    if args.iwae_k > 1 and args.compile:
        raise UsageError("--compile is not supported with --iwae_k > 1 yet: drop one of them")
    if args.free_bits and (args.iwae_k > 1 or args.compile):
        raise UsageError("--free_bits changes the ELBO's KL term: it does not combine with --iwae_k or --compile")
    if name == "constant" and args.beta_annealing_period > 0:
        raise UsageError("--beta_schedule constant contradicts --beta_annealing_period: drop one of them")
    if name != "constant" and args.beta_annealing_period == 0:
        raise UsageError(f"--beta_schedule {name} needs --beta_annealing_period N (epochs)")

    def make(steps_per_epoch: int):
        if args.iwae_k > 1:
            return IWAEObjective(args.iwae_k), f"IWAE k={args.iwae_k}"
        if name == "constant":
            beta = Constant(args.beta if args.beta_max is None else args.beta_max)
        else:
            target, start = (args.beta, 0.0) if args.beta_max is None else (args.beta_max, args.beta)
            beta = make_schedule(name, beta_max=target, period=args.beta_annealing_period * steps_per_epoch, start=start)
        return ELBOObjective(beta, compile=args.compile, free_bits=args.free_bits), f"beta {beta!r}"
    return make


def _say(*args, **kwargs) -> None:
    """print, on one process only (rank 0) when torchrun started several."""
    from .distributed import is_main
    if is_main():
        print(*args, **kwargs)


def _run_dir(args):
    from .files import run_folder
    try:
        return run_folder(args.runs_dir, args.run_name)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _nothing_to_train(args, err) -> int:
    _say(f"nothing trained: run {args.run_name!r} has already trained {err.done} epochs and --num_epochs "
         f"{err.epochs} is the total; raise --num_epochs to continue it", file=sys.stderr)
    return 0 if err.done == err.epochs else 2


MODEL_NAMES = {"hierarchical": "hierarchical VAE", "vqvae": "VQ-VAE", "code_prior": "code prior",
               "latent_ddpm": "latent DDPM"}


def _train_other(args, explicit: set) -> int:
    """``train --model hierarchical|vqvae|code_prior|latent_ddpm``: vaelib.train_models, with the flags that apply to
    the model."""
    from .data import DataError
    from .train_models import train_model
    from .train_run import NothingToTrain
    from .training import TrainingDiverged, pick_device
    own = OTHER_MODEL_FLAGS[args.model]
    shared = {"command", "run_name", "model", "resume_if_exists", "quiet", "free_bits", "beta_annealing_period", "runs_dir",
              "device", "threads", *DATA_FLAGS, *RUN_FLAGS}
    if args.model != "hierarchical":
        shared -= {"free_bits", "beta_annealing_period"}
    if args.model == "code_prior":
        shared |= {"codes_of"}
    if args.model == "latent_ddpm":
        shared |= {"latents_of"}
    foreign = sorted(explicit - shared - set(own) - {"debug"})
    if foreign:
        raise UsageError(f"{', '.join('--' + f for f in foreign)} do{'es' * (len(foreign) == 1)} not apply to "
                         f"--model {args.model}: drop {'it' if len(foreign) == 1 else 'them'} (see 'vaelib train "
                         f"--help' for the flags of each model)")
    if "binarize" in explicit or "image_size" in explicit:
        raise UsageError(f"--model {args.model} takes its data as it is built for ("
                         + ("as its VAE was trained" if args.model == "latent_ddpm" else "28x28, " + (
                             "dynamically binarized" if args.model == "hierarchical" else "grey levels"))
                         + "): drop --binarize and --image_size")
    run_dir = _run_dir(args)
    model = {name: getattr(args, flag) for flag, name in own.items() if flag in explicit}
    settings = {RUN_FLAGS[flag]: getattr(args, flag) for flag in RUN_FLAGS if flag in explicit}
    objective = {} if args.model != "hierarchical" else {
        key: getattr(args, flag) for flag, key in (("beta_annealing_period", "warmup_epochs"),
                                                   ("free_bits", "free_bits")) if flag in explicit}
    try:
        train_model(run_dir, args.model, model, dataset=args.dataset if "dataset" in explicit else None,
                    subset=args.subset, data_root=args.data_root, codes_of=args.codes_of, latents_of=args.latents_of,
                    resume_if_exists=args.resume_if_exists, **objective, **{**settings, "epochs": args.num_epochs},
                    device=str(pick_device(args.device)), progress=not args.quiet)
    except NothingToTrain as err:
        return _nothing_to_train(args, err)
    except TrainingDiverged as err:
        raise TrainingDiverged(as_flags(str(err))) from None
    except DataError:
        raise
    except ValueError as err:
        raise UsageError(as_flags(str(err)).replace("model=", "--model ")) from None
    return 0


def _train(args, explicit: set) -> int:
    if args.model != "vae":
        return _train_other(args, explicit)
    new = sorted(explicit & {flag for flags in OTHER_MODEL_FLAGS.values() for flag in flags} - set(MODEL_FLAGS))
    if new:
        models = [m for m, flags in OTHER_MODEL_FLAGS.items() if set(new) & set(flags)]
        raise UsageError(f"{', '.join('--' + f for f in new)} shape{'s' * (len(new) == 1)} "
                         f"{' or '.join('a ' + MODEL_NAMES[m] for m in models)}: add "
                         f"{' or '.join('--model ' + m for m in models)}, or drop {'it' if len(new) == 1 else 'them'}")
    if "codes_of" in explicit:
        raise UsageError("--codes_of names the VQ-VAE whose codes a code prior learns: add --model code_prior, or drop "
                         "it")
    if "latents_of" in explicit:
        raise UsageError("--latents_of names the VAE whose latents a latent DDPM learns: add --model latent_ddpm, or "
                         "drop it")
    from . import distributed
    from .callbacks import CollapseWarning, TensorBoard
    from .checkpoints import CheckpointError
    from .data import DataError
    from .train_run import NothingToTrain, RunConflict, train_vae
    from .training import TrainingDiverged, pick_device
    run_dir = _run_dir(args)
    callbacks = [CollapseWarning(args.collapse_threshold)] if args.detect_posterior_collapse else []
    if args.tensorboard:
        try:
            callbacks.append(TensorBoard(run_dir / "tensorboard", seed=args.seed))
        except ImportError:
            raise UsageError("--tensorboard needs the tensorboard package: pip install tensorboard "
                             "(or pip install -e '.[tensorboard]')") from None
    make_objective = _objective(args, explicit)

    def command(model, data, stored):  # the flags as the run was built (what --info_only shows)
        world = distributed.world_size()
        typed = {**{k: v for k, v in vars(args).items() if k not in ("command", "debug")},
                 "world_size": world, "effective_batch_size": args.batch_size * world}
        built = {flag: bool(model.num_classes) if flag == "conditional" else getattr(model.config, key)
                 for flag, key in MODEL_FLAGS.items()}
        kept = {} if stored is None else {**stored, **{k: typed[k] for k in explicit if k in typed}}
        return {**typed, **kept, **built, **data, "binarize": data["binarize"] or "none"}

    given = {table[flag]: getattr(args, flag) for table in (MODEL_FLAGS, DATA_FLAGS, RUN_FLAGS)
             for flag in table if flag in explicit}
    model = {k: v for k, v in given.items() if k in MODEL_FLAGS.values()}
    data = {k: v for k, v in given.items() if k in DATA_FLAGS.values()}
    settings = {k: v for k, v in given.items() if k in RUN_FLAGS.values()}
    try:
        device = distributed.start(args.device) or pick_device(args.device)
        train_vae(run_dir, model, **data, make_objective=make_objective, resume_if_exists=args.resume_if_exists,
                  start_from=args.initial_checkpoint_path, callbacks=callbacks, log=print,
                  **{**settings, "epochs": args.num_epochs}, device=str(device), progress=not args.quiet,
                  command=command)
    except NothingToTrain as err:
        return _nothing_to_train(args, err)
    except RunConflict as err:
        wrong = [f"--{FLAG_OF[name]}{'' if isinstance(given, bool) else f' {getattr(args, FLAG_OF[name])}'} (the "
                 f"checkpoint has {'none' if stored is None else stored})" for name, given, stored in err.conflicts]
        raise UsageError(f"{', '.join(wrong)} contradict{'s' * (len(wrong) == 1)} {as_flags(err.source)}: drop "
                         f"{'this flag' if len(wrong) == 1 else 'these flags'} (the model and its data are taken "
                         f"from the checkpoint), or start a new run under another name") from None
    except TrainingDiverged as err:
        raise TrainingDiverged(as_flags(str(err))) from None
    except (DataError, CheckpointError):
        raise  # the data, a checkpoint or the run failed, not the arguments: exit code 1
    except ValueError as err:  # an argument, named in Python (RunFolderError too)
        raise UsageError(as_flags(str(err))) from None
    finally:
        distributed.stop()
    return 0


# generate, evaluate, export, coursework ---------------------------------------------------------------

def _checkpoint_path(path: str) -> str:
    """``path``, or a pointer to what exists when a user of the original project asks for its file."""
    if Path(path).name == "checkpoint_best.pth" and Path(path).parent.name == "pretrained" and not Path(path).exists():
        from .course.pretrained import pretrained_dir
        shipped = ", ".join(sorted(p.name for p in pretrained_dir().glob("*.pth"))) or "none installed"
        raise UsageError(f"{path} not found: the original project's checkpoint ships in the repository's pretrained/ "
                         f"folder ({pretrained_dir()}: {shipped}); run the command from the repository's root, or "
                         f"train your own with 'python -m vaelib train NAME'")
    return path


def _check_output_file(path, image: bool = True) -> None:
    """Fail before any work on an output path that cannot be written (vaelib.files.check_writable)."""
    from .files import check_writable
    from .images import image_format
    try:
        if image:
            image_format(path)
        check_writable(path)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _prior(model, args, device):
    """The prior of ``--prior``, or ``None`` without one: a prior over the codes of the VQ-VAE ``model``, or a DDPM over
    the latents of the VAE ``model``; a checkpoint of the wrong kind on either side is refused in one line."""
    from .checkpoints import load
    from .code_prior import CodePixelCNN
    from .diffusion import DDPM
    from .vae import VAE
    from .vqvae import VQVAE
    for kind, key, what in ((CodePixelCNN, "codes_of", "a prior over a VQ-VAE's codes"),
                            (DDPM, "latents_of", "a DDPM over a VAE's latents")):
        if isinstance(model, kind):
            upstream = (getattr(model, "checkpoint", {}).get("train_args") or {}).get(key) or "MODEL.pth"
            raise UsageError(f"{args.checkpoint_path} is {what}: pass the model it was trained on with it, "
                             f"--checkpoint_path {upstream} --prior {args.checkpoint_path}")
    if args.prior is None:
        return None
    if not isinstance(model, (VQVAE, VAE)):
        raise UsageError(f"--prior is a prior over a VQ-VAE's codes or a VAE's latents, and {args.checkpoint_path} "
                         f"holds a {type(model).__name__}: drop --prior")
    prior = load(_checkpoint_path(args.prior), device=device)
    if isinstance(model, VQVAE):
        if not isinstance(prior, CodePixelCNN):
            raise UsageError(f"--prior {args.prior} holds a {type(prior).__name__}, not a prior over codes: give the "
                             f"checkpoint of a 'vaelib train --model code_prior' run")
        if prior.num_codes != model.num_codes:
            raise UsageError(f"--prior {args.prior} models {prior.num_codes} codes and the VQ-VAE has "
                             f"{model.num_codes}: give the prior trained on this VQ-VAE's codes (--codes_of)")
        return prior
    if not isinstance(prior, DDPM):
        raise UsageError(f"--prior {args.prior} holds a {type(prior).__name__}, not a DDPM over latents: give the "
                         f"checkpoint of a 'vaelib train --model latent_ddpm' run")
    if prior.dim != model.latent_dim or getattr(model, "num_classes", 0):
        raise UsageError(f"--prior {args.prior} models {prior.dim}-dimensional latents and {args.checkpoint_path} is a "
                         f"{'conditional ' * bool(getattr(model, 'num_classes', 0))}VAE with {model.latent_dim}: give "
                         f"the DDPM trained on this VAE's latents (--latents_of)")
    return prior


def _generate(args) -> int:
    from .checkpoints import load
    from .runs import describe, sample_grid
    from .training import pick_device
    if not args.info_only:
        _check_output_file(args.output_path)  # before the model is loaded and sampled
    device = pick_device(args.device)
    model = load(_checkpoint_path(args.checkpoint_path), device=device)
    if args.info_only:
        print(describe(model, args.checkpoint_path))
        return 0
    if args.num_samples > args.grid_size ** 2:
        raise UsageError(f"a grid of {args.grid_size}x{args.grid_size} holds {args.grid_size ** 2} images, not "
                         f"{args.num_samples}: raise --grid_size to {math.ceil(math.sqrt(args.num_samples))} or lower "
                         f"--num_samples")
    prior = _prior(model, args, device)
    if prior is None and type(model).__name__ == "VQVAE":
        raise UsageError(f"a VQ-VAE has no prior over its codes: decoding uniform codes gives noise. Fit one with "
                         f"'vaelib train RUN --model code_prior --codes_of {args.checkpoint_path}', then pass it: "
                         f"--prior RUN/checkpoint_last.pth")
    if prior is not None:
        import torch

        from .images import save_image_grid
        if args.digit is not None:
            raise UsageError("--digit picks the class of a conditional VAE; a model with a prior of --prior is not "
                             "conditional: drop it")
        generator = torch.Generator(device=device).manual_seed(args.seed)
        if type(prior).__name__ == "DDPM":
            from .latent_diffusion import decode_samples
            if args.temperature != 1.0:
                raise UsageError("--temperature scales a Gaussian or a code prior's samples; a DDPM's latents come "
                                 "from its reverse chain: drop it")
            images, what = decode_samples(model, prior, args.num_samples, generator, binary=False), "latents"
        else:
            codes = prior.sample(args.num_samples, generator=generator, temperature=args.temperature)
            images, what = model.decode_codes(codes), "codes"
        out = save_image_grid(images, args.output_path, nrow=args.grid_size)
        print(f"wrote {args.num_samples} samples ({what} from {args.prior}, decoded) to {out}")
        return 0
    try:
        out = sample_grid(model, args.output_path, args.num_samples, args.grid_size, args.seed, args.digit,
                          args.temperature)
    except ValueError as err:  # the arguments, checked before anything is sampled
        raise UsageError(as_flags(str(err))) from None
    print(f"wrote {args.num_samples} samples to {out}")
    return 0


QUICKER = ("--subset N and a smaller --k give a quick estimate of the NLL, --bounds FILE.json lets an interrupted run "
           "continue")  # what a long evaluation's time estimate suggests


def _evaluate(args) -> int:
    from .checkpoints import load
    from .data import DATASETS
    from .evaluation import bounds_record, evaluate_elbo, recorded_nll, shard_indices
    from .runs import KEEP, stored_data, stored_split
    from .training import pick_device
    if args.combine:
        return _combine(args)
    if args.checkpoint_path is None:
        raise UsageError("--checkpoint_path is required (or --combine FILES to combine the shards of an evaluation)")
    device = pick_device(args.device)
    model = load(_checkpoint_path(args.checkpoint_path), device=device)
    if type(model).__name__ in ("HierarchicalVAE", "VQVAE", "CodePixelCNN") or args.prior is not None:
        return _evaluate_other(model, args, device)
    stored = stored_data(model)
    if args.samples and (tuple(model.image_shape or ()) != (1, 28, 28) or stored["dataset"] != "mnist"):
        raise UsageError("--samples scores digits with an MNIST classifier: it needs a model trained on MNIST (1x28x28)")
    if args.dataset is None and stored["dataset"] not in DATASETS:
        raise UsageError(f"this model was trained on your own images ({stored['dataset']!r}), which the command line "
                         f"cannot load: pass --dataset NAME, or evaluate it from Python with vaelib.evaluation")
    binarize = KEEP if args.binarize is None else None if args.binarize == "none" else args.binarize
    test = stored_split(model, "test", dataset=args.dataset, binarize=binarize, subset=args.subset, device=device,
                        root=args.data_root)
    try:
        indices = shard_indices(len(test), args.shard)
    except ValueError as err:
        raise UsageError(f"{err} (a larger --subset, or none)") from None
    todo, record = len(indices), None
    if args.bounds:
        _check_output_file(args.bounds, image=False)
        record = bounds_record(args.bounds, args.checkpoint_path, test, args.k, args.seed, args.precision, args.shard)
        todo = sum(i not in record.bounds for i in indices)
        if todo < len(indices):
            print(f"resuming {args.bounds}: {len(indices) - todo:,} of {len(indices):,} images already done")
    shard = "" if args.shard is None else f" (shard {args.shard[0]}/{args.shard[1]}: {todo:,} to do)"
    print(f"evaluating {args.checkpoint_path} on {len(test):,} {test.name} test images{shard} ({test.binarize or 'no'} "
          f"binarization), k={args.k}, seed={args.seed}, {device}, {args.precision}")
    if args.shard is None:
        ev = evaluate_elbo(model, test, seed=args.seed)
        print(f"test negative ELBO: {-ev['elbo']:.2f} nats (reconstruction {-ev['reconstruction']:.2f}, "
              f"KL {ev['kl']:.2f}, active units {ev['active_units']}/{model.latent_dim})")
    nll = recorded_nll(model, test, args.k, indices, record, args.seed, args.batch_size, args.precision,
                       quicker=QUICKER)
    print(f"test NLL (IWAE, k={args.k}): {nll['nll']:.2f} nats (standard error {nll['std_error']:.2f} over "
          f"{nll['n']:,} images{' of this shard' if args.shard else ''}) = {nll['bits_per_dim']:.4f} bits/dim")
    if args.samples:
        _sample_scores(model, args, binary=test.binarize is not None)
    return 0


def _evaluate_other(model, args, device) -> int:
    """evaluate for ``train --model hierarchical|vqvae``: the hierarchy's bounds and layers, the VQ-VAE's
    reconstruction and codebook usage (and with ``--prior``, the prior's bits and samples), on the test set of the
    data the checkpoint's run recorded."""
    import torch

    from .checkpoints import load_checkpoint
    from .data import load_dataset
    from .runs import stored_data
    prior = _prior(model, args, device)
    if type(prior).__name__ == "DDPM":
        return _score_latent_ddpm(model, prior, args, device)
    recorded = load_checkpoint(_checkpoint_path(args.checkpoint_path)).get("train_args") or {}
    hierarchical = type(model).__name__ == "HierarchicalVAE"
    unused = [f"--{flag}" for flag in ("binarize", "shard", "bounds", "precision", "batch_size")
              if getattr(args, flag) not in (None, "fp32")] + (
        ["--samples"] * bool(args.samples and not hierarchical and prior is None))
    if unused:
        raise UsageError(f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} not supported for a "
                         f"{type(model).__name__} yet: drop {'it' if len(unused) == 1 else 'them'}")
    dataset = args.dataset or recorded.get("dataset") or stored_data(model)["dataset"]
    test = load_dataset(dataset, "test", "dynamic" if hierarchical else None, args.subset, device, args.data_root)
    print(f"evaluating {args.checkpoint_path} ({type(model).__name__}) on {len(test):,} {test.name} test images, "
          f"seed={args.seed}, {device}")
    x, _ = test.first(len(test), seed=args.seed)
    if not hierarchical:
        from .vqvae import reconstruction_and_usage
        m, codes = reconstruction_and_usage(model, x)
        print(f"test MSE {m['mse']:.5f} per pixel (PSNR {m['psnr']:.2f} dB); codes used {m['used']} of "
              f"{model.num_codes}, perplexity {m['perplexity']:.1f} over the test set ({m['batch_perplexity']:.1f} in "
              f"batches of 8 images); no likelihood: the decoder is an MSE one")
        if prior is not None:
            _score_code_prior(model, prior, codes, dataset, args, device)
        return 0
    from .evaluation import iwae_nll
    from .hierarchical import layer_statistics
    with torch.no_grad():
        g = torch.Generator(device=device).manual_seed(args.seed)
        elbo = torch.cat([model.terms(b, generator=g).value for b in x.split(500)]).mean().item()
    print(f"test negative ELBO: {-elbo:.2f} nats; per layer, bottom to top: " + "; ".join(
        f"z_{i + 1} ({s['dims']}) KL {s['kl']:.2f}, {s['active_units']} active units"
        for i, s in enumerate(layer_statistics(model, x, seed=args.seed))))
    nll = iwae_nll(model, test, args.k, seed=args.seed, progress=True)
    print(f"test NLL (IWAE, k={args.k}): {nll['nll']:.2f} nats (standard error {nll['std_error']:.2f} over "
          f"{nll['n']:,} images) = {nll['bits_per_dim']:.4f} bits/dim")
    if args.samples:
        from .course.sample_quality import model_scores
        scores = model_scores(model, args.samples, seed=args.seed, binary=True, dataset=dataset)
        print(f"{args.samples:,} samples: FD {scores['fd']:.1f}, confidence {scores['confidence']:.3f}, label "
              f"entropy {scores['label_entropy']:.3f}")
    return 0


def _score_latent_ddpm(vae, ddpm, args, device) -> int:
    """``evaluate VAE --prior DDPM``: the test ELBO with the DDPM as the VAE's prior beside its own N(0, I), one z ~
    q(z|x) per image (the DDPM's term is its own bound, so the sum is still a lower bound on log p(x)); with
    ``--samples`` the sample scores of decoded DDPM latents, as ``vaelib.course.sample_quality.model_scores``."""
    import torch

    from .runs import stored_data, stored_split
    unused = [f"--{flag}" for flag in ("binarize", "shard", "bounds", "precision", "batch_size", "dataset")
              if getattr(args, flag) not in (None, "fp32")]
    if unused:
        raise UsageError(f"{', '.join(unused)} {'does' if len(unused) == 1 else 'do'} not apply to a VAE with a DDPM "
                         f"prior: drop {'it' if len(unused) == 1 else 'them'}")
    test = stored_split(vae, "test", subset=args.subset, device=device, root=args.data_root)
    print(f"evaluating {args.checkpoint_path} with the DDPM prior {args.prior} on {len(test):,} {test.name} test "
          f"images, seed={args.seed}, {device}")
    x, _ = test.first(len(test), seed=args.seed)
    g = torch.Generator(device=device).manual_seed(args.seed)
    own, with_ddpm = [], []
    with torch.no_grad():
        for batch in x.split(500):
            q = vae.encode(batch)
            z = q.rsample(generator=g)
            log_px = vae.decode(z).log_prob(batch)
            log_q = q.log_prob(z)
            own.append(log_px + vae.prior().log_prob(z) - log_q)
            with_ddpm.append(log_px - ddpm.elbo_terms(z, generator=g)["nll_bound"] - log_q)
    own, with_ddpm = torch.cat(own), torch.cat(with_ddpm)
    diff = with_ddpm - own
    print(f"test negative ELBO, one z ~ q(z|x) per image: {-own.mean():.2f} nats with the VAE's own prior, "
          f"{-with_ddpm.mean():.2f} with the DDPM's bound on log p(z) (difference {diff.mean():+.2f}, standard error "
          f"{diff.std() / len(diff) ** 0.5:.2f})")
    if args.samples:
        from .course.sample_quality import load_classifier, sample_scores, test_reference
        from .latent_diffusion import decode_samples
        if stored_data(vae)["dataset"] != "mnist" or tuple(vae.image_shape) != (1, 28, 28):
            raise UsageError("--samples scores digits with an MNIST classifier: it needs a VAE trained on MNIST "
                             "(1x28x28)")
        binary = test.binarize is not None
        images = decode_samples(vae, ddpm, args.samples, torch.Generator(device=device).manual_seed(args.seed),
                                binary=binary).cpu()
        scores = sample_scores(images, test_reference("mnist", binarized=binary, seed=args.seed, root=args.data_root),
                               load_classifier(device=device))
        print(f"sample quality ({args.samples:,} decoded DDPM samples vs the 10,000 "
              f"{'binarized' if binary else 'grey'} "
              f"test images, MNIST classifier): Frechet distance {scores['fd']:.2f}, confidence "
              f"{scores['confidence']:.3f}, label entropy {scores['label_entropy']:.3f} nats (max 2.303)")
    return 0


def _score_code_prior(vq, prior, codes, dataset: str, args, device) -> None:
    """``evaluate --prior``: the prior's bits per test image against uniform codes, and with ``--samples`` the
    sample scores of its decoded samples under the classifier of ``dataset`` (MNIST or Fashion-MNIST)."""
    import torch

    from .data import DATASETS
    with torch.no_grad():
        bits = torch.cat([-prior.log_prob(c) for c in codes.split(1000)]) / math.log(2)
    uniform = codes[0].numel() * math.log2(vq.num_codes)
    print(f"prior {args.prior}: {bits.mean():.1f} bits per test image (standard error "
          f"{bits.std() / len(bits) ** 0.5:.1f}; uniform codes: {uniform:.0f}), the codes' cost, not the image's: no "
          f"likelihood of the pixels")
    if not args.samples:
        return
    from .course.sample_quality import load_classifier, sample_scores, test_reference
    if dataset not in ("mnist", "fashion_mnist"):
        raise UsageError(f"--samples scores samples with the classifier of MNIST or Fashion-MNIST, and this VQ-VAE was "
                         f"trained on {DATASETS.get(dataset, dataset)}: drop --samples")
    generator = torch.Generator(device=device).manual_seed(args.seed)
    images = vq.decode_codes(prior.sample(args.samples, generator=generator)).cpu()
    scores = sample_scores(images, test_reference(dataset, root=args.data_root),
                           classifier=load_classifier(dataset=dataset))
    print(f"{args.samples:,} decoded prior samples vs the 10,000 grey test images ({dataset} classifier): Frechet "
          f"distance {scores['fd']:.2f}, confidence {scores['confidence']:.3f}, label entropy "
          f"{scores['label_entropy']:.3f} nats (max 2.303)")


def _combine(args) -> int:
    from .evaluation import NonFiniteBounds, combine_bounds
    if args.checkpoint_path is not None:
        raise UsageError("--checkpoint_path with --combine: the shard files name their checkpoint (its sha256) "
                         "and are combined as they are; drop --checkpoint_path")
    try:
        nll = combine_bounds(args.combine)
    except NonFiniteBounds:
        raise  # a fault of the bounds, not of the arguments: exit code 1
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(f"test NLL (IWAE, k={nll['k']}): {nll['nll']:.2f} nats (standard error {nll['std_error']:.2f} over "
          f"{nll['n']:,} images, {nll['files']} files, {nll['precision']}) = {nll['bits_per_dim']:.4f} bits/dim")
    return 0


def _sample_scores(model, args, binary: bool) -> None:
    from .course.sample_quality import model_scores
    scores = model_scores(model, args.samples, args.seed, binary, args.data_root)
    print(f"sample quality ({args.samples:,} {'binary' if binary else 'mean'} samples vs the 10,000 "
          f"{'binarized' if binary else 'grey'} test images, MNIST classifier): Frechet distance {scores['fd']:.2f}, "
          f"confidence {scores['confidence']:.3f}, label entropy {scores['label_entropy']:.3f} nats (max 2.303), "
          f"classifier score {scores['classifier_score']:.2f} (max 10)")


def _export(args) -> int:
    from .checkpoints import export_checkpoint
    destination = Path(args.destination)
    if destination.is_dir():
        raise UsageError(f"{destination} is a folder: give the file to write, e.g. {destination / Path(args.source).name}")
    if destination.exists() and not args.overwrite:
        raise UsageError(f"{destination} already exists: pass --overwrite to replace it, or choose another name")
    _check_output_file(destination, image=False)
    out = export_checkpoint(_checkpoint_path(args.source), destination)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def _coursework(args) -> int:
    from .course.coursework import make_nbgrader_course, make_student_versions, report_lines
    if args.nbgrader is None:
        results = make_student_versions(args.source, args.out, overwrite=args.overwrite)
        where = f"{args.out} (notebooks and their .py twins)"
    else:
        results, where = make_nbgrader_course(args.source, args.nbgrader, overwrite=args.overwrite), \
            Path(args.nbgrader) / "source"
    print("\n".join(as_flags(line) for line in report_lines(results, where)))
    if args.nbgrader is not None:
        print(f"next, in {args.nbgrader}: nbgrader generate_assignment NN_name (see notebooks/README.md)")
    return 0


# main -------------------------------------------------------------------------------------------------

def _explicit_flags(argv) -> set:
    """The destinations of the options actually typed (not defaulted): parse again with no defaults."""
    parser = build_parser()
    for sub in [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)][0].choices.values():
        for action in sub._actions:
            action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def _report(command: str, message: str) -> None:
    from .runs import printable  # a message may quote a file's contents: no escape sequence reaches the terminal
    print(f"vaelib {command}: error: {printable(message)}", file=sys.stderr)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from .checkpoints import CheckpointError
    from .course.coursework import CourseworkError
    from .data import DataError
    from .files import describe_os_error
    from .threads import cpu_threads
    from .training import TrainingDiverged

    command = {"train": _train, "generate": _generate, "evaluate": _evaluate, "export": _export,
               "coursework": _coursework}[args.command]
    try:
        with cpu_threads(getattr(args, "threads", None)):
            return command(args, _explicit_flags(argv)) if args.command == "train" else command(args)
    except (UsageError, CourseworkError) as err:
        _report(args.command, as_flags(str(err)))
        return 2
    except (DataError, CheckpointError, TrainingDiverged, ValueError) as err:
        _report(args.command, str(err))
        return 1
    except BrokenPipeError:  # `... --info_only | head`: the reader has all it wanted; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's advice: no second error at exit
        return 0
    except OSError as err:  # a full disk, a read-only folder, a path below a file...
        _report(args.command, describe_os_error(err))
        return 1
    except KeyboardInterrupt:
        where = (" (checkpoint_last.pth holds the last finished epoch: --resume_if_exists continues the run)"
                 if args.command == "train" else "")
        if args.command == "evaluate" and getattr(args, "bounds", None):
            where = f" (the bounds computed so far are in {args.bounds}: run the same command to continue)"
        print(f"vaelib {args.command}: interrupted{where}", file=sys.stderr)
        return 130
    except Exception as err:  # not an expected failure: a bug, reported without a raw dump
        if args.debug or os.environ.get("VAELIB_DEBUG", "") not in ("", "0"):
            raise
        first = (str(err).strip().splitlines() or [""])[0][:200]
        _report(args.command, f"unexpected {type(err).__name__}: {first}. This is a bug in vaelib: run the same "
                              f"command with --debug (or VAELIB_DEBUG=1) for the full traceback, and report it")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
