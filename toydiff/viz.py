"""Pictures of the lab: point clouds, vector fields, trajectories, curves and animations.

Every function here takes numpy (or JAX) arrays that the caller computed with the library, draws
them with matplotlib and returns the figure (or the animation). Nothing here calls a model, so a
picture can always be redrawn from saved arrays.

- Spatial plots (``points``, ``vector_field``, ``trajectories``, ``random_walk``) draw into a
  square axes over [-lim, lim]^2, the square of the 30 x 30 field grid in ``REFERENCE.md``.
- Every plot function takes an optional ``ax``: pass one to draw into your own figure, or leave
  it out for a fresh figure. ``compare`` lays several such drawings side by side.
- Every plot function takes ``theme``: ``"dark"`` for projectors, ``"light"`` for print, or
  ``None`` for the module default (``set_theme`` / ``theme``). Theme rcParams apply only while a
  function here draws; global rcParams stay as they were.
- Figures are plain ``matplotlib.figure.Figure`` objects, made without pyplot, so nothing pops up
  and nothing is shown twice in a notebook; ``plt.show()`` is never called.
- Animations are ``FuncAnimation`` objects: ``to_html`` embeds one in a notebook, ``save_gif``
  and ``save_mp4`` write files. Sizes and dpi are chosen so a 60-frame GIF stays well under 2 MB
  and video frames have even pixel sizes, as H.264 requires.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
from cycler import cycler
from matplotlib.animation import FFMpegWriter, FuncAnimation, PillowWriter
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba, to_rgba_array
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.quiver import Quiver
from matplotlib.ticker import PercentFormatter
from PIL import Image

from toydiff.errors import DataError, ToydiffError
from toydiff.palettes import THEMES

CLASS_NAMES = ("people", "dogs", "cats")  # the story's labels of the inner, middle, outer arcs
DPI = 80  # screen dpi: 4.5 in -> 360 px frames keep GIFs small
ANIM_SIZE = 4.5  # inches per animation panel
LIM = 1.5  # half-width of the field grid in REFERENCE.md

_STATE = {"theme": "dark"}  # the module default, changed by set_theme and theme()


# ----------------------------------------------------------------------------- themes


def palette(name: str | dict | None = None) -> dict:
    """The colours and font sizes of a theme.

    Args:
        name: ``"dark"``, ``"light"``, ``None`` for the module default, or a theme dict (returned
            as is).

    Returns:
        The theme dict: ``background``, ``text``, ``muted``, ``grid``, ``data`` (training
        points), ``sample`` (generated points), ``classes`` (3 colours: people, dogs, cats),
        ``accent``, ``cmap``, ``font_size`` and ``title_size``.

    Raises:
        ToydiffError: (a ValueError) for an unknown name; the message lists the allowed ones.
    """
    if isinstance(name, dict):
        return name
    name = _STATE["theme"] if name is None else name
    if name not in THEMES:
        raise ToydiffError(f"unknown theme {name!r}; choose one of {sorted(THEMES)}")
    return THEMES[name]


def set_theme(name: str = "dark") -> None:
    """Make ``name`` the default theme of every figure this module draws from now on.

    Args:
        name: ``"dark"`` (projector: near-black background, light text, bright colours) or
            ``"light"`` (print: white background).

    Raises:
        ToydiffError: (a ValueError) for an unknown name.
    """
    _STATE["theme"] = palette(name)["name"]


@contextlib.contextmanager
def _as_default(name: str | None):
    """Make ``name`` the default theme inside a with-block."""
    old = _STATE["theme"]
    set_theme(old if name is None else name)
    try:
        yield palette()
    finally:
        _STATE["theme"] = old


def theme(name: str | None = None):
    """Context manager: draw with theme ``name`` inside the with-block, then restore the default.

    Example: ``with viz.theme("light"): fig = viz.points(x)``.

    Args:
        name: ``"dark"``, ``"light"``, or ``None`` to keep the current default.

    Returns:
        A context manager that yields the theme dict (see ``palette``).

    Raises:
        ToydiffError: (a ValueError) for an unknown name, on entering the block.
    """
    return _as_default(name)


def _rc(t: dict) -> dict:
    """rcParams for a theme dict."""
    bg, fg, muted = t["background"], t["text"], t["muted"]
    return {
        "figure.facecolor": bg,
        "axes.facecolor": bg,
        "savefig.facecolor": bg,
        "text.color": fg,
        "axes.labelcolor": fg,
        "axes.edgecolor": muted,
        "axes.titlecolor": fg,
        "xtick.color": muted,
        "ytick.color": muted,
        "xtick.labelcolor": fg,
        "ytick.labelcolor": fg,
        "grid.color": t["grid"],
        "font.size": t["font_size"],
        "axes.labelsize": t["font_size"],
        "axes.titlesize": t["title_size"],
        "figure.titlesize": t["title_size"] + 2,
        "xtick.labelsize": t["font_size"] - 2,
        "ytick.labelsize": t["font_size"] - 2,
        "legend.fontsize": t["font_size"] - 1,
        "legend.facecolor": bg,
        "legend.edgecolor": muted,
        "legend.labelcolor": fg,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.prop_cycle": cycler(color=[t["sample"], *t["classes"], t["data"]]),
        "image.cmap": t["cmap"],
        "lines.linewidth": 2.0,
    }


def _themed(fn: Callable) -> Callable:
    """Run a plot function inside its theme's rcParams, passing it the resolved theme dict."""

    @functools.wraps(fn)
    def wrapper(*args, theme=None, **kwargs):
        t = palette(theme)
        with mpl.rc_context(_rc(t)):
            return fn(*args, theme=t, **kwargs)

    return wrapper


# ----------------------------------------------------------------------------- input checks


def _points(x, name: str) -> np.ndarray:
    """Return x as a float (n, 2) array, or raise DataError naming the argument."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise DataError(f"{name} must be an (n, 2) array of points, got shape {a.shape}")
    return a


def _paths(x, name: str) -> np.ndarray:
    """Return x as a float (T, n, 2) array, or raise DataError naming the argument."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 3 or a.shape[2] != 2 or a.shape[0] == 0:
        raise DataError(f"{name} must be a (T, n, 2) array of paths, got shape {a.shape}")
    return a


def _labels(labels, n: int) -> np.ndarray:
    """Return labels as an int (n,) array, or raise DataError."""
    a = np.asarray(labels)
    if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer) or (a < 0).any():
        raise DataError(f"labels must be {n} non-negative ints, got {a.dtype} {a.shape}")
    return a


# ----------------------------------------------------------------------------- axes


def _even_inches(inches: float, dpi: int = DPI) -> float:
    """Round a length in inches so it is an even number of pixels at dpi."""
    return max(2, 2 * round(inches * dpi / 2)) / dpi


class _NotebookFigure(Figure):
    """A pyplot-free Figure that shows itself in Jupyter as a crisp (2x) PNG.

    Figures made without pyplot are not managed by a backend, so the notebook would otherwise
    print only their repr; being outside pyplot also means they are never shown twice.
    """

    def _repr_png_(self):
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=2 * self.dpi, bbox_inches="tight", facecolor="auto")
        png = buf.getvalue()
        width, height = struct.unpack(">II", png[16:24])  # from the PNG IHDR chunk
        return png, {"width": width // 2, "height": height // 2}


def _figure(ncols: int, size: float, t: dict, height: float | None = None) -> Figure:
    """A pyplot-free figure of ncols panels, each `size` inches wide, with even pixel sizes."""
    figsize = (_even_inches(size * ncols), _even_inches(height or size))
    return _NotebookFigure(
        figsize=figsize, dpi=DPI, facecolor=t["background"], layout="constrained"
    )


def _style(ax: Axes, t: dict) -> None:
    """Paint an axes (and its figure) in the theme's colours, for axes made elsewhere."""
    ax.figure.set_facecolor(t["background"])
    ax.set_facecolor(t["background"])
    for spine in ax.spines.values():
        spine.set_color(t["muted"])
    ax.tick_params(colors=t["muted"], labelcolor=t["text"])
    ax.xaxis.label.set_color(t["text"])
    ax.yaxis.label.set_color(t["text"])
    ax.title.set_color(t["text"])


def _plain_axes(ax: Axes | None, t: dict, size=(6.5, 4.5)) -> tuple[Figure, Axes]:
    """(fig, ax) for a non-spatial plot: the given axes, styled, or a fresh figure."""
    if ax is None:
        ax = _figure(1, size[0], t, height=size[1]).subplots()
    _style(ax, t)
    return ax.figure, ax


@_themed
def new_axes(ax=None, size: float = 5.0, theme=None, lim: float = LIM) -> tuple[Figure, Axes]:
    """A square, uncluttered axes over [-lim, lim]^2 for 2D points and fields.

    Args:
        ax: an existing axes to style and reuse; ``None`` makes a new figure.
        size: figure width and height in inches when a new figure is made.
        theme: ``"dark"``, ``"light"`` or ``None`` for the module default.
        lim: half-width of the square view.

    Returns:
        ``(fig, ax)``.
    """
    if ax is None:
        ax = _figure(1, size, theme).subplots()
    _style(ax, theme)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    step = 1 if 1 <= lim < 3 else lim  # unit ticks for the data square, else the edges
    ticks = [-step, 0, step]
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.spines[["top", "right"]].set_visible(False)
    return ax.figure, ax


def _draw_data(ax: Axes, data, t: dict, s: float = 10, alpha: float = 0.35, zorder=1) -> None:
    """Scatter training points faintly, as the backdrop of a plot; no-op for None."""
    if data is not None:
        d = _points(data, "data")
        ax.scatter(d[:, 0], d[:, 1], s=s, c=t["data"], alpha=alpha, lw=0, zorder=zorder)


def _class_name(k: int, class_names) -> str:
    """Display name of class k: the given name, the story's name, or 'class k'."""
    names = CLASS_NAMES if class_names is None else class_names
    return names[k] if k < len(names) else f"class {k}"


def _point_colors(labels, n: int, t: dict) -> np.ndarray:
    """(n, 4) RGBA: the class colour of each point, or the sample colour for no labels."""
    if labels is None:
        return np.tile(to_rgba(t["sample"]), (n, 1))
    classes = to_rgba_array(t["classes"])  # (3, 4)
    return classes[_labels(labels, n) % len(classes)]


def _class_legend(ax: Axes, labels, class_names, t: dict) -> None:
    """A legend with one coloured dot per class present in labels."""
    classes = t["classes"]
    handles = [
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            ms=9,
            color=classes[k % len(classes)],
            label=_class_name(k, class_names),
        )
        for k in np.unique(labels)
    ]
    ax.legend(handles=handles, loc="upper left", framealpha=0.8)


# ----------------------------------------------------------------------------- static plots


@_themed
def points(
    x,
    ax=None,
    labels=None,
    class_names=None,
    data=None,
    title=None,
    s: float = 12,
    theme=None,
    lim: float = LIM,
) -> Figure:
    """Scatter a 2D point cloud, optionally coloured by class, over faint training data.

    Args:
        x: (n, 2) points, for example samples.
        ax: axes to draw into; ``None`` makes a new figure.
        labels: optional (n,) int class of each point; colours points by class and adds a legend.
        class_names: names of the classes by label; defaults to ("people", "dogs", "cats").
        data: optional (N, 2) training points, drawn faintly underneath.
        title: axes title.
        s: marker area in points^2.
        theme: ``"dark"``, ``"light"`` or ``None`` for the module default.
        lim: half-width of the square view.

    Returns:
        The figure.
    """
    x = _points(x, "x")
    fig, ax = new_axes(ax, theme=theme, lim=lim)
    _draw_data(ax, data, theme)
    colors = _point_colors(labels, len(x), theme)
    ax.scatter(x[:, 0], x[:, 1], s=s, c=colors, lw=0, alpha=0.85, zorder=2)
    if labels is not None:
        _class_legend(ax, labels, class_names, theme)
    if title:
        ax.set_title(title)
    return fig


def _spacing(grid_points: np.ndarray, lim: float) -> float:
    """Smallest gap between distinct grid coordinates; lim/15 for a single point."""
    gaps = [np.diff(np.unique(np.round(c, 6))) for c in grid_points.T]
    gaps = np.concatenate(gaps)
    return float(gaps.min()) if gaps.size else lim / 15


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero."""
    norm = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norm > 0, norm, 1.0)


@_themed
def vector_field(
    grid_points,
    vectors,
    ax=None,
    normalize: bool = True,
    color_by_magnitude: bool = False,
    data=None,
    title=None,
    theme=None,
    lim: float = LIM,
) -> Figure:
    """Quiver plot of a 2D vector field, such as -eps_hat on the 30 x 30 grid.

    With ``normalize`` every arrow has length 0.8 grid spacings, so the picture shows where the
    field points; the arrows' U, V data are unit vectors. Without it the longest arrow is 0.9
    grid spacings long and the others scale with it.

    Args:
        grid_points: (k, 2) arrow positions, e.g. ``toydiff.metrics.grid(30, 1.5)``.
        vectors: (k, 2) field values at those positions.
        ax: axes to draw into; ``None`` makes a new figure.
        normalize: draw directions only (unit arrows).
        color_by_magnitude: colour each arrow by the field's length |v| and add a colorbar.
        data: optional (N, 2) training points, drawn faintly underneath.
        title: axes title.
        theme: ``"dark"``, ``"light"`` or ``None`` for the module default.
        lim: half-width of the square view.

    Returns:
        The figure. ``update_vector_field`` redraws it with new vectors.
    """
    xy, v = _points(grid_points, "grid_points"), _points(vectors, "vectors")
    if len(xy) != len(v):
        raise DataError(f"need one vector per grid point, got {len(v)} for {len(xy)}")
    fig, ax = new_axes(ax, theme=theme, lim=lim)
    _draw_data(ax, data, theme, zorder=3)
    mag = np.linalg.norm(v, axis=1)  # (k,)
    h = _spacing(xy, lim)
    uv = _unit(v) if normalize else v
    scale = 1 / (0.8 * h) if normalize else max(mag.max(), 1e-12) / (0.9 * h)
    style = dict(angles="xy", scale_units="xy", scale=scale, pivot="mid", zorder=2)
    if color_by_magnitude:
        q = ax.quiver(xy[:, 0], xy[:, 1], uv[:, 0], uv[:, 1], mag, cmap=theme["cmap"], **style)
        fig.colorbar(q, ax=ax, shrink=0.8, label="|field|")
    else:
        q = ax.quiver(xy[:, 0], xy[:, 1], uv[:, 0], uv[:, 1], color=theme["sample"], **style)
    if title:
        ax.set_title(title)
    return fig


def _find_quiver(artist) -> Quiver:
    """The one Quiver in a Figure or Axes (or the Quiver itself)."""
    if isinstance(artist, Quiver):
        return artist
    axes = artist.axes if isinstance(artist, Figure) else [artist]
    found = [c for ax in axes for c in ax.collections if isinstance(c, Quiver)]
    if len(found) != 1:
        raise ToydiffError(f"expected exactly one quiver plot, found {len(found)}")
    return found[0]


def update_vector_field(quiver, vectors, normalize: bool = True) -> Quiver:
    """Replace the arrows of a ``vector_field`` plot in place (fast: no new artists).

    Arrow positions and scale stay as drawn; colours and colour limits follow the new
    magnitudes when the plot was coloured by magnitude. Call ``fig.canvas.draw_idle()``
    afterwards in an interactive canvas.

    Args:
        quiver: the Quiver artist, or a Figure or Axes that holds exactly one.
        vectors: (k, 2) new field values, one per arrow.
        normalize: draw directions only (unit arrows), as in ``vector_field``.

    Returns:
        The updated Quiver.
    """
    q = _find_quiver(quiver)
    v = _points(vectors, "vectors")
    if len(v) != q.N:
        raise DataError(f"the plot has {q.N} arrows, got {len(v)} vectors")
    uv = _unit(v) if normalize else v
    if q.get_array() is None:
        q.set_UVC(uv[:, 0], uv[:, 1])
        return q
    mag = np.linalg.norm(v, axis=1)
    q.set_UVC(uv[:, 0], uv[:, 1], mag)
    q.set_clim(mag.min(), max(mag.max(), mag.min() + 1e-12))
    return q


def tail_segments(paths: np.ndarray, i: int, tail: int, rgba: np.ndarray, alpha=0.7):
    """Segments of the last `tail` steps before frame i, fading with age.

    Args:
        paths: (T, n, 2) positions.
        i: the current frame.
        tail: how many steps to draw.
        rgba: (n, 4) colour of each particle.
        alpha: opacity of the newest segment.

    Returns:
        ``(segments (m * n, 2, 2), colours (m * n, 4))`` with m = min(tail, i).
    """
    k0 = max(0, i - tail)
    m = i - k0
    segs = np.stack([paths[k0:i], paths[k0 + 1 : i + 1]], axis=2)  # (m, n, 2, 2)
    colors = np.repeat(rgba[None], m, axis=0)  # (m, n, 4)
    colors[..., 3] = alpha * (np.arange(1, m + 1) / max(m, 1))[:, None]
    return segs.reshape(-1, 2, 2), colors.reshape(-1, 4)


@_themed
def trajectories(
    traj,
    ax=None,
    tail: int = 10,
    data=None,
    highlight=None,
    title=None,
    theme=None,
    lim: float = LIM,
) -> Figure:
    """Final positions of sampler trajectories with fading tails of their last steps.

    Args:
        traj: (T, n, 2) positions of n particles over T steps; traj[-1] is the result.
        ax: axes to draw into; ``None`` makes a new figure.
        tail: how many final steps to draw as line segments, fading with age (a LineCollection).
        data: optional (N, 2) training points, drawn faintly underneath.
        highlight: index of one particle whose whole path is drawn bold, from a ring at its
            start to a dot at its end.
        title: axes title.
        theme: ``"dark"``, ``"light"`` or ``None`` for the module default.
        lim: half-width of the square view.

    Returns:
        The figure.
    """
    traj = _paths(traj, "traj")
    fig, ax = new_axes(ax, theme=theme, lim=lim)
    _draw_data(ax, data, theme)
    rgba = _point_colors(None, traj.shape[1], theme)
    if tail > 0 and len(traj) > 1:
        segs, colors = tail_segments(traj, len(traj) - 1, tail, rgba)
        ax.add_collection(LineCollection(segs, colors=colors, linewidths=1.0, zorder=2))
    ax.scatter(traj[-1, :, 0], traj[-1, :, 1], s=10, c=rgba, lw=0, zorder=3)
    if highlight is not None:
        path = traj[:, highlight]  # (T, 2)
        ax.plot(path[:, 0], path[:, 1], color=theme["accent"], lw=2.5, zorder=4)
        ax.scatter(*path[0], s=80, facecolors="none", edgecolors=theme["accent"], lw=2, zorder=4)
        ax.scatter(*path[-1], s=60, c=theme["accent"], zorder=5)
    if title:
        ax.set_title(title)
    return fig


@_themed
def random_walk(paths, ax=None, data=None, title=None, theme=None, lim: float = LIM) -> Figure:
    """Forward-diffusion random walks leaving the data, fading as time goes on.

    Args:
        paths: (T, n, 2) positions; paths[0] are the clean points, later rows are noisier.
        ax: axes to draw into; ``None`` makes a new figure.
        data: optional (N, 2) training points, drawn on top so the start stays visible.
        title: axes title.
        theme: ``"dark"``, ``"light"`` or ``None`` for the module default.
        lim: half-width of the square view (noisy walks leave it; they are clipped).

    Returns:
        The figure.
    """
    paths = _paths(paths, "paths")
    fig, ax = new_axes(ax, theme=theme, lim=lim)
    steps, n = len(paths) - 1, paths.shape[1]
    if steps > 0:
        age = np.linspace(0.0, 1.0, steps)  # 0 at the data, 1 at the last step
        start, end = to_rgba_array([theme["sample"], theme["muted"]])
        rgb = (1 - age[:, None]) * start[None] + age[:, None] * end[None]  # (steps, 4)
        rgb[:, 3] = 0.9 - 0.75 * age
        segs = np.stack([paths[:-1], paths[1:]], axis=2).reshape(-1, 2, 2)  # (steps * n, 2, 2)
        colors = np.repeat(rgb, n, axis=0)
        ax.add_collection(LineCollection(segs, colors=colors, linewidths=0.9, zorder=2))
    ax.scatter(paths[-1, :, 0], paths[-1, :, 1], s=8, c=theme["muted"], lw=0, zorder=3)
    if data is not None:  # on top, in the text colour, so the walks' start stays visible
        d = _points(data, "data")
        ax.scatter(d[:, 0], d[:, 1], s=12, c=theme["text"], lw=0, zorder=4)
    if title:
        ax.set_title(title)
    return fig


def _moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of each run of `window` consecutive values: (len(x) - window + 1,)."""
    return np.convolve(x, np.ones(window) / window, mode="valid")


@_themed
def loss_curve(
    losses, ax=None, smooth: int = 100, title=None, log: bool = True, theme=None
) -> Figure:
    """Training loss: the raw values faint, their moving average bold.

    Args:
        losses: (steps,) loss per step, or a dict name -> (steps,) to compare objectives (each
            gets its own colour and a legend entry).
        ax: axes to draw into; ``None`` makes a new figure.
        smooth: moving-average window in steps (clipped to the number of steps).
        title: axes title.
        log: log-scale the loss axis.
        theme: ``"dark"``, ``"light"`` or ``None`` for the module default.

    Returns:
        The figure.
    """
    series = losses if isinstance(losses, dict) else {None: losses}
    fig, ax = _plain_axes(ax, theme)
    colors = [theme["sample"], *theme["classes"]]
    for k, (name, y) in enumerate(series.items()):
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        c = colors[k % len(colors)]
        ax.plot(np.arange(len(y)), y, color=c, alpha=0.25, lw=1)
        w = max(1, min(smooth, len(y)))
        ax.plot(np.arange(w - 1, len(y)), _moving_average(y, w), color=c, lw=2.2, label=name)
    if log:
        ax.set_yscale("log", nonpositive="mask")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    if isinstance(losses, dict):
        ax.legend(framealpha=0.8)
    if title:
        ax.set_title(title)
    return fig


def _vline(ax: Axes, x: float, text: str, t: dict, top: bool = True) -> None:
    """A dashed accent vertical line at x, annotated near the top (or bottom) of the axes."""
    ax.axvline(x, color=t["accent"], ls="--", lw=1.8, zorder=1)
    ax.annotate(
        text,
        (x, 1.0 if top else 0.0),
        xycoords=("data", "axes fraction"),
        xytext=(6, -6 if top else 6),
        textcoords="offset points",
        ha="left",
        va="top" if top else "bottom",
        color=t["accent"],
    )


@_themed
def phase_curves(
    t, cos_centroid, cos_curve, t_star=None, ax=None, title=None, theme=None
) -> Figure:
    """Where the field points as noise falls: toward the centre, then toward the spiral.

    The two curves come from ``toydiff.metrics.phase_curves``; t* from
    ``toydiff.metrics.phase_change_time`` is where the second overtakes the first (chapter 5).

    Args:
        t: (T,) times in [0, 1], any order; plotted ascending (t = 1 is the noisiest).
        cos_centroid: (T,) mean cosine between the field and the direction to the data's centre.
        cos_curve: (T,) mean cosine between the field and the direction to the nearest spiral
            point.
        t_star: the phase-change time, marked by a vertical line and "t* = 0.38"; None or nan
            draws no marker.
        ax: axes to draw into; ``None`` makes a new figure.
        title: axes title.
        theme: ``"dark"``, ``"light"`` or ``None`` for the module default.

    Returns:
        The figure.
    """
    order = np.argsort(np.asarray(t, dtype=np.float64).reshape(-1))
    ts = np.asarray(t, dtype=np.float64).reshape(-1)[order]
    fig, ax = _plain_axes(ax, theme)
    ax.plot(
        ts,
        np.asarray(cos_centroid).reshape(-1)[order],
        color=theme["classes"][0],
        label="cosine with direction to centre",
    )
    ax.plot(
        ts,
        np.asarray(cos_curve).reshape(-1)[order],
        color=theme["sample"],
        label="cosine with direction to nearest spiral point",
    )
    if t_star is not None and np.isfinite(t_star):
        _vline(ax, float(t_star), f"t* = {t_star:.2f}", theme)
    ax.set_xlim(min(0.0, ts.min()), max(1.0, ts.max()))
    ax.set_xlabel("time t  (0 = clean, 1 = pure noise)")
    ax.set_ylabel("mean cosine over the grid")
    ax.legend(loc="best", fontsize=theme["font_size"] - 3, framealpha=0.8)
    if title:
        ax.set_title(title)
    return fig


def _series_color(name, k: int, t: dict) -> str:
    """Colour of the k-th named series: its class colour for the story's names, else a cycle."""
    if name in CLASS_NAMES:
        return t["classes"][CLASS_NAMES.index(name)]
    return [t["sample"], t["accent"], *t["classes"]][k % 5]


@_themed
def cfg_sweep(
    ws, accuracies, ax=None, default_w=None, target: float = 0.95, title=None, theme=None
) -> Figure:
    """Class accuracy against the classifier-free guidance weight w (chapter 8).

    w follows the toydiff convention eps = eps_u + w (eps_c - eps_u): w = 0 is unconditional,
    w = 1 plain conditional.

    Args:
        ws: (W,) guidance weights.
        accuracies: (W,) accuracy in [0, 1] at each w, or a dict class name -> (W,) array
            (the story's names get their class colours).
        ax: axes to draw into; ``None`` makes a new figure.
        default_w: the library's default weight, marked by a vertical line; None for none.
        target: the accuracy the chapter asks for, drawn as a horizontal line.
        title: axes title.
        theme: ``"dark"``, ``"light"`` or ``None`` for the module default.

    Returns:
        The figure.
    """
    ws = np.asarray(ws, dtype=np.float64).reshape(-1)
    series = accuracies if isinstance(accuracies, dict) else {"accuracy": accuracies}
    fig, ax = _plain_axes(ax, theme)
    for k, (name, acc) in enumerate(series.items()):
        c = _series_color(name, k, theme)
        ax.plot(ws, np.asarray(acc).reshape(-1), marker="o", ms=7, color=c, label=name)
    ax.axhline(target, color=theme["muted"], ls=":", lw=1.8, zorder=1, label=f"target {target:.0%}")
    if default_w is not None:
        _vline(ax, float(default_w), f"default w = {default_w:g}", theme, top=False)
    ax.set_ylim(0, 1.04)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("guidance weight w")
    ax.set_ylabel("class accuracy")
    ax.legend(loc="center right", framealpha=0.8)  # clear of the target line and default-w label
    if title:
        ax.set_title(title)
    return fig


@_themed
def compare(
    panels: Sequence[Callable[[Axes], object]],
    titles: Sequence[str] | None = None,
    suptitle=None,
    theme=None,
    size: float = 4.5,
) -> Figure:
    """Side-by-side panels, e.g. sampling with and without noise, or learned and exact fields.

    Each panel is a callable that draws into the axes it is given, typically a lambda around
    another function here: ``lambda ax: viz.points(x, ax=ax, data=data)``. Functions called
    inside use this theme unless they name another.

    Args:
        panels: P callables ``fn(ax)``.
        titles: P panel titles (set after drawing, so they win), or None to keep the panels' own.
        suptitle: a title over all panels.
        theme: ``"dark"``, ``"light"`` or ``None`` for the module default.
        size: width and height of each panel in inches.

    Returns:
        The figure, with one axes per panel (plus any colorbars the panels add).
    """
    if titles is not None and len(titles) != len(panels):
        raise ToydiffError(f"got {len(titles)} titles for {len(panels)} panels")
    fig = _figure(len(panels), size, theme)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    with _as_default(theme["name"]):
        for k, (fn, ax) in enumerate(zip(panels, axes, strict=True)):
            _style(ax, theme)
            fn(ax)
            if titles is not None:
                ax.set_title(titles[k])
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def savefig(fig: Figure, path, dpi: float = 150) -> Path:
    """Save a figure as an image file (PNG by suffix) with the theme's background.

    Args:
        fig: the figure.
        path: output file; its suffix picks the format.
        dpi: resolution; 150 makes crisp slides and print.

    Returns:
        The path written.
    """
    path = Path(path)
    fig.savefig(path, dpi=dpi, facecolor=fig.get_facecolor(), bbox_inches="tight")
    return path


# ----------------------------------------------------------------------------- animations


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
        return [_paths(f, f"frames[{k}]") for k, f in enumerate(frames)]
    return [_paths(frames, "frames")]


def _animation(fig: Figure, update: Callable, n_frames: int, interval: int) -> FuncAnimation:
    """Lay fig out once at frame 0, freeze that layout, and animate update over n_frames."""
    update(0)
    fig.draw_without_rendering()  # constrained layout runs here, once, not on every frame
    fig.set_layout_engine("none")  # so axes cannot jitter and frames render ~2x faster
    return FuncAnimation(fig, update, frames=n_frames, interval=interval, blit=False)


@_themed
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
    fig = _figure(len(runs), ANIM_SIZE, theme)
    axes = fig.subplots(1, len(runs), squeeze=False)[0]
    updates = []
    for k, (ax, run) in enumerate(zip(axes, runs, strict=True)):
        new_axes(ax, theme=theme, lim=lim)
        _draw_data(ax, data, theme)
        updates.append(_point_panel(ax, run, _point_colors(labels, run.shape[1], theme), tail))
        if titles is not None:
            ax.set_title(titles[k])
    if labels is not None:
        _class_legend(axes[-1], labels, class_names, theme)
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


@_themed
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
    vf = _paths(vector_frames, "vector_frames")
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
    quiver = _find_quiver(ax)

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
