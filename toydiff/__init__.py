"""toydiff: an interactive 2D toy-diffusion lab in JAX.

Train a time-conditioned score network on a 2D point cloud, sample it with DDPM, DDIM or an ODE
solver, and look at what it learned. The layers (docs/architecture.md has the picture):

- ``engine``: what every model shares: ``processes`` (VE, VP, flow), ``objectives``,
  ``samplers``, ``guidance``, ``oracle``, ``loop`` (the one training loop), ``sampling`` (the one
  sampling front end), ``checkpoint``, ``cache``, ``parallel``, and the registries behind the
  command line's choices.
- ``nets``: the networks (``mlp`` for points, ``unet`` for images).
- ``data``, ``model``, ``training``: the 2D lab's point clouds, model and trainer; ``images``: the
  image path and the toy CLIP on the same engine.
- ``metrics``, ``viz``, ``widgets``, ``exercises``, ``demos``, ``lab``: measuring, pictures, the
  classroom.

Typical use::

    import toydiff as td
    model = td.train(td.REFERENCE)                  # the story's spiral model, ~10 s
    traj = model.sample(td.key(0), n=256, steps=64)  # (65, 256, 2)
    td.viz.trajectories(traj, data=model.cloud.x)
"""

from jax.random import key

from toydiff import _lazy
from toydiff.engine import compilation

compilation.enable()

from toydiff import data, metrics
from toydiff.engine import guidance, objectives, oracle, processes, samplers
from toydiff.errors import ToydiffError
from toydiff.model import (
    FAST,
    GUIDANCE_DEMO,
    REFERENCE,
    REFERENCE_CONDITIONAL,
    REFERENCE_LONG,
    Model,
    TrainConfig,
)
from toydiff.nets import mlp as networks
from toydiff.training import cached_snapshots, cached_train, train

__all__ = [
    "FAST",
    "GUIDANCE_DEMO",
    "REFERENCE",
    "REFERENCE_CONDITIONAL",
    "REFERENCE_LONG",
    "Model",
    "ToydiffError",
    "TrainConfig",
    "cached_snapshots",
    "cached_train",
    "data",
    "exercises",
    "guidance",
    "key",
    "metrics",
    "networks",
    "objectives",
    "oracle",
    "processes",
    "samplers",
    "train",
    "viz",
    "widgets",
]

_LAZY = ("demos", "exercises", "viz", "widgets")
"""Modules imported on first use (``td.viz``): matplotlib, ipywidgets and IPython take about a
second to import, which a command-line call or a training process never needs."""


__getattr__, __dir__ = _lazy.attach(__name__, _LAZY, globals())
