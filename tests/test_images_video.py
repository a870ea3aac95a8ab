"""Text to video: the clip transformer on the frozen clip CLIP (slow: trains both, once per run).

Judged by the clip judge (colour and direction from the pixels, the shape by its own silhouette
classifier, consistency across frames), which uses neither the CLIP nor the diffusion model.
Sampled as the story and chapter 12 do: 50 DDIM steps (Euler along the predicted velocity).
"""

import jax
import numpy as np
import pytest

from toydiff.images import clip, judge
from toydiff.images.training import text_model, text_prompts

pytestmark = pytest.mark.slow

SAMPLING = {"sampler": "ddim", "steps": 50}


@pytest.fixture(scope="module")
def model(seeded, train_seed):
    clips_clip = clip.cached_train(seeded(clip.clip_config("clips")), progress=False)
    return text_model(clips_clip, seed=train_seed, progress=False)


@pytest.fixture(scope="module")
def seen_scores(model):
    seen = text_prompts(model)[:12]  # 12 of the 46 seen captions, 16 clips each at w = 3
    return judge.score_prompts(model, seen, n=16, **SAMPLING)


@pytest.mark.quality
def test_the_clip_clip_knows_the_motion_words(seeded, quality):
    from toydiff.images import shared_space

    clips_clip = clip.cached_train(seeded(clip.clip_config("clips")), progress=False)
    acc = shared_space.zero_shot_accuracy(clips_clip)
    print(acc)  # here: direction 100%, colour 100%, shape 87%
    quality.at_least("zero-shot direction", acc["direction"], 0.95)
    quality.at_least("zero-shot colour", acc["colour"], 0.95)
    quality.at_least("zero-shot shape", acc["shape"], 0.75)


def test_the_video_model_is_a_flow_matching_transformer(model):
    assert model.config.network == "dit" and model.sample_shape == (8, 16, 16, 3)
    assert (model.config.process, model.config.objective) == ("flow", "x0")
    assert model.config.held_out and model.config.condition == "text"


NOT_YET = (
    "issue 18's bar, not met yet by the default video model: measured here 91% consistent on "
    "seen prompts (bar 95%), and with no prompt 16% (50 DDIM steps) or 44% (64 DDPM steps) "
    "(bar 90%); see docs/images.md"
)
"""Two of issue 18's checks the recipe does not reach yet. They run in every CI run and are
reported as expected failures; strict, so the day they pass, CI says so and the mark goes."""


@pytest.mark.quality
def test_seen_prompts_get_their_direction_colour_and_shape(seen_scores, quality):
    r = seen_scores
    print({k: v for k, v in r.items() if isinstance(v, float)})
    for attribute in ("direction", "colour", "shape"):
        quality.at_least(f"{attribute} accuracy at w = 3", r[f"{attribute}_accuracy"], 0.9)
    quality.at_least("clips consistent across frames, the bar so far", r["consistent_share"], 0.8)


@pytest.mark.quality
@pytest.mark.xfail(reason=NOT_YET, strict=True)
def test_seen_prompts_are_consistent_across_frames(seen_scores, quality):
    quality.at_least("clips consistent across frames", seen_scores["consistent_share"], 0.95)


@pytest.mark.quality
def test_a_negative_direction_removes_that_motion(model, quality):
    r = judge.negative_direction_effect(model, "a red circle", "left", n=64, **SAMPLING)
    print(r)
    quality.at_most("share moving left with the negative prompt", r["negative_share"], 0.05)
    quality.below("... and fewer than with the plain prompt", r["negative_share"], r["plain_share"])


@pytest.fixture(scope="module")
def unprompted(model):
    """64 clips with no prompt (the null condition), and the share the judge finds consistent."""
    x = np.clip(np.asarray(model.sample(jax.random.key(5), n=64, **SAMPLING)[-1]), -1, 1)
    return x, float(np.mean(judge.judge_for("clips").consistent(x)))


def test_the_empty_prompt_still_makes_clips(unprompted):
    x, consistent = unprompted
    print("no prompt: consistent", consistent)
    assert x.shape == (64, 8, 16, 16, 3)
    colours = judge.judge_for("clips").predict(x, "colour")
    assert len(np.unique(colours)) >= 3  # drawn from everything it saw, not one class


@pytest.mark.quality
@pytest.mark.xfail(reason=NOT_YET, strict=True)
def test_the_empty_prompt_makes_consistent_clips(unprompted, quality):
    quality.at_least("consistent clips with no prompt", unprompted[1], 0.9)


@pytest.mark.quality
def test_held_out_combinations_are_reported(model, quality):
    held = text_prompts(model, held_out=True)
    assert "a blue triangle moving left" in held and "a yellow circle moving up" in held
    assert not set(text_prompts(model)) & set(held)
    r = judge.score_prompts(model, held, n=16, **SAMPLING)
    print("held-out", {p: s["prompt_accuracy"] for p, s in r["per_prompt"].items()})
    # Reported, not hidden: every attribute right by chance is 1 in 48.
    quality.at_least("held-out prompt accuracy", r["prompt_accuracy"], 0.2)
