"""Plumbing shared by every explorer: constants, argument checks, click mapping and ``Explorer``.

See ``toydiff.widgets`` for how a picture is made and how a click becomes a data point.
"""

from __future__ import annotations

import contextlib
import io
import time

import ipywidgets as widgets
import jax
import numpy as np
from ipyevents import Event
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image as PILImage

from toydiff import viz
from toydiff.engine.oracle import exact_field
from toydiff.errors import ToydiffError

WIDGETS = (
    "field_explorer",
    "sampler_explorer",
    "guidance_explorer",
    "forward_explorer",
    "live_training",
    "noise_explorer",
    "steps_explorer",
    "quality_explorer",
    "draw_your_data",
)
MODES = ("learned", "exact", "both")
PATH_STEPS = 64  # DDIM steps of a clicked probability-flow path
TAIL = 10  # steps of fading tail behind each particle
DRAWN_WALKERS = 400  # walkers the forward explorer draws; the variance uses all of them
LIVE_FIELD_T = 0.3  # the time at which live_training shows the field
TIMES = np.round(np.linspace(0.0, 1.0, 101), 2)  # the t slider's values
_PNG = {"compress_level": 1}  # fast zlib: PNG encoding drops from ~15 to ~7 ms per frame
SLIDER = {"style": {"description_width": "initial"}, "layout": {"width": "300px"}}

field_of = jax.jit(exact_field)  # -eps_hat of any denoiser pytree; t is traced, so no recompiles


# ----------------------------------------------------------------------------- plumbing


def check_choice(what: str, value, allowed) -> None:
    """Raise ToydiffError naming the bad value and listing the allowed ones."""
    if value not in allowed:
        names = ", ".join(repr(a) for a in allowed)
        raise ToydiffError(f"unknown {what} {value!r}; choose one of {names}")


def check_range(what: str, value, low, high) -> None:
    """Raise ToydiffError if value is outside [low, high]."""
    if not low <= value <= high:
        raise ToydiffError(f"{what} must be in [{low}, {high}], got {value}")


def click_to_data(fig, event: dict):
    """Data coordinates (x, y) of an ipyevents click on the figure's PNG; None outside all axes.

    See the module docstring: the PNG pixel (dataX, dataY), top-left origin, is the display
    point (dataX + 0.5, height - dataY - 0.5), and the clicked axes' inverse data transform maps
    it to data coordinates. Without ``dataX`` (other widget types), the position relative to the
    element is scaled by the figure's pixel size over the element's on-screen size.
    """
    width, height = fig.bbox.width, fig.bbox.height
    px, py = event.get("dataX"), event.get("dataY")
    if px is None:
        px = event["relativeX"] * width / max(event.get("boundingRectWidth") or width, 1)
        py = event["relativeY"] * height / max(event.get("boundingRectHeight") or height, 1)
    display = (px + 0.5, height - py - 0.5)
    for ax in fig.axes:
        if ax.bbox.contains(*display):
            x, y = ax.transData.inverted().transform(display)
            return float(x), float(y)
    return None


def added_artists(ax, draw) -> tuple[list, list]:
    """Run draw() and return the collections and lines it added to ax, in drawing order."""
    n_coll, n_lines = len(ax.collections), len(ax.lines)
    draw()
    return list(ax.collections[n_coll:]), list(ax.lines[n_lines:])


def display_view(view) -> None:
    """Show view's widget in a running Jupyter kernel; do nothing in scripts, tests or the CLI."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        display(view.widget)


def time_slider(t: float) -> widgets.FloatSlider:
    """The live t slider over [0, 1] that the field and forward explorers share."""
    return widgets.FloatSlider(
        value=t,
        min=0.0,
        max=1.0,
        step=0.01,
        description="t",
        readout_format=".2f",
        continuous_update=True,
        **SLIDER,
    )


class Explorer:
    """Shared plumbing: one figure rendered to PNG bytes in an Image, a readout and a latency."""

    def __init__(self, theme):
        self.theme = viz.palette(theme)
        self.image = widgets.Image(format="png")
        self.readout = widgets.HTML()
        self.timing = widgets.HTML()
        self.latency = float("nan")
        self.timings = {"compute_s": float("nan"), "draw_s": float("nan")}
        self.fig = None
        self._quiet = False  # True while several controls change together

    def _adopt(self, fig, dynamic=(), freeze: bool = True) -> None:
        """Give fig an Agg canvas and name the artists that change; lay it out once and freeze.

        Args:
            fig: the figure, drawn by ``viz``.
            dynamic: the artists that updates move. They are drawn over a cached background of
                everything else (axes, ticks, static points), in zorder; none means every
                frame is drawn in full.
            freeze: fix the layout after one pass, so frames cannot jitter and draw faster.
        """
        FigureCanvasAgg(fig)
        with contextlib.suppress(TypeError, AttributeError):  # constrained layout only
            # a little more room at the top: titles of square panels otherwise touch the edge
            fig.get_layout_engine().set(h_pad=0.1)
        if freeze:
            fig.draw_without_rendering()
            fig.set_layout_engine("none")
        self._dynamic = sorted(dynamic, key=lambda a: a.get_zorder())
        for a in self._dynamic:
            a.set_animated(True)  # canvas.draw() leaves animated artists out of the background
        self._background = None
        self.fig = fig

    def _render(self) -> bytes:
        """The figure as PNG bytes: the cached background plus the dynamic artists (blitting)."""
        canvas, buf = self.fig.canvas, io.BytesIO()
        if not self._dynamic:
            canvas.print_png(buf, pil_kwargs=_PNG)  # a full draw, then encoding
            return buf.getvalue()
        if self._background is None:
            canvas.draw()
            self._background = canvas.copy_from_bbox(self.fig.bbox)
        else:
            canvas.restore_region(self._background)
        renderer = canvas.get_renderer()
        for a in self._dynamic:
            a.draw(renderer)
        PILImage.fromarray(np.asarray(canvas.buffer_rgba())).save(buf, format="png", **_PNG)
        return buf.getvalue()

    def _listen_clicks(self) -> None:
        """Forward clicks on the picture, mapped to data coordinates, to ``self.click``."""
        self._events = Event(source=self.image, watched_events=["click"])
        self._events.on_dom_event(self._on_event)

    def _on_event(self, event: dict) -> None:
        """An ipyevents click: map it to data coordinates and hand it to ``click``."""
        if event.get("type") == "click" and self.fig is not None:
            xy = click_to_data(self.fig, event)
            if xy is not None:
                self.click(*xy)

    @contextlib.contextmanager
    def _hold(self):
        """Change several controls at once without an update per control."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False

    def _bind(self, controls, handler) -> None:
        """Call handler() when any control's value changes (unless held)."""
        for c in controls:
            c.observe(lambda _change: None if self._quiet else handler(), names="value")

    def _compute(self) -> None:
        """Recompute what the picture shows (subclasses)."""

    def _draw(self) -> None:
        """Move the figure's artists to the computed state (subclasses)."""

    def update(self) -> float:
        """Recompute and redraw.

        Returns:
            The seconds it took (compute + redraw + PNG), also stored in ``.latency``.
        """
        t0 = time.perf_counter()
        self._compute()
        return self._show(t0, time.perf_counter())

    def _show(self, t0: float, t1: float) -> float:
        """Redraw and render; record the latency since t0, with compute up to t1."""
        self._draw()
        self.image.value = self._render()
        t2 = time.perf_counter()
        self.latency = t2 - t0
        self.timings = {"compute_s": t1 - t0, "draw_s": t2 - t1}
        self.timing.value = (
            f"<small style='opacity:0.6'>{1e3 * self.latency:.0f} ms "
            f"(compute {1e3 * (t1 - t0):.0f} + draw {1e3 * (t2 - t1):.0f})</small>"
        )
        return self.latency

    def _ipython_display_(self):
        """Show ``.widget`` when the explorer is a cell's result."""
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs):
        """The widget's own MIME bundle, for front ends that ask for one."""
        return self.widget._repr_mimebundle_(**kwargs)
