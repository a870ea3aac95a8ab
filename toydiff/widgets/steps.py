"""The training-steps explorer (chapter 4): two objectives side by side, over training time."""

from __future__ import annotations

import ipywidgets as widgets
import jax
import numpy as np

from toydiff import metrics, viz
from toydiff.errors import ToydiffError
from toydiff.widgets.base import SLIDER, Explorer

SWD_KEY = 5  # the chapter's SWD key


class StepsExplorer(Explorer):
    """Samples of several training runs at the same training step, with their scores.

    Controls: ``step`` (a SelectionSlider over the saved snapshots' step counts). Every run is
    sampled from the same prior draws and sampler noise (DDPM, ``sample_steps`` steps), so the
    panels differ only by what each objective has learned by that step. Samples are computed
    when a step is first shown and kept.

    Attributes:
        samples: ``{run name: (n, 2)}`` at the current step.
        scores: ``{run name: (curve precision, SWD)}`` at the current step.
    """

    def __init__(self, runs: dict, n=1000, sample_steps=64, seed=1, theme=None):
        if not runs:
            raise ToydiffError("runs is empty; pass {name: cached_snapshots(config)}")
        steps = [tuple(m.steps for m in snaps) for snaps in runs.values()]
        if len(set(steps)) != 1:
            raise ToydiffError(f"the runs were saved at different steps: {steps}")
        super().__init__(theme)
        self.runs, self.n, self.sample_steps, self.seed = dict(runs), n, sample_steps, seed
        first = next(iter(runs.values()))[0]
        self.cloud = first.cloud
        self._memo: dict = {}
        self.step = widgets.SelectionSlider(
            options=list(steps[0]),
            value=steps[0][-1],
            description="training step",
            continuous_update=False,
            **SLIDER,
        )
        self.widget = widgets.VBox([self.step, self.image, self.readout, self.timing])
        self._compute()
        self._build()
        self.update()
        self._bind([self.step], self.update)

    def _at(self, name: str, index: int) -> tuple[np.ndarray, tuple[float, float]]:
        """Samples and (precision, SWD) of run ``name`` at snapshot ``index``, memoised."""
        if (name, index) not in self._memo:
            model = self.runs[name][index]
            x = np.asarray(
                model.sample(jax.random.key(self.seed), n=self.n, steps=self.sample_steps)[-1]
            )
            precision = metrics.curve_precision(x, self.cloud.curve)
            swd = metrics.sliced_wasserstein(jax.random.key(SWD_KEY), x, self.cloud.x)
            self._memo[name, index] = (x, (precision, swd))
        return self._memo[name, index]

    def _compute(self) -> None:
        index = self.step.options.index(self.step.value)
        results = {name: self._at(name, index) for name in self.runs}
        self.samples = {name: r[0] for name, r in results.items()}
        self.scores = {name: r[1] for name, r in results.items()}

    def _build(self) -> None:
        names = list(self.runs)
        fig = viz.compare(
            [
                lambda ax, x=self.samples[n]: viz.points(x, ax=ax, data=self.cloud.x, s=5)
                for n in names
            ],
            titles=[self._title(n) for n in names],
            theme=self.theme,
            size=4.5,
        )
        self._axes = dict(zip(names, fig.axes, strict=True))
        dynamic = []
        for ax in fig.axes:
            dynamic += [ax.collections[-1], ax.title]  # the samples; the data stay behind
        self._adopt(fig, dynamic)

    def _title(self, name: str) -> str:
        precision, swd = self.scores[name]
        return f"{name}: precision {precision:.0%}, SWD {swd:.3f}"

    def _draw(self) -> None:
        for name, ax in self._axes.items():
            ax.collections[-1].set_offsets(self.samples[name])
            ax.title.set_text(self._title(name))
        parts = [f"{n}: precision {p:.1%}, SWD {d:.4f}" for n, (p, d) in self.scores.items()]
        self.readout.value = f"step {self.step.value}: " + " &nbsp;|&nbsp; ".join(parts)


def steps_explorer(runs: dict, n=1000, sample_steps=64, seed=1, theme=None) -> StepsExplorer:
    """Samples of several training runs side by side, with a slider over training steps.

    Chapter 4's live control: ``runs`` maps a name to the snapshots of one run (from
    ``toydiff.cached_snapshots``), e.g. the eps and the naive objective on the same data with the
    same network. Moving the slider shows what each model draws after that many steps, from the
    same noise, with the chapter's scores: curve precision (share within 0.05 of the spiral) and
    the sliced Wasserstein distance to the training points.

    Args:
        runs: ``{name: [Model after chunk 1, ..., Model at the end]}``, all saved at the same steps.
        n: samples per panel.
        sample_steps: DDPM steps.
        seed: the sampling key, shared by every panel and step.
        theme: ``"dark"``, ``"light"`` or None for the ``viz`` default.

    Returns:
        A ``StepsExplorer``.
    """
    return StepsExplorer(runs, n=n, sample_steps=sample_steps, seed=seed, theme=theme)
