"""The shapes: coloured circles, squares and triangles on black, some wearing a hat.

Drawn with numpy at any even size from 8 to 64 (16 by default), nothing downloaded. Each image
has four attributes (shape, colour, size, hat) and a caption built from them, "a small red
circle wearing a hat". Image i is a pure function of (seed, i) through a counter-based generator,
so the set is as large as a run needs and a process draws only the images it trains on: 8,192
train by default, the 1,024 after them are held out. The class is the shape by default; any
attribute can be.

The judge measures from the pixels. The shape's own pixels are the coloured ones, the hat's the
white ones. Colour is the palette colour nearest to the shape's mean colour; size is its area
against the midpoint of the small and large areas of its shape; the hat is present when enough
white pixels sit above the shape; and the shape is named by a support-vector classifier trained
on the real training images' silhouettes (colour and hat removed).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from toydiff.errors import DataError
from toydiff.images.config import CLIPConfig, ImageTrainConfig
from toydiff.images.data.base import DataSpec, ImageSet, check_attribute, flatten, uniform
from toydiff.nets.dit import DiTConfig
from toydiff.nets.unet import UNetConfig

VALUES = {
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
SIZE = 16  # the default edge length
MAX_SIZE = 64
JITTER = 0.4  # largest offset of a shape's centre, in pixels at 16x16
RADIUS_JITTER = 0.06  # relative spread of the radius
TRAIN = 8192  # images in the training split by default
TEST = 1024
JUDGE_TRAIN = 2048  # training images the judge's shape classifier learns from
SPLIT_SEED = 0  # the generator's seed


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
    u = uniform(seed, counters)
    attrs = {
        a: np.minimum((u[:, k] * len(v)).astype(np.int32), len(v) - 1)
        for k, (a, v) in enumerate(VALUES.items())
    }
    return attrs, u[:, 4:]


def _triangle_sd(px, py, cx, top, base, half):
    """Signed distance (approximate outside) to upward triangles; arrays broadcast (n, H, W)."""
    h = base - top
    norm = np.sqrt(h**2 + half**2)
    left = (-h * (px - cx) - half * (py - top)) / norm
    right = (h * (px - cx) - half * (py - top)) / norm
    return np.maximum(np.maximum(left, right), py - base)


def _pixel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y of the pixel centres, each shape (1, size, size): pixel (row i, column j) is
    the unit square with centre (j + 0.5, i + 0.5); y grows downwards."""
    py, px = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    return px[None], py[None]


def draw_shapes(shape_ids, colour_ids, cx, cy, r, size: int) -> np.ndarray:
    """Shapes of the palette's colours on black, with anti-aliased edges.

    Each shape is a signed distance d(x, y) from its edge (negative inside); a pixel's coverage
    is clip(0.5 - d at its centre, 0, 1), a one-pixel ramp across the edge. A circle has radius
    ``r``, a square half-side 0.85 r, and an upward triangle its apex 1.2 r above the centre,
    its base 0.6 r below and half-width 1.04 r at the base, so that (cx, cy) is the centre of
    mass of all three.

    Args:
        shape_ids: shape value ids (n,) (circle, square, triangle).
        colour_ids: colour value ids (n,), into ``COLOURS``.
        cx: centres' x (n,), in pixels from the left edge.
        cy: centres' y (n,), in pixels from the top edge.
        r: radii (n,), in pixels.
        size: edge length in pixels.

    Returns:
        Images, shape (n, size, size, 3), float64 RGB in [0, 1].
    """
    shape = np.asarray(shape_ids)[:, None, None]
    cx, cy, r = (np.asarray(v)[:, None, None] for v in (cx, cy, r))
    px, py = _pixel_centres(size)
    circle = np.hypot(px - cx, py - cy) - r
    square = np.maximum(np.abs(px - cx), np.abs(py - cy)) - 0.85 * r
    triangle = _triangle_sd(px, py, cx, cy - 1.2 * r, cy + 0.6 * r, 1.04 * r)
    sd = np.where(shape == 0, circle, np.where(shape == 1, square, triangle))
    alpha = np.clip(0.5 - sd, 0.0, 1.0)[..., None]
    palette = np.array([COLOURS[c] for c in VALUES["colour"]], np.float32)
    return alpha * palette[np.asarray(colour_ids)][:, None, None, :]


def render(attrs: dict, jitter: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Draw shapes with anti-aliased edges (``draw_shapes``), some wearing a hat.

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
    cx = size / 2 + (2 * jitter[:, 0] - 1) * JITTER * u
    cy = 0.58 * size + (2 * jitter[:, 1] - 1) * JITTER * u
    radius = np.where(attrs["size"] == 1, 4.4, 2.6) * (1 + RADIUS_JITTER * (jitter[:, 2] - 0.5))
    r = radius * u
    img = draw_shapes(attrs["shape"], attrs["colour"], cx, cy, r, size)
    px, py = _pixel_centres(size)
    shape, cx, cy, r = (v[:, None, None] for v in (attrs["shape"], cx, cy, r))
    top = cy - np.where(shape == 0, 1.0, np.where(shape == 1, 0.85, 1.2)) * r
    hat_sd = _triangle_sd(px, py, cx, top - 3.0 * u, top + 0.5 * u, 2.0 * u)
    hat = (np.clip(0.5 - hat_sd, 0.0, 1.0) * (attrs["hat"] == 1)[:, None, None])[..., None]
    img = img * (1 - hat) + hat * np.array(HAT_COLOUR, np.float32)
    return (2.0 * img - 1.0).astype(np.float32).reshape(n, size, size, 3)


def split(name: str, n: int | None = None) -> np.ndarray:
    """Generator indices of a split: the training images first, the held-out images after."""
    if name == "train":
        return np.arange(TRAIN if n is None else n)
    start = TRAIN if n is None else max(n, TRAIN)
    return np.arange(start, start + TEST)


def draw(indices, size: int = SIZE) -> ImageSet:
    """The shapes with these generator indices, labelled by shape."""
    idx = np.asarray(indices, np.int64)
    attrs, jitter = shape_attributes(SPLIT_SEED, idx)
    return ImageSet(
        name="shapes",
        x=render(attrs, jitter, size),
        attributes=attrs,
        values=dict(VALUES),
        label_by="shape",
        index=idx,
    )


def attributes_of(indices) -> dict:
    """The attribute ids of the shapes with these indices, without drawing them."""
    return shape_attributes(SPLIT_SEED, np.asarray(indices, np.int64))[0]


def fingerprint(indices, size: int, label_by: str, held: int) -> str:
    """A run's training data: its size, count, held-out combinations, class, and a probe of 64
    of its images (drawing all 8,192 to hash them would cost more than it tells)."""
    probe = draw(indices[:: max(1, len(indices) // 64)], size)
    held_out = f"-{held}" if held else ""
    return f"shapes-{size}-{len(indices)}{held_out}-{label_by}-{probe.fingerprint()[:16]}"


def caption(named: dict) -> str:
    """The caption of a shape from its attribute names; an attribute left out goes unsaid.

    >>> caption({"shape": "circle", "colour": "red", "size": "small", "hat": "hat"})
    'a small red circle wearing a hat'
    >>> caption({"shape": "square", "hat": "no hat"})
    'a square'
    """
    words = [named.get("size", ""), named.get("colour", ""), named.get("shape", "")]
    text = " ".join(["a", *(w for w in words if w)])
    return text + " wearing a hat" if named.get("hat") == "hat" else text


class Judge:
    """Attributes measured from the pixels, and a silhouette classifier for the shape."""

    attributes = tuple(VALUES)

    def __init__(self, size: int = SIZE):
        from sklearn.svm import SVC

        self.size = size
        train = draw(split("train", JUDGE_TRAIN), size)
        body, _ = self._masks(train.x)
        self.shape_model = SVC(gamma="scale", C=10.0).fit(flatten(body), train.attributes["shape"])
        areas, shape, big = body.sum((1, 2)), train.attributes["shape"], train.attributes["size"]
        self.area_split = np.array(  # per shape: midway between its small and large areas
            [
                0.5 * sum(np.median(areas[(shape == k) & (big == z)]) for z in (0, 1))
                for k in range(len(VALUES["shape"]))
            ]
        )
        self.palette = np.array([COLOURS[c] for c in VALUES["colour"]])
        self.hat_pixels = 1.0 * (size / 16) ** 2

    @staticmethod
    def _masks(x) -> tuple[np.ndarray, np.ndarray]:
        """Soft masks (n, H, W) of the shape's coloured pixels and of the white hat pixels."""
        rgb = (np.clip(np.asarray(x, np.float32), -1, 1) + 1) / 2
        hi, lo = rgb.max(-1), rgb.min(-1)
        hat = np.clip((lo - 0.5) / 0.3, 0, 1) * np.clip((hi - 0.5) / 0.3, 0, 1)
        body = np.clip((hi - 0.3) / 0.4, 0, 1) * (1 - hat)
        return body, hat

    def predict(self, x, attribute: str) -> np.ndarray:
        """One attribute of each image (n, H, W, 3), as value ids (n,)."""
        check_attribute(attribute, self.attributes)
        if np.asarray(x).shape[1:] != (self.size, self.size, 3):
            raise DataError(f"shapes judge expects ({self.size}, {self.size}, 3) images")
        body, hat = self._masks(x)
        if attribute == "shape":
            return self.shape_model.predict(flatten(body)).astype(np.int32)
        if attribute == "size":
            split = self.area_split[self.shape_model.predict(flatten(body))]
            return (body.sum((1, 2)) > split).astype(np.int32)
        if attribute == "hat":
            return self._hat(body, hat).astype(np.int32)
        rgb = (np.clip(np.asarray(x, np.float32), -1, 1) + 1) / 2
        mean = (rgb * body[..., None]).sum((1, 2)) / np.maximum(body.sum((1, 2)), 1e-6)[:, None]
        return np.argmin(((mean[:, None, :] - self.palette[None]) ** 2).sum(-1), 1).astype(np.int32)

    def _hat(self, body: np.ndarray, hat: np.ndarray) -> np.ndarray:
        """True where enough white pixels sit above the shape's centre of mass."""
        rows = np.arange(body.shape[1])[None, :, None]
        centre = (body * rows).sum((1, 2)) / np.maximum(body.sum((1, 2)), 1e-6)
        above = hat * (rows < centre[:, None, None])
        return above.sum((1, 2)) >= self.hat_pixels

    def predict_all(self, x) -> dict:
        """Every attribute of each image: name -> value ids (n,)."""
        return {a: self.predict(x, a) for a in self.attributes}


RECIPE = ImageTrainConfig(
    data="shapes",
    label_by="shape",
    steps=1200,
    batch_size=64,
    net=UNetConfig(size=16, in_channels=3, patch=2, channels=(32, 64), num_classes=3),
)
"""The shapes model: 16x16 RGB, conditional on the shape; 2x2 patches, a U-Net of 32 and 64
channels (388k parameters), 1,200 steps of 64 images. (The text-conditioned model trains
``TEXT_STEPS``.)"""

DIT_RECIPE = dataclasses.replace(
    RECIPE,
    network="dit",
    lr=2e-3,
    net=DiTConfig(size=16, in_channels=3, patch=2, width=64, depth=4, heads=4, num_classes=3),
)
"""The shapes transformer (``--net dit``, chapter 10 beside the U-Net): 2x2 patches (64
tokens), 4 blocks of width 64 with 4 heads (315k parameters), the U-Net's 1,200 steps of 64.
Judged here at w = 3 (50 of each shape): 99% at a learning rate of 2e-3, 90% at 1e-3."""

TEXT_STEPS = 2000
"""Training steps of the text-conditioned model: it must get every attribute right, not only
the shape. Measured here at w = 3: 93% of the seen prompts right and 67% of the held-out
combinations after 2,000 steps; 92% and 50% after 1,600."""

HELD_OUT = (
    (("colour", "blue"), ("shape", "triangle"), ("hat", "hat")),
    (("size", "small"), ("colour", "yellow"), ("shape", "circle")),
)
"""Combinations the text model never sees: every blue triangle wearing a hat, and every small
yellow circle (with or without a hat)."""

SPEC = DataSpec(
    name="shapes",
    description="coloured shapes with captions, drawn at any even size up to 64 (16 by default)",
    size=SIZE,
    max_size=MAX_SIZE,
    channels=3,
    attributes=dict(VALUES),
    label_by="shape",
    split=split,
    draw=draw,
    judge=Judge,
    recipe=RECIPE,
    recipes={"dit": DIT_RECIPE},
    caption=caption,
    words={w: (a, w) for a, values in VALUES.items() for w in values if w != "no hat"},
    caption_order=("size", "colour", "shape", "hat"),
    droppable=("size", "colour", "hat"),
    example="a small red circle wearing a hat",
    clip_recipe=CLIPConfig(data="shapes", size=SIZE, channels=3, steps=500),
    text_recipe={"steps": TEXT_STEPS, "held_out": HELD_OUT},
    attributes_of=attributes_of,
    fingerprint=fingerprint,
    chapters=(10,),
    clip_chapters=(1, 11),
    bench=({"size": 32}, {"network": "dit"}, {"condition": "text"}),
)
