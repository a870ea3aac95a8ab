"""Lecture exports: the story's headline animations, rendered to GIF and MP4.

Each demo is a builder ``fn(models, *, theme="dark", quick=False) -> FuncAnimation``: it computes
arrays with the library (sampling, fields, random walks) and hands them to ``viz``, which does all
the drawing. ``render`` writes ``<name>.gif`` and ``<name>.mp4`` (H.264, browser-playable, via the
ffmpeg bundled with imageio-ffmpeg); ``render_all`` writes them all, the six ``HEADLINE`` demos

- ``forward``: random walks of the 100 spiral points under the VE process (chapter 3);
- ``phase``: the learned field -eps_hat as t falls from 1 to 0, with its phase change (chapter 5);
- ``noise``: DDPM with and without its noise term, from the same start (chapter 6);
- ``ddim``: deterministic DDIM in 16 steps beside DDPM in 64, from the same start (chapter 7);
- ``cfg``: the three classes sampled at guidance weights w from 0 to 5, same noise (chapter 8);
- ``negative``: "dogs" with and without the negative class "people" (chapter 9);

and ``opening``, the story's opening (chapter 12): it shows a text-to-video model turning
a clip of pure noise into a short video for a prompt: seven steps of one 50-step DDIM run side
by side, each playing its frames. Its model is the text-conditioned clip model
(``images.training.text_model(data="clips")``), trained once and cached like the others;
``quick=True`` plays its frames once instead of three times.

The three models (the reference spiral, the same trained 30,000 steps for the DDIM chapter, and
the 3-class model) are trained once and then loaded from ``training.cached_train``'s cache;
``quick=True`` uses 500-step models and fewer frames and points, for tests. Frames are 360 px
per panel at 15 fps or slower, so every file stays under ~2 MB.

Example: ``toydiff demo --all --out assets``, or ``demos.render("cfg", "out")``.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.animation import FuncAnimation

from toydiff import data as data_lib
from toydiff import metrics, viz
from toydiff.engine.guidance import DEFAULT_NEGATIVE_GUIDANCE
from toydiff.engine.processes import random_walk
from toydiff.engine.samplers import frame_times
from toydiff.errors import ToydiffError
from toydiff.model import REFERENCE, REFERENCE_CONDITIONAL, REFERENCE_LONG, Model, TrainConfig
from toydiff.training import cached_train
from toydiff.viz.style import figure, themed

HEADLINE = ("forward", "phase", "noise", "ddim", "cfg", "negative")
FORMATS = ("gif", "mp4")

QUICK_REFERENCE = dataclasses.replace(REFERENCE, steps=500)
"""A 500-step stand-in for the reference model (tests and previews)."""

QUICK_CONDITIONAL = dataclasses.replace(REFERENCE_CONDITIONAL, steps=500)
"""A 500-step stand-in for the 3-class model (tests and previews)."""

FORWARD_STEPS = 64  # walk steps over t in [0, 1]; the demo shows the first 3/4 of them
FORWARD_T_END = 0.75  # sigma(0.75) = 1.8, far wider than the spiral; later steps leave the view
FORWARD_LIM = 3.0
VISIBLE_SIGMA = 2 * viz.LIM  # sampling animations start once the cloud is about this wide
CFG_W_MAX = 5.0


@dataclasses.dataclass
class Models:
    """The trained models the demos draw from, trained (or loaded from the cache) on first use.

    Attributes:
        reference_config: settings of the unconditional spiral model.
        conditional_config: settings of the 3-class model.
        long_config: settings of the longer-trained spiral model of the DDIM chapter.
        progress: show a training progress bar on stderr when a model is not cached yet.
    """

    reference_config: TrainConfig = REFERENCE
    conditional_config: TrainConfig = REFERENCE_CONDITIONAL
    long_config: TrainConfig = REFERENCE_LONG
    progress: bool = True

    @classmethod
    def for_quality(cls, quick: bool = False, progress: bool = True) -> Models:
        """The reference models, or their 500-step stand-ins when ``quick``."""
        if quick:
            return cls(QUICK_REFERENCE, QUICK_CONDITIONAL, QUICK_REFERENCE, progress)
        return cls(progress=progress)

    @functools.cached_property
    def reference(self) -> Model:
        """The unconditional spiral model (VE, sigma_max 10)."""
        return cached_train(self.reference_config, progress=self.progress)

    @functools.cached_property
    def conditional(self) -> Model:
        """The 3-class model (people, dogs, cats; VE, sigma_max 1)."""
        return cached_train(self.conditional_config, progress=self.progress)

    @functools.cached_property
    def long(self) -> Model:
        """The spiral model trained for 30,000 steps (deterministic samplers show its errors)."""
        return cached_train(self.long_config, progress=self.progress)

    @functools.cached_property
    def clips(self):
        """The text-conditioned clip model of the opening (an ``images.model.ImageModel``)."""
        from toydiff.images import training as image_training

        return image_training.text_model(data="clips", progress=self.progress)


# ----------------------------------------------------------------------------- glue


def frame_count(anim: FuncAnimation) -> int:
    """Number of frames an animation saves."""
    return sum(1 for _ in anim.new_frame_seq())


def _caption(anim: FuncAnimation, titles=None, corner=None) -> FuncAnimation:
    """After each frame, set the panel titles (titles[i]: one per panel) and the corner text.

    ``corner`` replaces the step counter that ``viz.animate_points`` puts in the last panel.
    """
    fig, draw = anim._fig, anim._func
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    counter = panels[-1].texts[-1] if corner is not None else None

    def update(i, *args):
        draw(i, *args)
        for ax, text in zip(panels, titles[i] if titles is not None else (), strict=False):
            ax.set_title(text)
        if counter is not None:
            counter.set_text(corner[i])

    anim._func = update
    update(0)
    return anim


def _frame_times(process, steps: int) -> np.ndarray:
    """Time of each trajectory frame, (steps + 1,); the last frame (clean data) gets -inf."""
    return np.append(np.asarray(frame_times(process, steps), np.float64), -np.inf)


def _visible_from(process, steps: int) -> int:
    """First trajectory frame at which the cloud (std sigma(t)) is about as wide as the view."""
    sigmas = np.asarray(process.sigma(frame_times(process, steps)))
    return int(np.argmax(sigmas <= VISIBLE_SIGMA))


def _time_labels(process, steps: int, start: int = 0, suffix: str = "") -> list[str]:
    """'t = 0.50' for each shown trajectory frame, and 'clean' for the last."""
    return [
        ("clean" if np.isinf(t) else f"t = {t:.2f}") + suffix
        for t in _frame_times(process, steps)[start:]
    ]


def _coverage_title(name: str, x, cloud) -> str:
    """A panel title with the coverage of the spiral by the final samples x."""
    return f"{name}\ncoverage {metrics.curve_coverage(np.asarray(x), cloud.curve):.0%}"


def _trajectories(model: Model, runs: Sequence[dict], n: int, steps: int, seed: int):
    """Sample several runs from one starting noise and key; each run is kwargs of Model.sample."""
    key = jax.random.key(seed)
    x_init = model.process.prior(jax.random.fold_in(key, 1), (n, 2))  # (n, 2)
    return [np.asarray(model.sample(key, x_init=x_init, **{"steps": steps, **run})) for run in runs]


# ----------------------------------------------------------------------------- the demos


def forward(models: Models, *, theme="dark", quick: bool = False) -> FuncAnimation:
    """Forward diffusion is Brownian motion: the 100 spiral points random-walk away (chapter 3).

    Args:
        models: the demo models; only the reference config (data, process) is used, so nothing
            is trained.
        theme: ``"dark"`` or ``"light"``.
        quick: 7 frames instead of 49.

    Returns:
        A one-panel FuncAnimation over [-3, 3]^2; t (0 to 0.75) and sigma in the corner.
    """
    config = models.reference_config
    process = config.make_process()
    x0 = data_lib.load(config.data).x  # (100, 2)
    steps = FORWARD_STEPS // 8 if quick else FORWARD_STEPS
    ts, paths = random_walk(jax.random.key(0), process, jnp.asarray(x0), steps)
    shown = np.asarray(ts) <= FORWARD_T_END + 1e-6
    ts, paths = np.asarray(ts)[shown], np.asarray(paths)[shown]  # (T,), (T, 100, 2)
    anim = viz.animate_points(
        paths, data=x0, titles="forward diffusion", tail=3, theme=theme, lim=FORWARD_LIM
    )
    sigmas = np.asarray(process.sigma(ts))
    corner = [f"t = {t:.2f}, σ = {s:.2f}" for t, s in zip(ts, sigmas, strict=True)]
    return _caption(anim, corner=corner)


def phase(models: Models, *, theme="dark", quick: bool = False) -> FuncAnimation:
    """The learned field -eps_hat (normalised, 30 x 30 grid) as t falls from 1 to 0 (chapter 5).

    At large t every arrow points to the data's centre; near t ~ 0.4 they turn toward the
    nearest arm of the spiral (the phase change).

    Args:
        models: the demo models (uses ``reference``).
        theme: ``"dark"`` or ``"light"``.
        quick: 8 frames instead of 50.

    Returns:
        A one-panel FuncAnimation with t and sigma in the title.
    """
    model = models.reference
    ts = np.linspace(1.0, 0.0, 8 if quick else 50)
    grid = metrics.grid(30, viz.LIM)  # (900, 2)
    fields = np.stack([np.asarray(model.field(grid, float(t))) for t in ts])  # (T, 900, 2)
    anim = viz.animate_field(grid, fields, ts, data=model.cloud.x, theme=theme)
    sigmas = np.asarray(model.process.sigma(ts))
    titles = [(f"t = {t:.2f}  (σ = {s:.2g})",) for t, s in zip(ts, sigmas, strict=True)]
    return _caption(anim, titles=titles)


def noise(models: Models, *, theme="dark", quick: bool = False) -> FuncAnimation:
    """DDPM with its noise term and without it, from the same start (chapter 6).

    Without noise every step moves to the posterior mean, and the samples bunch up near the
    centre and cover little of the spiral; the titles give each run's coverage.

    Args:
        models: the demo models (uses ``reference``).
        theme: ``"dark"`` or ``"light"``.
        quick: 64 points and 12 steps instead of 256 and 64.

    Returns:
        A two-panel FuncAnimation with tails, from the first step where the cloud fits the view.
    """
    model = models.reference
    n, steps = (64, 12) if quick else (256, 64)
    runs = _trajectories(model, [{"sampler": "ddpm"}, {"sampler": "ddpm-nonoise"}], n, steps, 1)
    start = _visible_from(model.process, steps)
    titles = [
        _coverage_title(name, run[-1], model.cloud)
        for name, run in zip(("DDPM", "DDPM without noise"), runs, strict=True)
    ]
    anim = viz.animate_points(
        [r[start:] for r in runs], data=model.cloud.x, titles=titles, tail=4, theme=theme
    )
    return _caption(anim, corner=_time_labels(model.process, steps, start))


def ddim(models: Models, *, theme="dark", quick: bool = False) -> FuncAnimation:
    """Deterministic DDIM in 16 steps beside DDPM in 64, from the same start (chapter 7).

    DDIM's frames are held so both panels show the same time t: DDIM moves about every 4th frame.

    Args:
        models: the demo models (uses ``long``, as the chapter-7 check does).
        theme: ``"dark"`` or ``"light"``.
        quick: 64 points, 4 DDIM and 12 DDPM steps instead of 256, 16 and 64.

    Returns:
        A two-panel FuncAnimation with tails and coverage in the titles.
    """
    model = models.long
    n, fast, slow = (64, 4, 12) if quick else (256, 16, 64)
    ddim_run, ddpm_run = _trajectories(
        model, [{"sampler": "ddim", "steps": fast}, {"sampler": "ddpm", "steps": slow}], n, slow, 2
    )
    fast_t, slow_t = _frame_times(model.process, fast), _frame_times(model.process, slow)
    held = np.searchsorted(-fast_t, -slow_t, side="right") - 1  # DDIM's latest frame at t >= DDPM's
    ddim_run = ddim_run[held]  # (slow + 1, n, 2), in step with DDPM
    start = _visible_from(model.process, slow)
    titles = [
        _coverage_title(f"DDIM, {fast} steps", ddim_run[-1], model.cloud),
        _coverage_title(f"DDPM, {slow} steps", ddpm_run[-1], model.cloud),
    ]
    anim = viz.animate_points(
        [ddim_run[start:], ddpm_run[start:]], data=model.cloud.x, titles=titles, tail=4, theme=theme
    )
    return _caption(anim, corner=_time_labels(model.process, slow, start))


def cfg(models: Models, *, theme="dark", quick: bool = False) -> FuncAnimation:
    """The classifier-free guidance sweep: w from 0 to 5, one frame per w (chapter 8).

    Every frame shows the final samples of all three classes, each class from the same noise
    and key at every w, so only w changes. The weights are spaced quadratically, so half the
    frames show w <= 1.25, where the classes separate. w = 0 is the unconditional model, w = 1
    the plain conditional one (toydiff convention); the corner gives the mean class accuracy.

    Args:
        models: the demo models (uses ``conditional``).
        theme: ``"dark"`` or ``"light"``.
        quick: 6 weights, 32 points per class and 12 steps instead of 30, 100 and 64.

    Returns:
        A one-panel FuncAnimation with w in the title, points coloured by class.
    """
    model = models.conditional
    n_w, n, steps = (6, 32, 12) if quick else (30, 100, 64)
    cloud = model.cloud
    ws = CFG_W_MAX * np.linspace(0.0, 1.0, n_w) ** 2  # denser at small w, where classes separate
    labels = np.repeat(np.arange(cloud.num_classes), n)  # (classes * n,)
    frames, accuracy = [], []
    for w in ws:
        per_class = [
            _trajectories(model, [{"label": c, "guidance": w}], n, steps, 10 + c)[0][-1]
            for c in range(cloud.num_classes)
        ]
        frames.append(np.concatenate(per_class))
        accuracy.append(
            np.mean(
                [
                    metrics.class_accuracy(x, c, cloud.x, cloud.labels)
                    for c, x in enumerate(per_class)
                ]
            )
        )
    anim = viz.animate_points(
        np.stack(frames),
        data=cloud.x,
        labels=labels,
        class_names=cloud.class_names,
        titles="guidance w",
        theme=theme,
    )
    titles = [(f"guidance w = {w:.2f}",) for w in ws]
    corner = [f"class accuracy {a:.0%}" for a in accuracy]
    return _caption(anim, titles=titles, corner=corner)


def negative(models: Models, *, theme="dark", quick: bool = False) -> FuncAnimation:
    """Unguided samples beside "dogs" steered away from the negative class "people" (chapter 9).

    Both runs start from the same noise. Unguided (w = 0), about a third of the samples land on
    the inner (people) arc, drawn in its class colour. With the negative class replacing the
    unconditional prediction, eps = eps_people + w (eps_dogs - eps_people) at the default negative
    weight, they are pushed away from it from the first steps on. Titles give where samples land.

    Args:
        models: the demo models (uses ``conditional``).
        theme: ``"dark"`` or ``"light"``.
        quick: 64 points and 12 steps instead of 256 and 64.

    Returns:
        A two-panel FuncAnimation with tails.
    """
    model = models.conditional
    cloud = model.cloud
    n, steps = (64, 12) if quick else (256, 64)
    people, dogs = cloud.label_id("people"), cloud.label_id("dogs")
    runs = _trajectories(
        model,
        [{"label": "dogs", "guidance": 0.0}, {"label": "dogs", "negative": "people"}],
        n,
        steps,
        3,
    )
    names = ("unguided (w = 0)", f"dogs, negative people (w = {DEFAULT_NEGATIVE_GUIDANCE:g})")
    titles = [f"{name}\n{_landing(run[-1], cloud)}" for name, run in zip(names, runs, strict=True)]
    anim = viz.animate_points(
        runs,
        data=cloud.x,
        labels=np.full(n, dogs),
        class_names=cloud.class_names,
        titles=titles,
        tail=4,
        theme=theme,
    )
    arc = cloud.x[cloud.labels == people]
    for ax in anim._fig.axes:  # the negative class, in its colour, under the moving points
        ax.scatter(*arc.T, s=14, c=viz.palette(theme)["classes"][people], alpha=0.6, lw=0, zorder=1)
    return _caption(anim, corner=_time_labels(model.process, steps))


def _landing(x, cloud) -> str:
    """Where samples x land: the share nearest to each class, e.g. 'people 0% · dogs 100%'."""
    shares = [metrics.class_share(x, k, cloud.x, cloud.labels) for k in range(cloud.num_classes)]
    return " · ".join(
        f"{name} {s:.0%}"
        for name, s in zip(cloud.class_names, shares, strict=True)
        if s >= 0.005 or name == "people"
    )


OPENING_PROMPT = "a red circle moving left"
OPENING_SAMPLER_STEPS = 50  # DDIM steps of the opening's run; its panels show 7 of them
OPENING_FPS = 6


def opening(
    models: Models,
    *,
    theme="dark",
    quick: bool = False,
    model=None,
    prompt: str = OPENING_PROMPT,
    w: float | None = None,
) -> FuncAnimation:
    """The story's opening: pure noise becoming a short video of the prompt (chapter 12).

    One 50-step DDIM run of the text-conditioned clip model, shown at steps 0 (noise), 5, 10,
    20, 30, 40 and 50 side by side; every panel plays the clip's frames at its step, in a loop.

    Args:
        models: the demo models (uses ``clips``, unless ``model`` is given).
        theme: ``"dark"`` or ``"light"``.
        quick: the frames once instead of 3 times.
        model: a text-conditioned clip ``ImageModel`` to use instead of ``models.clips``.
        prompt: what to draw ("" samples with the null condition).
        w: guidance weight (None: the model's default).

    Returns:
        A seven-panel FuncAnimation of ``loops x frames`` frames, the prompt as its title.
    """
    from toydiff.images.viz import OPENING_STEPS as shown

    model = models.clips if model is None else model
    label = prompt.strip() or None
    traj = model.sample(
        jax.random.key(12), n=1, steps=OPENING_SAMPLER_STEPS, sampler="ddim", label=label,
        guidance=None if label is None else w,
    )  # fmt: skip
    clips = np.clip(np.asarray(traj)[list(shown), 0], -1, 1)  # (7, F, H, W, C)
    titles = ["noise" if k == 0 else f"step {k}" for k in shown]
    heading = f"“{label}”" if label else "no prompt"
    return _clip_panels(clips, titles, heading, loops=1 if quick else 3, theme=theme)


@themed
def _clip_panels(clips, titles, heading, loops: int, theme=None) -> FuncAnimation:
    """Clips (k, F, H, W, C) side by side, each in its titled panel, playing ``loops`` times."""
    from toydiff.images.viz import to_rgb

    k, frames = clips.shape[:2]
    rgb = [to_rgb(c) for c in clips]  # (F, H, W, 3) each
    fig = figure(k, 1.6, theme, height=2.2)
    arts = []
    for ax, clip, title in zip(fig.subplots(1, k), rgb, titles, strict=True):
        arts.append(ax.imshow(clip[0], interpolation="nearest"))
        ax.set_axis_off()
        ax.set_title(title, color=theme["text"])
    fig.suptitle(heading, color=theme["text"])

    def update(i: int) -> None:
        for art, clip in zip(arts, rgb, strict=True):
            art.set_data(clip[i % frames])

    update(0)
    fig.draw_without_rendering()  # lay out once, then freeze (as ``viz.animate_points``)
    fig.set_layout_engine("none")
    return FuncAnimation(fig, update, frames=loops * frames, interval=1000 // OPENING_FPS)


DEMOS: dict[str, Callable[..., FuncAnimation]] = {
    "forward": forward,
    "phase": phase,
    "noise": noise,
    "ddim": ddim,
    "cfg": cfg,
    "negative": negative,
    "opening": opening,
}
"""Demo name -> builder ``fn(models, *, theme, quick) -> FuncAnimation``."""

FPS = {
    "forward": 12,
    "phase": 10,
    "noise": 15,
    "ddim": 15,
    "cfg": 6,
    "negative": 15,
    "opening": OPENING_FPS,
}
"""Frames per second of each demo's files."""


# ----------------------------------------------------------------------------- rendering


def _check_name(name: str) -> None:
    """Raise ToydiffError for a name not in DEMOS, listing the names."""
    if name not in DEMOS:
        raise ToydiffError(f"unknown demo {name!r}; choose one of {', '.join(DEMOS)}")


def _check_formats(formats: Sequence[str]) -> None:
    """Raise ToydiffError for a format other than gif and mp4."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ToydiffError(f"unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}")


def build(
    name: str, *, theme="dark", quick: bool = False, models: Models | None = None
) -> FuncAnimation:
    """Build one demo's animation.

    Args:
        name: one of ``DEMOS``.
        theme: ``"dark"`` (projector) or ``"light"``.
        quick: fewer frames and points, and 500-step models (for tests and previews).
        models: the models to draw from; default ``Models.for_quality(quick)``.

    Returns:
        The FuncAnimation (see ``viz.save_gif``, ``viz.save_mp4``, ``viz.to_html``).

    Raises:
        ToydiffError: for an unknown name (the message lists ``DEMOS``) or theme.
    """
    _check_name(name)
    viz.palette(theme)  # an unknown theme fails before any training
    models = Models.for_quality(quick) if models is None else models
    return DEMOS[name](models, theme=theme, quick=quick)


def save(anim: FuncAnimation, name: str, out_dir, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write a built demo to ``out_dir/<name>.<format>`` for each format, at the demo's fps.

    Args:
        anim: the animation from ``build(name)``.
        name: its demo name (picks the file name and fps).
        out_dir: output folder, created if missing.
        formats: any of ``"gif"`` and ``"mp4"``.

    Returns:
        The paths written, in the order of ``formats``.

    Raises:
        ToydiffError: for an unknown name or format, or a folder that cannot be written.
    """
    _check_name(name)
    _check_formats(formats)
    writers = {"gif": viz.save_gif, "mp4": viz.save_mp4}
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ToydiffError(f"cannot write to {out}: {err.strerror or err}") from None
    paths = []
    for fmt in formats:
        t0 = time.perf_counter()
        path = writers[fmt](anim, out / f"{name}.{fmt}", fps=FPS[name])
        print(
            f"demo {name}: wrote {path} ({path.stat().st_size / 1e6:.2f} MB, "
            f"{frame_count(anim)} frames, {time.perf_counter() - t0:.1f} s)",
            file=sys.stderr,
        )
        paths.append(path)
    return paths


def render(
    name: str,
    out_dir,
    *,
    theme="dark",
    quick: bool = False,
    formats: Sequence[str] = FORMATS,
    models: Models | None = None,
) -> list[Path]:
    """Build one demo and write it as ``out_dir/<name>.gif`` and ``.mp4``.

    Args:
        name: one of ``DEMOS``.
        out_dir: output folder, created if missing.
        theme: ``"dark"`` or ``"light"``.
        quick: fewer frames and points, and 500-step models.
        formats: any of ``"gif"`` and ``"mp4"``.
        models: the models to draw from; default ``Models.for_quality(quick)``.

    Returns:
        The paths written.

    Raises:
        ToydiffError: for an unknown name, theme or format.
    """
    _check_name(name)
    _check_formats(formats)
    print(f"demo {name}: building{' (quick)' if quick else ''}", file=sys.stderr)
    anim = build(name, theme=theme, quick=quick, models=models)
    return save(anim, name, out_dir, formats)


def render_all(out_dir, **kw) -> list[Path]:
    """Render every demo (the ``HEADLINE`` six, then ``opening``) into ``out_dir``, training
    each model once (the opening's text-conditioned clip model too, when it is not cached).

    Args:
        out_dir: output folder.
        **kw: passed to ``render`` (theme, quick, formats, models).

    Returns:
        All paths written, demo by demo.
    """
    kw.setdefault("models", Models.for_quality(kw.get("quick", False)))
    return [path for name in DEMOS for path in render(name, out_dir, **kw)]
