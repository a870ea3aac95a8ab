"""``toydiff images`` on clips: train a transformer, sample clips from prompts, draw and judge them.

The plumbing on a tiny transformer (one block of width 16, four steps) over an untrained toy
CLIP: what the files hold, not how good the clips are (``test_images_video.py`` judges the real
model).
"""

import json

import numpy as np
import pytest

from toydiff import cli
from toydiff.images import clip as clip_lib
from toydiff.images import data as image_data
from toydiff.images import viz

TINY = ["--steps", "4", "--batch-size", "8", "--width", "16", "--depth", "1", "--heads", "2"]


def _main(capsys, *args):
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    clip_lib.untrained(clip_lib.clip_config("clips")).save(root / "clip")
    common = ["images", "train", "--data", "clips", *TINY, "--quiet", "--json"]
    text = ["--condition", "text", "--clip", root / "clip", "--out", root / "text"]
    assert cli.main([str(a) for a in [*common, *text]]) == 0
    assert cli.main([str(a) for a in [*common, "--out", root / "class"]]) == 0
    return root


def test_a_text_run_samples_clips_and_draws_them_as_a_gif(runs, tmp_path, capsys):
    out, grid = tmp_path / "s.npz", tmp_path / "s.gif"
    args = ["images", "sample", "--run", runs / "text", "--prompt", "a red circle moving left"]
    status, stdout, _ = _main(
        capsys, *args, "--n", "4", "--steps", "3", "--out", out, "--grid", grid, "--json"
    )
    assert status == 0
    report = json.loads(stdout)
    assert report["shape"] == [4, 8, 16, 16, 3] and report["clips_per_s"] > 0
    with np.load(out) as f:
        assert f["x"].shape == (4, 8, 16, 16, 3) and np.abs(f["x"]).max() <= 1.0
        assert str(f["prompt"]) == "a red circle moving left" and str(f["data"]) == "clips"
        frames = viz.clip_frames(f["x"])
    from PIL import Image

    # one picture per frame of the clips; a GIF merges a frame equal to the one before it
    pairs = zip(frames[:-1], frames[1:], strict=True)
    changes = 1 + sum(not np.array_equal(a, b) for a, b in pairs)
    with Image.open(grid) as gif:
        assert gif.n_frames == changes and gif.size == frames.shape[2:0:-1]


def test_a_grid_of_moving_clips_plays_every_frame(tmp_path):
    from PIL import Image

    real = image_data.load("clips", "test").x[:6]
    viz.save_clip_grid(real, tmp_path / "real.gif")
    with Image.open(tmp_path / "real.gif") as gif:
        assert gif.n_frames == 8
        gif.seek(7)
        last = np.asarray(gif.convert("RGB"))
    np.testing.assert_allclose(last, viz.clip_frames(real)[7], atol=24)  # the palette's rounding


def test_an_mp4_grid_and_the_judge_read_the_same_file(runs, tmp_path, capsys):
    out, grid = tmp_path / "s.npz", tmp_path / "s.mp4"
    args = ["images", "sample", "--run", runs / "class", "--label", "square", "--n", "3"]
    assert _main(capsys, *args, "--steps", "2", "--out", out, "--grid", grid)[0] == 0
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(grid))
    assert next(reader)["size"][0] > 0 and sum(1 for _ in reader) == 8
    status, stdout, _ = _main(capsys, "images", "eval", out, "--data", "clips", "--json")
    assert status == 0
    result = json.loads(stdout)
    assert result["label"] == "square" and result["n"] == 3
    assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["consistent_share"] <= 1.0


def test_eval_judges_a_prompt_attribute_by_attribute(runs, tmp_path, capsys):
    real = image_data.load("clips", "test")
    picked = real.take(np.flatnonzero(real.attributes["direction"] == 0)[:6])  # moving left
    np.savez(tmp_path / "real.npz", x=picked.x)
    args = ["images", "eval", tmp_path / "real.npz", "--data", "clips", "--json"]
    status, stdout, _ = _main(capsys, *args, "--prompt", "moving left")
    assert status == 0
    result = json.loads(stdout)
    assert result["direction_accuracy"] == 1.0 and result["consistent_share"] == 1.0
    status, stdout, _ = _main(capsys, *args, "--prompt", "moving right")
    assert json.loads(stdout)["direction_accuracy"] == 0.0


def _error(capsys, *args):
    status, out, err = _main(capsys, *args)
    assert status != 0 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_clip_mistakes_get_one_line_before_any_work(runs, tmp_path, capsys):
    sample = ["images", "sample", "--run", runs / "text", "--n", "2", "--steps", "2"]
    out = ["--out", tmp_path / "s.npz"]
    err = _error(capsys, *sample, "--prompt", "a red circle", *out, "--grid", tmp_path / "g.png")
    assert "clips are drawn as a .gif or .mp4 grid, not .png" in err
    err = _error(capsys, *sample, "--prompt", "a red circle moving sideways", *out)
    assert "unknown word 'sideways'" in err
    err = _error(capsys, *sample, "--label", "circle", *out)
    assert "use --prompt" in err
    assert not (tmp_path / "s.npz").exists()
    np.savez(tmp_path / "c.npz", x=np.zeros((3, 8, 16, 16, 3), np.float32))
    err = _error(capsys, "images", "eval", tmp_path / "c.npz", "--data", "shapes", "--label", "0")
    assert "(8, 16, 16, 3)" in err and "(16, 16, 3)" in err
    np.savez(tmp_path / "i.npz", x=np.zeros((3, 16, 16, 3), np.float32))
    err = _error(capsys, "images", "eval", tmp_path / "i.npz", "--data", "clips", "--label", "0")
    assert "clips images are (8, 16, 16, 3)" in err or "(8, 16, 16, 3)" in err
