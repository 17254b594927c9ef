"""Images as tensors, tiled into grids and written to files, with no plotting library: what training
runs (``samples.png``) and ``vaelib generate`` write. vaelib.plotting draws figures with matplotlib.

Images are tensors ``(N, C, H, W)`` with values in [0, 1], greyscale (C = 1) or colour (C = 3).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from .files import atomic_write

__all__ = ["tile", "image_grid", "image_format", "save_image_grid", "IMAGE_FORMATS"]


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """Tile ``(N, C, H, W)`` images, ``nrow`` per row, into what ``imshow`` takes: ``(H', W')`` for
    greyscale, ``(H', W', 3)`` for colour."""
    grid = tile(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=padding, pad_value=1.0)
    return grid[0] if images.shape[1] == 1 else grid.permute(1, 2, 0)


def tile(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 0.0) -> torch.Tensor:
    """``(N, C, H, W)`` images tiled ``nrow`` per row into one ``(C', H', W')`` image, ``padding``
    pixels of ``pad_value`` around each; one channel becomes three (torchvision's ``make_grid``,
    without importing torchvision)."""
    n, c, h, w = images.shape
    if c == 1:
        images = images.expand(n, 3, h, w)
    if n == 1:  # a single image: as it is, without padding
        return images[0].clone()
    cols, rows = min(nrow, n), math.ceil(n / nrow)
    grid = images.new_full((images.shape[1], rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value)
    for i, image in enumerate(images):
        top, left = (i // cols) * (h + padding) + padding, (i % cols) * (w + padding) + padding
        grid[:, top:top + h, left:left + w] = image
    return grid


IMAGE_FORMATS = ("png", "jpg", "jpeg", "tif", "tiff", "webp", "pdf", "svg", "eps")


def image_format(path) -> str:
    """The image format that ``path``'s extension names; ``ValueError`` for none or an unknown one."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in IMAGE_FORMATS:
        what = "has no extension" if not suffix else f"has the unknown image extension .{suffix}"
        raise ValueError(f"output path {path} {what}: end it with .png (or .{', .'.join(IMAGE_FORMATS[1:])})")
    return suffix


# Pillow (a dependency of torchvision) writes these; the vector formats need matplotlib
PILLOW_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "tif": "TIFF", "tiff": "TIFF", "webp": "WEBP",
                  "pdf": "PDF", "eps": "EPS"}


def save_image_grid(images: torch.Tensor, path, nrow: int = 8) -> Path:
    """Write images as one grid (PNG, or the format of ``path``'s extension; no axes, one pixel per
    pixel, scaled up 4x for viewing; 8 bits per channel). The write is atomic: an existing file is
    replaced whole."""
    path = Path(path)
    fmt = image_format(path)
    grid = image_grid(images, nrow)
    big = grid.repeat_interleave(4, 0).repeat_interleave(4, 1).mul(255).round().to(torch.uint8).contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt not in PILLOW_FORMATS:
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ValueError(f"writing .{fmt} needs matplotlib: pip install matplotlib, or write a .png") from None
        with atomic_write(path) as f:
            plt.imsave(f, big.numpy(), cmap="gray", vmin=0, vmax=255, format=fmt)
        return path
    from PIL import Image
    image = Image.fromarray(big.numpy())  # (H, W): greyscale "L"; (H, W, 3): "RGB"
    with atomic_write(path) as f:
        image.save(f, format=PILLOW_FORMATS[fmt])
    return path
