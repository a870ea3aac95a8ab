"""The benchmark reports every figure the README table needs (the values are not asserted)."""

import dataclasses
import json
import math
import subprocess
import sys

import jax
import numpy as np
import pytest

from toydiff import bench
from toydiff.engine.registry import Registry
from toydiff.errors import DataError, ToydiffError
from toydiff.model import FAST

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
    report = bench.run(steps=200, progress=False, start=False)
    assert report["train_steps"] == 200
    for key in KEYS:
        assert math.isfinite(report[key]) and report[key] > 0, key
    assert report["machine"]["cores"] >= 1 and report["machine"]["jax"]
    assert report["fast_steps"] == FAST.steps and report["fast_train_wall_s"] > 0
    for key in ("fast_precision", "fast_coverage", "fast_t_star"):
        assert 0 <= report[key] <= 1, key


def test_whole_processes_report_their_start_up():
    """Two whole `toydiff train` processes on one fresh cache; each reports its age when training
    started, which must lie inside its whole run (the times themselves are not asserted)."""
    report = bench.processes(steps=50)
    for which in ("first", "second"):
        wall, to_step = report[f"process_{which}_s"], report[f"process_{which}_to_step_s"]
        assert 0 < to_step < wall, which
    assert report["process_train_s"] > 0


def test_versus_refuses_what_it_cannot_run():
    with pytest.raises(ToydiffError, match="needs a command"):
        bench.check_command("  ")
    with pytest.raises(ToydiffError, match="no program 'no-such-program-here'"):
        bench.check_command("no-such-program-here --steps 5")
    assert bench.check_command(f"{sys.executable} -c 'print(1)'")[1:] == ["-c", "print(1)"]


def test_first_picture_runs_the_tour_up_to_its_first_sampling_cell(tmp_path):
    import nbformat

    touch = f"pathlib.Path({str(tmp_path)!r}, 'ran-{{}}').touch()"
    cells = [
        "import pathlib",
        touch.format(1),
        f"class M:\n    def sample(self):\n        {touch.format(2)}\nM().sample()",
        touch.format(3),
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(nb, tmp_path / "tour.ipynb")
    assert bench.first_picture(tmp_path / "tour.ipynb") > 0
    assert sorted(p.name for p in tmp_path.glob("ran-*")) == ["ran-1", "ran-2"]
    nbformat.write(nbformat.v4.new_notebook(cells=nb.cells[:2]), tmp_path / "none.ipynb")
    with pytest.raises(ToydiffError, match="no cell that samples"):
        bench.first_picture(tmp_path / "none.ipynb")


def test_the_image_bench_skips_a_data_set_whose_extra_is_missing(monkeypatch):
    from toydiff.images import bench as image_bench
    from toydiff.images import data as image_data
    from toydiff.images.data.base import DataSpec

    def missing():
        raise DataError('needs an extra; pip install "toydiff[demo]"')

    spec = dataclasses.replace(image_data.spec("digits"), name="demo", check_installed=missing)
    registry = Registry("image data", (("demo", spec),), error=DataError)
    monkeypatch.setattr(image_data, "REGISTRY", registry)
    assert isinstance(spec, DataSpec)
    report = image_bench.run()
    assert report["models"] == [] and "toydiff[demo]" in report["skipped"]["demo"]


def test_the_image_recipe_runs_as_one_process_and_writes_what_it_sampled(tmp_path):
    out = tmp_path / "digits.npz"
    cmd = [sys.executable, "-m", "toydiff.images.recipe", "--steps", "10", "--per-class", "2"]
    done = subprocess.run(cmd + ["--out", str(out)], capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["steps"] == 10 and report["batch"] == 128 and report["images_sampled"] == 20
    for key in ("import_and_data_s", "train_s", "sample_s", "whole_s"):
        assert report[key] > 0
    assert report["whole_s"] >= report["train_s"] + report["sample_s"]
    with np.load(out) as f:
        assert f["x"].shape == (20, 8, 8, 1) and np.abs(f["x"]).max() <= 1.0
        np.testing.assert_array_equal(f["labels"], np.repeat(np.arange(10), 2))
    bad = subprocess.run(cmd[:3] + ["--per-class", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--per-class must be at least 1, got 0" in bad.stderr


def test_image_versus_times_both_and_judges_what_each_wrote():
    # The other program here copies real training digits of each class to {out}: the judge,
    # independent of both, must read nearly all of them as asked.
    from toydiff.images import bench as image_bench

    writer = (
        "import sys, numpy as np; from toydiff.images import data; d = data.load('digits'); "
        "i = np.concatenate([np.flatnonzero(d.labels == c)[:50] for c in range(10)]); "
        "np.savez(sys.argv[1], x=d.x[i], labels=d.labels[i]); "
        "import json; print(json.dumps(dict(train_s=1.0, sample_s=0.5)))"
    )
    command = f'{sys.executable} -c "{writer}" {{out}}'
    report = image_bench.versus(command, pairs=1, steps=10)
    assert report["versus_other_judged"] > 0.95
    assert 0.0 <= report["versus_toydiff_judged"] <= 1.0
    assert report["versus_other_train_s"] == 1.0 and report["versus_other_sample_s"] == 0.5
    assert report["versus_other_train_images_per_s"] == 10 * 128 / 1.0
    assert report["versus_other_sample_images_per_s"] == 500 / 0.5
    assert report["versus_speedup"] == pytest.approx(
        report["versus_other_wall_s"] / report["versus_toydiff_wall_s"]
    )
    for key in ("versus_toydiff_first_s", "versus_toydiff_train_s", "versus_toydiff_sample_s"):
        assert report[key] > 0


def test_the_image_bench_reports_flops_and_their_share_of_peak():
    from toydiff.images import bench as image_bench
    from toydiff.images.model import image_config

    config = image_config("digits")
    m = image_bench.bench_config(config, steps=4, n_sample=16, sample_steps=2)
    assert m["data"] == "digits" and m["image"] == [8, 8, 1] and m["params"] == 121_281
    assert m["train_images_per_s"] > 0 and m["sample_images_per_s"] > 0
    flops = m["forward_flops_per_image"]
    assert flops == 4_141_056
    assert abs(m["xla_forward_flops_per_image"] / flops - 1) < 0.25  # XLA's own count agrees
    assert m["train_tflops_per_s"] == pytest.approx(3 * flops * m["train_images_per_s"] / 1e12)
    assert m["sample_tflops_per_s"] == pytest.approx(
        2 * 2 * flops * m["sample_images_per_s"] / 1e12
    )
    peak = m["peak_tflops_per_s"]
    assert peak > 0.001  # any CPU multiplies 2048x2048 matrices faster than a GFLOP/s
    assert m["train_share_of_peak"] == pytest.approx(m["train_tflops_per_s"] / peak)
    assert m["sample_share_of_peak"] == pytest.approx(m["sample_tflops_per_s"] / peak)
    assert ("mfu" in m) == (image_bench.peak_flops(jax.devices()[0].device_kind) is not None)
