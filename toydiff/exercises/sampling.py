"""Checkers for chapters 6-9: one DDPM step, one DDIM step, classifier-free guidance and
negative prompts.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from toydiff.engine import guidance, processes, samplers
from toydiff.exercises.checking import N_ROWS, Case, Feedback, as_numpy, chapter_key, check

_STEP_SIGMAS = ((0.8, 0.5), (4.0, 2.5))  # (sigma_t, sigma_r) pairs, one below 1 and one above


def _fixed_eps(eps_hat, sigma_t, xt, t):
    """A denoiser that always predicts eps_hat; x0_hat follows from xt = x0 + sigma_t eps."""
    return xt - sigma_t * eps_hat, eps_hat


def _library_step(sampler, xt, eps_hat, sigma_t: float, sigma_r: float, **options) -> np.ndarray:
    """One step of a library sampler from sigma_t to sigma_r, driven by the prediction eps_hat."""
    process = processes.VE(sigma_min=sigma_r, sigma_max=sigma_t)
    denoiser = jax.tree_util.Partial(_fixed_eps, eps_hat, jnp.float32(sigma_t))
    # with 2 steps the schedule is sigma_t -> sigma_r -> clean; frame 1 is the step we want
    return as_numpy(sampler(jax.random.key(0), denoiser, process, xt, 2, **options)[1])


def _step_inputs(key: jax.Array):
    """xt, eps_hat and z, each (n, 2) standard normal."""
    k_x, k_eps, k_z = jax.random.split(key, 3)
    return tuple(jax.random.normal(k, (N_ROWS, 2)) for k in (k_x, k_eps, k_z))


def _ddpm_case(key: jax.Array, sigma_t: float, sigma_r: float) -> Case:
    """One ancestral step: the library's posterior mean and std, and the wrong versions."""
    xt, eps_hat, z = _step_inputs(key)
    mean = _library_step(samplers.ddpm, xt, eps_hat, sigma_t, sigma_r, noise=False)
    std = math.sqrt(float(samplers.ddpm_posterior(1.0, sigma_t, 1.0, sigma_r)[2]))
    ddim = _library_step(samplers.ddim, xt, eps_hat, sigma_t, sigma_r)
    x, e, z_ = as_numpy(xt), as_numpy(eps_hat), as_numpy(z)
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
    return Case((xt, eps_hat, sigma_t, sigma_r, z), as_numpy(mean) + std * z_, mistakes)


@functools.cache
def _ddpm_cases() -> tuple[Case, ...]:
    """One case per (sigma_t, sigma_r) pair."""
    keys = jax.random.split(chapter_key(6), len(_STEP_SIGMAS))
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
    return check(fn, "ddpm_step(xt, eps_hat, sigma_t, sigma_r, z)", _ddpm_cases(), success)


def _ddim_case(key: jax.Array, sigma_t: float, sigma_r: float) -> Case:
    """One deterministic step from the library's DDIM sampler, and the wrong versions."""
    xt, eps_hat, _ = _step_inputs(key)
    want = _library_step(samplers.ddim, xt, eps_hat, sigma_t, sigma_r)
    x, e = as_numpy(xt), as_numpy(eps_hat)
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
    return Case((xt, eps_hat, sigma_t, sigma_r), want, mistakes)


@functools.cache
def _ddim_cases() -> tuple[Case, ...]:
    """One case per (sigma_t, sigma_r) pair."""
    keys = jax.random.split(chapter_key(7), len(_STEP_SIGMAS))
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
    return check(fn, "ddim_step(xt, eps_hat, sigma_t, sigma_r)", _ddim_cases(), success)


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
    return as_numpy(guided(jnp.zeros_like(eps_c), jnp.float32(0.5))[1])


def _guidance_inputs(chapter: int, shape=(N_ROWS, 2)):
    """Two standard-normal predictions of ``shape`` (points, or images) per guidance weight."""
    keys = jax.random.split(chapter_key(chapter), len(_GUIDANCE_WEIGHTS))
    for key, w in zip(keys, _GUIDANCE_WEIGHTS, strict=True):
        k_c, k_b = jax.random.split(key)
        yield jax.random.normal(k_c, shape), jax.random.normal(k_b, shape), w


@functools.cache
def _cfg_cases() -> tuple[Case, ...]:
    """Classifier-free guidance at two weights, and the wrong versions."""
    cases = []
    for eps_c, eps_u, w in _guidance_inputs(8):
        c, u = as_numpy(eps_c), as_numpy(eps_u)
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
        cases.append(Case((eps_c, eps_u, w), _library_guided(eps_c, eps_u, w), mistakes))
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
    return check(fn, "cfg(eps_c, eps_u, w)", _cfg_cases(), success)


@functools.cache
def negative_cases(chapter: int = 9, shape=(N_ROWS, 2)) -> tuple[Case, ...]:
    """Guidance away from a negative prediction at two weights, and the wrong versions."""
    cases = []
    for eps_c, eps_neg, w in _guidance_inputs(chapter, shape):
        c, n = as_numpy(eps_c), as_numpy(eps_neg)
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
        cases.append(Case((eps_c, eps_neg, w), _library_guided(eps_c, eps_neg, w), mistakes))
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
    return check(fn, "negative(eps_c, eps_neg, w)", negative_cases(), success)
