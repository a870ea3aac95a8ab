"""The toy CLIP's vocabulary, tokenizer and prompt reading, and every word mistake."""

import numpy as np
import pytest

from toydiff.errors import ToydiffError
from toydiff.images import text


def test_vocabularies():
    assert text.vocabulary("shapes") == (
        "circle", "square", "triangle", "red", "green", "blue", "yellow", "small", "large", "hat",
    )  # fmt: skip
    assert text.vocabulary("digits")[7] == "seven"


def test_tokens_skip_filler_and_pad():
    t = text.tokenize("a small red circle wearing a hat", "shapes")
    assert t.shape == (text.MAX_TOKENS,) and t.dtype == np.int32
    np.testing.assert_array_equal(t[:4], [1, 4, 8, 10])  # circle, red, small, hat: sorted
    assert np.all(t[4:] == text.PAD)
    assert text.tokenize(["a photo of the digit seven"], "digits")[0, 0] == 8
    np.testing.assert_array_equal(
        text.tokenize("Red, small CIRCLE!", "shapes"), text.tokenize("a small red circle", "shapes")
    )


def test_attributes_of_a_prompt():
    assert text.attributes("a large blue triangle wearing a hat", "shapes") == {
        "size": "large", "colour": "blue", "shape": "triangle", "hat": "hat",
    }  # fmt: skip
    assert text.attributes("a photo of the digit four", "digits") == {"digit": "4"}


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("", "the prompt is empty"),
        ("   ", "the prompt is empty"),
        ("a purple circle", "unknown word 'purple'"),
        ("a smal red circle", "did you mean 'small'"),
        ("a " * 20 + "circle", "at most 16"),
        ("a the of", "names nothing to draw"),
        ("a red blue circle", "two values of colour"),
        ("red red red red red red red circle", "at most 6"),
    ],
)
def test_word_mistakes(prompt, message):
    with pytest.raises(ToydiffError, match=message):
        text.attributes(prompt, "shapes")


def test_unknown_word_lists_the_vocabulary():
    with pytest.raises(ToydiffError, match="known words: circle, square, triangle, red"):
        text.tokenize("a big circle", "shapes")
    with pytest.raises(ToydiffError, match="unknown word 'circle'"):
        text.tokenize("a circle", "digits")
