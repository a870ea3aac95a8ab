"""The sampler explorer: particles moving under DDPM, DDIM, the ODE or flow, noise on or off."""

from __future__ import annotations

import time

import ipywidgets as widgets
import jax
import numpy as np
from matplotlib.collections import LineCollection

from toydiff import viz
from toydiff.engine import samplers
from toydiff.errors import ToydiffError
from toydiff.model import Model
from toydiff.widgets.base import (
    SLIDER,
    TAIL,
    Explorer,
    added_artists,
    check_choice,
    check_range,
)


class SamplerExplorer(Explorer):
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
        check_choice("sampler", sampler, samplers.SAMPLERS)
        check_range("steps", steps, 4, 256)
        check_range("eta", eta, 0.0, 1.0)
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
        s = SLIDER
        self.sampler = widgets.Dropdown(
            options=samplers.SAMPLERS.names, value=sampler, description="sampler"
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
        colls, lines = added_artists(
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
