"""The digits: scikit-learn's 1,797 handwritten 8x8 digits, bundled with the library.

Grey levels 0..16 map linearly to [-1, 1]. A fixed 20% (359 images) is held out for the judge and
for novelty; the other 1,438 train. The class is the digit ("0" to "9"); the caption says it in
words ("a photo of the digit seven"). The judge is a support-vector classifier (RBF kernel) on
the 64 pixels, trained on the training split only.

References:
    Alpaydin & Kaynak, "Optical Recognition of Handwritten Digits", UCI, 1998.
    Pedregosa et al., "Scikit-learn", JMLR 2011 (``load_digits``).
    Cortes & Vapnik, "Support-vector networks", Machine Learning 1995 (the judge).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import pathlib

import numpy as np

from toydiff.images.config import CLIPConfig, ImageTrainConfig
from toydiff.images.data.base import DataSpec, ImageSet, check_attribute, flatten
from toydiff.nets.dit import DiTConfig
from toydiff.nets.unet import UNetConfig

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CLASSES = tuple(str(d) for d in range(10))
TEST_FRACTION = 0.2
SPLIT_SEED = 0  # fixes which digits are held out
COUNT = 1797


@functools.cache
def _bundled() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (x (1797, 8, 8, 1) in [-1, 1], labels (1797,)).

    Read straight from the file scikit-learn ships (``datasets/data/digits.csv.gz``: 64 grey
    levels and the digit per row, what ``load_digits`` parses), without importing scikit-learn:
    its import took 1-2.5 s of a training process's start here. A scikit-learn without that
    file goes through ``load_digits``.
    """
    rows = _bundled_rows()
    x = (rows[:, :-1].reshape(-1, 8, 8).astype(np.float32) / 8.0 - 1.0)[..., None]
    return x, rows[:, -1].astype(np.int32)


def _bundled_rows() -> np.ndarray:
    """The digits file's rows, (1797, 65): 64 grey levels then the digit."""
    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = pathlib.Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return np.loadtxt(path, delimiter=",")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return np.concatenate([bunch.data, bunch.target[:, None]], axis=1)


def split(name: str, n=None) -> np.ndarray:
    """The scikit-learn rows of a split: a fixed 20% of the digits is held out."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(COUNT)
    n_test = int(round(TEST_FRACTION * COUNT))
    return np.sort(perm[:n_test] if name == "test" else perm[n_test:])


def draw(indices, size: int = 8) -> ImageSet:
    """The digits in these scikit-learn rows, 8x8x1, classes "0" to "9"."""
    x, labels = _bundled()
    idx = np.asarray(indices)
    return ImageSet(
        name="digits",
        x=x[idx],
        attributes={"digit": labels[idx]},
        values={"digit": CLASSES},
        label_by="digit",
        index=idx,
    )


def caption(named: dict) -> str:
    """'a photo of the digit seven'."""
    return f"a photo of the digit {WORDS[int(named['digit'])]}"


class Judge:
    """An SVC on the 64 pixel values, trained on the digits' training split."""

    attributes = ("digit",)

    def __init__(self, size: int = 8):
        from sklearn.svm import SVC

        train = draw(split("train"))
        self.model = SVC(gamma="scale", C=10.0).fit(flatten(train.x), train.labels)

    def predict(self, x, attribute: str = "digit") -> np.ndarray:
        """The digit of each image (n, 8, 8, 1), as class ids (n,)."""
        check_attribute(attribute, self.attributes)
        return self.model.predict(flatten(np.clip(x, -1, 1))).astype(np.int32)


RECIPE = ImageTrainConfig(net=UNetConfig(channels=(16, 32), num_classes=10))
"""The digits model: 8x8, conditional on the digit; a U-Net of 16 and 32 channels (121k
parameters), VP cosine, v-prediction, 500 steps of 128 images."""

DIT_RECIPE = dataclasses.replace(
    RECIPE,
    network="dit",
    lr=2e-3,
    net=DiTConfig(size=8, in_channels=1, patch=2, width=64, depth=4, heads=4, num_classes=10),
)
"""The digits transformer (``--net dit``): 2x2 patches (16 tokens), 4 blocks of width 64."""

SPEC = DataSpec(
    name="digits",
    description="scikit-learn's 8x8 handwritten digits (1,438 to train, 359 held out)",
    size=8,
    channels=1,
    attributes={"digit": CLASSES},
    label_by="digit",
    split=split,
    draw=draw,
    judge=Judge,
    recipe=RECIPE,
    recipes={"dit": DIT_RECIPE},
    caption=caption,
    words={word: ("digit", str(d)) for d, word in enumerate(WORDS)},
    example="a photo of the digit seven",
    clip_recipe=CLIPConfig(data="digits", size=8, channels=1, steps=300),
    text_recipe={"steps": 2000},
    chapters=(10,),
    clip_chapters=(1,),
)
