"""Draw your own data: sketch a point cloud, train on it live, explore its field and samples."""

from __future__ import annotations

import dataclasses
import time

import ipywidgets as widgets
import jax
import numpy as np
from ipyevents import Event

from toydiff import data as data_lib
from toydiff import metrics, viz
from toydiff.errors import ToydiffError
from toydiff.model import REFERENCE, Model, TrainConfig
from toydiff.training import train
from toydiff.widgets.base import Explorer, click_to_data
from toydiff.widgets.field import FieldExplorer

SPACING = 0.03  # a dragged stroke adds a point every 0.03 units (a 3 x 3 square spans 100)
MIN_POINTS = 10  # fewer drawn points than this is not a data set yet
SHAPE_POINTS = 200  # points taken from a shipped shape
SAMPLES = 2000  # DDPM samples scored against the drawn points
TOL = 0.05  # a sample counts as on the drawing within this distance (metrics.point_precision)
SHAPES = ("spiral", "moons", "rings", "gaussians", "checkerboard")
# The reference network and objective, trained for a third of the steps in chunks of 500, so a
# drawing trains in a few seconds and the progress line moves every half second or so.
DRAW_CONFIG = dataclasses.replace(REFERENCE, data="drawn", steps=5_000, chunk=500)


class DrawExplorer(Explorer):
    """A canvas to draw points on, a train button, and the trained model's field and samples.

    Drawing: press the mouse on the picture and drag; a point is added every ``SPACING`` along
    the stroke (``mousedown`` / ``mousemove`` / ``mouseup`` from ipyevents, mapped to data
    coordinates as clicks are). ``shape`` adds the points of a shipped data set instead;
    ``clear`` starts over. Code and tests can call ``stroke([(x, y), ...])`` and ``train()``.

    After training, the picture shows ``SAMPLES`` DDPM samples over the drawing, the readout
    gives their precision and coverage against the drawn points (the chapters' checks, on your
    data), and a field explorer of the new model opens below.

    Attributes:
        points: (m, 2) the drawn points.
        model: the trained ``Model`` (None before training).
        samples: (SAMPLES, 2) its samples (None before training).
        scores: ``{"precision": ..., "coverage": ...}`` of the samples (None before training).
    """

    def __init__(self, config: TrainConfig = DRAW_CONFIG, seed: int = 0, theme=None):
        super().__init__(theme)
        self.config = config
        self.seed = seed
        self.points = np.zeros((0, 2), np.float32)
        self.model = self.samples = self.scores = self.field = None
        self._pen_down, self._last = False, None
        self.shape = widgets.Dropdown(
            options=["(add a shape)", *SHAPES], value="(add a shape)", description="shape"
        )
        self.train_button = widgets.Button(description="train", icon="play", button_style="info")
        self.clear = widgets.Button(description="clear", icon="trash")
        self.status = widgets.HTML()
        self.explore = widgets.VBox([])
        self.shape.observe(lambda _c: self._on_shape(), names="value")
        self.train_button.on_click(lambda _b: self._on_train())
        self.clear.on_click(lambda _b: self.reset())
        controls = widgets.HBox([self.shape, self.train_button, self.clear])
        self.widget = widgets.VBox(
            [controls, self.image, self.status, self.readout, self.timing, self.explore]
        )
        self._events = Event(
            source=self.image,
            watched_events=["mousedown", "mousemove", "mouseup", "mouseleave"],
            prevent_default_action=True,  # no native drag of the picture
        )
        self._events.on_dom_event(self._on_pen)
        self._build()
        self.update()

    # ------------------------------------------------------------------ drawing

    def _on_pen(self, event: dict) -> None:
        """Mouse events: down starts a stroke, move extends it, up or leaving ends it."""
        kind = event.get("type")
        if kind in ("mouseup", "mouseleave"):
            self._pen_down, self._last = False, None
            return
        if kind == "mousedown":
            self._pen_down = True
        elif kind != "mousemove" or not self._pen_down:
            return
        xy = click_to_data(self.fig, event)
        if xy is not None:
            self.stroke([xy], new=kind == "mousedown")

    def stroke(self, xys, new: bool = True) -> int:
        """Add points along a stroke through the given (x, y) positions; returns points added.

        Consecutive positions closer than ``SPACING`` are merged; longer gaps are filled with
        points every ``SPACING``, so a fast drag draws a line, not dots.

        Args:
            xys: positions in data coordinates, in drawing order.
            new: start a new stroke (do not join the first position to the previous stroke).
        """
        t0 = time.perf_counter()
        added = []
        last = None if new else self._last
        for x, y in xys:
            p = np.array([x, y], np.float32)
            if last is None:
                added.append(p)
                last = p
                continue
            gap = float(np.linalg.norm(p - last))
            steps = int(gap // SPACING)  # 0 while the pen has moved less than SPACING
            added += [last + (p - last) * (k * SPACING / gap) for k in range(1, steps + 1)]
            if steps:
                last = added[-1]
        self._last = last
        if added:
            pts = np.clip(np.asarray(added, np.float32), -viz.LIM, viz.LIM)
            self.points = np.concatenate([self.points, pts])
            self._show(t0, time.perf_counter())
        return len(added)

    def _on_shape(self) -> None:
        name = self.shape.value
        if name in SHAPES:
            cloud = data_lib.load(name, jax.random.key(self.seed), n=SHAPE_POINTS)
            self.points = np.concatenate([self.points, cloud.x.astype(np.float32)])
            self.update()
            with self._hold():
                self.shape.value = "(add a shape)"

    def reset(self) -> None:
        """Remove every point and the trained model."""
        self.points = np.zeros((0, 2), np.float32)
        self.model = self.samples = self.scores = None
        self.explore.children = ()
        self.status.value = ""
        self.update()

    # ------------------------------------------------------------------ training

    def cloud(self) -> data_lib.PointCloud:
        """The drawing as a ``PointCloud`` named "drawn"; ToydiffError if too few points."""
        if len(self.points) < MIN_POINTS:
            raise ToydiffError(
                f"draw at least {MIN_POINTS} points first (you have {len(self.points)}): press "
                "the mouse on the picture and drag, or add a shape"
            )
        return data_lib.PointCloud("drawn", self.points.copy())

    def _on_train(self) -> None:
        try:
            self.train()
        except ToydiffError as err:
            self.status.value = f"<b>can't train yet:</b> {err}"

    def train(self) -> Model:
        """Train on the drawing, reporting progress per chunk; then sample and score.

        Returns:
            The trained ``Model``.
        """
        cloud = self.cloud()
        total = self.config.steps
        self.status.value = f"training on {len(cloud.x)} points: step 0 / {total}, compiling ..."
        start = time.perf_counter()

        def progress(snap: Model) -> None:
            loss = float(np.mean(snap.losses[-self.config.chunk :]))
            self.status.value = (
                f"training on {len(cloud.x)} points: step {snap.steps:,} / {total:,}, "
                f"loss {loss:.3f}, {time.perf_counter() - start:.1f} s"
            )

        config = dataclasses.replace(self.config, seed=self.seed)
        self.model = train(config, cloud, progress=False, callback=progress)
        seconds = time.perf_counter() - start
        t0 = time.perf_counter()
        xs = self.model.sample(jax.random.key(self.seed), n=SAMPLES, steps=64, sampler="ddpm")
        self.samples = np.asarray(xs[-1])
        self.scores = {
            "precision": metrics.point_precision(self.samples, cloud.x, tol=TOL),
            "coverage": metrics.point_coverage(self.samples, cloud.x),
        }
        self.status.value = (
            f"trained {total:,} steps on {len(cloud.x)} points in {seconds:.1f} s "
            f"(loss {float(np.mean(self.model.losses[-self.config.chunk :])):.3f})"
        )
        self._show(t0, time.perf_counter())
        self.field = FieldExplorer(self.model, t=0.3, theme=self.theme)
        self.explore.children = (widgets.HTML("<b>the field of your model</b>"), self.field.widget)
        return self.model

    # ------------------------------------------------------------------ picture

    def _build(self) -> None:
        fig, ax = viz.new_axes(theme=self.theme, size=5.5)
        t = self.theme
        self._drawn = ax.scatter([], [], s=10, color=t["data"], zorder=4)  # over the samples
        self._sampled = ax.scatter([], [], s=4, color=t["sample"], alpha=0.6, zorder=3)
        ax.set_title("draw here: press and drag")
        self._ax = ax
        self._adopt(fig, [self._drawn, self._sampled, ax.title])

    def _draw(self) -> None:
        self._drawn.set_offsets(self.points if len(self.points) else np.zeros((0, 2)))
        shown = self.samples if self.samples is not None else np.zeros((0, 2))
        self._sampled.set_offsets(shown)
        if self.scores is None:
            self._ax.title.set_text(f"draw here: press and drag ({len(self.points)} points)")
            self.readout.value = (
                f"{len(self.points)} points drawn. Press <b>train</b> when you like the shape."
                if len(self.points)
                else "Press the mouse on the picture and drag to draw, or add a shape."
            )
            return
        p, c = self.scores["precision"], self.scores["coverage"]
        self._ax.title.set_text(f"samples: precision {p:.0%}, coverage {c:.0%}")
        self.readout.value = (
            f"{SAMPLES:,} DDPM samples (64 steps) against your {len(self.points)} points: "
            f"precision {p:.1%} (within {TOL}), coverage {c:.1%}"
        )


def draw_your_data(config: TrainConfig = DRAW_CONFIG, seed: int = 0, theme=None) -> DrawExplorer:
    """Draw a point cloud with the mouse (or add a shipped shape), train on it, and explore it.

    One cell does it all: draw on the picture (press and drag), press **train** (a few seconds;
    the status line counts the steps), then read the samples' precision and coverage against
    your drawing and explore the new model's field below. Training starts again from scratch
    each time you press **train**, so you can change the drawing and compare.

    Args:
        config: training settings (default ``DRAW_CONFIG``: the reference recipe, 5,000 steps).
        seed: training and sampling seed.
        theme: ``"dark"``, ``"light"`` or None for the ``viz`` default.

    Returns:
        A ``DrawExplorer``.
    """
    return DrawExplorer(config=config, seed=seed, theme=theme)
