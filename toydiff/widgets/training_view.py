"""Live training: the loss curve and the field redrawn after every training chunk."""

from __future__ import annotations

import time

import ipywidgets as widgets
import numpy as np

from toydiff import metrics, viz
from toydiff.model import REFERENCE, Model, TrainConfig
from toydiff.training import train
from toydiff.widgets.base import (
    LIVE_FIELD_T,
    Explorer,
    display_view,
    field_of,
)


class _TrainingView(Explorer):
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
        self.field = np.asarray(field_of(model.denoiser(), self.grid, LIVE_FIELD_T))
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
    display_view(view)
    return train(config, cloud, progress=False, callback=view.show)
