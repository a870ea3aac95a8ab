"""Text to image: the shapes model conditioned on the frozen toy CLIP (slow: trains both).

Judged by the attribute checks (colour and hat from the pixels, the shape by its own
classifier), which use neither the CLIP nor the diffusion model.
"""

import numpy as np
import pytest

from toydiff.errors import ToydiffError
from toydiff.images import clip, judge
from toydiff.images.training import text_model, text_prompts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(seeded, train_seed):
    shapes_clip = clip.cached_train(seeded(clip.clip_config("shapes")), progress=False)
    return text_model(shapes_clip, seed=train_seed, progress=False)


@pytest.fixture(scope="module")
def seen(model):
    return text_prompts(model)[:8]


@pytest.fixture(scope="module")
def seen_scores(model, seen):
    # 256 pictures at the default w (0.93 here, so the 0.9 bar is about 2 standard errors
    # away), 64 at w = 0 and 1
    return {
        w: judge.score_prompts(model, seen, n=8 if w < 3 else 32, guidance=w) for w in (0, 1, 3)
    }


@pytest.mark.quality
def test_prompts_seen_in_training_at_the_default_guidance(seen_scores, quality):
    r = seen_scores[3]  # the default w
    print({p: s["prompt_accuracy"] for p, s in r["per_prompt"].items()})
    quality.at_least("prompt accuracy at w = 3", r["prompt_accuracy"], 0.9)


@pytest.mark.quality
def test_accuracy_rises_with_w(seen_scores, quality):
    acc = [seen_scores[w]["prompt_accuracy"] for w in (0, 1, 3)]
    print(acc)
    quality.below("prompt accuracy at w = 0", acc[0], 0.2)
    quality.above("prompt accuracy at w = 1", acc[1], 0.2)
    quality.at_least("prompt accuracy, w = 3 minus w = 1", acc[2] - acc[1], -0.05)


@pytest.mark.quality
def test_held_out_combinations_are_reported(model, quality):
    held = text_prompts(model, held_out=True)
    assert "a small blue triangle wearing a hat" in held and "a small yellow circle" in held
    seen_captions = set(text_prompts(model))
    assert not seen_captions & set(held)
    r = judge.score_prompts(model, held, n=16)
    assert r["samples"].shape == (16 * len(held), 16, 16, 3)  # the judged images, 16 per prompt
    again = judge.prompt_scores(r["samples"][-16:], held[-1])
    assert again["prompt_accuracy"] == r["per_prompt"][held[-1]]["prompt_accuracy"]
    print(
        "held-out prompt accuracy",
        r["prompt_accuracy"],
        {p: s["prompt_accuracy"] for p, s in r["per_prompt"].items()},
    )
    # Reported, not hidden. Combinations never seen in training come out right well above chance
    # (about 0.04: every named shape, colour, size and hat right), but how far above depends on
    # the training seed: 0.70, 0.59 and 0.34 over seeds 0-2 (docs/margins.md), so the claim is
    # five times chance, not the 0.7 of seed 0.
    quality.at_least("held-out prompt accuracy", r["prompt_accuracy"], 0.2)


@pytest.mark.quality
def test_a_negative_prompt_removes_the_hat(model, quality):
    r = judge.negative_prompt_effect(model)
    print(r)
    quality.at_most("hat share with the negative prompt", r["negative_hat_share"], 0.05)
    quality.below(
        "hat share, with minus without the negative prompt",
        r["negative_hat_share"] - r["plain_hat_share"],
        0,
    )


@pytest.mark.quality
def test_the_hat_grows_with_guidance(model, quality):
    shares = [
        judge.score_prompts(model, ["a large red circle wearing a hat"], n=32, guidance=w)[
            "hat_share"
        ]
        for w in (0.0, 1.0, 3.0)
    ]
    print(shares)
    quality.above("hat share, w = 1 minus w = 0", shares[1] - shares[0], 0)
    quality.at_least("hat share, w = 3 minus w = 1", shares[2] - shares[1], 0)
    # 1.00, 1.00 and 0.875 of 32 over training seeds 0-2 (docs/margins.md): most, not 90%
    quality.at_least("hat share at w = 3", shares[2], 0.8)


def test_the_oracle_returns_training_images_that_match(model):
    x = np.asarray(
        model.sample(__import__("jax").random.key(0), n=8, label="a blue square", exact=True)[-1]
    )
    s = judge.prompt_scores(np.clip(x, -1, 1), "a blue square")
    assert s["prompt_accuracy"] == 1.0
    assert judge.novelty(x, model.dataset.x) == 0.0


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("", "empty"),
        ("a violet circle", "unknown word 'violet'"),
        ("circle " * 17, "at most 16"),
    ],
)
def test_prompt_mistakes_before_any_work(model, prompt, message):
    with pytest.raises(ToydiffError, match=message):
        model.sample(__import__("jax").random.key(0), n=2, label=prompt)


@pytest.mark.quality
def test_prompt_box_redraws_and_shows_word_mistakes(model, quality):
    from toydiff.images.widgets import prompt_explorer

    view = prompt_explorer(model, "a large red circle wearing a hat", n=8, steps=8)
    first = view.image.value
    assert first[:4] == b"\x89PNG"
    quality.at_least("the prompt box's prompt accuracy", view.scores["prompt_accuracy"], 0.5)
    view.w.value = 0.0
    assert view.image.value != first
    view.prompt.value = "a large purpel circle"
    assert view.error is not None
    assert "unknown word 'purpel'" in view.readout.value
    view.prompt.value = "a small blue square"
    assert view.error is None and view.scores["prompt"] == "a small blue square"
