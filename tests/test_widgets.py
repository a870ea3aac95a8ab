"""Tests for the notebook explorers: they build, every control redraws, and they stay fast."""

import dataclasses

import numpy as np
import pytest

from toydiff import widgets
from toydiff.engine.processes import VE, VP
from toydiff.errors import ToydiffError
from toydiff.model import REFERENCE, Model, TrainConfig
from toydiff.nets.mlp import NetConfig
from toydiff.training import train

SMALL = dataclasses.replace(REFERENCE, steps=300, chunk=150)
SMALL_CONDITIONAL = TrainConfig(
    data="spiral-classes",
    sigma_max=1.0,
    labels=True,
    cond_drop=0.2,
    steps=300,
    chunk=300,
    net=NetConfig(hidden=(64, 64), num_classes=3),
)


@pytest.fixture(scope="module")
def trained():
    """The small model, trained by live_training; returns it and the view that was shown."""
    shown = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(widgets.training_view, "display_view", shown.append)
        model = widgets.live_training(SMALL)
    return model, shown


@pytest.fixture(scope="module")
def model(trained):
    return trained[0]


@pytest.fixture(scope="module")
def labelled_model():
    return train(SMALL_CONDITIONAL, progress=False)


@pytest.fixture(scope="module")
def field(model):
    return widgets.field_explorer(model)


@pytest.fixture(scope="module")
def sampler(model):
    return widgets.sampler_explorer(model, n=64)


@pytest.fixture(scope="module")
def guidance(labelled_model):
    return widgets.guidance_explorer(labelled_model, n=200)


@pytest.fixture(scope="module")
def forward():
    return widgets.forward_explorer(n_walkers=4000, t=0.3)


def _redraws(explorer, control, value) -> bool:
    """Set a control's value; True if the picture changed."""
    before = explorer.image.value
    control.value = value
    return explorer.image.value != before


def _is_png(data: bytes) -> bool:
    return data[:8] == b"\x89PNG\r\n\x1a\n"


def test_widget_names_are_public_functions():
    for name in widgets.WIDGETS:
        assert callable(getattr(widgets, name))


def test_explorers_construct(field, sampler, guidance, forward):
    for explorer in (field, sampler, guidance, forward):
        assert _is_png(explorer.image.value)
        assert explorer.widget is not None
        assert explorer.latency > 0
        assert "ms" in explorer.timing.value
        assert "application/vnd.jupyter.widget-view+json" in explorer._repr_mimebundle_()


def test_field_explorer_controls_redraw(field):
    assert _redraws(field, field.t, 0.3)
    assert "t = 0.30" in field.readout.value and "cos to centre" in field.readout.value
    assert _redraws(field, field.mode, "both")
    assert set(field.fields) == {"learned", "exact"}
    assert len(field.fig.axes) == 2
    assert _redraws(field, field.mode, "exact")
    assert _redraws(field, field.mode, "learned")


def test_field_explorer_click_draws_flow_path(field):
    field.mode.value = "exact"
    field.t.value = 0.5
    paths = field.click(0.9, -0.9)
    path = paths["exact"]
    assert path.shape == (widgets.PATH_STEPS + 1, 2)
    np.testing.assert_allclose(path[0], [0.9, -0.9], atol=1e-6)
    # The exact field's probability flow ends on a training point.
    assert np.linalg.norm(field.model.cloud.x - path[-1], axis=1).min() < 0.1
    field.t.value = 0.4  # a new time clears the path
    assert field.paths == {}


def test_field_explorer_maps_a_pixel_click_to_data(field):
    field.mode.value = "learned"
    ax = field.fig.axes[0]
    x_disp, y_disp = ax.transData.transform((0.5, -0.25))
    height = field.fig.bbox.height
    event = {"type": "click", "dataX": int(x_disp), "dataY": int(height - y_disp)}
    field._on_event(event)
    np.testing.assert_allclose(field.paths["learned"][0], [0.5, -0.25], atol=0.02)
    field._on_event({"type": "click", "dataX": 0, "dataY": 0})  # the margin: ignored
    assert "learned" in field.paths


def test_field_explorer_is_fast_after_warm_up(field):
    field.mode.value = "learned"
    times = [field.update() for _ in range(5)]
    assert np.median(times) < 0.25


def test_sampler_explorer_controls_redraw(sampler):
    assert _redraws(sampler, sampler.sampler, "ddim")
    assert not sampler.eta.disabled
    assert _redraws(sampler, sampler.eta, 0.0)
    assert _redraws(sampler, sampler.sampler, "ddpm")
    assert sampler.eta.disabled
    assert _redraws(sampler, sampler.noise, False)
    assert sampler.name() == "ddpm-nonoise"
    assert _redraws(sampler, sampler.noise, True)
    assert _redraws(sampler, sampler.start_x, 0.5)
    assert _redraws(sampler, sampler.start_y, -0.5)
    assert _redraws(sampler, sampler.seed, 3)
    assert _redraws(sampler, sampler.frame, 10)
    assert _redraws(sampler, sampler.steps, 32)
    assert sampler.trajectory.shape == (33, sampler.n + 1, 2)
    assert sampler.frame.max == 32 and sampler.frame.value == 32
    sampler.steps.value = 64


def test_sampler_explorer_highlights_the_start_point(model):
    explorer = widgets.sampler_explorer(model, n=64, start=(-1.6, 1.8))  # compiled shapes
    np.testing.assert_allclose(explorer.trajectory[0, 0], [-1.6, 1.8], atol=1e-6)
    explorer.click(0.25, 0.75)
    np.testing.assert_allclose(explorer.trajectory[0, 0], [0.25, 0.75], atol=1e-6)


def test_scrubbing_does_not_sample_again(sampler, monkeypatch):
    calls = []
    original = sampler._sample
    monkeypatch.setattr(sampler, "_sample", lambda x: calls.append(1) or original(x))
    for frame in (0, 5, 17, 40):
        assert _redraws(sampler, sampler.frame, frame)
    assert calls == []
    assert sampler.timings["compute_s"] == 0.0
    sampler.eta.value = 0.35 if sampler.eta.value != 0.35 else 0.4
    assert calls == [1]


def test_sampler_explorer_is_fast_after_warm_up(sampler):
    times = [sampler.update() for _ in range(5)]
    assert np.median(times) < 0.25


def test_guidance_explorer_controls_and_readout(guidance):
    assert "class accuracy" in guidance.readout.value
    assert 0.0 <= guidance.accuracy <= 1.0
    assert guidance.negative_share is None
    assert _redraws(guidance, guidance.w, 6.0)
    assert _redraws(guidance, guidance.label, "people")
    assert _redraws(guidance, guidance.negative, "dogs")
    assert 0.0 <= guidance.negative_share <= 1.0
    assert "negative class (dogs)" in guidance.readout.value
    assert _redraws(guidance, guidance.negative, "none")


def test_guidance_explorer_needs_labels(model):
    with pytest.raises(ToydiffError, match="labels"):
        widgets.guidance_explorer(model)


def test_guidance_explorer_rejects_unknown_class(labelled_model):
    with pytest.raises(ToydiffError, match="'horses'.*'people'"):
        widgets.guidance_explorer(labelled_model, label="horses")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda m: widgets.field_explorer(m, mode="fancy"), "'fancy'.*'learned'"),
        (lambda m: widgets.sampler_explorer(m, sampler="magic"), "'magic'.*'ddim'"),
        (lambda m: widgets.sampler_explorer(m, steps=1000), "steps"),
        (lambda m: widgets.field_explorer(m, theme="neon"), "neon"),
    ],
)
def test_bad_inputs_raise_clear_errors(model, make, match):
    with pytest.raises(ToydiffError, match=match):
        make(model)


@pytest.mark.parametrize("t", [0.2, 0.5, 0.8])
def test_forward_explorer_variance_matches_closed_form(forward, t):
    assert _redraws(forward, forward.t, t)
    assert forward.ts[forward.step] == pytest.approx(t)
    sigma2 = float(VE().sigma(t)) ** 2
    assert forward.closed_form_variance == pytest.approx(sigma2, rel=1e-5)
    assert forward.simulated_variance == pytest.approx(sigma2, rel=0.05)
    assert "closed form" in forward.readout.value


def test_forward_explorer_works_for_vp():
    explorer = widgets.forward_explorer(process=VP(), n_walkers=2000, steps=20, t=0.5)
    assert explorer.simulated_variance == pytest.approx(explorer.closed_form_variance, rel=0.05)


def test_live_training_returns_the_model_and_shows_the_last_step(trained):
    model, shown = trained
    assert isinstance(model, Model)
    assert model.steps == SMALL.steps
    (view,) = shown
    assert view.label.value.startswith("step 300 / 300, loss ")
    assert _is_png(view.image.value)
    widgets.base.display_view(view)  # outside a Jupyter kernel, showing is a no-op


def test_bench_widgets_reports_median_seconds(model):
    report = widgets.bench_widgets(model, moves=3)
    assert set(report) == {
        "widget_field_explorer_s",
        "widget_sampler_explorer_s",
        "widget_forward_explorer_s",
    }
    assert all(0 < v < 1 for v in report.values())
