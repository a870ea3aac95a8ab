"""The clips: short videos of a coloured shape moving left, right, up or down on black.

Drawn with numpy, nothing downloaded: each clip is 8 frames of 16x16 RGB, shape (8, 16, 16, 3),
float32 in [-1, 1] (black is -1). A clip shows one of the shapes' circles, squares and triangles
(``shapes.py``, the same palette and the same anti-aliased drawing) gliding a pixel a frame in a
straight line, and has three attributes (shape, colour, direction) and a caption built from
them, "a red circle moving left". Clip i is a pure function of (seed, i) through a
counter-based generator, so a process draws only the clips it trains on: 4,096 train, the 512
after them are held out. The class is the shape by default; any attribute can be.

The judge measures from the pixels, frame by frame, and never asks a model. The shape's pixels
are the coloured ones (``shapes.Judge._masks``). Colour is the palette colour nearest to their
mean colour over the clip; the shape is the majority vote of a support-vector classifier trained
on single frames of real training clips, each silhouette moved (by whole pixels) to put its
centre of mass in the middle, so that where the shape is does not matter; the direction is the
axis and sign of the centre of mass's mean velocity (its least-squares slope over the frames),
or -1 when it barely moves or a frame has no shape. A clip is consistent when it shows the same
object in every frame: a shape of a real shape's area in each, the same shape and colour, an
area that does not swell or shrink, and a centre moving along a straight line.
"""

from __future__ import annotations

import numpy as np

from toydiff.errors import DataError
from toydiff.images.config import CLIPConfig, ImageTrainConfig
from toydiff.images.data import shapes
from toydiff.images.data.base import DataSpec, ImageSet, check_attribute, flatten, uniform
from toydiff.nets.dit import DiTConfig

VALUES = {
    "shape": ("circle", "square", "triangle"),
    "colour": ("red", "green", "blue", "yellow"),
    "direction": ("left", "right", "up", "down"),
}
COLOURS = shapes.COLOURS  # RGB in [0, 1], drawn on black
FRAMES = 8  # frames of a clip
SIZE = 16  # the edge length of a frame (the only one)
STEP = 1.0  # pixels the shape moves each frame: 7 pixels from the first frame to the last
RADIUS = 3.0  # the shapes' radius in pixels (as ``shapes.draw_shapes``)
RADIUS_JITTER = 0.1  # relative spread of the radius: 2.85 to 3.15 pixels
JITTER = 0.6  # largest offset of the track's middle, along the track and across it, in pixels
CENTRE = (8.0, 8.5)  # (x, y) of the track's middle before jitter, in pixels from the top left
TRAIN = 4096  # clips in the training split by default
TEST = 512
JUDGE_CLIPS = 256  # training clips whose 2,048 frames the judge's shape classifier learns from
MIN_SPEED = 0.3  # pixels a frame: a centre moving slower has no direction
AREA_RANGE = (0.5, 1.5)  # a body's area, against the least and largest of real frames
AREA_CHANGE = 1.6  # largest area over smallest, within a consistent clip
TRACK_TOLERANCE = 1.0  # pixels a consistent clip's centre may stray from a straight line
SPLIT_SEED = 0  # the generator's seed

# Unit steps in image coordinates (x right, y down) of each direction: "up" is towards row 0.
STEPS = np.array([(-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)])


def clip_attributes(seed: int, indices) -> tuple[dict, np.ndarray]:
    """The attributes and jitter of clips number ``indices`` of the generator ``seed``.

    Clip i's numbers come from a counter-based generator (SplitMix64) at counters 8i..8i+5,
    so clip i depends on (seed, i) alone and any subset can be drawn without the rest.

    Args:
        seed: the generator's seed.
        indices: clip numbers, shape (n,).

    Returns:
        (attributes, jitter): attribute name -> ids (n,), and uniform numbers (n, 3) in [0, 1)
        for the offsets along and across the track and the radius.
    """
    counters = np.asarray(indices, np.uint64)[:, None] * np.uint64(8) + np.arange(
        6, dtype=np.uint64
    )
    u = uniform(seed, counters)
    attrs = {
        a: np.minimum((u[:, k] * len(v)).astype(np.int32), len(v) - 1)
        for k, (a, v) in enumerate(VALUES.items())
    }
    return attrs, u[:, 3:]


def tracks(attrs: dict, jitter: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each clip's shape is in each frame, and its radius.

    The shape moves ``STEP`` pixels a frame in its direction, along a track whose middle is
    ``CENTRE`` moved by up to ``JITTER`` pixels along the track and across it. Every position
    keeps the whole shape in the frame: the triangle's anti-aliased edge reaches 4.3 pixels
    above its centre and 3.7 to either side, the circle's 3.2 below, and the centres stay
    within 3.9..12.1 (x) and 4.4..12.6 (y).

    Args:
        attrs: attribute ids (n,) for shape, colour and direction.
        jitter: uniform numbers (n, 3) in [0, 1).

    Returns:
        (cx, cy, r): centres' x and y (n, FRAMES) in pixels from the top left (y grows
        downwards), and radii (n,).
    """
    step = STEPS[attrs["direction"]]  # (n, 2)
    along, across = (2 * jitter[:, 0] - 1) * JITTER, (2 * jitter[:, 1] - 1) * JITTER
    middle = np.array(CENTRE) + step * along[:, None] + step[:, ::-1] * across[:, None]
    t = STEP * (np.arange(FRAMES) - (FRAMES - 1) / 2)
    centres = middle[:, None, :] + t[None, :, None] * step[:, None, :]  # (n, FRAMES, 2)
    r = RADIUS * (1 + RADIUS_JITTER * (jitter[:, 2] - 0.5))
    return centres[..., 0], centres[..., 1], r


def render(attrs: dict, jitter: np.ndarray) -> np.ndarray:
    """Draw clips: each frame the clip's shape at its place on the track (``tracks``).

    Args:
        attrs: attribute ids (n,) for shape, colour and direction.
        jitter: uniform numbers (n, 3) in [0, 1).

    Returns:
        Clips, shape (n, FRAMES, SIZE, SIZE, 3), float32 in [-1, 1].
    """
    n = len(jitter)
    cx, cy, r = tracks(attrs, jitter)
    per_frame = [np.repeat(attrs[a], FRAMES) for a in ("shape", "colour")]
    img = shapes.draw_shapes(*per_frame, cx.ravel(), cy.ravel(), np.repeat(r, FRAMES), SIZE)
    return (2.0 * img - 1.0).astype(np.float32).reshape(n, FRAMES, SIZE, SIZE, 3)


def split(name: str, n: int | None = None) -> np.ndarray:
    """Generator indices of a split: the training clips first, the held-out clips after."""
    if name == "train":
        return np.arange(TRAIN if n is None else n)
    start = TRAIN if n is None else max(n, TRAIN)
    return np.arange(start, start + TEST)


def _check_size(size: int) -> None:
    if size != SIZE:
        raise DataError(f"clips are {SIZE}x{SIZE}; size {size} cannot be used with them")


def draw(indices, size: int = SIZE) -> ImageSet:
    """The clips with these generator indices, labelled by shape: x (n, 8, 16, 16, 3)."""
    _check_size(size)
    idx = np.asarray(indices, np.int64)
    attrs, jitter = clip_attributes(SPLIT_SEED, idx)
    return ImageSet(
        name="clips",
        x=render(attrs, jitter),
        attributes=attrs,
        values=dict(VALUES),
        label_by="shape",
        index=idx,
    )


def attributes_of(indices) -> dict:
    """The attribute ids of the clips with these indices, without drawing them."""
    return clip_attributes(SPLIT_SEED, np.asarray(indices, np.int64))[0]


def fingerprint(indices, size: int, label_by: str, held: int) -> str:
    """A run's training data: its size, count, held-out combinations, class, and a probe of 64
    of its clips (drawing all 4,096 to hash them would cost more than it tells)."""
    indices = np.asarray(indices)
    probe = draw(indices[:: max(1, len(indices) // 64)], size)
    held_out = f"-{held}" if held else ""
    return f"clips-{size}-{len(indices)}{held_out}-{label_by}-{probe.fingerprint()[:16]}"


def caption(named: dict) -> str:
    """The caption of a clip from its attribute names; an attribute left out goes unsaid.

    >>> caption({"shape": "circle", "colour": "red", "direction": "left"})
    'a red circle moving left'
    >>> caption({"shape": "circle", "direction": "up"})
    'a circle moving up'
    """
    words = [named.get("colour", ""), named.get("shape", "")]
    text = " ".join(["a", *(w for w in words if w)])
    return f"{text} moving {named['direction']}" if named.get("direction") else text


class Judge:
    """Attributes measured from the pixels, frame by frame, and a silhouette classifier for the
    shape; ``consistent`` says whether a clip shows one object throughout."""

    attributes = tuple(VALUES)

    def __init__(self, size: int = SIZE):
        from sklearn.svm import SVC

        _check_size(size)
        self.size = size
        train = draw(split("train", JUDGE_CLIPS), size)
        body = self._bodies(train.x).reshape(-1, size, size)
        shape = np.repeat(train.attributes["shape"], FRAMES)
        self.shape_model = SVC(gamma="scale", C=10.0).fit(flatten(_centred(body)), shape)
        areas = body.sum((1, 2))
        self.areas = (AREA_RANGE[0] * areas.min(), AREA_RANGE[1] * areas.max())
        self.palette = np.array([COLOURS[c] for c in VALUES["colour"]])

    def _check(self, x) -> np.ndarray:
        """The clips as float32 (n, FRAMES, size, size, 3), or DataError naming that shape."""
        x = np.asarray(x, np.float32)
        expected = (FRAMES, self.size, self.size, 3)
        if x.ndim != 5 or x.shape[1:] != expected:
            raise DataError(f"clips judge expects clips of shape {expected}, got {x.shape[1:]}")
        return x

    @staticmethod
    def _bodies(x: np.ndarray) -> np.ndarray:
        """Soft masks (n, FRAMES, H, W) of each frame's coloured pixels."""
        n, f, h, w, c = x.shape
        return shapes.Judge._masks(x.reshape(n * f, h, w, c))[0].reshape(n, f, h, w)

    def _present(self, body: np.ndarray) -> np.ndarray:
        """Whether each frame (n, FRAMES) has a body of a real shape's area."""
        area = body.sum((2, 3))
        return (area >= self.areas[0]) & (area <= self.areas[1])

    def _frame_shapes(self, body: np.ndarray) -> np.ndarray:
        """The shape id (n, FRAMES) the classifier sees in each frame."""
        n, f, h, w = body.shape
        centred = _centred(body.reshape(n * f, h, w))
        return self.shape_model.predict(flatten(centred)).astype(np.int32).reshape(n, f)

    def _colours(self, x: np.ndarray, body: np.ndarray, axis) -> np.ndarray:
        """The palette colour nearest the mean colour of the body's pixels over ``axis``."""
        rgb = (np.clip(x, -1, 1) + 1) / 2
        weight = body[..., None]
        total = (rgb * weight).sum(axis) / np.maximum(weight.sum(axis), 1e-6)
        distance = ((total[..., None, :] - self.palette) ** 2).sum(-1)
        return np.argmin(distance, -1).astype(np.int32)

    def predict(self, x, attribute: str) -> np.ndarray:
        """One attribute of each clip (n, FRAMES, H, W, 3), as value ids (n,); a direction of
        -1 means no motion (never right)."""
        check_attribute(attribute, self.attributes)
        x = self._check(x)
        body = self._bodies(x)
        if attribute == "direction":
            return self._direction(body)
        if attribute == "colour":
            return self._colours(x, body, (1, 2, 3))
        votes = self._frame_shapes(body)[..., None] == np.arange(len(VALUES["shape"]))
        return np.argmax(votes.sum(1), -1).astype(np.int32)

    def predict_all(self, x) -> dict:
        """Every attribute of each clip: name -> value ids (n,)."""
        return {a: self.predict(x, a) for a in self.attributes}

    def direction(self, x) -> np.ndarray:
        """The direction id of each clip (n,): left, right, up, down, or -1 for no motion."""
        return self.predict(x, "direction")

    def _direction(self, body: np.ndarray) -> np.ndarray:
        velocity, _ = _fit_tracks(body)
        axis = np.argmax(np.abs(velocity), -1)  # 0: x, 1: y
        speed = np.take_along_axis(velocity, axis[:, None], -1)[:, 0]
        direction = 2 * axis + (speed > 0)  # left 0, right 1, up 2, down 3
        moving = (np.abs(speed) >= MIN_SPEED) & self._present(body).all(1)
        return np.where(moving, direction, -1).astype(np.int32)

    def consistent(self, x) -> np.ndarray:
        """Whether each clip (n, FRAMES, H, W, 3) shows one object throughout, bool (n,).

        Consistent: every frame has a body of a real shape's area; the classifier sees the same
        shape in every frame and the palette the same colour; the largest area is at most
        ``AREA_CHANGE`` times the smallest; and the centre of mass strays at most
        ``TRACK_TOLERANCE`` pixels from a straight line (a clip standing still is consistent).
        """
        x = self._check(x)
        body = self._bodies(x)
        area = body.sum((2, 3))
        shape = self._frame_shapes(body)
        colour = self._colours(x, body, (2, 3))
        _, stray = _fit_tracks(body)
        return (
            self._present(body).all(1)
            & (shape == shape[:, :1]).all(1)
            & (colour == colour[:, :1]).all(1)
            & (area.max(1) <= AREA_CHANGE * area.min(1))
            & (stray <= TRACK_TOLERANCE)
        )


def centres_of_mass(body: np.ndarray) -> np.ndarray:
    """The centre of mass (x, y) of each mask (..., H, W) in pixels from the top left (pixel
    (row i, column j) has its centre at (j + 0.5, i + 0.5)), shape (..., 2); the middle of the
    frame for an empty mask."""
    h, w = body.shape[-2:]
    mass = body.sum((-2, -1))
    x = (body.sum(-2) * (np.arange(w) + 0.5)).sum(-1)
    y = (body.sum(-1) * (np.arange(h) + 0.5)).sum(-1)
    centre = np.stack([x, y], -1) / np.maximum(mass, 1e-6)[..., None]
    return np.where((mass > 1e-6)[..., None], centre, np.array([w / 2, h / 2]))


def _fit_tracks(body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Straight lines through the clips' centres of mass (n, FRAMES, H, W) -> velocities (n, 2)
    in pixels a frame (least squares) and each clip's largest distance from its line (n,)."""
    centre = centres_of_mass(body)  # (n, F, 2)
    t = np.arange(body.shape[1]) - (body.shape[1] - 1) / 2
    velocity = (t[:, None] * centre).sum(1) / (t**2).sum()
    line = centre.mean(1, keepdims=True) + t[None, :, None] * velocity[:, None, :]
    return velocity, np.hypot(*np.moveaxis(centre - line, -1, 0)).max(1)


def _centred(body: np.ndarray) -> np.ndarray:
    """Masks (m, H, W) moved by whole pixels to put their centre of mass nearest the middle of
    the frame (what leaves the frame is cut off, what enters is empty)."""
    m, h, w = body.shape
    centre = centres_of_mass(body)
    dx = np.rint(w / 2 - centre[:, 0]).astype(np.int64)
    dy = np.rint(h / 2 - centre[:, 1]).astype(np.int64)
    padded = np.pad(body, ((0, 0), (h, h), (w, w)))
    rows = h + np.arange(h)[None, :] - dy[:, None]  # output row i is input row i - dy
    cols = w + np.arange(w)[None, :] - dx[:, None]
    return padded[np.arange(m)[:, None, None], rows[:, :, None], cols[:, None, :]]


HELD_OUT = (
    (("colour", "blue"), ("shape", "triangle"), ("direction", "left")),
    (("colour", "yellow"), ("shape", "circle"), ("direction", "up")),
)
"""Combinations the text model never sees: blue triangles moving left and yellow circles moving
up."""

RECIPE = ImageTrainConfig(
    data="clips",
    label_by="shape",
    process="flow",
    objective="x0",
    cond_drop=0.2,
    steps=3000,
    batch_size=64,
    lr=2e-3,
    network="dit",
    net=DiTConfig(
        size=SIZE,
        in_channels=3,
        frames=FRAMES,
        patch=4,
        patch_frames=2,
        width=96,
        depth=4,
        heads=4,
        num_classes=3,
    ),
)
"""The video model: a diffusion transformer on tubelets of 2 frames x 4 x 4 pixels (64 tokens
a clip, each 96 wide; 4 blocks, 4 heads), on the flow-matching path of the story's video models (straight lines from noise to
data, sampled along the velocity); conditional on the shape (the text model reads prompts:
``TEXT_STEPS``).

The network's output is read as the clean clip (x-prediction), not as the velocity: a tubelet
holds 96 numbers, and a network that must output the velocity (which carries the noise,
exactly, pixel by pixel) through 64-wide tokens cannot; it drew noisy clips (measured, text
model, 2,000 steps at 1e-3: 2% with the asked direction, none consistent; with 96-wide tokens
and 1,500 steps, 10% and none). The clean clip is simple (one shape, moving): with 64-wide
tokens and x-prediction, 99% had the asked direction after the same 2,000 steps. The sampler
still follows the velocity, v = (x_t - x0_hat) / t. Li & He ("Back to Basics: Let Denoising
Generative Models Denoise", 2025) make the same point for transformers on large patches.

Width 96, a learning rate of 2e-3, 3,000 steps and a condition dropped one time in five were
the best of the runs measured here (docs/images.md): every named attribute right on seen
prompts, 91% of clips consistent across frames."""

TEXT_STEPS = 3000
"""Training steps of the text-conditioned video model (about 10 minutes on 2 cores)."""

SPEC = DataSpec(
    name="clips",
    description="short captioned clips of a coloured shape moving left, right, up or down "
    "(8 frames of 16x16)",
    size=SIZE,
    max_size=None,
    channels=3,
    frames=FRAMES,
    attributes=dict(VALUES),
    label_by="shape",
    split=split,
    draw=draw,
    judge=Judge,
    recipe=RECIPE,
    caption=caption,
    words={w: (a, w) for a, values in VALUES.items() for w in values},
    caption_order=("colour", "shape", "direction"),
    droppable=("colour", "direction"),
    example="a red circle moving left",
    clip_recipe=CLIPConfig(data="clips", size=SIZE, channels=3, frames=FRAMES, steps=500),
    text_recipe={"steps": TEXT_STEPS, "held_out": HELD_OUT},
    attributes_of=attributes_of,
    fingerprint=fingerprint,
    chapters=(),  # chapter 12 uses the text-conditioned model (lab.CHAPTER_MODELS)
    clip_chapters=(12,),
    bench=({"condition": "text"},),
)
