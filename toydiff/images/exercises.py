"""Exercise checkers for the image chapters, on the machinery of ``toydiff.exercises``.

- chapter 10: ``check_novelty``: the share of samples that are not copies of a training image.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import numpy as np

from toydiff.exercises import Feedback, _Case, _check, _key, _np
from toydiff.images import judge


@functools.cache
def _novelty_cases() -> tuple[_Case, ...]:
    """Images near and far from a small training set, and the typical wrong answers."""
    k_train, k_far, k_near = jax.random.split(_key(10), 3)
    train = np.asarray(jax.random.normal(k_train, (40, 4, 4, 1)))
    near = train[:12] + 0.05 * np.asarray(jax.random.normal(k_near, (12, 4, 4, 1)))
    far = train[12:30] + 1.2 * np.asarray(jax.random.normal(k_far, (18, 4, 4, 1)))
    samples = np.concatenate([near, far]).astype(np.float32)
    threshold = float(judge.copy_threshold(train))
    flat_s, flat_t = samples.reshape(30, -1), train.reshape(40, -1)
    d = np.sqrt(((flat_s[:, None] - flat_t[None]) ** 2).sum(-1))
    want = _np(judge.novelty(samples, train, threshold))
    mistakes = (
        ("you returned the share of copies; novelty is the share that are NOT copies", 1 - want),
        (
            "compared squared distances with the threshold: take the square root first",
            _np(np.mean(d.min(1) ** 2 >= threshold)),
        ),
        (
            "used the mean distance to the training images, not the nearest one",
            _np(np.mean(d.mean(1) >= threshold)),
        ),
        (
            "used the farthest training image instead of the nearest one",
            _np(np.mean(d.max(1) >= threshold)),
        ),
    )
    return (_Case((samples, train.astype(np.float32), threshold), want, mistakes),)


def check_novelty(fn: Callable) -> Feedback:
    """Check ``fn(samples, train_x, threshold) -> float``: the share of samples that are new.

    A sample is a copy when its nearest training image (Euclidean distance over all pixels) is
    closer than ``threshold``; novelty is the share of samples that are not copies
    (``toydiff.images.judge.novelty``).

    Args:
        fn: the learner's function; samples (n, H, W, C) and train_x (m, H, W, C) are float32
            NumPy arrays and threshold a Python float.

    Returns:
        A ``Feedback``. Named mistakes: the share of copies instead; squared distances; the mean
        or the farthest distance instead of the nearest.
    """
    success = "correct: the share of samples farther than the threshold from every training image"
    return _check(fn, "novelty(samples, train_x, threshold)", _novelty_cases(), success)


CHECKERS: dict[str, Callable[[Callable], Feedback]] = {"novelty": check_novelty}
"""Every image-chapter checker by exercise name."""
