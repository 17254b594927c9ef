"""The command line: ``python -m vaelib train|generate|evaluate|export|coursework`` (also ``vaelib ...``).

The flags of ``train`` and ``generate`` are those of the original project's ``train.py`` and
``generate.py``, with the same names and meaning; dash spellings (``--num-epochs``) work too::

    python -m vaelib train my_run --likelihood_type mse --num_epochs 100
    python -m vaelib generate --checkpoint_path runs/my_run/checkpoint_best.pth --num_samples 64 \\
        --output_path samples.png --grid_size 8
    python -m vaelib generate --checkpoint_path runs/my_run/checkpoint_best.pth --info_only
    python -m vaelib evaluate --checkpoint_path runs/my_run/checkpoint_best.pth --k 5000
    python -m vaelib export runs/my_run/checkpoint_best.pth pretrained/my_model.pth
    python -m vaelib coursework notebooks/ --out student/
    python -m vaelib coursework notebooks/ --nbgrader course/

Bad input ends with one line on stderr that says what is wrong and how to fix it, and exit code 2
(arguments) or 1 (data, checkpoints, a diverged run); never a traceback.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


class UsageError(Exception):
    """Arguments that parse but make no sense together; reported as one line, exit code 2."""


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
            bound = f">= {low}" if inclusive else f"> {low}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {bound}")
        return value
    return parse


nonneg_int = _number(int, 0, what="a whole number")
positive_int = _number(int, 1, what="a whole number")
positive_float = _number(float, 0, inclusive=False)
nonneg_float = _number(float, 0)

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


# train flags that describe the model, and the config keys they set (vaelib.vae.build_vae)
MODEL_FLAGS = {"arch": "arch", "hidden_dim": "latent_dim", "likelihood_type": "likelihood",
               "hidden_units": "hidden", "channels": "channels", "sigma": "sigma", "conditional": "num_classes",
               "posterior": "posterior", "iaf_steps": "iaf_steps", "iaf_hidden": "iaf_hidden", "prior": "prior",
               "prior_components": "prior_components", "pixelcnn_layers": "pixelcnn_layers"}


def _binarization(likelihood: str, binarize: str) -> str | None:
    from .likelihoods import is_binary
    if binarize == "auto":
        return "dynamic" if is_binary(likelihood) else None
    return None if binarize == "none" else binarize


def _check_warmup(args, steps_per_epoch: int) -> None:
    """--warmup_steps must leave some of the run (fit builds the schedule; the cosine spans all of
    --num_epochs, so a resumed run that raises --num_epochs stretches it from then on)."""
    total = args.num_epochs * steps_per_epoch
    if args.warmup_steps >= total:
        raise UsageError(f"--warmup_steps {args.warmup_steps} is not shorter than the whole run ({args.num_epochs} "
                         f"epochs x {steps_per_epoch} steps = {total}): lower it or raise --num_epochs")


def _schedule(args, steps_per_epoch: int):
    from .schedules import Constant, make_schedule
    name = args.beta_schedule or ("linear" if args.beta_annealing_period > 0 else "constant")
    if name == "constant":
        if args.beta_annealing_period > 0:
            raise UsageError("--beta_schedule constant contradicts --beta_annealing_period: drop one of them")
        return Constant(args.beta if args.beta_max is None else args.beta_max)
    if args.beta_annealing_period == 0:
        raise UsageError(f"--beta_schedule {name} needs --beta_annealing_period N (epochs)")
    target = args.beta if args.beta_max is None else args.beta_max
    start = 0.0 if args.beta_max is None else args.beta
    return make_schedule(name, beta_max=target, period=args.beta_annealing_period * steps_per_epoch, start=start)


def _flag_value(flag: str, config: dict):
    """The value that ``--flag`` would need to have for the model ``config`` describes."""
    value = config.get(MODEL_FLAGS[flag])
    return bool(value) if flag == "conditional" else value


def _contradictions(args, explicit: set, config: dict, source: str) -> None:
    """Refuse model flags given on the command line that differ from the model in ``source``."""
    from .likelihoods import canonical_name
    wrong = []
    for flag in MODEL_FLAGS:
        if flag not in explicit:
            continue
        given, stored = getattr(args, flag), _flag_value(flag, config)
        if flag == "likelihood_type":
            given = canonical_name(given)
        if given != stored:
            shown = "" if isinstance(given, bool) else f" {getattr(args, flag)}"
            wrong.append(f"--{flag}{shown} (the checkpoint has {stored})")
    if wrong:
        raise UsageError(f"{', '.join(wrong)} contradict{'s' if len(wrong) == 1 else ''} {source}: drop "
                         f"{'this flag' if len(wrong) == 1 else 'these flags'} (the model is taken from the "
                         f"checkpoint), or start a new run under another name")


def _stored_data(ckpt: dict) -> dict:
    """The training data a checkpoint records (a version-1 checkpoint: MNIST)."""
    data = ckpt.get("data")
    if data:
        return data
    binarize = (ckpt.get("train_args") or {}).get("binarize")
    return {"dataset": "mnist", "image_shape": [1, 28, 28], "binarize": None if binarize in (None, "none") else binarize}


def _train(args, explicit: set) -> int:
    from . import distributed
    try:
        return _train_run(args, explicit)
    finally:
        distributed.stop()


def _say(*args, **kwargs) -> None:
    """print, on one process only (rank 0) when torchrun started several."""
    from .distributed import is_main
    if is_main():
        print(*args, **kwargs)


def _train_run(args, explicit: set) -> int:
    from . import distributed
    from .files import run_folder
    from .runs import RunClaim, RunFolderError
    from .training import pick_device

    try:
        run_dir = run_folder(args.runs_dir, args.run_name)
    except ValueError as err:
        raise UsageError(str(err)) from None
    device = distributed.start(args.device) or pick_device(args.device)
    # rank 0 claims the folder (one process per run name); the others only look at what it holds
    claim = RunClaim(run_dir, args.resume_if_exists, lock=distributed.is_main())
    try:
        resume = claim.acquire()
    except RunFolderError as err:  # the command line names its flag
        raise UsageError(str(err).replace("(resume_if_exists)", "(--resume_if_exists)")) from None
    try:
        return _train_claimed(args, explicit, run_dir, device, resume)
    finally:
        claim.release()  # a run that wrote nothing leaves no folder behind


def _train_claimed(args, explicit: set, run_dir: Path, device, resume) -> int:
    from . import distributed
    from .callbacks import CollapseWarning, SampleGrid, TensorBoard
    from .checkpoints import load, load_checkpoint, model_from_checkpoint
    from .data import load_dataset
    from .likelihoods import canonical_name
    from .objectives import ELBOObjective, IWAEObjective
    from .runs import RunConfig
    from .training import fit, seed_everything
    from .vae import VAEConfig, build_vae

    distributed.barrier()  # every process has looked at the run folder before rank 0 writes in it
    if resume is not None and args.initial_checkpoint_path:
        raise UsageError("--initial_checkpoint_path and an existing run to resume: use one or the other")
    callbacks = []
    if args.tensorboard:
        try:
            callbacks.append(TensorBoard(run_dir / "tensorboard", seed=args.seed))
        except ImportError:
            raise UsageError("--tensorboard needs the tensorboard package: pip install tensorboard "
                             "(or pip install -e '.[tensorboard]')") from None
    seed_everything(args.seed)  # before the model is built: its initial weights are drawn from the seed

    train_args = {k: v for k, v in vars(args).items() if k not in ("command", "debug")}
    train_args.update(world_size=distributed.world_size(), effective_batch_size=args.batch_size * distributed.world_size())
    done, binarize = 0, None
    if resume is not None:
        ckpt = load_checkpoint(resume)
        stored = _stored_data(ckpt)
        model = model_from_checkpoint(ckpt, resume)
        _contradictions(args, explicit, model.config, f"the run being resumed ({resume})")
        done = int(ckpt.get("epoch", 0))
        # the run keeps its data as it was; flags that say otherwise are refused
        wanted = {"dataset": args.dataset, "image_size": args.image_size,
                  "binarize": _binarization(model.config.likelihood, args.binarize) or "none"}
        kept = {"dataset": stored["dataset"], "image_size": stored["image_shape"][-1],
                "binarize": stored["binarize"] or "none"}
        wrong = [f"--{flag} {getattr(args, flag)} (the run has {kept[flag]})" for flag in wanted
                 if flag in explicit and wanted[flag] != kept[flag]]
        if wrong:
            raise UsageError(f"{', '.join(wrong)} contradict{'s' if len(wrong) == 1 else ''} the run being resumed: "
                             f"drop {'it' if len(wrong) == 1 else 'them'}, or start a new run")
        args.dataset, args.image_size, binarize = stored["dataset"], stored["image_shape"][-1], stored["binarize"]
        # the learning rate and its schedule continue as they were unless this command sets them
        for flag in ("learning_rate", "lr_schedule", "warmup_steps"):
            if flag not in explicit and flag in (ckpt.get("train_args") or {}):
                setattr(args, flag, ckpt["train_args"][flag])
        # the stored flags describe the run; this command's explicit flags are recorded on top of them
        train_args = {**train_args, **(ckpt.get("train_args") or {}),
                      **{k: v for k, v in train_args.items() if k in explicit}}
        if done >= args.num_epochs:
            _say(f"nothing trained: run {args.run_name!r} has already trained {done} epochs and --num_epochs "
                  f"{args.num_epochs} is the total; raise --num_epochs to continue it", file=sys.stderr)
            return 0 if done == args.num_epochs else 2
        _say(f"resuming {resume} after epoch {done}")
    elif args.initial_checkpoint_path:
        model = load(args.initial_checkpoint_path).train()
        if model.config is None:
            raise UsageError(f"{args.initial_checkpoint_path} holds a hand-built architecture: fine-tune it from "
                             f"Python with vaelib.load(path, model=...) and vaelib.fit")
        _contradictions(args, explicit, model.config, f"--initial_checkpoint_path {args.initial_checkpoint_path}")
        _say(f"starting from the weights of {args.initial_checkpoint_path} ({model.config.arch}, "
              f"latent {model.latent_dim}); architecture flags are taken from it")
    else:
        model = None
    likelihood = model.config.likelihood if model is not None else args.likelihood_type
    if resume is None:
        binarize = _binarization(likelihood, args.binarize)
    # loaded on the CPU: fit moves the data (in a distributed run, each process's shard) to the device once
    train = load_dataset(args.dataset, "train", binarize, args.subset, "cpu", args.data_root, image_size=args.image_size)
    test = load_dataset(args.dataset, "test", binarize, None if args.subset is None else min(args.subset, 10000),
                        "cpu", args.data_root, image_size=args.image_size)
    if model is None:
        if args.posterior != "iaf" and ({"iaf_steps", "iaf_hidden"} & explicit):
            raise UsageError("--iaf_steps and --iaf_hidden shape the IAF posterior: add --posterior iaf, or drop them")
        if "sigma" in explicit and canonical_name(args.likelihood_type) not in ("gaussian", "learned_gaussian"):
            raise UsageError(f"--sigma is the Gaussian likelihood's standard deviation, and the likelihood is "
                             f"{args.likelihood_type}: add --likelihood_type mse (or learned_gaussian), or drop --sigma")
        if "channels" in explicit and args.arch == "mlp":
            raise UsageError("--channels sets the conv networks' first convolution, and --arch is mlp: add --arch conv, "
                             "or set the MLP's width with --hidden_units")
        if args.pixelcnn_layers != 1 and canonical_name(args.likelihood_type) != "pixelcnn":
            raise UsageError("--pixelcnn_layers sets the depth of the pixelcnn decoder: add --likelihood_type pixelcnn, "
                             "or drop it")
        if args.prior == "standard" and "prior_components" in explicit:
            raise UsageError("--prior_components counts the components of a learned prior: add --prior mog or vamp")
        model = build_vae(config=VAEConfig(
            arch=args.arch, latent_dim=args.hidden_dim, likelihood=args.likelihood_type, hidden=args.hidden_units,
            channels=args.channels, sigma=args.sigma, num_classes=train.num_classes if args.conditional else 0,
            image_shape=train.image_shape, posterior=args.posterior, iaf_steps=args.iaf_steps,
            iaf_hidden=args.iaf_hidden, prior=args.prior, prior_components=args.prior_components or 0,
            pixelcnn_layers=args.pixelcnn_layers))
    train_args.update({flag: _flag_value(flag, model.config) for flag in MODEL_FLAGS})  # what was built
    train_args.update(binarize=binarize or "none", dataset=train.name, image_size=train.image_shape[-1])
    steps_per_epoch = math.ceil(len(train) // distributed.world_size() / args.batch_size)
    schedule = _schedule(args, steps_per_epoch)
    _check_warmup(args, steps_per_epoch)
    if args.iwae_k > 1 and (args.beta != 1 or args.beta_annealing_period or args.beta_max is not None):
        raise UsageError("--iwae_k trains on L_k, which has no beta: drop --beta, --beta_max and --beta_annealing_period")
    if args.iwae_k > 1 and args.compile:
        raise UsageError("--compile is not supported with --iwae_k > 1 yet: drop one of them")
    if args.free_bits and (args.iwae_k > 1 or args.compile):
        raise UsageError("--free_bits changes the ELBO's KL term: it does not combine with --iwae_k or --compile")
    if distributed.active():
        _say(f"{distributed.world_size()} processes x batch {args.batch_size} = effective batch "
             f"{train_args['effective_batch_size']}, {len(train) // distributed.world_size():,} images per process")
    _say(f"training {model.config.arch} VAE ({model.num_parameters():,} parameters, latent {model.latent_dim}, "
          f"{model.config.likelihood} likelihood) on {len(train):,} {train.name} images {train.image_shape}, "
          f"tested on {_which_test_images(len(test), args.subset)}, {device}, {'IWAE k=' + str(args.iwae_k) if args.iwae_k > 1 else 'beta ' + repr(schedule)}")
    callbacks.insert(0, SampleGrid(run_dir / "samples.png", seed=args.seed))
    if args.detect_posterior_collapse:
        callbacks.append(CollapseWarning(args.collapse_threshold))
    objective = (IWAEObjective(args.iwae_k) if args.iwae_k > 1
                 else ELBOObjective(schedule, compile=args.compile, free_bits=args.free_bits))
    config = RunConfig(epochs=args.num_epochs, lr=args.learning_rate, batch_size=args.batch_size, seed=args.seed,
                       clip_grad=args.clip_grad, precision=args.precision, lr_schedule=args.lr_schedule,
                       warmup_steps=args.warmup_steps, device=str(device), progress=not args.quiet, command=train_args)
    history = fit(model, train, test, objective=objective, config=config, run_dir=run_dir, resume_from=resume,
                  callbacks=callbacks)
    best = max(row["test_elbo"] for row in history)
    _say(f"done: {args.num_epochs - done} epoch(s) trained, best test ELBO {best:.2f} nats on "
         f"{_which_test_images(len(test), args.subset)}; checkpoints, "
          f"history.csv and samples.png in {run_dir}")
    return 0


def _which_test_images(n: int, subset: int | None) -> str:
    """Which test images a number was computed on, e.g. 'the first 2,000 test images'."""
    return f"the first {n:,} test images" if subset is not None and subset <= n else f"all {n:,} test images"


def _describe(model, path) -> str:
    ckpt = model.checkpoint
    data = _stored_data(ckpt)
    lines = [f"checkpoint: {path}",
             f"vaelib version: {ckpt.get('vaelib_version')} (format {ckpt.get('format_version')})",
             f"architecture: {model.config.arch}, latent size {model.latent_dim}, "
             f"likelihood {model.config.likelihood}"
             + (f" ({model.config.pixelcnn_layers} layers)" if model.config.get("pixelcnn_layers", 1) > 1 else "")
             + f", posterior {model.config.posterior}, prior {model.config.prior}"
             + (f", conditional on {model.num_classes} classes" if model.num_classes else ""),
             f"trained on: {data['dataset']}, images {tuple(data['image_shape'])}, "
             f"binarization {data['binarize'] or 'none'}",
             f"epochs trained: {ckpt.get('epoch', 0)}"]
    best = ckpt.get("best_test_elbo")
    subset = (ckpt.get("train_args") or {}).get("subset")
    on = (f" on the first {subset:,} test images (trained with --subset)" if isinstance(subset, int)
          else " on the whole test set")
    lines.append(f"best test ELBO: {best:.2f} nats{on}" if best is not None else "best test ELBO: unknown")
    args = ckpt.get("train_args") or {}
    if args:
        lines.append("training arguments:")
        lines += [f"  {k}: {v}" for k, v in sorted(args.items())]
    lines.append("layers:")
    lines.append(f"  {'name':<34} {'shape':<22} {'parameters':>12}")
    for name, p in model.named_parameters():
        lines.append(f"  {name:<34} {str(tuple(p.shape)):<22} {p.numel():>12,}")
    lines.append(f"  {'total':<57} {model.num_parameters():>12,}")
    return "\n".join(_printable(line) for line in lines)


def _printable(text: str) -> str:
    """``text`` with every control character escaped (``\\x1b``, ``\\n``...): strings read from a file
    (a run name, training arguments) must not reach the terminal as escape sequences, which can
    clear the screen, retitle the window or, on some terminals, set the clipboard."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


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
    path = Path(path)
    if image:
        try:
            image_format(path)
        except ValueError as err:
            raise UsageError(str(err)) from None
    if path.is_dir():
        raise UsageError(f"output path {path} is a folder: give a file name, e.g. {path / 'samples.png'}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write {path}: no permission to write in {folder}")


def _generate(args) -> int:
    import torch

    from .checkpoints import load
    from .plotting import save_image_grid
    from .training import pick_device

    if not args.info_only:
        _check_output_file(args.output_path)  # before the model is loaded and sampled
    model = load(_checkpoint_path(args.checkpoint_path), device=pick_device(args.device))
    if args.info_only:
        print(_describe(model, args.checkpoint_path))
        return 0
    capacity = args.grid_size ** 2
    if args.num_samples > capacity:
        raise UsageError(f"a grid of {args.grid_size}x{args.grid_size} holds {capacity} images, not "
                         f"{args.num_samples}: raise --grid_size to {math.ceil(math.sqrt(args.num_samples))} "
                         f"or lower --num_samples")
    y = None
    if model.num_classes:
        if args.digit is not None and args.digit >= model.num_classes:
            raise UsageError(f"--digit {args.digit}: this model knows labels 0 to {model.num_classes - 1}")
        y = (torch.full((args.num_samples,), args.digit) if args.digit is not None
             else torch.arange(args.num_samples) // args.grid_size % model.num_classes).to(model.device)
    elif args.digit is not None:
        raise UsageError("--digit needs a conditional model; this checkpoint is unconditional")
    if args.temperature != 1 and model.config.prior != "standard":
        raise UsageError(f"--temperature scales samples of N(0, I); this model's prior is learned "
                         f"({model.config.prior}): drop --temperature")
    g = torch.Generator(device=model.device).manual_seed(args.seed)
    images = model.sample(args.num_samples, temperature=args.temperature, y=y, generator=g)
    out = save_image_grid(images, args.output_path, nrow=args.grid_size)
    print(f"wrote {args.num_samples} samples to {out}")
    return 0


def _evaluate(args) -> int:
    import torch

    from .checkpoints import load
    from .data import DATASETS, load_dataset
    from .evaluation import BoundsRecord, evaluate_elbo, file_sha256, iwae_bounds, summarize_bounds
    from .training import pick_device

    if args.combine:
        if args.checkpoint_path is not None:
            raise UsageError("--checkpoint_path with --combine: the shard files name their checkpoint (its sha256) "
                             "and are combined as they are; drop --checkpoint_path")
        return _combine(args)
    if args.checkpoint_path is None:
        raise UsageError("--checkpoint_path is required (or --combine FILES to combine the shards of an evaluation)")
    device = pick_device(args.device)
    model = load(_checkpoint_path(args.checkpoint_path), device=device)
    stored = _stored_data(model.checkpoint)
    if args.samples and (tuple(model.image_shape or ()) != (1, 28, 28) or stored["dataset"] != "mnist"):
        raise UsageError("--samples scores digits with an MNIST classifier: it needs a model trained on MNIST (1x28x28)")
    if args.dataset is None and stored["dataset"] not in DATASETS:
        raise UsageError(f"this model was trained on your own images ({stored['dataset']!r}), which the command line "
                         f"cannot load: pass --dataset NAME, or evaluate it from Python with vaelib.evaluation")
    binarize = stored["binarize"] if args.binarize is None else (None if args.binarize == "none" else args.binarize)
    test = load_dataset(args.dataset or stored["dataset"], "test", binarize, args.subset, device, args.data_root,
                        image_size=stored["image_shape"][-1])
    indices = list(range(len(test)))
    if args.shard is not None:
        indices = indices[args.shard[0]::args.shard[1]]
        if not indices:
            raise UsageError(f"shard {args.shard[0]}/{args.shard[1]} of {len(test):,} test images holds no image (a "
                             f"shard I/N holds the images whose index is I mod N): use fewer shards, or no --subset")
    record = None
    if args.bounds:
        _check_output_file(args.bounds, image=False)
        record = BoundsRecord(args.bounds, {
            "checkpoint_sha256": file_sha256(args.checkpoint_path), "k": args.k, "seed": args.seed,
            "binarize": binarize, "dataset": test.name, "n_images": len(test), "precision": args.precision,
            "image_shape": list(test.image_shape), "shard": None if args.shard is None else list(args.shard)})
        done = [i for i in indices if i in record.bounds]
        if done:
            print(f"resuming {args.bounds}: {len(done):,} of {len(indices):,} images already done")
        indices = [i for i in indices if i not in record.bounds]
    shard = "" if args.shard is None else f" (shard {args.shard[0]}/{args.shard[1]}: {len(indices):,} to do)"
    print(f"evaluating {args.checkpoint_path} on {len(test):,} {test.name} test images{shard} ({binarize or 'no'} "
          f"binarization), k={args.k}, seed={args.seed}, {device}, {args.precision}")
    if args.shard is None:
        ev = evaluate_elbo(model, test, seed=args.seed)
        print(f"test negative ELBO: {-ev['elbo']:.2f} nats (reconstruction {-ev['reconstruction']:.2f}, "
              f"KL {ev['kl']:.2f}, active units {ev['active_units']}/{model.latent_dim})")
    bounds = {} if record is None else record.bounds
    _run_bounds(iwae_bounds(model, test, args.k, args.seed, args.batch_size, indices, args.precision), bounds,
                len(indices), args.k, record)
    mine = torch.tensor([bounds[i] for i in (range(len(test)) if args.shard is None else
                                             range(args.shard[0], len(test), args.shard[1]))])
    _check_finite(mine, "the model")
    nll = summarize_bounds(mine, test.image_shape, args.k, args.seed)
    print(f"test NLL (IWAE, k={args.k}): {nll['nll']:.2f} nats (standard error {nll['std_error']:.2f} over "
          f"{nll['n']:,} images{' of this shard' if args.shard else ''}) = {nll['bits_per_dim']:.4f} bits/dim")
    if args.samples:
        _sample_scores(model, args, binary=binarize is not None)
    return 0


def _run_bounds(batches, bounds: dict, total: int, k: int, record, every: float = 10.0) -> None:
    """Collect per-image bounds into ``bounds``, saving ``record`` at least every ``every`` seconds."""
    import time

    from tqdm.auto import tqdm
    start = last = time.monotonic()
    try:
        with tqdm(total=total, desc=f"IWAE k={k}", unit="img", leave=False) as bar:
            for idx, bound in batches:
                bounds.update({int(i): float(b) for i, b in zip(idx, bound)})
                if bar.n == 0 and total > len(idx):
                    _estimate(bar, time.monotonic() - start, len(idx), total, k)
                bar.update(len(idx))
                if record is not None and time.monotonic() - last > every:
                    record.save()
                    last = time.monotonic()
    finally:  # also when interrupted: what was computed is kept, and the next run starts from there
        if record is not None:
            record.save()


def _check_finite(bounds, source: str) -> None:
    """Refuse to report an NLL of NaN or infinity: say which images and where the fault is."""
    import torch
    bad = (~torch.isfinite(bounds)).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"{len(bad):,} of {len(bounds):,} per-image bounds from {source} are not finite (NaN or "
                         f"infinite; first at position {bad[0]}), so there is no NLL to report: evaluate with "
                         f"--precision fp32, and check the checkpoint (does 'generate' give digits?)")


LONG_EVALUATION_SECONDS = 60.0  # evaluations expected to take longer say so after their first batch


def _estimate(bar, seconds: float, done: int, total: int, k: int) -> None:
    """Before a long evaluation goes on: its expected time, from its first batch."""
    if seconds / done * (total - done) > LONG_EVALUATION_SECONDS:
        hours, minutes = divmod(round(seconds / done * total / 60), 60)
        when = f"{hours} h {minutes} min" if hours else f"{max(minutes, 1)} min"
        bar.write(f"estimated time: about {when} for {total:,} images at k={k} ({seconds / done:.2f} s per image on "
                  f"the first {done:,}); --subset N and a smaller --k give a quick estimate of the NLL, --bounds "
                  f"FILE.json lets an interrupted run continue")


def _combine(args) -> int:
    import torch

    from .evaluation import BoundsRecord, summarize_bounds
    try:
        meta, bounds = BoundsRecord.combine(args.combine)
    except ValueError as err:
        raise UsageError(str(err)) from None
    missing = [i for i in range(meta["n_images"]) if i not in bounds]
    if missing:
        raise UsageError(f"the files cover {len(bounds):,} of {meta['n_images']:,} images ({len(missing):,} missing, "
                         f"e.g. image {missing[0]}): run the missing shards with --bounds, then combine again")
    combined = torch.tensor([bounds[i] for i in range(meta["n_images"])])
    _check_finite(combined, "the shard files")
    nll = summarize_bounds(combined, meta["image_shape"], meta["k"], meta["seed"])
    print(f"test NLL (IWAE, k={meta['k']}): {nll['nll']:.2f} nats (standard error {nll['std_error']:.2f} over "
          f"{nll['n']:,} images, {len(args.combine)} files, {meta['precision']}) = {nll['bits_per_dim']:.4f} bits/dim")
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
        them = "it" if kept == 1 else "them"
        return (f"wrote {written} {what}{'' if written == 1 else 's'} to {where}, {states.count('unchanged')} "
                f"unchanged, {kept} kept" + (f" (listed above: nothing was lost; --overwrite replaces {them})"
                                             if kept else ""))

    if args.nbgrader is not None:
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
    results = make_student_versions(args.source, args.out, overwrite=args.overwrite)
    for path, regions, state in results:
        if path.suffix == ".ipynb":
            report(path, state, f"{regions} solution region{'s' if regions != 1 else ''} removed")
        else:  # a twin: only its edits are news
            report(path, state, None)
    print(summary(results, "student file", f"{args.out} (notebooks and their .py twins)"))
    return 0


def _explicit_flags(argv) -> set:
    """The destinations of the options actually typed (not defaulted): parse again with no defaults."""
    parser = build_parser()
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)][0]
    for sub in subparsers.choices.values():
        for action in sub._actions:
            action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def _report(command: str, message: str) -> None:
    print(f"vaelib {command}: error: {_printable(message)}", file=sys.stderr)


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
    from .training import TrainingDiverged

    command = {"train": _train, "generate": _generate, "evaluate": _evaluate, "export": _export,
               "coursework": _coursework}[args.command]
    from .threads import cpu_threads
    try:
        with cpu_threads(getattr(args, "threads", None)):
            return command(args, _explicit_flags(argv)) if args.command == "train" else command(args)
    except (UsageError, CourseworkError) as err:
        _report(args.command, str(err))
        return 2
    except (DataError, CheckpointError, TrainingDiverged, ValueError) as err:
        _report(args.command, str(err))
        return 1
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
