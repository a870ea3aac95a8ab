"""The quality explorer (chapter 7): sampler and step count against measured precision/coverage."""

from __future__ import annotations

import ipywidgets as widgets
import jax
import numpy as np

from toydiff import metrics, viz
from toydiff.engine import samplers
from toydiff.errors import ToydiffError
from toydiff.widgets.base import SLIDER, Explorer, check_choice

STEP_CHOICES = (4, 8, 16, 32, 64, 128, 256)
REFERENCE_RUN = ("ddpm", 256)  # what every setting is compared with: DDPM with many steps


class QualityExplorer(Explorer):
    """Final samples of a chosen sampler and step count, scored against the data's curve.

    Controls: ``model`` (ToggleButtons, when more than one model is given), ``sampler``
    (Dropdown over ``samplers.SAMPLERS``) and ``steps`` (SelectionSlider over ``STEP_CHOICES``,
    updates on release). The readout gives curve precision and coverage (chapter 7's scores) of
    the shown samples beside those of DDPM with 256 steps from the same prior draws. Results are
    kept, so returning to a setting is instant.

    Attributes:
        samples: (n, 2) the shown samples.
        scores: (precision, coverage) of the shown samples.
        reference: (precision, coverage) of DDPM-256 on the same model and seed.
    """

    def __init__(self, models: dict, sampler="ddim", steps=16, n=2000, seed=1, theme=None):
        if not models:
            raise ToydiffError("models is empty; pass {name: model}")
        check_choice("sampler", sampler, samplers.SAMPLERS)
        check_choice("steps", steps, STEP_CHOICES)
        for name, m in models.items():
            if m.cloud.curve is None:
                raise ToydiffError(f"model {name!r} was not trained on a curve; no precision")
        super().__init__(theme)
        self.models, self.n, self.seed, self._memo = dict(models), n, seed, {}
        self.model = widgets.ToggleButtons(options=list(models), description="model")
        self.sampler = widgets.Dropdown(
            options=samplers.SAMPLERS.names, value=sampler, description="sampler"
        )
        self.steps = widgets.SelectionSlider(
            options=list(STEP_CHOICES),
            value=steps,
            description="steps",
            continuous_update=False,
            **SLIDER,
        )
        controls = [self.sampler, self.steps]
        if len(models) > 1:
            controls.insert(0, self.model)
        self.widget = widgets.VBox(
            [widgets.HBox([self.image, widgets.VBox(controls)]), self.readout, self.timing]
        )
        self._compute()
        self._build()
        self.update()
        self._bind([self.model, self.sampler, self.steps], self.update)

    def _run(self, name: str, sampler: str, steps: int):
        """Samples (n, 2) and (precision, coverage) of one setting, memoised."""
        if (name, sampler, steps) not in self._memo:
            model = self.models[name]
            x = np.asarray(
                model.sample(jax.random.key(self.seed), n=self.n, steps=steps, sampler=sampler)[-1]
            )
            curve = model.cloud.curve
            scores = (metrics.curve_precision(x, curve), metrics.curve_coverage(x, curve))
            self._memo[name, sampler, steps] = (x, scores)
        return self._memo[name, sampler, steps]

    def _compute(self) -> None:
        name = self.model.value
        self.samples, self.scores = self._run(name, self.sampler.value, self.steps.value)
        self.reference = self._run(name, *REFERENCE_RUN)[1]

    def _build(self) -> None:
        cloud = next(iter(self.models.values())).cloud
        fig, ax = viz.new_axes(theme=self.theme, size=5.0)
        viz.points(self.samples, ax=ax, data=cloud.x, s=4, theme=self.theme)
        self._ax = ax
        self._adopt(fig, [ax.collections[-1], ax.title])

    def _draw(self) -> None:
        (p, c), (rp, rc) = self.scores, self.reference
        self._ax.collections[-1].set_offsets(self.samples)
        label = f"{self.sampler.value}, {self.steps.value} steps"
        self._ax.title.set_text(f"{label}: precision {p:.0%}, coverage {c:.0%}")
        ref = "{} {} steps".format(*REFERENCE_RUN).upper()
        self.readout.value = (
            f"<b>{self.model.value}, {label}</b>: precision {p:.1%}, coverage {c:.1%} "
            f"&nbsp;|&nbsp; {ref}: precision {rp:.1%}, coverage {rc:.1%} "
            f"&nbsp;|&nbsp; gap {p - rp:+.1%} / {c - rc:+.1%} ({self.n:,} samples)"
        )


def quality_explorer(
    models: dict, sampler="ddim", steps=16, n=2000, seed=1, theme=None
) -> QualityExplorer:
    """Pick a sampler and a number of steps; see the samples and their measured quality.

    Chapter 7's live control. The picture shows the n final samples over the training points;
    beside it, curve precision (share within 0.05 of the curve) and coverage (share of the
    curve's 50 arc-length bins that a sample reaches), and the same for DDPM with 256 steps from
    the same prior draws, the reference every cheaper setting is measured against.

    Args:
        models: ``{name: model}`` trained on a curve, e.g. the 30,000-step eps model and the
            flow-matching model; one toggle button per model.
        sampler: one of ``samplers.SAMPLERS``.
        steps: one of ``STEP_CHOICES``.
        n: samples per setting.
        seed: the sampling key (the same prior draws for every setting).
        theme: ``"dark"``, ``"light"`` or None for the ``viz`` default.

    Returns:
        A ``QualityExplorer``.
    """
    return QualityExplorer(models, sampler=sampler, steps=steps, n=n, seed=seed, theme=theme)
