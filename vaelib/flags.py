"""The command line's vocabulary: the flags of ``python -m vaelib ...`` (their names, types, defaults
and help: :func:`build_parser`), and the names of the library's arguments they set.

The flags of ``train`` and ``generate`` are those of the original project's ``train.py`` and
``generate.py``, with the same names and meaning; dash spellings (``--num-epochs``) work too. The
library names its arguments in Python (``epochs=3``, ``likelihood='mse'``); :func:`as_flags` rewrites
a library message in the flags' names (``--num_epochs 3``, ``--likelihood_type mse``) for the command
line. vaelib.cli parses with these, calls the library and prints.
"""
from __future__ import annotations

import argparse
import math
import re

__all__ = ["build_parser", "as_flags", "MODEL_FLAGS", "DATA_FLAGS", "RUN_FLAGS", "OTHER_MODEL_FLAGS"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _add(parser, name, **kwargs):
    """Add ``--name_with_underscores`` and its ``--name-with-dashes`` twin as one option."""
    flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    parser.add_argument(*flags, dest=name, **kwargs)


def _option(parser, name, kind, default, text, metavar=None):
    """An option taking a value of ``kind`` (a type, or a list of choices); its help ends with the default."""
    choices = kind if isinstance(kind, list) else None
    shown = "" if default is None and "(default" in text else f" (default: {default})" if default is not None else ""
    _add(parser, name, type=None if choices or kind is str else kind, choices=choices, default=default,
         metavar=metavar, help=text + shown)


DEBUG = "show the full traceback of an unexpected error (also VAELIB_DEBUG=1)"
DATA_ROOT = "folder holding MNIST/raw/ etc. (default: $VAELIB_DATA, then ./data)"
THREADS = ("CPU threads for torch (default: one per core); on a busy or shared machine 1 can be several times faster, "
           "with identical numbers")
BF16 = ("bf16: bfloat16 autocast, faster on GPUs and CPUs with AMX or AVX512-BF16, slower elsewhere (vaelib warns)")


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
    parser.add_argument("--debug", action="store_true", help=DEBUG)
    sub = parser.add_subparsers(dest="command", metavar="{train,generate,evaluate,export,coursework}", parser_class=_Parser)
    int0, int1, float0, float1 = nonneg_int, positive_int, nonneg_float, positive_float

    t = sub.add_parser("train", help="train a VAE and write checkpoints under runs/RUN_NAME/",
                       description="Train a VAE (on MNIST by default). Writes checkpoint_best.pth (best test "
                                   "ELBO), checkpoint_last.pth, history.csv and samples.png in RUNS_DIR/RUN_NAME.")
    t.add_argument("run_name", help="name of the run: its files go to RUNS_DIR/RUN_NAME")
    for name, kind, default, text in (
            ("runs_dir", str, "runs", "folder that holds the runs"),
            ("batch_size", int1, 128, "images per step"),
            ("learning_rate", float1, 1e-3, "Adam's learning rate"),
            ("num_epochs", int1, 10, "total epochs, counting resumed ones"),
            ("lr_schedule", ["constant", "cosine"], "constant", "cosine: decay the learning rate to 0 by the last "
             "epoch, after --warmup_steps (with a larger batch and rate, the fastest recipe in benchmarks/RESULTS.md)"),
            ("warmup_steps", int0, 0, "raise the learning rate linearly from 0 over this many steps first"),
            ("likelihood_type", LIKELIHOOD_CHOICES, "bce", "decoder likelihood: bce/bernoulli, mse/gaussian (fixed "
             "sigma), learned_gaussian (sigma-VAE), continuous_bernoulli, pixelcnn (binary pixels, each conditioned "
             "on those above and to its left: slower sampling, better likelihood)"),
            ("sigma", float1, None, "the Gaussian likelihood's standard deviation (default: sqrt(1/2): mse is the "
             "summed MSE)"),
            ("pixelcnn_layers", int1, 1, "masked layers of the pixelcnn decoder (7x7, then gated 3x3): deeper is better"),
            ("hidden_dim", int1, 20, "latent size D"),
            ("arch", ["conv", "mlp"], "conv", "encoder/decoder architecture"),
            ("hidden_units", int1, None, "width of the dense hidden layer (default: 400 for mlp, 256 for conv)"),
            ("channels", int1, 32, "channels of the first convolution, conv only"),
            ("posterior", ["gaussian", "iaf"], "gaussian", "q(z|x): a diagonal Gaussian, or one pushed through an "
             "inverse autoregressive flow"),
            ("iaf_steps", int1, 2, "with --posterior iaf: flow steps"),
            ("iaf_hidden", int1, 320, "with --posterior iaf: width of each step's masked network and of the context"),
            ("prior", ["standard", "mog", "vamp"], "standard", "p(z): N(0, I), a learned mixture of Gaussians or "
             "the VampPrior"),
            ("prior_components", int1, None, "components of the mog prior (default 10) or pseudo-inputs of the "
             "VampPrior (default 500)"),
            ("free_bits", float0, 0.0, "count each latent dimension's KL as at least this many nats (Kingma et al. "
             "2016): keeps a strong decoder from ignoring z"),
            ("dataset", dataset_name, "mnist", "mnist, fashion_mnist, kmnist, cifar10, cifar100, svhn, usps or stl10 "
             "(downloaded when online; other images: pass a tensor to vaelib.fit)"),
            ("image_size", int1, None, "resize the images to IMAGE_SIZE x IMAGE_SIZE (default: as stored)"),
            ("beta", float0, 1.0, "weight on the KL term"),
            ("beta_max", float0, None, "with --beta_annealing_period: beta grows from --beta up to beta_max"),
            ("beta_annealing_period", int0, 0, "epochs of KL annealing (0: none); without --beta_max, beta grows from "
             "0 to --beta"),
            ("beta_schedule", ["constant", "linear", "cyclical", "sigmoid"], None, "shape of the annealing "
             "(default: linear with --beta_annealing_period, else constant)"),
            ("binarize", ["auto", "none", "dynamic", "static"], "auto", "binarize the images: auto is dynamic for "
             "bce/bernoulli/pixelcnn and none otherwise"),
            ("subset", int1, None, "quick runs: train on the first N training images, and test on the first N test "
             "images (all of them when N exceeds the test set); 'vaelib evaluate' scores the whole test set"),
            ("seed", int0, 0, "random seed"),
            ("device", device_name, "auto", "cuda, mps, cpu or auto"),
            ("clip_grad", float1, None, "clip the gradient norm to this value (each epoch counts the clipped steps)"),
            ("skip_grad", float1, None, "skip the update of a step whose gradient norm exceeds this value or is not "
             "finite (each epoch counts them; an epoch that skips every step stops the run)"),
            ("precision", ["fp32", "bf16"], "fp32", BF16),
            ("iwae_k", int1, 1, "train on the importance-weighted bound with this many samples (IWAE; 1: the ELBO)"),
            ("initial_checkpoint_path", str, None, "start from this checkpoint's weights (fine-tuning)"),
            ("data_root", str, None, DATA_ROOT),
            ("collapse_threshold", float1, 0.01, "nats per latent dimension below which the posterior counts as "
             "collapsed"),
            ("threads", int1, None, THREADS),
            ("model", ["vae", "hierarchical", "vqvae", "code_prior", "latent_ddpm"], "vae", "what to train: a VAE, a "
             "hierarchical VAE "
             "with top-down inference (vaelib.hierarchical; --latent_dims, --inference, --hidden_units, --channels, KL "
             "warm-up over --beta_annealing_period epochs, --free_bits per layer), a VQ-VAE (vaelib.vqvae; "
             "--quantizer, --num_codes, --code_dim, --commitment, --levels, --channels; grey images), a PixelCNN "
             "prior over a trained VQ-VAE's codes (vaelib.code_prior; --codes_of, --pixelcnn_layers, --hidden_units), "
             "or a "
             "DDPM over a trained VAE's latents (vaelib.latent_diffusion; --latents_of, --diffusion_steps, "
             "--hidden_units, --ema_decay)"),
            ("codes_of", str, None, "--model code_prior: the checkpoint of the VQ-VAE whose codes of its own data set "
             "the prior learns"),
            ("latents_of", str, None, "--model latent_ddpm: the checkpoint of the VAE whose latents (z ~ q(z|x) of its "
             "own data set) the DDPM learns"),
            ("diffusion_steps", int1, None, "--model latent_ddpm: the number T of noise levels (default: 200)"),
            ("ema_decay", float1, None, "--model latent_ddpm: decay of the weights' moving average that samples "
             "(default: 0.999)"),
            ("inference", ["top_down", "bottom_up"], None, "--model hierarchical: how q(z|x) runs through the layers "
             "(default: top_down)"),
            ("quantizer", ["vq", "ema", "ema_restart", "fsq"], None, "--model vqvae: codebook loss, EMA updates, EMA "
             "with dead-code restart, or finite scalar quantization (default: ema_restart)"),
            ("num_codes", int1, None, "--model vqvae: codebook size K (default: 256)"),
            ("code_dim", int1, None, "--model vqvae: size of each code vector (default: 16)"),
            ("commitment", float0, None, "--model vqvae: weight of the commitment loss (default: 0.25)")):
        _option(t, name, kind, default, text)
    _add(t, "latent_dims", type=int1, nargs="+", default=None, metavar="D",
         help="--model hierarchical: each stochastic layer's size, bottom to top (default: 32 16)")
    _add(t, "levels", type=int1, nargs="+", default=None, metavar="L",
         help="--quantizer fsq: the levels of each channel (default: 8 6 5, 240 codes)")
    for name, text in (("conditional", "condition encoder and decoder on the label (a CVAE)"),
                       ("compile", "torch.compile the ELBO: slower first epoch, faster after"),
                       ("resume_if_exists", "continue RUNS_DIR/RUN_NAME/checkpoint_last.pth if it exists"),
                       ("detect_posterior_collapse", "warn and save checkpoint_posterior_collapse.pth when the KL per "
                                                     "latent dimension collapses"),
                       ("tensorboard", "also log scalars and samples for TensorBoard"), ("quiet", "no progress bar")):
        _add(t, name, action="store_true", help=text)

    g = sub.add_parser("generate", help="sample new digits from a checkpoint, or print its --info_only",
                       description="Write a grid of new digits sampled from a trained VAE.")
    _add(g, "checkpoint_path", required=True, help="a checkpoint written by 'vaelib train'")
    for name, kind, default, text in (
            ("num_samples", int1, 64, "number of digits"), ("output_path", str, "samples.png", "PNG to write"),
            ("grid_size", int1, 8, "images per row of the square grid"), ("seed", int0, 0, "random seed"),
            ("temperature", float1, 1.0, "scale of the prior samples: below 1 gives cleaner, less varied digits"),
            ("digit", int0, None, "for a conditional model: the digit (class) to draw (default: rows of 0 to 9)"),
            ("prior", str, None, "for a VQ-VAE: the checkpoint of a prior over its codes ('train --model code_prior'); "
             "for a VAE: a DDPM over its latents ('train --model latent_ddpm'); its samples are decoded"),
            ("device", device_name, "cpu", "device to sample on")):
        _option(g, name, kind, default, text, metavar="LABEL" if name == "digit" else None)
    _add(g, "info_only", action="store_true", help="print what the checkpoint holds and generate nothing")

    e = sub.add_parser("evaluate", help="test ELBO and importance-weighted NLL of a checkpoint",
                       description="Evaluate a checkpoint on the test set of the data it was trained on: negative "
                                   "ELBO and the IWAE estimate of the negative log-likelihood (nats and bits/dim).")
    for name, kind, default, text in (
            ("checkpoint_path", str, None, "a checkpoint written by 'vaelib train' (required unless --combine)"),
            ("k", int1, 5000, "importance samples per image"),
            ("binarize", ["dynamic", "static", "none"], None, "test-set binarization (default: as in training; "
             "dynamic for binary likelihoods, the protocol of Burda et al. 2015)"),
            ("dataset", dataset_name, None, "test data (default: the checkpoint's)"),
            ("bounds", str, None, "keep each image's bound in this file as it is computed: the same command "
             "continues where a stopped run stopped"),
            ("shard", shard_spec, None, "evaluate only the images whose index is I mod N (with --bounds: run the N "
             "shards anywhere, then --combine their files)"),
            ("precision", ["fp32", "bf16"], "fp32", BF16 + "; benchmarks/RESULTS.md shows how little it moves the NLL"),
            ("samples", int1, None, "also score N samples with the MNIST classifier (vaelib.course.sample_quality): Frechet "
             "distance, confidence, label entropy; 10000 recommended, at least 2000 (MNIST models only)"),
            ("prior", str, None, "for a VQ-VAE: also score the checkpoint of a prior over its codes (bits per test "
             "image; with --samples, the FD of its decoded samples)"),
            ("seed", int0, 0, "random seed"), ("subset", int1, None, "evaluate on the first N test images only"),
            ("batch_size", int1, None, "images per IWAE batch (default: automatic)"),
            ("device", device_name, "auto", "cuda, mps, cpu or auto"), ("data_root", str, None, DATA_ROOT),
            ("threads", int1, None, THREADS)):
        _option(e, name, kind, default, text, metavar={"bounds": "FILE.json", "shard": "I/N"}.get(name))
    _add(e, "combine", nargs="+", default=None, metavar="FILE.json",
         help="combine the --bounds files of the shards of one evaluation and print its NLL")

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
        sub_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG)
    return parser



# train's flags and the names of vaelib.train_run.train_vae's arguments they set: VAEConfig fields, data, RunConfig
MODEL_FLAGS = {"arch": "arch", "hidden_dim": "latent_dim", "likelihood_type": "likelihood", "hidden_units": "hidden",
               "channels": "channels", "sigma": "sigma", "conditional": "conditional", "posterior": "posterior_kind",
               "iaf_steps": "iaf_steps", "iaf_hidden": "iaf_hidden", "prior": "prior_kind",
               "prior_components": "prior_components", "pixelcnn_layers": "pixelcnn_layers"}
DATA_FLAGS = {"dataset": "dataset", "image_size": "image_size", "binarize": "binarize", "subset": "subset",
              "data_root": "data_root"}
RUN_FLAGS = {"num_epochs": "epochs", "learning_rate": "lr", "batch_size": "batch_size", "seed": "seed",
             "clip_grad": "clip_grad", "skip_grad": "skip_grad", "precision": "precision", "lr_schedule": "lr_schedule",
             "warmup_steps": "warmup_steps"}
FLAG_OF = {name: flag for table in (MODEL_FLAGS, DATA_FLAGS, RUN_FLAGS) for flag, name in table.items()}
# --model hierarchical / vqvae: their constructors' arguments, and the flags that apply to each
OTHER_MODEL_FLAGS = {"hierarchical": {"latent_dims": "latent_dims", "inference": "inference",
                                      "hidden_units": "hidden", "channels": "channels"},
                     "vqvae": {"quantizer": "quantizer", "num_codes": "num_codes", "code_dim": "code_dim",
                               "commitment": "commitment", "levels": "levels", "channels": "channels"},
                     "code_prior": {"pixelcnn_layers": "layers", "hidden_units": "features"},
                     "latent_ddpm": {"diffusion_steps": "steps", "hidden_units": "hidden", "ema_decay": "ema_decay"}}
FLAG_OF.update(codes_of="codes_of", latents_of="latents_of", ema_decay="ema_decay",
               start_from="initial_checkpoint_path", resume_if_exists="resume_if_exists",
               overwrite="overwrite", out_dir="out", course_dir="nbgrader", digit="digit", temperature="temperature")


def as_flags(message: str) -> str:
    """A library message naming arguments (``likelihood='mse'``, ``epochs=3``, ``sigma=``) in the flags'
    names (``--likelihood_type mse``, ``--num_epochs 3``, ``--sigma``)."""
    def flag(m):
        value = m[2] if m[2] is not None else m[3]
        return f"--{FLAG_OF[m[1]]}" + (f" {value}" if value not in ("", "True") else "")
    names = "|".join(sorted(FLAG_OF, key=len, reverse=True))
    return re.sub(rf"\b({names})=(?:'([^']*)'|([^\s,;:)]*))", flag, message)
