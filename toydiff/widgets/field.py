"""The field explorer: the learned (or exact) vector field at a chosen t, with clicked paths."""

from __future__ import annotations

import time

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import numpy as np

from toydiff import metrics, viz
from toydiff.model import Model
from toydiff.widgets.base import (
    MODES,
    PATH_STEPS,
    TIMES,
    Explorer,
    check_choice,
    check_range,
    field_of,
    time_slider,
)


class FieldExplorer(Explorer):
    """The normalised field -eps_hat over t, learned beside exact, with clickable flow paths.

    Controls: ``t`` (FloatSlider 0..1), ``mode`` (ToggleButtons learned / exact / both). A click on
    the picture, or ``click(x, y)``, draws the probability-flow (DDIM, eta = 0) path of that point
    from the current t down to clean data in each panel; moving t or the mode clears it.

    Attributes:
        paths: ``{"learned" | "exact": (PATH_STEPS + 1, 2) path}`` of the last click.
        fields: ``{"learned" | "exact": (n * n, 2) field}`` currently drawn.
    """

    def __init__(self, model: Model, t=0.5, mode="learned", n=30, theme=None):
        check_choice("mode", mode, MODES)
        check_range("t", t, 0.0, 1.0)
        super().__init__(theme)
        self.model, self.process = model, model.process
        self.n, self.grid = n, metrics.grid(n, viz.LIM)  # (n * n, 2)
        self._denoisers = {"learned": model.denoiser(), "exact": model.denoiser(exact=True)}
        self.t = time_slider(t)
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
        ts = np.clip(TIMES, self.process.t_min, self.process.t_max)
        out = {}
        for kind, den in self._denoisers.items():
            out[kind] = metrics.phase_diagnostic(
                lambda pts, t, den=den: field_of(den, pts, t),
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
        request = self.model.check_sample(
            x_init=np.asarray(point, np.float32).reshape(1, 2),
            steps=PATH_STEPS,
            sampler="ddim",
            options={"t_start": jnp.float32(t)},  # traced: a click at a new t does not recompile
            exact=kind == "exact",
        )
        return np.asarray(self.model.run(jax.random.key(0), request)[:, 0])

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
        self.fields = {k: np.asarray(field_of(den[k], self.grid, t)) for k in self._kinds()}

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
        k = int(np.argmin(np.abs(TIMES - self.t.value)))
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
