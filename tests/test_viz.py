"""Tests for toydiff.viz: each plot has the artists it promises; animations write playable files."""

import re

import imageio_ffmpeg
import matplotlib
import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.quiver import Quiver
from PIL import Image

from toydiff import metrics, palettes, viz
from toydiff.errors import DataError

matplotlib.use("Agg")  # viz never needs pyplot; this keeps any other figure off-screen too

THEMES = ["dark", "light"]


def _spiral(n: int = 30) -> np.ndarray:
    s = np.pi / 2 + np.linspace(0, 1, n) * 5 * np.pi
    return np.stack([s * np.cos(s), s * np.sin(s)], axis=1) / (5 * np.pi)


def _walk(steps: int = 8, n: int = 20, seed: int = 0) -> np.ndarray:
    """(steps, n, 2) random paths starting on the spiral."""
    rng = np.random.default_rng(seed)
    start = _spiral(n)[None]
    return start + np.cumsum(0.05 * rng.normal(size=(steps, n, 2)), axis=0) * (
        np.arange(steps)[:, None, None] > 0
    )


def _quiver(fig: Figure) -> Quiver:
    (q,) = [c for ax in fig.axes for c in ax.collections if isinstance(c, Quiver)]
    return q


def _lines_at(ax, x=None, y=None) -> list[Line2D]:
    """Straight lines of ax that are vertical at x or horizontal at y."""
    found = []
    for line in ax.get_lines():
        xs, ys = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        if x is not None and np.allclose(xs, x):
            found.append(line)
        if y is not None and np.allclose(ys, y):
            found.append(line)
    return found


def _pixels(fig: Figure) -> tuple[int, int]:
    w, h = fig.get_size_inches() * fig.dpi
    return round(w), round(h)


# ----------------------------------------------------------------------------- themes


def test_unknown_theme_raises_value_error_naming_allowed():
    with pytest.raises(ValueError, match="dark"):
        viz.points(_spiral(), theme="neon")
    with pytest.raises(ValueError, match="light"):
        viz.set_theme("neon")


def test_theme_context_restores_default():
    assert viz.palette()["name"] == "dark"
    with viz.theme("light") as t:
        assert t["name"] == "light"
        fig = viz.points(_spiral())
    assert fig.get_facecolor() == matplotlib.colors.to_rgba(palettes.THEMES["light"]["background"])
    assert viz.palette()["name"] == "dark"


def test_set_theme_changes_default():
    try:
        viz.set_theme("light")
        fig = viz.points(_spiral())
        assert fig.get_facecolor() == matplotlib.colors.to_rgba("#FFFFFF")
    finally:
        viz.set_theme("dark")


def test_themes_leave_global_rcparams_alone():
    before = matplotlib.rcParams["axes.facecolor"]
    viz.points(_spiral(), theme="dark")
    assert matplotlib.rcParams["axes.facecolor"] == before


@pytest.mark.parametrize("name", THEMES)
def test_palette_has_three_distinct_class_colours(name):
    t = viz.palette(name)
    assert len(set(t["classes"])) == 3
    assert t["sample"] not in t["classes"]
    assert t["title_size"] > t["font_size"] >= 14


@pytest.mark.parametrize("name", THEMES)
def test_class_colours_survive_colour_blindness(name):
    """Okabe-Ito colours that stay apart (Delta E >= 20) under every simulated colour blindness."""
    t = viz.palette(name)
    assert set(t["classes"]) | {t["sample"]} <= set(palettes.OKABE_ITO.values())
    classes = palettes.separation(t["classes"], t["background"])
    samples = palettes.separation([t["sample"], t["data"]], t["background"])
    assert set(classes) == {"normal", "protanopia", "deuteranopia", "tritanopia"}
    for vision in classes:
        assert classes[vision][0] >= 20, (vision, classes[vision])  # class from class
        assert classes[vision][1] >= 35, (vision, classes[vision])  # class from background
        assert samples[vision][0] >= 20, (vision, samples[vision])  # sample from data


def test_colour_blindness_simulation_is_the_published_one():
    # Machado et al. rows sum to 1: grey stays grey; pure red loses its red under protanopia.
    for matrix in palettes.CVD.values():
        assert np.allclose(matrix.sum(axis=1), 1.0, atol=1e-3)
    grey = palettes.lab("#808080")
    for vision in palettes.VISIONS:
        assert np.allclose(palettes.lab("#808080", vision), grey, atol=0.5)
    red, red_protan = palettes.lab("#FF0000"), palettes.lab("#FF0000", "protanopia")
    assert red[1] > 60 and abs(red_protan[1]) < 0.3 * red[1]
    assert np.allclose(palettes.lab("#FFFFFF"), [100, 0, 0], atol=0.1)
    with pytest.raises(ValueError, match="protanopia"):
        palettes.lab("#000000", "achromatic")


# ----------------------------------------------------------------------------- static plots


@pytest.mark.parametrize("name", THEMES)
def test_points_with_labels_has_class_legend(name):
    x = _spiral(30)
    labels = np.repeat([0, 1, 2], 10)
    fig = viz.points(x, labels=labels, data=x, title="classes", theme=name)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["people", "dogs", "cats"]
    assert len(ax.collections) == 2  # faint data + points
    assert ax.get_xlim() == (-1.5, 1.5) and ax.get_title() == "classes"
    colours = ax.collections[1].get_facecolors()
    assert len({tuple(c) for c in colours}) == 3


def test_points_into_given_axes_returns_its_figure():
    fig = Figure()
    ax = fig.subplots()
    assert viz.points(_spiral(), ax=ax, class_names=["a"]) is fig


def test_points_rejects_bad_shapes():
    with pytest.raises(DataError, match=r"\(n, 2\)"):
        viz.points(np.zeros((4, 3)))
    with pytest.raises(DataError, match="labels"):
        viz.points(np.zeros((4, 2)), labels=[0, 1])


@pytest.mark.parametrize("name", THEMES)
def test_vector_field_has_one_arrow_per_grid_point(name):
    pts = metrics.grid(10, 1.5)  # (100, 2)
    vectors = -pts * np.linspace(0.1, 3.0, len(pts))[:, None]
    fig = viz.vector_field(pts, vectors, data=_spiral(), title="field", theme=name)
    q = _quiver(fig)
    assert q.N == len(pts)
    np.testing.assert_allclose(np.hypot(q.U, q.V), 1.0, rtol=1e-6)  # normalized
    np.testing.assert_allclose(q.U / q.V, vectors[:, 0] / vectors[:, 1], rtol=1e-6)


def test_vector_field_raw_and_coloured_by_magnitude():
    pts = metrics.grid(6, 1.5)
    vectors = np.random.default_rng(0).normal(size=(36, 2))
    fig = viz.vector_field(pts, vectors, normalize=False, color_by_magnitude=True)
    q = _quiver(fig)
    np.testing.assert_allclose(q.U, vectors[:, 0])
    np.testing.assert_allclose(q.get_array(), np.linalg.norm(vectors, axis=1))
    assert len(fig.axes) == 2  # the colorbar


def test_vector_field_rejects_mismatched_counts():
    with pytest.raises(DataError, match="one vector per grid point"):
        viz.vector_field(metrics.grid(3), np.zeros((8, 2)))


@pytest.mark.parametrize("coloured", [False, True])
def test_update_vector_field_in_place(coloured):
    pts = metrics.grid(5, 1.5)
    fig = viz.vector_field(pts, -pts + 0.01, color_by_magnitude=coloured)
    q = _quiver(fig)
    new = np.tile([[3.0, 4.0]], (25, 1))
    assert viz.update_vector_field(fig, new) is q  # found from the figure
    np.testing.assert_allclose(q.U, 0.6)
    np.testing.assert_allclose(q.V, 0.8)
    if coloured:
        np.testing.assert_allclose(q.get_array(), 5.0)
    with pytest.raises(DataError, match="25 arrows"):
        viz.update_vector_field(q, new[:3])


@pytest.mark.parametrize("name", THEMES)
def test_trajectories_tail_is_a_line_collection(name):
    traj = _walk(steps=12, n=20)
    fig = viz.trajectories(traj, tail=5, data=_spiral(), highlight=3, theme=name)
    (ax,) = fig.axes
    (trail,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(trail.get_segments()) == 5 * 20
    alphas = trail.get_colors()[:, 3]
    assert alphas[0] < alphas[-1]  # oldest faintest
    (path,) = [line for line in ax.get_lines() if len(line.get_xdata()) == 12]
    np.testing.assert_allclose(path.get_xdata(), traj[:, 3, 0])


def test_random_walk_draws_every_step():
    paths = _walk(steps=10, n=15)
    fig = viz.random_walk(paths, data=_spiral(15), title="forward")
    (walks,) = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    assert len(walks.get_segments()) == 9 * 15
    alphas = walks.get_colors()[:, 3]
    assert alphas[0] > alphas[-1]  # fades with time


@pytest.mark.parametrize("name", THEMES)
def test_loss_curve_raw_and_smoothed(name):
    losses = np.exp(-np.arange(500) / 100) + 0.01
    fig = viz.loss_curve(losses, smooth=50, theme=name)
    ax = fig.axes[0]
    raw, avg = ax.get_lines()
    assert len(raw.get_xdata()) == 500 and len(avg.get_xdata()) == 451
    assert raw.get_alpha() < 1 and ax.get_yscale() == "log"
    fig = viz.loss_curve({"eps": losses, "naive": losses + 1}, log=False)
    assert len(fig.axes[0].get_lines()) == 4
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["eps", "naive"]


@pytest.mark.parametrize("name", THEMES)
def test_phase_curves_marks_t_star(name):
    t = np.linspace(1, 0, 21)  # descending on purpose
    fig = viz.phase_curves(t, 0.2 + 0.7 * t, 0.9 - 0.7 * t, t_star=0.38, theme=name)
    ax = fig.axes[0]
    assert len(_lines_at(ax, x=0.38)) == 1
    assert any(txt.get_text() == "t* = 0.38" for txt in ax.texts)
    first = ax.get_lines()[0]
    assert np.all(np.diff(first.get_xdata()) > 0)  # plotted with t ascending
    labels = [txt.get_text() for txt in ax.get_legend().get_texts()]
    assert any("centre" in s for s in labels) and any("nearest spiral" in s for s in labels)


def test_phase_curves_without_t_star_has_no_marker():
    t = np.linspace(0, 1, 5)
    fig = viz.phase_curves(t, t, 1 - t, t_star=float("nan"))
    assert len(fig.axes[0].texts) == 0


@pytest.mark.parametrize("name", THEMES)
def test_cfg_sweep_lines_target_and_default(name):
    ws = np.array([0.0, 1.0, 2.0, 4.0])
    acc = {k: np.array([0.4, 0.7, 0.96, 0.99]) for k in viz.CLASS_NAMES}
    fig = viz.cfg_sweep(ws, acc, default_w=2.0, theme=name)
    ax = fig.axes[0]
    assert len(_lines_at(ax, y=0.95)) == 1
    assert len(_lines_at(ax, x=2.0)) == 1
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:3] == list(viz.CLASS_NAMES)
    assert viz.cfg_sweep(ws, acc["cats"]).axes[0].get_lines()[0].get_marker() == "o"


def test_compare_one_axes_per_panel():
    x = _spiral()
    pts = metrics.grid(5)
    panels = [lambda ax: viz.points(x, ax=ax), lambda ax: viz.vector_field(pts, -pts, ax=ax)]
    fig = viz.compare(panels, ["with noise", "without noise"], suptitle="DDPM", theme="light")
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["with noise", "without noise"]
    light = matplotlib.colors.to_rgba("#FFFFFF")
    assert all(ax.get_facecolor() == light for ax in fig.axes)  # panels inherit the theme
    with pytest.raises(ValueError, match="titles"):
        viz.compare(panels, ["only one"])


def test_savefig_and_notebook_png(tmp_path):
    fig = viz.points(_spiral())
    path = viz.savefig(fig, tmp_path / "points.png")
    assert Image.open(path).format == "PNG"
    png, meta = fig._repr_png_()  # how Jupyter shows a pyplot-free figure
    assert png.startswith(b"\x89PNG") and meta["width"] > 100


# ----------------------------------------------------------------------------- animations


@pytest.fixture
def five_frames():
    return _walk(steps=5, n=40)


def test_animate_points_gif(tmp_path, five_frames):
    anim = viz.animate_points(five_frames, data=_spiral(), tail=2, titles="DDPM")
    fig = anim._fig
    w, h = _pixels(fig)
    assert w % 2 == 0 and h % 2 == 0
    path = viz.save_gif(anim, tmp_path / "points.gif", fps=10)
    with Image.open(path) as im:
        assert im.n_frames == 5
        assert im.size == (w, h)


def test_animate_points_mp4_is_h264(tmp_path, five_frames):
    labels = np.arange(40) % 3
    anim = viz.animate_points([five_frames, five_frames[:3]], labels=labels, titles=["a", "b"])
    path = viz.save_mp4(anim, tmp_path / "points.mp4", fps=10)
    assert path.stat().st_size > 0
    n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    assert abs(n_frames - 5) <= 1
    meta = next(imageio_ffmpeg.read_frames(str(path)))
    assert meta["codec"].startswith("h264")
    assert meta["pix_fmt"].startswith("yuv420p")
    assert tuple(meta["size"]) == _pixels(anim._fig)


def test_animate_points_side_by_side_panels(five_frames):
    anim = viz.animate_points([five_frames, five_frames], titles=["DDPM", "no noise"])
    fig = anim._fig
    assert [ax.get_title() for ax in fig.axes] == ["DDPM", "no noise"]
    assert _pixels(fig) == (720, 360)
    html = viz.to_html(anim)
    assert "<script" in html
    # offline: no stylesheet or font from a CDN, and every player button still has a label
    assert "http://" not in html and "https://" not in html and "<link" not in html
    assert "fa fa-" not in html
    buttons = re.findall(r"<button[^>]*>\s*([^<]*?)\s*</button>", html)
    assert buttons == [
        "\u2212",
        "\u00ab",
        "\u2039",
        "\u25c0",
        "||",
        "\u25b6",
        "\u203a",
        "\u00bb",
        "+",
    ]
    with pytest.raises(ValueError, match="titles"):
        viz.animate_points([five_frames, five_frames], titles=["one"])


def test_animate_field_title_follows_t(tmp_path):
    pts = metrics.grid(8)
    frames = np.stack([-pts * (1 + k) for k in range(4)])  # (4, 64, 2)
    anim = viz.animate_field(pts, frames, ts=[1.0, 0.75, 0.5, 0.25], data=_spiral())
    html = viz.to_html(anim)
    assert isinstance(html, str) and "<script" in html
    assert anim._fig.axes[0].get_title() == "t = 0.25"  # the last frame drawn
    assert _quiver(anim._fig).N == 64
    with pytest.raises(DataError, match="one time per frame"):
        viz.animate_field(pts, frames, ts=[1.0])
