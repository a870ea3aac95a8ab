"""The guidance explorer: classifier-free guidance and a negative class on the labelled spiral."""

from __future__ import annotations

import ipywidgets as widgets
import jax
import numpy as np
from matplotlib.colors import to_rgba_array

from toydiff import metrics, viz
from toydiff.engine.guidance import check_negative, default_weight
from toydiff.errors import ToydiffError
from toydiff.model import Model
from toydiff.widgets.base import (
    SLIDER,
    Explorer,
    added_artists,
    check_choice,
    check_range,
)


class GuidanceExplorer(Explorer):
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
        check_choice("label", label, cloud.class_names)
        check_choice("negative class", negative, (None, *cloud.class_names))
        check_negative(label, negative)  # as Model.denoiser: a negative differs from the target
        w = default_weight(negative) if w is None else w
        check_range("w", w, 0.0, 8.0)
        super().__init__(theme)
        self.model, self.process, self.steps = model, model.process, steps
        k_prior, self._key = jax.random.split(jax.random.key(0))
        self._x_init = self.process.prior(k_prior, (n, 2))
        self.label = widgets.Dropdown(options=cloud.class_names, value=label, description="class")
        self.w = widgets.FloatSlider(
            value=w, min=0.0, max=8.0, step=0.1, description="w", continuous_update=False, **SLIDER
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

    def _compute(self) -> None:
        """DDPM guided toward the class at w, away from the negative class (or the null class),
        from the fixed noise: a request like any other (``check_sample``, then ``run``)."""
        cloud, neg = self.model.cloud, self.negative.value
        request = self.model.check_sample(
            x_init=self._x_init,
            steps=self.steps,
            label=self.label.value,
            negative=None if neg == self.NONE else neg,
            guidance=self.w.value,
        )
        self.samples = np.asarray(self.model.run(self._key, request)[-1])  # (n, 2)
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
        colls, _ = added_artists(
            ax,
            lambda: viz.points(
                self.samples, ax=ax, labels=self.sample_classes, s=7, theme=self.theme
            ),
        )
        self._dots = colls[-1]
        train_points, _ = added_artists(
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
        ToydiffError: the model has no labels, a class name is unknown, or the negative class is
            the label itself (the dropdowns may still pick the same class later).

    References:
        Ho & Salimans, "Classifier-Free Diffusion Guidance", 2022.
    """
    return GuidanceExplorer(
        model, label=label, w=w, negative=negative, n=n, steps=steps, theme=theme
    )
