"""Interactive explorers for trained VAEs, built with ipywidgets.

Each widget is a thin shell over a plain function that computes what it shows; the tests call those
functions directly (no browser, no kernel), and the widgets only wire sliders to them:

==================================  ========================================  =========================
widget                              update function                           shows
==================================  ========================================  =========================
``latent_explorer(model)``          ``decode_point(model, z)``                the digit at a latent z
``interpolation_slider(m, a, b)``   ``interpolate_point(model, z0, z1, t)``   a point on the path a->b
``reconstruction_viewer(m, data)``  ``reconstruction_panel(model, data, i)``  input, mean, q samples
``beta_explorer(models, data)``     ``beta_panel(models, beta, x)``           one model of a beta sweep
``digit_selector(cvae)``            ``decode_point(model, z, y=digit)``       a chosen digit, a style
``importance_explorer(m, data)``    ``importance_panel(model, data, i, k)``   L_k, ESS, heaviest z
``reverse_chain_explorer(m, path)``  ``chain_panel(model, path, step)``        a DDPM's z_t, decoded
==================================  ========================================  =========================

Images reach the browser as small PNGs in an ``ipywidgets.Image`` (no matplotlib redraw), so a
slider move costs one decoder call and a PNG encoding: a few milliseconds on a laptop CPU
(``python benchmarks/widget_latency.py`` measures it).
"""
from __future__ import annotations

import io
import math

import torch

from ..bounds import log_importance_weights
from ..data import as_data
from ..plotting import image_grid, lerp, slerp

__all__ = ["decode_point", "interpolate_point", "reconstruction_panel", "beta_panel", "principal_directions",
           "to_png", "latent_explorer", "interpolation_slider", "reconstruction_viewer", "beta_explorer",
           "digit_selector", "importance_panel", "importance_explorer", "chain_panel", "reverse_chain_explorer"]

SCALE = 4  # each pixel shown as 4x4 screen pixels: 28x28 as 112x112


def to_png(images: torch.Tensor, nrow: int = 8, scale: int = SCALE) -> bytes:
    """PNG bytes of one image ``(C, H, W)`` or a grid of images ``(N, C, H, W)``, values in [0, 1],
    greyscale or colour."""
    from PIL import Image

    if images.dim() == 3:
        images = images.unsqueeze(0)
    grid = image_grid(images, nrow=nrow, padding=2 if len(images) > 1 else 0)
    pixels = (grid.numpy() * 255).round().astype("uint8")
    picture = Image.fromarray(pixels)  # (H, W) uint8: greyscale; (H, W, 3): RGB
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@torch.no_grad()
def decode_point(model, z, y: int | None = None) -> torch.Tensor:
    """Decode one latent point ``z`` (sequence or tensor of D numbers): image ``(C, H, W)`` in [0, 1].

    For a conditional model, ``y`` is the label (0 by default)."""
    z = torch.as_tensor(z, dtype=torch.float32, device=model.device).reshape(1, -1)
    if z.shape[1] != model.latent_dim:
        raise ValueError(f"z has {z.shape[1]} numbers, the model's latent space has {model.latent_dim}")
    return model.decode_mean(z, 0 if y is None else y)[0].cpu()


@torch.no_grad()
def interpolate_point(model, z0: torch.Tensor, z1: torch.Tensor, t: float, method: str = "linear",
                      y: int | None = None) -> torch.Tensor:
    """The image at fraction ``t`` of the way from ``z0`` to ``z1`` (``linear`` or ``spherical``)."""
    path = (lerp if method == "linear" else slerp)(z0.cpu(), z1.cpu(), torch.tensor([float(t)]))
    return decode_point(model, path[0], y)


@torch.no_grad()
def reconstruction_panel(model, data, index: int, n_samples: int = 6, seed: int = 0) -> torch.Tensor:
    """Test image ``index``, its reconstruction from the posterior mean, and ``n_samples`` decodes of
    z ~ q(z|x): ``(2 + n_samples, C, H, W)``. The spread of the samples shows how sure q is."""
    x, y = _one_image(model, data, index, seed)
    q = model.encode(x, y)
    z = q.rsample((n_samples,), generator=torch.Generator(device=model.device).manual_seed(seed))[:, 0]
    samples = model.decode_mean(z, y)
    return torch.cat([x, model.reconstruct(x, y), samples]).cpu()


def _one_image(model, data, index: int, seed: int):
    """Image ``index`` of ``data`` binarized with ``seed``, and its label: ``(1, C, H, W)``, ``(1,)`` or None."""
    data = as_data(data)
    g = torch.Generator(device=data.device).manual_seed(seed)
    x = data.prepare(data.images[index:index + 1], g).to(model.device)
    y = None if data.labels is None else data.labels[index:index + 1].to(model.device)
    return x, y


@torch.no_grad()
def beta_panel(models: dict, beta, x: torch.Tensor, n_samples: int = 8, seed: int = 0) -> torch.Tensor:
    """For the model trained with ``beta``: inputs ``x`` ``(n, C, H, W)``, their reconstructions, and
    ``n_samples`` samples, stacked as ``(2n + n_samples, C, H, W)``."""
    model = models[beta]
    g = torch.Generator(device=model.device).manual_seed(seed)
    x = x.to(model.device)
    return torch.cat([x, model.reconstruct(x), model.sample(n_samples, generator=g)]).cpu()


@torch.no_grad()
def importance_panel(model, data, index: int, k: int, n_show: int = 6, seed: int = 0) -> dict:
    """Importance sampling of test image ``index`` with ``k`` samples z_i ~ q(z|x).

    Returns ``elbo`` (the mean of the k log weights), ``bound`` (L_k, their log-mean-exp), ``ess``
    (the effective sample size (sum w)^2 / sum w^2, between 1 and k), ``weights`` ``(n_show,)``: the
    normalized weights of the ``n_show`` heaviest samples, and ``images`` ``(1 + n_show, C, H, W)``:
    the input, then the decoded means of those samples, heaviest first.
    """
    x, y = _one_image(model, data, index, seed)
    log_w, z = log_importance_weights(model, x, k, torch.Generator(device=model.device).manual_seed(seed),
                                      y=model.labels(y, 1))
    log_w, z = log_w[:, 0], z[:, 0]  # one image: (k,) and (k, D)
    normalized = torch.softmax(log_w, 0)
    top = normalized.argsort(descending=True)[:n_show]
    shown = model.decode_mean(z[top], y)
    return dict(elbo=log_w.mean().item(), bound=(torch.logsumexp(log_w, 0) - math.log(k)).item(),
                ess=(1.0 / normalized.pow(2).sum()).item(), weights=normalized[top].cpu(),
                images=torch.cat([x, shown]).cpu())


@torch.no_grad()
def principal_directions(model, data, k: int = 4, n: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and the ``k`` leading principal directions ``(k, D)`` (scaled by their standard deviation)
    of the posterior means of ``n`` images: where to put sliders when D is too large for one each."""
    x, y = next(as_data(data).batches(n))
    mu = model.posterior_mean(x.to(model.device), None if y is None else y.to(model.device)).cpu()
    center = mu.mean(0)
    _, s, v = torch.linalg.svd(mu - center, full_matrices=False)
    return center, v[:k] * (s[:k, None] / (len(mu) - 1) ** 0.5)


def _image_widget(image):
    import ipywidgets as W
    return W.Image(value=to_png(image), format="png")


def latent_explorer(model, data=None, max_sliders: int = 8, extent: float = 3.0, y: int | None = None):
    """Sliders over z and the decoded digit, redrawn on every move.

    With ``latent_dim <= max_sliders`` there is one slider per latent dimension. Otherwise pass
    ``data``: the sliders then move along the first ``max_sliders`` principal directions of the
    posterior means, in units of their standard deviation. Buttons reset to the origin (or mean) or
    draw a random z from the prior.
    """
    import ipywidgets as W

    d = model.latent_dim
    if d <= max_sliders:
        center, directions = torch.zeros(d), torch.eye(d)
        names = [f"z[{i}]" for i in range(d)]
    elif data is not None:
        center, directions = principal_directions(model, data, max_sliders)
        names = [f"PC {i + 1}" for i in range(max_sliders)]
    else:
        raise ValueError(f"{d} latent dimensions are too many sliders: pass data= to slide along principal directions")
    sliders = [W.FloatSlider(0.0, min=-extent, max=extent, step=0.05, description=name, continuous_update=True)
               for name in names]
    image = _image_widget(decode_point(model, center, y))
    reset, rand = W.Button(description="reset"), W.Button(description="random")

    def point():
        return center + torch.tensor([s.value for s in sliders]) @ directions

    def redraw(_=None):
        image.value = to_png(decode_point(model, point(), y))

    def on_reset(_):
        for s in sliders:
            s.value = 0.0

    def on_random(_):
        values = torch.randn(len(sliders)).clamp(-extent, extent)
        for s, v in zip(sliders, values.tolist()):
            s.value = v

    for s in sliders:
        s.observe(redraw, names="value")
    reset.on_click(on_reset)
    rand.on_click(on_random)
    return W.HBox([W.VBox(sliders + [W.HBox([reset, rand])]), image])


def interpolation_slider(model, x0: torch.Tensor, x1: torch.Tensor, y: int | None = None):
    """A slider t from 0 to 1 between the posterior means of two images ``(C, H, W)``.

    For a conditional model, ``y`` is the label used to encode both images and decode the path
    (0 by default): the path then changes the style, not the digit."""
    import ipywidgets as W

    shape = tuple(model.image_shape or x0.shape[-3:])
    x0, x1 = x0.reshape(1, *shape).to(model.device), x1.reshape(1, *shape).to(model.device)
    label = 0 if y is None else y
    z0, z1 = model.posterior_mean(x0, label)[0], model.posterior_mean(x1, label)[0]
    t = W.FloatSlider(0.0, min=0.0, max=1.0, step=0.02, description="t")
    method = W.ToggleButtons(options=["linear", "spherical"], description="path")
    image = _image_widget(interpolate_point(model, z0, z1, 0.0, y=label))

    def redraw(_=None):
        image.value = to_png(interpolate_point(model, z0, z1, t.value, method.value, label))

    t.observe(redraw, names="value")
    method.observe(redraw, names="value")
    ends = W.HBox([_image_widget(x0[0].cpu()), image, _image_widget(x1[0].cpu())])
    return W.VBox([W.HBox([t, method]), ends])


def reconstruction_viewer(model, data, n_samples: int = 6):
    """Pick a test image by index: the input, its reconstruction, and samples from q(z|x)."""
    import ipywidgets as W

    data = as_data(data)
    index = W.IntSlider(0, min=0, max=len(data) - 1, description="index")
    image = W.Image(value=to_png(reconstruction_panel(model, data, 0, n_samples), nrow=2 + n_samples), format="png")
    caption = W.Label("input | reconstruction (posterior mean) | decodes of z ~ q(z|x)")

    def redraw(_=None):
        image.value = to_png(reconstruction_panel(model, data, index.value, n_samples), nrow=2 + n_samples)

    index.observe(redraw, names="value")
    return W.VBox([index, caption, image])


def beta_explorer(models: dict, data, n: int = 8):
    """Switch among models trained with different beta (``{beta: model}``): reconstructions and samples."""
    import ipywidgets as W

    x, _ = as_data(data).first(n)
    betas = sorted(models)
    choice = W.SelectionSlider(options=betas, value=betas[0], description="beta")
    image = W.Image(value=to_png(beta_panel(models, betas[0], x, n), nrow=n), format="png")
    caption = W.Label("rows: inputs | reconstructions | samples from the prior")

    def redraw(_=None):
        image.value = to_png(beta_panel(models, choice.value, x, n), nrow=n)

    choice.observe(redraw, names="value")
    return W.VBox([choice, caption, image])


def digit_selector(model, extent: float = 3.0):
    """For a conditional VAE: choose the digit with buttons and the style with sliders over z."""
    import ipywidgets as W

    if not model.num_classes:
        raise ValueError("digit_selector needs a conditional model (num_classes > 0)")
    digit = W.ToggleButtons(options=list(range(model.num_classes)), value=0, description="digit",
                            style={"button_width": "2.2em"})
    sliders = [W.FloatSlider(0.0, min=-extent, max=extent, step=0.05, description=f"z[{i}]")
               for i in range(min(model.latent_dim, 8))]
    image = _image_widget(decode_point(model, torch.zeros(model.latent_dim), 0))

    def redraw(_=None):
        z = torch.zeros(model.latent_dim)
        z[:len(sliders)] = torch.tensor([s.value for s in sliders])
        image.value = to_png(decode_point(model, z, digit.value))

    for w in [digit, *sliders]:
        w.observe(redraw, names="value")
    return W.VBox([digit, W.HBox([W.VBox(sliders), image])])


def importance_explorer(model, data, ks=(1, 3, 10, 30, 100, 300), n_show: int = 6):
    """Pick a test image and a number of samples k: the ELBO, L_k, the effective sample size, and the
    decodes of the heaviest samples with their share of the total weight. k stops at 300 by default:
    a redraw decodes k images, about 25 ms for the conv VAE on 2 CPU cores (k = 1000 takes 90 ms)."""
    import ipywidgets as W

    data = as_data(data)
    index = W.IntSlider(0, min=0, max=len(data) - 1, description="index")
    k = W.SelectionSlider(options=list(ks), value=ks[len(ks) // 2], description="k")
    image = W.Image(format="png")
    numbers = W.HTML()

    def redraw(_=None):
        panel = importance_panel(model, data, index.value, k.value, n_show)
        image.value = to_png(panel["images"], nrow=1 + n_show)
        shares = ", ".join(f"{w:.2f}" for w in panel["weights"].tolist())
        numbers.value = (f"ELBO (mean log w) {panel['elbo']:.1f} nats &nbsp; L<sub>{k.value}</sub> "
                         f"{panel['bound']:.1f} nats &nbsp; ESS {panel['ess']:.1f} of {k.value}<br>"
                         f"input | decodes of the heaviest z, weight shares {shares}")

    redraw()
    index.observe(redraw, names="value")
    k.observe(redraw, names="value")
    return W.VBox([W.HBox([index, k]), numbers, image])


@torch.no_grad()
def chain_panel(model, path: torch.Tensor, step: int) -> torch.Tensor:
    """The latents of a reverse chain at one step, decoded: ``path`` ``(T + 1, n, D)`` from x_T (index 0) down to x_0
    (index T), as ``DDPM.sample(n, trajectory=True)`` returns it; ``step`` counts the denoising steps taken (0 =
    pure noise). Returns the decoder's means ``(n, C, H, W)``."""
    if not 0 <= step < len(path):
        raise ValueError(f"step={step}: the chain has steps 0 to {len(path) - 1}")
    return model.decode(path[step]).mean


def reverse_chain_explorer(model, path: torch.Tensor):
    """Step through a DDPM's reverse chain in ``model``'s latent space (``path`` as :func:`chain_panel` takes it):
    each latent z_t decoded by the VAE."""
    import ipywidgets as W

    steps = len(path) - 1
    step = W.IntSlider(steps, min=0, max=steps, description="step")
    caption = W.Label()
    image = W.Image(format="png")

    def redraw(_=None):
        image.value = to_png(chain_panel(model, path, step.value), nrow=min(8, path.shape[1]))
        caption.value = (f"{step.value} of {steps} denoising steps taken: z_t at t = {steps - step.value}, decoded "
                         f"(t = 0 is a sample of the DDPM prior)")

    redraw()
    step.observe(redraw, names="value")
    return W.VBox([step, caption, image])
