"""Pictures of images: grids of samples, denoising strips, two pixels as a plane, nearest copies.

Like ``toydiff.viz`` (whose themes these share), the functions take arrays and an optional
``ax`` and return the figure; no model is called here.
"""

from __future__ import annotations

import math

import matplotlib as mpl
import numpy as np

from toydiff.errors import ToydiffError
from toydiff.viz.style import figure, plain_axes, themed

TEN_COLOURS = mpl.colormaps["tab10"].colors  # one per digit


def to_rgb(x) -> np.ndarray:
    """Images in [-1, 1], shape (n, H, W, C) with C = 1 or 3, as RGB in [0, 1], (n, H, W, 3)."""
    x = (np.clip(np.asarray(x, np.float32), -1, 1) + 1) / 2
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def tile(x, ncols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile images (n, H, W, C) into one RGB picture with ``pad`` grey pixels between them."""
    rgb = to_rgb(x)
    n, h, w, _ = rgb.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    out = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), 0.25, np.float32)
    for i in range(n):
        r, c = divmod(i, ncols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        out[top : top + h, left : left + w] = rgb[i]
    return out


@themed
def image_grid(x, ncols: int | None = None, ax=None, title=None, size=5.0, theme=None):
    """Draw images (n, H, W, C) as a grid; returns the figure."""
    picture = tile(x, ncols)
    if ax is None:
        ratio = picture.shape[0] / picture.shape[1]
        ax = figure(1, size, theme, height=size * ratio + (0.4 if title else 0.1)).subplots()
    ax.imshow(picture, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, color=theme["text"])
    return ax.figure


def save_grid(x, path, ncols: int | None = None, scale: int = 8) -> None:
    """Write images (n, H, W, C) as a PNG grid, each pixel ``scale`` pixels wide."""
    from PIL import Image

    picture = np.repeat(np.repeat(tile(x, ncols), scale, axis=0), scale, axis=1)
    Image.fromarray((picture * 255).round().astype(np.uint8)).save(path)


CLIP_FORMATS = (".gif", ".mp4")
"""The files a grid of clips can be written as."""


def clip_frames(x, ncols: int | None = None, scale: int = 8, pad: int = 1) -> np.ndarray:
    """Clips (n, F, H, W, C) as F grid pictures, uint8 RGB (F, rows, columns, 3): frame k of
    every clip tiled into picture k, each pixel ``scale`` pixels wide (even sides, for video)."""
    x = np.asarray(x, np.float32)
    pictures = []
    for k in range(x.shape[1]):
        picture = np.repeat(np.repeat(tile(x[:, k], ncols, pad), scale, axis=0), scale, axis=1)
        pictures.append((picture * 255).round().astype(np.uint8))
    out = np.stack(pictures)
    return out[:, : out.shape[1] // 2 * 2, : out.shape[2] // 2 * 2]


def save_clip_grid(x, path, ncols: int | None = None, scale: int = 8, fps: int = 6) -> None:
    """Write clips (n, F, H, W, C) as one playing grid: a looping GIF (Pillow) or an H.264 MP4
    (the ffmpeg of ``imageio-ffmpeg``), by the suffix of ``path``."""
    import pathlib

    frames = clip_frames(x, ncols, scale)
    path = pathlib.Path(path)
    if path.suffix == ".gif":
        from PIL import Image

        first, *rest = (Image.fromarray(f) for f in frames)
        first.save(path, save_all=True, append_images=rest, duration=1000 // fps, loop=0)
        return
    if path.suffix != ".mp4":
        raise ValueError(f"clips are written as {' or '.join(CLIP_FORMATS)}, not {path.suffix}")
    import imageio_ffmpeg

    height, width = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        quality=8,
        macro_block_size=1,
    )
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()


@themed
def clip_strip(clips, ax=None, title=None, theme=None, size: float = 6.0):
    """Clips (n, F, H, W, C) as a grid: a row per clip, its F frames left to right; returns
    the figure (``size`` inches wide when a new one is made)."""
    clips = np.asarray(clips)
    n, frames = clips.shape[:2]
    grid = clips.reshape(n * frames, *clips.shape[2:])
    return image_grid(grid, ncols=frames, ax=ax, title=title, size=size, theme=theme)


OPENING_STEPS = (0, 5, 10, 20, 30, 40, 50)
"""The denoising steps the opening strip shows by default (of a 50-step run)."""


@themed
def opening_strip(traj, shown=OPENING_STEPS, index=0, ax=None, title=None, theme=None):
    """One clip becoming a video: a row per shown step of its trajectory, its frames left to
    right, each row labelled by its step ("noise" for step 0).

    Args:
        traj: clip trajectories, (steps + 1, n, F, H, W, C).
        shown: the steps to show, each in 0..steps.
        index: which of the n clips.
        ax: axes to draw into.
        title: the title.

    Returns:
        The figure.

    Raises:
        ToydiffError: a shown step outside the trajectory, or an index beyond its clips.
    """
    traj = np.asarray(traj)
    steps, n = len(traj) - 1, traj.shape[1]
    for k in shown:
        if not 0 <= k <= steps:
            raise ToydiffError(
                f"step {k} is not in the trajectory: it has {steps} steps (0..{steps})"
            )
    if not 0 <= index < n:
        raise ToydiffError(f"clip {index} is not in the trajectory: it has {n} clips")
    rows = traj[list(shown), index]  # (rows, F, H, W, C)
    fig = clip_strip(rows, ax=ax, title=title, size=1.0 + 0.75 * rows.shape[1], theme=theme)
    ax = fig.axes[0] if ax is None else ax
    ax.set_axis_on()
    for spine in ax.spines.values():
        spine.set_visible(False)
    h = rows.shape[2]
    ax.set_xticks([])
    ax.set_yticks(
        [1 + r * (h + 1) + h / 2 - 0.5 for r in range(len(rows))],
        ["noise" if k == 0 else f"step {k}" for k in shown],
        color=theme["text"],
    )
    ax.tick_params(length=0)
    return fig


def trajectory_strip(traj, frames: int = 8, ax=None, title=None, theme=None):
    """Frames of trajectories (steps + 1, n, H, W, C): a row per sample, noise to image."""
    traj = np.asarray(traj)
    idx = np.linspace(0, len(traj) - 1, frames).round().astype(int)
    n = traj.shape[1]
    grid = np.stack([traj[i] for i in idx], axis=1).reshape(n * frames, *traj.shape[2:])
    return image_grid(grid, ncols=frames, ax=ax, title=title, theme=theme)


@themed
def pixel_pair(x, labels, a, b, class_names=None, ax=None, theme=None):
    """Every image as a point in the plane of two of its pixels, coloured by class.

    Args:
        x: images (n, H, W, 1).
        labels: class ids (n,).
        a, b: the two pixels, as (row, column).
        class_names: names for the legend.
        ax: axes to draw into.

    Returns:
        The figure.
    """
    fig, ax = plain_axes(ax, theme, size=(5.5, 5.0))
    x, labels = np.asarray(x), np.asarray(labels)
    jitter = np.random.default_rng(0).uniform(-0.03, 0.03, (len(x), 2))  # grey levels repeat
    for k in np.unique(labels):
        pts = np.stack([x[labels == k, a[0], a[1], 0], x[labels == k, b[0], b[1], 0]], -1)
        pts = pts + jitter[labels == k]
        name = str(k) if class_names is None else class_names[k]
        ax.scatter(*pts.T, s=9, color=TEN_COLOURS[k % 10], label=name, alpha=0.7, lw=0)
    ax.set_xlabel(f"pixel {a}")
    ax.set_ylabel(f"pixel {b}")
    ax.set_xlim(-1.15, 1.15)
    ax.set_ylim(-1.15, 1.15)
    ax.set_aspect("equal")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2, frameon=False)
    return fig


def nearest_pairs(samples, nearest, ax=None, title=None, theme=None):
    """Samples (n, H, W, C) above their nearest training images: a copy looks the same twice."""
    both = np.concatenate([np.asarray(samples), np.asarray(nearest)])
    return image_grid(both, ncols=len(samples), ax=ax, title=title, theme=theme)


@themed
def captioned(x, captions, ncols: int = 4, size: float = 2.2, theme=None):
    """Images (n, H, W, C) each with its caption underneath; returns the figure."""
    n = len(x)
    nrows = math.ceil(n / ncols)
    fig = figure(ncols, size, theme, height=size * 1.2 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, image, caption in zip(axes, to_rgb(x), captions, strict=False):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(_wrap(caption), fontsize=theme["font_size"] * 0.8, color=theme["text"])
    return fig


def _wrap(caption: str, width: int = 18) -> str:
    """A caption broken onto lines of at most ``width`` characters."""
    lines, line = [], ""
    for word in caption.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


@themed
def similarity_matrix(sim, captions, x=None, ax=None, title=None, theme=None):
    """Cosine similarities (n, n) of images (rows) and captions (columns), with the values.

    Args:
        sim: (n, m) similarities.
        captions: the m captions (column labels).
        x: the n images, drawn as row labels (optional).
        ax: axes to draw into.
        title: the title.

    Returns:
        The figure.
    """
    sim = np.asarray(sim)
    n, m = sim.shape
    fig, ax = plain_axes(ax, theme, size=(1.0 + 0.75 * m, 1.6 + 0.62 * n))
    ax.imshow(sim, cmap="magma", vmin=-1, vmax=1)
    for i in range(n):
        for j in range(m):
            ax.text(j, i, f"{sim[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if sim[i, j] > 0.3 else "white")  # fmt: skip
    ax.set_xticks(range(m), [_wrap(c, 12) for c in captions], rotation=90, fontsize=8)
    ax.set_yticks([])
    if x is not None:
        rgb = to_rgb(x)
        for i in range(n):
            ax.imshow(rgb[i], extent=(-1.45, -0.55, i + 0.45, i - 0.45), interpolation="nearest")
        ax.set_xlim(-1.5, m - 0.5)
        ax.set_ylim(n - 0.5, -0.5)
    ax.set_title(title or "cosine similarity: images (rows) and captions (columns)")
    return fig


@themed
def embedding_map(z, labels, names, words=None, word_z=None, ax=None, title=None, theme=None):
    """A 2D picture of a shared space: image embeddings (n, D) projected on their first two
    principal axes, coloured by an attribute, with words' text embeddings as labelled stars.

    Args:
        z: image embeddings (n, D).
        labels: value ids (n,) of the colouring attribute.
        names: the value names.
        words: words to place (optional), with their embeddings ``word_z`` (k, D).
        ax: axes to draw into.
        title: the title.

    Returns:
        The figure.
    """
    z = np.asarray(z, np.float64)
    mean = z.mean(axis=0)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    pts = (z - mean) @ vt[:2].T
    fig, ax = plain_axes(ax, theme, size=(6.0, 5.0))
    for k, name in enumerate(names):
        sel = np.asarray(labels) == k
        ax.scatter(*pts[sel].T, s=10, alpha=0.6, lw=0, color=TEN_COLOURS[k % 10], label=name)
    if words is not None:
        w = (np.asarray(word_z, np.float64) - mean) @ vt[:2].T
        ax.scatter(*w.T, marker="*", s=160, color=theme["text"], zorder=5)
        for (px, py), word in zip(w, words, strict=True):
            ax.annotate(
                word, (px, py), xytext=(4, 4), textcoords="offset points", color=theme["text"]
            )
    ax.set_xlabel("first principal axis")
    ax.set_ylabel("second principal axis")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2, frameon=False)
    if title:
        ax.set_title(title)
    return fig
