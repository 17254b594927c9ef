"""An autoregressive decoder likelihood: each pixel conditioned on z *and* on the pixels before it.

Every other likelihood in vaelib makes the pixels independent given z, so everything a digit's
strokes share (a pixel is probably on if its left and upper neighbours are) has to pass through z.
Here the decoder network's output is a feature map ``params`` ``(B, F, H, W)`` computed from z,
and pixel i, in raster order (row by row, left to right), has

    p(x_i | x_<i, z) = Bernoulli(sigmoid(f(params_i, the 7x7 window of pixels above and to the left of i)))

so log p(x|z) = sum_i log p(x_i | x_<i, z) is still exact and still one forward pass on a given x
("teacher forcing"): ELBO, IWAE and ``vaelib evaluate`` work unchanged. This is a one-layer PixelCNN
(van den Oord et al. 2016) under a VAE: the PixelVAE of Gulrajani et al. (2017), at its smallest.
Drawing an image needs H*W steps (784 for MNIST), one pixel at a time (``sample``). It models
one-channel binary images of any height and width.

The window is a *masked* convolution: its weights at the centre pixel and at every pixel after it in
raster order are held at zero, so pixel i never sees itself or the future.

``layers > 1`` stacks gated residual layers on the window (the gated PixelCNN of van den Oord et al.
2016, conditioned on z through ``params`` at every layer): each is a masked 3x3 convolution that may
see its own position (mask "B": the features there already exclude pixel i itself), so each layer
reaches one more row up and one more pixel left. A deeper decoder models more of the strokes'
structure itself: a better likelihood, the lever PixelVAE and VLAE pulled. Like the plain PixelCNN's
stack it has a blind spot (a few pixels up and to the right are never seen); the 7x7 first window
covers the nearest of them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Distribution, Independent, constraints

__all__ = ["MaskedConv2d", "GatedMaskedLayer", "PixelCNNBernoulliLikelihood", "AutoregressiveBernoulli"]

class MaskedConv2d(nn.Conv2d):
    """A ``k x k`` convolution (odd k, "same" padding) that sees only the pixels *before* the centre in
    raster order: the rows above, and the pixels to the left in the centre row (PixelCNN's mask "A");
    with ``include_centre=True`` the centre too (mask "B", for layers after the first)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 7, include_centre: bool = False):
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        mask = torch.ones(kernel_size, kernel_size)
        mask[kernel_size // 2, kernel_size // 2 + int(include_centre):] = 0  # (the centre and) right of it
        mask[kernel_size // 2 + 1:] = 0                                      # every row below the centre
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class GatedMaskedLayer(nn.Module):
    """``h + W_out (tanh(a) * sigmoid(b))`` with ``(a, b)`` = masked 3x3 convolution of ``h`` plus a 1x1
    convolution of ``params`` (z's feature map): one gated residual layer, ``(B, F, H, W)`` in and out.
    The gate lets each position choose how much of z and of the pixels before it to pass on."""

    def __init__(self, features: int, kernel_size: int = 3):
        super().__init__()
        self.conv = MaskedConv2d(features, 2 * features, kernel_size, include_centre=True)
        self.condition = nn.Conv2d(features, 2 * features, 1)
        self.out = nn.Conv2d(features, features, 1)

    def forward(self, h: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        a, b = (self.conv(h) + self.condition(params)).chunk(2, dim=1)
        return h + self.out(torch.tanh(a) * torch.sigmoid(b))


class PixelCNNBernoulliLikelihood(nn.Module):
    """p(x|z) for one-channel binary images, autoregressive over pixels. ``params`` ``(B, features, H, W)``.

    ``logits = head(relu(params + masked_conv(x)))``, where the head is a per-pixel (1x1) two-layer
    network: pixel i's logit depends on z (through ``params_i``) and on the ``kernel_size`` window
    of x before i. With ``layers > 1``, ``layers - 1`` :class:`GatedMaskedLayer` s come between the
    window and the head, each widening what pixel i sees by one row up and one pixel left.
    ``decoder_channels`` tells the decoder network how many channels to output.
    """

    name = "pixelcnn"
    binary = True

    def __init__(self, features: int = 32, kernel_size: int = 7, layers: int = 1):
        super().__init__()
        if int(layers) != layers or layers < 1:
            raise ValueError(f"layers must be a whole number >= 1, got {layers!r}")
        self.params_channels, self.layers = features, int(layers)
        self.window = MaskedConv2d(1, features, kernel_size)
        # none for layers=1 (a plain empty tuple, not a ModuleList): the state dict and the printed
        # module stay exactly as before, so every checkpoint saved before loads unchanged
        self.gated = nn.ModuleList(GatedMaskedLayer(features) for _ in range(self.layers - 1)) if layers > 1 else ()
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(features, features, 1), nn.ReLU(), nn.Conv2d(features, 1, 1))

    def decoder_channels(self, image_channels: int) -> int:
        if image_channels != 1:
            raise ValueError(f"the pixelcnn likelihood models one-channel (greyscale, binary) images; these have "
                             f"{image_channels} channels: use the gaussian or continuous_bernoulli likelihood")
        return self.params_channels

    def logits(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` logit of each pixel given ``params`` and the pixels of ``x`` before it."""
        h = params + self.window(x.to(params.dtype))
        for layer in self.gated:
            h = layer(h, params)
        # channels-last turns the 1x1 convolutions into plain matrix products: 2x faster on CPUs
        return self.head(h.contiguous(memory_format=torch.channels_last))

    def forward(self, params: torch.Tensor) -> "AutoregressiveBernoulli":
        return AutoregressiveBernoulli(self, params)

    @torch.no_grad()
    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw images pixel by pixel: ``(x, probs)``, both ``(B, 1, H, W)``; ``probs`` holds each
        pixel's probability given the pixels drawn before it (the image to show: no salt noise).

        Pixel (r, c) needs only rows r - reach .. r of x (reach: k//2 for the window, plus one per gated
        layer), so each step runs the network on those rows.
        """
        (batch, _, height, width), r = params.shape, self.window.kernel_size[0] // 2 + len(self.gated)
        x = torch.zeros(batch, 1, height, width, device=params.device)
        probs = torch.zeros_like(x)
        for row in range(height):
            top = max(0, row - r)
            for col in range(width):
                # The network's padding fills rows above `top` with zeros, but this row's logits use
                # only rows top..row, all present: the crop changes nothing for row `row`.
                logits = self.logits(params[:, :, top:row + 1], x[:, :, top:row + 1])[:, :, row - top, col]
                p = torch.sigmoid(logits.float())
                probs[:, :, row, col] = p
                x[:, :, row, col] = torch.bernoulli(p, generator=generator)
        return x, probs

    def mean(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The image to show: pixel probabilities along one drawn image (random, from ``generator``:
        the mean of an autoregressive model has no closed form)."""
        return self.sample(params, generator)[1]

    def draw(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images drawn pixel by pixel: ``(B, 1, H, W)`` of 0/1."""
        return self.sample(params, generator)[0]

    def extra_repr(self) -> str:
        return (f"features={self.params_channels}, window={self.window.kernel_size[0]}x{self.window.kernel_size[0]}"
                + (f", layers={self.layers}" if self.layers > 1 else ""))


class AutoregressiveBernoulli(Distribution):
    """p(x|z) over ``(1, H, W)`` binary images, batch shape ``(B,)``; ``log_prob(x)`` is exact."""

    arg_constraints: dict = {}
    support = constraints.independent(constraints.boolean, 3)

    def __init__(self, likelihood: PixelCNNBernoulliLikelihood, params: torch.Tensor):
        self.likelihood, self.params = likelihood, params
        super().__init__(batch_shape=params.shape[:1], event_shape=torch.Size((1, *params.shape[2:])),
                         validate_args=False)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,)`` sum over pixels of log p(x_i | x_<i, z), one pass over the given ``x``."""
        logits = self.likelihood.logits(self.params, x)
        return Independent(Bernoulli(logits=logits.float(), validate_args=False), 3).log_prob(x)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        if sample_shape != torch.Size():
            raise ValueError("AutoregressiveBernoulli draws one image per z: call it with no sample_shape")
        return self.likelihood.sample(self.params)[0]
