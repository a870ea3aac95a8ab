"""Still pictures: point clouds, vector fields, trajectories, loss and phase curves, comparisons.

Every function takes numpy (or JAX) arrays that the caller computed with the library and returns
a matplotlib ``Figure``; nothing here calls a model. Spatial plots draw into a square axes over
[-lim, lim]^2 (the field grid of ``REFERENCE.md``); every function takes an optional ``ax`` and a
``theme``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba_array
from matplotlib.figure import Figure
from matplotlib.quiver import Quiver
from matplotlib.ticker import PercentFormatter

from toydiff.errors import DataError, ToydiffError
from toydiff.viz.style import (
    CLASS_NAMES,
    LIM,
    as_paths,
    as_points,
    class_legend,
    draw_data,
    figure,
    new_axes,
    plain_axes,
    point_colors,
    style_axes,
    theme_in_block,
    themed,
)


@themed
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
    x = as_points(x, "x")
    fig, ax = new_axes(ax, theme=theme, lim=lim)
    draw_data(ax, data, theme)
    colors = point_colors(labels, len(x), theme)
    ax.scatter(x[:, 0], x[:, 1], s=s, c=colors, lw=0, alpha=0.85, zorder=2)
    if labels is not None:
        class_legend(ax, labels, class_names, theme)
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


@themed
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
    xy, v = as_points(grid_points, "grid_points"), as_points(vectors, "vectors")
    if len(xy) != len(v):
        raise DataError(f"need one vector per grid point, got {len(v)} for {len(xy)}")
    fig, ax = new_axes(ax, theme=theme, lim=lim)
    draw_data(ax, data, theme, zorder=3)
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


def find_quiver(artist) -> Quiver:
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
    q = find_quiver(quiver)
    v = as_points(vectors, "vectors")
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


@themed
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
    traj = as_paths(traj, "traj")
    fig, ax = new_axes(ax, theme=theme, lim=lim)
    draw_data(ax, data, theme)
    rgba = point_colors(None, traj.shape[1], theme)
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


@themed
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
    paths = as_paths(paths, "paths")
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
        d = as_points(data, "data")
        ax.scatter(d[:, 0], d[:, 1], s=12, c=theme["text"], lw=0, zorder=4)
    if title:
        ax.set_title(title)
    return fig


def _moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of each run of `window` consecutive values: (len(x) - window + 1,)."""
    return np.convolve(x, np.ones(window) / window, mode="valid")


@themed
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
    fig, ax = plain_axes(ax, theme)
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


@themed
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
    fig, ax = plain_axes(ax, theme)
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


@themed
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
    fig, ax = plain_axes(ax, theme)
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


@themed
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
    fig = figure(len(panels), size, theme)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    with theme_in_block(theme["name"]):
        for k, (fn, ax) in enumerate(zip(panels, axes, strict=True)):
            style_axes(ax, theme)
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
