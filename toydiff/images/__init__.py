"""The image path: the 2D lab's engine on pictures, data-parallel on every device JAX sees.

Built on the shared core (processes, objectives, the training loop, samplers, guidance, the exact
oracle); nothing in the core imports it. The modules:

- ``data``: the data sets, one file each (scikit-learn's digits, procedural shapes with
  captions, MNIST, captioned clips of moving shapes), and the registry that names them;
- ``text``, ``clip``, ``shared_space``: the toy CLIP's words, model and what its space shows;
- ``config``, ``model``, ``training``: runs, the sharded training, checkpoints and resuming (the
  networks are ``toydiff.nets``: the U-Net and the diffusion transformer; the mesh is
  ``toydiff.engine.parallel``);
- ``judge``: independent classifiers, accuracy, diversity and novelty;
- ``viz``, ``widgets``, ``video_widgets``, ``exercises``, ``bench``: pictures, explorers (the
  story's opening: ``video_widgets.opening_explorer``), checkers, throughput.

Typical use::

    from toydiff import images
    model = images.cached_train(images.DIGITS)           # ~50 s on a laptop, then cached
    x = model.sample(images.key(0), n=16, label="7")[-1]  # (16, 8, 8, 1) in [-1, 1]
    images.viz.image_grid(x)
"""

from jax.random import key

from toydiff import _lazy
from toydiff.engine import parallel
from toydiff.images import clip, data, judge, shared_space, text
from toydiff.images.model import DIGITS, SHAPES, ImageModel, ImageTrainConfig, image_config
from toydiff.images.training import cached_train, text_model, text_prompts, train
from toydiff.nets import dit, unet

__all__ = [
    "DIGITS",
    "SHAPES",
    "ImageModel",
    "ImageTrainConfig",
    "cached_train",
    "clip",
    "data",
    "dit",
    "exercises",
    "image_config",
    "judge",
    "key",
    "parallel",
    "shared_space",
    "text",
    "text_model",
    "text_prompts",
    "train",
    "unet",
    "video_widgets",
    "viz",
    "widgets",
]

_LAZY = ("bench", "exercises", "video_widgets", "viz", "widgets")
"""Modules imported on first use (``images.viz``), as in ``toydiff``: they bring matplotlib and
ipywidgets, which training and the command line never need."""


__getattr__, __dir__ = _lazy.attach(__name__, _LAZY, globals())
