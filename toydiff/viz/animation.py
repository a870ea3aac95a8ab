"""Animations: moving point clouds and vector fields, embedded in notebooks or saved as GIF/MP4.

Animations are ``FuncAnimation`` objects: ``to_html`` embeds one in a notebook (offline: no CDN
links), ``save_gif`` and ``save_mp4`` write files. Sizes and dpi keep a 60-frame GIF well under
2 MB and give video frames even pixel sizes, as H.264 requires.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.animation import FFMpegWriter, FuncAnimation, PillowWriter
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from PIL import Image

from toydiff.errors import DataError, ToydiffError
from toydiff.viz.plots import find_quiver, tail_segments, update_vector_field, vector_field
from toydiff.viz.style import (
    ANIM_SIZE,
    LIM,
    as_paths,
    class_legend,
    draw_data,
    figure,
    new_axes,
    point_colors,
    themed,
)


def _point_panel(ax: Axes, run: np.ndarray, rgba: np.ndarray, tail: int) -> Callable:
    """Draw frame 0 of one (T, n, 2) run into ax; return update(i) that shows frame i."""
    # Moving artists are not antialiased: soft edges add colours that roughly double GIF size.
    trail = LineCollection([], linewidths=1.0, antialiaseds=False, zorder=2) if tail else None
    if trail is not None:
        ax.add_collection(trail)
    dots = ax.scatter(*run[0].T, s=9, c=rgba, lw=0, antialiased=False, zorder=3)

    def update(i: int) -> None:
        i = min(i, len(run) - 1)  # a shorter run holds its last frame
        dots.set_offsets(run[i])
        if trail is not None:
            segs, colors = tail_segments(run, i, tail, rgba)
            trail.set_segments(segs)
            trail.set_color(colors)

    return update


def _runs(frames) -> list[np.ndarray]:
    """frames as a list of (T, n, 2) arrays: one array, or a list of several."""
    if isinstance(frames, list | tuple):
        return [as_paths(f, f"frames[{k}]") for k, f in enumerate(frames)]
    return [as_paths(frames, "frames")]


def _animation(fig: Figure, update: Callable, n_frames: int, interval: int) -> FuncAnimation:
    """Lay fig out once at frame 0, freeze that layout, and animate update over n_frames."""
    update(0)
    fig.draw_without_rendering()  # constrained layout runs here, once, not on every frame
    fig.set_layout_engine("none")  # so axes cannot jitter and frames render ~2x faster
    return FuncAnimation(fig, update, frames=n_frames, interval=interval, blit=False)


@themed
def animate_points(
    frames,
    data=None,
    labels=None,
    titles=None,
    interval: int = 60,
    tail: int = 0,
    theme=None,
    lim: float = LIM,
    class_names=None,
) -> FuncAnimation:
    """Animate moving points, such as sampler trajectories; several runs play side by side.

    Args:
        frames: (T, n, 2) positions per frame, or a list of such arrays, one panel each (e.g.
            DDPM beside the same update without noise). Shorter runs hold their last frame.
        data: optional (N, 2) training points, drawn faintly in every panel.
        labels: optional (n,) int classes colouring the points in every panel, with a legend.
        titles: one title per panel (a string is allowed for a single panel).
        interval: milliseconds between frames in the notebook player.
        tail: steps of fading trail behind each point; 0 for none.
        theme: ``"dark"``, ``"light"`` or ``None`` for the module default.
        lim: half-width of the square view.
        class_names: names of the classes by label; defaults to ("people", "dogs", "cats").

    Returns:
        The FuncAnimation (frames = the longest run's T); see ``to_html``, ``save_gif`` and
        ``save_mp4``.
    """
    runs = _runs(frames)
    titles = [titles] if isinstance(titles, str) else titles
    if titles is not None and len(titles) != len(runs):
        raise ToydiffError(f"got {len(titles)} titles for {len(runs)} panels")
    fig = figure(len(runs), ANIM_SIZE, theme)
    axes = fig.subplots(1, len(runs), squeeze=False)[0]
    updates = []
    for k, (ax, run) in enumerate(zip(axes, runs, strict=True)):
        new_axes(ax, theme=theme, lim=lim)
        draw_data(ax, data, theme)
        updates.append(_point_panel(ax, run, point_colors(labels, run.shape[1], theme), tail))
        if titles is not None:
            ax.set_title(titles[k])
    if labels is not None:
        class_legend(axes[-1], labels, class_names, theme)
    n_frames = max(len(r) for r in runs)
    counter = axes[-1].text(
        0.98,
        0.02,
        "",
        transform=axes[-1].transAxes,
        ha="right",
        va="bottom",
        color=theme["muted"],
        fontsize=theme["font_size"] - 2,
    )

    def update(i: int) -> None:
        for fn in updates:
            fn(i)
        counter.set_text(f"step {i}/{n_frames - 1}")

    return _animation(fig, update, n_frames, interval)


@themed
def animate_field(
    grid_points,
    vector_frames,
    ts,
    data=None,
    theme=None,
    normalize: bool = True,
    color_by_magnitude: bool = False,
    interval: int = 120,
    lim: float = LIM,
) -> FuncAnimation:
    """Animate a vector field over time, with t in the title (chapter 5).

    Args:
        grid_points: (k, 2) arrow positions, e.g. ``toydiff.metrics.grid(30, 1.5)``.
        vector_frames: (T, k, 2) field at each of T times.
        ts: (T,) the times, shown as "t = 0.50".
        data: optional (N, 2) training points, drawn faintly.
        theme: ``"dark"``, ``"light"`` or ``None`` for the module default.
        normalize: draw directions only (unit arrows).
        color_by_magnitude: colour arrows by the field's length, with a colorbar.
        interval: milliseconds between frames in the notebook player.
        lim: half-width of the square view.

    Returns:
        The FuncAnimation with T frames.
    """
    vf = as_paths(vector_frames, "vector_frames")
    ts = np.asarray(ts, dtype=np.float64).reshape(-1)
    if len(ts) != len(vf):
        raise DataError(f"need one time per frame, got {len(ts)} times for {len(vf)} frames")
    fig, ax = new_axes(size=ANIM_SIZE, theme=theme, lim=lim)
    vector_field(
        grid_points,
        vf[0],
        ax=ax,
        normalize=normalize,
        color_by_magnitude=color_by_magnitude,
        data=data,
        theme=theme,
        lim=lim,
    )
    quiver = find_quiver(ax)

    def update(i: int) -> None:
        update_vector_field(quiver, vf[i], normalize=normalize)
        ax.set_title(f"t = {ts[i]:.2f}")

    return _animation(fig, update, len(vf), interval)


def to_html(anim: FuncAnimation) -> str:
    """The animation as a self-contained HTML/JavaScript player for a notebook.

    Args:
        anim: an animation from this module.

    Returns:
        HTML text (matplotlib's ``anim.to_jshtml()`` player); display it with
        ``IPython.display.HTML``. Matplotlib's player loads Font Awesome from a CDN for its button
        icons; here the link is removed and each icon is a plain character instead, so the player
        works offline and the page fetches nothing from outside.
    """
    html = _CDN_LINK.sub("", anim.to_jshtml())
    return _FA_ICON.sub(lambda m: _PLAYER_ICONS[m.group(1)], html)


_CDN_LINK = re.compile(r"<link[^>]*href=\"https?://[^\"]*\"[^>]*>", re.S)


_FA_ICON = re.compile(r'<i class="fa (fa-[a-z-]+(?: fa-flip-horizontal)?)"></i>')


_PLAYER_ICONS = {  # the player's Font Awesome icons as characters every font has
    "fa-minus": "\u2212",
    "fa-fast-backward": "\u00ab",
    "fa-step-backward": "\u2039",
    "fa-play fa-flip-horizontal": "\u25c0",
    "fa-pause": "||",
    "fa-play": "\u25b6",
    "fa-step-forward": "\u203a",
    "fa-fast-forward": "\u00bb",
    "fa-plus": "+",
}


def _save(anim: FuncAnimation, path, writer) -> Path:
    """Save anim with writer at the figure's own dpi and background."""
    fig = anim._fig
    path = Path(path)
    anim.save(path, writer=writer, dpi=fig.dpi, savefig_kwargs={"facecolor": fig.get_facecolor()})
    return path


class _GifWriter(PillowWriter):
    """PillowWriter that maps every frame to one shared palette of few colours, undithered.

    One palette (rather than one per frame) and no dithering keep frames similar, which LZW
    compresses well: a 60-frame, two-panel animation shrinks by about a third.
    """

    colors = 64

    def finish(self):
        frames = [f.convert("RGB") for f in self._frames]
        pal = _montage(frames[:: max(1, len(frames) // 4)]).quantize(
            self.colors, dither=Image.Dither.NONE
        )
        frames = [f.quantize(palette=pal, dither=Image.Dither.NONE) for f in frames]
        frames[0].save(
            self.outfile,
            save_all=True,
            append_images=frames[1:],
            duration=int(1000 / self.fps),
            loop=0,
        )


def _montage(frames: list) -> Image.Image:
    """Stack images vertically into one, to draw a palette from all of them."""
    w, h = frames[0].size
    out = Image.new("RGB", (w, h * len(frames)))
    for k, f in enumerate(frames):
        out.paste(f, (0, k * h))
    return out


def save_gif(anim: FuncAnimation, path, fps: int = 15) -> Path:
    """Write the animation as a looping GIF (Pillow).

    Args:
        anim: an animation from this module.
        path: output file, usually ``*.gif``.
        fps: frames per second.

    Returns:
        The path written.
    """
    return _save(anim, path, _GifWriter(fps=fps))


def save_mp4(anim: FuncAnimation, path, fps: int = 15) -> Path:
    """Write the animation as an H.264 MP4 that browsers play (yuv420p pixels).

    Uses the ffmpeg that ships with ``imageio-ffmpeg``, and points matplotlib's
    ``animation.ffmpeg_path`` at it so ``anim.to_html5_video()`` works afterwards too.

    Args:
        anim: an animation from this module; its pixel width and height must be even (they are
            for figures made here).
        path: output file, usually ``*.mp4``.
        fps: frames per second.

    Returns:
        The path written.
    """
    import imageio_ffmpeg  # imported here: only videos need it

    mpl.rcParams["animation.ffmpeg_path"] = imageio_ffmpeg.get_ffmpeg_exe()
    writer = FFMpegWriter(
        fps=fps, codec="h264", extra_args=["-pix_fmt", "yuv420p", "-movflags", "+faststart"]
    )
    return _save(anim, path, writer)
