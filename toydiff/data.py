"""2D point clouds: the reference spiral, its class-labelled version, other toys, and user files.

Every dataset is a pure function ``fn(key, n=...) -> PointCloud`` of a ``jax.random`` key, listed by
name in ``REGISTRY``. All randomness comes from the key; the spiral ignores it because the
video's spiral is a fixed set of points. ``load`` accepts a registry name or a ``.npy``, ``.csv``
or ``.png`` file, and raises ``DataError`` with a one-line message for anything it cannot use.

Data stay in their own coordinates (nothing is standardised); every toy is scaled to roughly the
spiral's extent, |x| <= 1.3. Curve-shaped data also carry ``curve``: dense noiseless points ordered
along the curve and equally spaced in arc length, so that equal-size contiguous chunks of it are
equal arc-length bins (used by the curve precision and coverage metrics).

References:
    The spiral and its three classes are the explainer videos' toy setup (``REFERENCE.md``).
    Pedregosa et al., "Scikit-learn", JMLR 2011 (``make_moons``, ``make_circles``).
    Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017 (8 Gaussians).
    Grathwohl et al., "FFJORD", ICLR 2019 (checkerboard).
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import functools
import hashlib
import os
import pathlib
from collections.abc import Callable

import jax
import numpy as np
from PIL import Image

from toydiff.errors import DataError

CURVE_POINTS = 10_000  # points in every dense reference curve
_DENSE = 100_001  # parameter samples used to measure arc length
_S0, _S1 = np.pi / 2, 5 * np.pi  # the spiral runs over s in [s0, s0 + s1]
SPIRAL_CLASSES = ("people", "dogs", "cats")  # inner, middle and outer arc
_PNG_POINTS = 2000
_ARRAY_DTYPES = {"x": np.float32, "labels": np.int32, "curve": np.float32, "curve_labels": np.int32}


@dataclasses.dataclass(frozen=True, eq=False)
class PointCloud:
    """A 2D training set, with optional class labels and a dense reference curve.

    Arrays are stored as read-only copies, so a cloud and its ``fingerprint`` never change. Compare
    clouds by ``fingerprint()``; ``==`` is identity.

    Attributes:
        name: the dataset name, or the file name for loaded data.
        x: training points, shape (n, 2), float32.
        labels: class ids, shape (n,), int32, or None when unlabelled.
        class_names: the name of each class id; () when unlabelled.
        curve: dense noiseless points, shape (m, 2), float32, ordered along the curve and equally
            spaced in arc length; None when the data is not a curve.
        curve_labels: class id of each curve point, shape (m,), int32, or None.
    """

    name: str
    x: np.ndarray
    labels: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    curve: np.ndarray | None = None
    curve_labels: np.ndarray | None = None

    def __post_init__(self):
        for field, dtype in _ARRAY_DTYPES.items():
            object.__setattr__(self, field, _frozen(getattr(self, field), dtype))
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        _check_cloud(self)

    @property
    def num_classes(self) -> int:
        """The number of classes, 0 when unlabelled."""
        return len(self.class_names)

    def fingerprint(self) -> str:
        """A stable identity of the data: sha256 hex digest of x, the labels and class names."""
        digest = hashlib.sha256(self.x.tobytes())
        if self.labels is not None:
            digest.update(self.labels.tobytes())
            digest.update("\0".join(self.class_names).encode())
        return digest.hexdigest()

    def label_id(self, name: str) -> int:
        """The class id of a class name, e.g. ``label_id("cats") == 2`` for the labelled spiral.

        Raises:
            DataError: the data is unlabelled or has no class called ``name``.
        """
        if not self.class_names:
            raise DataError(f"label {name!r} given, but {self.name} is unlabelled")
        if name not in self.class_names:
            allowed = ", ".join(self.class_names)
            raise DataError(f"unknown label {name!r} for {self.name}; allowed: {allowed}")
        return self.class_names.index(name)


def _frozen(a, dtype):
    """A read-only copy of ``a`` as ``dtype``, or None."""
    if a is None:
        return None
    a = np.array(a, dtype=dtype)
    a.flags.writeable = False
    return a


def _check_cloud(c: PointCloud):
    """Raise DataError if the arrays of a cloud do not fit together."""
    if c.x.ndim != 2 or c.x.shape[1] != 2:
        raise DataError(f"{c.name}: points have shape {c.x.shape}; expected (n, 2)")
    if (c.labels is None) != (not c.class_names):
        raise DataError(f"{c.name}: labels and class_names must be given together")
    if c.labels is not None and c.labels.shape != (len(c.x),):
        raise DataError(f"{c.name}: labels have shape {c.labels.shape}; expected ({len(c.x)},)")
    if c.labels is not None and not np.all((c.labels >= 0) & (c.labels < c.num_classes)):
        raise DataError(f"{c.name}: labels must lie in [0, {c.num_classes})")
    if c.curve is not None and (c.curve.ndim != 2 or c.curve.shape[1] != 2):
        raise DataError(f"{c.name}: curve has shape {c.curve.shape}; expected (m, 2)")
    if c.curve_labels is not None and (
        c.curve is None or c.labels is None or c.curve_labels.shape != (len(c.curve),)
    ):
        raise DataError(f"{c.name}: curve_labels need labels and one id per curve point")


def _check_n(name: str, n, least: int = 2):
    """Raise DataError unless n is an integer of at least ``least``."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < least:
        raise DataError(f"{name}: n={n!r} points; expected an integer of at least {least}")


# ----------------------------------------------------------------------------- curves


def _cumulative_length(piece: Callable) -> tuple[np.ndarray, np.ndarray]:
    """A dense parameter grid u (K,) in [0, 1] and the arc length of ``piece`` up to each u (K,)."""
    u = np.linspace(0.0, 1.0, _DENSE)
    step = np.linalg.norm(np.diff(piece(u), axis=0), axis=1)
    return u, np.concatenate([[0.0], np.cumsum(step)])


@functools.lru_cache(maxsize=16)
def _length(piece: Callable) -> float:
    """The arc length of ``piece`` over u in [0, 1]."""
    return float(_cumulative_length(piece)[1][-1])


def _equal_arc(piece: Callable, m: int, closed: bool = False) -> np.ndarray:
    """Parameters u (m,) of m points equally spaced in arc length; a closed piece omits u = 1."""
    u, length = _cumulative_length(piece)
    target = np.linspace(0.0, length[-1], m, endpoint=not closed)
    return np.interp(target, length, u)


@functools.lru_cache(maxsize=8)
def _pieces_curve(pieces: tuple, m: int, closed: bool) -> np.ndarray:
    """m points (m, 2) along the pieces in turn, each piece's share proportional to its length."""
    end = np.cumsum([_length(p) for p in pieces])
    counts = np.diff(np.round(m * end / end[-1]).astype(int), prepend=0)
    parts = [p(_equal_arc(p, k, closed)) for p, k in zip(pieces, counts, strict=True)]
    return _frozen(np.concatenate(parts), np.float64)


def _sample_pieces(key: jax.Array, pieces: tuple, n: int) -> np.ndarray:
    """n points (n, 2) uniform in arc length; each piece's parameter must be proportional to it."""
    length = np.array([_length(p) for p in pieces])
    end = np.cumsum(length)  # where each piece ends along the whole curve
    t = end[-1] * np.asarray(jax.random.uniform(key, (n,)), np.float64)  # (n,) in [0, end[-1])
    which = np.searchsorted(end, t, side="right")
    u = (t - end[which] + length[which]) / length[which]
    x = np.empty((n, 2))
    for j, piece in enumerate(pieces):
        x[which == j] = piece(u[which == j])
    return x


def _curve_cloud(key: jax.Array, name: str, pieces, n: int, noise: float, closed: bool):
    """Points drawn uniformly along the pieces plus Gaussian noise of std ``noise``."""
    _check_n(name, n)
    k_curve, k_eps = jax.random.split(key)
    x = _sample_pieces(k_curve, pieces, n) + noise * np.asarray(jax.random.normal(k_eps, (n, 2)))
    return PointCloud(name, x, curve=_pieces_curve(pieces, CURVE_POINTS, closed))


# ----------------------------------------------------------------------------- spiral


def _spiral_point(u: np.ndarray) -> np.ndarray:
    """Spiral points (k, 2) at u (k,) in [0, 1]: s = s0 + u s1, point (s cos s, s sin s) / s1."""
    s = _S0 + u * _S1
    return np.stack([s * np.cos(s), s * np.sin(s)], axis=-1) / _S1


@functools.lru_cache(maxsize=4)
def _spiral_curve_u(m: int) -> np.ndarray:
    """Parameters u (m,) of m points equally spaced in arc length along the spiral (read-only)."""
    return _frozen(_equal_arc(_spiral_point, m), np.float64)


def spiral_curve(m: int = CURVE_POINTS) -> np.ndarray:
    """The dense reference spiral: m points equally spaced in arc length from s0 to s0 + s1.

    Args:
        m: number of points.

    Returns:
        Points, shape (m, 2), float32, ordered from the centre outwards.
    """
    _check_n("spiral_curve", m)
    return _spiral_point(_spiral_curve_u(m)).astype(np.float32)


def spiral(key: jax.Array | None = None, n: int = 100) -> PointCloud:
    """The videos' swiss roll: n points at s = s0 + linspace(0, 1, n) s1, s0 = pi/2, s1 = 5 pi.

    Each point is (s cos s, s sin s) / s1, so the radius grows from 0.1 to 1.1 over 2.5 turns.

    Args:
        key: ignored; the reference spiral is deterministic. May be None.
        n: number of points.

    Returns:
        A PointCloud with x of shape (n, 2) and the dense curve of shape (10000, 2).

    References:
        The explainer videos' toy setup (``REFERENCE.md``).
    """
    del key
    _check_n("spiral", n)
    return PointCloud("spiral", _spiral_point(np.linspace(0.0, 1.0, n)), curve=spiral_curve())


def _third(i: np.ndarray, n: int) -> np.ndarray:
    """The arc (0, 1 or 2) of spiral point i of n: thirds of the index range [0, n - 1]."""
    return np.minimum(3 * i // (n - 1), 2)


def spiral_classes(key: jax.Array | None = None, n: int = 100) -> PointCloud:
    """The spiral cut into 3 arcs: inner = people (0), middle = dogs (1), outer = cats (2).

    The arcs are thirds of the index range (33/33/34 points for n = 100). The dense curve is cut
    where s is midway between the last point of one arc and the first point of the next.

    Args:
        key: ignored; the data are deterministic. May be None.
        n: number of points, at least 3.

    Returns:
        A PointCloud with x (n, 2), labels (n,), class_names ("people", "dogs", "cats"), curve
        (10000, 2) and curve_labels (10000,).

    References:
        The explainer videos' class-conditional setup (``REFERENCE.md``).
    """
    _check_n("spiral-classes", n, least=3)
    labels = _third(np.arange(n), n)
    first = np.flatnonzero(np.diff(labels)) + 1  # the first index of arcs 1 and 2
    cuts = (first - 0.5) / (n - 1)  # in u, so midway in s too
    curve_labels = np.searchsorted(cuts, _spiral_curve_u(CURVE_POINTS), side="right")
    return PointCloud(
        "spiral-classes", spiral(n=n).x, labels, SPIRAL_CLASSES, spiral_curve(), curve_labels
    )


# ----------------------------------------------------------------------------- other toys


_MOON_SCALE = 0.75


def _upper_moon(u: np.ndarray) -> np.ndarray:
    """The upper moon (k, 2): a half circle of radius 1 at u (k,), centred and scaled."""
    theta = np.pi * u
    return _MOON_SCALE * np.stack([np.cos(theta) - 0.5, np.sin(theta) - 0.25], axis=-1)


def _lower_moon(u: np.ndarray) -> np.ndarray:
    """The lower moon (k, 2), the upper one turned half a circle about the origin."""
    return -_upper_moon(u)


_MOONS = (_upper_moon, _lower_moon)


def moons(key: jax.Array, n: int = 1000) -> PointCloud:
    """Two interleaved half circles with Gaussian noise of std 0.03, within about [-1.2, 1.2].

    Args:
        key: a PRNG key.
        n: number of points.

    Returns:
        A PointCloud with x (n, 2) and the dense noiseless curve (10000, 2), upper moon first.

    References:
        scikit-learn ``make_moons``, centred and scaled by 0.75.
    """
    return _curve_cloud(key, "moons", _MOONS, n, noise=0.03, closed=False)


def _circle(u: np.ndarray, radius: float) -> np.ndarray:
    """A circle (k, 2) of the given radius around the origin at u (k,) in [0, 1)."""
    theta = 2 * np.pi * u
    return radius * np.stack([np.cos(theta), np.sin(theta)], axis=-1)


_RINGS = (functools.partial(_circle, radius=0.5), functools.partial(_circle, radius=1.0))


def rings(key: jax.Array, n: int = 1000) -> PointCloud:
    """Two concentric circles of radius 0.5 and 1.0 with Gaussian noise of std 0.03.

    Points are uniform in arc length, so the outer ring holds about twice as many as the inner.

    Args:
        key: a PRNG key.
        n: number of points.

    Returns:
        A PointCloud with x (n, 2) and the dense noiseless curve (10000, 2), inner ring first.

    References:
        scikit-learn ``make_circles``.
    """
    return _curve_cloud(key, "rings", _RINGS, n, noise=0.03, closed=True)


def gaussians(key: jax.Array, n: int = 1000) -> PointCloud:
    """A mixture of 8 Gaussians of std 0.08, centred evenly on the unit circle.

    Args:
        key: a PRNG key.
        n: number of points.

    Returns:
        A PointCloud with x (n, 2) and no curve.

    References:
        Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017.
    """
    _check_n("gaussians", n)
    k_mode, k_eps = jax.random.split(key)
    angle = 2 * np.pi / 8 * np.asarray(jax.random.randint(k_mode, (n,), 0, 8))
    centre = np.stack([np.cos(angle), np.sin(angle)], axis=-1)  # (n, 2)
    return PointCloud("gaussians", centre + 0.08 * np.asarray(jax.random.normal(k_eps, (n, 2))))


def checkerboard(key: jax.Array, n: int = 1000) -> PointCloud:
    """Points uniform on the 8 dark squares of a 4 x 4 checkerboard spanning [-1.2, 1.2]^2.

    Args:
        key: a PRNG key.
        n: number of points.

    Returns:
        A PointCloud with x (n, 2) and no curve.

    References:
        Grathwohl et al., "FFJORD", ICLR 2019.
    """
    _check_n("checkerboard", n)
    k_cell, k_pos = jax.random.split(key)
    cell = np.asarray(jax.random.randint(k_cell, (n,), 0, 8))
    row = cell // 2
    col = 2 * (cell % 2) + row % 2  # row + col is even on a dark square
    corner = np.stack([col, row], axis=-1) - 2.0  # (n, 2), cells of side 1 on [-2, 2]^2
    x = corner + np.asarray(jax.random.uniform(k_pos, (n, 2)))
    return PointCloud("checkerboard", 0.6 * x)


REGISTRY: dict[str, Callable[..., PointCloud]] = {
    "spiral": spiral,
    "spiral-classes": spiral_classes,
    "moons": moons,
    "rings": rings,
    "gaussians": gaussians,
    "checkerboard": checkerboard,
}


# ----------------------------------------------------------------------------- files


def load(
    name_or_path: str | os.PathLike, key: jax.Array | None = None, *, n: int | None = None
) -> PointCloud:
    """A registry dataset by name, or points from a ``.npy``, ``.csv`` or ``.png`` file.

    File formats:
        ``.npy``: an array (n, 2) of finite numbers, or (n, 3) whose last column is an integer
        label. ``.csv``: a header row with columns x, y and optionally label. ``.png``: a black
        shape on a white background; ``n`` points are drawn uniformly over its dark pixels, in
        coordinates centred on the image with its longer side spanning [-1, 1] and y pointing up.

    Args:
        name_or_path: a name in ``REGISTRY`` or a file path.
        key: a PRNG key for random datasets and PNG sampling; defaults to ``jax.random.key(0)``.
        n: number of points for a registry dataset (its default when None) or a PNG (2000 when
            None). Files of points keep all their rows and ignore it.

    Returns:
        A PointCloud. Integer labels become ids in numeric order, named by their string; other
        label strings become ids in order of first appearance.

    Raises:
        DataError: unknown name or extension, a missing or unreadable file, or unusable contents.
    """
    key = jax.random.key(0) if key is None else key
    text = os.fspath(name_or_path)
    if text in REGISTRY:
        return REGISTRY[text](key) if n is None else REGISTRY[text](key, n=n)
    path = pathlib.Path(text)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(_unknown_source(text, path.suffix))
    if not path.is_file():
        raise DataError(f"{text}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{text}: the file is empty")
    return reader(path, key, n)


def _unknown_source(text: str, suffix: str) -> str:
    """The message for a name that is neither a dataset nor a file of a known type."""
    allowed = "allowed: .npy .csv .png"
    if suffix:
        return f"{text}: unknown file extension {suffix!r}; {allowed}"
    close = difflib.get_close_matches(text, REGISTRY, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    names = ", ".join(REGISTRY)
    return f"unknown dataset {text!r}{hint}; choose one of {names}, or a file ({allowed})"


def _one_line(exc: Exception) -> str:
    """An exception's message on one line."""
    return " ".join(str(exc).split())


def _check_rows(path: pathlib.Path, a: np.ndarray) -> np.ndarray:
    """Return rows a (n, k) if there are at least 2 and all are finite; else raise DataError."""
    if len(a) < 2:
        found = "no points" if len(a) == 0 else "only 1 point"
        raise DataError(f"{path}: the file holds {found}; at least 2 are needed")
    bad = int(np.sum(~np.all(np.isfinite(a), axis=1)))
    if bad:
        raise DataError(f"{path}: {bad} of {len(a)} rows hold NaN or inf; all must be finite")
    return a


def _read_npy(path: pathlib.Path, key: jax.Array, n: int | None) -> PointCloud:
    """Points (n, 2), or points and integer labels (n, 3), from a .npy file."""
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({_one_line(exc)})") from exc
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf":
        raise DataError(f"{path}: expected a numeric array saved with numpy.save")
    if a.ndim != 2 or a.shape[1] not in (2, 3):
        raise DataError(
            f"{path}: array has shape {a.shape}; expected (n, 2), or (n, 3) with a label column"
        )
    a = _check_rows(path, a.astype(np.float64))
    if a.shape[1] == 2:
        return PointCloud(path.name, a)
    if not np.all(a[:, 2] == np.round(a[:, 2])):
        raise DataError(f"{path}: the 3rd (label) column holds non-integers; expected class ids")
    values, ids = np.unique(a[:, 2].astype(np.int64), return_inverse=True)
    return PointCloud(path.name, a[:, :2], ids, tuple(str(v) for v in values))


def _csv_table(path: pathlib.Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the non-blank (line number, fields) rows of a CSV file."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            table = [(reader.line_num, row) for row in reader if any(s.strip() for s in row)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV text file ({_one_line(exc)})") from exc
    if not table:
        raise DataError(f"{path}: the file is empty; expected a header x,y[,label] and points")
    header = [s.strip().lower() for s in table[0][1]]
    for line, row in table[1:]:
        if len(row) != len(header):
            found = f"line {line} has {len(row)} fields"
            raise DataError(f"{path}: {found}; the header has {len(header)}")
    return header, table[1:]


def _number(path: pathlib.Path, line: int, text: str) -> float:
    """A CSV field as a float, or a DataError naming the line."""
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{path}: line {line}: x/y value {text!r} is not a number") from None


def _text_labels(path: pathlib.Path, rows, column: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class ids (n,) and names: integers in numeric order, other strings in order of appearance."""
    texts = [row[column].strip() for _, row in rows]
    for (line, _), text in zip(rows, texts, strict=True):
        if not text:
            raise DataError(f"{path}: line {line} has an empty label; every row needs one")
    try:
        values = [int(t) for t in texts]
    except ValueError:
        names = tuple(dict.fromkeys(texts))
        return np.array([names.index(t) for t in texts]), names
    unique, ids = np.unique(values, return_inverse=True)
    return ids, tuple(str(v) for v in unique)


def _read_csv(path: pathlib.Path, key: jax.Array, n: int | None) -> PointCloud:
    """Points, and labels when a label column exists, from a CSV file with a header row."""
    header, rows = _csv_table(path)
    if "x" not in header or "y" not in header:
        raise DataError(
            f"{path}: no x and y columns (found: {', '.join(header)}); expected a "
            "header x,y[,label]"
        )
    ix, iy = header.index("x"), header.index("y")
    x = np.array([[_number(path, i, r[ix]), _number(path, i, r[iy])] for i, r in rows])
    x = _check_rows(path, x.reshape(-1, 2))
    if "label" not in header:
        return PointCloud(path.name, x)
    labels, names = _text_labels(path, rows, header.index("label"))
    return PointCloud(path.name, x, labels, names)


def _dark_pixels(path: pathlib.Path) -> np.ndarray:
    """A mask (H, W) of the pixels darker than 128 after flattening onto white."""
    try:
        with Image.open(path) as image:
            rgba = image.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable PNG image ({_one_line(exc)})") from exc
    white = Image.new("RGBA", rgba.size, "white")
    return np.asarray(Image.alpha_composite(white, rgba).convert("L")) < 128


def _read_png(path: pathlib.Path, key: jax.Array, n: int | None) -> PointCloud:
    """n points uniform over the dark pixels of an image, in centred, y-up coordinates."""
    n = _PNG_POINTS if n is None else n
    _check_n(str(path), n)
    dark = _dark_pixels(path)
    rows, cols = np.nonzero(dark)
    if rows.size == 0:
        raise DataError(f"{path}: no dark pixels (gray < 128); expected a black shape on white")
    k_pick, k_jitter = jax.random.split(key)
    pick = np.asarray(jax.random.randint(k_pick, (n,), 0, rows.size))
    jitter = np.asarray(jax.random.uniform(k_jitter, (n, 2), minval=-0.5, maxval=0.5), np.float64)
    height, width = dark.shape
    centre = np.stack([cols[pick] + 0.5 - width / 2, height / 2 - rows[pick] - 0.5], axis=-1)
    return PointCloud(path.name, (centre + jitter) * 2 / max(height, width))


_READERS = {".npy": _read_npy, ".csv": _read_csv, ".png": _read_png}
