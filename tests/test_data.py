"""Tests for toydiff.data: the reference spiral, the toy datasets, and loading user files."""

import math

import jax
import numpy as np
import pytest
from PIL import Image

from toydiff import data
from toydiff.errors import DataError

DETERMINISTIC = {"spiral", "spiral-classes"}
N = 64  # one size for all random draws, so jax compiles each draw once
CURVE_PIECES = {"spiral": 1, "spiral-classes": 1, "moons": 2, "rings": 2}


def _steps(curve):
    """Distances between consecutive curve points, shape (m - 1,)."""
    return np.linalg.norm(np.diff(curve.astype(np.float64), axis=0), axis=1)


def _error(call, *args, **kwargs) -> str:
    """The message of the DataError that call(*args, **kwargs) raises, checked to be one line."""
    with pytest.raises(DataError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------- spiral


def test_spiral_matches_the_reference_settings():
    cloud = data.spiral()
    radius = np.linalg.norm(cloud.x, axis=1)
    assert cloud.x.shape == (100, 2) and cloud.x.dtype == np.float32
    assert radius[0] == pytest.approx((math.pi / 2) / (5 * math.pi), abs=1e-6)
    assert radius[-1] == pytest.approx((math.pi / 2 + 5 * math.pi) / (5 * math.pi), abs=1e-6)
    assert np.all(np.diff(radius) > 0)
    s = math.pi / 2 + 5 * math.pi / 99  # the second point
    np.testing.assert_allclose(
        cloud.x[1], [s * math.cos(s) / (5 * math.pi), s * math.sin(s) / (5 * math.pi)], rtol=1e-6
    )


def test_spiral_is_deterministic_and_ignores_the_key():
    a, b = data.spiral(), data.spiral(jax.random.key(7))
    np.testing.assert_array_equal(a.x, b.x)
    assert a.fingerprint() == b.fingerprint()


def test_spiral_curve_is_dense_and_equally_spaced_in_arc_length():
    curve = data.spiral().curve
    steps = _steps(curve)
    assert curve.shape == (10_000, 2) and curve.dtype == np.float32
    assert (steps.max() - steps.min()) / steps.mean() < 0.01
    np.testing.assert_allclose(np.linalg.norm(curve[[0, -1]], axis=1), [0.1, 1.1], atol=1e-6)
    np.testing.assert_array_equal(data.spiral_curve(), curve)
    assert data.spiral_curve(500).shape == (500, 2)


def test_spiral_curve_passes_through_every_training_point():
    cloud = data.spiral()
    gap = np.linalg.norm(cloud.x[:, None] - cloud.curve[None], axis=-1).min(axis=1)
    assert gap.max() < 1e-3  # the curve spacing is about 1e-3


# ----------------------------------------------------------------------------- classes


def test_spiral_classes_are_three_contiguous_arcs():
    cloud = data.spiral_classes()
    np.testing.assert_array_equal(cloud.x, data.spiral().x)
    assert cloud.labels.dtype == np.int32
    assert np.all(np.diff(cloud.labels) >= 0)
    np.testing.assert_array_equal(np.bincount(cloud.labels), [33, 33, 34])
    assert cloud.class_names == ("people", "dogs", "cats")
    assert cloud.num_classes == 3


def test_spiral_class_curve_labels_agree_with_the_nearest_points():
    cloud = data.spiral_classes()
    assert cloud.curve_labels.shape == (10_000,)
    assert np.all(np.diff(cloud.curve_labels) >= 0)
    nearest = np.linalg.norm(cloud.x[:, None] - cloud.curve[None], axis=-1).argmin(axis=1)
    np.testing.assert_array_equal(cloud.curve_labels[nearest], cloud.labels)


@pytest.mark.parametrize(("name", "expected"), [("people", 0), ("dogs", 1), ("cats", 2)])
def test_label_id(name, expected):
    assert data.spiral_classes().label_id(name) == expected


def test_unknown_label_lists_the_class_names():
    message = _error(data.spiral_classes().label_id, "birds")
    assert "birds" in message and "cats" in message


def test_label_on_unlabelled_data_is_an_error():
    message = _error(data.spiral().label_id, "cats")
    assert "cats" in message and "unlabelled" in message


# ----------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", sorted(data.REGISTRY))
def test_registry_datasets_are_pure_functions_of_the_key(name):
    fn = data.REGISTRY[name]
    a, b, c = fn(jax.random.key(0), n=N), fn(jax.random.key(0), n=N), fn(jax.random.key(1), n=N)
    assert a.x.shape == (N, 2) and a.x.dtype == np.float32
    assert np.all(np.isfinite(a.x))
    assert np.abs(a.x).max() < 1.35  # about the spiral's extent
    np.testing.assert_array_equal(a.x, b.x)
    assert np.array_equal(a.x, c.x) == (name in DETERMINISTIC)


@pytest.mark.parametrize("name", sorted(CURVE_PIECES))
def test_curves_are_equally_spaced_within_each_piece(name):
    curve = data.REGISTRY[name](jax.random.key(0), n=N).curve
    steps = np.sort(_steps(curve))[
        : len(curve) - CURVE_PIECES[name]
    ]  # drop the jumps between pieces
    assert curve.shape == (10_000, 2)
    assert (steps.max() - steps.min()) / steps.mean() < 0.01


@pytest.mark.parametrize("name", ["moons", "rings"])
def test_noisy_curve_data_lie_near_their_curve(name):
    cloud = data.REGISTRY[name](jax.random.key(0), n=N)
    gap = np.linalg.norm(cloud.x[:, None] - cloud.curve[None], axis=-1).min(axis=1)
    assert 0.01 < gap.mean() < 0.05


@pytest.mark.parametrize("name", ["moons", "rings"])
def test_noisy_curve_data_spread_along_the_whole_curve(name):
    cloud = data.REGISTRY[name](jax.random.key(0), n=N)
    nearest = np.linalg.norm(cloud.x[:, None] - cloud.curve[None], axis=-1).argmin(axis=1)
    tenth = nearest * 10 // len(cloud.curve)  # equal arc-length tenths of the curve
    assert set(tenth.tolist()) == set(range(10))


def test_rings_hold_points_in_proportion_to_length():
    inner = np.mean(np.linalg.norm(data.rings(jax.random.key(0), n=N).x, axis=1) < 0.75)
    assert 0.15 < inner < 0.5  # a third of the total length


def test_rings_have_the_reference_radii():
    radius = np.linalg.norm(data.rings(jax.random.key(0), n=N).curve, axis=1)
    np.testing.assert_allclose(np.unique(radius.round(6)), [0.5, 1.0])


@pytest.mark.parametrize("name", ["gaussians", "checkerboard"])
def test_non_curve_data_have_no_curve(name):
    cloud = data.REGISTRY[name](jax.random.key(0), n=N)
    assert cloud.curve is None and cloud.labels is None and cloud.class_names == ()


@pytest.mark.parametrize(("name", "n"), [("spiral", 1), ("spiral-classes", 2), ("moons", 0)])
def test_too_few_points_is_an_error(name, n):
    assert name in _error(data.REGISTRY[name], jax.random.key(0), n=n)


def test_load_by_name_passes_the_key_and_n():
    cloud = data.load("moons", jax.random.key(3), n=N)
    np.testing.assert_array_equal(cloud.x, data.moons(jax.random.key(3), n=N).x)
    np.testing.assert_array_equal(data.load("rings", n=N).x, data.rings(jax.random.key(0), n=N).x)


@pytest.mark.parametrize(
    ("name", "keywords"),
    [
        ("spirals", ["spirals", "did you mean", "moons"]),
        ("blobs", ["blobs", "checkerboard", ".npy"]),
    ],
)
def test_unknown_dataset_lists_the_registry(name, keywords):
    message = _error(data.load, name)
    assert all(k in message for k in keywords)


# ----------------------------------------------------------------------------- PointCloud


def test_fingerprint_is_the_identity_of_the_data():
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    a, b = data.PointCloud("a", x), data.PointCloud("b", x.copy())
    moved = data.PointCloud("a", x + 1)
    labelled = data.PointCloud("a", x, np.array([0, 0, 1, 1]), ("u", "v"))
    relabelled = data.PointCloud("a", x, np.array([0, 1, 0, 1]), ("u", "v"))
    renamed = data.PointCloud("a", x, np.array([0, 0, 1, 1]), ("u", "w"))
    assert a.fingerprint() == b.fingerprint()
    clouds = [a, moved, labelled, relabelled, renamed]
    assert len({c.fingerprint() for c in clouds}) == len(clouds)


def test_point_cloud_stores_read_only_copies():
    x = np.zeros((3, 2))
    cloud = data.PointCloud("zeros", x)
    x[0, 0] = 5.0
    assert cloud.x[0, 0] == 0.0 and cloud.x.dtype == np.float32
    with pytest.raises(ValueError):
        cloud.x[0, 0] = 1.0


@pytest.mark.parametrize(
    ("kwargs", "keyword"),
    [
        ({"x": np.zeros((3, 3))}, "(3, 3)"),
        ({"x": np.zeros((3, 2)), "labels": np.zeros(3)}, "class_names"),
        (
            {"x": np.zeros((3, 2)), "labels": np.array([0, 1, 2]), "class_names": ("a", "b")},
            "[0, 2)",
        ),
    ],
)
def test_inconsistent_point_cloud_is_an_error(kwargs, keyword):
    assert keyword in _error(data.PointCloud, "bad", **kwargs)


# ----------------------------------------------------------------------------- files


def _write_csv(path, text):
    path.write_text(text)
    return path


def test_npy_round_trip(tmp_path):
    x = data.moons(jax.random.key(0), n=N).x
    np.save(tmp_path / "points.npy", x)
    cloud = data.load(tmp_path / "points.npy")
    np.testing.assert_array_equal(cloud.x, x)
    assert cloud.name == "points.npy" and cloud.labels is None and cloud.curve is None


def test_npy_with_a_label_column(tmp_path):
    source = data.spiral_classes()
    np.save(tmp_path / "classes.npy", np.column_stack([source.x, source.labels]))
    cloud = data.load(str(tmp_path / "classes.npy"))
    np.testing.assert_array_equal(cloud.x, source.x)
    np.testing.assert_array_equal(cloud.labels, source.labels)
    assert cloud.class_names == ("0", "1", "2") and cloud.label_id("2") == 2


def test_csv_round_trip_without_labels(tmp_path):
    path = _write_csv(tmp_path / "pts.csv", "x,y\n0.5,-1\n 2 , 3e-1\n\n-0.25,0\n")
    cloud = data.load(path)
    np.testing.assert_array_equal(cloud.x, np.float32([[0.5, -1.0], [2.0, 0.3], [-0.25, 0.0]]))
    assert cloud.labels is None and cloud.class_names == ()


def test_csv_string_labels_in_order_of_first_appearance(tmp_path):
    path = _write_csv(tmp_path / "pets.csv", "label,Y,X\ncats,1,2\ndogs,3,4\ncats,5,6\nbirds,7,8\n")
    cloud = data.load(path)
    np.testing.assert_array_equal(cloud.x, [[2, 1], [4, 3], [6, 5], [8, 7]])
    assert cloud.class_names == ("cats", "dogs", "birds")
    np.testing.assert_array_equal(cloud.labels, [0, 1, 0, 2])


def test_csv_numeric_labels_in_numeric_order(tmp_path):
    path = _write_csv(tmp_path / "nums.csv", "x,y,label\n0,0,2\n1,1,0\n2,2,10\n")
    cloud = data.load(path)
    assert cloud.class_names == ("0", "2", "10")
    np.testing.assert_array_equal(cloud.labels, [1, 0, 2])


def test_png_silhouette_becomes_points_inside_the_shape(tmp_path):
    image = Image.new("L", (40, 20), 255)  # wide: the width spans [-1, 1], the height [-0.5, 0.5]
    image.paste(0, (4, 2, 12, 8))  # columns 4..11, rows 2..7: left and near the top
    image.save(tmp_path / "square.png")
    cloud = data.load(tmp_path / "square.png", jax.random.key(0), n=N)
    x, y = cloud.x[:, 0], cloud.x[:, 1]
    assert cloud.x.shape == (N, 2) and cloud.name == "square.png"
    assert x.min() >= -0.8 and x.max() <= -0.4  # (4 - 20) / 20 to (12 - 20) / 20
    assert y.min() >= 0.1 and y.max() <= 0.4  # y points up: (10 - 8) / 20 to (10 - 2) / 20
    assert x.max() - x.min() > 0.3 and y.max() - y.min() > 0.2  # it fills the square
    assert len(np.unique(cloud.x, axis=0)) == N  # jittered within pixels


def test_png_default_size_and_transparent_background(tmp_path):
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))  # transparent black counts as white
    image.paste((0, 0, 0, 255), (0, 0, 5, 10))
    image.save(tmp_path / "half.png")
    cloud = data.load(tmp_path / "half.png")
    assert cloud.x.shape == (2000, 2)
    assert cloud.x[:, 0].max() <= 0.0


def _png(color, mode="L"):
    """A writer of a 4 x 4 PNG filled with one colour."""
    return lambda path: Image.new(mode, (4, 4), color).save(path)


def _npy(array):
    """A writer of a .npy file."""
    return lambda path: np.save(path, array)


def _text(text):
    """A writer of a text file."""
    return lambda path: path.write_text(text)


NAN_ROWS = np.array([[0, 0], [np.nan, 1], [2, 2], [3, np.inf], [4, 4]])

BAD_FILES = [
    ("missing.npy", None, "not found"),
    ("points.txt", _text("x,y\n1,2\n"), ".npy .csv .png"),
    ("empty.npy", _text(""), "empty"),
    ("empty.csv", _text(""), "empty"),
    ("blank.csv", _text("\n \n"), "empty"),
    ("empty.png", _text(""), "empty"),
    ("garbage.npy", _text("not numpy"), "not a readable"),
    ("wide.npy", _npy(np.zeros((5, 4))), "(5, 4)"),
    ("flat.npy", _npy(np.zeros(6)), "(n, 2)"),
    ("words.npy", _npy(np.array(["a", "b"])), "numeric"),
    ("none.npy", _npy(np.zeros((0, 2))), "no points"),
    ("one.npy", _npy(np.zeros((1, 2))), "only 1 point"),
    ("nan.npy", _npy(NAN_ROWS), "2 of 5 rows"),
    ("half.npy", _npy(np.array([[0, 0, 0.5], [1, 1, 1]])), "non-integer"),
    ("header.csv", _text("x,y\n"), "no points"),
    ("one.csv", _text("x,y\n1,2\n"), "only 1 point"),
    ("inf.csv", _text("x,y\n1,2\ninf,3\n4,5\n"), "1 of 3 rows"),
    ("cols.csv", _text("a,b\n1,2\n3,4\n"), "found: a, b"),
    ("text.csv", _text("x,y\n1,2\nabc,4\n"), "'abc'"),
    ("short.csv", _text("x,y,label\n1,2,a\n3,4\n"), "line 3 has 2 fields"),
    ("nolabel.csv", _text("x,y,label\n1,2,a\n3,4, \n"), "empty label"),
    ("white.png", _png(255), "no dark pixels"),
    ("clear.png", _png((0, 0, 0, 0), "RGBA"), "no dark pixels"),
    ("fake.png", _text("not an image"), "not a readable PNG"),
]


@pytest.mark.parametrize(
    ("file_name", "write", "keyword"), BAD_FILES, ids=[c[0] for c in BAD_FILES]
)
def test_bad_files_raise_one_line_errors_naming_the_file(tmp_path, file_name, write, keyword):
    path = tmp_path / file_name
    if write is not None:
        write(path)
    message = _error(data.load, path)
    assert file_name in message and keyword in message
