"""The image chapters' exercise checkers: a right answer passes, each typical mistake is named."""

import numpy as np
import pytest

from toydiff.images import exercises as ex


def tubelets(clips, pf, p):
    n, f, h, w, c = clips.shape
    x = clips.reshape(n, f // pf, pf, h // p, p, w // p, p, c).transpose(0, 1, 3, 5, 2, 4, 6, 7)
    return x.reshape(n, -1, pf * p * p * c)


def test_tubelets_accepts_the_transformers_order():
    feedback = ex.check_tubelets(tubelets)
    assert feedback.passed, feedback.message


@pytest.mark.parametrize(
    ("order", "named"),
    [
        ((0, 1, 3, 5, 4, 6, 7, 2), "frame last"),
        ((0, 1, 5, 3, 2, 4, 6, 7), "column by column"),
    ],
)
def test_tubelets_names_the_typical_mistakes(order, named):
    def wrong(clips, pf, p):
        n, f, h, w, c = clips.shape
        x = clips.reshape(n, f // pf, pf, h // p, p, w // p, p, c).transpose(*order)
        return x.reshape(n, -1, pf * p * p * c)

    feedback = ex.check_tubelets(wrong)
    assert not feedback.passed and named in feedback.message
    plain = ex.check_tubelets(lambda clips, pf, p: np.reshape(clips, (2, 8, 96)))
    assert not plain.passed and "without moving the axes" in plain.message
