"""Tests for toydiff.demos and ``toydiff demo``: every headline demo renders to GIF and H.264 MP4.

The demos run with ``quick=True`` (500-step models, few frames), so the whole file takes well
under a minute and a half; ``cached_train`` trains the two small models once.
"""

import contextlib
import io
import json

import imageio_ffmpeg
import matplotlib
import pytest
from PIL import Image

from toydiff import cli, demos
from toydiff.errors import ToydiffError

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """name -> (frame count, (width, height) in pixels, [gif path, mp4 path]) of each quick demo."""
    out = tmp_path_factory.mktemp("demos")
    models = demos.Models.for_quality(quick=True, progress=False)
    result = {}
    for name in demos.HEADLINE:
        anim = demos.build(name, quick=True, models=models)
        w, h = anim._fig.get_size_inches() * anim._fig.dpi
        result[name] = (demos.frame_count(anim), (round(w), round(h)), demos.save(anim, name, out))
    return result


def test_registry_names():
    assert tuple(demos.DEMOS) == (*demos.HEADLINE, "opening")
    assert demos.HEADLINE == ("forward", "phase", "noise", "ddim", "cfg", "negative")
    assert set(demos.FPS) == set(demos.DEMOS)


@pytest.mark.parametrize("name", demos.HEADLINE)
def test_gif_has_every_frame_at_the_figure_size(rendered, name):
    frames, size, (gif, _) = rendered[name]
    assert gif.name == f"{name}.gif"
    assert frames >= 6
    with Image.open(gif) as im:
        assert im.n_frames == frames
        assert im.size == size
    assert gif.stat().st_size < 2_000_000


@pytest.mark.parametrize("name", demos.HEADLINE)
def test_mp4_is_h264_with_the_gif_frames(rendered, name):
    frames, size, (_, mp4) = rendered[name]
    assert mp4.name == f"{name}.mp4"
    n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(mp4))
    assert n_frames == frames
    reader = imageio_ffmpeg.read_frames(str(mp4))
    meta = next(reader)
    reader.close()
    assert meta["codec"].startswith("h264")
    assert tuple(meta["size"]) == size
    assert mp4.stat().st_size < 2_000_000


def test_sampling_demos_are_side_by_side(rendered):
    one_panel = {name for name, (_, (w, h), _) in rendered.items() if w == h}
    assert one_panel == {"forward", "phase", "cfg"}
    for name in ("noise", "ddim", "negative"):
        w, h = rendered[name][1]
        assert w == 2 * h


def test_cli_json_lists_files_with_sizes_and_frames(tmp_path, rendered):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = cli.main(["demo", "cfg", "--quick", "--out", str(tmp_path), "--json"])
    assert status == 0
    payload = json.loads(stdout.getvalue())
    assert list(payload) == ["files"]
    files = payload["files"]
    assert [f["path"] for f in files] == [str(tmp_path / "cfg.gif"), str(tmp_path / "cfg.mp4")]
    for f in files:
        assert f["bytes"] == (tmp_path / f["path"]).stat().st_size > 0
        assert f["frames"] == rendered["cfg"][0]


def test_unknown_demo_lists_the_names():
    with pytest.raises(ToydiffError, match="forward") as err:
        demos.build("reverse", quick=True)
    assert "reverse" in str(err.value) and "negative" in str(err.value)
    with pytest.raises(ToydiffError, match="forward"):
        demos.render("reverse", "unused", quick=True)


def test_unknown_theme_and_format_raise(tmp_path):
    with pytest.raises(ToydiffError, match="dark"):
        demos.build("forward", theme="neon", quick=True)
    with pytest.raises(ToydiffError, match="gif"):
        demos.render("forward", tmp_path, quick=True, formats=("avi",))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["demo", "--out", "x"], "NAME or --all"),
        (["demo", "cfg", "--all", "--out", "x"], "NAME or --all"),
        (["demo", "reverse", "--out", "x"], "forward, phase, noise, ddim, cfg, negative"),
        (["demo", "cfg", "--out", "x", "--theme", "neon"], "invalid choice"),
    ],
)
def test_cli_errors_are_one_line(capsys, argv, expected):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and expected in captured.err
