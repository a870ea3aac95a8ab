"""Themes and figure plumbing shared by every picture: palettes, rcParams, pyplot-free figures.

``set_theme`` and ``theme`` choose the default look (``"dark"`` for projectors, ``"light"`` for
print); ``themed`` wraps a drawing function so the theme's rcParams apply only while it draws.
The helpers here turn user arrays into checked numpy arrays and make figures with even pixel
sizes, so videos encode.
"""

from __future__ import annotations

import contextlib
import functools
import io
import struct
from collections.abc import Callable

import matplotlib as mpl
import numpy as np
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba, to_rgba_array
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from toydiff.errors import DataError, ToydiffError
from toydiff.palettes import THEMES

CLASS_NAMES = ("people", "dogs", "cats")  # the story's labels of the inner, middle, outer arcs


DPI = 80  # screen dpi: 4.5 in -> 360 px frames keep GIFs small


ANIM_SIZE = 4.5  # inches per animation panel


LIM = 1.5  # half-width of the field grid in REFERENCE.md


_STATE = {"theme": "dark"}  # the module default, changed by set_theme and theme()


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
def theme_in_block(name: str | None):
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
    return theme_in_block(name)


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


def themed(fn: Callable) -> Callable:
    """Run a plot function inside its theme's rcParams, passing it the resolved theme dict."""

    @functools.wraps(fn)
    def wrapper(*args, theme=None, **kwargs):
        t = palette(theme)
        with mpl.rc_context(_rc(t)):
            return fn(*args, theme=t, **kwargs)

    return wrapper


def as_points(x, name: str) -> np.ndarray:
    """Return x as a float (n, 2) array, or raise DataError naming the argument."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise DataError(f"{name} must be an (n, 2) array of points, got shape {a.shape}")
    return a


def as_paths(x, name: str) -> np.ndarray:
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


def figure(ncols: int, size: float, t: dict, height: float | None = None) -> Figure:
    """A pyplot-free figure of ncols panels, each `size` inches wide, with even pixel sizes."""
    figsize = (_even_inches(size * ncols), _even_inches(height or size))
    return _NotebookFigure(
        figsize=figsize, dpi=DPI, facecolor=t["background"], layout="constrained"
    )


def style_axes(ax: Axes, t: dict) -> None:
    """Paint an axes (and its figure) in the theme's colours, for axes made elsewhere."""
    ax.figure.set_facecolor(t["background"])
    ax.set_facecolor(t["background"])
    for spine in ax.spines.values():
        spine.set_color(t["muted"])
    ax.tick_params(colors=t["muted"], labelcolor=t["text"])
    ax.xaxis.label.set_color(t["text"])
    ax.yaxis.label.set_color(t["text"])
    ax.title.set_color(t["text"])


def plain_axes(ax: Axes | None, t: dict, size=(6.5, 4.5)) -> tuple[Figure, Axes]:
    """(fig, ax) for a non-spatial plot: the given axes, styled, or a fresh figure."""
    if ax is None:
        ax = figure(1, size[0], t, height=size[1]).subplots()
    style_axes(ax, t)
    return ax.figure, ax


@themed
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
        ax = figure(1, size, theme).subplots()
    style_axes(ax, theme)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    step = 1 if 1 <= lim < 3 else lim  # unit ticks for the data square, else the edges
    ticks = [-step, 0, step]
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.spines[["top", "right"]].set_visible(False)
    return ax.figure, ax


def draw_data(ax: Axes, data, t: dict, s: float = 10, alpha: float = 0.35, zorder=1) -> None:
    """Scatter training points faintly, as the backdrop of a plot; no-op for None."""
    if data is not None:
        d = as_points(data, "data")
        ax.scatter(d[:, 0], d[:, 1], s=s, c=t["data"], alpha=alpha, lw=0, zorder=zorder)


def _class_name(k: int, class_names) -> str:
    """Display name of class k: the given name, the story's name, or 'class k'."""
    names = CLASS_NAMES if class_names is None else class_names
    return names[k] if k < len(names) else f"class {k}"


def point_colors(labels, n: int, t: dict) -> np.ndarray:
    """(n, 4) RGBA: the class colour of each point, or the sample colour for no labels."""
    if labels is None:
        return np.tile(to_rgba(t["sample"]), (n, 1))
    classes = to_rgba_array(t["classes"])  # (3, 4)
    return classes[_labels(labels, n) % len(classes)]


def class_legend(ax: Axes, labels, class_names, t: dict) -> None:
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
