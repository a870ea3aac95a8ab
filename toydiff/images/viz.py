"""Pictures of images: grids of samples and of denoising trajectories.

Like ``toydiff.viz``, these take arrays and an optional ``ax`` and return the figure; no model
is called here.
"""

from __future__ import annotations

import math

import numpy as np


def to_rgb(x) -> np.ndarray:
    """Images in [-1, 1], shape (n, H, W, C) with C = 1 or 3, as RGB in [0, 1], (n, H, W, 3)."""
    x = (np.clip(np.asarray(x, np.float32), -1, 1) + 1) / 2
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def tile(x, ncols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile images (n, H, W, C) into one RGB picture with ``pad`` dark pixels between them."""
    rgb = to_rgb(x)
    n, h, w, _ = rgb.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    out = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), 0.15, np.float32)
    for i in range(n):
        r, c = divmod(i, ncols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) :][:, :w] = rgb[i]
    return out


def image_grid(x, ncols: int | None = None, ax=None, title: str | None = None):
    """Draw images (n, H, W, C) as a grid; returns the figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(tile(x, ncols), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure


def save_grid(x, path, ncols: int | None = None, scale: int = 8) -> None:
    """Write images (n, H, W, C) as a PNG grid, each pixel ``scale`` pixels wide."""
    from PIL import Image

    picture = np.repeat(np.repeat(tile(x, ncols), scale, axis=0), scale, axis=1)
    Image.fromarray((picture * 255).round().astype(np.uint8)).save(path)


def trajectory_strip(traj, frames: int = 8, ax=None):
    """Draw a few frames of trajectories (steps + 1, n, H, W, C): rows are samples, columns time."""
    traj = np.asarray(traj)
    idx = np.linspace(0, len(traj) - 1, frames).round().astype(int)
    n = traj.shape[1]
    grid = np.stack([traj[i] for i in idx], axis=1).reshape(n * frames, *traj.shape[2:])
    return image_grid(grid, ncols=frames, ax=ax)
