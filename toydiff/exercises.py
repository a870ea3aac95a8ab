"""Exercise checkers: test a learner's function against the library and say what is wrong.

Each chapter notebook ends with exercises. The learner fills in a small function, then passes it to
the chapter's checker::

    from toydiff.exercises import check_add_noise

    def add_noise(x0, t, eps):
        raise NotImplementedError  # your code here

    check_add_noise(add_noise)  # shows ❌ not done yet: ... until the function is filled in

A checker calls the function on inputs drawn with a fixed key, compares the result with the
library's own implementation, and compares it with the typical wrong answers too, so that a wrong
answer is named ("sign error", "forgot to square sigma", ...). It returns a ``Feedback``, which is
truthy when the answer is right and shows itself in green or red in a notebook. A checker never
raises: a function that raises, returns nothing or returns the wrong shape gets a one-line message.

Inputs are float32 ``jax.Array``s (uint8 NumPy pixels in chapter 2), so the function may use
``jnp`` or ``np``; the answer may be any array-like. Scalars (sigma, w) are Python floats.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import math
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from toydiff import data
from toydiff.engine import guidance, oracle, processes, samplers

_SEED = 2024  # every checker draws its inputs from key(_SEED + its chapter)
_N = 64  # rows per test input
_RTOL = _ATOL = 1e-4  # a float32 answer is well inside; every named mistake is far outside
_GREEN, _RED = "#1a7f37", "#cf222e"
_BROADCAST_HINT = (
    " (hint: a per-example value of shape (n,) needs [:, None] to broadcast against points of "
    "shape (n, 2))"
)


@dataclasses.dataclass(frozen=True)
class Feedback:
    """A checker's verdict: truthy when passed; shows itself in green or red in a notebook.

    Attributes:
        passed: whether the learner's function gave the reference answer.
        message: one line saying what is right, or naming what is wrong.
    """

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return f"{'✅' if self.passed else '❌'} {self.message}"

    def _colour(self) -> str:
        """Green for passed, red for failed."""
        return _GREEN if self.passed else _RED

    def _repr_html_(self) -> str:
        text = html.escape(str(self), quote=False)
        return f'<div style="color: {self._colour()}; font-weight: bold">{text}</div>'

    def _repr_markdown_(self) -> str:
        text = html.escape(str(self), quote=False)
        return f'<span style="color: {self._colour()}"><b>{text}</b></span>'


@dataclasses.dataclass(frozen=True, eq=False)
class _Case:
    """One call of the learner's function: its arguments, the right answer, the named wrong ones."""

    args: tuple
    want: np.ndarray
    mistakes: tuple[tuple[str, np.ndarray], ...] = ()


# ----------------------------------------------------------------------------------- the machinery


def _key(chapter: int) -> jax.Array:
    """The fixed key of a chapter's checker."""
    return jax.random.key(_SEED + chapter)


def _np(x) -> np.ndarray:
    """Any array as float64 NumPy, for comparisons and for computing the wrong variants."""
    return np.asarray(x, dtype=np.float64)


def _fresh(arg):
    """A copy of a mutable NumPy argument, so a learner's in-place edit cannot change the cases."""
    return arg.copy() if isinstance(arg, np.ndarray) else arg


def _one_line(text: str, limit: int = 200) -> str:
    """Text collapsed onto one line and cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _raised(exc: Exception) -> str:
    """The one-line message for a learner's function that raised."""
    detail = _one_line(str(exc))
    hint = _BROADCAST_HINT if "broadcast" in detail.lower() else ""
    return f"your function raised {type(exc).__name__}" + (f": {detail}" if detail else "") + hint


def _call(fn: Callable, signature: str, args: tuple):
    """Call the learner's function; return (result, None) or (None, Feedback) if it raised."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*(_fresh(a) for a in args)), None
    except NotImplementedError:
        message = f"not done yet: fill in the function {signature} and run this check again"
        return None, Feedback(False, message)
    except Exception as exc:  # a checker never raises; it reports
        return None, Feedback(False, _raised(exc))


def _as_array(out):
    """The learner's result as float64 NumPy, or (None, a message saying why it is not one)."""
    if out is None:
        return None, "your function returned None: did you forget the return statement?"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(out, dtype=np.float64), None
    except Exception:
        return None, f"your function returned a {type(out).__name__}, not an array of numbers"


def _close(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal within float32 round-off."""
    return bool(np.allclose(got, want, rtol=_RTOL, atol=_ATOL))


def _shape_message(want: tuple, got: tuple) -> str:
    """Expected vs got shape, with a hint when the answer is transposed."""
    message = f"wrong shape: expected {want}, got {got}"
    if len(got) == 2 and got == want[::-1]:
        message += " (transposed? stack the coordinates along the last axis, axis=-1)"
    return message


def _row(x: np.ndarray) -> str:
    """One row of numbers, short."""
    return np.array2string(x, precision=3, separator=", ", suppress_small=True)


def _unnamed_mistake(got: np.ndarray, want: np.ndarray) -> str:
    """Describe a wrong answer that matches none of the named mistakes."""
    if _close(got, -want):
        return "sign error: your result is minus the expected one"
    norm = float(np.vdot(want, want))
    scale = float(np.vdot(got, want)) / norm if norm > 0 else 0.0
    if scale != 0 and _close(got, scale * want):
        return f"off by a constant factor: your values are {scale:.3g} times the expected ones"
    err = np.abs(got - want)
    row = int(np.unravel_index(np.argmax(err), err.shape)[0])
    return (
        f"wrong values: the largest error is {err.max():.3g}, in row {row}: "
        f"expected {_row(want[row])}, got {_row(got[row])}"
    )


def _check_case(fn: Callable, signature: str, case: _Case, nan_hint: str) -> Feedback | None:
    """None if the learner's function gets this case right, else Feedback naming what is wrong."""
    out, failed = _call(fn, signature, case.args)
    if failed is not None:
        return failed
    got, problem = _as_array(out)
    if problem is not None:
        return Feedback(False, problem)
    if got.shape != case.want.shape:
        return Feedback(False, _shape_message(case.want.shape, got.shape))
    bad = int(np.sum(~np.isfinite(got)))
    if bad:
        return Feedback(
            False, f"your function returned NaN or inf in {bad} of {got.size} values{nan_hint}"
        )
    if _close(got, case.want):
        return None
    for message, wrong in case.mistakes:
        if _close(got, wrong):
            return Feedback(False, message)
    return Feedback(False, _unnamed_mistake(got, case.want))


def _check(
    fn, signature: str, cases: tuple[_Case, ...], success: str, nan_hint: str = ""
) -> Feedback:
    """Run every case; the first failing one gives the verdict."""
    if not callable(fn):
        return Feedback(False, f"expected a function {signature}, got a {type(fn).__name__}")
    for case in cases:
        failed = _check_case(fn, signature, case, nan_hint)
        if failed is not None:
            return failed
    return Feedback(True, success)


# --------------------------------------------------------------------------- chapter 0: the spiral

_S0, _S1 = math.pi / 2, 5 * math.pi


def _spiral_xy(s: np.ndarray) -> np.ndarray:
    """Points (s cos s, s sin s), shape (n, 2), not yet divided by s1."""
    return np.stack([s * np.cos(s), s * np.sin(s)], axis=-1)


def _spiral_case(n: int) -> _Case:
    """The reference spiral of n points and its typical wrong versions."""
    want = _np(data.spiral(n=n).x)
    s = _S0 + np.linspace(0.0, 1.0, n) * _S1
    circle = "forgot the factor s in (s cos s, s sin s): your points lie on a circle, not a spiral"
    mistakes = (
        ("forgot to divide by s1 = 5 pi: your points are ~15.7x too large", want * _S1),
        (
            "started s at 0 instead of s0 = pi/2: use s = pi/2 + linspace(0, 1, n) * 5 pi",
            _spiral_xy(s - _S0) / _S1,
        ),
        ("swapped sin and cos: your spiral is the mirror image (x and y exchanged)", want[:, ::-1]),
        (
            "s ends at 5 pi instead of pi/2 + 5 pi: use s = pi/2 + linspace(0, 1, n) * 5 pi",
            _spiral_xy(np.linspace(_S0, _S1, n)) / _S1,
        ),
        (circle, _spiral_xy(s) / s[:, None] / _S1),
        (circle, _spiral_xy(s) / s[:, None]),
    )
    return _Case((n,), want, mistakes)


@functools.cache
def _spiral_cases() -> tuple[_Case, ...]:
    """The reference spiral at the story's n = 100, and at a small n."""
    return (_spiral_case(100), _spiral_case(7))


def check_spiral(fn: Callable) -> Feedback:
    """Check ``fn(n) -> points (n, 2)``: the story's spiral (``toydiff.data.spiral``).

    s = pi/2 + linspace(0, 1, n) * 5 pi, and each point is (s cos s, s sin s) / (5 pi).

    Args:
        fn: the learner's function; n is a Python int.

    Returns:
        A ``Feedback``. Named mistakes: forgot to divide by s1; started s at 0; swapped sin and
        cos; s ends at 5 pi; forgot the factor s (a circle).
    """
    success = "correct: your spiral matches toydiff.data.spiral, 2.5 turns from radius 0.1 to 1.1"
    return _check(fn, "spiral(n)", _spiral_cases(), success)


# ------------------------------------------------------------------------------- chapter 2: pixels


@functools.cache
def _pixel_cases() -> tuple[_Case, ...]:
    """Two-pixel images (n, 2) uint8, the four corners first, and their typical wrong maps."""
    corners = np.array([[0, 0], [255, 255], [0, 255], [255, 0]], np.uint8)
    rand = np.asarray(jax.random.randint(_key(2), (_N - 4, 2), 0, 256), np.uint8)
    v = np.concatenate([corners, rand])
    f = v.astype(np.float64)
    want = f / 127.5 - 1  # no library function maps pixels to points; this is the definition
    wrapped = (2 * v.astype(np.int64)) % 256
    mistakes = (
        ("forgot the -1 shift: your points lie in [0, 2], not [-1, 1]", f / 127.5),
        ("divided by 255: your points lie in [0, 1], not [-1, 1]; use v / 127.5 - 1", f / 255),
        (
            "divided by 255 before the -1 shift: your points lie in [-1, 0], not [-1, 1]; "
            "divide by 127.5",
            f / 255 - 1,
        ),
        ("swapped the two pixels: pixel 0 is the x coordinate and pixel 1 is y", want[:, ::-1]),
        (
            "integer overflow: 2 * v wrapped around at 256 in uint8; convert to float first, "
            "e.g. v / 127.5 - 1",
            wrapped / 255 - 1,
        ),
    )
    return (_Case((v,), want, mistakes),)


def check_pixel_point(fn: Callable) -> Feedback:
    """Check ``fn(pixels) -> points``: a 2-pixel image is a point in the square [-1, 1]^2.

    Each pixel value v in 0..255 becomes the coordinate v / 127.5 - 1, so black (0, 0) is the
    corner (-1, -1) and white (255, 255) the corner (1, 1).

    Args:
        fn: the learner's function; pixels is a NumPy uint8 array (n, 2); it returns (n, 2).

    Returns:
        A ``Feedback``. Named mistakes: forgot the -1 shift; divided by 255 (range [0, 1], or
        [-1, 0] with the shift); swapped the two pixels; uint8 integer overflow.
    """
    success = "correct: black (0, 0) is the corner (-1, -1) and white (255, 255) the corner (1, 1)"
    return _check(fn, "pixels_to_point(pixels)", _pixel_cases(), success)


# ---------------------------------------------------------------------------- chapter 3: add noise


@functools.cache
def _add_noise_cases() -> tuple[_Case, ...]:
    """Spiral points at random times, noised by the library's VE marginal."""
    process = processes.VE()
    k_rows, k_t, k_eps = jax.random.split(_key(3), 3)
    x0 = jnp.asarray(data.spiral().x)[jax.random.randint(k_rows, (_N,), 0, 100)]
    t = jax.random.uniform(k_t, (_N,))
    xt, eps = process.marginal(k_eps, x0, t)
    x0_, eps_, t_ = _np(x0), _np(eps), _np(t)[:, None]
    sigma = _np(process.sigma(t))[:, None]
    mistakes = (
        (
            "used the variance sigma^2 instead of the standard deviation sigma: "
            "xt = x0 + sigma(t) eps",
            x0_ + sigma**2 * eps_,
        ),
        ("forgot x0: sigma(t) eps alone is pure noise; xt = x0 + sigma(t) eps", sigma * eps_),
        (
            "linear schedule sigma = 10 t: the reference schedule is log-linear, "
            "sigma(t) = 0.01 * 1000**t",
            x0_ + 10 * t_ * eps_,
        ),
        ("forgot to scale eps by sigma(t): xt = x0 + sigma(t) eps", x0_ + eps_),
    )
    return (_Case((x0, t, eps), _np(xt), mistakes),)


def check_add_noise(fn: Callable) -> Feedback:
    """Check ``fn(x0, t, eps) -> xt``: one jump of the reference VE forward process.

    xt = x0 + sigma(t) eps with sigma(t) = 0.01 * 1000**t (``toydiff.engine.processes.VE``).

    Args:
        fn: the learner's function; x0 (n, 2), t (n,) and eps (n, 2) are float32 arrays; it
            returns xt (n, 2).

    Returns:
        A ``Feedback``. Named mistakes: used the variance sigma^2; forgot x0 (pure noise); the
        linear schedule sigma = 10 t; forgot sigma.
    """
    success = (
        "correct: xt = x0 + sigma(t) eps on the log-linear VE schedule, "
        "as toydiff.engine.processes.VE"
    )
    return _check(fn, "add_noise(x0, t, eps)", _add_noise_cases(), success)


# --------------------------------------------------------------------------- chapter 4: the target


@functools.cache
def _eps_target_cases() -> tuple[_Case, ...]:
    """Noisy spiral points at sigma from ~0.03 to ~3.5, and the library's eps for them."""
    process = processes.VE()
    k_rows, k_t, k_eps = jax.random.split(_key(4), 3)
    x0 = jnp.asarray(data.spiral().x)[jax.random.randint(k_rows, (_N,), 0, 100)]
    t = jax.random.uniform(k_t, (_N,), minval=0.15, maxval=0.85)
    xt, _ = process.marginal(k_eps, x0, t)
    sigma = process.sigma(t)
    want = _np(process.eps_from_x0(xt, t, x0))
    diff, s = _np(xt) - _np(x0), _np(sigma)[:, None]
    mistakes = (
        (
            "sign error: (x0 - xt) / sigma points from the noisy point back to the data; "
            "the target is eps = (xt - x0) / sigma",
            -want,
        ),
        ("forgot to divide by sigma: xt - x0 is sigma eps, not eps", diff),
        (
            "divided by sigma^2 instead of sigma: (xt - x0) / sigma^2 is minus the score, not eps",
            diff / s**2,
        ),
        (
            "operator precedence: xt - x0 / sigma divides only x0; write (xt - x0) / sigma",
            _np(xt) - _np(x0) / s,
        ),
    )
    return (_Case((x0, xt, sigma), want, mistakes),)


def check_eps_target(fn: Callable) -> Feedback:
    """Check ``fn(x0, xt, sigma) -> eps``: the total-noise training target.

    eps = (xt - x0) / sigma (``toydiff.engine.processes.VE.eps_from_x0``).

    Args:
        fn: the learner's function; x0 (n, 2), xt (n, 2) and sigma (n,) are float32 arrays; it
            returns eps (n, 2).

    Returns:
        A ``Feedback``. Named mistakes: sign error; forgot to divide by sigma; divided by sigma^2;
        operator precedence (xt - x0 / sigma).
    """
    success = "correct: eps = (xt - x0) / sigma, the total noise the network learns to predict"
    return _check(fn, "eps_target(x0, xt, sigma)", _eps_target_cases(), success)


# --------------------------------------------------------------------------- chapter 5: the oracle

_DENOISER_SIGMAS = (0.3, 0.05)  # large enough and small enough to tell the mistakes apart


def _softmax_mean(logits: np.ndarray, points: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax of logits (n, m) along ``axis``, then the weighted mean of points (m, d)."""
    w = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return (w / w.sum(axis=axis, keepdims=True)) @ points


def _denoiser_case(key: jax.Array, sigma: float) -> _Case:
    """Noisy spiral points at one sigma, the library oracle's x0_hat, and the wrong versions."""
    process = processes.VE()
    points = jnp.asarray(data.spiral().x)
    k_rows, k_eps = jax.random.split(key)
    t = process.t_of_sigma(sigma)
    x0 = points[jax.random.randint(k_rows, (_N,), 0, points.shape[0])]
    xt, _ = process.marginal(k_eps, x0, t)
    want = _np(oracle.point_set_oracle(process, points)(xt, t)[0])
    p = _np(points)
    d2 = np.sum((_np(xt)[:, None] - p[None]) ** 2, axis=-1)  # (n, m)
    mistakes = (
        (
            "sign error in the exponent: exp(+d^2 / (2 sigma^2)) gives the farthest data points "
            "the most weight",
            _softmax_mean(d2 / (2 * sigma**2), p),
        ),
        (
            "forgot to square sigma: the weights are exp(-d^2 / (2 sigma^2)), "
            "not exp(-d^2 / (2 sigma))",
            _softmax_mean(-d2 / (2 * sigma), p),
        ),
        (
            "forgot the 2: the weights are exp(-d^2 / (2 sigma^2)), not exp(-d^2 / sigma^2)",
            _softmax_mean(-d2 / sigma**2, p),
        ),
        (
            "forgot to normalise the weights: divide by their sum (or use a softmax) so that "
            "they add up to 1",
            np.exp(-d2 / (2 * sigma**2)) @ p,
        ),
        (
            "normalised over the wrong axis: for each xt the weights must sum to 1 over the data "
            "points",
            _softmax_mean(-d2 / (2 * sigma**2), p, axis=0),
        ),
        (
            "returned the nearest data point: that is only the sigma -> 0 limit; average all "
            "points with weights exp(-d^2 / (2 sigma^2))",
            p[np.argmin(d2, axis=-1)],
        ),
    )
    return _Case((xt, sigma, points), want, mistakes)


@functools.cache
def _denoiser_cases() -> tuple[_Case, ...]:
    """One case per sigma in ``_DENOISER_SIGMAS``."""
    keys = jax.random.split(_key(5), len(_DENOISER_SIGMAS))
    return tuple(_denoiser_case(k, s) for k, s in zip(keys, _DENOISER_SIGMAS, strict=True))


def check_exact_denoiser(fn: Callable) -> Feedback:
    """Check ``fn(xt, sigma, data) -> x0_hat``: the exact denoiser E[x0 | xt] of a point set.

    x0_hat is the mean of the data points x_i weighted by exp(-|xt - x_i|^2 / (2 sigma^2)),
    normalised to sum to 1 (``toydiff.engine.oracle.point_set_oracle`` on the VE process).

    Args:
        fn: the learner's function; xt (n, 2) and data (m, 2) are float32 arrays and sigma a
            Python float; it returns x0_hat (n, 2). Checked at sigma = 0.3 and 0.05.

    Returns:
        A ``Feedback``. Named mistakes: sign error in the exponent (farthest points win); forgot
        to square sigma; forgot the 2; forgot to normalise; normalised over the wrong axis;
        returned the nearest point.
    """
    success = "correct: your denoiser matches the exact oracle at sigma = 0.3 and sigma = 0.05"
    nan_hint = (
        " (hint: exp of a large negative number underflows to 0, giving 0 / 0; subtract the "
        "largest exponent first, as jax.nn.softmax does)"
    )
    return _check(fn, "denoiser(xt, sigma, data)", _denoiser_cases(), success, nan_hint)


# ----------------------------------------------------------------------------- chapters 6-7: steps

_STEP_SIGMAS = ((0.8, 0.5), (4.0, 2.5))  # (sigma_t, sigma_r) pairs, one below 1 and one above


def _fixed_eps(eps_hat, sigma_t, xt, t):
    """A denoiser that always predicts eps_hat; x0_hat follows from xt = x0 + sigma_t eps."""
    return xt - sigma_t * eps_hat, eps_hat


def _library_step(sampler, xt, eps_hat, sigma_t: float, sigma_r: float, **options) -> np.ndarray:
    """One step of a library sampler from sigma_t to sigma_r, driven by the prediction eps_hat."""
    process = processes.VE(sigma_min=sigma_r, sigma_max=sigma_t)
    denoiser = jax.tree_util.Partial(_fixed_eps, eps_hat, jnp.float32(sigma_t))
    # with 2 steps the schedule is sigma_t -> sigma_r -> clean; frame 1 is the step we want
    return _np(sampler(jax.random.key(0), denoiser, process, xt, 2, **options)[1])


def _step_inputs(key: jax.Array):
    """xt, eps_hat and z, each (n, 2) standard normal."""
    k_x, k_eps, k_z = jax.random.split(key, 3)
    return tuple(jax.random.normal(k, (_N, 2)) for k in (k_x, k_eps, k_z))


def _ddpm_case(key: jax.Array, sigma_t: float, sigma_r: float) -> _Case:
    """One ancestral step: the library's posterior mean and std, and the wrong versions."""
    xt, eps_hat, z = _step_inputs(key)
    mean = _library_step(samplers.ddpm, xt, eps_hat, sigma_t, sigma_r, noise=False)
    std = math.sqrt(float(samplers.ddpm_posterior(1.0, sigma_t, 1.0, sigma_r)[2]))
    ddim = _library_step(samplers.ddim, xt, eps_hat, sigma_t, sigma_r)
    x, e, z_ = _np(xt), _np(eps_hat), _np(z)
    shrink = 1 - sigma_r**2 / sigma_t**2
    mistakes = (
        (
            "no noise term: that is DDPM without noise; add sigma_r * sqrt(1 - sigma_r^2 / "
            "sigma_t^2) * z",
            mean,
        ),
        (
            "noise scaled by sigma_r: the fresh noise needs the posterior std "
            "sigma_r * sqrt(1 - sigma_r^2 / sigma_t^2)",
            mean + sigma_r * z_,
        ),
        (
            "sign error on eps_hat: your step moves along +eps_hat, away from the data; "
            "subtract (sigma_t - sigma_r^2 / sigma_t) * eps_hat",
            x + (sigma_t - sigma_r**2 / sigma_t) * e + std * z_,
        ),
        (
            "forgot the square root in the posterior std: use "
            "sigma_r * sqrt(1 - sigma_r^2 / sigma_t^2)",
            mean + sigma_r * shrink * z_,
        ),
        (
            "took the DDIM step size (sigma_t - sigma_r); the ancestral step moves by "
            "(sigma_t - sigma_r^2 / sigma_t) * eps_hat",
            ddim + std * z_,
        ),
        ("that is the deterministic DDIM step; DDPM moves further and adds fresh noise", ddim),
    )
    return _Case((xt, eps_hat, sigma_t, sigma_r, z), _np(mean) + std * z_, mistakes)


@functools.cache
def _ddpm_cases() -> tuple[_Case, ...]:
    """One case per (sigma_t, sigma_r) pair."""
    keys = jax.random.split(_key(6), len(_STEP_SIGMAS))
    return tuple(_ddpm_case(k, *s) for k, s in zip(keys, _STEP_SIGMAS, strict=True))


def check_ddpm_step(fn: Callable) -> Feedback:
    """Check ``fn(xt, eps_hat, sigma_t, sigma_r, z) -> x_r``: one VE ancestral (DDPM) step.

    x_r = xt - (sigma_t - sigma_r^2 / sigma_t) eps_hat + sigma_r sqrt(1 - sigma_r^2 / sigma_t^2) z,
    a draw from the posterior q(x_r | xt, x0_hat) (one step of ``toydiff.engine.samplers.ddpm``).

    Args:
        fn: the learner's function; xt, eps_hat and z are float32 arrays (n, 2) and sigma_t,
            sigma_r Python floats with sigma_r smaller than sigma_t; it returns x_r (n, 2).

    Returns:
        A ``Feedback``. Named mistakes: no noise term ("without noise"); noise scaled by sigma_r
        instead of the posterior std; sign error on eps_hat; forgot the square root; the DDIM
        step size; the whole DDIM step.
    """
    success = (
        "correct: your step matches one step of toydiff.engine.samplers.ddpm on the VE process"
    )
    return _check(fn, "ddpm_step(xt, eps_hat, sigma_t, sigma_r, z)", _ddpm_cases(), success)


def _ddim_case(key: jax.Array, sigma_t: float, sigma_r: float) -> _Case:
    """One deterministic step from the library's DDIM sampler, and the wrong versions."""
    xt, eps_hat, _ = _step_inputs(key)
    want = _library_step(samplers.ddim, xt, eps_hat, sigma_t, sigma_r)
    x, e = _np(xt), _np(eps_hat)
    mistakes = (
        (
            "sign error: your step moves along +eps_hat, away from the data; "
            "DDIM adds (sigma_r - sigma_t) * eps_hat, which is negative because sigma_r is smaller",
            x - (sigma_r - sigma_t) * e,
        ),
        (
            "used sigma^2 differences: the VE DDIM step is (sigma_r - sigma_t) * eps_hat, "
            "not (sigma_r^2 - sigma_t^2) * eps_hat",
            x + (sigma_r**2 - sigma_t**2) * e,
        ),
        (
            "took the DDPM step size (sigma_t - sigma_r^2 / sigma_t): that is DDPM without noise; "
            "DDIM moves by (sigma_r - sigma_t) * eps_hat",
            x - (sigma_t - sigma_r**2 / sigma_t) * e,
        ),
        (
            "forgot to start from xt: x_r = xt + (sigma_r - sigma_t) * eps_hat",
            (sigma_r - sigma_t) * e,
        ),
        (
            "returned x0_hat = xt - sigma_t * eps_hat, the jump all the way to the data; "
            "DDIM re-noises it to sigma_r",
            x - sigma_t * e,
        ),
    )
    return _Case((xt, eps_hat, sigma_t, sigma_r), want, mistakes)


@functools.cache
def _ddim_cases() -> tuple[_Case, ...]:
    """One case per (sigma_t, sigma_r) pair."""
    keys = jax.random.split(_key(7), len(_STEP_SIGMAS))
    return tuple(_ddim_case(k, *s) for k, s in zip(keys, _STEP_SIGMAS, strict=True))


def check_ddim_step(fn: Callable) -> Feedback:
    """Check ``fn(xt, eps_hat, sigma_t, sigma_r) -> x_r``: one deterministic VE DDIM step.

    x_r = xt + (sigma_r - sigma_t) eps_hat (one step of ``toydiff.engine.samplers.ddim`` with
    eta = 0, equal to an Euler step of the probability-flow ODE).

    Args:
        fn: the learner's function; xt and eps_hat are float32 arrays (n, 2) and sigma_t, sigma_r
            Python floats with sigma_r smaller than sigma_t; it returns x_r (n, 2).

    Returns:
        A ``Feedback``. Named mistakes: sign error; sigma^2 differences; the DDPM step size;
        forgot xt; returned x0_hat.
    """
    success = (
        "correct: your step matches one step of toydiff.engine.samplers.ddim on the VE process"
    )
    return _check(fn, "ddim_step(xt, eps_hat, sigma_t, sigma_r)", _ddim_cases(), success)


# -------------------------------------------------------------------------- chapters 8-9: guidance

_GUIDANCE_WEIGHTS = (guidance.DEFAULT_GUIDANCE, 1.5)


def _constant_eps(eps, xt, t):
    """A denoiser that always predicts eps."""
    return xt - eps, eps


def _library_guided(eps_c, eps_base, w: float) -> np.ndarray:
    """The library's guided eps_hat from fixed predictions for the condition and the base."""
    guided = guidance.Guided(
        cond=functools.partial(_constant_eps, eps_c),
        base=functools.partial(_constant_eps, eps_base),
        w=jnp.float32(w),
    )
    return _np(guided(jnp.zeros_like(eps_c), jnp.float32(0.5))[1])


def _guidance_inputs(chapter: int, shape=(_N, 2)):
    """Two standard-normal predictions of ``shape`` (points, or images) per guidance weight."""
    keys = jax.random.split(_key(chapter), len(_GUIDANCE_WEIGHTS))
    for key, w in zip(keys, _GUIDANCE_WEIGHTS, strict=True):
        k_c, k_b = jax.random.split(key)
        yield jax.random.normal(k_c, shape), jax.random.normal(k_b, shape), w


@functools.cache
def _cfg_cases() -> tuple[_Case, ...]:
    """Classifier-free guidance at two weights, and the wrong versions."""
    cases = []
    for eps_c, eps_u, w in _guidance_inputs(8):
        c, u = _np(eps_c), _np(eps_u)
        mistakes = (
            (
                "off by one in w: eps_c + w (eps_c - eps_u) is the smalldiffusion convention, "
                "whose scale is s = w - 1; toydiff uses eps_u + w (eps_c - eps_u)",
                c + w * (c - u),
            ),
            (
                "swapped eps_c and eps_u: your guidance pushes toward the unconditional prediction",
                c + w * (u - c),
            ),
            (
                "forgot the base: w (eps_c - eps_u) is only the guidance direction; "
                "add it to eps_u",
                w * (c - u),
            ),
            (
                "sign error: eps_u + w (eps_u - eps_c) steers away from the condition",
                u + w * (u - c),
            ),
        )
        cases.append(_Case((eps_c, eps_u, w), _library_guided(eps_c, eps_u, w), mistakes))
    return tuple(cases)


def check_cfg(fn: Callable) -> Feedback:
    """Check ``fn(eps_c, eps_u, w) -> eps``: classifier-free guidance, toydiff convention.

    eps = eps_u + w (eps_c - eps_u): w = 1 is the conditional prediction and w = 0 the
    unconditional one (``toydiff.engine.guidance.Guided``).

    Args:
        fn: the learner's function; eps_c and eps_u are float32 arrays (n, 2) and w a Python
            float; it returns eps (n, 2). Checked at w = 3 and w = 1.5.

    Returns:
        A ``Feedback``. Named mistakes: the smalldiffusion convention (off by one in w); swapped
        eps_c and eps_u; forgot the base eps_u; sign error.
    """
    success = "correct: eps_u + w (eps_c - eps_u) matches toydiff.engine.guidance.Guided"
    return _check(fn, "cfg(eps_c, eps_u, w)", _cfg_cases(), success)


@functools.cache
def _negative_cases(chapter: int = 9, shape=(_N, 2)) -> tuple[_Case, ...]:
    """Guidance away from a negative prediction at two weights, and the wrong versions."""
    cases = []
    for eps_c, eps_neg, w in _guidance_inputs(chapter, shape):
        c, n = _np(eps_c), _np(eps_neg)
        mistakes = (
            (
                "steering toward the negative: eps_c + w (eps_neg - eps_c) pulls samples to the "
                "class you want to avoid; start from eps_neg and add w (eps_c - eps_neg)",
                c + w * (n - c),
            ),
            (
                "subtracted the negative prediction: eps_c - w eps_neg is not guidance; replace "
                "eps_u by eps_neg in the CFG formula, eps_neg + w (eps_c - eps_neg)",
                c - w * n,
            ),
            (
                "off by one in w: eps_c + w (eps_c - eps_neg) is the smalldiffusion convention; "
                "toydiff uses eps_neg + w (eps_c - eps_neg)",
                c + w * (c - n),
            ),
            (
                "forgot the base: w (eps_c - eps_neg) is only the direction; add it to eps_neg",
                w * (c - n),
            ),
        )
        cases.append(_Case((eps_c, eps_neg, w), _library_guided(eps_c, eps_neg, w), mistakes))
    return tuple(cases)


def check_negative(fn: Callable) -> Feedback:
    """Check ``fn(eps_c, eps_neg, w) -> eps``: guidance toward a class and away from a negative.

    eps = eps_neg + w (eps_c - eps_neg): classifier-free guidance with the negative prediction in
    place of the unconditional one (``toydiff.engine.guidance.Guided`` with a negative base).

    Args:
        fn: the learner's function; eps_c and eps_neg are float32 arrays (n, 2) and w a Python
            float; it returns eps (n, 2). Checked at w = 3 and w = 1.5.

    Returns:
        A ``Feedback``. Named mistakes: steering toward the negative (eps_c and eps_neg swapped);
        eps_c - w eps_neg; the smalldiffusion convention; forgot the base.
    """
    success = (
        "correct: eps_neg + w (eps_c - eps_neg) steers toward eps_c and away from the negative"
    )
    return _check(fn, "negative(eps_c, eps_neg, w)", _negative_cases(), success)


CHECKERS: dict[str, Callable[[Callable], Feedback]] = {
    "spiral": check_spiral,
    "pixel_point": check_pixel_point,
    "add_noise": check_add_noise,
    "eps_target": check_eps_target,
    "exact_denoiser": check_exact_denoiser,
    "ddpm_step": check_ddpm_step,
    "ddim_step": check_ddim_step,
    "cfg": check_cfg,
    "negative": check_negative,
}
"""Every checker by exercise name."""
