"""The clips: procedural captioned videos of a moving shape, their splits, captions and judge."""

import numpy as np
import pytest

from toydiff.errors import DataError
from toydiff.images.data import clips, shapes

SPEC = clips.SPEC


@pytest.fixture(scope="module")
def test_set():
    return SPEC.load("test")


@pytest.fixture(scope="module")
def judge():
    return SPEC.judge(16)


def centres(x):
    """Centre of mass (x, y) of each frame's lit pixels, measured here from the pixels alone."""
    lit = ((np.asarray(x) + 1) / 2).max(-1)  # (n, F, H, W)
    grid = np.arange(lit.shape[-1]) + 0.5
    mass = lit.sum((-2, -1))
    return (
        np.stack([(lit.sum(-2) * grid).sum(-1), (lit.sum(-1) * grid).sum(-1)], -1) / mass[..., None]
    )


def test_clips_shape_range_and_splits():
    assert SPEC.shape() == (8, 16, 16, 3) and SPEC.frames == 8 and SPEC.max_size is None
    train = SPEC.load("train")
    assert train.x.shape == (4096, 8, 16, 16, 3) and train.x.dtype == np.float32
    assert train.x.min() == -1.0 and train.x.max() <= 1.0 and train.x.max() > 0.9
    assert (train.x[:, :, 0, 0] == -1).all()  # black background
    test = SPEC.load("test")
    assert test.x.shape == (512, 8, 16, 16, 3)
    np.testing.assert_array_equal(train.index, np.arange(4096))
    np.testing.assert_array_equal(test.index, np.arange(4096, 4608))
    assert not set(train.index) & set(test.index)
    for name, values in clips.VALUES.items():
        counts = np.bincount(train.attributes[name], minlength=len(values))
        assert counts.min() > 0.9 * len(train.x) / len(values)  # roughly balanced
    with pytest.raises(DataError, match="16x16"):
        SPEC.load("train", size=32)
    with pytest.raises(DataError, match="16x16"):
        clips.draw([0], 32)


def test_a_clip_is_a_pure_function_of_its_index():
    full, part = clips.draw(np.arange(10)), clips.draw([5, 9])
    np.testing.assert_array_equal(part.x, full.x[[5, 9]])
    for name in clips.VALUES:
        np.testing.assert_array_equal(part.attributes[name], full.attributes[name][[5, 9]])
        np.testing.assert_array_equal(clips.attributes_of([5, 9])[name], part.attributes[name])
    a = clips.fingerprint(np.arange(4096), 16, "shape", 0)
    assert a == clips.fingerprint(np.arange(4096), 16, "shape", 0)
    assert a.startswith("clips-16-4096-shape-")
    assert clips.fingerprint(np.arange(4096), 16, "shape", 2).startswith("clips-16-4096-2-shape-")
    assert a != clips.fingerprint(np.arange(1, 4097), 16, "shape", 0)


def test_the_shape_moves_the_way_the_caption_says_and_stays_in_the_frame(test_set):
    c = centres(test_set.x)  # (n, 8, 2)
    step = np.diff(c, axis=1)  # (n, 7, 2): pixels a frame
    expected = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
    for k, name in enumerate(clips.VALUES["direction"]):
        rows = test_set.attributes["direction"] == k
        assert rows.sum() > 100
        np.testing.assert_allclose(
            step[rows], np.broadcast_to(expected[name], step[rows].shape), atol=0.02
        )
    assert c.min() > 3.5 and c.max() < 13  # (x, y) of every centre stays well inside
    # Fully visible: the clips at the corners of the jitter (every shape, direction, offset
    # along and across the track, and the largest radius) drawn on a 32x32 canvas, 8 pixels in,
    # put no colour outside the middle 16x16.
    corners = np.array(np.meshgrid(range(3), range(4), (0, 1 - 1e-9), (0, 1 - 1e-9), indexing="ij"))
    shape, direction, along, across = corners.reshape(4, -1)
    attrs = {
        "shape": shape.astype(int),
        "colour": 0 * shape.astype(int),
        "direction": direction.astype(int),
    }
    jitter = np.stack([along, across, np.full_like(along, 1 - 1e-9)], 1)
    cx, cy, r = clips.tracks(attrs, jitter)
    frame = [np.repeat(attrs[a], 8) for a in ("shape", "colour")]
    big = shapes.draw_shapes(*frame, cx.ravel() + 8, cy.ravel() + 8, np.repeat(r, 8), 32)
    outside = big.sum((1, 2, 3)) - big[:, 8:24, 8:24].sum((1, 2, 3))
    assert outside.max() < 1e-9 and big.sum((1, 2, 3)).min() > 10
    assert 3.14 < r.min() and r.max() < 3.16
    # Every frame shows the same amount of shape.
    area = ((test_set.x + 1) / 2).max(-1).sum((-2, -1))
    assert (area.max(1) / area.min(1)).max() < 1.01


def test_captions_and_words():
    assert SPEC.caption({"shape": "circle", "colour": "red", "direction": "left"}) == (
        "a red circle moving left"
    )
    assert clips.caption({"shape": "circle"}) == "a circle"
    assert clips.caption({"shape": "circle", "colour": "red"}) == "a red circle"
    assert clips.caption({"shape": "circle", "direction": "up"}) == "a circle moving up"
    assert SPEC.example == "a red circle moving left"
    assert SPEC.vocabulary == tuple(
        "circle square triangle red green blue yellow left right up down".split()
    )
    assert SPEC.words["down"] == ("direction", "down") and SPEC.words["blue"] == ("colour", "blue")
    assert set(SPEC.droppable) == {"colour", "direction"}
    full, named = SPEC.full_captions()
    assert len(full) == len(set(full)) == 48 and full[0] == "a red circle moving left"
    for combo in clips.HELD_OUT:
        for attribute, value in combo:
            assert value in clips.VALUES[attribute]


def test_the_judge_reads_real_clips(test_set, judge):
    predicted = judge.predict_all(test_set.x)
    for name in ("shape", "colour", "direction"):
        assert (predicted[name] == test_set.attributes[name]).mean() >= 0.99, name
    assert judge.consistent(test_set.x).mean() >= 0.99
    np.testing.assert_array_equal(judge.direction(test_set.x), predicted["direction"])
    # Played backwards, every clip moves the other way: left <-> right, up <-> down.
    backwards = judge.direction(test_set.x[:, ::-1])
    np.testing.assert_array_equal(backwards, test_set.attributes["direction"] ^ 1)


def test_the_judge_refuses_what_is_not_a_clip(test_set, judge):
    noise = np.random.default_rng(0).uniform(-1, 1, (200, 8, 16, 16, 3)).astype(np.float32)
    assert judge.consistent(noise).mean() < 0.5
    direction = judge.direction(noise)
    assert (direction == -1).mean() > 0.9
    still = np.repeat(test_set.x[:64, :1], 8, axis=1)  # one frame eight times
    assert (judge.direction(still) == -1).all()
    assert judge.consistent(still).mean() >= 0.99  # the same object, standing still
    x, colour = test_set.x, test_set.attributes["colour"]
    a, b = np.arange(0, 200), np.arange(200, 400)
    a, b = a[colour[a] != colour[b]], b[colour[a] != colour[b]]
    spliced = np.concatenate([x[a, :4], x[b, 4:]], axis=1)  # the colour changes half way
    assert len(a) > 100 and not judge.consistent(spliced).any()
    blank = x[:8].copy()
    blank[:, 5] = -1  # a frame with no shape
    assert (judge.direction(blank) == -1).all() and not judge.consistent(blank).any()
    with pytest.raises(DataError, match=r"\(8, 16, 16, 3\)"):
        judge.predict(x[:, 0], "shape")
    with pytest.raises(DataError, match="unknown attribute"):
        judge.predict(x, "size")


def test_shapes_images_are_unchanged_by_the_shared_drawing():
    # shapes' images before draw_shapes was split out of shapes.render, bit for bit.
    assert shapes.draw(np.arange(64)).fingerprint() == (
        "272b1bf93539744aeaa8f37ed3c4064f09f520b6e877dcf8f0dbaf507fecd68b"
    )
