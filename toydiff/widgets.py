"""Interactive explorers for notebooks: ipywidgets controls bound to library calls and ``viz``.

Each explorer is one call in a notebook, e.g. ``toydiff.widgets.field_explorer(model)``, and
shows itself when it is the cell's last expression. Every explorer object has

- ``.widget``: the top-level ipywidgets container (controls, picture, readout, latency);
- ``.update() -> float``: recompute and redraw; returns the seconds it took (``toydiff bench``
  times this), also kept in ``.latency`` and shown small under the picture, e.g. "32 ms";
- one attribute per control (``.t``, ``.eta``, ...): the ipywidgets themselves, so code and tests
  can move a control by setting its ``.value``, exactly as a learner's drag does.

How a picture is made. Each explorer keeps ONE figure drawn once by ``viz`` (Agg canvas, no
pyplot) and freezes its layout. The artists that change are marked animated: a full
``canvas.draw()`` renders everything else (axes, ticks, static points) once into a cached
background, and each update restores that background, moves the animated artists in place
(``set_UVC``, ``set_offsets``, ``set_segments``, ``set_data``), draws only them (blitting), and
encodes the canvas as PNG bytes for an ``ipywidgets.Image(format="png")``. This works in every
Jupyter front end, needs no matplotlib widget backend, and costs ~20 ms per 400 x 400 px
quiver frame on 2 cores (a full ``print_png`` costs ~40 ms).

How a click becomes a data point. ``ipyevents`` watches clicks on the Image and reports
``dataX, dataY``: the pixel of the PNG under the mouse, origin top-left and y down, already
corrected for any CSS scaling. The PNG holds exactly the figure's pixels (it is rendered at the
figure's dpi), and matplotlib's display coordinates are those pixels with the origin at the
bottom-left and y up, so display = (dataX + 0.5, height - dataY - 0.5) at the pixel's centre.
The axes whose bounding box holds that display point is the one clicked, and its
``transData.inverted()`` maps display to data coordinates (``_click_to_data``).

Compilation. Samplers are jitted with the denoiser as a pytree and the process and step count
as static arguments, so moving t, eta, w, the start point or the seed never recompiles; a new
step count or sampler compiles once per value (the steps slider therefore updates on release).
The explorers compile their initial settings in the constructor, so the first move is fast. A
probability-flow path clicked in the field explorer starts at the current t, so it runs on the
process with ``t_max = t``; that compiles once per distinct t (~1 s), and is warmed for the
initial t.
"""

from __future__ import annotations

import contextlib
import io
import time

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import numpy as np
from ipyevents import Event
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba_array
from PIL import Image as PILImage

from toydiff import data as data_lib
from toydiff import metrics, samplers, viz
from toydiff.errors import ToydiffError
from toydiff.guidance import classifier_free, default_weight
from toydiff.model import REFERENCE, Model, TrainConfig
from toydiff.oracle import exact_field
from toydiff.processes import VE, random_walk
from toydiff.training import train

WIDGETS = (
    "field_explorer",
    "sampler_explorer",
    "guidance_explorer",
    "forward_explorer",
    "live_training",
)
MODES = ("learned", "exact", "both")
PATH_STEPS = 64  # DDIM steps of a clicked probability-flow path
TAIL = 10  # steps of fading tail behind each particle
DRAWN_WALKERS = 400  # walkers the forward explorer draws; the variance uses all of them
LIVE_FIELD_T = 0.3  # the time at which live_training shows the field
_TIMES = np.round(np.linspace(0.0, 1.0, 101), 2)  # the t slider's values
_PNG = {"compress_level": 1}  # fast zlib: PNG encoding drops from ~15 to ~7 ms per frame
_SLIDER = {"style": {"description_width": "initial"}, "layout": {"width": "300px"}}

_field = jax.jit(exact_field)  # -eps_hat of any denoiser pytree; t is traced, so no recompiles


# ----------------------------------------------------------------------------- plumbing


def _check_choice(what: str, value, allowed) -> None:
    """Raise ToydiffError naming the bad value and listing the allowed ones."""
    if value not in allowed:
        names = ", ".join(repr(a) for a in allowed)
        raise ToydiffError(f"unknown {what} {value!r}; choose one of {names}")


def _check_range(what: str, value, low, high) -> None:
    """Raise ToydiffError if value is outside [low, high]."""
    if not low <= value <= high:
        raise ToydiffError(f"{what} must be in [{low}, {high}], got {value}")


def _click_to_data(fig, event: dict):
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


def _added(ax, draw) -> tuple[list, list]:
    """Run draw() and return the collections and lines it added to ax, in drawing order."""
    n_coll, n_lines = len(ax.collections), len(ax.lines)
    draw()
    return list(ax.collections[n_coll:]), list(ax.lines[n_lines:])


def _display(view) -> None:
    """Show view's widget in a running Jupyter kernel; do nothing in scripts, tests or the CLI."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        display(view.widget)


def _time_slider(t: float) -> widgets.FloatSlider:
    """The live t slider over [0, 1] that the field and forward explorers share."""
    return widgets.FloatSlider(
        value=t,
        min=0.0,
        max=1.0,
        step=0.01,
        description="t",
        readout_format=".2f",
        continuous_update=True,
        **_SLIDER,
    )


class _Explorer:
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
            xy = _click_to_data(self.fig, event)
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


# ----------------------------------------------------------------------------- field


class FieldExplorer(_Explorer):
    """The normalised field -eps_hat over t, learned beside exact, with clickable flow paths.

    Controls: ``t`` (FloatSlider 0..1), ``mode`` (ToggleButtons learned / exact / both). A click on
    the picture, or ``click(x, y)``, draws the probability-flow (DDIM, eta = 0) path of that point
    from the current t down to clean data in each panel; moving t or the mode clears it.

    Attributes:
        paths: ``{"learned" | "exact": (PATH_STEPS + 1, 2) path}`` of the last click.
        fields: ``{"learned" | "exact": (n * n, 2) field}`` currently drawn.
    """

    def __init__(self, model: Model, t=0.5, mode="learned", n=30, theme=None):
        _check_choice("mode", mode, MODES)
        _check_range("t", t, 0.0, 1.0)
        super().__init__(theme)
        self.model, self.process = model, model.process
        self.n, self.grid = n, metrics.grid(n, viz.LIM)  # (n * n, 2)
        self._denoisers = {"learned": model.denoiser(), "exact": model.denoiser(exact=True)}
        self.t = _time_slider(t)
        self.mode = widgets.ToggleButtons(options=MODES, value=mode)
        self.paths, self.fields = {}, {}
        self._phase = self._phase_diagnostics()
        self.widget = widgets.VBox(
            [widgets.HBox([self.t, self.mode]), self.image, self.readout, self.timing]
        )
        self._listen_clicks()
        self._build()
        for kind in self._denoisers:  # compile the path sampler at the initial t
            self._path(kind, np.zeros((1, 2), np.float32))
        self.update()
        self._bind([self.t], self._on_t)
        self._bind([self.mode], self._on_mode)

    def _kinds(self) -> tuple[str, ...]:
        """The fields shown: one, or learned and exact side by side."""
        return ("learned", "exact") if self.mode.value == "both" else (self.mode.value,)

    def _time(self) -> float:
        """The slider's t, kept inside the process's range (VP and flow stop short of 0 and 1)."""
        t = round(float(self.t.value), 6)
        return min(max(t, self.process.t_min), self.process.t_max)

    def _phase_diagnostics(self) -> dict:
        """The phase-change cosines at every slider time, per field; {} without a data curve."""
        cloud = self.model.cloud
        if cloud.curve is None:
            return {}
        ts = np.clip(_TIMES, self.process.t_min, self.process.t_max)
        out = {}
        for kind, den in self._denoisers.items():
            out[kind] = metrics.phase_diagnostic(
                lambda pts, t, den=den: _field(den, pts, t),
                cloud.x,
                cloud.curve,
                ts=ts,
                n=self.n,
                lim=viz.LIM,
            )
        return out

    def _build(self) -> None:
        """Draw one quiver panel per shown field (arrows filled in by update) and path artists."""
        kinds, zeros = self._kinds(), np.zeros_like(self.grid)
        panels = [
            lambda ax: viz.vector_field(self.grid, zeros, ax=ax, data=self.model.cloud.x)
            for _ in kinds
        ]
        size = 5.0 if len(kinds) == 1 else 4.5
        titles = [self._title(kind) for kind in kinds]  # the layout makes room for these
        fig = viz.compare(panels, titles=titles, theme=self.theme, size=size)
        accent = self.theme["accent"]
        self._panels, dynamic = {}, []
        for kind, ax in zip(kinds, fig.axes, strict=True):
            (line,) = ax.plot([], [], color=accent, lw=2.5, zorder=5)
            (ring,) = ax.plot([], [], "o", ms=10, mfc="none", mec=accent, mew=2, zorder=6)
            (end,) = ax.plot([], [], "o", ms=8, color=accent, zorder=6)
            self._panels[kind] = (ax, line, ring, end)
            dynamic += [*ax.collections, line, ring, end, ax.title]  # quiver and data on top
        self._adopt(fig, dynamic)

    def _title(self, kind: str) -> str:
        """Panel title, e.g. "learned field, t = 0.50"."""
        return f"{kind} field, t = {self._time():.2f}"

    def _path(self, kind: str, point: np.ndarray) -> np.ndarray:
        """The DDIM (eta = 0) path of point (1, 2) from the current t to clean data: (k, 2)."""
        t = self._time()
        if t <= self.process.t_min:
            return np.asarray(point, np.float32).reshape(1, 2)
        traj = samplers.ddim(
            jax.random.key(0),
            self._denoisers[kind],
            self.process,
            jnp.asarray(point, jnp.float32),
            PATH_STEPS,
            eta=0.0,
            t_start=jnp.float32(t),  # traced: a click at a new t does not recompile
        )
        return np.asarray(traj[:, 0])

    def click(self, x: float, y: float) -> dict:
        """Draw the probability-flow path of the point (x, y) from the current t, in each panel.

        Args:
            x, y: the starting point in data coordinates.

        Returns:
            ``{kind: (PATH_STEPS + 1, 2) path}``; each path starts at (x, y) and ends on clean
            data (a single point when t is already t_min).
        """
        t0 = time.perf_counter()
        point = np.array([[x, y]], np.float32)
        self.paths = {kind: self._path(kind, point) for kind in self._kinds()}
        self._show(t0, time.perf_counter())
        return self.paths

    def _on_t(self) -> None:
        self.paths = {}
        self.update()

    def _on_mode(self) -> None:
        self.paths = {}
        self._build()
        self.update()

    def _compute(self) -> None:
        t = self._time()
        den = self._denoisers
        self.fields = {k: np.asarray(_field(den[k], self.grid, t)) for k in self._kinds()}

    def _draw(self) -> None:
        t = self._time()
        for kind, (ax, line, ring, end) in self._panels.items():
            viz.update_vector_field(ax, self.fields[kind])
            ax.title.set_text(self._title(kind))
            path = self.paths.get(kind, np.zeros((0, 2)))
            line.set_data(path[:, 0], path[:, 1])
            ring.set_data(path[:1, 0], path[:1, 1])
            end.set_data(path[-1:, 0], path[-1:, 1])
        self.readout.value = self._readout(t)

    def _readout(self, t: float) -> str:
        """t, sigma(t) and, for curve data, the mean cosines of the phase-change diagnostic."""
        text = f"t = {t:.2f}, &sigma;(t) = {float(self.process.sigma(t)):.3g}"
        k = int(np.argmin(np.abs(_TIMES - self.t.value)))
        for kind in self._kinds() if self._phase else ():
            p = self._phase[kind]
            text += (
                f" &nbsp;|&nbsp; {kind}: cos to centre {p['cos_centroid'][k]:+.2f}, "
                f"to curve {p['cos_curve'][k]:+.2f} (t* = {p['t_star']:.2f})"
            )
        return text


def field_explorer(model: Model, t=0.5, mode="learned", n=30, theme=None) -> FieldExplorer:
    """The vector field and the phase change over time, with clickable probability-flow paths.

    Shows -eps_hat, normalised, on the n x n grid over [-1.5, 1.5]^2 at time t over the training
    points (chapter 5). ``mode="both"`` puts the learned field beside the exact field of the
    training points. The readout gives sigma(t) and the mean cosines of the field with the
    direction to the data's centre and to the nearest point of the curve (``metrics``).

    Args:
        model: a trained model.
        t: initial time in [0, 1].
        mode: ``"learned"``, ``"exact"`` or ``"both"``.
        n: grid points per side.
        theme: ``"dark"``, ``"light"`` or None for the ``viz`` default.

    Returns:
        A ``FieldExplorer``; click the picture or call ``.click(x, y)`` to draw a path.

    References:
        Song et al., "Score-Based Generative Modeling through SDEs", ICLR 2021 (probability flow);
        Karras et al., NeurIPS 2022, eq. 57 (the exact denoiser of a point set).
    """
    return FieldExplorer(model, t=t, mode=mode, n=n, theme=theme)


# ----------------------------------------------------------------------------- sampler


class SamplerExplorer(_Explorer):
    """Sampler trajectories of n particles, plus the highlighted path from one start point.

    Controls: ``sampler`` (Dropdown), ``steps`` (4..256), ``eta`` (ddim), ``noise`` (ddpm: off
    runs "ddpm-nonoise"), ``start_x`` / ``start_y``, ``seed``, and ``frame`` (0..steps) to scrub
    through the stored trajectory without sampling again. A click on the picture moves the start.

    Attributes:
        trajectory: (steps + 1, n + 1, 2) positions; particle 0 starts at the start point.
    """

    LIM = 2.0  # wider than the field grid, so the story's start (-1.6, 1.8) is in view

    def __init__(
        self,
        model,
        sampler="ddpm",
        steps=64,
        eta=1.0,
        noise=True,
        start=(-1.6, 1.8),
        n=256,
        seed=0,
        theme=None,
    ):
        _check_choice("sampler", sampler, samplers.SAMPLERS)
        _check_range("steps", steps, 4, 256)
        _check_range("eta", eta, 0.0, 1.0)
        if n < 1:
            raise ToydiffError(f"n must be at least 1, got {n}")
        super().__init__(theme)
        self.model, self.n, self._priors = model, n, {}
        self._make_controls(sampler, steps, eta, noise, start, seed)
        self._listen_clicks()
        self._compute()
        self._build()
        self.update()
        knobs = [
            self.sampler,
            self.steps,
            self.eta,
            self.noise,
            self.start_x,
            self.start_y,
            self.seed,
        ]
        self._bind(knobs, self.update)
        self._bind([self.frame], self.redraw)

    def _make_controls(self, sampler, steps, eta, noise, start, seed) -> None:
        """The ipywidgets of the explorer, and its layout."""
        s = _SLIDER
        self.sampler = widgets.Dropdown(
            options=samplers.SAMPLERS, value=sampler, description="sampler"
        )
        self.steps = widgets.IntSlider(
            value=steps, min=4, max=256, description="steps", continuous_update=False, **s
        )
        self.eta = widgets.FloatSlider(
            value=eta, min=0.0, max=1.0, step=0.05, description="eta", continuous_update=True, **s
        )
        self.noise = widgets.Checkbox(value=noise, description="noise (ddpm)")
        self.start_x, self.start_y = (
            widgets.FloatSlider(
                value=v,
                min=-3.0,
                max=3.0,
                step=0.05,
                description=f"start {name}",
                continuous_update=True,
                **s,
            )
            for name, v in zip("xy", start, strict=True)
        )
        self.seed = widgets.IntSlider(
            value=seed, min=0, max=99, description="seed", continuous_update=False, **s
        )
        self.frame = widgets.IntSlider(
            value=steps, min=0, max=steps, description="step", continuous_update=True, **s
        )
        controls = widgets.VBox(
            [
                self.sampler,
                self.noise,
                self.steps,
                self.eta,
                self.start_x,
                self.start_y,
                self.seed,
                self.frame,
            ]
        )
        self.widget = widgets.VBox(
            [widgets.HBox([self.image, controls]), self.readout, self.timing]
        )

    def name(self) -> str:
        """The sampler that runs: "ddpm-nonoise" for ddpm with the noise box off."""
        if self.sampler.value == "ddpm" and not self.noise.value:
            return "ddpm-nonoise"
        return self.sampler.value

    def _x_init(self) -> np.ndarray:
        """The start point followed by the seed's n prior draws, as ``Model.sample`` draws them."""
        seed = self.seed.value
        if seed not in self._priors:
            k_prior, _ = jax.random.split(jax.random.key(seed))
            self._priors[seed] = np.asarray(self.model.process.prior(k_prior, (self.n, 2)))
        start = np.array([[self.start_x.value, self.start_y.value]], np.float32)
        return np.concatenate([start, self._priors[seed]]).astype(np.float32)  # (n + 1, 2)

    def _sample(self, x_init: np.ndarray) -> np.ndarray:
        """Run the chosen sampler from x_init; (steps + 1, n + 1, 2)."""
        name = self.name()
        options = {"eta": float(self.eta.value)} if name == "ddim" else {}
        traj = self.model.sample(
            jax.random.key(self.seed.value),
            steps=self.steps.value,
            sampler=name,
            x_init=x_init,
            options=options,
        )
        return np.asarray(traj)

    def _compute(self) -> None:
        self.trajectory = self._sample(self._x_init())
        self.eta.disabled = self.name() != "ddim"
        self.noise.disabled = self.sampler.value != "ddpm"
        steps = self.trajectory.shape[0] - 1
        with self._hold():  # a finished run shows its last step
            self.frame.max = steps
            self.frame.value = steps

    def _build(self) -> None:
        """Draw the trajectories once with ``viz.trajectories``; keep its artists to move."""
        fig, ax = viz.new_axes(theme=self.theme, lim=self.LIM)
        colls, lines = _added(
            ax,
            lambda: viz.trajectories(
                self.trajectory,
                ax=ax,
                tail=TAIL,
                data=self.model.cloud.x,
                highlight=0,
                title=self.name(),
                theme=self.theme,
                lim=self.LIM,
            ),
        )
        self._tails = next(c for c in colls if isinstance(c, LineCollection))
        self._dots, self._ring, self._end = [c for c in colls if c is not self._tails][-3:]
        self._line = lines[0]
        self._rgba = np.broadcast_to(self._dots.get_facecolors(), (self.n + 1, 4)).copy()
        self._ax = ax
        moving = [self._tails, self._dots, self._ring, self._end, self._line, ax.title]
        self._adopt(fig, moving)  # the faint data stay in the background

    def redraw(self) -> float:
        """Show another step of the stored trajectory (no sampling); returns the seconds taken."""
        t0 = time.perf_counter()
        return self._show(t0, t0)

    def _draw(self) -> None:
        traj, i = self.trajectory, min(self.frame.value, len(self.trajectory) - 1)
        segs, colors = viz.tail_segments(traj, i, TAIL, self._rgba)  # viz's fading-tail style
        self._tails.set_segments(segs)
        self._tails.set_color(colors)
        self._dots.set_offsets(traj[i])
        self._line.set_data(traj[: i + 1, 0, 0], traj[: i + 1, 0, 1])
        self._ring.set_offsets(traj[:1, 0])
        self._end.set_offsets(traj[i : i + 1, 0])
        self._ax.title.set_text(f"{self.name()}: step {i}/{len(traj) - 1}")
        x, y = traj[i, 0]
        self.readout.value = (
            f"{self.n} particles + the start ({self.start_x.value:.2f}, {self.start_y.value:.2f})"
            f", now at ({x:.2f}, {y:.2f})"
        )

    def click(self, x: float, y: float) -> float:
        """Move the start point to (x, y) and sample again; returns the seconds taken."""
        with self._hold():
            self.start_x.value, self.start_y.value = float(x), float(y)
        return self.update()


def sampler_explorer(
    model: Model,
    sampler="ddpm",
    steps=64,
    eta=1.0,
    noise=True,
    start=(-1.6, 1.8),
    n=256,
    seed=0,
    theme=None,
) -> SamplerExplorer:
    """Samplers side by side in one view: DDPM with and without noise, DDIM, ODE solvers, SDE.

    Shows the final points of n particles with fading tails, and the whole path of one extra
    particle that starts at ``start`` (the story's point (-1.6, 1.8), used itself as its x_init).
    The frame slider scrubs through the stored trajectory; only sampler settings sample again.

    Args:
        model: a trained model.
        sampler: one of ``samplers.SAMPLERS``.
        steps: number of sampler steps, 4..256.
        eta: DDIM stochasticity in [0, 1] (used by "ddim").
        noise: with "ddpm", False deletes the noise term ("ddpm-nonoise", chapter 6).
        start: the highlighted particle's starting point.
        n: number of other particles, drawn from the prior.
        seed: seed of the prior draws and the sampler's noise.
        theme: ``"dark"``, ``"light"`` or None for the ``viz`` default.

    Returns:
        A ``SamplerExplorer``.

    References:
        Ho et al., NeurIPS 2020 (DDPM); Song, Meng & Ermon, ICLR 2021 (DDIM).
    """
    return SamplerExplorer(
        model,
        sampler=sampler,
        steps=steps,
        eta=eta,
        noise=noise,
        start=start,
        n=n,
        seed=seed,
        theme=theme,
    )


# ----------------------------------------------------------------------------- guidance


class GuidanceExplorer(_Explorer):
    """Class-guided samples coloured by the class of their nearest training point.

    Controls: ``label`` (Dropdown of class names), ``w`` (0..8, toydiff convention), ``negative``
    ("none" or a class name). The w slider updates on release: 500 guided samples take ~0.1 s.

    Attributes:
        samples: (n, 2) current samples; accuracy and negative_share: the readout's numbers.
    """

    NONE = "none"

    def __init__(self, model, label="cats", w=None, negative=None, n=250, steps=64, theme=None):
        cloud = model.cloud
        if not model.config.labels or cloud.labels is None:
            raise ToydiffError(
                f"guidance_explorer needs a class-conditional model (trained with labels=True on "
                f"labelled data); this model was trained on {model.config.data!r} without labels"
            )
        _check_choice("label", label, cloud.class_names)
        _check_choice("negative class", negative, (None, *cloud.class_names))
        w = default_weight(negative) if w is None else w
        _check_range("w", w, 0.0, 8.0)
        super().__init__(theme)
        self.model, self.process, self.steps = model, model.process, steps
        self._net = model.denoiser()
        k_prior, self._key = jax.random.split(jax.random.key(0))
        self._x_init = self.process.prior(k_prior, (n, 2))
        self.label = widgets.Dropdown(options=cloud.class_names, value=label, description="class")
        self.w = widgets.FloatSlider(
            value=w, min=0.0, max=8.0, step=0.1, description="w", continuous_update=False, **_SLIDER
        )
        self.negative = widgets.Dropdown(
            options=(self.NONE, *cloud.class_names),
            value=negative or self.NONE,
            description="negative",
        )
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.label, self.w, self.negative]),
                self.image,
                self.readout,
                self.timing,
            ]
        )
        self._compute()
        self._build()
        self.update()
        self._bind([self.label, self.w, self.negative], self.update)

    def _denoiser(self):
        """CFG toward the class, away from the negative class or the null class.

        The null class id stands for "no negative" (it is the unconditional prediction), so both
        cases share one pytree structure and one compiled sampler.
        """
        cloud, neg = self.model.cloud, self.negative.value
        neg_id = self.model.config.net.null_class if neg == self.NONE else cloud.label_id(neg)
        return classifier_free(self._net, cloud.label_id(self.label.value), self.w.value, neg_id)

    def _compute(self) -> None:
        cloud = self.model.cloud
        traj = samplers.ddpm(self._key, self._denoiser(), self.process, self._x_init, self.steps)
        self.samples = np.asarray(traj[-1])  # (n, 2)
        _, idx = metrics.nearest(self.samples, cloud.x)
        self.sample_classes = cloud.labels[idx]
        label = cloud.label_id(self.label.value)
        self.accuracy = metrics.class_accuracy(self.samples, label, cloud.x, cloud.labels)
        neg = self.negative.value
        self.negative_share = (
            None
            if neg == self.NONE
            else metrics.class_share(self.samples, cloud.label_id(neg), cloud.x, cloud.labels)
        )

    def _build(self) -> None:
        """Samples (small) under the training points (large), both coloured by class."""
        cloud = self.model.cloud
        fig, ax = viz.new_axes(theme=self.theme)
        colls, _ = _added(
            ax,
            lambda: viz.points(
                self.samples, ax=ax, labels=self.sample_classes, s=7, theme=self.theme
            ),
        )
        self._dots = colls[-1]
        train_points, _ = _added(
            ax,
            lambda: viz.points(
                cloud.x,
                ax=ax,
                labels=cloud.labels,
                class_names=cloud.class_names,
                s=28,
                title=" ",
                theme=self.theme,
            ),
        )
        self._ax = ax
        self._class_rgba = to_rgba_array(self.theme["classes"])
        # drawn over the samples, as in a full draw: training points, legend, title
        self._adopt(fig, [self._dots, *train_points, ax.get_legend(), ax.title])

    def _draw(self) -> None:
        self._dots.set_offsets(self.samples)
        self._dots.set_facecolors(self._class_rgba[self.sample_classes % len(self._class_rgba)])
        neg = self.negative.value
        title = f"{self.label.value}, w = {self.w.value:.1f}"
        self._ax.title.set_text(title + ("" if neg == self.NONE else f", not {neg}"))
        text = f"class accuracy {self.accuracy:.1%}"
        if self.negative_share is not None:
            text += f" &nbsp;|&nbsp; share in the negative class ({neg}) {self.negative_share:.1%}"
        self.readout.value = text


def guidance_explorer(
    model: Model, label="cats", w=None, negative=None, n=250, steps=64, theme=None
) -> GuidanceExplorer:
    """Classifier-free guidance and negative classes on a class-conditional model (ch. 8 and 9).

    Samples use DDPM with fixed noise, so moving w shows how the same particles move. They are
    coloured by the class of their nearest training point; the readout gives the class accuracy
    and the share landing in the negative class (``metrics.class_accuracy``, ``class_share``).

    Args:
        model: a model trained with labels (e.g. on ``"spiral-classes"``).
        label: the class to steer toward.
        w: guidance weight, eps = eps_u + w (eps_c - eps_u) (w = 1 plain conditional); None
            for the default (3, or 1.25 with a negative class: ``guidance.default_weight``).
        negative: a class to steer away from, or None.
        n: number of samples.
        steps: DDPM steps.
        theme: ``"dark"``, ``"light"`` or None for the ``viz`` default.

    Returns:
        A ``GuidanceExplorer``.

    Raises:
        ToydiffError: the model has no labels, or a class name is unknown.

    References:
        Ho & Salimans, "Classifier-Free Diffusion Guidance", 2022.
    """
    return GuidanceExplorer(
        model, label=label, w=w, negative=negative, n=n, steps=steps, theme=theme
    )


# ----------------------------------------------------------------------------- forward process


class ForwardExplorer(_Explorer):
    """Forward diffusion as Brownian motion: walkers leave the data; their spread is checked.

    The walks are simulated once (``processes.random_walk``, one scan) in the constructor; the
    ``t`` slider only redraws.

    Attributes:
        paths: (steps + 1, n_walkers, 2) walker positions on the time grid ``ts``.
        simulated_variance, closed_form_variance: at the shown time, the per-coordinate variance
            of the displacement x_t - alpha(t) x0 over all walkers, and sigma(t)^2.
    """

    def __init__(
        self, cloud=None, process=None, t=0.3, n_walkers=2000, steps=100, seed=0, theme=None
    ):
        _check_range("t", t, 0.0, 1.0)
        if n_walkers < 2 or steps < 1:
            raise ToydiffError(f"need n_walkers >= 2 and steps >= 1, got {n_walkers}, {steps}")
        super().__init__(theme)
        self.cloud = data_lib.spiral() if cloud is None else cloud
        self.process = VE() if process is None else process
        x0 = self.cloud.x[np.arange(n_walkers) % len(self.cloud.x)]  # (n, 2), cycling the data
        ts, paths = random_walk(jax.random.key(seed), self.process, jnp.asarray(x0), steps)
        self.ts, self.paths = np.asarray(ts), np.asarray(paths)  # (steps + 1,), (steps + 1, n, 2)
        alpha = np.asarray(self.process.alpha(self.ts))[:, None, None]
        self._variances = np.var(self.paths - alpha * x0[None], axis=(1, 2))  # (steps + 1,)
        self._sigma2 = np.asarray(self.process.sigma(self.ts)) ** 2
        self.t = _time_slider(t)
        self.widget = widgets.VBox([self.t, self.image, self.readout, self.timing])
        self._build()
        self.update()
        self._bind([self.t], self.update)

    def _build(self) -> None:
        """Draw the walks with ``viz.random_walk`` once; keep its artists to move."""
        fig, ax = viz.new_axes(theme=self.theme)
        colls, _ = _added(
            ax,
            lambda: viz.random_walk(
                self.paths[:2], ax=ax, data=self.cloud.x, title=" ", theme=self.theme
            ),
        )
        self._tails = next(c for c in colls if isinstance(c, LineCollection))
        self._dots = [c for c in colls if c is not self._tails][0]
        self._shown = self.paths[:, :DRAWN_WALKERS]  # all walkers count; these few are drawn
        self._rgba = np.tile(to_rgba_array([self.theme["sample"]]), (self._shown.shape[1], 1))
        self._ax = ax
        self._adopt(fig, [*colls, ax.title])  # the data are drawn last, on top of the walks

    def _compute(self) -> None:
        k = int(np.argmin(np.abs(self.ts - self.t.value)))  # the nearest simulated time
        self.step = k
        self.simulated_variance = float(self._variances[k])
        self.closed_form_variance = float(self._sigma2[k])

    def _draw(self) -> None:
        k = self.step
        segs, colors = viz.tail_segments(self._shown, k, TAIL, self._rgba)
        self._tails.set_segments(segs)
        self._tails.set_color(colors)
        self._dots.set_offsets(self._shown[k])
        t = self.ts[k]
        self._ax.title.set_text(f"forward walk, t = {t:.2f}")
        sim, exact = self.simulated_variance, self.closed_form_variance
        rel = sim / exact - 1 if exact > 0 else float("nan")
        shift = "x<sub>0</sub>" if isinstance(self.process, VE) else "&alpha;(t) x<sub>0</sub>"
        self.readout.value = (
            f"variance of x<sub>t</sub> &minus; {shift} per coordinate, {self.paths.shape[1]} "
            f"walkers: simulated {sim:.4g}, closed form &sigma;(t)&sup2; = {exact:.4g} "
            f"({rel:+.1%})"
        )


def forward_explorer(
    cloud=None, process=None, t=0.3, n_walkers=2000, steps=100, seed=0, theme=None
) -> ForwardExplorer:
    """Forward diffusion as Brownian motion, with the chapter-3 variance check.

    Walkers start on the data and take ``steps`` small Gaussian steps whose variances are the
    differences of sigma(t)^2 (VE: x_{k+1} = x_k + sqrt(sigma_{k+1}^2 - sigma_k^2) z). The t
    slider shows their positions with short tails; the readout compares the simulated variance
    of the displacement with the closed form sigma(t)^2.

    Args:
        cloud: the data (``data.spiral()`` if None).
        process: the forward process (the reference VE if None); VP and flow work too.
        t: initial time in [0, 1].
        n_walkers: number of walkers (the data points, cycled).
        steps: number of steps from t_min to t_max.
        seed: seed of the walk.
        theme: ``"dark"``, ``"light"`` or None for the ``viz`` default.

    Returns:
        A ``ForwardExplorer``.

    References:
        Song et al., "Score-Based Generative Modeling through SDEs", ICLR 2021 (VE as Brownian
        motion).
    """
    return ForwardExplorer(
        cloud=cloud, process=process, t=t, n_walkers=n_walkers, steps=steps, seed=seed, theme=theme
    )


# ----------------------------------------------------------------------------- live training


class _TrainingView(_Explorer):
    """Loss curve, the field at t = 0.3 and a progress label, redrawn after each chunk."""

    def __init__(self, config: TrainConfig, theme):
        super().__init__(theme)
        self.config = config
        self.grid = metrics.grid(30, viz.LIM)
        self.label = widgets.HTML(f"step 0 / {config.steps}: compiling ...")
        self.widget = widgets.VBox([self.label, self.image, self.timing])
        self.model = None

    def show(self, model: Model) -> None:
        """Training callback: redraw with the latest snapshot."""
        t0 = time.perf_counter()
        self.model = model
        self.field = np.asarray(_field(model.denoiser(), self.grid, LIVE_FIELD_T))
        loss = float(np.mean(model.losses[-self.config.chunk :]))
        self.label.value = f"step {model.steps} / {self.config.steps}, loss {loss:.3f}"
        if self.fig is None:
            self._build()
        self._show(t0, time.perf_counter())

    def _build(self) -> None:
        """Two panels: the loss (redrawn per chunk) and the field (arrows moved in place)."""
        fig = viz.compare(
            [
                lambda ax: None,
                lambda ax: viz.vector_field(self.grid, self.field, ax=ax, data=self.model.cloud.x),
            ],
            titles=["loss", f"field at t = {LIVE_FIELD_T}"],
            theme=self.theme,
            size=4.5,
        )
        self._loss_ax, self._field_ax = fig.axes
        self._adopt(fig, freeze=False)  # the loss axis's labels change width as it trains

    def _draw(self) -> None:
        ax = self._loss_ax
        for line in list(ax.lines):  # not ax.cla(): that would drop the theme's label sizes
            line.remove()
        ax.relim()
        viz.loss_curve(self.model.losses, ax=ax, title="loss", theme=self.theme)
        viz.update_vector_field(self._field_ax, self.field)


def live_training(config: TrainConfig | None = None, cloud=None, theme=None) -> Model:
    """Train while watching the loss curve and the field at t = 0.3 change.

    The view (loss curve, field, "step k / N, loss x.xxx") is displayed when running in a
    Jupyter kernel and updated after every training chunk (``config.chunk`` steps); elsewhere
    the display is skipped and this just trains.

    Args:
        config: training settings (``model.REFERENCE`` if None).
        cloud: the data; loaded from ``config.data`` if None.
        theme: ``"dark"``, ``"light"`` or None for the ``viz`` default.

    Returns:
        The trained ``Model``.
    """
    config = REFERENCE if config is None else config
    view = _TrainingView(config, theme)
    _display(view)
    return train(config, cloud, progress=False, callback=view.show)


# ----------------------------------------------------------------------------- bench


def bench_widgets(model: Model, moves: int = 20) -> dict:
    """Median update seconds of the field, sampler and forward explorers, after warm-up.

    Args:
        model: a trained model.
        moves: number of slider moves to time.

    Returns:
        ``{"widget_field_explorer_s": ..., "widget_sampler_explorer_s": ...,
        "widget_forward_explorer_s": ...}``: the median over t moves (field evaluation + redraw),
        over eta moves of DDIM with 64 steps (sampling 257 particles + redraw) and over t moves
        of the forward walk (redraw).
    """
    field = FieldExplorer(model, t=0.5)
    sampler = SamplerExplorer(model, sampler="ddim", eta=0.0)
    forward = ForwardExplorer(t=0.3)
    field_s, sampler_s, forward_s = [], [], []
    for k in range(moves):
        field.t.value = round(0.05 + 0.04 * k, 2)  # never 0.5, so every move is a change
        field_s.append(field.latency)
        sampler.eta.value = round(1.0 - 0.05 * k, 2)  # never 0.0
        sampler_s.append(sampler.latency)
        forward.t.value = round(0.32 + 0.03 * k, 2)  # never 0.3
        forward_s.append(forward.latency)
    return {
        "widget_field_explorer_s": float(np.median(field_s)),
        "widget_sampler_explorer_s": float(np.median(sampler_s)),
        "widget_forward_explorer_s": float(np.median(forward_s)),
    }
