"""``toydiff bench``: how fast the lab is on this machine, on the reference settings.

Every figure is a wall-clock time measured after a warm-up call, so compilation is reported
separately (``compile_s``) and never mixed into the steady-state numbers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

from toydiff import metrics
from toydiff.errors import ToydiffError
from toydiff.metrics import grid
from toydiff.model import FAST, REFERENCE, Model
from toydiff.training import train


def machine() -> dict:
    """A short description of this machine: CPU model, core count, JAX version and backend."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
    }


def timed(fn, repeats: int = 5) -> float:
    """Median seconds of ``fn()`` (blocking on its result) over ``repeats`` runs after a warm-up."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench_model(model: Model) -> dict:
    """Sampling and field timings of a trained model (seconds)."""
    key = jax.random.key(0)
    points = grid(30, 1.5)
    return {
        "sample_2000x64_s": timed(lambda: model.sample(key, n=2000, steps=64)),
        "field_frame_30x30_s": timed(lambda: model.field(points, 0.5), repeats=50),
        "trajectory_256x64_s": timed(lambda: model.sample(key, n=256, steps=64), repeats=20),
    }


# The kernel's own peak memory: VmHWM of /proc/self/status, which exec resets (getrusage's
# ru_maxrss would include the memory of the process that launched the kernel, as it survives
# exec), and the CPU seconds of the kernel and of the processes it waited for.
FOOTPRINT_CELL = """import json as _json, resource as _resource
_me = _resource.getrusage(_resource.RUSAGE_SELF)
_kids = _resource.getrusage(_resource.RUSAGE_CHILDREN)
try:
    _peak = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
except (OSError, StopIteration):
    _peak = _me.ru_maxrss  # not Linux: an upper bound
print("toydiff-footprint", _json.dumps({"peak_rss_kib": _peak,
      "cpu_s": _me.ru_utime + _me.ru_stime + _kids.ru_utime + _kids.ru_stime}))"""


def _footprint(nb) -> dict:
    """The numbers printed by ``FOOTPRINT_CELL``, the last cell of an executed notebook."""
    for output in nb.cells[-1].get("outputs", []):
        text = output.get("text", "")
        if text.startswith("toydiff-footprint "):
            return json.loads(text.split(" ", 1)[1])
    raise ToydiffError("the footprint cell printed nothing")


def notebook_paths(directory) -> list[pathlib.Path]:
    """The chapter notebooks (NN_name.ipynb) in ``directory``; ToydiffError if there are none."""
    paths = sorted(pathlib.Path(directory).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise ToydiffError(f"no chapter notebooks (NN_name.ipynb) in {directory}")
    return paths


def time_notebooks(directory) -> dict:
    """Run every notebook in ``directory`` top to bottom, each in a fresh kernel, and measure it.

    Chapter 0's check (the tour runs in under 60 s) and the 5-minute budget for all notebooks
    are measured here, and so is each chapter's footprint on a shared classroom machine: the
    peak resident memory of its kernel and the CPU seconds it used (``getrusage`` in the kernel,
    read by one extra cell appended after the chapter's own). Needs the test extras (nbclient,
    ipykernel).

    Returns:
        ``{"notebooks_s": {name: wall s}, "notebooks_total_s": ...,
        "notebooks_cpu_s": {name: CPU s}, "notebooks_peak_mib": {name: MiB}}``.
    """
    try:
        import nbclient
        import nbformat
    except ImportError as err:
        raise ToydiffError(
            "timing notebooks needs the test extras: pip install -e '.[test]'"
        ) from err
    paths = notebook_paths(directory)
    times, cpu, peak = {}, {}, {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(FOOTPRINT_CELL))
        t0 = time.perf_counter()
        nbclient.NotebookClient(
            nb, timeout=600, resources={"metadata": {"path": str(path.parent)}}
        ).execute()
        times[path.stem] = time.perf_counter() - t0
        used = _footprint(nb)
        cpu[path.stem] = used["cpu_s"]
        peak[path.stem] = used["peak_rss_kib"] / 1024
    return {
        "notebooks_s": times,
        "notebooks_total_s": sum(times.values()),
        "notebooks_cpu_s": cpu,
        "notebooks_peak_mib": peak,
    }


def recipe_quality(model: Model, seed: int = 1) -> dict:
    """Chapter 6's checks on a spiral model: DDPM (2,000 samples, 64 steps) precision and coverage
    of the spiral, and the learned field's phase-change time t* (chapter 5)."""
    x = np.asarray(model.sample(jax.random.key(seed), n=2000, steps=64)[-1])
    curve = model.cloud.curve
    d = metrics.phase_diagnostic(lambda p, t: np.asarray(model.field(p, t)), model.cloud.x, curve)
    return {
        "precision": metrics.curve_precision(x, curve),
        "coverage": metrics.curve_coverage(x, curve),
        "t_star": d["t_star"],
    }


def fast_recipe(config=FAST) -> dict:
    """Train the fast recipe (``model.FAST``) in this process and score it like chapter 6."""
    t0 = time.perf_counter()
    model = train(config, progress=False)
    wall = time.perf_counter() - t0
    quality = recipe_quality(model)
    return {
        "fast_steps": model.steps,
        "fast_train_wall_s": wall,
        "fast_train_after_compile_s": model.timing["train_s"],
        **{f"fast_{k}": v for k, v in quality.items()},
    }


def train_process(cache, out, steps: int | None = None) -> dict:
    """One whole ``toydiff train`` process on the reference settings, timed from outside.

    Args:
        cache: the toydiff cache folder it uses (an empty one: nothing compiled yet).
        out: the run folder to write (replaced).
        steps: training steps (default: the reference 15,000).

    Returns:
        ``{"wall_s": the whole process, "first_step_s": its age when training started,
        "train_s": the training steps after compiling}``.
    """
    cmd = [sys.executable, "-m", "toydiff", "train", "--data", "spiral", "--out", str(out)]
    cmd += ["--quiet", "--json", "--overwrite"] + ([] if steps is None else ["--steps", str(steps)])
    env = {**os.environ, "TOYDIFF_CACHE": str(cache)}
    wall, stdout = timed_process(cmd, "the timed training process", env)
    report = json.loads(stdout)
    return {"wall_s": wall, "first_step_s": report["first_step_s"], "train_s": report["train_s"]}


def timed_process(argv: list[str], what: str, env=None) -> tuple[float, str]:
    """Run a whole process; its wall seconds and stdout, or ToydiffError with its last line."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
    except OSError as err:
        raise ToydiffError(f"{what}: cannot run {argv[0]}: {err.strerror}") from None
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ToydiffError(f"{what} failed: {last}")
    return wall, done.stdout


def processes(steps: int | None = None) -> dict:
    """Two whole training processes, one after the other, on one fresh cache folder.

    The first compiles everything; the second reads the compiled programs back from the
    persistent compilation cache (``toydiff.engine.compilation``), as the next notebook or CLI
    call does.
    """
    with tempfile.TemporaryDirectory() as cache:
        cold = train_process(cache, pathlib.Path(cache) / "run", steps)
        warm = train_process(cache, pathlib.Path(cache) / "run", steps)
    return {
        "process_first_s": cold["wall_s"],
        "process_second_s": warm["wall_s"],
        "process_first_to_step_s": cold["first_step_s"],
        "process_second_to_step_s": warm["first_step_s"],
        "process_train_s": warm["train_s"],
    }


def versus(command: str, steps: int | None = None, pairs: int = 3) -> dict:
    """toydiff's whole reference-training process side by side with another program's.

    On a shared, noisy machine only a ratio measured in one run means anything, so the two
    alternate, ``pairs`` times each, and the medians are compared. Each toydiff run is a fresh
    process on a cache warmed by one untimed run (a second run, as on any machine that has
    trained once); the first-ever run is ``processes()``'s ``process_first_s``.

    Args:
        command: the other program, e.g. a plain-PyTorch version of the same recipe.
        steps: toydiff's training steps (default 15,000; give the other program the same).
        pairs: how many times each runs.

    Returns:
        The median whole-process seconds of each, and ``versus_speedup`` (theirs / ours).
    """
    argv = check_command(command)
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as cache:
        out = pathlib.Path(cache) / "run"
        train_process(cache, out, steps)
        for _ in range(pairs):
            ours.append(train_process(cache, out, steps)["wall_s"])
            theirs.append(timed_process(argv, "--versus: the command")[0])
    return {
        "versus_command": command,
        "versus_toydiff_s": float(np.median(ours)),
        "versus_other_s": float(np.median(theirs)),
        "versus_speedup": float(np.median(theirs) / np.median(ours)),
        "versus_pairs": pairs,
    }


def check_command(command: str) -> list[str]:
    """The words of a command to time; ToydiffError if it is empty or its program is not found."""
    argv = shlex.split(command)
    if not argv:
        raise ToydiffError("--versus needs a command to compare with")
    if shutil.which(argv[0]) is None:
        raise ToydiffError(f"--versus: no program {argv[0]!r} (give a path or a command on PATH)")
    return argv


def first_picture(notebook=None) -> float:
    """Seconds from opening the tour to its first picture of generated samples.

    A fresh kernel runs the tour (``00_tour.ipynb``, shipped in the package) top to bottom, up
    to and including its first cell that samples the model; the clock includes the kernel's
    start, the imports and the live training. Needs the test extras (nbclient, ipykernel).
    """
    try:
        import nbclient
        import nbformat
    except ImportError as err:
        raise ToydiffError(
            "timing the tour needs the test extras: pip install -e '.[test]'"
        ) from err
    path = pathlib.Path(notebook or pathlib.Path(__file__).parent / "notebooks" / "00_tour.ipynb")
    nb = nbformat.read(path, as_version=4)
    first = next(
        (i for i, c in enumerate(nb.cells) if c.cell_type == "code" and ".sample(" in c.source),
        None,
    )
    if first is None:
        raise ToydiffError(f"{path} has no cell that samples a model")
    nb.cells = nb.cells[: first + 1]
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        nbclient.NotebookClient(nb, timeout=600, resources={"metadata": {"path": folder}}).execute()
        return time.perf_counter() - t0


def run(
    steps: int | None = None,
    progress: bool = True,
    notebooks=None,
    *,
    start: bool = True,
    versus_command: str | None = None,
) -> dict:
    """Train the reference model and time the lab's hot paths.

    Args:
        steps: training steps (default: the reference 15,000).
        progress: show the training progress bar on stderr.
        notebooks: a folder of chapter notebooks to run and time as well (optional).
        start: also time what comes before training: two whole training processes (the first
            compiling, the second reading the compilation cache) and the tour's first picture.
        versus_command: another program doing the same work (e.g. the plain-PyTorch recipe),
            timed against whole toydiff processes (``versus``); None skips it.

    Returns:
        A JSON-ready dict: machine, training figures and timings in seconds.
    """
    from toydiff.widgets import bench_widgets

    if notebooks is not None:
        notebook_paths(notebooks)  # before the training, not after it
    if versus_command is not None:
        check_command(versus_command)
    config = REFERENCE if steps is None else dataclasses.replace(REFERENCE, steps=steps)
    t0 = time.perf_counter()
    model = train(config, progress=progress)
    report = {
        "machine": machine(),
        "train_steps": model.steps,
        "train_wall_s": time.perf_counter() - t0,
        "train_compile_s": model.timing["compile_s"],
        "train_after_compile_s": model.timing["train_s"],
        "train_steps_per_s": model.timing["steps_per_s"],
    }
    report.update(bench_model(model))
    report.update(bench_widgets(model))
    report.update(fast_recipe())
    if start:
        report.update(processes(steps))
        report["tour_first_picture_s"] = first_picture()
    if versus_command is not None:
        report.update(versus(versus_command, steps))
    if notebooks is not None:
        report.update(time_notebooks(notebooks))
    return report
