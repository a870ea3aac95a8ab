"""What a toy CLIP's shared space shows: zero-shot labels, attribute directions, nearest words.

- ``zero_shot``: label images by the caption they are most similar to. Each attribute value's
  score is the log-sum-exp of the scaled similarities of every caption with that value, so
  "is it red?" pools the evidence of every red caption.
- ``matched_pairs`` and ``direction``: pictures identical but for one attribute (the same
  shape, position and jitter, with and without a hat), and the mean difference of their
  embeddings: the story's "me with a hat" minus "me without a hat".
- ``nearest_words``: the vocabulary words whose text embeddings lie closest (by cosine) to a
  vector, e.g. to that difference.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from toydiff.errors import ToydiffError
from toydiff.images import data as image_data
from toydiff.images import text
from toydiff.images.clip import training_images
from toydiff.images.data import shapes


def full_captions(data: str) -> tuple[list[str], list[dict]]:
    """Every full caption of a data set and the attributes it names (48 shapes, 10 digits)."""
    return image_data.spec(data).full_captions()


def similarity(model, images, prompts) -> np.ndarray:
    """Cosine similarities (n, m) of images (n, H, W, C) and prompts (m,)."""
    return model.encode_images(images) @ model.encode_texts(list(prompts)).T


def zero_shot(model, images, attribute: str | None = None, prompts=None) -> np.ndarray | dict:
    """Zero-shot labels of images.

    Args:
        model: a ``CLIPModel``.
        images: (n, H, W, C).
        attribute: label this attribute (value ids); None labels every attribute (a dict).
        prompts: candidate captions to pick from instead (returns the index of the best).

    Returns:
        Indices into ``prompts``; or value ids (n,) of ``attribute``; or a dict of them.
    """
    data = model.config.data
    if prompts is not None:
        return np.argmax(similarity(model, images, prompts), axis=1)
    captions, attrs = full_captions(data)
    logits = (1.0 / model.temperature) * similarity(model, images, captions)  # (n, 48)
    values = image_data.spec(data).attributes
    names = tuple(values) if attribute is None else (attribute,)
    for name in names:
        if name not in values:
            raise ToydiffError(f"unknown attribute {name!r}; allowed: {', '.join(values)}")
    out = {}
    for name in names:
        member = np.array([[a[name] == v for a in attrs] for v in values[name]])  # (V, 48)
        scores = np.stack([logsumexp(logits[:, m], axis=1) for m in member], axis=1)
        out[name] = np.argmax(scores, axis=1).astype(np.int32)
    return out[attribute] if attribute is not None else out


def zero_shot_accuracy(model, split: str = "test") -> dict:
    """Zero-shot accuracy of every attribute on the held-out (or training) images."""
    images = training_images(model.config, split)
    predicted = zero_shot(model, images.x)
    return {a: float(np.mean(p == images.attributes[a])) for a, p in predicted.items()}


def matched_pairs(value: str, n: int = 200, size: int = shapes.SIZE, seed: int = 1):
    """Shapes identical but for one attribute: (with ``value`` (n, ...), without (n, ...)).

    The pairs share position and size jitter and every other attribute; the "without" image has
    another value of the attribute (for the hat: none). Drawn from the held-out index range.
    """
    attribute = next((a for a, vs in shapes.VALUES.items() if value in vs), None)
    if attribute is None or value == "no hat":
        words = [w for vs in shapes.VALUES.values() for w in vs if w != "no hat"]
        raise ToydiffError(f"unknown attribute value {value!r}; allowed: {', '.join(words)}")
    values = shapes.VALUES[attribute]
    idx = shapes.split("test")[:n] + seed * 100_000
    attrs, jitter = shapes.shape_attributes(shapes.SPLIT_SEED, idx)
    want = values.index(value)
    others = [k for k in range(len(values)) if k != want]
    with_value = {**attrs, attribute: np.full(n, want, np.int32)}
    without = {**attrs, attribute: np.array(others, np.int32)[np.arange(n) % len(others)]}
    return shapes.render(with_value, jitter, size), shapes.render(without, jitter, size)


def direction(model, value: str, n: int = 200) -> np.ndarray:
    """The mean embedding difference of matched pairs, with minus without ``value``; (D,)."""
    with_value, without = matched_pairs(value, n, model.config.size)
    return (model.encode_images(with_value) - model.encode_images(without)).mean(axis=0)


def nearest_words(model, vector, k: int | None = None) -> list[tuple[str, float]]:
    """The vocabulary words nearest to ``vector`` (D,) by cosine, best first: (word, cosine)."""
    vector = np.asarray(vector, np.float64).reshape(-1)
    norm = np.linalg.norm(vector)
    if vector.shape[0] != model.config.embed_dim or not np.isfinite(norm) or norm == 0:
        raise ToydiffError(f"expected a non-zero vector of {model.config.embed_dim} numbers")
    words = model.vocabulary
    cosines = model.encode_texts(list(words)) @ (vector / norm)
    order = np.argsort(-cosines)[: k or len(words)]
    return [(words[i], float(cosines[i])) for i in order]


def arithmetic(model, n: int = 200) -> dict:
    """For every attribute value of shapes: its direction's nearest words (the top three)."""
    values = [w for vs in shapes.VALUES.values() for w in vs if w != "no hat"]
    return {v: nearest_words(model, direction(model, v, n), 3) for v in values}


def check_words(model, prompts) -> None:
    """Raise ToydiffError if any prompt has a word problem (empty, unknown word, too long)."""
    text.tokenize(list(prompts), model.config.data)
