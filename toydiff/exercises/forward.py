"""Checkers for chapters 0-5: the spiral, pixels as points, adding noise, the training target and
the exact denoiser.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from toydiff import data
from toydiff.engine import oracle, processes
from toydiff.exercises.checking import N_ROWS, Case, Feedback, as_numpy, chapter_key, check

_S0, _S1 = math.pi / 2, 5 * math.pi  # the spiral's parameter runs from s0 to s0 + s1


def _spiral_xy(s: np.ndarray) -> np.ndarray:
    """Points (s cos s, s sin s), shape (n, 2), not yet divided by s1."""
    return np.stack([s * np.cos(s), s * np.sin(s)], axis=-1)


def _spiral_case(n: int) -> Case:
    """The reference spiral of n points and its typical wrong versions."""
    want = as_numpy(data.spiral(n=n).x)
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
    return Case((n,), want, mistakes)


@functools.cache
def _spiral_cases() -> tuple[Case, ...]:
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
    return check(fn, "spiral(n)", _spiral_cases(), success)


@functools.cache
def _pixel_cases() -> tuple[Case, ...]:
    """Two-pixel images (n, 2) uint8, the four corners first, and their typical wrong maps."""
    corners = np.array([[0, 0], [255, 255], [0, 255], [255, 0]], np.uint8)
    rand = np.asarray(jax.random.randint(chapter_key(2), (N_ROWS - 4, 2), 0, 256), np.uint8)
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
    return (Case((v,), want, mistakes),)


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
    return check(fn, "pixels_to_point(pixels)", _pixel_cases(), success)


@functools.cache
def _add_noise_cases() -> tuple[Case, ...]:
    """Spiral points at random times, noised by the library's VE marginal."""
    process = processes.VE()
    k_rows, k_t, k_eps = jax.random.split(chapter_key(3), 3)
    x0 = jnp.asarray(data.spiral().x)[jax.random.randint(k_rows, (N_ROWS,), 0, 100)]
    t = jax.random.uniform(k_t, (N_ROWS,))
    xt, eps = process.marginal(k_eps, x0, t)
    x0_, eps_, t_ = as_numpy(x0), as_numpy(eps), as_numpy(t)[:, None]
    sigma = as_numpy(process.sigma(t))[:, None]
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
    return (Case((x0, t, eps), as_numpy(xt), mistakes),)


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
    return check(fn, "add_noise(x0, t, eps)", _add_noise_cases(), success)


@functools.cache
def _eps_target_cases() -> tuple[Case, ...]:
    """Noisy spiral points at sigma from ~0.03 to ~3.5, and the library's eps for them."""
    process = processes.VE()
    k_rows, k_t, k_eps = jax.random.split(chapter_key(4), 3)
    x0 = jnp.asarray(data.spiral().x)[jax.random.randint(k_rows, (N_ROWS,), 0, 100)]
    t = jax.random.uniform(k_t, (N_ROWS,), minval=0.15, maxval=0.85)
    xt, _ = process.marginal(k_eps, x0, t)
    sigma = process.sigma(t)
    want = as_numpy(process.eps_from_x0(xt, t, x0))
    diff, s = as_numpy(xt) - as_numpy(x0), as_numpy(sigma)[:, None]
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
            as_numpy(xt) - as_numpy(x0) / s,
        ),
    )
    return (Case((x0, xt, sigma), want, mistakes),)


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
    return check(fn, "eps_target(x0, xt, sigma)", _eps_target_cases(), success)


_DENOISER_SIGMAS = (0.3, 0.05)  # large enough and small enough to tell the mistakes apart


def _softmax_mean(logits: np.ndarray, points: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax of logits (n, m) along ``axis``, then the weighted mean of points (m, d)."""
    w = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return (w / w.sum(axis=axis, keepdims=True)) @ points


def _denoiser_case(key: jax.Array, sigma: float) -> Case:
    """Noisy spiral points at one sigma, the library oracle's x0_hat, and the wrong versions."""
    process = processes.VE()
    points = jnp.asarray(data.spiral().x)
    k_rows, k_eps = jax.random.split(key)
    t = process.t_of_sigma(sigma)
    x0 = points[jax.random.randint(k_rows, (N_ROWS,), 0, points.shape[0])]
    xt, _ = process.marginal(k_eps, x0, t)
    want = as_numpy(oracle.point_set_oracle(process, points)(xt, t)[0])
    p = as_numpy(points)
    d2 = np.sum((as_numpy(xt)[:, None] - p[None]) ** 2, axis=-1)  # (n, m)
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
    return Case((xt, sigma, points), want, mistakes)


@functools.cache
def _denoiser_cases() -> tuple[Case, ...]:
    """One case per sigma in ``_DENOISER_SIGMAS``."""
    keys = jax.random.split(chapter_key(5), len(_DENOISER_SIGMAS))
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
    return check(fn, "denoiser(xt, sigma, data)", _denoiser_cases(), success, nan_hint)
