"""Chapter 10's numbers on the default image models, judged independently (slow: trains them).

Digits: the default run (500 steps, about 50 s here). Shapes, labelled by shape: the default run
(1,200 steps, about 1.5 min here), and the same data on the transformer (``--net dit``). All
come from the model cache, which the chapter-10 notebook shares in CI.
"""

import jax
import numpy as np
import pytest

from toydiff.errors import ToydiffError
from toydiff.images import judge
from toydiff.images.model import DIGITS, SHAPES
from toydiff.images.training import cached_train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits_model(seeded):
    return cached_train(seeded(DIGITS), progress=False)


@pytest.fixture(scope="module")
def shapes_model(seeded):
    return cached_train(seeded(SHAPES), progress=False)


@pytest.fixture(scope="module")
def digits_scores(digits_model):
    return {w: judge.score_model(digits_model, n_per_class=25, guidance=w) for w in (0.0, 1.0, 3.0)}


@pytest.mark.quality
def test_digits_at_the_default_guidance(digits_scores, quality):
    r = digits_scores[3.0]
    print({name: c["accuracy"] for name, c in r["per_class"].items()})
    quality.at_least("accuracy", r["accuracy"], 0.9)
    quality.at_least(
        "worst digit's accuracy", min(c["accuracy"] for c in r["per_class"].values()), 0.7
    )
    quality.at_least("diversity", r["diversity"], 0.5)
    quality.at_least("novelty", r["novelty"], 0.8)


@pytest.mark.quality
def test_digits_accuracy_is_chance_unguided_and_rises_with_w(digits_scores, quality):
    acc = [digits_scores[w]["accuracy"] for w in (0.0, 1.0, 3.0)]
    quality.at_most("accuracy at w = 0", acc[0], 0.25)  # chance is 0.10
    quality.above("accuracy, w = 1 minus w = 0", acc[1] - acc[0], 0)
    quality.above("accuracy, w = 3 minus w = 1", acc[2] - acc[1], 0)


@pytest.mark.quality
def test_the_exact_oracle_only_returns_training_digits(digits_model, quality):
    r = judge.score_model(digits_model, n_per_class=12, exact=True)
    quality.at_most("the oracle's novelty", r["novelty"], 0.05)  # every sample a training image
    quality.at_least("the oracle's accuracy", r["accuracy"], 0.95)


@pytest.mark.quality
def test_a_negative_class_lowers_the_share_judged_as_it(digits_model, quality):
    r = judge.negative_effect(digits_model, n=1280, sampler="ddim", steps=16)
    print(r)
    # "1, not 8": the share of 1s judged as 8s falls
    quality.below(
        "share judged as the negative, with minus without",
        r["negative_share"] - r["plain_share"],
        0,
    )
    quality.at_least("accuracy with a negative class", r["negative_accuracy"], 0.9)


@pytest.mark.quality
def test_shapes_at_the_default_guidance(shapes_model, quality):
    r = judge.score_model(shapes_model, n_per_class=40, guidance=3.0)
    print({name: c["accuracy"] for name, c in r["per_class"].items()})
    # the judged images come back, 40 of each class in order, and judge the same again
    assert r["samples"].shape == (120, 16, 16, 3) and np.abs(r["samples"]).max() <= 1.0
    again = judge.evaluate(r["samples"][40:80], "shapes", shapes_model.class_names[1])
    assert again["accuracy"] == r["per_class"][shapes_model.class_names[1]]["accuracy"]
    quality.at_least("accuracy", r["accuracy"], 0.9)
    quality.at_least("diversity", r["diversity"], 0.5)
    quality.at_least("novelty", r["novelty"], 0.8)
    exact = judge.score_model(shapes_model, n_per_class=10, exact=True)
    quality.at_most("the oracle's novelty", exact["novelty"], 0.05)


@pytest.mark.quality
def test_the_shapes_transformer_matches_the_unet(shapes_model, seeded, quality):
    from toydiff.images import data as image_data
    from toydiff.images.bench import side_by_side

    dit_model = cached_train(seeded(image_data.spec("shapes").recipes["dit"]), progress=False)
    assert dit_model.config.network == "dit" and dit_model.config.data == "shapes"
    unet, dit = side_by_side([shapes_model, dit_model], n_per_class=40)
    print(
        {k: v for k, v in unet.items() if k != "samples"},
        {k: v for k, v in dit.items() if k != "samples"},
    )
    assert (unet["network"], dit["network"]) == ("unet", "dit") and dit["params"] > 0
    assert dit["samples"].shape == (120, 16, 16, 3) and dit["sample_images_per_s"] > 0
    quality.at_least(
        "the transformer's accuracy, minus the U-Net's", dit["accuracy"] - unet["accuracy"], -0.05
    )
    quality.at_least("the transformer's accuracy", dit["accuracy"], 0.9)


@pytest.mark.quality
def test_guidance_grid_is_judged_the_same_way(digits_model, quality):
    from toydiff.images.widgets import image_guidance_explorer

    view = image_guidance_explorer(digits_model, label="7", n=16, steps=16)
    assert view.image.value[:4] == b"\x89PNG"
    quality.at_least("the grid's accuracy at w = 3", view.accuracy, 0.8)
    before = view.image.value
    view.w.value = 0.0
    assert view.image.value != before
    quality.below("the grid's accuracy at w = 0", view.accuracy, 1.0)
    view.negative.value = "1"
    assert view.negative_share is not None
    assert np.isfinite(view.latency)


def test_an_image_model_draws_a_grid_by_default(digits_model):
    x = digits_model.sample(jax.random.key(0), steps=4, sampler="ddim", label="3")
    assert x.shape == (5, 64, 8, 8, 1)  # 64 images when no n is given, not the 2D lab's 2,000


def test_any_n_samples_in_fixed_chunks_with_the_same_result(digits_model):
    # A chunk and two more images: a full chunk and one of 2 padded to 8; DDIM is deterministic
    # given the starting noise, and each image is denoised on its own, so chunking changes
    # nothing. (16 DDIM steps at w = 1: the same compiled sampler as the negative-class test's.)
    chunk = digits_model.sample_chunk
    assert chunk == 512  # sized by work: 4.1 MFLOP an image, 2.5 GFLOP a call on a CPU
    kw = {"steps": 16, "sampler": "ddim", "label": "3", "guidance": 1.0}
    x = np.asarray(digits_model.sample(jax.random.key(3), n=chunk + 2, **kw))
    assert x.shape == (17, chunk + 2, 8, 8, 1)
    for part in (slice(0, 128), slice(chunk, chunk + 2), slice(5, 9)):
        alone = digits_model.sample(jax.random.key(9), x_init=x[0, part], **kw)
        np.testing.assert_allclose(np.asarray(alone), x[:, part], atol=1e-4)
    with pytest.raises(ToydiffError, match="2 labels given for 130 samples"):
        digits_model.sample(jax.random.key(3), n=130, label=["1", "2"])
