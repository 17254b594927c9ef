"""The command line: ``python -m vaelib train|generate|evaluate|export|coursework`` (also ``vaelib ...``).

The flags of ``train`` and ``generate`` are those of the original project's ``train.py`` and
``generate.py``, with the same names and meaning; dash spellings (``--num-epochs``) work too::

    python -m vaelib train my_run --likelihood_type mse --num_epochs 100
    python -m vaelib generate --checkpoint_path runs/my_run/checkpoint_best.pth --num_samples 64 \\
        --output_path samples.png --grid_size 8
    python -m vaelib generate --checkpoint_path runs/my_run/checkpoint_best.pth --info_only
    python -m vaelib evaluate --checkpoint_path runs/my_run/checkpoint_best.pth --k 5000
    python -m vaelib export runs/my_run/checkpoint_best.pth pretrained/my_model.pth
    python -m vaelib coursework notebooks/ --out student/        (or --nbgrader course/)

This module parses, calls the library and prints: the run folder and the checkpoints are
vaelib.runs, the evaluation vaelib.evaluation. Bad input ends with one line on stderr that says what
is wrong and how to fix it, and exit code 2 (arguments) or 1 (data, checkpoints, a diverged run);
never a traceback. Library errors name Python arguments; the messages here name the flags.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


class UsageError(Exception):
    """Arguments that parse but make no sense together; reported as one line, exit code 2."""


def _flagged(err: Exception, *names: str) -> UsageError:
    """A library error naming Python arguments (``digit 3``, ``temperature=1``) as a usage error naming
    the flags of the same names (``--digit 3``, ``--temperature 1``)."""
    message = str(err)
    for name in names:
        message = re.sub(rf"\b{name}\b(=?)", lambda m, name=name: f"--{name}" + " " * bool(m[1]), message)
    return UsageError(message)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _add(parser, name, **kwargs):
    """Add ``--name_with_underscores`` and its ``--name-with-dashes`` twin as one option."""
    flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    parser.add_argument(*flags, dest=name, **kwargs)


def _number(kind, low, inclusive=True, what="a number"):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {'>=' if inclusive else '>'} {low}")
        return value
    return parse


nonneg_int, positive_int = _number(int, 0, what="a whole number"), _number(int, 1, what="a whole number")
positive_float, nonneg_float = _number(float, 0, inclusive=False), _number(float, 0)


def device_name(text: str) -> str:
    """cpu, cuda, cuda:N, mps or auto; whether it is available is checked when it is used."""
    kind, _, index = text.partition(":")
    if kind not in ("auto", "cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use cpu, cuda, cuda:N, mps or auto")
    return text


def shard_spec(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit()) or int(count) < 1 or int(index) >= int(count):
        raise argparse.ArgumentTypeError(f"{text!r} is not a shard: use I/N with 0 <= I < N, e.g. 0/4")
    return int(index), int(count)


def dataset_name(text: str) -> str:
    from .data import DataError, canonical_dataset
    try:
        return canonical_dataset(text)
    except DataError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


LIKELIHOOD_CHOICES = ["bce", "bernoulli", "mse", "gaussian", "learned_gaussian", "continuous_bernoulli", "pixelcnn"]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vaelib", description="Train, sample and evaluate VAEs on MNIST and other image data.",
                     epilog="Errors are one line. An unexpected one is a bug: run again with --debug (or "
                            "VAELIB_DEBUG=1) to see the full traceback, and report it.")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an unexpected error (also VAELIB_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="{train,generate,evaluate,export,coursework}", parser_class=_Parser)

    t = sub.add_parser("train", help="train a VAE and write checkpoints under runs/RUN_NAME/",
                       description="Train a VAE (on MNIST by default). Writes checkpoint_best.pth (best test "
                                   "ELBO), checkpoint_last.pth, history.csv and samples.png in RUNS_DIR/RUN_NAME.")
    t.add_argument("run_name", help="name of the run: its files go to RUNS_DIR/RUN_NAME")
    _add(t, "runs_dir", default="runs", help="folder that holds the runs (default: runs)")
    _add(t, "batch_size", type=positive_int, default=128, help="images per step (default: 128)")
    _add(t, "learning_rate", type=positive_float, default=1e-3, help="Adam's learning rate (default: 1e-3)")
    _add(t, "num_epochs", type=positive_int, default=10, help="total epochs, counting resumed ones (default: 10)")
    _add(t, "lr_schedule", choices=["constant", "cosine"], default="constant",
         help="cosine: decay the learning rate to 0 by the last of --num_epochs along a cosine, after "
              "--warmup_steps of linear warm-up; with a larger batch and learning rate it is the fastest recipe "
              "measured (benchmarks/RESULTS.md) (default: constant)")
    _add(t, "warmup_steps", type=nonneg_int, default=0,
         help="raise the learning rate linearly from 0 over this many steps first (default: 0)")
    _add(t, "likelihood_type", choices=LIKELIHOOD_CHOICES, default="bce",
         help="decoder likelihood: bce/bernoulli, mse/gaussian (fixed sigma), learned_gaussian (sigma-VAE), "
              "continuous_bernoulli, pixelcnn (binary pixels, each also conditioned on the pixels above and "
              "to its left: slower sampling, better likelihood) (default: bce)")
    _add(t, "sigma", type=positive_float, default=None,
         help="Gaussian likelihood's standard deviation (default: sqrt(1/2), which makes mse the summed MSE)")
    _add(t, "pixelcnn_layers", type=positive_int, default=1,
         help="with --likelihood_type pixelcnn: masked layers of the decoder, a 7x7 window then gated 3x3 "
              "layers; deeper sees more of the image and models it better (default: 1)")
    _add(t, "hidden_dim", type=positive_int, default=20, help="latent size D (default: 20)")
    _add(t, "arch", choices=["conv", "mlp"], default="conv", help="encoder/decoder architecture (default: conv)")
    _add(t, "hidden_units", type=positive_int, default=None,
         help="width of the dense hidden layer (default: 400 for mlp, 256 for conv)")
    _add(t, "channels", type=positive_int, default=32, help="channels of the first convolution, conv only (default: 32)")
    _add(t, "conditional", action="store_true", help="condition encoder and decoder on the label (a CVAE)")
    _add(t, "posterior", choices=["gaussian", "iaf"], default="gaussian",
         help="q(z|x): a diagonal Gaussian, or one pushed through an inverse autoregressive flow (default: gaussian)")
    _add(t, "iaf_steps", type=positive_int, default=2, help="with --posterior iaf: the number of flow steps (default: 2)")
    _add(t, "iaf_hidden", type=positive_int, default=320,
         help="with --posterior iaf: the width of each step's masked network and of the context (default: 320)")
    _add(t, "prior", choices=["standard", "mog", "vamp"], default="standard",
         help="p(z): N(0, I), a learned mixture of Gaussians (mog) or the VampPrior (vamp) (default: standard)")
    _add(t, "prior_components", type=positive_int, default=None,
         help="components of the mog prior (default 10) or pseudo-inputs of the VampPrior (default 500)")
    _add(t, "free_bits", type=nonneg_float, default=0.0,
         help="count each latent dimension's KL as at least this many nats (Kingma et al. 2016): keeps a strong "
              "decoder from ignoring z (default: 0, off)")
    _add(t, "dataset", type=dataset_name, default="mnist",
         help="mnist, fashion_mnist, kmnist, cifar10, cifar100, svhn, usps or stl10, from torchvision (downloaded "
              "when online; other images: pass a tensor to vaelib.fit from Python) (default: mnist)")
    _add(t, "image_size", type=positive_int, default=None,
         help="resize the images to IMAGE_SIZE x IMAGE_SIZE when loading (default: as stored, 28 for MNIST)")
    _add(t, "beta", type=nonneg_float, default=1.0, help="weight on the KL term (default: 1)")
    _add(t, "beta_max", type=nonneg_float, default=None,
         help="with --beta_annealing_period: beta grows from --beta by beta_max/period per epoch up to beta_max")
    _add(t, "beta_annealing_period", type=nonneg_int, default=0,
         help="epochs of KL annealing (0: none); without --beta_max, beta grows from 0 to --beta")
    _add(t, "beta_schedule", choices=["constant", "linear", "cyclical", "sigmoid"], default=None,
         help="shape of the annealing (default: linear when --beta_annealing_period > 0, else constant)")
    _add(t, "binarize", choices=["auto", "none", "dynamic", "static"], default="auto",
         help="binarize the images: auto is dynamic for bce/bernoulli/pixelcnn and none otherwise")
    _add(t, "subset", type=positive_int, default=None,
         help="quick runs: train on the first N training images, and test on the first N test images (all of them "
              "when N exceeds the test set); 'vaelib evaluate' scores the whole test set")
    _add(t, "seed", type=nonneg_int, default=0, help="random seed (default: 0)")
    _add(t, "device", type=device_name, default="auto", help="cuda, mps, cpu or auto (default: auto)")
    _add(t, "clip_grad", type=positive_float, default=None, help="clip the gradient norm to this value")
    _add(t, "precision", choices=["fp32", "bf16"], default="fp32",
         help="bf16: bfloat16 autocast for the forward pass, faster on GPUs and CPUs with AMX or AVX512-BF16, "
              "slower elsewhere (vaelib warns) (default: fp32)")
    _add(t, "iwae_k", type=positive_int, default=1,
         help="train on the importance-weighted bound with this many samples (IWAE; default 1: the ELBO)")
    _add(t, "compile", action="store_true", help="torch.compile the ELBO: slower first epoch, faster after")
    _add(t, "resume_if_exists", action="store_true",
         help="continue RUNS_DIR/RUN_NAME/checkpoint_last.pth if it exists")
    _add(t, "initial_checkpoint_path", default=None, help="start from this checkpoint's weights (fine-tuning)")
    _add(t, "data_root", default=None, help="folder holding MNIST/raw/ etc. (default: $VAELIB_DATA, then ./data)")
    _add(t, "detect_posterior_collapse", action="store_true",
         help="warn and save checkpoint_posterior_collapse.pth when the KL per latent dimension collapses")
    _add(t, "collapse_threshold", type=positive_float, default=0.01,
         help="nats per latent dimension below which the posterior counts as collapsed (default: 0.01)")
    _add(t, "tensorboard", action="store_true", help="also log scalars and samples for TensorBoard")
    _add(t, "quiet", action="store_true", help="no progress bar")
    _add(t, "threads", type=positive_int, default=None,
         help="CPU threads for torch (default: one per core); on a busy or shared machine 1 can be several times "
              "faster, with identical numbers")

    g = sub.add_parser("generate", help="sample new digits from a checkpoint, or print its --info_only",
                       description="Write a grid of new digits sampled from a trained VAE.")
    _add(g, "checkpoint_path", required=True, help="a checkpoint written by 'vaelib train'")
    _add(g, "num_samples", type=positive_int, default=64, help="number of digits (default: 64)")
    _add(g, "output_path", default="samples.png", help="PNG to write (default: samples.png)")
    _add(g, "grid_size", type=positive_int, default=8, help="images per row of the square grid (default: 8)")
    _add(g, "seed", type=nonneg_int, default=0, help="random seed (default: 0)")
    _add(g, "temperature", type=positive_float, default=1.0,
         help="scale of the prior samples: below 1 gives cleaner, less varied digits (default: 1)")
    _add(g, "digit", type=nonneg_int, default=None, metavar="LABEL",
         help="for a conditional model: the digit (class) to draw (default: rows of 0 to 9)")
    _add(g, "info_only", action="store_true", help="print what the checkpoint holds and generate nothing")
    _add(g, "device", type=device_name, default="cpu", help="device to sample on (default: cpu)")

    e = sub.add_parser("evaluate", help="test ELBO and importance-weighted NLL of a checkpoint",
                       description="Evaluate a checkpoint on the test set of the data it was trained on: negative "
                                   "ELBO and the IWAE estimate of the negative log-likelihood (nats and bits/dim).")
    _add(e, "checkpoint_path", help="a checkpoint written by 'vaelib train' (required unless --combine)")
    _add(e, "k", type=positive_int, default=5000, help="importance samples per image (default: 5000)")
    _add(e, "binarize", choices=["dynamic", "static", "none"], default=None,
         help="test-set binarization (default: as in training; dynamic for binary likelihoods, the protocol of "
              "Burda et al. 2015)")
    _add(e, "dataset", type=dataset_name, default=None, help="test data (default: the checkpoint's)")
    _add(e, "bounds", default=None, metavar="FILE.json",
         help="keep each image's bound in this file as it is computed: a run that stops continues where it "
              "stopped when started again with the same file")
    _add(e, "shard", type=shard_spec, default=None, metavar="I/N",
         help="evaluate only the images whose index is I mod N (with --bounds: run the N shards anywhere, then "
              "--combine their files)")
    _add(e, "combine", nargs="+", default=None, metavar="FILE.json",
         help="combine the --bounds files of the shards of one evaluation and print its NLL")
    _add(e, "precision", choices=["fp32", "bf16"], default="fp32",
         help="bf16: bfloat16 autocast for the networks, faster on GPUs and CPUs with AMX or AVX512-BF16, "
              "slower elsewhere (vaelib warns); benchmarks/RESULTS.md shows how little it moves the NLL "
              "(default: fp32)")
    _add(e, "samples", type=positive_int, default=None,
         help="also score N samples with the MNIST classifier (vaelib.sample_quality): Frechet distance to the "
              "test set, confidence, label entropy; 10000 recommended, at least 2000 (MNIST models only)")
    _add(e, "seed", type=nonneg_int, default=0, help="random seed (default: 0)")
    _add(e, "subset", type=positive_int, default=None, help="evaluate on the first N test images only")
    _add(e, "batch_size", type=positive_int, default=None, help="images per IWAE batch (default: automatic)")
    _add(e, "device", type=device_name, default="auto", help="cuda, mps, cpu or auto (default: auto)")
    _add(e, "data_root", default=None, help="folder holding MNIST/raw/ etc. (default: $VAELIB_DATA, then ./data)")
    _add(e, "threads", type=positive_int, default=None,
         help="CPU threads for torch (default: one per core); on a busy or shared machine 1 can be several times "
              "faster, with identical numbers")

    x = sub.add_parser("export", help="copy a checkpoint without its optimizer state (for sharing)",
                       description="Write a smaller copy of a checkpoint: weights, config, history and "
                                   "training arguments, without the optimizer state needed only to resume.")
    x.add_argument("source", help="checkpoint to read")
    x.add_argument("destination", help="checkpoint to write (a new file, unless --overwrite)")
    _add(x, "overwrite", action="store_true", help="replace DESTINATION if it exists")

    c = sub.add_parser("coursework", help="write student versions of the notebooks (solutions removed)",
                       description="Write student versions of the numbered notebooks: each region between "
                                   "'### BEGIN SOLUTION' and '### END SOLUTION' becomes a stub, solved cells "
                                   "lose their outputs, everything else is kept; the .py twins are written too. "
                                   "With --nbgrader, write an nbgrader course instead (source/ notebooks with "
                                   "nbgrader's cell metadata, and nbgrader_config.py) for nbgrader's own "
                                   "generate_assignment and autograde. A rerun replaces no edits: a file of the "
                                   "output folder that differs from what vaelib writes now is kept and listed "
                                   "(--overwrite replaces it).")
    c.add_argument("source", help="folder of solved notebooks (e.g. notebooks/)")
    target = c.add_mutually_exclusive_group(required=True)
    _add(target, "out", help="folder for the student versions, outside SOURCE (e.g. student/)")
    _add(target, "nbgrader", metavar="COURSE_DIR",
         help="nbgrader course folder, outside SOURCE (e.g. course/): writes COURSE_DIR/source/NN_name/NN_name.ipynb, "
              "one assignment per notebook, and COURSE_DIR/nbgrader_config.py if there is none")
    _add(c, "overwrite", action="store_true",
         help="replace the files of the output folder that differ from what vaelib writes now (a learner's or "
              "an instructor's edits); without it they are kept and listed. nbgrader_config.py is never replaced")
    for sub_parser in (t, g, e, x, c):
        sub_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                help="show the full traceback of an unexpected error (also VAELIB_DEBUG=1)")
    return parser


# train ------------------------------------------------------------------------------------------------

# train flags that describe the model, and the config keys they set (vaelib.vae.build_vae)
MODEL_FLAGS = {"arch": "arch", "hidden_dim": "latent_dim", "likelihood_type": "likelihood", "hidden_units": "hidden",
               "channels": "channels", "sigma": "sigma", "conditional": "num_classes", "posterior": "posterior",
               "iaf_steps": "iaf_steps", "iaf_hidden": "iaf_hidden", "prior": "prior",
               "prior_components": "prior_components", "pixelcnn_layers": "pixelcnn_layers"}


def _model_flags(config) -> dict:
    """The value each model flag would need to have for the model ``config`` describes."""
    return {flag: bool(config.get(key)) if flag == "conditional" else config.get(key)
            for flag, key in MODEL_FLAGS.items()}


def _contradictions(args, explicit: set, stored: dict, source: str) -> None:
    """Refuse the flags typed on the command line whose value differs from ``stored`` (flag: value)."""
    from .likelihoods import canonical_name
    given = {**vars(args), "likelihood_type": canonical_name(args.likelihood_type),
             "binarize": _binarization(stored.get("likelihood_type", args.likelihood_type), args.binarize) or "none"}
    wrong = [f"--{flag}{'' if isinstance(given[flag], bool) else f' {getattr(args, flag)}'} (the checkpoint has "
             f"{value})" for flag, value in stored.items() if flag in explicit and given[flag] != value]
    if wrong:
        raise UsageError(f"{', '.join(wrong)} contradict{'s' if len(wrong) == 1 else ''} {source}: drop "
                         f"{'this flag' if len(wrong) == 1 else 'these flags'} (the model and its data are taken "
                         f"from the checkpoint), or start a new run under another name")


def _binarization(likelihood: str, binarize: str) -> str | None:
    """--binarize auto: dynamic binarization for the binary likelihoods, none for the others."""
    from .likelihoods import is_binary
    if binarize == "auto":
        return "dynamic" if is_binary(likelihood) else None
    return None if binarize == "none" else binarize


def _beta(args, steps_per_epoch: int):
    """The original project's beta flags as a schedule of vaelib.schedules."""
    from .schedules import Constant, make_schedule
    name = args.beta_schedule or ("linear" if args.beta_annealing_period > 0 else "constant")
    if name == "constant":
        if args.beta_annealing_period > 0:
            raise UsageError("--beta_schedule constant contradicts --beta_annealing_period: drop one of them")
        return Constant(args.beta if args.beta_max is None else args.beta_max)
    if args.beta_annealing_period == 0:
        raise UsageError(f"--beta_schedule {name} needs --beta_annealing_period N (epochs)")
    target, start = (args.beta, 0.0) if args.beta_max is None else (args.beta_max, args.beta)
    return make_schedule(name, beta_max=target, period=args.beta_annealing_period * steps_per_epoch, start=start)


def _say(*args, **kwargs) -> None:
    """print, on one process only (rank 0) when torchrun started several."""
    from .distributed import is_main
    if is_main():
        print(*args, **kwargs)


def _train(args, explicit: set) -> int:
    from . import distributed
    from .files import run_folder
    from .runs import RunClaim, RunFolderError
    from .training import pick_device
    try:
        try:
            run_dir = run_folder(args.runs_dir, args.run_name)
        except ValueError as err:
            raise UsageError(str(err)) from None
        device = distributed.start(args.device) or pick_device(args.device)
        # rank 0 claims the folder (one process per run name); the others only look at what it holds
        claim = RunClaim(run_dir, args.resume_if_exists, lock=distributed.is_main())
        try:
            resume = claim.acquire()
        except RunFolderError as err:
            raise _flagged(err, "resume_if_exists") from None
        try:
            distributed.barrier()  # every process has looked at the run folder before rank 0 writes in it
            return _train_claimed(args, explicit, run_dir, device, resume)
        finally:
            claim.release()  # a run that wrote nothing leaves no folder behind
    finally:
        distributed.stop()


def _resumed(args, explicit: set, resume: Path, train_args: dict):
    """The model of the run to resume, its binarization, its epochs and its flags, with this command's on top;
    the data flags and the learning rate's become those of the run."""
    from .runs import model_to_train, stored_data
    model = model_to_train(resume)
    data, stored_args = stored_data(model), model.checkpoint.get("train_args") or {}
    _contradictions(args, explicit, {**_model_flags(model.config), "dataset": data["dataset"],
                                     "image_size": data["image_shape"][-1], "binarize": data["binarize"] or "none"},
                    f"the run being resumed ({resume})")
    args.dataset, args.image_size = data["dataset"], data["image_shape"][-1]
    for flag in ("learning_rate", "lr_schedule", "warmup_steps"):  # they continue unless this command sets them
        if flag not in explicit and flag in stored_args:
            setattr(args, flag, stored_args[flag])
    train_args = {**train_args, **stored_args, **{k: v for k, v in train_args.items() if k in explicit}}
    return model, data["binarize"], int(model.checkpoint.get("epoch", 0)), train_args


def _new_model(args, explicit: set, train):
    """The model the flags describe, after refusing flags that shape parts it does not have."""
    from .likelihoods import canonical_name
    from .vae import VAEConfig, build_vae
    likelihood = canonical_name(args.likelihood_type)
    if args.posterior != "iaf" and ({"iaf_steps", "iaf_hidden"} & explicit):
        raise UsageError("--iaf_steps and --iaf_hidden shape the IAF posterior: add --posterior iaf, or drop them")
    if "sigma" in explicit and likelihood not in ("gaussian", "learned_gaussian"):
        raise UsageError(f"--sigma is the Gaussian likelihood's standard deviation, and the likelihood is "
                         f"{args.likelihood_type}: add --likelihood_type mse (or learned_gaussian), or drop --sigma")
    if "channels" in explicit and args.arch == "mlp":
        raise UsageError("--channels sets the conv networks' first convolution, and --arch is mlp: add --arch conv, "
                         "or set the MLP's width with --hidden_units")
    if args.pixelcnn_layers != 1 and likelihood != "pixelcnn":
        raise UsageError("--pixelcnn_layers sets the depth of the pixelcnn decoder: add --likelihood_type pixelcnn, "
                         "or drop it")
    if args.prior == "standard" and "prior_components" in explicit:
        raise UsageError("--prior_components counts the components of a learned prior: add --prior mog or vamp")
    return build_vae(config=VAEConfig(
        arch=args.arch, latent_dim=args.hidden_dim, likelihood=args.likelihood_type, hidden=args.hidden_units,
        channels=args.channels, sigma=args.sigma, num_classes=train.num_classes if args.conditional else 0,
        image_shape=train.image_shape, posterior=args.posterior, iaf_steps=args.iaf_steps, iaf_hidden=args.iaf_hidden,
        prior=args.prior, prior_components=args.prior_components or 0, pixelcnn_layers=args.pixelcnn_layers))


def _objective(args, steps_per_epoch: int):
    """The objective the flags ask for; the beta schedule's flags are checked by name."""
    from .objectives import ELBOObjective, IWAEObjective
    if args.iwae_k > 1 and (args.beta != 1 or args.beta_annealing_period or args.beta_max is not None):
        raise UsageError("--iwae_k trains on L_k, which has no beta: drop --beta, --beta_max and --beta_annealing_period")
    if args.iwae_k > 1 and args.compile:
        raise UsageError("--compile is not supported with --iwae_k > 1 yet: drop one of them")
    if args.free_bits and (args.iwae_k > 1 or args.compile):
        raise UsageError("--free_bits changes the ELBO's KL term: it does not combine with --iwae_k or --compile")
    beta = _beta(args, steps_per_epoch)
    total = args.num_epochs * steps_per_epoch  # fit checks this too, but only after the data and the model
    if args.warmup_steps >= total:
        raise UsageError(f"--warmup_steps {args.warmup_steps} is not shorter than the whole run ({args.num_epochs} "
                         f"epochs x {steps_per_epoch} steps = {total}): lower it or raise --num_epochs")
    if args.iwae_k > 1:
        return IWAEObjective(args.iwae_k), f"IWAE k={args.iwae_k}"
    return ELBOObjective(beta, compile=args.compile, free_bits=args.free_bits), f"beta {beta!r}"


def _train_claimed(args, explicit: set, run_dir: Path, device, resume) -> int:
    from . import distributed
    from .callbacks import CollapseWarning, SampleGrid, TensorBoard
    from .data import load_dataset
    from .runs import RunConfig, model_to_train
    from .training import fit, seed_everything

    if resume is not None and args.initial_checkpoint_path:
        raise UsageError("--initial_checkpoint_path and an existing run to resume: use one or the other")
    callbacks = [SampleGrid(run_dir / "samples.png", seed=args.seed)]
    if args.tensorboard:
        try:
            callbacks.append(TensorBoard(run_dir / "tensorboard", seed=args.seed))
        except ImportError:
            raise UsageError("--tensorboard needs the tensorboard package: pip install tensorboard "
                             "(or pip install -e '.[tensorboard]')") from None
    if args.detect_posterior_collapse:
        callbacks.append(CollapseWarning(args.collapse_threshold))
    seed_everything(args.seed)  # before the model is built: its initial weights are drawn from the seed
    world = distributed.world_size()
    train_args = {**{k: v for k, v in vars(args).items() if k not in ("command", "debug")},
                  "world_size": world, "effective_batch_size": args.batch_size * world}
    model, done = None, 0
    if resume is not None:
        model, binarize, done, train_args = _resumed(args, explicit, resume, train_args)
        if done >= args.num_epochs:
            _say(f"nothing trained: run {args.run_name!r} has already trained {done} epochs and --num_epochs "
                 f"{args.num_epochs} is the total; raise --num_epochs to continue it", file=sys.stderr)
            return 0 if done == args.num_epochs else 2
        _say(f"resuming {resume} after epoch {done}")
    elif args.initial_checkpoint_path:
        model = model_to_train(args.initial_checkpoint_path)
        _contradictions(args, explicit, _model_flags(model.config),
                        f"--initial_checkpoint_path {args.initial_checkpoint_path}")
        _say(f"starting from the weights of {args.initial_checkpoint_path} ({model.config.arch}, "
             f"latent {model.latent_dim}); architecture flags are taken from it")
    if resume is None:
        binarize = _binarization(model.config.likelihood if model is not None else args.likelihood_type, args.binarize)
    # loaded on the CPU: fit moves the data (in a distributed run, each process's shard) to the device once
    train, test = (load_dataset(args.dataset, split, binarize, n, "cpu", args.data_root, image_size=args.image_size)
                   for split, n in (("train", args.subset), ("test", args.subset and min(args.subset, 10000))))
    model = model or _new_model(args, explicit, train)
    train_args.update(_model_flags(model.config))  # what was built
    train_args.update(binarize=binarize or "none", dataset=train.name, image_size=train.image_shape[-1])
    objective, loss = _objective(args, math.ceil(len(train) // world / args.batch_size))
    if distributed.active():
        _say(f"{world} processes x batch {args.batch_size} = effective batch {train_args['effective_batch_size']}, "
             f"{len(train) // world:,} images per process")
    tested = _which_test_images(len(test), args.subset)
    _say(f"training {model.config.arch} VAE ({model.num_parameters():,} parameters, latent {model.latent_dim}, "
         f"{model.config.likelihood} likelihood) on {len(train):,} {train.name} images {train.image_shape}, "
         f"tested on {tested}, {device}, {loss}")
    config = RunConfig(epochs=args.num_epochs, lr=args.learning_rate, batch_size=args.batch_size, seed=args.seed,
                       clip_grad=args.clip_grad, precision=args.precision, lr_schedule=args.lr_schedule,
                       warmup_steps=args.warmup_steps, device=str(device), progress=not args.quiet, command=train_args)
    history = fit(model, train, test, objective=objective, config=config, run_dir=run_dir, resume_from=resume,
                  callbacks=callbacks)
    _say(f"done: {args.num_epochs - done} epoch(s) trained, best test ELBO {max(r['test_elbo'] for r in history):.2f} "
         f"nats on {tested}; checkpoints, history.csv and samples.png in {run_dir}")
    return 0


def _which_test_images(n: int, subset: int | None) -> str:
    """Which test images a number was computed on, e.g. 'the first 2,000 test images'."""
    return f"the first {n:,} test images" if subset is not None and subset <= n else f"all {n:,} test images"


# generate, evaluate, export, coursework ---------------------------------------------------------------

def _checkpoint_path(path: str) -> str:
    """``path``, or a pointer to what exists when a user of the original project asks for its file."""
    if Path(path).name == "checkpoint_best.pth" and Path(path).parent.name == "pretrained" and not Path(path).exists():
        from .pretrained import pretrained_dir
        shipped = ", ".join(sorted(p.name for p in pretrained_dir().glob("*.pth"))) or "none installed"
        raise UsageError(f"{path} not found: the original project's checkpoint ships in the repository's pretrained/ "
                         f"folder ({pretrained_dir()}: {shipped}); run the command from the repository's root, or "
                         f"train your own with 'python -m vaelib train NAME'")
    return path


def _check_output_file(path, image: bool = True) -> None:
    """Fail before any work on an output path that cannot be written: a folder, a path below a file,
    an unknown image extension, or a folder without write permission."""
    from .plotting import image_format
    path, folder = Path(path), Path(path).parent
    if image:
        try:
            image_format(path)
        except ValueError as err:
            raise UsageError(str(err)) from None
    if path.is_dir():
        raise UsageError(f"output path {path} is a folder: give a file name, e.g. {path / 'samples.png'}")
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write {path}: no permission to write in {folder}")


def _generate(args) -> int:
    from .checkpoints import load
    from .runs import describe, sample_grid
    from .training import pick_device
    if not args.info_only:
        _check_output_file(args.output_path)  # before the model is loaded and sampled
    model = load(_checkpoint_path(args.checkpoint_path), device=pick_device(args.device))
    if args.info_only:
        print(describe(model, args.checkpoint_path))
        return 0
    if args.num_samples > args.grid_size ** 2:
        raise UsageError(f"a grid of {args.grid_size}x{args.grid_size} holds {args.grid_size ** 2} images, not "
                         f"{args.num_samples}: raise --grid_size to {math.ceil(math.sqrt(args.num_samples))} or lower "
                         f"--num_samples")
    try:
        out = sample_grid(model, args.output_path, args.num_samples, args.grid_size, args.seed, args.digit,
                          args.temperature)
    except ValueError as err:  # the arguments, checked before anything is sampled
        raise _flagged(err, "digit", "temperature") from None
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
    """Score ``args.samples`` samples with the MNIST classifier, against the whole test set."""
    import torch

    from .sample_quality import load_classifier, mnist_test_reference, sample_scores
    classifier = load_classifier(device=model.device)
    # the model's own samples: 0/1 pixels for a binary likelihood (drawn pixel by pixel for pixelcnn),
    # scored against the test set binarized the same way; grey means against grey test images otherwise
    samples = torch.cat([model.sample(min(1000, args.samples - i), draw=True,
                                      generator=torch.Generator(model.device).manual_seed(args.seed + i)).cpu()
                         for i in range(0, args.samples, 1000)])
    reference = mnist_test_reference(binarized=binary, seed=args.seed, root=args.data_root)
    scores = sample_scores(samples, reference, classifier)
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
    from .coursework import make_nbgrader_course, make_student_versions

    def report(path, state, done):
        if state == "kept":
            print(f"kept {path}: it differs from what vaelib writes now (edited?); --overwrite replaces it")
        elif state == "replaced":
            print(f"replaced {path}: it differed from what vaelib writes now (--overwrite)")
        elif state == "written" and done:
            print(f"{path}: {done}")

    def summary(results, what, where):
        states = [state for _, _, state in results]
        written, kept = states.count("written") + states.count("replaced"), states.count("kept")
        return (f"wrote {written} {what}{'' if written == 1 else 's'} to {where}, {states.count('unchanged')} "
                f"unchanged, {kept} kept" + (f" (listed above: nothing was lost; --overwrite replaces "
                                             f"{'it' if kept == 1 else 'them'})" if kept else ""))

    if args.nbgrader is None:
        results = make_student_versions(args.source, args.out, overwrite=args.overwrite)
        for path, regions, state in results:  # a .py twin: only its edits are news
            report(path, state, path.suffix == ".ipynb" and f"{regions} solution region{'s' * (regions != 1)} removed")
        print(summary(results, "student file", f"{args.out} (notebooks and their .py twins)"))
        return 0
    *results, (config, _, config_state) = make_nbgrader_course(args.source, args.nbgrader, overwrite=args.overwrite)
    for path, counts, state in results:
        report(path, state, f"{counts['tests']} autograded checks, {counts['written']} written answers, "
                            f"{counts['answers']} code answers")
    if config_state == "written":
        print(f"{config}: written")
    elif config_state == "kept":  # there to be edited: even --overwrite keeps it
        print(f"kept {config}: it differs from vaelib's, and is yours to edit: never replaced, not even by "
              f"--overwrite (delete it to get vaelib's again)")
    print(summary(results, "nbgrader source notebook", Path(args.nbgrader) / "source"))
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
    from .coursework import CourseworkError
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
        _report(args.command, str(err))
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
