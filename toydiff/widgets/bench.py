"""Widget latency, as ``toydiff bench`` measures it."""

from __future__ import annotations

import numpy as np

from toydiff.model import Model
from toydiff.widgets.field import FieldExplorer
from toydiff.widgets.forward import ForwardExplorer
from toydiff.widgets.sampler import SamplerExplorer


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
