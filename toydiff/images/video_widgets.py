"""The story's opening as an explorer: type a prompt and watch noise become a short video.

The same plumbing as the image explorers (``toydiff.images.widgets``): one figure, redrawn in
place and pushed to the page as PNG bytes. The clips are sampled once per prompt (DDIM from
noise fixed once); the ``step`` slider scrubs the stored trajectory and the ``frame`` slider,
linked in the browser to a ``Play`` button, plays the clips, so the kernel only redraws.
"""

from __future__ import annotations

import time

import ipywidgets as widgets
import jax
import numpy as np
from matplotlib.figure import Figure

from toydiff.errors import ToydiffError
from toydiff.images import data as image_data
from toydiff.images.judge import judge_for, prompt_scores
from toydiff.images.viz import tile
from toydiff.widgets.base import SLIDER, Explorer, check_range

FPS = 6  # frames a second of the Play button
JUDGED = ("direction", "colour", "shape")  # the readout's order


def _row_figure(picture: np.ndarray, theme: dict, inches: float):
    """A figure ``inches`` wide holding one image artist (a row of clips) and a title."""
    h, w = picture.shape[:2]
    height = inches * h / w / 0.96 + 0.45
    fig = Figure(figsize=(inches, height), dpi=100, facecolor=theme["background"])
    ax = fig.add_axes((0.02, 0.02, 0.96, 1 - 0.47 / height))
    ax.set_axis_off()
    art = ax.imshow(picture, interpolation="nearest")
    ax.set_title(" ", color=theme["text"], fontsize=theme["title_size"])
    return fig, ax, art


class OpeningExplorer(Explorer):
    """n clips drawn for a prompt, shown at one denoising step and one frame.

    Only the prompt, the negative prompt and w resample (DDIM, from fixed noise); an empty
    prompt samples with the null condition. A prompt with a word problem shows its one-line
    error in the readout and keeps the picture. The readout is the clip judge's verdict.
    """

    def __init__(self, model, prompt, negative=None, w=None, n=4, steps=50, theme=None):
        config = getattr(model, "config", None)
        if getattr(config, "condition", None) != "text":
            raise ToydiffError("opening_explorer needs a text-conditioned clip model")
        if len(model.sample_shape) != 4:
            raise ToydiffError(
                "opening_explorer needs a clip model (samples of shape (F, H, W, C)), not an "
                f"image model of shape {tuple(model.sample_shape)}"
            )
        model.condition(prompt.strip() or None)  # a bad first prompt is the caller's error
        w = model.default_guidance(negative) if w is None else w
        check_range("w", w, 0.0, 8.0)
        super().__init__(theme)
        self.model, self.steps, self.frames = model, steps, model.sample_shape[0]
        self._judge = judge_for(config.data, config.net.size)
        k_prior, self._key = jax.random.split(jax.random.key(0))
        self._x_init = model.process.prior(k_prior, (n, *model.sample_shape))
        text = {"layout": {"width": "360px"}, "continuous_update": False}
        self.prompt = widgets.Text(value=prompt, description="prompt", **text)
        self.negative = widgets.Text(value=negative or "", description="negative", **text)
        self.w = widgets.FloatSlider(
            value=w, min=0.0, max=8.0, step=0.25, description="w", continuous_update=False,
            **SLIDER,
        )  # fmt: skip
        self.step = widgets.IntSlider(
            value=steps, min=0, max=steps, description="step", continuous_update=True, **SLIDER
        )
        self.frame = widgets.IntSlider(
            value=0, min=0, max=self.frames - 1, description="frame", continuous_update=True,
            **SLIDER,
        )  # fmt: skip
        self.play = widgets.Play(
            value=0, min=0, max=self.frames - 1, interval=1000 // FPS, repeat=True
        )
        self.link = widgets.jslink((self.play, "value"), (self.frame, "value"))
        self.widget = widgets.VBox([
            widgets.HBox([self.prompt, self.negative]), widgets.HBox([self.w, self.step]),
            widgets.HBox([self.play, self.frame]), self.image, self.readout, self.timing,
        ])  # fmt: skip
        self._asked_last, self.error = None, None
        self._compute()
        if self.error is not None:  # e.g. a negative prompt with no prompt
            raise ToydiffError(self.error)
        fig, self._ax, self._art = _row_figure(self._picture(), self.theme, min(9.0, 1.8 * n))
        self._adopt(fig, dynamic=(self._art, self._ax.title))
        self.update()
        self._bind([self.prompt, self.negative, self.w], self.update)
        self._bind([self.step, self.frame], self.redraw)

    def _asked(self):
        """(label, negative, guidance) as sampled: an empty prompt is the null condition."""
        prompt = self.prompt.value.strip() or None
        negative = self.negative.value.strip() or None
        return prompt, negative, None if prompt is None else self.w.value

    def _compute(self) -> None:
        asked = self._asked()
        self.error = None
        if asked == self._asked_last:  # the same clips: nothing to sample
            return
        label, negative, w = asked
        try:
            request = self.model.check_sample(
                x_init=self._x_init, steps=self.steps, sampler="ddim", label=label,
                negative=negative, guidance=w,
            )  # fmt: skip
        except ToydiffError as err:
            self.error = str(err)
            return
        self.trajectory = np.clip(np.asarray(self.model.run(self._key, request)), -1, 1)
        self._asked_last, self.verdict = asked, self._verdict(label)

    def _verdict(self, prompt) -> str:
        """The judge on the final clips: the named attributes and consistency, or for no prompt
        the consistent share and the judged directions."""
        final = self.trajectory[-1]
        if prompt is None:
            consistent = float(np.mean(self._judge.consistent(final)))
            judged = self._judge.predict(final, "direction")
            names = [*image_data.spec(self.model.config.data).attributes["direction"], "none"]
            counts = {names[d]: int(np.sum(judged == d)) for d in (0, 1, 2, 3, -1)}
            seen = ", ".join(f"{name} {c}" for name, c in counts.items() if c)
            return f"no prompt: consistent {consistent:.0%} | directions: {seen}"
        s = prompt_scores(final, prompt, self.model.config.data)
        parts = [f"{a} right: {s[f'{a}_accuracy']:.0%}" for a in JUDGED if f"{a}_accuracy" in s]
        return " | ".join([*parts, f"consistent: {s['consistent_share']:.0%}"])

    def _picture(self) -> np.ndarray:
        """The n clips at the chosen step and frame, tiled in a row."""
        clips = self.trajectory[self.step.value, :, self.frame.value]
        return tile(clips, ncols=len(clips))

    def _draw(self) -> None:
        self._art.set_data(self._picture())
        k = self.step.value
        when = "pure noise" if k == 0 else f"step {k} of {self.steps}"
        self._ax.title.set_text(f"{when}, frame {self.frame.value + 1} of {self.frames}")
        if self.error is not None:
            self.readout.value = f"<span style='color:#cf222e'>{self.error}</span>"
        else:
            self.readout.value = self.verdict

    def redraw(self) -> float:
        """Redraw the stored trajectory at the chosen step and frame (no sampling).

        Returns:
            The seconds it took, also stored in ``.latency``.
        """
        t0 = time.perf_counter()
        return self._show(t0, t0)


def opening_explorer(model, prompt="a red circle moving left", negative=None, w=None, n=4,
                     steps=50, theme=None) -> OpeningExplorer:  # fmt: skip
    """Text to video: type a prompt, scrub the denoising steps, and play the clips.

    Args:
        model: a text-conditioned clip ``ImageModel`` (samples (F, H, W, C)).
        prompt: what to draw; "" samples with the null condition (no prompt).
        negative: what to steer away from (a prompt), or None.
        w: guidance weight (None: the model's default for the negative).
        n: clips in the row.
        steps: DDIM steps.
        theme: ``"dark"``, ``"light"`` or None.

    Returns:
        An ``OpeningExplorer``; its ``.widget`` shows in a notebook.
    """
    return OpeningExplorer(model, prompt, negative, w, n, steps, theme)
