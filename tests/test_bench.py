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
