"""Interactive explorers for notebooks: ipywidgets controls bound to library calls and ``viz``.

Each explorer is one call in a notebook, e.g. ``toydiff.widgets.field_explorer(model)``, and
shows itself when it is the cell's last expression. Every explorer object has

- ``.widget``: the top-level ipywidgets container (controls, picture, readout, latency);
- ``.update() -> float``: recompute and redraw; returns the seconds it took (``toydiff bench``
  times this), also kept in ``.latency`` and shown small under the picture, e.g. "32 ms";
- one attribute per control (``.t``, ``.eta``, ...): the ipywidgets themselves, so code and tests
  can move a control by setting its ``.value``, exactly as a learner's drag does.

How a picture is made. Each explorer keeps ONE figure drawn once by ``viz`` (Agg canvas, no
pyplot) and freezes its layout. The artists that change are marked animated: a full
``canvas.draw()`` renders everything else (axes, ticks, static points) once into a cached
background, and each update restores that background, moves the animated artists in place
(``set_UVC``, ``set_offsets``, ``set_segments``, ``set_data``), draws only them (blitting), and
encodes the canvas as PNG bytes for an ``ipywidgets.Image(format="png")``. This works in every
Jupyter front end, needs no matplotlib widget backend, and costs ~20 ms per 400 x 400 px
quiver frame on 2 cores (a full ``print_png`` costs ~40 ms).

How a click becomes a data point. ``ipyevents`` watches clicks on the Image and reports
``dataX, dataY``: the pixel of the PNG under the mouse, origin top-left and y down, already
corrected for any CSS scaling. The PNG holds exactly the figure's pixels (it is rendered at the
figure's dpi), and matplotlib's display coordinates are those pixels with the origin at the
bottom-left and y up, so display = (dataX + 0.5, height - dataY - 0.5) at the pixel's centre.
The axes whose bounding box holds that display point is the one clicked, and its
``transData.inverted()`` maps display to data coordinates (``click_to_data``).

Compilation. Samplers are jitted with the denoiser as a pytree and the process and step count
as static arguments, so moving t, eta, w, the start point or the seed never recompiles; a new
step count or sampler compiles once per value (the steps slider therefore updates on release).
The explorers compile their initial settings in the constructor, so the first move is fast. A
probability-flow path clicked in the field explorer starts at the current t, so it runs on the
process with ``t_max = t``; that compiles once per distinct t (~1 s), and is warmed for the
initial t.
"""

from toydiff.widgets.base import (
    DRAWN_WALKERS,
    LIVE_FIELD_T,
    MODES,
    PATH_STEPS,
    TAIL,
    WIDGETS,
)
from toydiff.widgets.bench import bench_widgets
from toydiff.widgets.draw import DRAW_CONFIG, DrawExplorer, draw_your_data
from toydiff.widgets.field import FieldExplorer, field_explorer
from toydiff.widgets.forward import ForwardExplorer, forward_explorer
from toydiff.widgets.guidance import GuidanceExplorer, guidance_explorer
from toydiff.widgets.noise import NoiseExplorer, noise_explorer
from toydiff.widgets.quality import QualityExplorer, quality_explorer
from toydiff.widgets.sampler import SamplerExplorer, sampler_explorer
from toydiff.widgets.steps import StepsExplorer, steps_explorer
from toydiff.widgets.training_view import live_training

__all__ = [
    "DRAW_CONFIG",
    "DRAWN_WALKERS",
    "LIVE_FIELD_T",
    "MODES",
    "PATH_STEPS",
    "TAIL",
    "WIDGETS",
    "FieldExplorer",
    "ForwardExplorer",
    "GuidanceExplorer",
    "SamplerExplorer",
    "DrawExplorer",
    "NoiseExplorer",
    "QualityExplorer",
    "StepsExplorer",
    "bench_widgets",
    "draw_your_data",
    "noise_explorer",
    "quality_explorer",
    "steps_explorer",
    "field_explorer",
    "forward_explorer",
    "guidance_explorer",
    "live_training",
    "sampler_explorer",
]
