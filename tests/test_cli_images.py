"""``toydiff images``: train, sample and eval end to end, and every mistake caught up front.

Runs in-process (``cli.main``) on a tiny U-Net, so the compiled training chunk is shared.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from toydiff import cli

TINY = ["--data", "digits", "--steps", "8", "--batch-size", "16", "--channels", "8"]
TINY += ["--no-attention"]


def _main(capsys, *args):
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "run"
    status = cli.main(["images", "train", *TINY, "--out", str(out), "--quiet", "--json"])
    assert status == 0
    return out


def test_train_writes_a_run_and_a_state(run_dir):
    assert (run_dir / "run.toydiff").exists() and (run_dir / "state.toydiff").exists()


def test_train_reports_one_json_object(tmp_path, capsys):
    status, out, _ = _main(
        capsys, "images", "train", *TINY, "--out", tmp_path / "r", "--json", "--quiet"
    )
    assert status == 0
    report = json.loads(out)
    assert report["steps"] == 8 and report["mesh"]["devices"] == 1 and report["params"] > 0
    assert np.isfinite(report["final_loss"]) and report["data"] == "digits"


def test_sample_writes_images_in_range_and_a_grid(run_dir, tmp_path, capsys):
    out, grid = tmp_path / "s.npz", tmp_path / "s.png"
    args = ["images", "sample", "--run", run_dir, "--label", "3", "--n", "6", "--steps", "4"]
    status, stdout, _ = _main(capsys, *args, "--out", out, "--grid", grid, "--json", "--trajectory")
    assert status == 0, stdout
    report = json.loads(stdout)
    assert report["shape"] == [6, 8, 8, 1] and report["images_per_s"] > 0
    with np.load(out) as f:
        assert f["x"].shape == (6, 8, 8, 1) and np.abs(f["x"]).max() <= 1.0
        assert f["trajectory"].shape == (5, 6, 8, 8, 1) and int(f["label"]) == 3
        assert str(f["data"]) == "digits"
    from PIL import Image

    assert Image.open(grid).size[0] > 8 * 2


def test_sampling_is_reproducible(run_dir, tmp_path, capsys):
    for name in ("a", "b"):
        args = ["images", "sample", "--run", run_dir, "--label", "5", "--n", "4", "--steps", "4"]
        assert _main(capsys, *args, "--seed", "7", "--out", tmp_path / f"{name}.npz")[0] == 0
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        np.testing.assert_array_equal(a["x"], b["x"])


def test_eval_reports_the_three_measures(run_dir, tmp_path, capsys):
    samples = tmp_path / "s.npz"
    args = ["images", "sample", "--run", run_dir, "--label", "2", "--n", "8", "--steps", "4"]
    assert _main(capsys, *args, "--out", samples)[0] == 0
    status, out, _ = _main(capsys, "images", "eval", samples, "--data", "digits", "--json")
    assert status == 0
    report = json.loads(out)
    assert report["label"] == "2" and report["n"] == 8
    assert {"accuracy", "diversity", "novelty"} <= set(report)


def test_exact_oracle_and_negative_class(run_dir, tmp_path, capsys):
    args = ["images", "sample", "--run", run_dir, "--n", "4", "--steps", "4"]
    assert _main(capsys, *args, "--label", "1", "--exact", "--out", tmp_path / "e.npz")[0] == 0
    neg = [*args, "--label", "7", "--negative", "1", "--out", tmp_path / "n.npz"]
    assert _main(capsys, *neg)[0] == 0


def _error(capsys, *args):
    status, out, err = _main(capsys, *args)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label", "11"], "unknown digit '11' for digits; allowed: 0, 1, 2"),
        (["--label", "7", "--negative", "7"], "label '7' and negative '7' are the same class"),
        (["--negative", "1"], "needs something to steer toward"),
        (["--label", "7", "--guidance", "nan"], "must be a finite number"),
        (["--label", "7", "--guidance", "inf"], "must be a finite number"),
        (["--label", "7", "--exact", "--guidance", "2"], "need the network, not --exact"),
        (["--label", "7", "--n", "0"], "--n must be a whole number of at least 1, got 0"),
        (["--label", "7", "--steps", "-3"], "--steps must be a whole number from 1 to 10000"),
        (["--label", "7", "--sampler", "magic"], "invalid choice: 'magic'"),
    ],
)
def test_sample_mistakes(run_dir, tmp_path, capsys, args, message):
    err = _error(capsys, "images", "sample", "--run", run_dir, *args, "--out", tmp_path / "x.npz")
    assert message in err
    assert not (tmp_path / "x.npz").exists()


def test_sample_refuses_a_missing_run(tmp_path, capsys):
    err = _error(
        capsys, "images", "sample", "--run", tmp_path / "nothing", "--out", tmp_path / "x.npz"
    )
    assert "no run at" in err


def test_both_sample_verbs_read_either_kind_of_run(run_dir, tmp_path, capsys):
    """One sampling front end: the run's kind picks the model, whichever verb is used."""
    spiral = tmp_path / "spiral"
    assert cli.main(["train", "--steps", "20", "--out", str(spiral), "--quiet"]) == 0
    common = ["--n", "3", "--steps", "4", "--seed", "5"]
    for verb, run, name, shape in (
        (["images", "sample"], spiral, "a", (3, 2)),
        (["sample"], spiral, "b", (3, 2)),
        (["sample"], run_dir, "c", (3, 8, 8, 1)),
        (["images", "sample"], run_dir, "d", (3, 8, 8, 1)),
    ):
        assert _main(capsys, *verb, "--run", run, *common, "--out", tmp_path / name)[0] == 0
        with np.load(tmp_path / f"{name}.npz") as f:  # the suffix added, as np.savez would
            assert f["x"].shape == shape
    for a, b in (("a", "b"), ("c", "d")):
        with np.load(tmp_path / f"{a}.npz") as f, np.load(tmp_path / f"{b}.npz") as g:
            np.testing.assert_array_equal(f["x"], g["x"])


def test_unwritable_outputs_are_refused_before_sampling(run_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for out in (blocker / "x.npz", tmp_path / "x.txt"):
        err = _error(capsys, "images", "sample", "--run", run_dir, "--label", "1", "--out", out)
        assert str(out) in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "faces"], "invalid choice: 'faces'"),
        (["--data", "shapes", "--size", "10"], "must be a multiple of 4"),
        (["--data", "shapes", "--size", "80"], "even integer from 8 to 64"),
        (["--data", "digits", "--size", "16"], "digits are 8x8"),
        (["--data", "shapes", "--label-by", "mood"], "allowed: shape, colour, size, hat"),
        (["--data", "digits", "--batch-size", "0"], "must be at least 1"),
        (["--data", "digits", "--batch-size", "2000"], "larger than the 1438 training images"),
        (["--data", "digits", "--lr", "nan"], "must be a finite number"),
        (["--data", "digits", "--channels", "8,x"], "comma-separated integers"),
        (["--data", "digits", "--coordinator", "127.0.0.1:1"], "or none"),
        (["--data", "digits", "--dtype", "float16"], "invalid choice: 'float16'"),
        (["--data", "digits", "--net", "vit"], "invalid choice: 'vit'"),
        (["--data", "clips", "--net", "unet"], "clips has no unet recipe; networks for it: dit"),
        (["--data", "clips", "--channels", "8,16"], "channels is a setting of another network"),
        (["--data", "digits", "--width", "16"], "width is a setting of another network"),
        (["--data", "digits", "--net", "dit", "--no-attention"], "attention is a setting of"),
        (["--data", "digits", "--net", "dit", "--heads", "3"], "multiple of 4 and of heads=3"),
        (["--data", "digits", "--net", "dit", "--patch", "3"], "cut into patches of 3"),
    ],
)
def test_train_mistakes(tmp_path, capsys, args, message):
    err = _error(capsys, "images", "train", *args, "--out", tmp_path / "r", "--quiet")
    assert message in err
    assert not (tmp_path / "r" / "run.toydiff").exists()


def test_train_will_not_replace_or_invent_a_run(run_dir, tmp_path, capsys):
    err = _error(capsys, "images", "train", *TINY, "--out", run_dir, "--quiet")
    assert "already holds a run" in err and "--overwrite" in err
    err = _error(capsys, "images", "train", *TINY, "--out", tmp_path / "new", "--resume")
    assert "nothing to resume" in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    err = _error(capsys, "images", "train", *TINY, "--out", blocker / "run")
    assert "cannot write to" in err


def test_resume_with_other_settings_is_refused(run_dir, capsys):
    args = [
        "images",
        "train",
        *TINY[:-2],
        "16,32",
        "--no-attention",
        "--out",
        run_dir,
        "--resume",
        "--quiet",
    ]
    err = _error(capsys, *args)
    assert "cannot resume" in err and "net=" in err


def test_a_batch_that_does_not_split_over_the_devices(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    cmd = [sys.executable, "-m", "toydiff.cli", "images", "train", "--data", "digits",
           "--batch", "12", "--out", str(tmp_path / "r")]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--batch-size 12 does not split over 8 devices; use a multiple of 8" in proc.stderr


def test_eval_mistakes(run_dir, tmp_path, capsys):
    assert "no samples file" in _error(
        capsys, "images", "eval", tmp_path / "no.npz", "--data", "digits"
    )
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((4, 16, 16, 3), np.float32))
    err = _error(capsys, "images", "eval", wrong, "--data", "digits", "--label", "1")
    assert "holds images of shape (16, 16, 3)" in err
    unlabelled = tmp_path / "u.npz"
    np.savez(unlabelled, x=np.zeros((4, 8, 8, 1), np.float32))
    assert "needs --label" in _error(capsys, "images", "eval", unlabelled, "--data", "digits")
