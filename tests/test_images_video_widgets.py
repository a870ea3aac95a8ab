"""Tests for the story's opening: ``OpeningExplorer``, ``clip_strip``/``opening_strip`` and the
``opening`` demo, on a tiny text-conditioned clip model (a one-block DiT trained 4 steps on an
untrained CLIP) that builds in seconds. What it draws is noise; the tests check the plumbing."""

import dataclasses
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
from PIL import Image

from toydiff import demos
from toydiff.errors import ToydiffError
from toydiff.images import viz
from toydiff.images.video_widgets import OpeningExplorer, opening_explorer

matplotlib.use("Agg")

N, STEPS, FRAMES = 2, 8, 8
ROW = (18, N * 17 + 1, 3)  # one row of N tiled 16x16 frames, 1 px of padding around each


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A text-conditioned clip model: width 16, one block, 4 training steps."""
    from toydiff.images import clip as clip_lib
    from toydiff.images import training
    from toydiff.images.model import image_config

    tmp = tmp_path_factory.mktemp("opening")
    clip_lib.untrained(clip_lib.clip_config("clips")).save(tmp / "clip")
    small = {"steps": 4, "chunk": 2, "batch_size": 8}
    try:
        cfg = image_config("clips", condition="text", clip=str(tmp / "clip"), **small,
                           width=16, depth=1, heads=2)  # fmt: skip
    except ToydiffError:
        cfg = image_config("clips", condition="text", clip=str(tmp / "clip"), **small)
        cfg = dataclasses.replace(cfg, net=dataclasses.replace(cfg.net, width=16, depth=1, heads=2))
    return training.train(cfg, progress=False)


class Counting:
    """The model, counting its ``run`` calls (every sampling the explorer does goes through)."""

    def __init__(self, model):
        self._model, self.runs = model, 0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def run(self, key, request):
        self.runs += 1
        return self._model.run(key, request)


@pytest.fixture
def explorer(tiny):
    return opening_explorer(Counting(tiny), n=N, steps=STEPS)


def picture(ex) -> np.ndarray:
    return np.asarray(ex._art.get_array())


def test_explorer_builds_with_its_controls(explorer, tiny):
    ex = explorer
    assert isinstance(ex, OpeningExplorer) and ex.model.runs == 1
    assert ex.trajectory.shape == (STEPS + 1, N, FRAMES, 16, 16, 3)
    assert ex.prompt.value == "a red circle moving left" and ex.negative.value == ""
    assert ex.w.value == tiny.default_guidance(None) and (ex.w.min, ex.w.max) == (0.0, 8.0)
    assert (ex.step.value, ex.step.min, ex.step.max) == (STEPS, 0, STEPS)
    assert ex.step.continuous_update
    assert (ex.frame.value, ex.frame.max, ex.play.max) == (0, FRAMES - 1, FRAMES - 1)
    assert ex.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture(ex).shape == ROW
    np.testing.assert_allclose(picture(ex), viz.tile(ex.trajectory[-1, :, 0], N))
    assert ex._ax.get_title() == f"step {STEPS} of {STEPS}, frame 1 of {FRAMES}"
    parts = ex.readout.value.split(" | ")
    assert [p.split(":")[0] for p in parts] == [
        "direction right", "colour right", "shape right", "consistent"
    ]  # fmt: skip
    assert all(p.endswith("%") for p in parts)


def test_step_and_frame_scrub_the_stored_clips_without_sampling(explorer):
    ex = explorer
    traj, before = ex.trajectory, ex.image.value
    ex.redraw()  # warm the blitting background
    ex.step.value = 0
    assert ex.model.runs == 1 and ex.trajectory is traj
    assert ex.image.value != before
    assert ex._ax.get_title() == f"pure noise, frame 1 of {FRAMES}"
    np.testing.assert_allclose(picture(ex), viz.tile(traj[0, :, 0], N))
    ex.step.value, ex.frame.value = 3, 5
    assert ex.model.runs == 1 and ex.trajectory is traj
    assert ex._ax.get_title() == f"step 3 of {STEPS}, frame 6 of {FRAMES}"
    np.testing.assert_allclose(picture(ex), viz.tile(traj[3, :, 5], N))
    assert ex.latency < 0.5 and ex.timings["compute_s"] == 0.0


def test_prompt_negative_and_w_resample(explorer):
    ex = explorer
    traj = ex.trajectory
    ex.prompt.value = "a blue square moving up"
    assert ex.model.runs == 2 and ex.trajectory is not traj
    assert not np.allclose(ex.trajectory[-1], traj[-1])
    np.testing.assert_array_equal(ex.trajectory[0], traj[0])  # the same fixed noise
    ex.w.value = 5.0
    ex.negative.value = "a red square"
    assert ex.model.runs == 4
    ex.prompt.value = "a blue square"
    assert ex.readout.value.split(" | ")[0].startswith("colour right")
    assert "direction" not in ex.readout.value


def test_misspelt_prompt_shows_its_error_and_keeps_the_picture(explorer):
    ex = explorer
    traj, before, readout = ex.trajectory, ex.image.value, ex.readout.value
    ex.prompt.value = "a red circel"
    assert ex.model.runs == 1 and ex.trajectory is traj
    assert "circel" in ex.readout.value and "#cf222e" in ex.readout.value
    assert "\n" not in ex.readout.value
    assert ex.image.value == before
    ex.step.value = 2  # scrubbing still works, the error stays
    assert "circel" in ex.readout.value
    ex.prompt.value = "a red circle moving left"  # what is shown: no new sampling
    assert ex.model.runs == 1 and ex.readout.value == readout


def test_empty_prompt_is_the_null_condition(explorer):
    ex = explorer
    ex.prompt.value = ""
    assert ex.model.runs == 2
    text = ex.readout.value
    assert text.startswith("no prompt: consistent ") and "directions: " in text
    counts = [int(c.split()[-1]) for c in text.split("directions: ")[1].split(", ")]
    assert sum(counts) == N
    ex.w.value = 6.0  # no prompt, so w changes nothing: no new sampling
    assert ex.model.runs == 2 and ex.readout.value == text


def test_frame_is_linked_to_the_play_button(explorer):
    ex = explorer
    assert ex.link.source == (ex.play, "value")
    assert ex.link.target == (ex.frame, "value")
    assert ex.play.repeat and ex.play.interval == 1000 // 6
    assert ex.play in ex.widget.children[2].children and ex.image in ex.widget.children


def test_explorer_refuses_other_models_and_bad_prompts(tiny):
    with pytest.raises(ToydiffError, match="text-conditioned clip model"):
        opening_explorer(SimpleNamespace(config=SimpleNamespace(condition="class")))
    image_model = SimpleNamespace(
        config=SimpleNamespace(condition="text"), sample_shape=(16, 16, 3)
    )
    with pytest.raises(ToydiffError, match=r"clip model .* \(16, 16, 3\)"):
        opening_explorer(image_model)
    with pytest.raises(ToydiffError, match="circel"):
        opening_explorer(tiny, "a red circel", n=N, steps=STEPS)


def test_clip_strip_draws_a_row_per_clip():
    clips = np.random.default_rng(0).uniform(-1, 1, (3, FRAMES, 16, 16, 3))
    fig = viz.clip_strip(clips, title="three clips")
    art = fig.axes[0].images[0].get_array()
    assert art.shape == (3 * 17 + 1, FRAMES * 17 + 1, 3)
    np.testing.assert_allclose(
        art[1 + 17 : 17 + 17, 1 + 2 * 17 : 17 + 2 * 17], viz.to_rgb(clips[1, 2:3])[0]
    )
    assert fig.axes[0].get_title() == "three clips"


def test_opening_strip_shows_one_clip_at_the_shown_steps():
    traj = np.random.default_rng(1).uniform(-1, 1, (51, 2, FRAMES, 16, 16, 3))
    fig = viz.opening_strip(traj, index=1)
    ax = fig.axes[0]
    art = ax.images[0].get_array()
    assert art.shape == (7 * 17 + 1, FRAMES * 17 + 1, 3)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["noise", "step 5", "step 10", "step 20", "step 30", "step 40", "step 50"]
    row = 3  # step 20, frame 4
    np.testing.assert_allclose(
        art[1 + row * 17 : 17 + row * 17, 1 + 4 * 17 : 17 + 4 * 17], viz.to_rgb(traj[20, 1, 4:5])[0]
    )
    with pytest.raises(ToydiffError, match="step 60 .* 50 steps"):
        viz.opening_strip(traj, shown=(0, 60))


def test_opening_demo_plays_seven_panels(tiny, tmp_path):
    assert demos.FPS["opening"] == 6 and "opening" in demos.DEMOS
    models = demos.Models(progress=False)
    models.clips = tiny  # build() takes the clip model from ``models``
    anim = demos.build("opening", quick=True, models=models)
    assert demos.frame_count(anim) == FRAMES
    fig = anim._fig
    assert [ax.get_title() for ax in fig.axes] == [
        "noise", "step 5", "step 10", "step 20", "step 30", "step 40", "step 50"
    ]  # fmt: skip
    assert "a red circle moving left" in fig._suptitle.get_text()
    first = np.asarray(fig.axes[-1].images[0].get_array()).copy()
    anim._func(3)
    assert not np.allclose(fig.axes[-1].images[0].get_array(), first)  # the frames play
    (gif,) = demos.save(anim, "opening", tmp_path, formats=("gif",))
    w, h = fig.get_size_inches() * fig.dpi
    with Image.open(gif) as im:
        assert im.n_frames == FRAMES and im.size == (round(w), round(h))
    full = demos.opening(models, model=tiny, prompt="")  # no prompt: the null condition
    full._init_draw()  # as a save would, so it is not reported as never drawn
    assert demos.frame_count(full) == 3 * FRAMES and full._fig._suptitle.get_text() == "no prompt"
