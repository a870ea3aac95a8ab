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
import time

import jax
import numpy as np

from toydiff.errors import ToydiffError
from toydiff.metrics import grid
from toydiff.model import REFERENCE, Model
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


def run(steps: int | None = None, progress: bool = True, notebooks=None) -> dict:
    """Train the reference model and time the lab's hot paths.

    Args:
        steps: training steps (default: the reference 15,000).
        progress: show the training progress bar on stderr.
        notebooks: a folder of chapter notebooks to run and time as well (optional).

    Returns:
        A JSON-ready dict: machine, training figures and timings in seconds.
    """
    from toydiff.widgets import bench_widgets

    if notebooks is not None:
        notebook_paths(notebooks)  # before the training, not after it
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
    if notebooks is not None:
        report.update(time_notebooks(notebooks))
    return report
