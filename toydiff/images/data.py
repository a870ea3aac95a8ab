"""Image data sets, nothing downloaded: scikit-learn's bundled digits and procedural shapes.

Every image is an array (H, W, C) of float32 values in [-1, 1], so a data set is a point cloud in
a space with one axis per pixel value, exactly like the 2D lab's points (chapter 2's 2-pixel
images are the corner of this space with H * W * C = 2).

- ``digits``: the 1,797 handwritten 8x8 digits that ship with scikit-learn (classes "0" to "9"),
  grey levels 0..16 mapped linearly to [-1, 1].
- ``shapes``: coloured shapes on black, drawn with numpy at any even size up to 64 (16 by
  default). Each image has four attributes (shape, colour, size, hat) and a caption built from
  them, "a small red circle wearing a hat". Image i is a pure function of (seed, i), so the set is
  as large as a run needs and a process can draw only the images it trains on.

Both carry named attributes; ``label_by`` picks the one used as the class for conditioning
(``digit`` for digits, ``shape`` for shapes by default). ``load(name, split=...)`` gives a fixed
training split and a held-out ``test`` split for evaluation.

References:
    Alpaydin & Kaynak, "Optical Recognition of Handwritten Digits", UCI, 1998 (the digits).
    Pedregosa et al., "Scikit-learn", JMLR 2011 (``load_digits``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib

import numpy as np

from toydiff.errors import DataError

NAMES = ("digits", "shapes")
SPLITS = ("train", "test")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SHAPE_VALUES = {
    "shape": ("circle", "square", "triangle"),
    "colour": ("red", "green", "blue", "yellow"),
    "size": ("small", "large"),
    "hat": ("no hat", "hat"),
}
COLOURS = {  # RGB in [0, 1]; drawn on black, so every colour has high contrast
    "red": (1.0, 0.1, 0.1),
    "green": (0.1, 0.9, 0.1),
    "blue": (0.2, 0.3, 1.0),
    "yellow": (1.0, 0.9, 0.1),
}
HAT_COLOUR = (1.0, 1.0, 1.0)
SHAPES_SIZE = 16  # the default edge length of shapes
MAX_SIZE = 64
JITTER = 0.4  # largest offset of a shape's centre, in pixels at 16x16
RADIUS_JITTER = 0.06  # relative spread of the radius
SHAPES_TRAIN = 8192  # images in the shapes training split by default
SHAPES_TEST = 1024
DIGITS_TEST_FRACTION = 0.2
SPLIT_SEED = 0  # fixes which digits are held out, and the shapes' generator


@dataclasses.dataclass(frozen=True, eq=False)
class ImageSet:
    """A set of images with named attributes, one of which is the class.

    Attributes:
        name: ``"digits"`` or ``"shapes"``.
        x: images, shape (n, H, W, C), float32 in [-1, 1]; read-only.
        attributes: attribute name -> value ids, shape (n,), int32.
        values: attribute name -> the name of each value id.
        label_by: the attribute used as the class.
        index: each image's index in its generator (shapes) or in scikit-learn's array.
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

    @property
    def captions(self) -> tuple[str, ...]:
        """One caption per image, built from its attributes."""
        return tuple(caption(self.name, self.attribute_names(i)) for i in range(len(self.x)))

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


def caption(name: str, attrs: dict) -> str:
    """The caption of an image from its attribute names.

    >>> caption("shapes", {"shape": "circle", "colour": "red", "size": "small", "hat": "hat"})
    'a small red circle wearing a hat'
    >>> caption("digits", {"digit": "7"})
    'a photo of the digit seven'
    """
    if name == "digits":
        return f"a photo of the digit {DIGIT_WORDS[int(attrs['digit'])]}"
    text = f"a {attrs['size']} {attrs['colour']} {attrs['shape']}"
    return text + " wearing a hat" if attrs["hat"] == "hat" else text


# Digits.


@functools.cache
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as (x (1797, 8, 8, 1) in [-1, 1], labels (1797,))."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 8.0 - 1.0)[..., None]
    return x, bunch.target.astype(np.int32)


def _digit_split(split: str) -> np.ndarray:
    """The scikit-learn indices of one split: a fixed 20% of the digits is held out."""
    n = 1797
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_test = int(round(DIGITS_TEST_FRACTION * n))
    return np.sort(perm[:n_test] if split == "test" else perm[n_test:])


def digits(split: str = "train") -> ImageSet:
    """The digits split: 1,438 training images or 359 held out, 8x8x1, classes "0" to "9"."""
    x, labels = _sklearn_digits()
    idx = _digit_split(split)
    return ImageSet(
        name="digits",
        x=x[idx],
        attributes={"digit": labels[idx]},
        values={"digit": tuple(str(d) for d in range(10))},
        label_by="digit",
        index=idx,
    )


# Shapes.


def shape_attributes(seed: int, indices) -> tuple[dict, np.ndarray]:
    """The attributes and jitter of shapes number ``indices`` of the generator ``seed``.

    Image i's numbers come from a counter-based generator (SplitMix64) at counters 8i..8i+6,
    so image i depends on (seed, i) alone and any subset can be drawn without the rest.

    Args:
        seed: the generator's seed.
        indices: image numbers, shape (n,).

    Returns:
        (attributes, jitter): attribute name -> ids (n,), and uniform numbers (n, 3) in [0, 1)
        for the x and y offset and the size.
    """
    counters = np.asarray(indices, np.uint64)[:, None] * np.uint64(8) + np.arange(
        7, dtype=np.uint64
    )
    u = _uniform(seed, counters)
    attrs = {
        a: np.minimum((u[:, k] * len(v)).astype(np.int32), len(v) - 1)
        for k, (a, v) in enumerate(SHAPE_VALUES.items())
    }
    return attrs, u[:, 4:]


def _uniform(seed: int, counters: np.ndarray) -> np.ndarray:
    """Uniform numbers in [0, 1) from SplitMix64 of (seed, counter), elementwise (Steele 2014)."""
    with np.errstate(over="ignore"):
        z = counters + np.uint64(seed + 1) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def _triangle_sd(px, py, cx, top, base, half):
    """Signed distance (approximate outside) to upward triangles; arrays broadcast (n, H, W)."""
    h = base - top
    norm = np.sqrt(h**2 + half**2)
    left = (-h * (px - cx) - half * (py - top)) / norm
    right = (h * (px - cx) - half * (py - top)) / norm
    return np.maximum(np.maximum(left, right), py - base)


def render_shapes(attrs: dict, jitter: np.ndarray, size: int = SHAPES_SIZE) -> np.ndarray:
    """Draw shapes with anti-aliased edges.

    Shapes sit a little below the centre, leaving room for the hat: a small white triangle
    resting on the shape's top. Centres jitter by up to ``JITTER`` pixels (at 16x16) and radii
    by ``RADIUS_JITTER / 2``: a little variety, little enough that a laptop learns the set in
    minutes (with a jitter of a whole pixel, it takes several times longer).

    Args:
        attrs: attribute ids (n,) for shape, colour, size and hat.
        jitter: uniform numbers (n, 3) in [0, 1).
        size: edge length in pixels (even, at most 64).

    Returns:
        Images, shape (n, size, size, 3), float32 in [-1, 1].
    """
    u = size / 16.0
    n = len(jitter)
    cx = (size / 2 + (2 * jitter[:, 0] - 1) * JITTER * u)[:, None, None]
    cy = (0.58 * size + (2 * jitter[:, 1] - 1) * JITTER * u)[:, None, None]
    radius = np.where(attrs["size"] == 1, 4.4, 2.6) * (1 + RADIUS_JITTER * (jitter[:, 2] - 0.5))
    r = (radius * u)[:, None, None]
    py, px = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    px, py = px[None], py[None]
    shape = attrs["shape"][:, None, None]
    circle = np.hypot(px - cx, py - cy) - r
    square = np.maximum(np.abs(px - cx), np.abs(py - cy)) - 0.85 * r
    triangle = _triangle_sd(px, py, cx, cy - 1.2 * r, cy + 0.6 * r, 1.04 * r)
    sd = np.where(shape == 0, circle, np.where(shape == 1, square, triangle))
    top = cy - np.where(shape == 0, 1.0, np.where(shape == 1, 0.85, 1.2)) * r
    hat_sd = _triangle_sd(px, py, cx, top - 3.0 * u, top + 0.5 * u, 2.0 * u)
    alpha = np.clip(0.5 - sd, 0.0, 1.0)[..., None]
    hat = (np.clip(0.5 - hat_sd, 0.0, 1.0) * (attrs["hat"] == 1)[:, None, None])[..., None]
    palette = np.array([COLOURS[c] for c in SHAPE_VALUES["colour"]], np.float32)
    colour = palette[attrs["colour"]][:, None, None, :]
    img = alpha * colour
    img = img * (1 - hat) + hat * np.array(HAT_COLOUR, np.float32)
    return (2.0 * img - 1.0).astype(np.float32).reshape(n, size, size, 3)


def check_size(size) -> int:
    """Return ``size`` if shapes can be drawn at it (even, 8..64), else raise DataError."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise DataError(f"image size must be an even integer from 8 to {MAX_SIZE}, got {size!r}")
    if size % 2 or not 8 <= size <= MAX_SIZE:
        raise DataError(f"image size must be an even integer from 8 to {MAX_SIZE}, got {size}")
    return int(size)


def shape_indices(split: str, n: int | None = None) -> np.ndarray:
    """Generator indices of a shapes split: training images first, held-out images after."""
    if split == "train":
        return np.arange(SHAPES_TRAIN if n is None else n)
    start = SHAPES_TRAIN if n is None else max(n, SHAPES_TRAIN)
    return np.arange(start, start + SHAPES_TEST)


def shapes(
    split: str = "train", size: int = SHAPES_SIZE, n: int | None = None, indices=None
) -> ImageSet:
    """The shapes split (8,192 training images or 1,024 held out), or the images ``indices``.

    Args:
        split: "train" or "test".
        size: edge length (even, 8 to 64).
        n: number of training images (default 8,192); held-out images come after them.
        indices: draw exactly these generator indices instead of a split.

    Returns:
        An ``ImageSet`` labelled by shape.
    """
    size = check_size(size)
    idx = shape_indices(split, n) if indices is None else np.asarray(indices, np.int64)
    attrs, jitter = shape_attributes(SPLIT_SEED, idx)
    return ImageSet(
        name="shapes",
        x=render_shapes(attrs, jitter, size),
        attributes=attrs,
        values=dict(SHAPE_VALUES),
        label_by="shape",
        index=idx,
    )


def meta(name: str, size: int | None = None, label_by: str | None = None) -> dict:
    """What a data set looks like, without loading it: image shape, attributes and classes.

    Returns:
        {"shape": (H, W, C), "values": attribute -> value names, "label_by": the class
        attribute, "class_names": its values}.

    Raises:
        DataError: an unknown name or attribute, or a size the data cannot have.
    """
    if name not in NAMES:
        raise DataError(f"unknown image data {name!r}; allowed: {', '.join(NAMES)}")
    if name == "digits":
        if size not in (None, 8):
            raise DataError(f"digits are 8x8; --size {size} cannot be used with them")
        shape, values, default = (8, 8, 1), {"digit": tuple(str(d) for d in range(10))}, "digit"
    else:
        size = SHAPES_SIZE if size is None else check_size(size)
        shape, values, default = (size, size, 3), dict(SHAPE_VALUES), "shape"
    label_by = default if label_by is None else label_by
    if label_by not in values:
        raise DataError(f"unknown attribute {label_by!r} for {name}; allowed: {', '.join(values)}")
    return {"shape": shape, "values": values, "label_by": label_by, "class_names": values[label_by]}


def load(name: str, split: str = "train", *, size: int | None = None, label_by=None, n=None):
    """Load an image data set by name.

    Args:
        name: ``"digits"`` or ``"shapes"``.
        split: ``"train"`` or ``"test"`` (held out, fixed by seed).
        size: image size (shapes only; digits are always 8).
        label_by: the attribute used as the class (default: digit, or shape).
        n: number of training images (shapes only).

    Returns:
        An ``ImageSet``.

    Raises:
        DataError: an unknown name, split, attribute or size.
    """
    meta(name, size, label_by)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    if name == "digits":
        images = digits(split)
    else:
        images = shapes(split, SHAPES_SIZE if size is None else size, n)
    return images if label_by is None else dataclasses.replace(images, label_by=label_by)
