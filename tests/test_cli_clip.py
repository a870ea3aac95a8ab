"""``toydiff clip`` and the text-conditioned ``toydiff images`` verbs, on tiny runs.

The CLIP and the text model here are trained for a few steps only: these tests check the
plumbing and every mistake; the quality checks are in test_images_clip and
test_images_text_model.
"""

import json

import numpy as np
import pytest

from toydiff import cli


def _main(capsys, *args):
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def _error(capsys, *args):
    status, out, err = _main(capsys, *args)
    assert status == 2 and out == "", err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("clip") / "run"
    args = ["clip", "train", "--data", "shapes", "--steps", "6", "--batch", "32", "--out", out]
    assert cli.main([*map(str, args), "--quiet", "--json"]) == 0
    return out


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, clip_dir):
    out = tmp_path_factory.mktemp("text") / "run"
    args = ["images", "train", "--data", "shapes", "--condition", "text", "--clip", clip_dir,
            "--steps", "4", "--batch", "16", "--channels", "8", "--no-attention",
            "--out", out]  # fmt: skip
    assert cli.main([*map(str, args), "--quiet"]) == 0
    return out


def test_clip_train_reports_zero_shot_accuracy(tmp_path, capsys):
    args = ["clip", "train", "--data", "digits", "--steps", "4", "--batch", "32"]
    status, out, _ = _main(capsys, *args, "--out", tmp_path / "d", "--json", "--quiet")
    assert status == 0
    report = json.loads(out)
    assert set(report["zero_shot_accuracy"]) == {"digit"} and report["steps"] == 4
    assert 0 < report["temperature"] < 1


def test_similarity_classify_and_nearest_words(clip_dir, capsys):
    texts = ["a red circle", "a large blue square wearing a hat"]
    status, out, _ = _main(
        capsys, "clip", "similarity", "--run", clip_dir, "--n", "3", "--json", "--text", *texts
    )
    assert status == 0 and np.asarray(json.loads(out)["similarity"]).shape == (3, 2)
    status, out, _ = _main(capsys, "clip", "classify", "--run", clip_dir, "--n", "5",
                           "--attribute", "colour", "--json")  # fmt: skip
    report = json.loads(out)
    assert len(report["labels"]) == 5 and 0 <= report["accuracy"] <= 1
    status, out, _ = _main(capsys, "clip", "classify", "--run", clip_dir, "--n", "2",
                           "--json", "--captions", "a red circle", "a green square")  # fmt: skip
    assert set(json.loads(out)["labels"]) <= {"a red circle", "a green square"}
    for how in (["--attribute", "hat"], ["--text", "a small circle"]):
        status, out, _ = _main(capsys, "clip", "nearest-words", "--run", clip_dir, *how, "--json")
        words = json.loads(out)["words"]
        assert status == 0 and len(words) == 5 and set(words) <= set(cli_vocab())


def cli_vocab():
    from toydiff.images.text import vocabulary

    return vocabulary("shapes")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["similarity", "--text", "a purple circle"], "unknown word 'purple'"),
        (["similarity", "--text", ""], "the prompt is empty"),
        (["classify"], "--captions C [C ...] or --attribute NAME"),
        (["classify", "--attribute", "mood"], "allowed: shape, colour, size, hat"),
        (["nearest-words"], "exactly one of"),
        (["nearest-words", "--attribute", "purple"], "unknown attribute value 'purple'"),
    ],
)
def test_clip_mistakes(clip_dir, capsys, args, message):
    err = _error(capsys, "clip", args[0], "--run", clip_dir, *args[1:])
    assert message in err


def test_clip_refuses_other_runs(text_run, capsys):
    err = _error(capsys, "clip", "similarity", "--run", text_run, "--text", "a circle")
    assert "not a toy CLIP" in err


def test_text_sampling_and_eval(text_run, tmp_path, capsys):
    out = tmp_path / "p.npz"
    args = ["images", "sample", "--run", text_run, "--prompt", "a small red circle",
            "--n", "4", "--steps", "3", "--negative-prompt", "a small red circle wearing a hat",
            "--out", out]  # fmt: skip
    assert _main(capsys, *args)[0] == 0
    with np.load(out) as f:
        assert f["x"].shape == (4, 16, 16, 3) and str(f["prompt"]) == "a small red circle"
    status, report, _ = _main(capsys, "images", "eval", out, "--data", "shapes", "--json")
    report = json.loads(report)
    assert {"prompt_accuracy", "size_accuracy", "colour_accuracy", "shape_accuracy"} <= set(report)
    exact = tmp_path / "e.npz"
    args = ["images", "sample", "--run", text_run, "--prompt", "a blue square", "--exact",
            "--n", "2", "--steps", "3", "--out", exact]  # fmt: skip
    assert _main(capsys, *args)[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prompt", "a blu circle"], "unknown word 'blu' in 'a blu circle'; did you mean 'blue'"),
        (["--prompt", "a purple circle"], "known words: circle, square"),
        (["--prompt", ""], "the prompt is empty"),
        (["--prompt", "a " * 17 + "circle"], "at most 16"),
        (["--prompt", "a red green circle"], "two values of colour"),
        (["--label", "circle"], "use --prompt"),
        (["--prompt", "a circle", "--negative-prompt", "a circle"], "are the same prompt"),
        (["--negative-prompt", "a red circle"], "something to steer toward"),
        (["--prompt", "a circle", "--guidance", "nan"], "finite"),
    ],
)
def test_text_sample_mistakes(text_run, tmp_path, capsys, args, message):
    err = _error(capsys, "images", "sample", "--run", text_run, *args, "--out", tmp_path / "x.npz")
    assert message in err


def test_a_clip_that_does_not_match_the_run(text_run, tmp_path, capsys):
    other = tmp_path / "other"
    args = ["clip", "train", "--data", "shapes", "--steps", "2", "--batch", "32", "--seed", "5"]
    assert _main(capsys, *args, "--out", other, "--quiet")[0] == 0
    err = _error(capsys, "images", "sample", "--run", text_run, "--prompt", "a red circle",
                 "--clip", other, "--out", tmp_path / "x.npz")  # fmt: skip
    assert "is not the one this run was trained with" in err
    digits = tmp_path / "digits"
    assert _main(capsys, "clip", "train", "--data", "digits", "--steps", "2", "--batch", "32",
                 "--out", digits, "--quiet")[0] == 0  # fmt: skip
    err = _error(capsys, "images", "train", "--data", "shapes", "--condition", "text", "--clip",
                 digits, "--out", tmp_path / "t")  # fmt: skip
    assert "reads digits" in err


def test_text_training_mistakes(tmp_path, capsys):
    err = _error(
        capsys,
        "images",
        "train",
        "--data",
        "shapes",
        "--condition",
        "text",
        "--out",
        tmp_path / "t",
    )
    assert "needs --clip DIR" in err
    err = _error(
        capsys, "images", "train", "--data", "shapes", "--clip", tmp_path, "--out", tmp_path / "t"
    )
    assert "--clip is for --condition text" in err
