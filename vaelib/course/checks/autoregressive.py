"""Checks for notebook 11 (autoregressive decoders)."""
import torch
import torch.nn.functional as F

from ._feedback import _as_tensor, _close, answer, correct, diagnose, exercise_check, expect, fail

__all__ = ["check_pixels_seen", "check_autoregressive_sampler", "check_per_pixel_nll", "check_gated_stack"]


def _seen(row, col, k, height, width, centre=False, right=False, rows_below=False):
    """Pixels inside a height x width image that a k x k window at (row, col) lets through: mask A (the rows
    above, and the pixels left of the centre in its row); ``centre``/``right``/``rows_below`` add the usual slips."""
    r = k // 2
    window = [(i, j) for i in range(row - r, row + r + 1) for j in range(col - r, col + r + 1)
              if 0 <= i < height and 0 <= j < width]
    return sum(i < row or (i == row and j < col) or (centre and (i, j) == (row, col))
               or (right and i == row and j > col) or (rows_below and i > row) for i, j in window)


@exercise_check("correct in the middle of the image, at its borders and for other window sizes")
def check_pixels_seen(fn) -> bool:
    """``fn(row, col, kernel_size, height, width)``: how many pixels of a ``height x width`` image pixel
    ``(row, col)`` reads through one masked ``kernel_size x kernel_size`` window (mask A): the pixels of the
    rows above within reach and the pixels to its left in its own row, only those inside the image."""
    cases = [(14, 14, 7, 28, 28), (0, 0, 7, 28, 28), (0, 5, 7, 28, 28), (1, 0, 7, 28, 28), (27, 27, 7, 28, 28),
             (2, 1, 5, 28, 28), (5, 5, 3, 28, 28), (3, 26, 7, 28, 28), (1, 2, 5, 4, 6), (10, 3, 9, 12, 20)]
    for row, col, k, height, width in cases:
        out = answer(fn, row, col, k, height, width)
        try:
            value = float(_as_tensor(out).reshape(()))
        except (TypeError, ValueError, RuntimeError):
            return f"expected one number, got {type(out).__name__}"
        where = f"pixel ({row}, {col}) of a {height}x{width} image, window {k}x{k}"
        inside = (row >= k // 2 and col >= k // 2 and col + k // 2 < width)
        expect(value, _seen(row, col, k, height, width), [
            (value == (k * k - 1) // 2 and not inside, f"{where}: you count {value:g}, the whole half-window, but part "
             "of it lies outside the image (zero padding: nothing to see there). Hint: count only rows "
             "0..height-1 and columns 0..width-1"),
            (_seen(row, col, k, height, width, centre=True), f"{where}: you count the pixel itself. Hint: mask A hides "
             "the centre; a pixel that saw itself could just copy its value"),
            (_seen(row, col, k, height, width, right=True), f"{where}: you count the pixels to the right in the same "
             "row. Hint: in raster order they come later, so mask A hides them"),
            (_seen(row, col, k, height, width, centre=True, right=True, rows_below=True), f"{where}: you count the "
             "whole window. Hint: mask A lets through only the rows above the centre and "
             "the pixels left of it in its row"),
            (_seen(col, row, k, width, height), f"{where}: you count as if the order went column by column. Hint: "
             "raster order goes row by row: the rows *above* come first, then the pixels to the left"),
        ], otherwise=f"{where}: you count {value:g}. Hint: for each pixel of the k x k window around (row, col), count "
                     "it if it lies inside the image and comes before (row, col) in raster order",
           near=lambda a, b: a == b)


class _Recorder:
    """A causal ``logits_fn`` that counts its calls; ``rule`` maps x (B, 1, H, W) to logits (B, 1, H, W)."""

    def __init__(self, rule):
        self.rule, self.calls = rule, 0

    def __call__(self, x):
        self.calls += 1
        return self.rule(x.float())


def _upper_right_rule(x):
    """Row 0: on at even columns. Row r >= 1: a copy of the pixel above and to the right (of the pixel above in
    the last column). Causal in raster order, but a column-by-column order reads pixels not drawn yet."""
    b, _, h, w = x.shape
    logits = torch.full_like(x, -100.0)
    logits[:, :, 0, 0::2] = 100.0
    if h > 1:
        source = torch.cat([x[:, :, :-1, 1:], x[:, :, :-1, -1:]], dim=3)   # (r-1, c+1), last column (r-1, c)
        logits[:, :, 1:] = torch.where(source > 0.5, 100.0, -100.0)
    return logits


def _upper_right_drawn(b, h, w, by_columns=False):
    """What a sampler draws from ``_upper_right_rule``: in raster order, or (a mistake) column by column."""
    x = torch.zeros(b, 1, h, w)
    order = [(r, c) for c in range(w) for r in range(h)] if by_columns else [(r, c) for r in range(h) for c in range(w)]
    for r, c in order:
        x[:, :, r, c] = _upper_right_rule(x)[:, :, r, c] > 0
    return x


@exercise_check()
def check_autoregressive_sampler(fn) -> bool:
    """``fn(logits_fn, shape, generator)``: images ``(B, 1, H, W)`` of 0/1 drawn pixel by pixel in raster order,
    where ``logits_fn(x)`` returns the ``(B, 1, H, W)`` logits of every pixel given the pixels of ``x`` before it
    (teacher forcing) and ``shape = (B, 1, H, W)``; one call of ``logits_fn`` per pixel, for the whole batch, and
    every draw from ``generator``."""
    shape = (3, 1, 4, 5)
    b, _, h, w = shape
    recorder = _Recorder(_upper_right_rule)
    out = answer(fn, recorder, shape, torch.Generator().manual_seed(0))
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return f"expected images of shape {shape}, got {got}. Hint: return x, the drawn images"
    steps = h * w
    if recorder.calls != steps:
        return diagnose(None, [
            (recorder.calls == 1, "you called logits_fn once: every pixel was drawn from the logits of one image, so "
             "no pixel depends on the pixels drawn before it. Hint: one call per pixel, after "
             "the pixels before it are filled in"),
            (recorder.calls == steps * b, f"you called logits_fn {recorder.calls} times, once per pixel *and image*. "
             f"Hint: draw a pixel for the whole batch at once: {steps} calls for {h}x{w} images"),
        ], otherwise=f"you called logits_fn {recorder.calls} times for images of {steps} pixels. Hint: one "
                     "call per pixel, in raster order")
    empty = torch.zeros(b, 1, h, w)
    empty[:, :, 0, 0::2] = 1
    expect(out.float(), _upper_right_drawn(b, h, w), [
        (empty, "each pixel was drawn as if no pixel before it were on. Hint: write each drawn pixel into x before the "
         "next call, so that later pixels see it"),
        (_upper_right_drawn(b, h, w, by_columns=True), "you go column by column. Hint: raster order goes row by row "
         "(the outer loop over rows): the model's pixel (r, c) may read (r - 1, c + 1)"),
    ], otherwise="for a model whose pixel copies the pixel above and to its right, your images are not what it must "
                 "draw. Hint: loop over rows, then columns; draw pixel (r, c) from sigmoid(logits_fn(x)[:, :, r, "
                 "c]) and store it in x[:, :, r, c]", near=torch.equal)
    # a model with p = 1/2 everywhere (logits 0, whatever came before): the draws must be random, reproducible
    shape = (64, 1, 4, 4)
    first = _as_tensor(answer(fn, _Recorder(torch.zeros_like), shape, torch.Generator().manual_seed(1))).float()
    if not ((first == 0) | (first == 1)).all():
        return ("your images hold values other than 0 and 1. Hint: draw each pixel with torch.bernoulli(p, "
                "generator=generator), p = sigmoid(logit); do not store p")
    mean = first.mean().item()
    if mean in (0.0, 1.0):
        return (f"with p = 1/2 for every pixel all your pixels are {mean:g}: you take the most likely value instead of "
                "drawing it. Hint: torch.bernoulli(p, generator=generator)")
    if not 0.35 < mean < 0.65:
        return (f"with p = 1/2 for every pixel, {mean:.0%} of your pixels are on. Hint: p = sigmoid(logit), then "
                "torch.bernoulli(p, generator=generator)")
    second = answer(fn, _Recorder(torch.zeros_like), shape, torch.Generator().manual_seed(1))
    if not torch.equal(_as_tensor(second).float(), first):
        return ("two calls with generators of the same seed drew different images. Hint: pass "
                "generator=generator to torch.bernoulli")
    return correct(f"raster order, {steps} calls for {h}x{w} images, and random, reproducible draws")



def _small_models():
    """The two decoders of the check, untrained, and the images x (3, 1, 28, 28) and codes z (3, 4) it uses."""
    from vaelib.vae import build_vae
    torch.manual_seed(11)
    models = {lik: build_vae("conv", latent_dim=4, hidden=32, channels=8, likelihood=lik).eval()
              for lik in ("pixelcnn", "bernoulli")}
    g = torch.Generator().manual_seed(12)
    return models, (torch.rand(3, 1, 28, 28, generator=g) < 0.3).float(), torch.randn(3, 4, generator=g)


def _reference_nll(model, z, x):
    """Each pixel's -log p, with the pixels of ``x`` before it as the pixelcnn decoder's context."""
    params = model.decoder(z)
    logits = model.likelihood.logits(params, x) if model.likelihood.name == "pixelcnn" else params
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none")


def _blind_nll(model, z, x):
    """The per-pixel NLL of a pixelcnn decoder whose logits come from an empty image (no teacher forcing)."""
    with torch.no_grad():
        logits = model.likelihood.logits(model.decoder(z), torch.zeros_like(x))
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none")


@exercise_check("correct for the pixelcnn and the factorized Bernoulli decoder; each map sums to -log p(x|z)")
def check_per_pixel_nll(fn) -> bool:
    """``fn(model, z, x)``: ``(B, 1, H, W)``, each pixel's -log p(x_i | x_<i, z) for the ``pixelcnn`` decoder and
    -log p(x_i | z) for a factorized Bernoulli one, so that the map sums to ``-model.decode(z).log_prob(x)``."""
    models, x, z = _small_models()
    for kind, model in models.items():

        def explain(error):
            if kind == "bernoulli" and "logits" in error:
                return (f"for a factorized Bernoulli decoder {error}. Hint: its decoder's output *is* the logits; only "
                        "the pixelcnn likelihood has a logits(params, x)")
            return f"for the {kind} decoder {error}"

        with torch.no_grad():
            out = answer(fn, model, z, x, on_error=explain, copy=False)
            expected = _reference_nll(model, z, x)
        if not isinstance(out, torch.Tensor):
            return f"expected a tensor (B, 1, H, W), got {type(out).__name__}"
        out = out.detach().float()
        if out.shape != expected.shape:
            return diagnose(None, [
                (out.numel() == len(x), f"one value per image, shape {tuple(out.shape)}. Hint: keep one value per "
                 "pixel, (B, 1, H, W): do not sum"),
                (kind == "pixelcnn" and out.dim() == 4 and out.shape[1] == model.likelihood.params_channels,
                 f"shape {tuple(out.shape)}: you read the pixelcnn decoder's output as logits, but it is a feature "
                 "map. Hint: the logits are model.likelihood.logits(params, x)"),
            ], otherwise=f"shape {tuple(out.shape)}, expected {tuple(expected.shape)}: one "
                         "value per pixel of each image")
        expect(out, expected, [
            (-expected, "that is log p, not -log p. Hint: the NLL is minus the log-probability "
             "(binary_cross_entropy_with_logits gives it directly)"),
            (lambda: kind == "pixelcnn" and _close(out, _blind_nll(model, z, x)), "your logits come from an empty "
             "image, so no pixel sees the pixels before it. Hint: teacher forcing: "
             "model.likelihood.logits(params, x) with the image x itself"),
            (torch.allclose(out.sum(dim=(1, 2, 3)), expected.sum(dim=(1, 2, 3)), atol=1e-3, rtol=1e-4), "the sums per "
             "image are right but the map is not. Hint: keep each pixel's own term, "
             "binary_cross_entropy_with_logits(..., reduction='none')"),
        ], otherwise=f"wrong values for the {kind} decoder. Hint: logits of every pixel given z (and, for the "
                     "pixelcnn decoder, the pixels of x before it), then "
                     "binary_cross_entropy_with_logits(logits, x, reduction='none')")


def _input_gradients(stack, size=12, features=8, pixel=(6, 6)):
    """The gradients of ``stack``'s output at ``pixel`` (summed over its features) with respect to a random binary
    image ``(size, size)`` and to the feature map ``params``: which inputs can change that output."""
    g = torch.Generator().manual_seed(11)
    x = torch.bernoulli(torch.full((2, 1, size, size), 0.5), generator=g).requires_grad_(True)
    params = torch.randn(2, features, size, size, generator=g, requires_grad=True)
    out = answer(stack, x, params, copy=False)
    if not isinstance(out, torch.Tensor) or out.shape != (2, features, size, size):
        fail(f"expected h of shape {(2, features, size, size)}, got "
             f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}. Hint: every layer keeps "
             "the features and the image size (same padding), and forward returns the last h")
    out[:, :, pixel[0], pixel[1]].sum().backward()
    return x.grad.abs().sum((0, 1)), params.grad


@exercise_check("causal, deeper than the window with 3 layers, and z's features read at every pixel")
def check_gated_stack(cls) -> bool:
    """``cls(features, layers)``: an ``nn.Module`` whose ``forward(x, params)`` takes binary images ``x`` ``(B, 1, H,
    W)`` and z's feature map ``params`` ``(B, features, H, W)`` and returns ``h`` ``(B, features, H, W)``: a mask-A
    7x7 window on x plus params, then ``layers - 1`` gated residual layers, each h + out(tanh(a) * sigmoid(b)) with
    (a, b) from a mask-B 3x3 convolution of h plus a 1x1 convolution of params. Checked through its gradients."""
    with torch.random.fork_rng(devices=[]):   # the learner's initial weights, without touching the caller's generator
        torch.manual_seed(0)
        stacks = {layers: answer(cls, 8, layers) for layers in (1, 3)}
    row, col = 6, 6
    for layers, stack in stacks.items():
        seen, params_grad = _input_gradients(stack)
        reads_params = params_grad is not None and bool(params_grad[:, :, row, col].abs().sum() > 0)
        future = torch.zeros_like(seen, dtype=torch.bool)
        future[row, col + 1:] = True
        future[row + 1:] = True
        fail_if = diagnose(None, [
            (bool((seen[future] > 0).any()), f"with {layers} layer(s), the output at a pixel depends on pixels after "
                                             "it in raster order. Hint: every convolution of h must be masked; the "
                                             "gated layers use MaskedConv2d(features, 2 * features, 3, "
                                             "include_centre=True)"),
            (bool(seen[row, col] > 0), f"with {layers} layer(s), the output at a pixel depends on that pixel itself: "
                                       "it would predict what it reads. Hint: the first layer needs mask A "
                                       "(MaskedConv2d(1, features, 7), include_centre=False)"),
            (not reads_params, "the output ignores z's feature map at its own pixel. Hint: add params to the window's "
                               "output, and a 1x1 convolution of params inside each gate"),
            (layers == 3 and bool(seen[:row - 3].sum() == 0), "with 3 layers the output sees no further up than the "
                                                              "7x7 window. Hint: stack layers - 1 gated layers on h, "
                                                              "each reading h through its masked 3x3 convolution"),
        ], otherwise=None)
        if fail_if:
            return fail_if
