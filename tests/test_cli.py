"""Tests for the ``toydiff`` command line: the --json contract and one-line errors.

End-to-end checks run the CLI as a real subprocess, so stdout/stderr separation and exit codes are
the ones a user sees. Most bad-input cases call ``cli.main`` in-process (importing jax in a fresh
process costs a few seconds each); a handful run as subprocesses to prove that no traceback reaches
a real terminal.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from toydiff import cli
from toydiff.cli.output import emit

# The CLI's own contract is under test, not the accelerator: pin subprocesses to the CPU so a
# platform-probe warning from jax cannot add a line to stderr.
_ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
_TIMEOUT = 300
_SAMPLE = ["--steps", "8", "--n", "64"]


def _command(args):
    return [sys.executable, "-m", "toydiff.cli", *args]


def _cli(*args) -> subprocess.CompletedProcess:
    """Run ``toydiff ARGS`` in a fresh Python process."""
    return subprocess.run(
        _command(args), capture_output=True, text=True, env=_ENV, timeout=_TIMEOUT
    )


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def _one_object(stdout: str) -> dict:
    """The single strict-JSON object that makes up all of stdout (no NaN, no extra lines)."""
    assert stdout.endswith("\n") and stdout.count("\n") == 1, f"stdout is not one line: {stdout!r}"
    obj = json.loads(stdout, parse_constant=_reject_constant)
    assert isinstance(obj, dict)
    return obj


def _assert_one_line_error(stderr: str, keyword: str):
    """stderr is exactly one non-empty line, without a traceback, naming the problem."""
    lines = stderr.splitlines()  # splits on \r too, so a leftover progress bar counts as a line
    assert len(lines) == 1 and lines[0].strip(), f"stderr is not one line: {stderr!r}"
    assert "Traceback" not in stderr
    assert lines[0].startswith("toydiff: error: ")
    assert keyword in lines[0], f"{keyword!r} not in {lines[0]!r}"


def _main(capsys, *args) -> tuple[int, str, str]:
    """Run ``cli.main(ARGS)`` in this process; returns (status, stdout, stderr)."""
    capsys.readouterr()
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One small unconditional run and one small labelled run, trained once per module.

    The unconditional run keeps its progress bar (it must go to stderr); the labelled one is quiet.
    (Training them one after the other is faster than in parallel: XLA compiles on every core.)
    """
    root = tmp_path_factory.mktemp("cli_runs")
    u, lab = root / "spiral", root / "classes"
    results = {
        "u": _cli(
            "train", "--data", "spiral", "--steps", "200", "--seed", "0", "--out", str(u), "--json"
        ),
        "l": _cli(
            "train",
            "--data",
            "spiral-classes",
            "--labels",
            "--steps",
            "200",
            "--out",
            str(lab),
            "--json",
            "--quiet",
        ),
    }
    for name, res in results.items():
        assert res.returncode == 0, f"training {name} failed:\n{res.stderr}"
    return {"u": u, "l": lab, "root": root, "u_train": results["u"], "l_train": results["l"]}


@pytest.fixture(scope="module")
def sampled(runs):
    """`sample --trajectory --json` on the unconditional run, as a subprocess."""
    out = runs["root"] / "traj.npz"
    res = _cli(
        "sample",
        "--run",
        str(runs["u"]),
        "--sampler",
        "ddpm",
        *_SAMPLE,
        "--seed",
        "1",
        "--trajectory",
        "--out",
        str(out),
        "--json",
    )
    assert res.returncode == 0, res.stderr
    return {"out": out, "res": res}


@pytest.fixture(scope="module")
def paths(runs, tmp_path_factory):
    """The run directories and a folder of bad files, as str.format placeholders."""
    d = tmp_path_factory.mktemp("cli_bad")
    np.save(d / "bad5.npy", np.zeros((10, 5), np.float32))
    (d / "nan.csv").write_text("x,y\n0,0\nnan,1\n1,1\n")
    (d / "empty.csv").write_text("")
    (d / "two.csv").write_text("x,y,label\n0,0,a\n1,1,b\n0,1,a\n1,0,b\n")
    good = (runs["u"] / "run.toydiff").read_bytes()
    (d / "trunc").mkdir()
    (d / "trunc" / "run.toydiff").write_bytes(good[: len(good) // 2])
    np.savez(d / "foreign.npz", weights=np.ones(3))  # a valid zip, but not a toydiff run
    (d / "foreign").mkdir()
    (d / "foreign" / "run.toydiff").write_bytes((d / "foreign.npz").read_bytes())
    np.savez(d / "nox.npz", y=np.zeros((4, 2)))
    np.savez(d / "full.npz", x=np.random.default_rng(0).normal(size=(2000, 2)))
    full = (d / "full.npz").read_bytes()
    (d / "trunc.npz").write_bytes(full[: len(full) // 2])
    np.savez(
        d / "cats.npz",
        x=np.zeros((8, 2), np.float32),
        label=np.int32(2),
        class_names=np.array(["people", "dogs", "cats"]),
    )
    return {"u": str(runs["u"]), "l": str(runs["l"]), "d": str(d)}


# ----------------------------------------------------------------------------- --json contract


def test_train_json(runs):
    for name in ("u", "l"):
        res = runs[f"{name}_train"]
        payload = _one_object(res.stdout)
        assert {"run", "steps"} <= payload.keys()
        assert payload["steps"] == 200
        assert os.path.isfile(payload["run"])
        assert os.path.dirname(payload["run"]) == str(runs[name])
    assert "training" in runs["u_train"].stderr  # the progress bar went to stderr, not stdout
    assert "Traceback" not in runs["u_train"].stderr


def test_sample_json_trajectory(sampled):
    payload = _one_object(sampled["res"].stdout)
    assert payload["out"] == str(sampled["out"])
    with np.load(sampled["out"]) as f:
        traj, x = f["trajectory"], f["x"]
    assert traj.shape == (9, 64, 2)
    assert x.shape == (64, 2)
    np.testing.assert_array_equal(x, traj[-1])
    assert np.all(np.isfinite(x))


def test_sample_seeds_and_no_trajectory(runs, tmp_path, capsys):
    def sample(seed, name):
        out = tmp_path / name
        status, stdout, _ = _main(
            capsys,
            "sample",
            "--run",
            runs["u"],
            "--sampler",
            "ddpm",
            *_SAMPLE,
            "--seed",
            seed,
            "--out",
            out,
            "--json",
        )
        assert status == 0
        assert _one_object(stdout)["out"] == str(out)
        with np.load(out) as f:
            assert "trajectory" not in f.files
            return f["x"]

    a, again, other = sample(1, "a.npz"), sample(1, "again.npz"), sample(2, "other.npz")
    np.testing.assert_array_equal(a, again)
    assert not np.allclose(a, other)


def test_sample_out_without_npz_suffix(runs, tmp_path, capsys):
    status, stdout, _ = _main(
        capsys, "sample", "--run", runs["u"], *_SAMPLE, "--out", tmp_path / "plain", "--json"
    )
    assert status == 0
    out = _one_object(stdout)["out"]
    assert out == str(tmp_path / "plain.npz") and os.path.isfile(out)


def test_sample_exact(runs, tmp_path, capsys):
    out = tmp_path / "exact.npz"
    status, stdout, _ = _main(
        capsys,
        "sample",
        "--run",
        runs["l"],
        "--exact",
        "--label",
        "cats",
        "--sampler",
        "euler",
        *_SAMPLE,
        "--out",
        out,
        "--json",
    )
    assert status == 0
    _one_object(stdout)
    with np.load(out) as f:
        assert f["x"].shape == (64, 2) and np.all(np.isfinite(f["x"]))
        assert int(f["label"]) == 2
    # The exact field of the cats' points lands on the cats' arc.
    status, stdout, _ = _main(capsys, "eval", out, "--data", "spiral-classes", "--json")
    assert status == 0
    result = _one_object(stdout)
    assert result["label"] == "cats" and result["class_accuracy"] > 0.8


def test_eval_json(sampled):
    res = _cli("eval", str(sampled["out"]), "--data", "spiral", "--json")
    assert res.returncode == 0, res.stderr
    result = _one_object(res.stdout)
    assert {"swd", "energy", "precision", "coverage"} <= result.keys()
    assert "class_accuracy" not in result
    assert result["swd"] >= 0 and 0 <= result["precision"] <= 1 and 0 <= result["coverage"] <= 1


def test_eval_label_json(runs, tmp_path, capsys):
    out = tmp_path / "dogs.npz"
    status, _, _ = _main(
        capsys, "sample", "--run", runs["l"], "--label", "dogs", *_SAMPLE, "--out", out
    )
    assert status == 0
    status, stdout, _ = _main(
        capsys, "eval", out, "--data", "spiral-classes", "--label", "dogs", "--json"
    )
    assert status == 0
    result = _one_object(stdout)
    assert {"swd", "energy", "precision", "coverage", "class_accuracy"} <= result.keys()
    assert result["label"] == "dogs" and 0 <= result["class_accuracy"] <= 1


def test_eval_text(sampled, capsys):
    status, stdout, _ = _main(capsys, "eval", sampled["out"], "--data", "spiral")
    assert status == 0
    assert "swd=" in stdout and "coverage=" in stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(stdout)


def test_phase_run_json(runs, capsys):
    status, stdout, _ = _main(capsys, "phase", "--run", runs["u"], "--json")
    assert status == 0
    payload = _one_object(stdout)  # strict: a t_star that never crosses is null, not NaN
    assert {"t_star", "cos_centroid", "cos_curve"} <= payload.keys()
    assert len(payload["cos_centroid"]) == len(payload["cos_curve"]) == len(payload["t"]) > 1
    assert payload["t_star"] is None or 0 < payload["t_star"] <= 1


def test_phase_exact_json():
    res = _cli("phase", "--exact", "--data", "spiral", "--json")
    assert res.returncode == 0, res.stderr
    payload = _one_object(res.stdout)
    assert 0 < payload["t_star"] < 1
    assert len(payload["cos_centroid"]) == len(payload["cos_curve"]) > 1


# ----------------------------------------------------------------------------- bad input

_S = ["--steps", "2", "--n", "4", "--out", "{d}/s.npz"]  # sample arguments that would be fine
_T = ["--out", "{tmp}/never"]  # training must fail before it writes here

# (id, argv, keyword the one-line message must contain, run as a real subprocess)
BAD = [
    ("unknown-dataset", ["train", "--data", "spirall", *_T], "unknown dataset", True),
    ("missing-data-file", ["train", "--data", "{d}/nope.npy", *_T], "not found", False),
    ("npy-wrong-shape", ["train", "--data", "{d}/bad5.npy", *_T], "shape", False),
    ("csv-nan", ["train", "--data", "{d}/nan.csv", *_T], "NaN", False),
    ("csv-empty", ["train", "--data", "{d}/empty.csv", *_T], "empty", False),
    ("unknown-label", ["sample", "--run", "{l}", "--label", "birds", *_S], "birds", False),
    (
        "label-unlabelled-run",
        ["sample", "--run", "{u}", "--label", "cats", *_S],
        "without labels",
        False,
    ),
    ("missing-run", ["sample", "--run", "{d}/no-such-run", *_S], "no run", False),
    ("truncated-run", ["sample", "--run", "{d}/trunc", *_S], "truncated", True),
    ("foreign-run", ["sample", "--run", "{d}/foreign", *_S], "not a toydiff run", False),
    ("foreign-run-file", ["sample", "--run", "{d}/foreign.npz", *_S], "not a toydiff run", False),
    (
        "unknown-sampler",
        ["sample", "--run", "{u}", "--sampler", "rk4", *_S],
        "invalid choice",
        True,
    ),
    ("unknown-process", ["train", "--process", "ve2", *_T], "invalid choice", False),
    ("non-integer-steps", ["train", "--steps", "ten", *_T], "invalid int", False),
    ("train-steps-zero", ["train", "--steps", "0", *_T], "--steps", False),
    ("sample-steps-zero", ["sample", "--run", "{u}", *_S, "--steps", "0"], "--steps", False),
    ("sample-n-zero", ["sample", "--run", "{u}", *_S, "--n", "0"], "--n", False),
    (
        "cond-drop",
        ["train", "--data", "spiral-classes", "--labels", "--cond-drop", "1.5", *_T],
        "--cond-drop",
        False,
    ),
    (
        "labels-unlabelled-data",
        ["train", "--data", "spiral", "--labels", *_T],
        "labelled data",
        False,
    ),
    ("batch-size-negative", ["train", "--batch-size", "-5", *_T], "--batch-size", False),
    ("sigma-max-zero", ["train", "--sigma-max", "0", *_T], "--sigma-max", False),
    ("lr-negative", ["train", "--lr", "-1", *_T], "--lr", False),
    ("train-out-is-file", ["train", "--steps", "5", "--out", "{d}/nan.csv"], "is a file", False),
    ("eval-missing-npz", ["eval", "{d}/none.npz", "--data", "spiral"], "no samples file", False),
    ("eval-npz-without-x", ["eval", "{d}/nox.npz", "--data", "spiral"], "'x'", False),
    (
        "eval-truncated-npz",
        ["eval", "{d}/trunc.npz", "--data", "spiral"],
        "not a readable .npz",
        True,
    ),
    (
        "eval-unknown-label",
        ["eval", "{d}/cats.npz", "--data", "spiral-classes", "--label", "birds"],
        "birds",
        False,
    ),
    (
        "eval-label-out-of-range",
        ["eval", "{d}/cats.npz", "--data", "{d}/two.csv"],
        "label id",
        False,
    ),
    ("phase-neither", ["phase"], "--run", False),
    ("phase-exact-without-data", ["phase", "--exact"], "--data", False),
    (
        "negative-without-label",
        ["sample", "--run", "{l}", "--negative", "dogs", *_S],
        "--label",
        False,
    ),
    (
        "exact-with-guidance",
        ["sample", "--run", "{l}", "--label", "cats", "--exact", "--guidance", "2", *_S],
        "guidance",
        False,
    ),
    (
        "sample-out-under-file",
        ["sample", "--run", "{u}", *_S[:-1], "{d}/nan.csv/s.npz"],
        "cannot write",
        False,
    ),
    ("no-verb", [], "verb", False),
    ("unknown-verb", ["fly"], "invalid choice", False),
]


@pytest.mark.parametrize(("argv", "keyword", "real"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input(argv, keyword, real, paths, tmp_path, capsys):
    argv = [a.format(**paths, tmp=tmp_path) for a in argv]
    if real:
        res = _cli(*argv)
        status, stdout, stderr = res.returncode, res.stdout, res.stderr
    else:
        status, stdout, stderr = _main(capsys, *argv)
    assert status == 2
    assert stdout == ""
    _assert_one_line_error(stderr, keyword)
    assert not (tmp_path / "never").exists()


def test_json_never_holds_nan(capsys):
    """NaN and inf (e.g. a t_star whose curves never cross) are printed as null: strict JSON."""
    args = cli.build_parser().parse_args(["phase", "--json"])
    emit(args, {"t_star": float("nan"), "curve": np.array([1.0, np.inf]), "n": np.int64(3)}, "text")
    assert _one_object(capsys.readouterr().out) == {"t_star": None, "curve": [1.0, None], "n": 3}


def test_the_old_batch_flag_still_works_with_a_note(capsys):
    args = cli.build_parser().parse_args(
        ["images", "train", "--data", "digits", "--out", "r", "--batch", "32"]
    )
    assert args.batch_size == 32
    assert capsys.readouterr().err.strip() == "toydiff: note: --batch is now --batch-size"
