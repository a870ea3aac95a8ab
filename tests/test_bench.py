"""The benchmark reports every figure the README table needs (the values are not asserted)."""

import math

from toydiff import bench

KEYS = (
    "train_steps_per_s",
    "train_compile_s",
    "train_after_compile_s",
    "sample_2000x64_s",
    "field_frame_30x30_s",
    "trajectory_256x64_s",
    "widget_field_explorer_s",
    "widget_sampler_explorer_s",
    "widget_forward_explorer_s",
)


def test_bench_reports_every_figure():
    report = bench.run(steps=200, progress=False)
    assert report["train_steps"] == 200
    for key in KEYS:
        assert math.isfinite(report[key]) and report[key] > 0, key
    assert report["machine"]["cores"] >= 1 and report["machine"]["jax"]


def test_timed_takes_the_median():
    calls = []
    assert bench.timed(lambda: calls.append(1) or 0, repeats=3) >= 0
    assert len(calls) == 4  # one warm-up and three timed runs


def test_notebook_footprint_is_the_kernels_own(tmp_path):
    """A notebook that holds 256 MiB and burns CPU: the kernel's peak memory and CPU show it."""
    import nbformat

    cells = [
        "import numpy as np",
        "x = np.ones((32, 1024, 1024))  # 256 MiB",
        "s = sum(i * i for i in range(2_000_000))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(nb, tmp_path / "01_heavy.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "02_empty.ipynb")
    report = bench.time_notebooks(tmp_path)
    assert set(report["notebooks_s"]) == {"01_heavy", "02_empty"}
    heavy, empty = (report["notebooks_peak_mib"][k] for k in ("01_heavy", "02_empty"))
    assert heavy >= empty + 250 and 20 < empty < 1000
    assert report["notebooks_cpu_s"]["01_heavy"] > report["notebooks_cpu_s"]["02_empty"] + 0.1
    assert math.isclose(report["notebooks_total_s"], sum(report["notebooks_s"].values()))
