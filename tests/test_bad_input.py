"""The bad-input matrix: every mistake a new user might make, caught before any work starts.

Two tables. ``CLI`` runs each command line through ``toydiff.cli.main`` in this process and
asserts exit status 2, nothing on stdout, exactly one line on stderr that starts with
``toydiff: error:`` and names the bad value, and no traceback. ``API`` calls the Python API that
notebooks and widgets use and asserts the same ToydiffError. A few rows run as real
subprocesses (``python -m toydiff``) to prove what a terminal sees.

"No work started" is asserted three ways for every row: the entry points of the work (the
training engine, every sampler, the demo builder, the benchmarks, JupyterLab, the warm-up, the
evaluators) are replaced by functions that fail the test if called; the per-test folder that
the outputs point into is left exactly as it was; and the fixture runs are not touched.

The runs are saved from untrained weights (no training: the checks never look at the weights),
and the free memory is fixed at 20 GB, so the memory rows give the same answer on any machine.
"""

import dataclasses
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from toydiff import cli
from toydiff import data as data_lib
from toydiff.engine import checkpoint, limits, samplers
from toydiff.engine.registry import Registry
from toydiff.errors import ToydiffError
from toydiff.images import clip as clip_lib
from toydiff.images import training as image_training
from toydiff.images.model import ImageModel, abstract_network, image_config, init_params
from toydiff.model import REFERENCE, REFERENCE_CONDITIONAL, Model
from toydiff.nets.mlp import init_network

FREE = 20 * 10**9  # the free memory every row sees (limits.available_bytes is replaced)


class WorkStarted(AssertionError):
    """Raised by a work entry point that a refused command reached."""


def _boom(what):
    def fail(*args, **kwargs):
        raise WorkStarted(f"{what} was called: the mistake was not caught before the work")

    return fail


# ----------------------------------------------------------------------------- fixtures


def _2d_run(config, out):
    graphdef, params = init_network(config.net, config.seed)
    cloud = data_lib.load(config.data)
    Model(config, graphdef, params, cloud, np.zeros(50, np.float32)).save(out)


def _image_run(config, out):
    graphdef, _ = abstract_network(config.net)
    params = init_params(config.net, config.seed)
    ImageModel(config, graphdef, params, np.zeros(8, np.float32)).save(out)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """Saved runs of every kind and a folder of bad files, as str.format placeholders."""
    root = tmp_path_factory.mktemp("bad_input")
    _2d_run(dataclasses.replace(REFERENCE, steps=50), root / "u")
    labelled = dataclasses.replace(
        REFERENCE_CONDITIONAL,
        steps=50,
        net=dataclasses.replace(REFERENCE_CONDITIONAL.net, num_classes=3),
    )
    _2d_run(labelled, root / "l")
    tiny = {"channels": (8, 16), "attention": False}
    _image_run(image_config("digits", **tiny), root / "img")
    _image_run(image_config("digits", condition="none", **tiny), root / "none")
    clip_lib.untrained(clip_lib.clip_config("shapes")).save(root / "clip")
    text = image_config("shapes", condition="text", clip=str(root / "clip"), **tiny)
    _image_run(text, root / "text")
    d = root / "files"
    d.mkdir()
    (d / "plain").write_text("a file, not a folder\n")
    (d / "folder.npz").mkdir()
    np.savez(d / "points.npz", x=np.random.default_rng(0).normal(size=(50, 2)))
    np.savez(d / "digits.npz", x=np.zeros((4, 8, 8, 1), np.float32))
    return {k: str(root / k) for k in ("u", "l", "img", "none", "clip", "text")} | {
        "d": str(d),
        "file": str(d / "plain"),
    }


@pytest.fixture
def no_work(monkeypatch):
    """Every entry point of the work fails the test if a refused command reaches it."""
    from toydiff import bench, demos, metrics
    from toydiff import lab as lab_lib
    from toydiff import training as training_lib
    from toydiff.images import bench as image_bench
    from toydiff.images import clip as clip_lib
    from toydiff.images import judge, shared_space

    booms = [(name, _boom(f"the {name} sampler")) for name in samplers.SAMPLERS]
    monkeypatch.setattr(samplers, "SAMPLERS", Registry("sampler", booms))
    for module, name in [
        (training_lib, "run_chunks"),
        (image_training, "run_chunks"),
        (clip_lib, "run_chunks"),
        (demos, "build"),
        (bench, "train"),
        (bench, "train_process"),
        (bench, "first_picture"),
        (image_bench, "run"),
        (lab_lib, "_serve"),
        (lab_lib, "copy_notebooks"),
        (lab_lib, "warmup"),
        (metrics, "phase_diagnostic"),
        (cli, "evaluate"),
        (judge, "evaluate"),
        (judge, "prompt_scores"),
        (shared_space, "similarity"),
        (shared_space, "zero_shot"),
        (shared_space, "nearest_words"),
    ]:
        monkeypatch.setattr(module, name, _boom(f"{module.__name__}.{name}"))
    monkeypatch.setattr(limits, "available_bytes", lambda: (FREE, "on this machine"))


def _state(folder) -> dict:
    """Every file and folder under ``folder``, with a file's size and modification time."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            out[path] = (st.st_size, st.st_mtime_ns) if os.path.isfile(path) else None
    return out


# ----------------------------------------------------------------------------- the CLI matrix

_S = ["--steps", "2", "--n", "4", "--out", "{tmp}/s.npz"]  # sample arguments that would be fine
_IS = ["--n", "4", "--steps", "2", "--out", "{tmp}/s.npz"]
_T = ["--steps", "5", "--out", "{tmp}/run", "--quiet"]  # training must fail before it writes
_IT = ["--data", "digits", "--steps", "5", "--batch-size", "16", "--out", "{tmp}/run", "--quiet"]
_MEM_2D = "--n 100000000 with --steps 64 needs about 309 GB"
_MEM_FIT = f"at most {(FREE - 0) // (4 * (2 * 65 * 2 + 512))} samples fit at 64 steps"

# (id, argv, text the one-line error must contain)
CLI = [
    # -- train (2D)
    ("train-unknown-data", ["train", "--data", "spirall", *_T], "unknown dataset 'spirall'"),
    ("train-steps-zero", ["train", *_T, "--steps", "0"], "--steps must be at least 1, got 0"),
    ("train-recipe", ["train", *_T, "--recipe", "quick"], "invalid choice: 'quick'"),
    ("train-fast-labels", ["train", *_T, "--recipe", "fast", "--labels"], "--recipe fast is"),
    ("train-seed-negative", ["train", "--seed", "-1", *_T], "argument --seed: must be a whole"),
    ("train-seed-huge", ["train", "--seed", str(2**64), *_T], f"got {2**64}"),
    ("train-lr-nan", ["train", "--lr", "nan", *_T], "argument --lr: must be a finite number"),
    ("train-lr-inf", ["train", "--lr", "inf", *_T], "got 'inf'"),
    ("train-lr-zero", ["train", "--lr", "0", *_T], "--lr must be a positive number, got 0.0"),
    ("train-sigma-max-nan", ["train", "--sigma-max", "nan", *_T], "argument --sigma-max"),
    ("train-sigma-max-zero", ["train", "--sigma-max", "0", *_T], "--sigma-max must be above"),
    (
        "train-sigma-max-not-ve",
        ["train", "--process", "flow", "--sigma-max", "5", *_T],
        "--process flow has none",
    ),
    ("train-cond-drop-nan", ["train", "--cond-drop", "nan", *_T], "argument --cond-drop"),
    (
        "train-cond-drop-range",
        ["train", "--data", "spiral-classes", "--labels", "--cond-drop", "1.5", *_T],
        "--cond-drop must be in [0, 1), got 1.5",
    ),
    (
        "train-cond-drop-without-labels",
        ["train", "--cond-drop", "0.2", *_T],
        "--cond-drop 0.2 drops labels",
    ),
    ("train-labels-unlabelled", ["train", "--labels", *_T], "'spiral' has no labels"),
    ("train-batch-negative", ["train", "--batch-size", "-5", *_T], "--batch-size must be 0"),
    ("train-process", ["train", "--process", "sde", *_T], "invalid choice: 'sde'"),
    ("train-out-is-file", ["train", "--steps", "5", "--out", "{file}"], "is a file"),
    (
        "train-out-under-a-file",
        ["train", "--steps", "5", "--out", "{file}/run"],
        "cannot write to {file}/run",
    ),
    (
        "train-out-holds-a-run",
        ["train", "--steps", "5", "--out", "{u}"],
        "{u} already holds a run (run.toydiff: a 2D run of spiral, 50 steps, saved",
    ),
    ("train-out-holds-a-run-hint", ["train", "--out", "{l}"], "pass --overwrite to replace it"),
    # -- sample (2D)
    ("sample-guidance-nan", ["sample", "--run", "{u}", "--guidance", "nan", *_S], "'nan'"),
    ("sample-guidance-inf", ["sample", "--run", "{u}", "--guidance", "inf", *_S], "'inf'"),
    (
        "sample-guidance-nan-labelled",
        ["sample", "--run", "{l}", "--label", "cats", "--guidance", "nan", *_S],
        "argument --guidance: must be a finite number, got 'nan'",
    ),
    (
        "sample-guidance-inf-labelled",
        ["sample", "--run", "{l}", "--label", "cats", "--guidance=-inf", *_S],
        "got '-inf'",
    ),
    (
        "sample-guidance-unconditional",
        ["sample", "--run", "{u}", "--guidance", "2", *_S],
        "--run {u}: this run (spiral) was trained without labels, so it has no classes",
    ),
    (
        "sample-guidance-without-label",
        ["sample", "--run", "{l}", "--guidance", "2", *_S],
        "guidance w = 2 needs a label to steer toward (--label)",
    ),
    (
        "sample-eta-above-one",
        ["sample", "--run", "{u}", "--sampler", "ddim", "--eta", "5", *_S],
        "--eta must be a finite number in [0, 1], got 5.0",
    ),
    (
        "sample-eta-negative",
        ["sample", "--run", "{u}", "--sampler", "ddim", "--eta", "-0.5", *_S],
        "got -0.5",
    ),
    (
        "sample-eta-nan",
        ["sample", "--run", "{u}", "--sampler", "ddim", "--eta", "nan", *_S],
        "argument --eta",
    ),
    (
        "sample-eta-without-ddim",
        ["sample", "--run", "{u}", "--eta", "0.5", *_S],
        "the ddpm sampler has no eta; only ddim takes eta",
    ),
    (
        "sample-eta-to-heun",
        ["sample", "--run", "{u}", "--sampler", "heun", "--eta", "0", *_S],
        "the heun sampler has no eta",
    ),
    (
        "sample-steps-huge",
        ["sample", "--run", "{u}", *_S, "--steps", "100000000"],
        "--steps must be a whole number from 1 to 10000 (more steps do not sample any better), "
        "got 100000000",
    ),
    ("sample-steps-zero", ["sample", "--run", "{u}", *_S, "--steps", "0"], "got 0"),
    ("sample-steps-float", ["sample", "--run", "{u}", *_S, "--steps", "2.5"], "invalid int"),
    ("sample-n-zero", ["sample", "--run", "{u}", *_S, "--n", "0"], "--n must be a whole"),
    ("sample-n-negative", ["sample", "--run", "{u}", *_S, "--n", "-3"], "got -3"),
    (
        "sample-n-huge",
        ["sample", "--run", "{u}", "--n", "100000000", "--out", "{tmp}/s.npz"],
        _MEM_2D,
    ),
    (
        "sample-n-huge-says-what-fits",
        ["sample", "--run", "{u}", "--n", "100000000", "--out", "{tmp}/s.npz"],
        _MEM_FIT,
    ),
    (
        "sample-same-class",
        ["sample", "--run", "{l}", "--label", "cats", "--negative", "cats", *_S],
        "label 'cats' and negative 'cats' are the same class; a negative must differ",
    ),
    (
        "sample-negative-without-label",
        ["sample", "--run", "{l}", "--negative", "dogs", *_S],
        "a negative needs something to steer toward",
    ),
    (
        "sample-negative-unconditional",
        ["sample", "--run", "{u}", "--label", "a", "--negative", "b", *_S],
        "trained without labels",
    ),
    (
        "sample-label-unconditional",
        ["sample", "--run", "{u}", "--label", "cats", *_S],
        "label 'cats' cannot be used",
    ),
    ("sample-unknown-label", ["sample", "--run", "{l}", "--label", "birds", *_S], "'birds'"),
    (
        "sample-exact-guidance",
        ["sample", "--run", "{l}", "--label", "cats", "--exact", "--guidance", "2", *_S],
        "need the network, not --exact",
    ),
    ("sample-unknown-sampler", ["sample", "--run", "{u}", "--sampler", "rk4", *_S], "'rk4'"),
    ("sample-seed-negative", ["sample", "--run", "{u}", "--seed", "-1", *_S], "got -1"),
    ("sample-missing-run", ["sample", "--run", "{tmp}/nothing", *_S], "no run at"),
    (
        "sample-bad-label-makes-no-folder",
        ["sample", "--run", "{l}", "--label", "birds", *_S[:-1], "{tmp}/new/s.npz"],
        "unknown label 'birds'",
    ),
    (
        "images-sample-bad-label-makes-no-folder",
        ["images", "sample", "--run", "{img}", "--label", "x", *_IS[:-1], "{tmp}/new/s.npz"],
        "unknown digit 'x'",
    ),
    ("sample-clip-run", ["sample", "--run", "{clip}", *_S], "not a diffusion run to sample"),
    (
        "sample-out-under-a-file",
        ["sample", "--run", "{u}", *_S[:-1], "{file}/s.npz"],
        "cannot write {file}/s.npz",
    ),
    (
        "sample-out-a-folder",
        ["sample", "--run", "{u}", *_S[:-1], "{d}/folder.npz"],
        "{d}/folder.npz is a directory",
    ),
    # -- eval
    ("eval-missing-file", ["eval", "{tmp}/none.npz", "--data", "spiral"], "no samples file"),
    ("eval-unknown-data", ["eval", "{d}/points.npz", "--data", "spirall"], "'spirall'"),
    (
        "eval-label-unlabelled-data",
        ["eval", "{d}/points.npz", "--data", "spiral", "--label", "cats"],
        "label 'cats' given, but spiral is unlabelled",
    ),
    # -- phase
    ("phase-nothing", ["phase"], "phase needs --run DIR, or --exact with --data"),
    ("phase-exact-without-data", ["phase", "--exact"], "--data"),
    ("phase-run-and-data", ["phase", "--run", "{u}", "--data", "spiral"], "--data spiral is for"),
    ("phase-unknown-data", ["phase", "--exact", "--data", "spirall"], "'spirall'"),
    ("phase-missing-run", ["phase", "--run", "{tmp}/nothing"], "no run at"),
    # -- demo
    ("demo-nothing", ["demo", "--out", "{tmp}/d"], "demo needs either a NAME or --all"),
    ("demo-both", ["demo", "cfg", "--all", "--out", "{tmp}/d"], "not both"),
    ("demo-unknown", ["demo", "spin", "--out", "{tmp}/d"], "unknown demo 'spin'"),
    ("demo-theme", ["demo", "cfg", "--theme", "blue", "--out", "{tmp}/d"], "'blue'"),
    ("demo-out-a-file", ["demo", "cfg", "--out", "{file}"], "cannot write to {file}: it is a"),
    # -- bench
    ("bench-steps-zero", ["bench", "--steps", "0"], "argument --steps: must be at least 1"),
    ("bench-batch-without-images", ["bench", "--batch-size", "8"], "--batch-size bench the image"),
    ("bench-images-with-steps", ["bench", "--images", "--steps", "9"], "--steps bench the 2D"),
    ("bench-images-batch-zero", ["bench", "--images", "--batch", "0"], "got 0"),
    ("bench-no-notebooks", ["bench", "--notebooks", "{tmp}"], "no chapter notebooks"),
    ("bench-versus-empty", ["bench", "--versus", " "], "--versus needs a command"),
    ("bench-versus-missing", ["bench", "--versus", "no-such-torch 15000"], "no program 'no-such"),
    ("bench-images-versus", ["bench", "--images", "--versus", "no-such-x"], "no program 'no-such"),
    ("bench-images-no-start", ["bench", "--images", "--no-start"], "--no-start bench the 2D"),
    # -- lab and warmup
    ("lab-port-too-big", ["lab", "--port", "70000", "{tmp}/lab"], "between 1 and 65535, got 70000"),
    ("lab-port-zero", ["lab", "--port", "0", "{tmp}/lab"], "got 0"),
    ("lab-port-word", ["lab", "--port", "http", "{tmp}/lab"], "invalid int value: 'http'"),
    ("lab-dir-a-file", ["lab", "{file}"], "{file} is a file"),
    (
        "lab-copy-only-with-port",
        ["lab", "--copy-only", "--port", "8888", "{tmp}/lab"],
        "--port is for serving",
    ),
    ("warmup-unknown-option", ["warmup", "--all"], "unrecognized arguments: --all"),
    ("warmup-cache-unwritable", ["warmup"], "cannot write to {file}/cache"),
    # -- images train
    ("images-train-data", ["images", "train", "--data", "faces", "--out", "{tmp}/r"], "'faces'"),
    ("images-train-steps-zero", ["images", "train", *_IT, "--steps", "0"], "at least 1, got 0"),
    ("images-train-seed", ["images", "train", *_IT, "--seed", "-1"], "got -1"),
    ("images-train-lr-nan", ["images", "train", *_IT, "--lr", "nan"], "'nan'"),
    ("images-train-lr-zero", ["images", "train", *_IT, "--lr", "0"], "--lr must be a positive"),
    (
        "images-train-cond-drop",
        ["images", "train", *_IT, "--cond-drop", "1.5"],
        "--cond-drop must be in [0, 1), got 1.5",
    ),
    (
        "images-train-cond-drop-no-condition",
        ["images", "train", *_IT, "--condition", "none", "--cond-drop", "0.2"],
        "--condition none has none",
    ),
    ("images-train-batch-zero", ["images", "train", *_IT, "--batch", "0"], "at least 1, got 0"),
    ("images-train-batch-huge", ["images", "train", *_IT, "--batch-size", "5000"], "size 5000 is"),
    ("images-train-size", ["images", "train", *_IT, "--size", "16"], "digits are 8x8"),
    (
        "images-train-out-holds-a-run",
        ["images", "train", *_IT, "--out", "{img}"],
        "{img} already holds a run (run.toydiff: an image run of digits, 8 steps, saved",
    ),
    (
        "images-train-out-under-a-file",
        ["images", "train", *_IT, "--out", "{file}/r"],
        "cannot write to {file}/r",
    ),
    (
        "images-train-resume-and-overwrite",
        ["images", "train", *_IT, "--resume", "--overwrite"],
        "give one of them",
    ),
    ("images-train-resume-nothing", ["images", "train", *_IT, "--resume"], "nothing to resume"),
    # -- images sample
    (
        "images-sample-guidance-nan",
        ["images", "sample", "--run", "{img}", "--label", "3", "--guidance", "nan", *_IS],
        "must be a finite number, got 'nan'",
    ),
    (
        "images-sample-guidance-inf",
        ["images", "sample", "--run", "{img}", "--label", "3", "--guidance", "inf", *_IS],
        "'inf'",
    ),
    (
        "images-sample-guidance-unconditional",
        ["images", "sample", "--run", "{none}", "--guidance", "2", *_IS],
        "--run {none}: this run (digits) was trained without labels",
    ),
    (
        "images-sample-guidance-without-label",
        ["images", "sample", "--run", "{img}", "--guidance", "2", *_IS],
        "guidance w = 2 needs a label",
    ),
    (
        "images-sample-eta-above-one",
        ["images", "sample", "--run", "{img}", "--sampler", "ddim", "--eta", "1.5", *_IS],
        "--eta must be a finite number in [0, 1], got 1.5",
    ),
    (
        "images-sample-eta-without-ddim",
        ["images", "sample", "--run", "{img}", "--sampler", "euler", "--eta", "0.3", *_IS],
        "the euler sampler has no eta",
    ),
    (
        "images-sample-same-class",
        ["images", "sample", "--run", "{img}", "--label", "7", "--negative", "7", *_IS],
        "label '7' and negative '7' are the same class",
    ),
    (
        "images-sample-same-prompt",
        ["images", "sample", "--run", "{text}", "--prompt", "a red circle"]
        + ["--negative-prompt", "a red circle", *_IS],
        "prompt 'a red circle' and negative prompt 'a red circle' are the same prompt",
    ),
    (
        "images-sample-same-prompt-other-spelling",
        ["images", "sample", "--run", "{text}", "--prompt", "a red circle"]
        + ["--negative-prompt", "A red  circle", *_IS],
        "are the same prompt",
    ),
    (
        "images-sample-steps-huge",
        ["images", "sample", "--run", "{img}", *_IS, "--steps", "100000000"],
        "from 1 to 10000",
    ),
    (
        "images-sample-n-huge",
        ["images", "sample", "--run", "{img}", "--n", "100000000", "--out", "{tmp}/s.npz"],
        "--n 100000000 with --steps 64 needs about",
    ),
    (
        "images-sample-clip-on-class-run",
        ["images", "sample", "--run", "{img}", "--clip", "{clip}", *_IS],
        "--clip reads prompts",
    ),
    (
        "images-sample-prompt-on-class-run",
        ["images", "sample", "--run", "{img}", "--prompt", "a 7", *_IS],
        "trained on classes, not prompts",
    ),
    (
        "images-sample-out-suffix",
        ["images", "sample", "--run", "{img}", *_IS[:-1], "{tmp}/s.txt"],
        "expected a .npz file name",
    ),
    (
        "images-sample-grid-under-a-file",
        ["images", "sample", "--run", "{img}", *_IS, "--grid", "{file}/g.png"],
        "cannot write {file}/g.png",
    ),
    # -- images eval
    (
        "images-eval-missing",
        ["images", "eval", "{tmp}/no.npz", "--data", "digits"],
        "no samples file",
    ),
    (
        "images-eval-label-and-prompt",
        ["images", "eval", "{d}/digits.npz", "--data", "digits", "--label", "1", "--prompt", "a"],
        "not both",
    ),
    (
        "images-eval-unknown-label",
        ["images", "eval", "{d}/digits.npz", "--data", "digits", "--label", "11"],
        "unknown digit '11'",
    ),
    # -- clip
    (
        "clip-train-out-holds-a-run",
        ["clip", "train", "--data", "shapes", "--out", "{clip}"],
        "{clip} already holds a run (run.toydiff: a toy CLIP of shapes",
    ),
    (
        "clip-train-out-under-a-file",
        ["clip", "train", "--data", "shapes", "--out", "{file}/c"],
        "cannot write to {file}/c",
    ),
    (
        "clip-train-steps",
        ["clip", "train", "--data", "shapes", "--steps", "0", "--out", "{tmp}/c"],
        "got 0",
    ),
    (
        "clip-train-seed",
        ["clip", "train", "--data", "shapes", "--seed", "-2", "--out", "{tmp}/c"],
        "got -2",
    ),
    (
        "clip-train-digits-size",
        ["clip", "train", "--data", "digits", "--size", "16", "--out", "{tmp}/c"],
        "digits are 8x8",
    ),
    (
        "clip-similarity-unknown-word",
        ["clip", "similarity", "--run", "{clip}", "--text", "a purple circle"],
        "unknown word 'purple'",
    ),
    (
        "clip-similarity-n-zero",
        ["clip", "similarity", "--run", "{clip}", "--n", "0", "--text", "a"],
        "got 0",
    ),
    (
        "clip-similarity-not-a-clip",
        ["clip", "similarity", "--run", "{u}", "--text", "a circle"],
        "not a toy CLIP",
    ),
    (
        "clip-similarity-missing-images",
        ["clip", "similarity", "--run", "{clip}", "--images", "{tmp}/x.npz", "--text", "a circle"],
        "no samples file",
    ),
    ("clip-classify-nothing", ["clip", "classify", "--run", "{clip}"], "--captions C [C ...] or"),
    (
        "clip-classify-attribute",
        ["clip", "classify", "--run", "{clip}", "--attribute", "mood"],
        "unknown attribute 'mood'",
    ),
    ("clip-nearest-nothing", ["clip", "nearest-words", "--run", "{clip}"], "exactly one of"),
    (
        "clip-nearest-k-zero",
        ["clip", "nearest-words", "--run", "{clip}", "--k", "0", "--text", "a"],
        "got 0",
    ),
    (
        "clip-nearest-missing-vector",
        ["clip", "nearest-words", "--run", "{clip}", "--vector", "{tmp}/v.npy"],
        "cannot read a vector",
    ),
    # -- no verb at all
    ("no-verb", [], "required: verb"),
    ("unknown-verb", ["fly"], "invalid choice: 'fly'"),
]

_ENV = {"warmup-cache-unwritable": {"TOYDIFF_CACHE": "{file}/cache"}}


def _fill(text: str, paths, tmp) -> str:
    return text.format(**paths, tmp=tmp)


def _check_one_line(status, stdout, stderr, expected):
    assert status == 2, f"exit status {status}, stderr {stderr!r}"
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1, f"stderr is not one line: {stderr!r}"
    assert "Traceback" not in stderr
    assert lines[0].startswith("toydiff: error: ")
    assert expected in lines[0], f"{expected!r} not in {lines[0]!r}"


@pytest.mark.parametrize(("argv", "expected"), [r[1:] for r in CLI], ids=[r[0] for r in CLI])
def test_cli_refuses_before_any_work(
    request, argv, expected, paths, tmp_path, capsys, monkeypatch, no_work
):
    for name, value in _ENV.get(request.node.callspec.id, {}).items():
        monkeypatch.setenv(name, _fill(value, paths, tmp_path))
    argv = [_fill(a, paths, tmp_path) for a in argv]
    runs = {k: _state(paths[k]) for k in ("u", "l", "img", "none", "clip", "text", "d")}
    before = _state(tmp_path)
    capsys.readouterr()
    status = cli.main(argv)
    stdout, stderr = capsys.readouterr()
    _check_one_line(status, stdout, stderr, _fill(expected, paths, tmp_path))
    assert _state(tmp_path) == before, "a refused command wrote to its output folder"
    assert {k: _state(paths[k]) for k in runs} == runs, "a refused command touched a run"


def test_every_verb_has_rows():
    """The matrix covers every verb the parser knows (and fails when a new one has no row)."""
    parser = cli.build_parser()
    verbs = parser._subparsers._group_actions[0].choices
    expected = set()
    for name, sub in verbs.items():
        if sub._subparsers is None:
            expected.add(name)
        else:
            expected |= {f"{name} {v}" for v in sub._subparsers._group_actions[0].choices}
    covered = {" ".join(a[:2]) if a[0] in ("images", "clip") else a[0] for _, a, _ in CLI if a}
    assert expected - covered == set()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["sample", "--run", "{u}", "--sampler", "ddim", "--eta", "5", *_S], "got 5.0"),
        (["train", "--steps", "5", "--out", "{u}"], "{u} already holds a run"),
    ],
    ids=["eta-5", "existing-run"],
)
def test_a_real_process_exits_2_with_one_line(argv, expected, paths, tmp_path):
    """``python -m toydiff``: what a terminal sees, exit status and all."""
    argv = [_fill(a, paths, tmp_path) for a in argv]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    res = subprocess.run(
        [sys.executable, "-m", "toydiff", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    _check_one_line(res.returncode, res.stdout, res.stderr, _fill(expected, paths, tmp_path))
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- the API matrix


@pytest.fixture(scope="module")
def models(paths):
    return {
        "u": Model.load(paths["u"]),
        "l": Model.load(paths["l"]),
        "img": ImageModel.load(paths["img"]),
        "none": ImageModel.load(paths["none"]),
        "text": ImageModel.load(paths["text"]),
        "clip": clip_lib.CLIPModel.load(paths["clip"]),
    }


K = jax.random.key(0)
SMALL = {"n": 4, "steps": 2}
NAN, INF = float("nan"), float("inf")


def _train_2d(**changes):
    from toydiff.training import train

    return train(dataclasses.replace(REFERENCE, **{"steps": 5, **changes}), progress=False)


def _widgets():
    from toydiff import widgets

    return widgets


def _image_widgets():
    from toydiff.images import widgets

    return widgets


def _sample_direct(sampler="ddpm", steps=2, n=4, **options):
    from toydiff.engine.oracle import point_set_oracle
    from toydiff.engine.processes import VE

    oracle = point_set_oracle(VE(), np.zeros((3, 2), np.float32))
    return samplers.sample(K, oracle, VE(), n, steps, sampler, **options)


# (id, call on the loaded models and the fixture paths, regex the ToydiffError must match)
API = [
    (
        "guidance-nan",
        lambda m, p: m["u"].sample(K, guidance=NAN, **SMALL),
        "finite number, got nan",
    ),
    ("guidance-inf", lambda m, p: m["u"].sample(K, guidance=INF, **SMALL), "got inf"),
    (
        "guidance-nan-labelled",
        lambda m, p: m["l"].sample(K, label="cats", guidance=NAN, **SMALL),
        "finite",
    ),
    (
        "guidance-inf-images",
        lambda m, p: m["img"].sample(K, label="3", guidance=-INF, **SMALL),
        "got -inf",
    ),
    (
        "guidance-nan-field",
        lambda m, p: m["l"].field(np.zeros((2, 2)), 0.5, label="cats", guidance=NAN),
        "finite",
    ),
    (
        "guidance-unconditional",
        lambda m, p: m["u"].sample(K, guidance=2.0, **SMALL),
        r"this run \(spiral\) was trained without labels, so it has no classes",
    ),
    (
        "guidance-unconditional-images",
        lambda m, p: m["none"].sample(K, guidance=2.0, **SMALL),
        r"this run \(digits\) was trained without labels.*--condition class",
    ),
    (
        "negative-unconditional",
        lambda m, p: m["u"].denoiser(negative="cats"),
        "a negative cannot be used",
    ),
    (
        "guidance-without-label",
        lambda m, p: m["l"].sample(K, guidance=2.0, **SMALL),
        "needs a label to steer toward",
    ),
    (
        "same-class",
        lambda m, p: m["l"].sample(K, label="cats", negative="cats", **SMALL),
        "label 'cats' and negative 'cats' are the same class",
    ),
    (
        "same-class-name-and-id",
        lambda m, p: m["l"].denoiser(label="cats", negative=2),
        "label 'cats' and negative 2 are the same class",
    ),
    (
        "same-class-images",
        lambda m, p: m["img"].sample(K, label="7", negative=7, **SMALL),
        "label '7' and negative 7 are the same class",
    ),
    (
        "same-class-one-sample-of-many",
        lambda m, p: m["img"].sample(
            K, n=3, steps=2, label=["1", "2", "3"], negative=["4", "2", "5"]
        ),
        "label '2' and negative '2'",
    ),
    (
        "same-prompt",
        lambda m, p: m["text"].sample(K, label="a red circle", negative="a red circle", **SMALL),
        "prompt 'a red circle' and negative prompt 'a red circle' are the same prompt",
    ),
    (
        "negative-without-label",
        lambda m, p: m["l"].sample(K, negative="dogs", **SMALL),
        "needs something to steer toward",
    ),
    ("eta-5", lambda m, p: m["u"].sample(K, sampler="ddim", options={"eta": 5}, **SMALL), "got 5"),
    (
        "eta-negative",
        lambda m, p: m["img"].sample(K, label="1", sampler="ddim", options={"eta": -0.1}, **SMALL),
        r"in \[0, 1\], got -0.1",
    ),
    (
        "eta-nan",
        lambda m, p: m["u"].sample(K, sampler="ddim", options={"eta": NAN}, **SMALL),
        "nan",
    ),
    (
        "eta-to-ddpm",
        lambda m, p: m["u"].sample(K, options={"eta": 0.5}, **SMALL),
        "the ddpm sampler has no eta; only ddim takes eta",
    ),
    (
        "eta-to-heun-images",
        lambda m, p: m["img"].sample(K, label="1", sampler="heun", options={"eta": 0.0}, **SMALL),
        "the heun sampler has no eta",
    ),
    (
        "unknown-option",
        lambda m, p: m["u"].sample(K, sampler="ddim", options={"temperature": 1}, **SMALL),
        "unknown sampler option 'temperature'",
    ),
    (
        "churn-negative",
        lambda m, p: m["u"].sample(K, sampler="sde", options={"churn": -1.0}, **SMALL),
        "churn must be a finite number at least 0",
    ),
    (
        "unknown-sampler",
        lambda m, p: m["u"].sample(K, sampler="rk4", **SMALL),
        "unknown sampler 'rk4'",
    ),
    (
        "steps-huge",
        lambda m, p: m["u"].sample(K, n=4, steps=100_000_000),
        "from 1 to 10000.*got 100000000",
    ),
    ("steps-zero", lambda m, p: m["img"].sample(K, label="1", n=4, steps=0), "got 0"),
    ("steps-float", lambda m, p: m["u"].sample(K, n=4, steps=2.5), "whole number.*got 2.5"),
    ("n-zero", lambda m, p: m["u"].sample(K, n=0, steps=2), "--n must be a whole number"),
    ("n-negative-images", lambda m, p: m["img"].sample(K, label="1", n=-3, steps=2), "got -3"),
    ("n-float", lambda m, p: m["u"].sample(K, n=2.5, steps=2), "got 2.5"),
    (
        "x-init-shape",
        lambda m, p: m["u"].sample(K, steps=2, x_init=np.zeros((4, 3))),
        r"x_init must have shape \(n, 2\), got \(4, 3\)",
    ),
    (
        "n-huge",
        lambda m, p: m["u"].sample(K, n=100_000_000, steps=64),
        "needs about 309 GB.*only 20 GB is free",
    ),
    (
        "n-huge-exact",
        lambda m, p: m["l"].sample(K, n=10_000_000, steps=64, label="cats", exact=True),
        "--n 10000000 with --steps 64 needs about",
    ),
    (
        "n-huge-images",
        lambda m, p: m["img"].sample(K, n=100_000_000, steps=64, label="1"),
        "at most .* samples fit at 64 steps",
    ),
    ("direct-eta-ddpm", lambda m, p: _sample_direct(eta=0.5), "has no eta"),
    ("direct-eta-range", lambda m, p: _sample_direct("ddim", eta=2.0), r"\[0, 1\]"),
    ("direct-steps", lambda m, p: _sample_direct(steps=10_001), "from 1 to 10000"),
    ("direct-n", lambda m, p: _sample_direct(n=0), "at least 1"),
    ("get-sampler", lambda m, p: samplers.get_sampler("dpm++"), "unknown sampler 'dpm\\+\\+'"),
    (
        "save-over-a-run",
        lambda m, p: m["u"].save(p["u"]),
        r"already holds a run \(run.toydiff: a 2D run of spiral, 50 steps.*overwrite=True",
    ),
    (
        "save-over-another-kind",
        lambda m, p: m["img"].save(p["l"]),
        "already holds a run .*a 2D run of spiral-classes",
    ),
    ("save-clip-over-a-run", lambda m, p: m["clip"].save(p["clip"]), "a toy CLIP of shapes"),
    ("train-steps-zero", lambda m, p: _train_2d(steps=0), "--steps must be at least 1"),
    ("train-lr-schedule", lambda m, p: _train_2d(lr_schedule="step"), "unknown lr_schedule 'step'"),
    ("train-seed-negative", lambda m, p: _train_2d(seed=-1), "--seed must be a whole number"),
    ("train-lr-nan", lambda m, p: _train_2d(lr=NAN), "--lr must be a positive number"),
    ("train-cond-drop-nan", lambda m, p: _train_2d(cond_drop=NAN), r"--cond-drop must be in"),
    ("train-cond-drop-no-labels", lambda m, p: _train_2d(cond_drop=0.2), "drops labels"),
    (
        "images-train-seed",
        lambda m, p: image_training.train(dataclasses.replace(m["img"].config, seed=-5)),
        "got -5",
    ),
    (
        "images-train-out-holds-a-run",
        lambda m, p: image_training.train(m["img"].config, out=p["img"]),
        "already holds a run",
    ),
    (
        "clip-train-steps",
        lambda m, p: clip_lib.train(clip_lib.clip_config("shapes", steps=0)),
        "--steps must be at least 1",
    ),
    (
        "widget-same-class",
        lambda m, p: _widgets().guidance_explorer(m["l"], label="cats", negative="cats"),
        "label 'cats' and negative 'cats' are the same class",
    ),
    (
        "image-widget-same-class",
        lambda m, p: _image_widgets().image_guidance_explorer(m["img"], label="7", negative="7"),
        "are the same class",
    ),
    (
        "widget-unconditional",
        lambda m, p: _widgets().guidance_explorer(m["u"]),
        "needs a class-conditional model",
    ),
    (
        "output-under-a-file",
        lambda m, p: checkpoint.check_output(os.path.join(p["file"], "run")),
        "cannot write to",
    ),
]


@pytest.mark.parametrize(("call", "expected"), [r[1:] for r in API], ids=[r[0] for r in API])
def test_api_raises_the_same_errors(call, expected, models, paths, no_work):
    runs = {k: _state(paths[k]) for k in ("u", "l", "img", "clip")}
    with pytest.raises(ToydiffError, match=expected):
        call(models, paths)
    assert {k: _state(paths[k]) for k in runs} == runs


# ----------------------------------------------------------------------------- the estimate


def test_the_memory_estimate_says_what_fits(models, no_work):
    """The "at most N samples" of the message is the largest n the same check lets through."""
    model = models["u"]
    with pytest.raises(ToydiffError, match=r"at most (\d+) samples fit") as err:
        model.check_sample(n=10**9, steps=64)
    fit = int(err.value.args[0].split("at most ")[1].split()[0])
    assert model.check_sample(n=fit, steps=64).n == fit
    with pytest.raises(ToydiffError, match="needs about"):
        model.check_sample(n=fit + 1, steps=64)
    # The formula of the limits docstring, by hand: 2 copies of 65 steps of 2 numbers, and
    # the MLP's two widest adjacent layers (128 + 128), twice.
    per_sample = 4 * (2 * 65 * 2 + 2 * 256)
    assert fit == FREE // per_sample
    assert math.isclose(
        limits.sample_bytes(fit, 64, (2,), model.network_floats)[0], fit * per_sample
    )
