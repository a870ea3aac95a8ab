"""Explorers for the image chapters: a guidance grid and a denoising film.

The same plumbing as the 2D lab's explorers (``toydiff.widgets``): one figure kept by the
explorer, redrawn in place, pushed to the page as PNG bytes, with ``.update()`` returning its
latency. Only the picture differs: a grid of images instead of points.
"""

from __future__ import annotations

import ipywidgets as widgets
import jax
import numpy as np
from matplotlib.figure import Figure

from toydiff.engine import samplers
from toydiff.engine.guidance import check_negative
from toydiff.errors import ToydiffError
from toydiff.images.judge import judge_for
from toydiff.images.viz import tile
from toydiff.widgets.base import SLIDER, Explorer, check_choice, check_range

NONE = "none"


def _grid_figure(picture: np.ndarray, theme: dict, inches: float = 4.5):
    """A figure holding one image artist (the tiled grid) and a title; returns (fig, ax, art)."""
    fig = Figure(figsize=(inches, inches), dpi=100, facecolor=theme["background"])
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.9))
    ax.set_axis_off()
    art = ax.imshow(picture, interpolation="nearest")
    ax.set_title(" ", color=theme["text"], fontsize=theme["title_size"])
    return fig, ax, art


class _GuidedGrid(Explorer):
    """A grid of guided samples from fixed noise, with a w slider; subclasses add the rest.

    A subclass sets its controls in ``_controls()`` (returning the widgets above the picture)
    and says what to steer toward and away from in ``_asked()``; the grid is sampled like any
    other request (``check_sample``, then ``run``), from noise drawn once.
    """

    def __init__(self, model, w, n, steps, theme):
        check_range("w", w, 0.0, 8.0)
        super().__init__(theme)
        self.model, self.steps = model, steps
        k_prior, self._key = jax.random.split(jax.random.key(0))
        self._x_init = model.process.prior(k_prior, (n, *model.sample_shape))
        self.w = widgets.FloatSlider(
            value=w, min=0.0, max=8.0, step=0.25, description="w", continuous_update=False,
            **SLIDER,
        )  # fmt: skip
        controls = self._controls()
        self.widget = widgets.VBox([*controls, self.image, self.readout, self.timing])
        self.error = None
        self._compute()
        fig, self._ax, self._art = _grid_figure(tile(self.samples), self.theme)
        self._adopt(fig, freeze=False)
        self.update()
        self._bind(self._inputs, self.update)

    def _controls(self) -> list:
        """The widgets above the picture; sets ``self._inputs`` (those that redraw)."""
        raise NotImplementedError

    def _asked(self):
        """(what to steer toward, what away from or None), as a user names them."""
        raise NotImplementedError

    def _sample(self) -> None:
        """Sample the grid with DDIM: guided toward the condition at w, away from the negative
        (or the null condition), from the fixed noise."""
        label, negative = self._asked()
        request = self.model.check_sample(
            x_init=self._x_init,
            steps=self.steps,
            sampler="ddim",
            label=label,
            negative=negative,
            guidance=self.w.value,
        )
        self.samples = np.clip(np.asarray(self.model.run(self._key, request)[-1]), -1, 1)


class ImageGuidanceExplorer(_GuidedGrid):
    """A grid of class-guided samples, redrawn when the class, w or the negative class moves.

    The starting noise is fixed, so moving w shows the same samples changing. The readout is
    the independent judge's verdict: the share labelled as asked, and the share labelled as the
    negative class.
    """

    def __init__(self, model, label, w=None, negative=None, n=36, steps=32, theme=None):
        names = model.class_names
        if model.config.condition != "class":
            raise ToydiffError("image_guidance_explorer needs a class-conditional image model")
        check_choice("label", label, names)
        check_choice("negative class", negative, (None, *names))
        check_negative(label, negative)  # as ImageModel.denoiser
        self._first = (label, negative)
        self._judge = judge_for(model.config.data, model.config.net.size)
        w = model.default_guidance(negative) if w is None else w
        super().__init__(model, w, n, steps, theme)

    def _controls(self) -> list:
        label, negative = self._first
        names = self.model.class_names
        self.label = widgets.Dropdown(options=names, value=label, description="class")
        self.negative = widgets.Dropdown(
            options=(NONE, *names), value=negative or NONE, description="negative"
        )
        self._inputs = [self.label, self.w, self.negative]
        return [widgets.HBox(self._inputs)]

    def _asked(self):
        neg = self.negative.value
        return self.label.value, None if neg == NONE else neg

    def _compute(self) -> None:
        self._sample()
        predicted = self._judge.predict(self.samples, self.model.config.label_by)
        self.accuracy = float(np.mean(predicted == self.model.condition(self.label.value)))
        neg = self.negative.value
        self.negative_share = (
            None if neg == NONE else float(np.mean(predicted == self.model.condition(neg)))
        )

    def _draw(self) -> None:
        self._art.set_data(tile(self.samples))
        neg = self.negative.value
        title = f"{self.label.value}, w = {self.w.value:g}"
        self._ax.title.set_text(title + ("" if neg == NONE else f", not {neg}"))
        text = f"judged as asked: {self.accuracy:.0%}"
        if self.negative_share is not None:
            text += f" &nbsp;|&nbsp; judged as {neg}: {self.negative_share:.0%}"
        self.readout.value = text


def image_guidance_explorer(
    model, label=None, w=None, negative=None, n=36, steps=32, theme=None
) -> ImageGuidanceExplorer:
    """Classifier-free guidance on images: pick a class, w and a negative class; see the grid.

    Args:
        model: a class-conditional ``ImageModel``.
        label: the class to steer toward (default: the first class).
        w: guidance weight (toydiff convention; None: 3, or 2 with a negative class).
        negative: a class to steer away from, or None.
        n: images in the grid.
        steps: DDIM steps.
        theme: ``"dark"``, ``"light"`` or None.

    Returns:
        An ``ImageGuidanceExplorer``; its ``.widget`` shows in a notebook.
    """
    label = model.class_names[0] if label is None else label
    return ImageGuidanceExplorer(model, label, w, negative, n, steps, theme)


class DenoisingExplorer(Explorer):
    """A grid of samples at one step of their denoising trajectory, chosen with a slider."""

    def __init__(self, trajectory, times, theme=None):
        super().__init__(theme)
        self.trajectory = np.clip(np.asarray(trajectory), -1, 1)
        self.times = np.asarray(times)
        last = len(self.trajectory) - 1
        self.step = widgets.IntSlider(
            value=last, min=0, max=last, description="step", continuous_update=True, **SLIDER
        )
        self.widget = widgets.VBox([self.step, self.image, self.readout, self.timing])
        fig, self._ax, self._art = _grid_figure(tile(self.trajectory[-1]), self.theme)
        self._adopt(fig, freeze=False)
        self.update()
        self._bind([self.step], self.update)

    def _draw(self) -> None:
        k = self.step.value
        self._art.set_data(tile(self.trajectory[k]))
        when = (
            "pure noise"
            if k == 0
            else ("clean" if k == len(self.trajectory) - 1 else f"t = {self.times[k]:.2f}")
        )
        self._ax.title.set_text(f"step {k} of {len(self.trajectory) - 1}: {when}")


def denoising_explorer(model, key=None, n=36, steps=32, sampler="ddim", theme=None, **kw):
    """Noise becoming images: sample once, then slide through the trajectory.

    Args:
        model: an ``ImageModel``.
        key: PRNG key (default key(0)).
        n: images in the grid.
        steps: sampler steps.
        sampler: one of ``samplers.SAMPLERS``.
        theme: ``"dark"``, ``"light"`` or None.
        **kw: passed to ``model.sample`` (label, guidance, negative, exact).

    Returns:
        A ``DenoisingExplorer``.
    """
    key = jax.random.key(0) if key is None else key
    traj = model.sample(key, n=n, steps=steps, sampler=sampler, **kw)
    times = np.append(samplers.frame_times(model.process, steps), 0.0)  # frame i is at times[i]
    return DenoisingExplorer(traj, times, theme)


class PromptExplorer(_GuidedGrid):
    """A grid drawn for a prompt, redrawn when the prompt, the negative prompt or w changes.

    The starting noise is fixed. A prompt with a word problem shows its one-line error in the
    readout and leaves the picture as it was. The readout is the attribute judges' verdict.
    """

    def __init__(self, model, prompt, negative=None, w=None, n=16, steps=32, theme=None):
        if model.config.condition != "text":
            raise ToydiffError("prompt_explorer needs a text-conditioned image model")
        model.condition(prompt)  # a bad first prompt is the caller's error, raised here
        self._first = (prompt, negative)
        w = model.default_guidance(negative) if w is None else w
        super().__init__(model, w, n, steps, theme)

    def _controls(self) -> list:
        prompt, negative = self._first
        layout = {"layout": {"width": "360px"}, "continuous_update": False}
        self.prompt = widgets.Text(value=prompt, description="prompt", **layout)
        self.negative = widgets.Text(value=negative or "", description="negative", **layout)
        self._inputs = [self.prompt, self.negative, self.w]
        return list(self._inputs)

    def _asked(self):
        return self.prompt.value, self.negative.value.strip() or None

    def _compute(self) -> None:
        from toydiff.images.judge import prompt_scores

        try:
            self._sample()
        except ToydiffError as err:
            self.error = str(err)
            return
        self.error = None
        self.scores = prompt_scores(self.samples, self.prompt.value, self.model.config.data)

    def _draw(self) -> None:
        if self.error is not None:
            self.readout.value = f"<span style='color:#cf222e'>{self.error}</span>"
            return
        self._art.set_data(tile(self.samples))
        negative = self.negative.value.strip()
        title = f"w = {self.w.value:g}" + (f", not: {negative}" if negative else "")
        self._ax.title.set_text(title)
        s = self.scores
        self.readout.value = (
            f"all named attributes right: {s['prompt_accuracy']:.0%} &nbsp;|&nbsp; "
            f"wearing a hat: {s['hat_share']:.0%}"
        )


def prompt_explorer(model, prompt="a large red circle wearing a hat", negative=None, w=None, n=16,
                    steps=32, theme=None) -> PromptExplorer:  # fmt: skip
    """Text to image: type a prompt and a negative prompt, move w, and see the grid.

    Args:
        model: a text-conditioned ``ImageModel``.
        prompt: what to draw.
        negative: what to steer away from (a prompt), or None.
        w: guidance weight (None: 3, or 2 with a negative prompt).
        n: images in the grid.
        steps: DDIM steps.
        theme: ``"dark"``, ``"light"`` or None.

    Returns:
        A ``PromptExplorer``.
    """
    return PromptExplorer(model, prompt, negative, w, n, steps, theme)
