"""Metrics: how close generated points are to the data, and what the vector field points at.

Every public function here is pure and silent. Inputs may be numpy or JAX arrays; outputs are plain
Python floats or numpy arrays, so results can be printed, plotted or compared without a device
round trip. The heavy parts (projections and sorting for SWD, pairwise and nearest-neighbour
distances) are jitted, and pairwise work runs in row chunks so memory stays near (chunk, m).

The checks follow the definitions in ``REFERENCE.md``:

- sliced Wasserstein distance (SWD) and energy distance between two point clouds;
- curve precision (share of samples within ``tol`` of the curve) and coverage (share of equal
  arc-length bins of the curve that hold the nearest-curve point of some sample), with
  ``point_precision`` and ``point_coverage`` for data that is not a curve;
- class accuracy and class share by the label of the nearest training point;
- the phase-change time t*: as t falls, the field stops pointing at the data's centroid and starts
  pointing at the nearest point of the curve.

References:
    Rabin et al., "Wasserstein Barycenter and its Application to Texture Mixing", SSVM 2011 (SWD).
    Szekely & Rizzo, "Energy statistics: A class of statistics based on distances", JSPI 2013.
    Gonzalez, "Clustering to minimize the maximum intercluster distance", TCS 1985 (farthest
    point sampling).
    Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative Models", ICML 2020
    (precision and coverage by nearest neighbours).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from toydiff.errors import DataError

CHUNK = 256  # rows per block in pairwise work: blocks are (CHUNK, m)
BUCKET = 1024  # the reference side is padded to a multiple of this, so few shapes compile
_EPS = 1e-12  # guards the cosine of zero vectors


# ----------------------------------------------------------------------------- input checks


def _points(x, name: str, dim: int | None = None) -> np.ndarray:
    """Return x as a float32 (n, d) numpy array, or raise DataError naming the bad argument."""
    shape = np.shape(x)
    if len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
        raise DataError(f"{name} must be a non-empty (n, d) array of points, got shape {shape}")
    if dim is not None and shape[1] != dim:
        raise DataError(f"{name} must have {dim} columns to match the other points, got {shape}")
    return np.asarray(x, dtype=np.float32)


def _pair(x, y, x_name: str, y_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Check two point sets that must share their dimension d."""
    x = _points(x, x_name)
    return x, _points(y, y_name, dim=x.shape[1])


def _pad_rows(a: np.ndarray, multiple: int) -> np.ndarray:
    """Pad a to a multiple of `multiple` rows with copies of its first row."""
    extra = -a.shape[0] % multiple
    return np.concatenate([a, np.repeat(a[:1], extra, axis=0)])


def _weights(n: int, multiple: int) -> np.ndarray:
    """Weights 1/n on n real rows and 0 on the padding that _pad_rows adds."""
    w = np.zeros(n + (-n % multiple), dtype=np.float32)
    w[:n] = 1.0 / n
    return w


# ----------------------------------------------------------------------------- SWD and energy


@functools.partial(jax.jit, static_argnums=(1, 2))
def _directions(key, n_directions: int, d: int) -> jnp.ndarray:
    """Draw (n_directions, d) unit vectors uniformly on the sphere."""
    v = jax.random.normal(key, (n_directions, d))
    return v / jnp.linalg.norm(v, axis=1, keepdims=True)


def _quantile_grid(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices into sorted x and y, and widths, of the merged grid of quantile levels.

    Levels k/n and j/m are scaled by n*m so the grid is exact integer arithmetic.
    """
    ends = np.union1d(np.arange(1, n + 1, dtype=np.int64) * m, np.arange(1, m + 1) * n)
    widths = np.diff(ends, prepend=0) / (n * m)  # (L,) sums to 1
    ix = (ends + m - 1) // m - 1  # quantile of x on level interval (prev, end]
    iy = (ends + n - 1) // n - 1
    return ix, iy, widths.astype(np.float32)


@jax.jit
def _swd(x, y, dirs, ix, iy, widths):
    """Mean over directions of the exact 1-D W1 of the projections."""
    px = jnp.sort(x @ dirs.T, axis=0)  # (n, D)
    py = jnp.sort(y @ dirs.T, axis=0)  # (m, D)
    w1 = jnp.abs(px[ix] - py[iy]).T @ widths  # (D,)
    return jnp.mean(w1)


def sliced_wasserstein(key, x, y, n_directions: int = 256) -> float:
    """Sliced Wasserstein-1 distance between two point clouds.

    Each random unit direction projects both clouds to 1-D, where W1 is the integral over
    quantile levels u in (0, 1) of |F_x^-1(u) - F_y^-1(u)|. It is computed exactly for n != m
    on the merged grid of levels {k/n} and {j/m}; for n == m it is the mean of |sorted differences|.

    Args:
        key: a ``jax.random`` key; the same key gives the same directions and value.
        x: (n, d) points.
        y: (m, d) points.
        n_directions: number of random directions (REFERENCE asks for 128 or more).

    Returns:
        The mean W1 over directions, a float.

    References:
        Rabin et al., SSVM 2011; Bonneel et al., "Sliced and Radon Wasserstein Barycenters of
        Measures", JMIV 2015.
    """
    x, y = _pair(x, y, "x", "y")
    dirs = _directions(key, n_directions, x.shape[1])
    ix, iy, widths = _quantile_grid(x.shape[0], y.shape[0])
    return float(_swd(x, y, dirs, ix, iy, widths))


@jax.jit
def _weighted_pairwise(a, wa, b, wb):
    """Sum over pairs of wa_i wb_j |a_i - b_j|, in (CHUNK, m) blocks."""
    rows = jax.lax.map(
        lambda ai: jnp.sqrt(jnp.sum((ai - b) ** 2, axis=-1)) @ wb, a, batch_size=CHUNK
    )
    return rows @ wa


def _mean_pairwise(a: np.ndarray, b: np.ndarray) -> jnp.ndarray:
    """Mean Euclidean distance over all pairs (a_i, b_j)."""
    wa, wb = _weights(a.shape[0], CHUNK), _weights(b.shape[0], BUCKET)
    return _weighted_pairwise(_pad_rows(a, CHUNK), wa, _pad_rows(b, BUCKET), wb)


def energy_distance(x, y) -> float:
    """Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between two point clouds.

    This is the V-statistic form: the within-set means include the zero diagonal pairs, so the
    value is exactly 0 for identical sets and, up to rounding, never negative.

    Args:
        x: (n, d) points.
        y: (m, d) points.

    Returns:
        The energy distance, a float (a squared-distance-like quantity, not its square root).

    References:
        Szekely & Rizzo, "Energy statistics", JSPI 2013.
    """
    x, y = _pair(x, y, "x", "y")
    xy = _mean_pairwise(x, y)
    return float(2.0 * xy - _mean_pairwise(x, x) - _mean_pairwise(y, y))


# ----------------------------------------------------------------------------- nearest neighbours


@jax.jit
def _nearest(x, ref):
    """Distance to, and index of, the nearest row of ref for each row of x, in (CHUNK, m) blocks."""

    def one(xi):
        d2 = jnp.sum((xi - ref) ** 2, axis=-1)  # (m,)
        i = jnp.argmin(d2)
        return jnp.sqrt(d2[i]), i

    return jax.lax.map(one, x, batch_size=CHUNK)


def nearest(x, ref) -> tuple[np.ndarray, np.ndarray]:
    """Nearest neighbour in ref of every row of x, in chunks of rows.

    Args:
        x: (n, d) query points.
        ref: (m, d) reference points.

    Returns:
        ``(dist, idx)``: (n,) float32 Euclidean distances and (n,) integer indices into ref. Ties
        go to the lowest index.
    """
    x, ref = _pair(x, ref, "x", "ref")
    # Padding ref with copies of ref[0] is harmless: argmin returns the first of tied indices.
    dist, idx = _nearest(_pad_rows(x, CHUNK), _pad_rows(ref, BUCKET))
    n = x.shape[0]
    return np.asarray(dist)[:n], np.asarray(idx)[:n]


# ----------------------------------------------------------------------------- curve and points


def _within(dist: np.ndarray, tol: float) -> float:
    """Share of distances that are at most tol."""
    return float(np.mean(dist <= tol))


def _covered(bin_of_ref: np.ndarray, idx: np.ndarray, dist: np.ndarray, n_bins: int, tol):
    """Share of bins that hold the nearest reference point of a counted sample."""
    keep = np.ones_like(dist, dtype=bool) if tol is None else dist <= tol
    return float(np.unique(bin_of_ref[idx[keep]]).size / n_bins)


def _check_bins(n_bins: int, m: int, name: str) -> None:
    """Raise DataError unless 1 <= n_bins <= m."""
    if not 1 <= n_bins <= m:
        raise DataError(f"n_bins must be between 1 and the {m} points of {name}, got {n_bins}")


def curve_precision(x, curve, tol: float = 0.05) -> float:
    """Share of samples whose distance to the nearest curve point is at most tol.

    Args:
        x: (n, 2) samples.
        curve: (m, 2) dense points on the curve.
        tol: distance threshold (REFERENCE uses 0.05).

    Returns:
        Precision in [0, 1], a float.
    """
    dist, _ = nearest(x, curve)
    return _within(dist, tol)


def curve_coverage(x, curve, n_bins: int = 50, tol: float | None = None) -> float:
    """Share of equal arc-length bins of the curve that hold the nearest-curve point of a sample.

    The curve must be ordered along arc length and equally spaced, so bin b is the contiguous
    index chunk b of ``np.array_split(range(m), n_bins)``.

    Args:
        x: (n, 2) samples.
        curve: (m, 2) ordered, equally spaced curve points, m >= n_bins.
        n_bins: number of arc-length bins (REFERENCE uses 50).
        tol: if given, only samples within tol of the curve count; None (the REFERENCE
            definition) counts every sample.

    Returns:
        Coverage in [0, 1], a float.
    """
    curve = _points(curve, "curve")
    m = curve.shape[0]
    _check_bins(n_bins, m, "curve")
    dist, idx = nearest(x, curve)
    bin_of_ref = np.zeros(m, dtype=np.int64)
    for b, chunk in enumerate(np.array_split(np.arange(m), n_bins)):
        bin_of_ref[chunk] = b
    return _covered(bin_of_ref, idx, dist, n_bins, tol)


def farthest_point_indices(ref, n: int, start: int = 0) -> np.ndarray:
    """Indices of n points of ref chosen by deterministic farthest-point sampling.

    Args:
        ref: (m, d) points.
        n: how many points to pick, 1 <= n <= m.
        start: index of the first pick.

    Returns:
        (n,) integer indices into ref; each pick is farthest from all earlier picks.

    Raises:
        DataError: if ref has fewer than n distinct points.

    References:
        Gonzalez, TCS 1985.
    """
    ref = _points(ref, "ref")
    _check_bins(n, ref.shape[0], "ref")
    picks = [start]
    gap = np.linalg.norm(ref - ref[start], axis=1)  # (m,) distance to the nearest pick
    for _ in range(n - 1):
        if gap.max() == 0.0:
            raise DataError(f"ref has fewer than {n} distinct points to use as bin centres")
        picks.append(int(np.argmax(gap)))
        gap = np.minimum(gap, np.linalg.norm(ref - ref[picks[-1]], axis=1))
    return np.asarray(picks)


def point_coverage(x, ref, n_bins: int = 50, key=None, tol: float | None = None) -> float:
    """Coverage for data that is not a curve: share of Voronoi bins of ref hit by some sample.

    Bin centres are n_bins points of ref chosen by farthest-point sampling; every ref point
    joins the bin of its nearest centre, and a bin is covered if it holds the nearest ref point
    of at least one sample.

    Args:
        x: (n, d) samples.
        ref: (m, d) reference points with at least n_bins distinct points.
        n_bins: number of bins.
        key: optional ``jax.random`` key; if given, the first centre is drawn with it, otherwise
            it is ref[0] and the result is deterministic.
        tol: if given, only samples within tol of ref count; None counts every sample.

    Returns:
        Coverage in [0, 1], a float.
    """
    ref = _points(ref, "ref")
    start = 0 if key is None else int(jax.random.randint(key, (), 0, ref.shape[0]))
    centres = farthest_point_indices(ref, n_bins, start)
    _, bin_of_ref = nearest(ref, ref[centres])
    dist, idx = nearest(x, ref)
    return _covered(bin_of_ref, idx, dist, n_bins, tol)


def point_precision(x, ref, tol: float = 0.05) -> float:
    """Share of samples whose distance to the nearest ref point is at most tol.

    Args:
        x: (n, d) samples.
        ref: (m, d) reference points.
        tol: distance threshold.

    Returns:
        Precision in [0, 1], a float.
    """
    dist, _ = nearest(x, ref)
    return _within(dist, tol)


# ----------------------------------------------------------------------------- classes


def class_share(x, label: int, train_x, train_labels) -> float:
    """Share of samples whose nearest training point carries the given label.

    Used for the negative-class check: the share of samples landing in class ``label``.

    Args:
        x: (n, d) samples.
        label: the class to count.
        train_x: (m, d) training points.
        train_labels: (m,) integer labels of train_x.

    Returns:
        The share in [0, 1], a float.
    """
    train_labels = np.asarray(train_labels)
    if train_labels.shape != (np.shape(train_x)[0],):
        raise DataError(
            f"train_labels must have shape ({np.shape(train_x)[0]},), got {train_labels.shape}"
        )
    _, idx = nearest(x, train_x)
    return float(np.mean(train_labels[idx] == label))


def class_accuracy(x, label: int, train_x, train_labels) -> float:
    """Class accuracy: share of samples whose nearest training point carries the asked-for label.

    Args:
        x: (n, d) samples generated for class ``label``.
        label: the asked-for class.
        train_x: (m, d) training points.
        train_labels: (m,) integer labels of train_x.

    Returns:
        Accuracy in [0, 1], a float.
    """
    return class_share(x, label, train_x, train_labels)


def centroid_distance(x, centre) -> float:
    """Mean Euclidean distance of the samples to a point.

    Args:
        x: (n, d) samples.
        centre: (d,) the point, for example the data's centroid.

    Returns:
        The mean distance, a float.
    """
    x = _points(x, "x")
    centre = np.asarray(centre, dtype=np.float32)
    if centre.shape != (x.shape[1],):
        raise DataError(f"centre must have shape ({x.shape[1]},), got {centre.shape}")
    return float(np.mean(np.linalg.norm(x - centre, axis=1)))


# ----------------------------------------------------------------------------- phase change


def grid(n: int = 30, lim: float = 1.5) -> np.ndarray:
    """Points of the n x n grid over [-lim, lim]^2, where the vector field is drawn.

    Args:
        n: points per side (REFERENCE uses 30).
        lim: half-width of the square (REFERENCE uses 1.5).

    Returns:
        (n * n, 2) float32 points in row-major order: x varies fastest, y slowest.
    """
    side = np.linspace(-lim, lim, n)
    gx, gy = np.meshgrid(side, side)  # (n, n) each, x along columns
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


def _mean_cosine(u: np.ndarray, v: np.ndarray) -> float:
    """Mean cosine between matching rows of u and v; a zero vector counts as cosine 0."""
    un = np.maximum(np.linalg.norm(u, axis=1), _EPS)
    vn = np.maximum(np.linalg.norm(v, axis=1), _EPS)
    return float(np.mean(np.sum(u * v, axis=1) / (un * vn)))


def phase_curves(field_fn, ts, data_x, curve, n: int = 30, lim: float = 1.5) -> dict:
    """Mean cosine between the field and the directions to the centroid and to the curve.

    Args:
        field_fn: ``field_fn(points (k, 2), t float) -> (k, 2)``, the vector field at time t
            (for a diffusion model, -eps_hat).
        ts: (T,) times.
        data_x: (N, 2) data points; their mean is the centroid.
        curve: (m, 2) dense points of the data curve.
        n: grid points per side.
        lim: half-width of the grid.

    Returns:
        ``{"t": (T,), "cos_centroid": (T,), "cos_curve": (T,)}`` as numpy arrays, where each
        cosine is averaged over the n * n grid points.
    """
    ts = np.asarray(ts, dtype=np.float64).reshape(-1)
    pts = grid(n, lim)  # (n*n, 2)
    to_centroid = _points(data_x, "data_x", dim=2).mean(axis=0) - pts
    curve = _points(curve, "curve", dim=2)
    to_curve = curve[nearest(pts, curve)[1]] - pts
    fields = [np.asarray(field_fn(pts, float(t))) for t in ts]  # T x (n*n, 2)
    return {
        "t": ts,
        "cos_centroid": np.array([_mean_cosine(f, to_centroid) for f in fields]),
        "cos_curve": np.array([_mean_cosine(f, to_curve) for f in fields]),
    }


def phase_change_time(ts, cos_centroid, cos_curve) -> float:
    """Time t* at which the curve cosine overtakes the centroid cosine as t falls.

    Scanning from the largest t downwards, t* is the first (largest-t) neighbouring pair where
    cos_curve - cos_centroid goes from < 0 (larger t) to >= 0 (smaller t), linearly
    interpolated to the zero crossing.

    Args:
        ts: (T,) times, ascending or descending.
        cos_centroid: (T,) mean cosine to the centroid direction at each t.
        cos_curve: (T,) mean cosine to the nearest-curve direction at each t.

    Returns:
        t*, a float; nan if there is no such crossing (for example if the curve cosine already
        wins at the largest t, or never wins).
    """
    ts = np.asarray(ts, dtype=np.float64).reshape(-1)
    diff = np.asarray(cos_curve, np.float64) - np.asarray(cos_centroid, np.float64)
    if diff.shape != ts.shape:
        raise DataError(
            f"ts and the cosine curves must match in shape, got {ts.shape}, {diff.shape}"
        )
    order = np.argsort(-ts, kind="stable")  # largest t first
    t, d = ts[order], diff[order]
    hits = np.flatnonzero((d[:-1] < 0) & (d[1:] >= 0))
    if hits.size == 0:
        return float("nan")
    k = hits[0]
    return float(t[k] - d[k] * (t[k + 1] - t[k]) / (d[k + 1] - d[k]))


def phase_diagnostic(field_fn, data_x, curve, ts=None, n: int = 30, lim: float = 1.5) -> dict:
    """Phase-change diagnostic: the two cosine curves over t and the crossing time t*.

    Args:
        field_fn: ``field_fn(points (k, 2), t float) -> (k, 2)``, the vector field (-eps_hat).
        data_x: (N, 2) data points.
        curve: (m, 2) dense points of the data curve.
        ts: (T,) times; default ``np.linspace(0.02, 1.0, 50)``.
        n: grid points per side.
        lim: half-width of the grid.

    Returns:
        The dict of ``phase_curves`` plus ``"t_star"``, a float (nan if the curves never cross).
    """
    ts = np.linspace(0.02, 1.0, 50) if ts is None else ts
    curves = phase_curves(field_fn, ts, data_x, curve, n=n, lim=lim)
    t_star = phase_change_time(curves["t"], curves["cos_centroid"], curves["cos_curve"])
    return {**curves, "t_star": t_star}
