"""The VAE: an encoder q(z|x), a decoder p(x|z), a prior p(z) and a likelihood, in one module.

    model = build_vae("conv", latent_dim=20, likelihood="bernoulli")        # MNIST-sized by default
    model = build_vae("conv", latent_dim=16, likelihood="gaussian", image_shape=(3, 32, 32))
    model = VAE(my_encoder, my_decoder, "bernoulli", latent_dim=8)          # your own networks

    terms = model.elbo_terms(x)     # vaelib.bounds.ELBOTerms: per-example reconstruction, KL, ELBO
    terms.loss.backward()           # minus the ELBO, summed over pixels, averaged over the batch
    images = model.sample(64)       # (64, C, H, W) in [0, 1]

``build_vae`` records its arguments in a typed :class:`VAEConfig`, ``model.config``; a checkpoint
stores it, and ``build_vae(config=...)`` rebuilds the same architecture (vaelib.checkpoints does
exactly this). A hand-built ``VAE`` has ``config = None``: its checkpoint holds the weights, which
``vaelib.load(path, model=...)`` puts back into the same architecture built by your code.

Conditioning on labels (a conditional VAE, ``num_classes > 0``) is handled here and only here:
every method takes ``y`` (an int, a sequence or a tensor of labels ``(B,)``), :meth:`VAE.labels`
checks and expands it (vaelib.bounds calls it too), and an unconditional model ignores it.

Modes: the methods that show or measure a model (``sample``, ``reconstruct``, ``decode_mean``,
``posterior_mean``, and vaelib.evaluation) run it in eval mode inside :func:`evaluating`, which gives
every submodule back the mode it had: a BatchNorm or Dropout layer behaves as at test time, and
sampling never moves BatchNorm's running statistics. Only the ELBO (training) runs in the mode found.

Your own networks are checked by :func:`check_networks` (``vaelib.fit`` calls it before the first
step): one forward pass of two images, refusing sizes that do not fit, in one line naming the fix.
"""
from __future__ import annotations

import dataclasses
import functools
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from . import bounds
from .likelihoods import canonical_name, make_likelihood
from .networks import MNIST_SHAPE, ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, _shape
from .posteriors import POSTERIORS, DiagonalGaussian, IAFPosterior
from .priors import PRIORS, MixtureOfGaussiansPrior, StandardNormalPrior, VampPrior
from .deprecation import deprecated
from .validation import image_batch, positive_number, user_stacklevel, whole_number

__all__ = ["VAE", "VAEConfig", "build_vae", "ARCHITECTURES", "check_networks", "evaluating", "built_by_vaelib"]

ARCHITECTURES = ("mlp", "conv")


@dataclass(frozen=True)
class VAEConfig:
    """Everything that :func:`build_vae` needs to build one of vaelib's architectures.

    ``posterior_kind`` and ``prior_kind`` name the kinds of q(z|x) and p(z) (a VAE's ``posterior``
    and ``prior`` are the modules). ``config["arch"]`` and ``config.get("arch")`` (the dict access of
    vaelib 0.1) are deprecated: use ``config.arch`` or ``getattr(config, name)``; so are the fields'
    0.2 names ``posterior=`` and ``prior=``.
    """

    arch: str = "conv"
    latent_dim: int = 20
    likelihood: str = "bernoulli"
    hidden: int | None = None  # None: 400 for mlp, 256 for conv (build_vae fills it in)
    channels: int = 32
    sigma: float | None = None
    num_classes: int = 0
    image_shape: tuple = MNIST_SHAPE
    posterior_kind: str = "gaussian"  # or "iaf": a diagonal Gaussian pushed through iaf_steps IAF steps
    iaf_steps: int = 2
    iaf_hidden: int = 320
    prior_kind: str = "standard"  # or "mog" (a learned mixture of Gaussians), "vamp" (the VampPrior)
    prior_components: int = 0    # 0: 10 for mog, 500 for vamp (build_vae fills it in)
    pixelcnn_layers: int = 1     # the pixelcnn likelihood's masked layers: 1 window, then gated layers

    def __getitem__(self, key: str):
        deprecated("VAEConfig[name]", "VAEConfig.name, or getattr(config, name)")
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    posterior = property(lambda self: self._old_field("posterior"))
    prior = property(lambda self: self._old_field("prior"))

    def _old_field(self, old: str):
        deprecated(f"VAEConfig.{old}", f"VAEConfig.{OLD_FIELDS[old]}")
        return getattr(self, OLD_FIELDS[old])

    def get(self, key: str, default=None):
        deprecated("VAEConfig.get(name)", "getattr(config, name, default)")
        return getattr(self, key, default)

    def to_dict(self) -> dict:
        """Plain types only (a checkpoint is loaded with ``weights_only=True``)."""
        values = dataclasses.asdict(self)
        values["image_shape"] = list(self.image_shape)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "VAEConfig":
        """From a checkpoint's dict; a version-1 checkpoint has no ``image_shape``: MNIST's."""
        known = {f.name for f in dataclasses.fields(cls)} | set(OLD_FIELDS)
        unknown = sorted(set(values) - known)
        known -= set(OLD_FIELDS)
        if unknown:
            raise ValueError(f"unknown config keys {', '.join(unknown)}: a VAEConfig has {', '.join(sorted(known))} "
                             f"(a checkpoint written by a newer vaelib? upgrade vaelib to load it)")
        values = {OLD_FIELDS.get(k, k): v for k, v in values.items()}  # a checkpoint of vaelib 0.2
        values["image_shape"] = tuple(values.get("image_shape") or MNIST_SHAPE)
        return cls(**values)


# the fields' names in vaelib 0.2 (a name that also meant the VAE's module): accepted with a warning
OLD_FIELDS = {"posterior": "posterior_kind", "prior": "prior_kind"}
_dataclass_init = VAEConfig.__init__


def current_fields(fields: dict, where: str = "VAEConfig({}=...)") -> dict:
    """``fields`` (VAEConfig fields by name) with vaelib 0.2's names replaced by the current ones, each
    with a warning that shows the use (``where``, formatted with the old and the new name)."""
    for old, new in OLD_FIELDS.items():
        if old in fields:
            deprecated(where.format(old), where.format(new), stacklevel=4)  # at the caller of VAEConfig/train_vae
            fields = {**{k: v for k, v in fields.items() if k != old}, new: fields[old]}
    return fields


@functools.wraps(_dataclass_init)
def _init(self, *args, **kwargs):
    _dataclass_init(self, *args, **current_fields(kwargs))


VAEConfig.__init__ = _init


@contextmanager
def evaluating(model: nn.Module):
    """Run ``model`` in eval mode inside the block, then give each submodule back its own mode.

    Each submodule's mode is restored, not the whole model's: a user who froze one BatchNorm in eval
    mode inside a model in train mode finds it so afterwards (``model.train(was_training)`` would not).
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def _evaluated(method):
    """A VAE method run without gradients, in eval mode (:func:`evaluating`)."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with torch.no_grad(), evaluating(self):
            return method(self, *args, **kwargs)
    return run


class VAE(nn.Module):
    """A variational autoencoder.

    Args:
        encoder: module ``x (B, C, H, W) -> (mu, logvar)``, each ``(B, D)`` (and ``y=`` if conditional).
        decoder: module ``z (B, D) -> params`` as the likelihood reads them, e.g. ``(B, C, H, W)``.
        likelihood: a name (``"bernoulli"``, ``"gaussian"``, ...; see vaelib.likelihoods) or a
            likelihood module.
        latent_dim: D (default: the encoder's ``latent_dim`` attribute, if it has one).
        prior: module returning p(z); N(0, I) by default (vaelib.priors).
        num_classes: > 0 for a conditional VAE, whose methods then take labels ``y``.
        image_shape: ``(C, H, W)`` of the images, if known (default: the encoder's ``image_shape``
            attribute; ``vaelib.fit`` fills it in from the data otherwise).
        posterior: module ``(mu, logvar, context) -> q(z|x)`` (vaelib.posteriors.IAFPosterior); by
            default q is the diagonal Gaussian N(mu, diag(exp(logvar))).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, likelihood="bernoulli", latent_dim: int | None = None,
                 prior: nn.Module | None = None, num_classes: int = 0, image_shape=None,
                 posterior: nn.Module | None = None):
        super().__init__()
        if latent_dim is None:
            latent_dim = getattr(encoder, "latent_dim", None)
        if latent_dim is None:
            raise ValueError("pass latent_dim=D: the size of z that the encoder outputs and the decoder takes")
        self.latent_dim = whole_number("latent_dim", latent_dim)
        self.num_classes = whole_number("num_classes", num_classes, 0)
        self.encoder, self.decoder = encoder, decoder
        self.likelihood = make_likelihood(likelihood) if isinstance(likelihood, str) else likelihood
        self.prior = prior if prior is not None else StandardNormalPrior(self.latent_dim)
        self.posterior = posterior
        image_shape = image_shape if image_shape is not None else getattr(encoder, "image_shape", None)
        self.image_shape = None if image_shape is None else _shape(image_shape)
        self.config: VAEConfig | None = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # --- conditioning, in one place ---------------------------------------------------------------
    def labels(self, y, n: int) -> torch.Tensor | None:
        """``y`` as ``n`` labels on the model's device (``None`` for an unconditional model).

        ``y`` may be one int (repeated), a 1-element or ``(n,)`` tensor or sequence. Every function of
        vaelib that takes labels passes them through here.
        """
        if not self.num_classes:
            return None
        if y is None:
            raise ValueError(f"this VAE is conditional on {self.num_classes} classes: pass the labels as y=")
        y = torch.as_tensor(y, device=self.device).long()
        if y.dim() == 0 or y.numel() == 1:
            y = y.reshape(1).expand(n)
        if y.shape != (n,) or (y.numel() and (y.min() < 0 or y.max() >= self.num_classes)):
            raise ValueError(f"y must hold {n} labels in 0..{self.num_classes - 1}, got shape {tuple(y.shape)}")
        return y

    def _networks(self, y, n: int) -> dict:
        return {} if not self.num_classes else {"y": self.labels(y, n)}

    # --- the model ----------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, y=None):
        """q(z|x): a distribution with batch shape ``(B,)`` and event shape ``(D,)`` (a diagonal
        Gaussian, or the flow of ``self.posterior``)."""
        out = self.encoder(x, **self._networks(y, len(x)))
        # Under bf16 autocast the encoder's outputs are bfloat16; z and the KL are computed in float32.
        mu, logvar = out[0].float(), out[1].float()
        if self.posterior is None:
            return DiagonalGaussian(mu, logvar)
        return self.posterior(mu, logvar, out[2] if len(out) > 2 else None)

    def decode(self, z: torch.Tensor, y=None):
        """p(x|z): a distribution with batch shape ``(B,)`` over images ``(C, H, W)``."""
        return self.likelihood(self.decoder(z, **self._networks(y, len(z))))

    def elbo_terms(self, x: torch.Tensor, beta: float = 1.0, y=None) -> bounds.ELBOTerms:
        """One-sample ELBO and its parts, per example (see vaelib.bounds)."""
        return bounds.elbo_terms(self, x, beta, y=y)  # which checks the labels

    def elbo(self, x: torch.Tensor, beta: float = 1.0, y=None) -> bounds.ELBOTerms:
        """Deprecated (vaelib 0.1's name): :meth:`elbo_terms`."""
        deprecated("VAE.elbo(x)", "VAE.elbo_terms(x)")
        return self.elbo_terms(x, beta, y)

    def forward(self, x, beta: float = 1.0, y=None) -> bounds.ELBOTerms:
        return self.elbo_terms(x, beta, y)

    @_evaluated
    def posterior_mean(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """E_q[z|x], ``(B, D)``: where each image lands in the latent space (in eval mode)."""
        return self.encode(x, y).mean

    @_evaluated
    def decode_mean(self, z: torch.Tensor, y=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """The image to show for each latent: the likelihood's mean, ``(B, C, H, W)`` in [0, 1] (in eval mode).

        (For the autoregressive ``pixelcnn`` likelihood: each pixel's probability along one image drawn
        pixel by pixel, so it is random; ``generator`` makes it reproducible.)
        """
        return self.likelihood.mean(self.decoder(z, **self._networks(y, len(z))), generator)

    @_evaluated
    def sample(self, n: int, temperature: float = 1.0, y=None, generator: torch.Generator | None = None,
               draw: bool = False) -> torch.Tensor:
        """``n`` new images ``(n, C, H, W)``: z ~ N(0, temperature^2 I) from the prior, decoded to their
        mean image (``draw=True``: drawn from p(x|z), 0/1 pixels for a binary likelihood), in eval mode.

        A temperature below 1 trades variety for cleaner digits. The prior's own ``sample`` is used
        when it is not the standard normal.
        """
        n = whole_number("n", n)
        temperature = positive_number("temperature", temperature, allow_zero=True)
        if isinstance(self.prior, StandardNormalPrior):
            z = torch.randn(n, self.latent_dim, device=self.device, generator=generator) * temperature
        elif temperature != 1:
            raise ValueError("temperature scales samples of N(0, I); this model's prior is learned: use temperature=1")
        else:
            z = self.prior.sample(n, generator)
        if draw:
            return self.likelihood.draw(self.decoder(z, **self._networks(y, n)), generator)
        return self.decode_mean(z, y, generator)

    @_evaluated
    def reconstruct(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """Encode to the posterior mean and decode it: ``(B, C, H, W)`` in [0, 1] (in eval mode).

        ``x``: images ``(B, C, H, W)`` of the model's ``image_shape`` (else a ``ValueError`` naming both shapes).
        """
        image_batch("x", x, self.image_shape)
        return self.decode_mean(self.posterior_mean(x, y), y)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# The likelihoods that put the decoder's output through a sigmoid themselves: the Bernoullis read logits,
# the Gaussians a mean before its sigmoid. (pixelcnn reads a feature map, which a sigmoid only narrows.)
_SIGMOID_INSIDE = ("bernoulli", "continuous_bernoulli", "gaussian", "learned_gaussian")


def check_networks(model: VAE, x: torch.Tensor, y=None) -> None:
    """Run a VAE's encoder and decoder once on a small batch of images ``x`` ``(B, C, H, W)`` in [0, 1]
    (two are enough; ``y``: their labels, for a conditional model) and refuse, with one ``ValueError``
    line that names the network and the fix, outputs the rest of vaelib cannot read:

    * the encoder must return ``(mu, logvar)``, each ``(B, latent_dim)`` (a flow posterior reads a
      third output, its context, which is not checked);
    * the decoder must return ``(B, C_out, H, W)``: ``C_out = model.likelihood.decoder_channels(C)``
      numbers per pixel (C for the factorized likelihoods, a feature map for pixelcnn). A flat output
      ``(B, C_out * H * W)``, as a last ``nn.Linear`` gives it, is refused: end the decoder's
      ``forward`` with ``.view(-1, C_out, H, W)``.

    Warns (``UserWarning``) when the likelihood applies a sigmoid itself (bernoulli,
    continuous_bernoulli, gaussian, learned_gaussian) and every decoder output already lies in [0, 1],
    for z ~ N(0, I) and for 100 z: a ``nn.Sigmoid`` at the decoder's end squashes twice, so no pixel
    could be black or white.

    The pass runs without gradients, in eval mode (every submodule's mode restored), on z drawn from a
    local generator, with the global random state saved and restored: weights, BatchNorm statistics
    and the random numbers of what follows stay as they were. ``vaelib.fit`` calls it before the first
    step; a model that is not a :class:`VAE` is not checked.
    """
    if not isinstance(model, VAE):
        return
    device, n, D = model.device, len(x), model.latent_dim
    x = x.to(device)
    channels, height, width = x.shape[1:]
    encoder, decoder = type(model.encoder).__name__, type(model.decoder).__name__
    with torch.no_grad(), evaluating(model), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        out = model.encoder(x, **model._networks(y, n))
        tensor = isinstance(out, torch.Tensor)
        if tensor or not isinstance(out, (tuple, list)) or len(out) < 2:
            got = f"a tensor of shape {tuple(out.shape)}" if tensor else f"a {type(out).__name__}"
            hint = ", e.g. return h.chunk(2, dim=1)" if tensor and out.shape[-1] == 2 * D else ""
            raise ValueError(f"encoder {encoder} returned {got}: it must return (mu, logvar), each of shape "
                             f"(B, latent_dim) = {(n, D)}{hint}")
        for what, value in (("mu", out[0]), ("logvar", out[1])):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            if shape != (n, D):
                fix = (f"build the VAE with latent_dim={shape[1]}, or make {encoder} output {D} numbers per image"
                       if isinstance(shape, tuple) and len(shape) == 2 and shape[0] == n else
                       f"make {encoder} return one row of {D} numbers per image")
                raise ValueError(f"encoder {encoder} gave {what} of shape {shape} for {n} images and the VAE has "
                                 f"latent_dim={D} (expected {(n, D)}): {fix}")
        z = torch.randn(n, D, device=device, generator=torch.Generator(device=device).manual_seed(0))
        params = model.decoder(z, **model._networks(y, n))
        likelihood = getattr(model.likelihood, "name", type(model.likelihood).__name__)
        if hasattr(model.likelihood, "decoder_channels"):
            c_out = model.likelihood.decoder_channels(channels)
            expected = (n, c_out, height, width)
            shape = tuple(params.shape) if isinstance(params, torch.Tensor) else None
            if shape != expected:
                fix = (f"end its forward with .view(-1, {c_out}, {height}, {width})"
                       if shape == (n, c_out * height * width) else
                       f"make it output {c_out} number{'s' * (c_out > 1)} per pixel, (B, {c_out}, {height}, {width})")
                got = f"shape {shape}" if shape is not None else f"a {type(params).__name__}"
                raise ValueError(f"decoder {decoder} gave {got}; the {likelihood} likelihood reads {expected} for "
                                 f"images {(channels, height, width)}: {fix}")
        # Far out in latent space too: near z ~ N(0, I) an untrained decoder's outputs can all be small positive
        # numbers (vaelib's conv decoder at 64x64, often), never at 100 z; a sigmoid's stay in [0, 1] everywhere.
        if likelihood in _SIGMOID_INSIDE and _in_unit_interval(params) and \
                _in_unit_interval(model.decoder(100 * z, **model._networks(y, n))):
            warnings.warn(f"a Sigmoid at the end of {decoder}? the {likelihood} likelihood applies it itself: "
                          f"remove it", stacklevel=user_stacklevel())


def _in_unit_interval(params) -> bool:
    return isinstance(params, torch.Tensor) and params.numel() > 0 and 0 <= params.min() and params.max() <= 1


def built_by_vaelib(model) -> bool:
    """Whether ``model`` is one of vaelib's own architectures (made by :func:`build_vae`): vaelib may
    change their memory layout for speed, never that of networks it did not build."""
    return isinstance(model, VAE) and model.config is not None


def build_vae(arch: str = "conv", latent_dim: int = 20, likelihood: str = "bernoulli",
              hidden: int | None = None, channels: int = 32, sigma: float | None = None,
              num_classes: int = 0, image_shape=MNIST_SHAPE, *, config: VAEConfig | None = None) -> VAE:
    """Build one of vaelib's VAEs from plain arguments (or a :class:`VAEConfig`); ``model.config`` records them.

    Args:
        arch: ``"mlp"`` (C*H*W-hidden-D, the pytorch/examples model) or ``"conv"``
            (see vaelib.networks.conv_stages for the image sizes it takes).
        latent_dim: D, the size of z.
        likelihood: ``"bernoulli"``/``"bce"``, ``"continuous_bernoulli"``, ``"gaussian"``/``"mse"``,
            ``"learned_gaussian"``, ``"pixelcnn"`` (autoregressive over pixels, one channel only).
        hidden: width of the dense layer (default 400 for mlp, 256 for conv).
        channels: width of the first convolution (conv only).
        sigma: the Gaussian likelihoods' fixed (or initial) standard deviation.
        num_classes: > 0 builds a conditional VAE.
        image_shape: ``(C, H, W)`` of the images, MNIST's ``(1, 28, 28)`` by default.
        config: a :class:`VAEConfig` instead of the arguments; its other fields choose the posterior
            (``"gaussian"``, or ``"iaf"`` with ``iaf_steps`` steps of width ``iaf_hidden``) and the
            prior (``"standard"``, ``"mog"`` or ``"vamp"`` with ``prior_components`` components), and
            for ``"pixelcnn"`` its depth, ``pixelcnn_layers`` (1: one masked window; more: gated layers).
    """
    if config is None:
        config = VAEConfig(arch, latent_dim, likelihood, hidden, channels, sigma, num_classes, tuple(image_shape))
    if config.arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {config.arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    latent_dim = whole_number("latent_dim", config.latent_dim)
    channels = whole_number("channels", config.channels)
    num_classes = whole_number("num_classes", config.num_classes, 0)
    hidden = whole_number("hidden", config.hidden) if config.hidden is not None else (400 if config.arch == "mlp" else 256)
    sigma = positive_number("sigma", config.sigma) if config.sigma is not None else None
    shape = _shape(config.image_shape)
    name = canonical_name(config.likelihood)
    pixelcnn_layers = whole_number("pixelcnn_layers", config.pixelcnn_layers)
    if sigma is not None and name not in ("gaussian", "learned_gaussian"):
        raise ValueError(f"sigma={sigma} is the Gaussian likelihoods' standard deviation, and the likelihood is "
                         f"{name!r}: use likelihood='gaussian' (or 'learned_gaussian'), or drop sigma")
    if config.arch == "mlp" and channels != VAEConfig.channels:
        raise ValueError(f"channels={channels} sets the width of the conv networks' first convolution, and arch is "
                         f"'mlp': use arch='conv', or set the MLP's width with hidden=")
    if pixelcnn_layers != 1 and name != "pixelcnn":
        raise ValueError(f"pixelcnn_layers={pixelcnn_layers} shapes the pixelcnn likelihood, not {name!r}: "
                         f"use likelihood='pixelcnn' or leave it at 1")
    lik = make_likelihood(name, **({"sigma": sigma} if sigma is not None and name in ("gaussian", "learned_gaussian") else
                                   {"layers": pixelcnn_layers} if name == "pixelcnn" else {}))
    out = lik.decoder_channels(shape[0])
    if config.posterior_kind not in POSTERIORS:
        raise ValueError(f"posterior_kind={config.posterior_kind!r} is unknown: choose one of {', '.join(POSTERIORS)}")
    if config.prior_kind not in PRIORS:
        raise ValueError(f"prior_kind={config.prior_kind!r} is unknown: choose one of {', '.join(PRIORS)}")
    iaf = config.posterior_kind == "iaf"
    iaf_steps = whole_number("iaf_steps", config.iaf_steps)
    iaf_hidden = whole_number("iaf_hidden", config.iaf_hidden)
    context = iaf_hidden if iaf else 0
    if config.arch == "mlp":
        encoder = MLPEncoder(latent_dim, hidden, num_classes, shape, context_dim=context)
        decoder = MLPDecoder(latent_dim, hidden, num_classes, out_channels=out, image_shape=shape)
    else:
        encoder = ConvEncoder(latent_dim, channels, hidden, num_classes, shape, context_dim=context)
        decoder = ConvDecoder(latent_dim, channels, hidden, num_classes, out_channels=out, image_shape=shape)
    components = whole_number("prior_components", config.prior_components, 0) or {"mog": 10, "vamp": 500}.get(config.prior_kind, 0)
    if config.prior_kind == "mog":
        prior = MixtureOfGaussiansPrior(latent_dim, components)
    elif config.prior_kind == "vamp":
        if num_classes:
            raise ValueError("the VampPrior encodes pseudo-images without labels: it does not combine with a "
                             "conditional model; use the mog or standard prior")
        prior = VampPrior(latent_dim, encoder, shape, components)
    else:
        prior = None
    posterior = IAFPosterior(latent_dim, iaf_steps, iaf_hidden, context) if iaf else None
    model = VAE(encoder, decoder, lik, latent_dim, prior, num_classes=num_classes, image_shape=shape, posterior=posterior)
    model.config = dataclasses.replace(config, latent_dim=latent_dim, likelihood=name, hidden=hidden, channels=channels,
                                       sigma=sigma, num_classes=num_classes, image_shape=shape,
                                       prior_components=components)
    return model
