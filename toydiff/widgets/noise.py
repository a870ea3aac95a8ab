"""The noise explorer (chapter 2): drop noise draws and watch the field carry each to a cluster."""

from __future__ import annotations

import time

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from matplotlib.collections import LineCollection

from toydiff import data as data_lib
from toydiff import metrics, viz
from toydiff.engine import samplers
from toydiff.engine.oracle import point_set_oracle
from toydiff.engine.processes import VE
from toydiff.errors import ToydiffError
from toydiff.widgets.base import PATH_STEPS, Explorer, field_of

INSIDE = 0.1  # a draw is "inside" a cluster within this distance of a good image (chapter 2)
FIELD_T = 0.35  # the time of the field drawn under the paths, as in the chapter


def start_time(process, sigma: float = 1.0) -> float:
    """The time at which the process's noise level is ``sigma`` (by bisection on sigma(t)).

    A standard-normal draw is a plausible noisy picture at sigma = 1, so that is where the
    dropped draws start their walk.
    """
    lo, hi = float(process.t_min), float(process.t_max)
    if float(process.sigma(hi)) <= sigma:
        return hi
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if float(process.sigma(mid)) < sigma else (lo, mid)
    return 0.5 * (lo + hi)


def cluster_centres(cloud: data_lib.PointCloud) -> np.ndarray:
    """The centres of the clusters draws can land in: (k, 2).

    The 8 Gaussians sit on the unit circle; for other data every training point is its own
    "cluster", so a landing spot is named by its nearest training point.
    """
    if cloud.name == "gaussians":
        angle = 2 * np.pi * np.arange(8) / 8
        return np.stack([np.cos(angle), np.sin(angle)], axis=-1).astype(np.float32)
    return np.asarray(cloud.x, np.float32)


class NoiseExplorer(Explorer):
    """Noise draws following the exact field of the good images, coloured by where they land.

    Controls: ``drop`` (a Button: n new standard-normal draws), ``clear`` (Button). A click on
    the picture, or ``click(x, y)``, drops one draw there. Every draw follows the exact
    probability-flow path (DDIM, eta = 0, ``PATH_STEPS`` steps) from sigma = 1 down to clean
    data, over the exact field at t = 0.35.

    Attributes:
        paths: (PATH_STEPS + 1, m, 2) the paths of the m draws so far.
        landed: (m,) the cluster each draw ended in (index into ``centres``).
    """

    def __init__(self, cloud=None, n: int = 20, seed: int = 0, theme=None):
        if not 1 <= n <= 2000:
            raise ToydiffError(f"n must be in [1, 2000], got {n}")
        super().__init__(theme)
        self.cloud = data_lib.load("gaussians") if cloud is None else cloud
        self.process = VE()
        self.n, self.seed, self._drops = n, seed, 0
        self.oracle = point_set_oracle(self.process, self.cloud.x)
        self.t_start = start_time(self.process)
        self.centres = cluster_centres(self.cloud)
        self.paths = np.zeros((PATH_STEPS + 1, 0, 2), np.float32)
        self.landed = np.zeros(0, int)
        self.drop = widgets.Button(description=f"drop {n} noise draws", icon="plus")
        self.clear = widgets.Button(description="clear", icon="trash")
        self.drop.on_click(lambda _b: self.drop_noise())
        self.clear.on_click(lambda _b: self.reset())
        self.widget = widgets.VBox(
            [widgets.HBox([self.drop, self.clear]), self.image, self.readout, self.timing]
        )
        self._listen_clicks()
        self._build()
        self._walk(np.zeros((n, 2), np.float32))  # compile both draw sizes before the first press
        self._walk(np.zeros((1, 2), np.float32))
        self.update()

    def _walk(self, points: np.ndarray) -> np.ndarray:
        """The DDIM (eta = 0) paths of points (m, 2) from sigma = 1 to clean data: (k, m, 2)."""
        traj = samplers.ddim(
            jax.random.key(0),
            self.oracle,
            self.process,
            jnp.asarray(points, jnp.float32),
            PATH_STEPS,
            eta=0.0,
            t_start=jnp.float32(self.t_start),
        )
        return np.asarray(traj)

    def _add(self, points: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        new = self._walk(points)
        self.paths = np.concatenate([self.paths, new], axis=1)
        _, idx = metrics.nearest(self.paths[-1], self.centres)
        self.landed = np.asarray(idx)
        self._show(t0, time.perf_counter())
        return new

    def drop_noise(self) -> np.ndarray:
        """Drop n new draws from N(0, I) (a new key per press); returns their paths (k, n, 2)."""
        key = jax.random.fold_in(jax.random.key(self.seed), self._drops)
        self._drops += 1
        return self._add(np.asarray(jax.random.normal(key, (self.n, 2)), np.float32))

    def click(self, x: float, y: float) -> np.ndarray:
        """Drop one draw at (x, y); returns its path (k, 1, 2)."""
        return self._add(np.array([[x, y]], np.float32))

    def reset(self) -> None:
        """Remove every draw."""
        self.paths = np.zeros((PATH_STEPS + 1, 0, 2), np.float32)
        self.landed = np.zeros(0, int)
        self.update()

    def inside(self) -> tuple[np.ndarray, np.ndarray]:
        """Which draws started, and which ended, within 0.1 of a good image: two (m,) bools."""
        if self.paths.shape[1] == 0:
            return np.zeros(0, bool), np.zeros(0, bool)
        start = np.asarray(metrics.nearest(self.paths[0], self.cloud.x)[0]) <= INSIDE
        end = np.asarray(metrics.nearest(self.paths[-1], self.cloud.x)[0]) <= INSIDE
        return start, end

    def _build(self) -> None:
        fig, ax = viz.new_axes(theme=self.theme, size=5.5)
        grid = metrics.grid(20, viz.LIM)
        field = np.asarray(field_of(self.oracle, grid, FIELD_T))
        viz.vector_field(grid, field, ax=ax, data=self.cloud.x, theme=self.theme)
        self._lines = LineCollection([], linewidths=1.5, zorder=4)
        ax.add_collection(self._lines)
        accent = self.theme["accent"]
        self._starts = ax.scatter([], [], s=40, facecolors="none", edgecolors=accent, zorder=5)
        self._ends = ax.scatter([], [], s=30, zorder=6, edgecolors=accent, linewidths=0.5)
        ax.set_title(f"noise draws follow the field (t = {FIELD_T} shown)")
        self._cmap = matplotlib.colormaps[self.theme["cmap"]]
        self._adopt(fig, [self._lines, self._starts, self._ends])

    def _draw(self) -> None:
        m = self.paths.shape[1]
        colors = self._cmap((self.landed + 0.5) / len(self.centres)) if m else np.zeros((0, 4))
        self._lines.set_segments([self.paths[:, j] for j in range(m)])
        self._lines.set_color(colors)
        self._starts.set_offsets(self.paths[0] if m else np.zeros((0, 2)))
        self._ends.set_offsets(self.paths[-1] if m else np.zeros((0, 2)))
        self._ends.set_facecolors(colors)
        self.readout.value = self._readout()

    def _readout(self) -> str:
        m = self.paths.shape[1]
        if m == 0:
            return (
                "Press the button (or click the picture) to drop noise draws. Each draw starts "
                "as N(0, I) noise and walks along the arrows."
            )
        start, end = self.inside()
        reached = len(np.unique(self.landed))
        return (
            f"{m} draws: {int(start.sum())} started inside a cluster (within {INSIDE}), "
            f"{int(end.sum())} ended inside after following the field; they reached {reached} "
            f"of the {len(self.centres)} clusters."
        )


def noise_explorer(cloud=None, n: int = 20, seed: int = 0, theme=None) -> NoiseExplorer:
    """Drop noise draws onto the map of good images and watch the field carry each one home.

    Chapter 2's live control: a button drops n draws from N(0, I) (most land in empty space), a
    click drops one where you click, and each draw follows the exact probability-flow path of
    the data from sigma = 1 to sigma = 0. Paths and end points are coloured by the cluster they
    reach; the readout counts how many draws started and ended inside a cluster.

    Args:
        cloud: the good images (default: the 8 Gaussians of chapter 2).
        n: draws per press, 1..2000.
        seed: seed of the draws; press k uses ``fold_in(key(seed), k)``.
        theme: ``"dark"``, ``"light"`` or None for the ``viz`` default.

    Returns:
        A ``NoiseExplorer``.
    """
    return NoiseExplorer(cloud=cloud, n=n, seed=seed, theme=theme)
