"""Tests for toydiff.metrics: closed forms, brute-force references and synthetic fields."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toydiff import metrics
from toydiff.errors import DataError


def _cloud(seed: int, n: int, d: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _segment(m: int = 100) -> np.ndarray:
    """Equally spaced points on the segment from (0, 0) to (1, 0)."""
    return np.stack([np.linspace(0.0, 1.0, m), np.zeros(m)], axis=1).astype(np.float32)


def _circle(m: int = 400) -> np.ndarray:
    s = np.linspace(0.0, 2 * np.pi, m, endpoint=False)
    return np.stack([np.cos(s), np.sin(s)], axis=1).astype(np.float32)


def _w1_by_cdf(a: np.ndarray, b: np.ndarray) -> float:
    """Exact 1-D W1 as the integral of |F_a - F_b|, independent of the quantile-grid code."""
    v = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), v[:-1], side="right") / a.size
    fb = np.searchsorted(np.sort(b), v[:-1], side="right") / b.size
    return float(np.sum(np.abs(fa - fb) * np.diff(v)))


# ----------------------------------------------------------------------------- SWD


def test_swd_identical_sets_is_zero():
    x = _cloud(0, 256)
    assert metrics.sliced_wasserstein(jax.random.key(0), x, x) == pytest.approx(0.0, abs=1e-6)


def test_swd_shift_matches_closed_form():
    # Projections of x + (0.3, 0) differ from those of x by 0.3 cos(theta): W1 = 0.3 |cos theta|.
    x = _cloud(1, 256)
    key = jax.random.key(1)
    swd = metrics.sliced_wasserstein(key, x + np.array([0.3, 0.0]), x)
    dirs = np.asarray(metrics._directions(key, 256, 2))
    assert swd == pytest.approx(0.3 * np.mean(np.abs(dirs[:, 0])), rel=1e-4)


def test_swd_shift_many_directions_near_two_over_pi():
    x = _cloud(2, 256)
    swd = metrics.sliced_wasserstein(jax.random.key(2), x + np.array([0.3, 0.0]), x, 1024)
    assert swd == pytest.approx(0.3 * 2 / np.pi, rel=0.05)


def test_swd_symmetric_and_same_key_same_value():
    x, y = _cloud(3, 256), _cloud(4, 256) + 0.5
    key = jax.random.key(3)
    assert metrics.sliced_wasserstein(key, x, y) == pytest.approx(
        metrics.sliced_wasserstein(key, y, x), rel=1e-5
    )
    assert metrics.sliced_wasserstein(key, x, y) == metrics.sliced_wasserstein(key, x, y)
    assert metrics.sliced_wasserstein(jax.random.key(4), x, y) != metrics.sliced_wasserstein(
        key, x, y
    )


@pytest.mark.parametrize("n, m", [(37, 53), (100, 10), (1, 5)])
def test_swd_unequal_sizes_is_exact(n, m):
    x, y = _cloud(5, n), _cloud(6, m) + np.array([0.5, -0.2], dtype=np.float32)
    key = jax.random.key(5)
    dirs = np.asarray(metrics._directions(key, 32, 2))
    expected = np.mean([_w1_by_cdf(x @ u, y @ u) for u in dirs])
    got = metrics.sliced_wasserstein(key, jnp.asarray(x), y, n_directions=32)
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_swd_rejects_mismatched_dimensions():
    with pytest.raises(DataError, match="columns"):
        metrics.sliced_wasserstein(jax.random.key(0), _cloud(0, 10, 2), _cloud(0, 10, 3))


# ----------------------------------------------------------------------------- energy distance


def test_energy_identical_sets_is_zero():
    x = _cloud(7, 400)
    assert metrics.energy_distance(x, x) == pytest.approx(0.0, abs=1e-5)


def test_energy_grows_with_shift():
    x, y = _cloud(8, 400), _cloud(9, 300)
    shifts = [0.0, 0.25, 0.5, 1.0, 2.0]
    values = [metrics.energy_distance(x, y + np.array([s, 0.0])) for s in shifts]
    assert values[1] > 0.0
    assert all(a < b for a, b in zip(values, values[1:], strict=False))


def test_energy_matches_brute_force():
    x, y = _cloud(10, 70), _cloud(11, 40) + 0.3

    def mean_dist(a, b):
        return np.linalg.norm(a[:, None] - b[None], axis=-1).mean()

    expected = 2 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y)
    assert metrics.energy_distance(x, y) == pytest.approx(expected, rel=1e-4)


# ----------------------------------------------------------------------------- nearest


@pytest.mark.parametrize("n", [1, 256, 257, 600])  # around the chunk size
def test_nearest_matches_brute_force(n):
    x, ref = _cloud(12, n), _cloud(13, 300)
    dist, idx = metrics.nearest(jnp.asarray(x), ref)
    d = np.linalg.norm(x[:, None].astype(np.float64) - ref[None], axis=-1)  # (n, m)
    assert dist.shape == idx.shape == (n,)
    np.testing.assert_array_equal(idx, d.argmin(axis=1))
    np.testing.assert_allclose(dist, d.min(axis=1), rtol=1e-5, atol=1e-6)


def test_nearest_ties_and_padding_go_to_lowest_index():
    ref = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    dist, idx = metrics.nearest(np.array([[0.1, 0.0], [0.5, 0.0]]), ref)
    np.testing.assert_array_equal(idx, [0, 0])  # the tie at 0.5 and the duplicate both go to 0
    np.testing.assert_allclose(dist, [0.1, 0.5], rtol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((0, 2)), np.zeros((2, 2, 2))])
def test_nearest_rejects_bad_shapes(bad):
    with pytest.raises(DataError, match="x must be"):
        metrics.nearest(bad, _cloud(0, 5))


# ----------------------------------------------------------------------------- curve metrics


def test_curve_precision_on_and_off_the_curve():
    curve = _segment()
    assert metrics.curve_precision(curve, curve) == 1.0
    assert metrics.curve_precision(curve + np.array([0.0, 0.1]), curve) == 0.0
    assert metrics.curve_precision(curve + np.array([0.0, 0.04]), curve) == 1.0


@pytest.mark.parametrize(
    "samples, expected",
    [
        (slice(0, 50), 0.5),  # first half: bins 0..24 of 50 two-point bins
        (slice(0, 100), 1.0),
        (slice(0, 1), 1 / 50),
        (slice(98, 100), 1 / 50),
    ],
)
def test_curve_coverage_counts_bins(samples, expected):
    curve = _segment(100)
    x = curve[samples] + np.array([0.0, 0.01], dtype=np.float32)
    assert metrics.curve_coverage(x, curve, n_bins=50) == pytest.approx(expected)


def test_curve_coverage_tol_ignores_far_samples():
    curve = _segment(100)
    far = curve[50:] + np.array([0.0, 0.2], dtype=np.float32)
    x = np.concatenate([curve[:50], far])
    assert metrics.curve_coverage(x, curve) == 1.0
    assert metrics.curve_coverage(x, curve, tol=0.05) == 0.5


def test_curve_coverage_rejects_too_many_bins():
    with pytest.raises(DataError, match="n_bins"):
        metrics.curve_coverage(_segment(10), _segment(10), n_bins=50)


# ----------------------------------------------------------------------------- point metrics


def test_point_coverage_and_precision():
    ref = _cloud(14, 500)
    assert metrics.point_coverage(ref, ref, n_bins=50) == 1.0
    assert metrics.point_coverage(ref[:1], ref, n_bins=50) == pytest.approx(1 / 50)
    assert metrics.point_coverage(ref[:1], ref, key=jax.random.key(0)) == pytest.approx(1 / 50)
    assert metrics.point_precision(ref, ref) == 1.0
    assert metrics.point_precision(ref + 10.0, ref) == 0.0


def test_farthest_points_are_spread_and_deterministic():
    ref = _segment(101)
    idx = metrics.farthest_point_indices(ref, 3)
    np.testing.assert_array_equal(idx, [0, 100, 50])
    with pytest.raises(DataError, match="distinct"):
        metrics.farthest_point_indices(np.zeros((10, 2)), 3)


# ----------------------------------------------------------------------------- classes


def _two_clusters():
    rng = np.random.default_rng(15)
    a = rng.normal(size=(50, 2)) * 0.1 + np.array([-1.0, 0.0])
    b = rng.normal(size=(50, 2)) * 0.1 + np.array([1.0, 0.0])
    return np.concatenate([a, b]), np.repeat([0, 1], 50)


def test_class_accuracy_and_share():
    train_x, train_labels = _two_clusters()
    samples = _cloud(16, 80) * 0.1 + np.array([1.0, 0.0], dtype=np.float32)
    assert metrics.class_accuracy(samples, 1, train_x, train_labels) == 1.0
    assert metrics.class_accuracy(samples, 0, train_x, train_labels) == 0.0
    mixed = np.concatenate([samples, -samples[:20]])
    assert metrics.class_share(mixed, 0, train_x, train_labels) == pytest.approx(0.2)


def test_class_share_rejects_label_shape():
    train_x, train_labels = _two_clusters()
    with pytest.raises(DataError, match="train_labels"):
        metrics.class_share(train_x, 0, train_x, train_labels[:-1])


def test_centroid_distance():
    x = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    assert metrics.centroid_distance(x, np.zeros(2)) == pytest.approx(2.0)
    assert metrics.centroid_distance(x, jnp.array([1.0, 0.0])) == pytest.approx(
        (0 + np.sqrt(5) + 4) / 3
    )


# ----------------------------------------------------------------------------- phase change


def test_grid_shape_and_corners():
    g = metrics.grid()
    assert g.shape == (900, 2) and g.dtype == np.float32
    np.testing.assert_allclose(g[0], [-1.5, -1.5])
    np.testing.assert_allclose(g[-1], [1.5, 1.5])
    assert g[1, 0] > g[0, 0] and g[1, 1] == g[0, 1]  # x varies fastest


def _to_centroid(data_x):
    centroid = data_x.mean(axis=0)
    return lambda p, t: centroid - p


def _to_curve(curve):
    def field(p, t):
        d = np.linalg.norm(np.asarray(p)[:, None] - curve[None], axis=-1)
        return curve[d.argmin(axis=1)] - p

    return field


def _switch(curve, t_switch=0.4):
    near, far = _to_curve(curve), _to_centroid(curve)
    return lambda p, t: near(p, t) if t < t_switch else far(p, t)


def test_phase_curves_of_pure_fields():
    curve = _circle()
    ts = np.array([0.1, 0.5, 0.9])
    out = metrics.phase_curves(_to_centroid(curve), ts, curve, curve)
    np.testing.assert_allclose(out["cos_centroid"], 1.0, atol=1e-4)
    assert np.all(out["cos_curve"] < 0.6)
    out = metrics.phase_curves(_to_curve(curve), ts, curve, curve)
    np.testing.assert_allclose(out["cos_curve"], 1.0, atol=1e-4)
    np.testing.assert_array_equal(out["t"], ts)


@pytest.mark.parametrize("descending", [False, True])
def test_phase_diagnostic_finds_switch_time(descending):
    curve = _circle()
    ts = np.linspace(0.02, 1.0, 50)
    ts = ts[::-1] if descending else ts
    out = metrics.phase_diagnostic(_switch(curve), curve, curve, ts=ts)
    assert abs(out["t_star"] - 0.4) <= 0.03
    assert out["cos_centroid"].shape == out["cos_curve"].shape == (50,)


@pytest.mark.parametrize("descending", [False, True])
def test_phase_change_time_interpolates_largest_crossing(descending):
    ts = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    diff = np.array([-0.5, 0.5, -0.5, -0.3, 0.1, -0.2])  # curve - centroid
    order = slice(None, None, -1) if descending else slice(None)
    t_star = metrics.phase_change_time(ts[order], np.zeros(6), diff[order])
    # As t falls: 0.6 (-0.2) -> 0.5 (+0.1) is the first crossing, at t = 0.6 - 0.1 * 0.2 / 0.3.
    assert t_star == pytest.approx(0.6 - 0.1 * 2 / 3)


@pytest.mark.parametrize(
    "diff",
    [
        [0.1, 0.2, 0.3],  # curve already wins at the largest t
        [-0.1, -0.2, -0.3],  # never wins
        [-0.1, 0.2, 0.3],  # wins only as t rises, not as it falls
    ],
)
def test_phase_change_time_no_crossing_is_nan(diff):
    ts = np.array([0.1, 0.5, 0.9])
    assert np.isnan(metrics.phase_change_time(ts, np.zeros(3), np.array(diff)))
