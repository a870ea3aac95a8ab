"""The image data sets: the registry, digits from scikit-learn, procedural shapes, splits and
captions."""

import subprocess
import sys

import numpy as np
import pytest

from toydiff.errors import DataError
from toydiff.images import data, text
from toydiff.images.data import digits, shapes


def test_digits_are_sklearns_with_a_fixed_held_out_split():
    train, test = data.load("digits"), data.load("digits", "test")
    assert train.x.shape == (1438, 8, 8, 1) and test.x.shape == (359, 8, 8, 1)
    assert set(train.index) | set(test.index) == set(range(1797))
    assert not set(train.index) & set(test.index)
    assert train.x.min() == -1.0 and train.x.max() == 1.0  # 0 and 16 map to -1 and 1
    assert train.class_names == tuple(str(d) for d in range(10))
    assert np.array_equal(np.bincount(train.labels) > 120, np.ones(10, bool))
    from sklearn.datasets import load_digits

    raw = load_digits()
    i = 5
    np.testing.assert_allclose(train.x[i, ..., 0], raw.images[train.index[i]] / 8 - 1)
    assert train.labels[i] == raw.target[train.index[i]]


def test_digits_are_read_without_importing_sklearn():
    # The file scikit-learn ships, parsed by hand: the same numbers as load_digits, and a
    # training process does not pay for scikit-learn's import.
    code = (
        "import sys; from toydiff.images.data import digits; x, y = digits._bundled(); "
        "assert 'sklearn' not in sys.modules, 'sklearn was imported'; "
        "assert x.shape == (1797, 8, 8, 1) and y.shape == (1797,)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    from sklearn.datasets import load_digits

    x, y = digits._bundled()
    raw = load_digits()
    np.testing.assert_array_equal(x[..., 0], (raw.images / 8.0 - 1.0).astype(np.float32))
    np.testing.assert_array_equal(y, raw.target)


def test_digit_captions():
    d = data.load("digits")
    assert text.captions(d)[0] == f"a photo of the digit {digits.WORDS[d.labels[0]]}"


def test_shapes_attributes_and_captions():
    s = data.load("shapes")
    assert s.x.shape == (8192, 16, 16, 3) and s.x.dtype == np.float32
    assert -1.0 <= s.x.min() and s.x.max() <= 1.0
    for name, values in shapes.VALUES.items():
        counts = np.bincount(s.attributes[name], minlength=len(values))
        assert counts.min() > 0.8 * len(s.x) / len(values)  # roughly balanced
    attrs = s.attribute_names(3)
    expected = f"a {attrs['size']} {attrs['colour']} {attrs['shape']}"
    if attrs["hat"] == "hat":
        expected += " wearing a hat"
    assert text.captions(s.take([3])) == [expected]
    assert shapes.caption({"shape": "circle", "colour": "red", "size": "small", "hat": "hat"}) == (
        "a small red circle wearing a hat"
    )
    assert shapes.caption({"shape": "square", "hat": "no hat"}) == "a square"  # size, colour free


def test_shapes_are_a_pure_function_of_the_index():
    full = data.load("shapes", n=300)
    part = shapes.draw([299, 7, 150])
    np.testing.assert_array_equal(part.x, full.x[[299, 7, 150]])
    for name in shapes.VALUES:
        np.testing.assert_array_equal(part.attributes[name], full.attributes[name][[299, 7, 150]])
        np.testing.assert_array_equal(
            shapes.attributes_of([299, 7, 150])[name], part.attributes[name]
        )
    test = data.load("shapes", "test")
    assert test.index.min() >= 8192  # held-out images come after the training ones


@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_shapes_at_every_size_keep_their_colours(size):
    s = shapes.draw(np.arange(64), size)
    assert s.x.shape == (64, size, size, 3)
    red = s.attributes["colour"] == shapes.VALUES["colour"].index("red")
    bright = (s.x[red] + 1) / 2
    assert bright[..., 0].max() > 0.95 and np.median(bright[..., 2]) < 0.05


def test_a_hat_adds_white_pixels_above_the_shape():
    s = shapes.draw(np.arange(400))
    white = ((s.x + 1) / 2).min(-1) > 0.8
    hat = s.attributes["hat"] == 1
    assert white[hat].sum((1, 2)).min() >= 2 and white[~hat].sum((1, 2)).max() == 0


@pytest.mark.parametrize("size", [7, 15, 66, 0, 2.5, "big"])
def test_bad_sizes_are_refused(size):
    with pytest.raises(DataError, match="even integer from 8 to 64"):
        data.load("shapes", size=size)


def test_label_by_any_attribute():
    s = data.load("shapes", label_by="colour")
    assert s.class_names == ("red", "green", "blue", "yellow")
    assert s.label_id("blue") == 2 and s.label_id(1) == 1
    with pytest.raises(DataError, match="allowed: red, green, blue, yellow"):
        s.label_id("purple")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: data.load("faces"), "unknown image data 'faces'; allowed: digits, shapes"),
        (lambda: data.load("digits", size=16), "digits are 8x8"),
        (lambda: data.load("shapes", label_by="mood"), "allowed: shape, colour, size, hat"),
        (lambda: data.load("digits", "validation"), "allowed: train, test"),
        (lambda: data.load("digits").label_id("10"), r"allowed: 0, 1, 2"),
    ],
)
def test_bad_requests_name_the_allowed_values(call, message):
    with pytest.raises(DataError, match=message):
        call()


def test_a_spec_says_what_the_data_looks_like_without_loading_it():
    spec = data.spec("shapes")
    assert spec.shape(32) == (32, 32, 3) and spec.attributes[spec.check_label_by("hat")] == (
        "no hat",
        "hat",
    )
    assert data.spec("digits").shape() == (8, 8, 1) and data.NAMES[:2] == ("digits", "shapes")
    captions, named = spec.full_captions()
    assert len(captions) == 48 and captions[0] == "a small red circle"
    assert named[-1] == {"size": "large", "colour": "yellow", "shape": "triangle", "hat": "hat"}


def test_every_registered_data_set_loads_both_splits_at_its_shape():
    for name, spec in data.REGISTRY.items():
        if spec.name == "mnist":  # an optional extra, tested in its own file
            continue
        for split in ("train", "test"):
            images = data.load(name, split)
            assert images.shape == spec.shape() and images.name == name
            assert images.label_by == spec.label_by
        assert spec.recipe.data == name and spec.recipe.net.dim == spec.shape()


def test_fingerprint_tracks_content_and_class_choice():
    a, b = data.load("digits"), data.load("digits")
    assert a.fingerprint() == b.fingerprint()
    s = shapes.draw(np.arange(10))
    assert s.fingerprint() != shapes.draw(np.arange(1, 11)).fingerprint()
    import dataclasses

    assert s.fingerprint() != dataclasses.replace(s, label_by="colour").fingerprint()
