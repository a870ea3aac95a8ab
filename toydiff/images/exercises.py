"""Exercise checkers for the image chapters, on the machinery of ``toydiff.exercises``.

- chapter 1: ``check_contrastive_loss``: CLIP's symmetric loss with repeated captions;
- chapter 10: ``check_novelty``: the share of samples that are not copies of a training image;
- chapter 11: ``check_negative_prompt``: guidance toward a prompt and away from another;
- chapter 12: ``check_tubelets``: a clip cut into the transformer's tokens.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from toydiff.exercises.checking import Case, Feedback, as_numpy, chapter_key, check
from toydiff.exercises.sampling import negative_cases
from toydiff.images import judge
from toydiff.nets import dit


@functools.cache
def _novelty_cases() -> tuple[Case, ...]:
    """Images near and far from a small training set, and the typical wrong answers."""
    k_train, k_far, k_near = jax.random.split(chapter_key(10), 3)
    train = np.asarray(jax.random.normal(k_train, (40, 4, 4, 1)))
    near = train[:12] + 0.05 * np.asarray(jax.random.normal(k_near, (12, 4, 4, 1)))
    far = train[12:30] + 1.2 * np.asarray(jax.random.normal(k_far, (18, 4, 4, 1)))
    samples = np.concatenate([near, far]).astype(np.float32)
    threshold = float(judge.copy_threshold(train))
    flat_s, flat_t = samples.reshape(30, -1), train.reshape(40, -1)
    d = np.sqrt(((flat_s[:, None] - flat_t[None]) ** 2).sum(-1))
    want = as_numpy(judge.novelty(samples, train, threshold))
    mistakes = (
        ("you returned the share of copies; novelty is the share that are NOT copies", 1 - want),
        (
            "compared squared distances with the threshold: take the square root first",
            as_numpy(np.mean(d.min(1) ** 2 >= threshold)),
        ),
        (
            "used the mean distance to the training images, not the nearest one",
            as_numpy(np.mean(d.mean(1) >= threshold)),
        ),
        (
            "used the farthest training image instead of the nearest one",
            as_numpy(np.mean(d.max(1) >= threshold)),
        ),
    )
    return (Case((samples, train.astype(np.float32), threshold), want, mistakes),)


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
    return check(fn, "novelty(samples, train_x, threshold)", _novelty_cases(), success)


@functools.cache
def _contrastive_cases() -> tuple[Case, ...]:
    """A batch with repeated captions, and the typical wrong losses."""
    from toydiff.images.clip import symmetric_cross_entropy

    captions = np.array([0, 1, 1, 2, 3, 3, 3, 4])
    same = captions[:, None] == captions[None, :]
    logits = 4.0 * np.asarray(jax.random.normal(chapter_key(1), (8, 8)), np.float32)

    def loss(lg, positives):
        return as_numpy(np.mean(symmetric_cross_entropy(jnp.asarray(lg), jnp.asarray(positives))))

    log_i = np.asarray(jax.nn.log_softmax(logits, axis=1), np.float64)
    log_t = np.asarray(jax.nn.log_softmax(logits.T, axis=1), np.float64)
    targets = same / same.sum(1, keepdims=True)
    mistakes = (
        (
            "only one direction: average the image-to-text and the text-to-image losses",
            as_numpy(np.mean(-(targets * log_i).sum(1))),
        ),
        (
            "only the diagonal counts as a match: images whose captions are the same are "
            "positives too (spread each row's target over all its matching captions)",
            loss(logits, np.eye(8, dtype=bool)),
        ),
        (
            "the target is not a distribution: divide each row's positives by their count",
            as_numpy(np.mean(0.5 * (-(same * log_i).sum(1) - (same * log_t).sum(1)))),
        ),
        ("summed the two directions: take their mean", 2 * loss(logits, same)),
        ("summed over the batch: take the mean", 8 * loss(logits, same)),
    )
    return (Case((logits, same), loss(logits, same), mistakes),)


def check_contrastive_loss(fn: Callable) -> Feedback:
    """Check ``fn(logits, same) -> loss``: CLIP's symmetric loss with repeated captions.

    Args:
        fn: the learner's function; logits (B, B) float32 (images by rows, captions by
            columns, already scaled by the temperature) and same (B, B) bool (caption i equals
            caption j); it returns the scalar loss, the mean over the batch of the average of
            the image-to-text and text-to-image cross entropies, each row's target uniform
            over its matching captions (``toydiff.images.clip.symmetric_cross_entropy``).

    Returns:
        A ``Feedback``. Named mistakes: one direction only; only the diagonal as positive;
        targets not normalised; the directions summed; the batch summed.
    """
    success = "correct: the symmetric contrastive loss, every matching caption a positive"
    return check(fn, "contrastive_loss(logits, same)", _contrastive_cases(), success)


def check_negative_prompt(fn: Callable) -> Feedback:
    """Check ``fn(eps_c, eps_neg, w) -> eps`` on images: guidance toward a prompt, away from a
    negative prompt, eps = eps_neg + w (eps_c - eps_neg).

    Args:
        fn: the learner's function; eps_c and eps_neg are float32 arrays (4, 16, 16, 3) and w a
            float.

    Returns:
        A ``Feedback``, with chapter 9's named mistakes.
    """
    success = "correct: eps_neg + w (eps_c - eps_neg), the negative prompt as the base"
    cases = negative_cases(11, (4, 16, 16, 3))
    return check(fn, "negative_prompt(eps_c, eps_neg, w)", cases, success)


TUBELET = dit.DiTConfig(size=8, in_channels=3, frames=4, patch=4, patch_frames=2)
"""The exercise's clips: 4 frames of 8x8 RGB, cut into tubelets of 2 frames x 4 x 4 pixels."""


@functools.cache
def _tubelet_cases() -> tuple[Case, ...]:
    """Random clips (2, 4, 8, 8, 3), their tokens, and the typical wrong orders."""
    c = TUBELET
    clips = np.asarray(jax.random.normal(chapter_key(12), (2, *c.dim)), np.float32)
    want = as_numpy(dit.patchify(clips, c))  # (2, 8, 96)
    blocks = clips.reshape(2, 2, 2, 2, 4, 2, 4, 3)  # (n, f, pf, rows, p, cols, p, C)
    mistakes = (
        (
            "flattened each tubelet with the frame last: keep (frame, row, column, channel)",
            as_numpy(blocks.transpose(0, 1, 3, 5, 4, 6, 7, 2).reshape(2, 8, 96)),
        ),
        (
            "ordered the tokens column by column: go frame, then row, then column",
            as_numpy(blocks.transpose(0, 1, 5, 3, 2, 4, 6, 7).reshape(2, 8, 96)),
        ),
        (
            "reshaped without moving the axes: the tokens are rows of pixels, not tubelets",
            as_numpy(clips.reshape(2, 8, 96)),
        ),
    )
    return (Case((clips, 2, 4), want, mistakes),)


def check_tubelets(fn: Callable) -> Feedback:
    """Check ``fn(clips, pf, p) -> tokens``: clips (n, F, H, W, C) cut into tubelets of pf
    frames x p x p pixels, each flattened to one token, (n, F/pf * H/p * W/p, pf * p * p * C),
    tokens in (frame, row, column) order and each flattened as (frame, row, column, channel)
    (``toydiff.nets.dit.patchify``).

    Returns:
        A ``Feedback``. Named mistakes: the frame axis flattened last; tokens column-major; a
        plain reshape.
    """
    success = "correct: 8 tubelets of 96 numbers, in the transformer's own order"
    return check(fn, "tubelets(clips, pf, p)", _tubelet_cases(), success)


CHECKERS: dict[str, Callable[[Callable], Feedback]] = {
    "contrastive_loss": check_contrastive_loss,
    "novelty": check_novelty,
    "negative_prompt": check_negative_prompt,
    "tubelets": check_tubelets,
}
"""Every image-chapter checker by exercise name."""
