"""The toy CLIP: its loss, temperature, encoders, and the shared space it learns (slow part)."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from toydiff.errors import CheckpointError, ToydiffError
from toydiff.images import clip, data, shared_space


def test_the_loss_is_clips_with_one_positive_per_row():
    logits = jax.random.normal(jax.random.key(0), (5, 5)) * 3
    same = jnp.eye(5, dtype=bool)
    want = 0.5 * (
        -jnp.diag(jax.nn.log_softmax(logits, axis=1))
        - jnp.diag(jax.nn.log_softmax(logits.T, axis=1))
    )
    np.testing.assert_allclose(clip.symmetric_cross_entropy(logits, same), want, rtol=1e-6)


def test_repeated_captions_are_positives_and_the_minimum_is_log_of_their_count():
    captions = np.array([0, 0, 1, 2, 2, 2])
    same = jnp.asarray(captions[:, None] == captions[None, :])
    perfect = jnp.where(same, 50.0, -50.0)  # every matching pair alike, every other far
    counts = same.sum(1)
    np.testing.assert_allclose(
        clip.symmetric_cross_entropy(perfect, same), np.log(counts), atol=1e-5
    )

    # At these logits our loss is at its minimum; plain CLIP (only the diagonal positive) would
    # still push two pictures of the same caption apart.
    def grad(positives):
        return jax.grad(lambda lg: clip.symmetric_cross_entropy(lg, positives).mean())(perfect)

    assert float(jnp.abs(grad(same)).max()) < 1e-6
    assert float(jnp.abs(grad(jnp.eye(6, dtype=bool))).max()) > 0.01


def test_temperature_is_learned_in_log_space_and_clamped():
    model = clip.ToyCLIP(clip.clip_config("digits"))
    assert float(model.scale()) == pytest.approx(1 / 0.07, rel=1e-5)
    model.log_scale[...] = jnp.asarray(10.0)
    assert float(model.scale()) == pytest.approx(clip.MAX_SCALE)


def test_embeddings_are_unit_vectors_of_the_documented_size():
    cfg = clip.clip_config("shapes", width=16, embed_dim=8)
    graphdef, params = nnx.split(clip.ToyCLIP(cfg), nnx.Param)
    m = clip.CLIPModel(cfg, graphdef, params, np.zeros(1))
    z = m.encode_images(data.load("shapes", n=4).x)
    t = m.encode_texts(["a red circle", "a large square wearing a hat"])
    assert z.shape == (4, 8) and t.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1, rtol=1e-5)
    with pytest.raises(ToydiffError, match="reads images of shape"):
        m.encode_images(np.zeros((2, 8, 8, 1)))
    with pytest.raises(ToydiffError, match="unknown word 'purple'"):
        m.encode_texts("a purple circle")


def test_a_clip_is_not_an_image_run(tmp_path):
    with pytest.raises(CheckpointError, match="no run at"):
        clip.CLIPModel.load(tmp_path)


@pytest.fixture(scope="module")
def shapes_clip(seeded):
    return clip.cached_train(seeded(clip.clip_config("shapes")), progress=False)


@pytest.mark.slow
@pytest.mark.quality
def test_zero_shot_on_held_out_shapes(shapes_clip, quality):
    accuracy = shared_space.zero_shot_accuracy(shapes_clip)
    print(accuracy)
    for attribute, value in accuracy.items():
        quality.at_least(f"zero-shot accuracy, {attribute}", value, 0.9)


@pytest.mark.slow
@pytest.mark.quality
def test_zero_shot_on_held_out_digits(seeded, quality):
    model = clip.cached_train(seeded(clip.clip_config("digits")), progress=False)
    quality.at_least(
        "zero-shot accuracy, digit", shared_space.zero_shot_accuracy(model)["digit"], 0.9
    )


@pytest.mark.slow
@pytest.mark.quality
def test_every_attribute_word_ranks_first_for_its_matched_pairs(shapes_clip, quality):
    ranked = shared_space.arithmetic(shapes_clip)
    print({v: r[0] for v, r in ranked.items()})
    for value, words in ranked.items():  # each value's three nearest words, best first
        rival = next(cosine for word, cosine in words if word != value)
        ours = dict(words).get(value, words[-1][1])  # not in the top three: at most the third's
        # positive exactly when the value's own word ranks first
        quality.above(f"cosine lead of '{value}' over the next word", ours - rival, 0)


@pytest.mark.slow
def test_matched_pairs_differ_in_one_attribute_only():
    with_hat, without = shared_space.matched_pairs("hat", n=10)
    judge = __import__("toydiff.images.judge", fromlist=["judge_for"]).judge_for("shapes")
    assert np.all(judge.predict(with_hat, "hat") == 1) and np.all(
        judge.predict(without, "hat") == 0
    )
    for attribute in ("shape", "colour", "size"):
        np.testing.assert_array_equal(
            judge.predict(with_hat, attribute), judge.predict(without, attribute)
        )


def test_config_checks():
    with pytest.raises(ToydiffError, match="unknown image data"):
        clip.clip_config("faces")
    assert dataclasses.asdict(clip.clip_config("digits"))["size"] == 8
    assert math.isfinite(clip.MAX_SCALE)
