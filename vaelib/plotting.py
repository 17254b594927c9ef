"""Figures for VAEs: thin helpers over matplotlib, and image grids in plain torch.

Every function returns the matplotlib ``Figure`` (a script saves it, or passes ``save=path``) and
shows it once in a notebook, whether or not the call is the last line of a cell: no ``;`` or
``_ =`` is needed. Given ``ax=``, a function draws into that axes of your figure and leaves the
figure as it was (it shows the way your own figures do). Images are tensors ``(N, C, H, W)`` with values in [0, 1], greyscale
(C = 1) or colour (C = 3). Data may be vaelib.ImageData, a tensor of images, or ``(images, labels)``.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from .data import as_data
from .deprecation import moved_names
from .images import IMAGE_FORMATS, image_format, image_grid, save_image_grid, tile  # noqa: F401 (their old home)

__all__ = ["image_grid", "show_images", "show_reconstructions", "plot_history", "plot_latent_scatter",
           "plot_manifold", "plot_interpolation", "save_image_grid", "image_format", "slerp", "lerp"]


def _show_once(fig) -> None:
    """Jupyter shows a pyplot figure at the end of the cell (matplotlib-inline), and again when it is the
    cell's value. The first display of this figure closes it in pyplot, so the other one finds
    nothing to show."""
    def display_once():
        del fig._ipython_display_  # from now on the figure displays as any other
        plt.close(fig)
        from IPython.display import display
        display(fig)
    fig._ipython_display_ = display_once


def _save(fig, save, owned: bool = True):
    """Save ``fig`` to ``save`` (if given) and return it; ``owned``: vaelib made it (no ``ax=`` given)."""
    if save is not None:
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(save, bbox_inches="tight", dpi=120)
    if owned:
        _show_once(fig)
    return fig


def _axes(ax, figsize):
    """``(figure, axes)``: those of ``ax`` when given, else a new figure of ``figsize`` inches."""
    return (ax.figure, ax) if ax is not None else plt.subplots(figsize=figsize)


def _grid(ax, images: torch.Tensor, nrow: int, padding: int = 2, extent=None) -> None:
    """Draw ``images`` as one grey grid of ``nrow`` columns in ``ax`` (``extent``: imshow's)."""
    ax.imshow(image_grid(images, nrow, padding=padding).numpy(), cmap="gray", vmin=0, vmax=1, extent=extent)


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None, save=None):
    """Show images as one grid."""
    owned, n = ax is None, len(images)
    fig, ax = _axes(ax, (min(nrow, n) * 0.6 + 0.4, math.ceil(n / nrow) * 0.6 + (0.5 if title else 0.2)))
    _grid(ax, images, nrow)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return _save(fig, save, owned)


def show_reconstructions(x: torch.Tensor, x_hat: torch.Tensor, n: int = 10, title: str | None = None, save=None):
    """Inputs (top row) above their reconstructions (bottom row)."""
    n = min(n, len(x))
    pair = torch.cat([x[:n].cpu(), x_hat[:n].cpu()])
    fig, ax = plt.subplots(figsize=(n * 0.6 + 0.4, 1.6))
    _grid(ax, pair, n)
    height = x.shape[-2]
    ax.set_yticks([2 + height / 2, 4 + 1.5 * height], ["input", "reconstruction"])
    ax.set_xticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title)
    return _save(fig, save)


def plot_history(history, keys=("train_elbo", "test_elbo"), title: str = "ELBO per epoch (nats, higher is better)",
                 ax=None, save=None):
    """Curves of history columns against the epoch (a vaelib History, or a list of dicts)."""
    owned = ax is None
    fig, ax = _axes(ax, (5, 3.2))
    epochs = [row["epoch"] for row in history]
    for key in keys:
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            ax.plot(epochs, values, marker="o", ms=3, label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, save, owned)


@torch.no_grad()
def _posterior_means(model, data, n: int, batch_size: int = 1000):
    zs, ys = [], []
    for x, y in as_data(data).batches(batch_size):
        zs.append(model.posterior_mean(x.to(model.device), None if y is None else y.to(model.device)).cpu())
        ys.append(None if y is None else y.cpu())
        if sum(len(z) for z in zs) >= n:
            break
    return torch.cat(zs)[:n], None if ys[0] is None else torch.cat(ys)[:n]


def plot_latent_scatter(model, data, n: int = 5000, dims=(0, 1), ax=None, save=None):
    """Posterior means E_q[z|x] of ``n`` images in two latent dimensions, coloured by label (if any)."""
    owned = ax is None
    z, y = _posterior_means(model, data, n)
    fig, ax = _axes(ax, (5.2, 4.4))
    if y is None:
        ax.scatter(z[:, dims[0]], z[:, dims[1]], s=3, alpha=0.5)
    else:
        classes = max(int(y.max()) + 1, 10)
        points = ax.scatter(z[:, dims[0]], z[:, dims[1]], c=y, cmap="tab10" if classes <= 10 else "tab20", s=3,
                            alpha=0.7, vmin=-0.5, vmax=classes - 0.5)
        names = getattr(data, "classes", None)
        fig.colorbar(points, ax=ax, ticks=range(classes), label="class" if names else "digit")
    ax.set_xlabel(f"z[{dims[0]}]")
    ax.set_ylabel(f"z[{dims[1]}]")
    ax.set_title("posterior means" + (", coloured by label" if y is not None else ""))
    return _save(fig, save, owned)


@torch.no_grad()
def plot_manifold(model, n: int = 15, extent: float = 2.5, use_quantiles: bool = True, y=None, ax=None,
                  title: str = "decoded latent grid", save=None):
    """Decode a regular ``n`` x ``n`` grid of a 2-D latent space.

    With ``use_quantiles`` the grid is evenly spaced in probability under N(0, 1) (as in Kingma and
    Welling's figure), so every tile covers the same prior mass; the axes then show the z value at
    the centre of every other tile (they are not evenly spaced in z). Otherwise the grid spans
    [-extent, extent] on linear axes. For a conditional model pass ``y``: one label (an int) for the
    whole grid, or ``n * n`` labels (a sequence or a tensor).
    """
    owned = ax is None
    if model.latent_dim != 2:
        raise ValueError(f"plot_manifold needs a 2-D latent space, this model has {model.latent_dim}")
    if use_quantiles:
        p = torch.linspace(0.5 / n, 1 - 0.5 / n, n)
        axis = torch.distributions.Normal(0.0, 1.0).icdf(p)
    else:
        axis = torch.linspace(-extent, extent, n)
    zy, zx = torch.meshgrid(axis.flip(0), axis, indexing="ij")  # top row = largest z[1]
    z = torch.stack([zx.flatten(), zy.flatten()], 1).to(model.device)
    images = model.decode_mean(z, y)
    fig, ax = _axes(ax, (6, 6))
    if use_quantiles:  # tile i spans [i, i+1] on the axes; label tile centres with their z value
        _grid(ax, images, n, padding=0, extent=[0, n, 0, n])
        ticks = list(range(0, n, 2))
        ax.set_xticks([i + 0.5 for i in ticks], [f"{axis[i].item():.2f}" for i in ticks])
        ax.set_yticks([i + 0.5 for i in ticks], [f"{axis[i].item():.2f}" for i in ticks])
    else:
        half = (axis[1] - axis[0]).item() / 2  # tiles are centred on the grid points
        low, high = axis[0].item() - half, axis[-1].item() + half
        _grid(ax, images, n, padding=0, extent=[low, high, low, high])
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    return _save(fig, save, owned)


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation: ``(D,), (D,), (T,) -> (T, D)``."""
    t = t.to(z0).unsqueeze(1)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (along the great circle, with norms interpolated): ``-> (T, D)``.

    In high dimensions a Gaussian's mass lies near a sphere of radius sqrt(D); the straight line
    between two samples cuts through the low-norm interior, which the decoder rarely saw.
    """
    t = t.to(z0).unsqueeze(1)
    n0, n1 = z0.norm(), z1.norm()
    u0, u1 = z0 / n0, z1 / n1
    omega = torch.arccos((u0 @ u1).clamp(-1 + 1e-7, 1 - 1e-7))
    direction = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / torch.sin(omega)
    return direction * ((1 - t) * n0 + t * n1)


@torch.no_grad()
def plot_interpolation(model, z0: torch.Tensor, z1: torch.Tensor, steps: int = 10, method: str = "linear",
                       y=None, ax=None, save=None):
    """Decode ``steps`` points on the path from ``z0`` to ``z1`` (``method``: ``linear`` or ``spherical``).

    For a conditional model pass ``y``: one label (an int) for the whole strip, or ``steps`` labels (a
    sequence or a tensor).
    """
    owned = ax is None
    t = torch.linspace(0, 1, steps)
    path = (lerp if method == "linear" else slerp)(z0.cpu(), z1.cpu(), t).to(model.device)
    images = model.decode_mean(path, y)
    fig, ax = _axes(ax, (steps * 0.6 + 0.4, 1.0))
    _grid(ax, images, steps)
    ax.axis("off")
    ax.set_title(f"{method} interpolation", fontsize=9)
    return _save(fig, save, owned)


# the course's figure files moved to vaelib.course (they follow its learner and fast modes)
__getattr__ = moved_names(__name__, {"figure_path": "vaelib.course.figures", "save_figure": "vaelib.course.figures"})
