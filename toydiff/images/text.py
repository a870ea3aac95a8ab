"""Words for the toy CLIP: a fixed vocabulary, a tokenizer, and prompts read as attributes.

A caption names what an image shows and never what it lacks: "a small red circle wearing a
hat", "a large blue square", "a photo of the digit seven". The encoder reads only the content
words, the attribute values; the filler words (a, an, the, of, photo, digit, wearing, with) are
skipped, so the order of words does not matter and "hat" is the one word that means a hat.

Each data set with captions declares its vocabulary in its spec (``DataSpec.words``), each word
with the attribute value it names; token ids follow that order (0 is padding). For example:

- shapes: circle square triangle red green blue yellow small large hat (ids 1 to 10);
- digits: zero one two three four five six seven eight nine (ids 1 to 10).

A prompt may name any subset of an image's attributes (at most one value of each); the image
model was trained with attribute phrases dropped from captions, so an attribute the prompt does
not name is left free. A negative prompt is how to forbid one.
"""

from __future__ import annotations

import difflib

import numpy as np

from toydiff.errors import ToydiffError
from toydiff.images import data as image_data
from toydiff.images.data.base import uniform

FILLER = ("a", "an", "the", "of", "photo", "digit", "wearing", "with", "moving")
MAX_WORDS = 16  # a prompt longer than this is refused
MAX_TOKENS = 6  # content words the encoder reads
PAD = 0


def _spec(data: str):
    """The spec of a data set with captions; ToydiffError otherwise."""
    spec = image_data.spec(data)
    if not spec.captioned:
        captioned = [n for n, s in image_data.REGISTRY.items() if s.captioned]
        raise ToydiffError(
            f"{data} has no captions, so no words; data sets with captions: {', '.join(captioned)}"
        )
    return spec


def vocabulary(data: str) -> tuple[str, ...]:
    """The content words of a data set, in token-id order (id = position + 1)."""
    return _spec(data).vocabulary


def captions(images) -> list[str]:
    """One caption per image of an ``ImageSet``, built from its attributes."""
    caption = _spec(images.name).caption
    return [caption(images.attribute_names(i)) for i in range(len(images.x))]


def words(prompt: str) -> list[str]:
    """The lower-case words of a prompt, punctuation removed."""
    cleaned = "".join(c if c.isalnum() else " " for c in str(prompt).lower())
    return cleaned.split()


def content_words(prompt: str, data: str) -> list[str]:
    """The prompt's content words, checked against the vocabulary.

    Raises:
        ToydiffError: an empty prompt, one too long, or an unknown word (naming the nearest
            known word and the vocabulary).
    """
    vocab = vocabulary(data)
    found = words(prompt)
    if not found:
        raise ToydiffError(f"the prompt is empty; describe an image, e.g. {example(data)!r}")
    if len(found) > MAX_WORDS:
        raise ToydiffError(
            f"the prompt has {len(found)} words; the text encoder reads at most {MAX_WORDS}"
        )
    content = []
    for word in found:
        if word in FILLER:
            continue
        if word not in vocab:
            near = difflib.get_close_matches(word, vocab + FILLER, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise ToydiffError(
                f"unknown word {word!r} in {prompt!r}; {hint}known words: {', '.join(vocab)}"
            )
        content.append(word)
    if not content:
        raise ToydiffError(f"{prompt!r} names nothing to draw; e.g. {example(data)!r}")
    if len(content) > MAX_TOKENS:
        raise ToydiffError(
            f"{prompt!r} has {len(content)} content words; the encoder reads at most {MAX_TOKENS}"
        )
    return content


def example(data: str) -> str:
    """An example prompt for a data set."""
    return _spec(data).example


def tokenize(prompts, data: str) -> np.ndarray:
    """Token ids of prompts, sorted (word order carries no meaning here) and padded with 0:
    shape (n, MAX_TOKENS) int32 (a str gives (T,))."""
    single = isinstance(prompts, str)
    vocab = vocabulary(data)
    rows = [
        sorted(vocab.index(w) + 1 for w in content_words(p, data))
        for p in ([prompts] if single else prompts)
    ]
    out = np.zeros((len(rows), MAX_TOKENS), np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out[0] if single else out


def attributes(prompt: str, data: str) -> dict:
    """The attributes a prompt names, e.g. {"size": "small", "shape": "circle", "hat": "hat"}.

    Raises:
        ToydiffError: a word problem (see ``content_words``) or two values of one attribute.
    """
    named = {}
    meaning = _spec(data).words
    for word in content_words(prompt, data):
        attribute, value = meaning[word]
        if named.get(attribute, value) != value:
            raise ToydiffError(
                f"{prompt!r} names two values of {attribute}: {named[attribute]!r} and {value!r}"
            )
        named[attribute] = value
    return named


def dropped_captions(images, p: float, seed: int = 7) -> list[str]:
    """The images' captions, each droppable phrase (for shapes: size, colour and hat; the shape
    stays) dropped with probability p.

    Whether image i loses a phrase depends only on (seed, i, phrase), so every process and every
    run agrees.

    Args:
        images: an ``ImageSet`` (its ``index`` numbers the draws).
        p: the drop probability.
        seed: the stream of the draws.

    Returns:
        One caption per image.
    """
    spec = _spec(images.name)
    counters = np.asarray(images.index, np.uint64)[:, None] * np.uint64(8) + np.arange(
        len(spec.droppable), dtype=np.uint64
    )
    drop = uniform(seed, counters) < p  # (n, droppable)
    out = []
    for i in range(len(images.x)):
        named = images.attribute_names(i)
        for k, attribute in enumerate(spec.droppable):
            if drop[i, k]:
                del named[attribute]
        out.append(spec.caption(named))
    return out
