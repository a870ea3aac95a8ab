"""Tests for the chapters' live controls: noise (ch 2), steps (ch 4), quality (ch 7), draw."""

import dataclasses

import numpy as np
import pytest

from toydiff import metrics, training, widgets
from toydiff.errors import ToydiffError
from toydiff.model import REFERENCE
from toydiff.widgets import draw, noise, quality

SMALL = dataclasses.replace(REFERENCE, steps=300, chunk=100)


def _is_png(data: bytes) -> bool:
    return data[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def snapshot_runs(tmp_path_factory):
    """Snapshots of two small runs (eps and naive) from a private cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOYDIFF_CACHE", str(tmp_path_factory.mktemp("cache")))
        return {
            "eps": training.cached_snapshots(SMALL, progress=False),
            "naive": training.cached_snapshots(
                dataclasses.replace(SMALL, objective="naive"), progress=False
            ),
        }


# ----------------------------------------------------------------------------- noise (ch 2)


def test_noise_draws_follow_the_exact_field_into_clusters():
    e = widgets.noise_explorer(n=16, seed=3)
    assert _is_png(e.image.value) and "to drop noise draws" in e.readout.value
    assert float(e.process.sigma(e.t_start)) == pytest.approx(1.0, rel=1e-4)
    before = e.image.value
    paths = e.drop_noise()
    assert paths.shape == (noise.PATH_STEPS + 1, 16, 2)
    assert e.image.value != before
    start, end = e.inside()
    assert end.all() and start.mean() < 0.5  # noise mostly misses; the exact field never does
    assert e.landed.shape == (16,) and set(e.landed) <= set(range(8))
    assert "16 draws" in e.readout.value and "16 ended inside" in e.readout.value
    # a draw dropped right next to a cluster centre goes to that cluster
    e.click(0.9, 0.05)
    assert e.paths.shape[1] == 17 and e.landed[-1] == 0
    np.testing.assert_allclose(e.paths[0, -1], [0.9, 0.05], atol=1e-6)
    second = e.drop_noise()  # a new key per press
    assert not np.allclose(second[0], paths[0])
    e.reset()
    assert e.paths.shape[1] == 0 and "Press the button" in e.readout.value


def test_noise_explorer_rejects_a_bad_n():
    with pytest.raises(ToydiffError, match=r"n must be in \[1, 2000\], got 0"):
        widgets.noise_explorer(n=0)


# ----------------------------------------------------------------------------- steps (ch 4)


def test_cached_train_keeps_a_snapshot_per_chunk(snapshot_runs, tmp_path, monkeypatch):
    eps = snapshot_runs["eps"]
    assert [m.steps for m in eps] == [100, 200, 300]
    assert [len(m.losses) for m in eps] == [100, 200, 300]
    np.testing.assert_array_equal(eps[1].losses, eps[2].losses[:200])  # one run, not three
    monkeypatch.setenv("TOYDIFF_CACHE", str(tmp_path))
    final = training.cached_train(SMALL, progress=False)
    for a, b in zip(
        training.jax.tree.leaves(eps[-1].params),
        training.jax.tree.leaves(final.params),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_snapshots_without_a_complete_entry_say_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TOYDIFF_CACHE", str(tmp_path))
    training.cached_train(SMALL, progress=False)
    folder = training.cache_folder(SMALL) / training.SNAPSHOTS
    for run in folder.glob("*/run.toydiff"):
        run.unlink()
    with pytest.raises(ToydiffError, match="no training snapshots"):
        training.cached_snapshots(SMALL, progress=False)


def test_steps_explorer_shows_each_run_at_the_chosen_step(snapshot_runs):
    e = widgets.steps_explorer(snapshot_runs, n=300)
    assert list(e.step.options) == [100, 200, 300] and e.step.value == 300
    assert set(e.samples) == {"eps", "naive"} and e.samples["eps"].shape == (300, 2)
    before, scores = e.image.value, dict(e.scores)
    e.step.value = 100
    assert e.image.value != before and e.scores != scores
    assert e.readout.value.startswith("step 100:") and "naive: precision" in e.readout.value
    # the same step again is kept, not sampled again
    memo = dict(e._memo)
    e.step.value = 300
    assert e._memo.keys() == memo.keys() and e.scores == scores


def test_steps_explorer_needs_runs_saved_at_the_same_steps(snapshot_runs):
    with pytest.raises(ToydiffError, match="different steps"):
        widgets.steps_explorer({"a": snapshot_runs["eps"], "b": snapshot_runs["naive"][:2]})
    with pytest.raises(ToydiffError, match="runs is empty"):
        widgets.steps_explorer({})


# ----------------------------------------------------------------------------- quality (ch 7)


def test_quality_explorer_scores_each_setting_against_ddpm_256(snapshot_runs):
    model = snapshot_runs["eps"][-1]
    e = widgets.quality_explorer({"small": model}, sampler="ddim", steps=8, n=400)
    x = np.asarray(model.sample(quality.jax.random.key(1), n=400, steps=8, sampler="ddim")[-1])
    np.testing.assert_allclose(e.samples, x, atol=1e-5)
    assert e.scores == pytest.approx(
        (
            metrics.curve_precision(x, model.cloud.curve),
            metrics.curve_coverage(x, model.cloud.curve),
        )
    )
    assert "DDPM 256 STEPS" in e.readout.value and "coverage" in e.readout.value
    before = e.image.value
    e.sampler.value = "euler"
    np.testing.assert_allclose(e.samples, x, atol=1e-4)  # Euler is DDIM, as chapter 7 shows
    e.steps.value = 4
    assert e.image.value != before and "euler, 4 steps" in e.readout.value
    assert e.model not in e.widget.children[0].children[1].children  # one model, no toggle


def test_quality_explorer_rejects_bad_settings(snapshot_runs):
    model = snapshot_runs["eps"][-1]
    with pytest.raises(ToydiffError, match="unknown sampler 'rk4'.*'ddim'"):
        widgets.quality_explorer({"m": model}, sampler="rk4")
    with pytest.raises(ToydiffError, match="unknown steps 5"):
        widgets.quality_explorer({"m": model}, steps=5)


# ----------------------------------------------------------------------------- draw your data


def _pixel(fig, x, y):
    """The PNG pixel (dataX, dataY) under data point (x, y) of the figure's only axes."""
    dx, dy = fig.axes[0].transData.transform((x, y))
    return {"dataX": dx - 0.5, "dataY": fig.bbox.height - dy - 0.5}


def test_mouse_strokes_become_evenly_spaced_points():
    e = widgets.draw_your_data()
    assert "drag to draw" in e.readout.value
    e._on_pen({"type": "mousemove", **_pixel(e.fig, 0.0, 0.0)})  # pen up: nothing
    assert len(e.points) == 0
    e._on_pen({"type": "mousedown", **_pixel(e.fig, -0.6, 0.2)})
    e._on_pen({"type": "mousemove", **_pixel(e.fig, 0.6, 0.2)})
    e._on_pen({"type": "mouseup"})
    e._on_pen({"type": "mousemove", **_pixel(e.fig, 0.6, -0.9)})  # pen up again
    pts = e.points
    assert len(pts) == 1 + int(1.2 // draw.SPACING)
    np.testing.assert_allclose(pts[0], [-0.6, 0.2], atol=0.01)  # the pixel grid's precision
    np.testing.assert_allclose(pts[:, 1], 0.2, atol=0.01)
    np.testing.assert_allclose(np.diff(pts[:, 0]), draw.SPACING, atol=1e-4)
    assert f"{len(pts)} points drawn" in e.readout.value
    e.reset()
    assert len(e.points) == 0


def test_too_little_drawing_refuses_to_train_with_a_hint():
    e = widgets.draw_your_data()
    e.stroke([(0.0, 0.0)])
    with pytest.raises(ToydiffError, match="draw at least 10 points first"):
        e.train()
    e._on_train()  # the button shows the same message instead of raising
    assert "draw at least 10 points" in e.status.value
    e.shape.value = "moons"
    assert len(e.points) == 1 + draw.SHAPE_POINTS and e.shape.value == "(add a shape)"


@pytest.mark.slow
@pytest.mark.quality
def test_a_drawn_ellipse_trains_into_samples_on_the_drawing(train_seed, quality):
    """The default recipe on a drawn closed curve: the chapters' checks hold on drawn data."""
    e = widgets.draw_your_data(seed=train_seed)
    angles = np.linspace(0, 2 * np.pi, 120)
    e.stroke([(np.cos(a), 0.6 * np.sin(a)) for a in angles])
    model = e.train()
    assert model.steps == draw.DRAW_CONFIG.steps and model.cloud.name == "drawn"
    quality.at_least("precision on the drawing", e.scores["precision"], 0.85)
    quality.at_least("coverage of the drawing", e.scores["coverage"], 0.95)
    assert "precision" in e.readout.value and e.field is not None
    assert e.explore.children[-1] is e.field.widget
