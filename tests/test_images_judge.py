"""The independent judges and the measures: accuracy, diversity, novelty."""

import numpy as np
import pytest

from toydiff.errors import ToydiffError
from toydiff.images import data, judge
from toydiff.images.data import shapes


def test_digit_judge_reads_held_out_digits():
    test = data.load("digits", "test")
    acc = np.mean(judge.judge_for("digits").predict(test.x) == test.labels)
    assert acc >= 0.97  # 0.997 here


@pytest.mark.parametrize("attribute", list(shapes.VALUES))
def test_shape_judge_reads_every_attribute_of_held_out_shapes(attribute):
    test = data.load("shapes", "test")
    predicted = judge.judge_for("shapes").predict(test.x, attribute)
    assert np.mean(predicted == test.attributes[attribute]) >= 0.98


def test_shape_judge_at_another_size():
    test = shapes.draw(np.arange(9000, 9200), 32)
    j = judge.judge_for("shapes", 32)
    for attribute in shapes.VALUES:
        assert np.mean(j.predict(test.x, attribute) == test.attributes[attribute]) >= 0.95


def test_novelty_is_095_for_held_out_images_and_0_for_copies():
    train, test = data.load("digits"), data.load("digits", "test")
    assert 0.9 <= judge.novelty(test.x, train.x) <= 1.0
    assert judge.novelty(train.x[:200], train.x) == 0.0
    jitter = train.x[:200] + 0.5 * np.random.default_rng(0).standard_normal(train.x[:200].shape)
    assert judge.novelty(jitter, train.x) > 0.9  # far enough from every image: not a copy


def test_diversity_of_real_images_is_one_and_of_one_image_zero():
    train = data.load("digits")
    sevens = train.x[train.labels == 7]
    assert judge.diversity(sevens[:90], sevens[90:]) == pytest.approx(1.0, abs=0.1)
    assert judge.diversity(np.repeat(sevens[:1], 10, axis=0), sevens) == 0.0


def test_nearest_distance_excludes_self():
    x = np.array([[[[0.0]]], [[[1.0]]], [[[3.0]]]])
    np.testing.assert_allclose(judge.nearest_distance(x, x, exclude_self=True), [1, 1, 2])
    np.testing.assert_allclose(judge.nearest_distance(x, x), [0, 0, 0])


def test_evaluate_reports_the_three_measures():
    test = data.load("digits", "test")
    sevens = test.x[test.labels == 7]
    r = judge.evaluate(sevens, "digits", "7")
    assert r["label"] == "7" and r["n"] == len(sevens)
    assert r["accuracy"] >= 0.95 and 0.7 < r["diversity"] < 1.3 and r["novelty"] > 0.85


def test_unknown_attribute():
    with pytest.raises(ToydiffError, match="allowed: shape, colour, size, hat"):
        judge.judge_for("shapes").predict(np.zeros((1, 16, 16, 3)), "mood")
