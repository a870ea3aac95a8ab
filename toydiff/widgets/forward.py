"""The forward explorer: random walkers spreading the data, with the variance against sigma(t)^2."""

from __future__ import annotations

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba_array

from toydiff import data as data_lib
from toydiff import viz
from toydiff.engine.processes import VE, random_walk
from toydiff.errors import ToydiffError
from toydiff.widgets.base import (
    DRAWN_WALKERS,
    TAIL,
    Explorer,
    added_artists,
    check_range,
    time_slider,
)


class ForwardExplorer(Explorer):
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
        check_range("t", t, 0.0, 1.0)
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
        self.t = time_slider(t)
        self.widget = widgets.VBox([self.t, self.image, self.readout, self.timing])
        self._build()
        self.update()
        self._bind([self.t], self.update)

    def _build(self) -> None:
        """Draw the walks with ``viz.random_walk`` once; keep its artists to move."""
        fig, ax = viz.new_axes(theme=self.theme)
        colls, _ = added_artists(
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
