"""Samplers: from prior noise to data, returning the whole trajectory.

All samplers share one signature (as in k-diffusion):

    sampler(key, denoiser, process, x_init, steps, **options) -> trajectory (steps + 1, n, ...)

where ``denoiser(xt, t) -> (x0_hat, eps_hat)`` is a network, the exact oracle or a guided
combination, ``x_init`` is the starting noise at t = process.t_max, (n, d) for points or
(n, H, W, C) for images, ``trajectory[0]`` is ``x_init`` and ``trajectory[-1]`` the samples.
Every sampler is a single ``lax.scan``, jitted; the denoiser is a pytree argument, so new
parameters do not recompile. Step i draws its noise from
``fold_in(key, i)``, so samplers that share a key share their noise.

The schedule: the model is queried at ``steps`` times evenly spaced from t_max (or an optional,
traced ``t_start``: start part-way, from a point that is only partly noisy) down to t_min
(``frame_times``), and the last step goes from t_min to clean data (alpha = 1, sigma = 0), as in
DDPM's Algorithm 2 (no noise at the last step), DDIM (the last step lands on x0_hat) and Karras
et al. (sigma_N = 0). Each step therefore moves from (a_t, s_t) to (a_r, s_r).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from toydiff.engine import limits
from toydiff.engine.registry import Registry
from toydiff.errors import ToydiffError


def frame_times(process, steps, t_start=None):
    """Times at which the denoiser is queried, shape (steps,): t_start (default t_max) to t_min.

    Frame i of a trajectory is the state at ``frame_times[i]``; the last frame is clean data.
    """
    t_start = process.t_max if t_start is None else t_start
    return jnp.linspace(t_start, process.t_min, steps)


def _schedule(process, steps, t_start=None):
    """Per-step (t, r, a_t, s_t, a_r, s_r), each of shape (steps,); the last step ends clean."""
    t = frame_times(process, steps, t_start)
    r = jnp.concatenate([t[1:], t[-1:]])  # the clean end is queried no more; keep r finite
    last = jnp.arange(steps) == steps - 1
    a_r = jnp.where(last, 1.0, process.alpha(r))
    s_r = jnp.where(last, 0.0, process.sigma(r))
    return t, r, process.alpha(t), process.sigma(t), a_r, s_r


def _scan(step_fn, x_init, process, steps, key, t_start=None):
    """Run step_fn(x, coefs, key_i) over the schedule; returns the trajectory (steps + 1, n, d)."""

    def body(x, inputs):
        i, coefs = inputs
        x = step_fn(x, coefs, jax.random.fold_in(key, i))
        return x, x

    _, xs = jax.lax.scan(body, x_init, (jnp.arange(steps), _schedule(process, steps, t_start)))
    return jnp.concatenate([x_init[None], xs], axis=0)


def ddpm_posterior(a_t, s_t, a_r, s_r):
    """Coefficients of q(x_r | x_t, x0) = N(c_x x_t + c_0 x0, var) for a Gaussian path."""
    a_tr = a_t / a_r
    s2_tr = s_t**2 - a_tr**2 * s_r**2
    return a_tr * s_r**2 / s_t**2, a_r * s2_tr / s_t**2, s2_tr * s_r**2 / s_t**2


@functools.partial(jax.jit, static_argnames=("process", "steps", "noise"))
def ddpm(key, denoiser, process, x_init, steps, noise=True, t_start=None):
    """Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2), for any Gaussian path.

    Each step draws x_r from the posterior q(x_r | x_t, x0 = x0_hat): its mean, plus fresh noise
    with the posterior's standard deviation.

    Args:
        key: PRNG key for the added noise.
        denoiser: ``(xt, t) -> (x0_hat, eps_hat)``.
        process: the forward process.
        x_init: starting points at t_max, shape (n, d).
        steps: number of steps.
        noise: if False, delete the noise term (the story's "DDPM without noise").

    Returns:
        Trajectory, shape (steps + 1, n, d).
    """

    def step(x, coefs, k):
        t, _, a_t, s_t, a_r, s_r = coefs
        c_x, c_0, var = ddpm_posterior(a_t, s_t, a_r, s_r)
        x0_hat, _ = denoiser(x, t)
        mean = c_x * x + c_0 * x0_hat
        if not noise:
            return mean
        return mean + jnp.sqrt(var) * jax.random.normal(k, x.shape, x.dtype)

    return _scan(step, x_init, process, steps, key, t_start)


def ddpm_nonoise(key, denoiser, process, x_init, steps, t_start=None):
    """DDPM with the noise term deleted: each step moves to the posterior mean only.

    Samples collapse toward the data's mean: the chapter-6 point. Same arguments as ``ddpm``.
    """
    return ddpm(key, denoiser, process, x_init, steps, noise=False, t_start=t_start)


@functools.partial(jax.jit, static_argnames=("process", "steps"))
def ddim(key, denoiser, process, x_init, steps, eta=0.0, t_start=None):
    """DDIM (Song, Meng & Ermon 2021, eq. 12) generalised to any Gaussian path.

    x_r = a_r x0_hat + sqrt(s_r^2 - c^2) eps_hat + c z, with
    c = eta s_r sqrt(1 - (a_t s_r / (a_r s_t))^2). eta = 0 is deterministic DDIM; eta = 1 is DDPM.

    Args:
        key: PRNG key for the added noise (used when eta > 0).
        denoiser: ``(xt, t) -> (x0_hat, eps_hat)``.
        process: the forward process.
        x_init: starting points at t_max, shape (n, d).
        steps: number of steps.
        eta: stochasticity in [0, 1].

    Returns:
        Trajectory, shape (steps + 1, n, d).
    """

    def step(x, coefs, k):
        t, _, a_t, s_t, a_r, s_r = coefs
        c = eta * s_r * jnp.sqrt(jnp.maximum(1 - (a_t * s_r / (a_r * s_t)) ** 2, 0.0))
        x0_hat, eps_hat = denoiser(x, t)
        x_next = a_r * x0_hat + jnp.sqrt(jnp.maximum(s_r**2 - c**2, 0.0)) * eps_hat
        return x_next + c * jax.random.normal(k, x.shape, x.dtype)

    return _scan(step, x_init, process, steps, key, t_start)


def _ode_step(denoiser, x, coefs, second_order):
    """One Euler or Heun step of dy/d(sigma~) = eps_hat, with y = x / a and sigma~ = s / a.

    The last step (to sigma = 0) is always Euler, as in Karras et al.'s Algorithm 1.
    """
    t, r, a_t, s_t, a_r, s_r = coefs
    d_sig = s_r / a_r - s_t / a_t
    _, d_t = denoiser(x, t)
    y_euler = x / a_t + d_sig * d_t
    if not second_order:
        return a_r * y_euler
    _, d_r = denoiser(a_r * y_euler, r)
    y_heun = x / a_t + 0.5 * d_sig * (d_t + d_r)
    return a_r * jnp.where(s_r > 0, y_heun, y_euler)


@functools.partial(jax.jit, static_argnames=("process", "steps"))
def euler(key, denoiser, process, x_init, steps, t_start=None):
    """Euler's method on the probability-flow ODE (Karras et al. 2022, eq. 4 and Algorithm 1).

    The ODE dx/dt = a' x0_hat + s' eps_hat is solved in the scaled coordinates y = x / a with
    sigma~ = s / a as the clock, where it reads dy/d(sigma~) = eps_hat. In these coordinates an
    Euler step is exactly a DDIM step (eta = 0), and for the flow process it is also exactly
    flow matching's Euler step x + dt * v (up to the last step, which lands on x0_hat).
    The key is unused (kept for the common signature).
    """
    del key

    def step(x, coefs, k):
        return _ode_step(denoiser, x, coefs, second_order=False)

    return _scan(step, x_init, process, steps, jax.random.key(0), t_start)


@functools.partial(jax.jit, static_argnames=("process", "steps"))
def heun(key, denoiser, process, x_init, steps, t_start=None):
    """Heun's second-order method on the probability-flow ODE (Karras et al. 2022, Algorithm 1).

    Same coordinates as ``euler``; two denoiser calls per step. The key is unused.
    """
    del key

    def step(x, coefs, k):
        return _ode_step(denoiser, x, coefs, second_order=True)

    return _scan(step, x_init, process, steps, jax.random.key(0), t_start)


@functools.partial(jax.jit, static_argnames=("process", "steps"))
def euler_maruyama(key, denoiser, process, x_init, steps, churn=1.0, t_start=None):
    """Euler-Maruyama on the reverse-time SDE dx = [u - g^2/2 score] dt + g dW (Song et al. 2021).

    u is the probability-flow velocity and g^2 = churn * d sigma^2/dt. Every g gives the same
    marginals; churn = 1 is the exact reverse SDE of the VE process, and churn = 0 is ``euler``.

    Args:
        key: PRNG key for the Brownian increments.
        denoiser: ``(xt, t) -> (x0_hat, eps_hat)``.
        process: the forward process.
        x_init: starting points at t_max, shape (n, d).
        steps: number of steps.
        churn: scale of the injected noise (>= 0).

    Returns:
        Trajectory, shape (steps + 1, n, d).
    """

    def step(x, coefs, k):
        t, r, _, _, _, s_r = coefs
        x0_hat, eps_hat = denoiser(x, t)
        g2 = churn * process.diffusion_sq(t)
        score = -eps_hat / process.sigma(t)
        velocity = process.dalpha(t) * x0_hat + process.dsigma(t) * eps_hat
        drift = velocity - 0.5 * g2 * score
        dw = jnp.sqrt(t - r) * jax.random.normal(k, x.shape, x.dtype)
        x_next = x + (r - t) * drift + jnp.sqrt(g2) * dw
        return jnp.where(s_r > 0, x_next, x0_hat)  # the last step lands on x0_hat

    return _scan(step, x_init, process, steps, key, t_start)


SAMPLERS = Registry(
    "sampler",
    (
        ("ddpm", ddpm),
        ("ddpm-nonoise", ddpm_nonoise),
        ("ddim", ddim),
        ("euler", euler),
        ("heun", heun),
        ("sde", euler_maruyama),
    ),
)
"""Every sampler by name, in the order the command line and the widgets offer them."""


OPTIONS = {
    "ddpm": ("noise",),
    "ddpm-nonoise": (),
    "ddim": ("eta",),
    "euler": (),
    "heun": (),
    "sde": ("churn",),
}
"""The options each sampler takes, besides ``t_start`` (which every sampler takes)."""


def get_sampler(name: str, compiler_options: dict | None = None):
    """Look a sampler up by name; raises ToydiffError (a ValueError) listing ``SAMPLERS``.

    Args:
        name: one of ``SAMPLERS``.
        compiler_options: XLA options to compile it with (the image path's
            ``compilation.image_options()``); None for the shared, default-compiled sampler.
    """
    sampler = SAMPLERS[name]
    if not compiler_options:
        return sampler
    return _compiled_with(name, tuple(sorted(compiler_options.items())))


@functools.cache
def _compiled_with(name: str, options: tuple):
    """The sampler ``name`` jitted with compiler options: the same function, its own programs."""
    sampler = SAMPLERS[name]
    fn = getattr(sampler, "__wrapped__", sampler)  # a wrapper (ddpm-nonoise) is traced whole
    static = ("process", "steps") + (("noise",) if "noise" in OPTIONS[name] else ())
    return jax.jit(fn, static_argnames=static, compiler_options=dict(options))


def check_options(name: str, options: dict | None) -> dict:
    """Raise ToydiffError for an unknown sampler, or an option it does not take or cannot use.

    ``eta`` (ddim) must be in [0, 1] and ``churn`` (sde) finite and at least 0. An option given to
    a sampler that has none of that name is an error, never silently ignored.

    Returns:
        The options (an empty dict for None).
    """
    get_sampler(name)
    options = dict(options or {})
    for option in options:
        if option == "t_start":
            continue
        if option not in OPTIONS[name]:
            takers = [s for s, names in OPTIONS.items() if option in names]
            if takers:
                raise ToydiffError(
                    f"the {name} sampler has no {option}; only {' and '.join(takers)} takes "
                    f"{option} (--sampler {takers[0]})"
                )
            known = sorted({o for names in OPTIONS.values() for o in names} | {"t_start"})
            raise ToydiffError(f"unknown sampler option {option!r}; known: {', '.join(known)}")
    if "eta" in options:
        _check_number("--eta", options["eta"], 0.0, 1.0)
    if "churn" in options:
        _check_number("churn", options["churn"], 0.0, math.inf)
    return options


def _check_number(what: str, value, low: float, high: float) -> None:
    """ToydiffError unless a concrete number is finite and in [low, high] (traced values pass)."""
    if isinstance(value, jax.core.Tracer):
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ToydiffError(f"{what} must be a number, got {value!r}") from None
    if not (math.isfinite(number) and low <= number <= high):
        allowed = f"at least {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        raise ToydiffError(f"{what} must be a finite number {allowed}, got {value}")


def check(name: str, steps, options: dict | None = None) -> dict:
    """Every check of a sampling request that needs no model: the sampler, its options and the
    steps (``limits.check_steps``). Returns the options."""
    options = check_options(name, options)
    limits.check_steps(steps)
    return options


def sample(key, denoiser, process, n, steps, sampler="ddpm", shape=(2,), x_init=None, **options):
    """Draw the starting noise from the prior and run a sampler.

    Args:
        key: a PRNG key; split into the prior draw and the sampler's noise.
        denoiser: ``(xt, t) -> (x0_hat, eps_hat)``.
        process: the forward process.
        n: number of samples (ignored when ``x_init`` is given).
        steps: number of sampler steps.
        sampler: one of ``SAMPLERS``.
        shape: the shape of one sample: (2,) for the 2D lab, (H, W, C) for images.
        x_init: starting noise (n, *shape); drawn from the prior if None.
        **options: sampler options (``eta`` for ddim, ``churn`` for sde).

    Returns:
        Trajectory, shape (steps + 1, n, *shape).

    Raises:
        ToydiffError: an unknown sampler, an option it does not take, steps out of range or a
            bad n, before any work.
    """
    check(sampler, steps, options)
    fn = get_sampler(sampler)
    k_prior, k_run = jax.random.split(key)
    if x_init is None:
        limits.check_count(n)
        x_init = process.prior(k_prior, (n, *shape))
    return fn(k_run, denoiser, process, jnp.asarray(x_init, jnp.float32), steps, **options)
