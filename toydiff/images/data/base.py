"""What every image data set has: the images with their attributes, and its spec.

``ImageSet`` holds images (n, H, W, C) in [-1, 1] with named attributes, one of which is the class.
``DataSpec`` is a data set's whole description, the entry the registry keeps under its name: how
to draw its splits, its shape, its attributes and classes, its captions and vocabulary, its
default recipes and its independent judge. A data set is one file that builds one ``DataSpec``
(``digits.py``, ``shapes.py``, ``mnist.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Callable

import numpy as np

from toydiff.errors import DataError

SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True, eq=False)
class ImageSet:
    """A set of images with named attributes, one of which is the class.

    Attributes:
        name: the data set's name.
        x: images, shape (n, H, W, C), float32 in [-1, 1]; read-only.
        attributes: attribute name -> value ids, shape (n,), int32.
        values: attribute name -> the name of each value id.
        label_by: the attribute used as the class.
        index: each image's index in its data set (a generator's number, or a row of the
            bundled array).
    """

    name: str
    x: np.ndarray
    attributes: dict
    values: dict
    label_by: str
    index: np.ndarray

    def __post_init__(self):
        x = np.array(self.x, np.float32)
        x.flags.writeable = False
        object.__setattr__(self, "x", x)
        if self.label_by not in self.attributes:
            raise DataError(
                f"unknown attribute {self.label_by!r} for {self.name}; "
                f"allowed: {', '.join(self.attributes)}"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(self.x.shape[1:])

    @property
    def labels(self) -> np.ndarray:
        """Class ids of the images, shape (n,): the ``label_by`` attribute."""
        return self.attributes[self.label_by]

    @property
    def class_names(self) -> tuple[str, ...]:
        """The class names, e.g. ("0", ..., "9") or ("circle", "square", "triangle")."""
        return self.values[self.label_by]

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def attribute_names(self, i: int) -> dict:
        """The attributes of image i by name, e.g. {"shape": "circle", "hat": "hat", ...}."""
        return {a: self.values[a][int(ids[i])] for a, ids in self.attributes.items()}

    def label_id(self, name) -> int:
        """The class id of a class name (or an id, checked); DataError names the allowed ones."""
        return class_id(name, self.class_names, self.label_by, self.name)

    def fingerprint(self) -> str:
        """sha256 hex digest of the images, attributes and class choice."""
        h = hashlib.sha256(self.x.tobytes())
        for a in sorted(self.attributes):
            h.update(a.encode() + np.asarray(self.attributes[a], np.int32).tobytes())
        h.update(self.label_by.encode())
        return h.hexdigest()

    def take(self, idx) -> ImageSet:
        """The images at positions ``idx`` (an index array or a boolean mask)."""
        idx = np.asarray(idx)
        return dataclasses.replace(
            self,
            x=self.x[idx],
            attributes={a: v[idx] for a, v in self.attributes.items()},
            index=self.index[idx],
        )


def class_id(label, names, attribute: str, data: str) -> int:
    """The id of a class given by name or id, e.g. class_id("7", DIGIT_NAMES, "digit", "digits").

    Raises:
        DataError: naming the unknown class and the allowed ones.
    """
    if isinstance(label, int | np.integer) and not isinstance(label, bool):
        if 0 <= label < len(names):
            return int(label)
    elif str(label) in names:
        return tuple(names).index(str(label))
    raise DataError(f"unknown {attribute} {label!r} for {data}; allowed: {', '.join(names)}")


def uniform(seed: int, counters: np.ndarray) -> np.ndarray:
    """Uniform numbers in [0, 1) from SplitMix64 of (seed, counter), elementwise (Steele 2014).

    A counter-based generator: number k of a stream depends on (seed, k) alone, so a process can
    draw exactly the numbers of the images it holds, and every process agrees.
    """
    with np.errstate(over="ignore"):
        z = counters + np.uint64(seed + 1) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def flatten(x) -> np.ndarray:
    """Images (n, H, W, C) as rows (n, H * W * C) of float32, for the judges' classifiers."""
    x = np.asarray(x, np.float32)
    return x.reshape(len(x), -1)


def check_attribute(attribute: str, allowed) -> None:
    """DataError unless ``attribute`` is one of ``allowed`` (a judge's attributes)."""
    if attribute not in allowed:
        raise DataError(f"unknown attribute {attribute!r}; allowed: {', '.join(allowed)}")


@dataclasses.dataclass(frozen=True, eq=False)
class DataSpec:
    """Everything about one image data set: its entry in the registry.

    Attributes:
        name: the name a user types (``--data``).
        description: one line for the command line's help and the docs.
        size: the edge length of its images (square); for a data set drawn at any size, the
            default.
        max_size: the largest size it can be drawn at (even sizes from 8), or None when it has
            only ``size``.
        channels: colour channels (1 grey, 3 RGB).
        frames: frames of each sample for a data set of clips (samples of shape
            (frames, H, W, C)), or 0 for still images (H, W, C).
        attributes: attribute name -> its value names, in value-id order.
        label_by: the attribute that is the class by default.
        split: ``split(name, n) -> indices``: the indices of the ``"train"`` or ``"test"``
            split; ``n`` asks for that many training images (None: the default split), for a
            data set that can draw any number.
        draw: ``draw(indices, size) -> ImageSet``: the images with these indices, labelled by
            ``label_by``.
        judge: ``judge(size)``: an independent judge of images of this data set, trained or
            set by hand on its training split only, with ``attributes`` and
            ``predict(x, attribute) -> value ids``.
        recipe: the default image model (an ``ImageTrainConfig``): what ``toydiff images
            train --data NAME`` trains, in minutes on a 2-core laptop.
        recipes: the default model for each other network a user may pick (``--net``):
            network name -> an ``ImageTrainConfig`` (``recipe`` is the one for its own).
        gpu_recipe: a larger model for an accelerator, or None.
        caption: ``caption(named) -> str``: the caption of an image from its attribute value
            names; an attribute missing from ``named`` goes unmentioned. None: no captions.
        words: vocabulary word -> (attribute, value name), in token-id order (the toy CLIP's
            words). Empty without captions.
        caption_order: the order of attributes in ``full_captions``.
        droppable: attributes whose phrases a training caption may lose (``caption_drop``).
        example: an example prompt.
        clip_recipe: the default toy CLIP (a ``CLIPConfig``), or None without captions.
        text_recipe: the changes to ``recipe`` for a text-conditioned model, or None when the
            data set has none.
        attributes_of: ``attributes_of(indices) -> attribute ids``, without drawing the images
            (for held-out combinations); None draws them.
        fingerprint: ``fingerprint(indices, size, label_by, held) -> str`` of a run's training
            data (``held``: how many attribute combinations it leaves out); None: the
            fingerprint of the images drawn.
        chapters: the chapters whose notebooks use ``recipe``.
        clip_chapters: the chapters that use ``clip_recipe``.
        bench: the models ``toydiff bench --images`` times: each the changes to ``recipe`` it
            trains (``{"condition": "text"}`` on an untrained toy CLIP).
        extra: how to install what the data set needs beyond toydiff's own dependencies (an
            optional extra), or "".
        check_installed: ``check_installed()`` raises DataError naming ``extra`` when that is
            missing; None for a data set that needs nothing more.
    """

    name: str
    description: str
    size: int
    channels: int
    attributes: dict
    label_by: str
    split: Callable
    draw: Callable
    judge: Callable
    recipe: object
    max_size: int | None = None
    recipes: dict = dataclasses.field(default_factory=dict)
    gpu_recipe: object = None
    caption: Callable | None = None
    words: dict = dataclasses.field(default_factory=dict)
    caption_order: tuple = ()
    droppable: tuple = ()
    example: str = ""
    clip_recipe: object = None
    text_recipe: dict | None = None
    attributes_of: Callable | None = None
    fingerprint: Callable | None = None
    chapters: tuple[int, ...] = ()
    clip_chapters: tuple[int, ...] = ()
    bench: tuple[dict, ...] = ({},)
    extra: str = ""
    check_installed: Callable | None = None
    frames: int = 0

    def available(self) -> DataSpec:
        """The spec, once ``check_installed`` says what the data set needs is there (DataError
        naming the extra otherwise): called before any work that reads the data."""
        if self.check_installed is not None:
            self.check_installed()
        return self

    @property
    def captioned(self) -> bool:
        """Whether the data set has captions (and so a toy CLIP and text prompts)."""
        return self.caption is not None

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """The content words, in token-id order (id = position + 1)."""
        return tuple(self.words)

    def check_size(self, size) -> int:
        """The image size to use: ``size`` if the data set can be drawn at it, else DataError;
        None gives the default."""
        if size is None:
            return self.size
        if self.max_size is None:
            if size != self.size:
                raise DataError(
                    f"{self.name} are {self.size}x{self.size}; --size {size} cannot be used "
                    "with them"
                )
            return self.size
        if isinstance(size, bool) or not isinstance(size, int | np.integer):
            raise DataError(
                f"image size must be an even integer from 8 to {self.max_size}, got {size!r}"
            )
        if size % 2 or not 8 <= size <= self.max_size:
            raise DataError(
                f"image size must be an even integer from 8 to {self.max_size}, got {size}"
            )
        return int(size)

    def shape(self, size=None) -> tuple[int, ...]:
        """(H, W, C) of its images at ``size`` (default: its size), or (frames, H, W, C) of
        its clips."""
        size = self.check_size(size)
        return (*((self.frames,) if self.frames else ()), size, size, self.channels)

    def check_label_by(self, label_by) -> str:
        """The class attribute to use: ``label_by`` if the data set has it (default: its own)."""
        label_by = self.label_by if label_by is None else label_by
        if label_by not in self.attributes:
            raise DataError(
                f"unknown attribute {label_by!r} for {self.name}; "
                f"allowed: {', '.join(self.attributes)}"
            )
        return label_by

    def load(self, split: str = "train", *, size=None, label_by=None, n=None) -> ImageSet:
        """A split of the data set: the training images, or the held-out ``"test"`` ones.

        Raises:
            DataError: an unknown split or attribute, or a size the data cannot have.
        """
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
        size, label_by = self.check_size(size), self.check_label_by(label_by)
        self.available()
        images = self.draw(self.split(split, n), size)
        return images if label_by == images.label_by else relabel(images, label_by)

    def attribute_ids(self, indices) -> dict:
        """Attribute name -> value ids of the images with these indices (not drawn if the data
        set can say without)."""
        if self.attributes_of is not None:
            return self.attributes_of(np.asarray(indices))
        return self.draw(np.asarray(indices), self.size).attributes

    def run_fingerprint(self, indices, size: int, label_by: str, held: int = 0) -> str:
        """A fingerprint of a run's training images: the split's ``indices`` at ``size``, with
        ``held`` attribute combinations left out."""
        if self.fingerprint is not None:
            return self.fingerprint(indices, size, label_by, held)
        digest = relabel(self.draw(indices, size), label_by).fingerprint()
        return f"{digest}-{held}" if held else digest

    def full_captions(self) -> tuple[list[str], list[dict]]:
        """Every full caption (every combination of attribute values) and what it names."""
        if not self.captioned:
            raise DataError(f"{self.name} has no captions")
        order = self.caption_order or tuple(self.attributes)
        named = [
            dict(zip(order, combo, strict=True))
            for combo in itertools.product(*(self.attributes[a] for a in order))
        ]
        return [self.caption(a) for a in named], named


def relabel(images: ImageSet, label_by: str) -> ImageSet:
    """The same images with another attribute as their class."""
    return dataclasses.replace(images, label_by=label_by)
