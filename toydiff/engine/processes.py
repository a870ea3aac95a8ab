"""Forward processes: how clean points x0 become noisy points xt.

Every process here is a Gaussian path

    xt = alpha(t) * x0 + sigma(t) * eps,    eps ~ N(0, I),    t in [0, 1],

with t = 0 the cleanest and t = 1 the noisiest time. Three families are provided:

- ``VE``: variance exploding, alpha = 1 and sigma log-linear from sigma_min to sigma_max. This is
  the random walk (Brownian motion) of the story and the reference process.
- ``VP``: variance preserving (DDPM), alpha^2 + sigma^2 = 1, with a linear or cosine beta schedule.
- ``Flow``: straight paths, alpha = 1 - t and sigma = t (rectified flow / flow matching).

Each process gives alpha, sigma and their time derivatives, marginal and prior sampling, and the
conversions between the five quantities a network may predict: eps, x0, v, the score and the
velocity dx/dt. Processes are frozen dataclasses, so they are hashable and can be closed over by
jitted functions.

References:
    Song et al., "Score-Based Generative Modeling through SDEs", ICLR 2021 (VE and VP).
    Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020 (linear betas).
    Nichol & Dhariwal, "Improved DDPM", ICML 2021 (cosine schedule).
    Salimans & Ho, "Progressive Distillation", ICLR 2022 (v-prediction).
    Lipman et al., "Flow Matching for Generative Modeling", ICLR 2023 (straight paths).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from toydiff.engine.registry import Registry

PROCESS_NAMES = ("ve", "vp", "flow")
PREDICTIONS = ("eps", "x0", "v", "score", "velocity")


def broadcast(coef, x):
    """Broadcast a per-example coefficient of shape () or (n,) against x of shape (n, d)."""
    coef = jnp.asarray(coef, dtype=x.dtype)
    return coef.reshape(coef.shape + (1,) * (x.ndim - coef.ndim))


class _Gaussian:
    """Shared maths of all Gaussian paths; subclasses define alpha, sigma and their derivatives."""

    t_min: float
    t_max: float

    def alpha(self, t):
        raise NotImplementedError

    def sigma(self, t):
        raise NotImplementedError

    def dalpha(self, t):
        """d alpha / dt."""
        return jnp.vectorize(jax.grad(self.alpha))(jnp.asarray(t, jnp.float32))

    def dsigma(self, t):
        """d sigma / dt."""
        return jnp.vectorize(jax.grad(self.sigma))(jnp.asarray(t, jnp.float32))

    def diffusion_sq(self, t):
        """g(t)^2 = d sigma^2 / dt, the diffusion used by the reverse SDE sampler.

        Any g gives an SDE with the same marginals as the probability-flow ODE; this choice is the
        exact reverse SDE of the VE process and stays finite at both ends of every schedule here.
        """
        return 2.0 * self.sigma(t) * self.dsigma(t)

    def marginal(self, key, x0, t):
        """Draw xt ~ q(xt | x0).

        Args:
            key: a PRNG key.
            x0: clean points, shape (n, d).
            t: times, shape () or (n,).

        Returns:
            (xt, eps), both of shape (n, d).
        """
        eps = jax.random.normal(key, x0.shape, x0.dtype)
        return broadcast(self.alpha(t), x0) * x0 + broadcast(self.sigma(t), x0) * eps, eps

    def prior(self, key, shape):
        """Draw from the prior N(0, sigma(t_max)^2 I) that sampling starts from; shape (n, d)."""
        return self.sigma(self.t_max) * jax.random.normal(key, shape)

    # Conversions. Each takes the noisy point xt (n, d), time t (() or (n,)) and a prediction.
    def x0_from_eps(self, xt, t, eps):
        """x0 = (xt - sigma eps) / alpha."""
        return (xt - broadcast(self.sigma(t), xt) * eps) / broadcast(self.alpha(t), xt)

    def eps_from_x0(self, xt, t, x0):
        """eps = (xt - alpha x0) / sigma."""
        return (xt - broadcast(self.alpha(t), xt) * x0) / broadcast(self.sigma(t), xt)

    def score_from_eps(self, xt, t, eps):
        """The score grad log p(xt) = -eps / sigma (Tweedie)."""
        return -eps / broadcast(self.sigma(t), xt)

    def eps_from_score(self, xt, t, score):
        """eps = -sigma * score."""
        return -broadcast(self.sigma(t), xt) * score

    def v_from(self, xt, t, x0, eps):
        """v = alpha eps - sigma x0 (Salimans & Ho)."""
        return broadcast(self.alpha(t), xt) * eps - broadcast(self.sigma(t), xt) * x0

    def x0_eps_from_v(self, xt, t, v):
        """Invert v = alpha eps - sigma x0 together with xt = alpha x0 + sigma eps."""
        a, s = broadcast(self.alpha(t), xt), broadcast(self.sigma(t), xt)
        norm = a * a + s * s
        return (a * xt - s * v) / norm, (s * xt + a * v) / norm

    def velocity_from(self, xt, t, x0, eps):
        """The path velocity dx/dt = alpha' x0 + sigma' eps; its conditional mean drives the ODE."""
        return broadcast(self.dalpha(t), xt) * x0 + broadcast(self.dsigma(t), xt) * eps

    def x0_eps_from_velocity(self, xt, t, u):
        """Invert u = alpha' x0 + sigma' eps together with xt = alpha x0 + sigma eps."""
        a, s = broadcast(self.alpha(t), xt), broadcast(self.sigma(t), xt)
        da, ds = broadcast(self.dalpha(t), xt), broadcast(self.dsigma(t), xt)
        det = a * ds - s * da
        return (ds * xt - s * u) / det, (a * u - da * xt) / det

    def x0_eps_from(self, xt, t, prediction, kind):
        """Turn any prediction into the pair (x0_hat, eps_hat).

        Args:
            xt: noisy points, shape (n, d).
            t: times, shape () or (n,).
            prediction: the predicted quantity, shape (n, d).
            kind: one of ``PREDICTIONS``.

        Returns:
            (x0_hat, eps_hat), each of shape (n, d).
        """
        if kind == "eps":
            return self.x0_from_eps(xt, t, prediction), prediction
        if kind == "x0":
            return prediction, self.eps_from_x0(xt, t, prediction)
        if kind == "v":
            return self.x0_eps_from_v(xt, t, prediction)
        if kind == "score":
            eps = self.eps_from_score(xt, t, prediction)
            return self.x0_from_eps(xt, t, eps), eps
        if kind == "velocity":
            return self.x0_eps_from_velocity(xt, t, prediction)
        raise ValueError(f"unknown prediction kind {kind!r}; expected one of {PREDICTIONS}")

    def predict(self, xt, t, x0, eps, kind):
        """The inverse of ``x0_eps_from``: express (x0, eps) as a prediction of the given kind."""
        if kind == "eps":
            return eps
        if kind == "x0":
            return x0
        if kind == "v":
            return self.v_from(xt, t, x0, eps)
        if kind == "score":
            return self.score_from_eps(xt, t, eps)
        if kind == "velocity":
            return self.velocity_from(xt, t, x0, eps)
        raise ValueError(f"unknown prediction kind {kind!r}; expected one of {PREDICTIONS}")


@dataclasses.dataclass(frozen=True)
class VE(_Gaussian):
    """Variance exploding: xt = x0 + sigma(t) eps, sigma log-linear (the story's random walk).

    Attributes:
        sigma_min: noise level at t = 0.
        sigma_max: noise level at t = 1.
    """

    sigma_min: float = 0.01
    sigma_max: float = 10.0
    t_min: float = 0.0
    t_max: float = 1.0

    def alpha(self, t):
        return jnp.ones_like(jnp.asarray(t, jnp.float32))

    def sigma(self, t):
        log_ratio = math.log(self.sigma_max / self.sigma_min)
        return self.sigma_min * jnp.exp(log_ratio * jnp.asarray(t, jnp.float32))

    def dalpha(self, t):
        return jnp.zeros_like(jnp.asarray(t, jnp.float32))

    def dsigma(self, t):
        return math.log(self.sigma_max / self.sigma_min) * self.sigma(t)

    def t_of_sigma(self, sigma):
        """The time at which the schedule reaches ``sigma``."""
        return jnp.log(sigma / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)


@dataclasses.dataclass(frozen=True)
class VP(_Gaussian):
    """Variance preserving (DDPM): alpha^2 + sigma^2 = 1.

    Attributes:
        schedule: ``"linear"`` (beta(t) = beta_min + t (beta_max - beta_min), the continuous DDPM
            schedule) or ``"cosine"`` (Nichol & Dhariwal).
        beta_min, beta_max: the linear schedule's end points.
        cosine_s: the cosine schedule's offset.
        t_min, t_max: the sampling range; kept off the singular ends (sigma = 0, alpha = 0).
    """

    schedule: str = "linear"
    beta_min: float = 0.1
    beta_max: float = 20.0
    cosine_s: float = 0.008
    t_min: float = 1e-3
    t_max: float = 1.0

    def __post_init__(self):
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(
                f"unknown VP schedule {self.schedule!r}; expected 'linear' or 'cosine'"
            )
        if self.schedule == "cosine" and self.t_max > 0.999:
            object.__setattr__(self, "t_max", 0.999)

    def log_alpha(self, t):
        t = jnp.asarray(t, jnp.float32)
        if self.schedule == "linear":
            return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min
        s = self.cosine_s
        return jnp.log(
            jnp.cos(0.5 * math.pi * (t + s) / (1 + s)) / math.cos(0.5 * math.pi * s / (1 + s))
        )

    def alpha(self, t):
        return jnp.exp(self.log_alpha(t))

    def sigma(self, t):
        return jnp.sqrt(-jnp.expm1(2.0 * self.log_alpha(t)))

    def beta(self, t):
        """beta(t) = -2 d log alpha / dt."""
        return -2.0 * jnp.vectorize(jax.grad(self.log_alpha))(jnp.asarray(t, jnp.float32))

    def dalpha(self, t):
        return -0.5 * self.beta(t) * self.alpha(t)

    def dsigma(self, t):
        a = self.alpha(t)
        return 0.5 * self.beta(t) * a * a / self.sigma(t)


@dataclasses.dataclass(frozen=True)
class Flow(_Gaussian):
    """Straight paths: xt = (1 - t) x0 + t eps, as in flow matching and rectified flow.

    The prior is N(0, I). ``t_max`` stays just below 1 because x0 cannot be recovered from eps where
    alpha = 0, and ``t_min`` just above 0 because the score is infinite where sigma = 0.
    """

    t_min: float = 1e-3
    t_max: float = 0.999

    def alpha(self, t):
        return 1.0 - jnp.asarray(t, jnp.float32)

    def sigma(self, t):
        return jnp.asarray(t, jnp.float32)

    def dalpha(self, t):
        return -jnp.ones_like(jnp.asarray(t, jnp.float32))

    def dsigma(self, t):
        return jnp.ones_like(jnp.asarray(t, jnp.float32))

    def prior(self, key, shape):
        return jax.random.normal(key, shape)


def random_walk(key, process, x0, steps: int = 100):
    """Simulate the forward process as a random walk: Brownian motion from the data outward.

    The walk starts at x0 + sigma(0) eps and takes ``steps`` small Gaussian steps on an even grid
    of t from 0 to 1; step k multiplies by alpha(t_k) / alpha(t_{k-1}) and adds fresh noise of
    variance sigma(t_k)^2 - (alpha(t_k) / alpha(t_{k-1}))^2 sigma(t_{k-1})^2, so that every
    point of the walk has exactly the marginal q(x_t | x0).

    Args:
        key: a PRNG key.
        process: the forward process.
        x0: starting points, shape (n, d).
        steps: number of steps.

    Returns:
        (ts, paths): the times, shape (steps + 1,), and the walk, shape (steps + 1, n, d).
    """
    ts = jnp.linspace(process.t_min, process.t_max, steps + 1)
    k0, k_walk = jax.random.split(key)
    start = process.alpha(ts[0]) * x0 + process.sigma(ts[0]) * jax.random.normal(k0, x0.shape)

    def step(x, inputs):
        k, t_prev, t = inputs
        ratio = process.alpha(t) / process.alpha(t_prev)
        var = process.sigma(t) ** 2 - (ratio * process.sigma(t_prev)) ** 2
        x = ratio * x + jnp.sqrt(jnp.maximum(var, 0.0)) * jax.random.normal(k, x.shape)
        return x, x

    keys = jax.random.split(k_walk, steps)
    _, xs = jax.lax.scan(step, start, (keys, ts[:-1], ts[1:]))
    return ts, jnp.concatenate([start[None], xs], axis=0)


PROCESSES = Registry(
    "process",
    (
        ("ve", VE),
        ("vp", VP),
        ("vp-cosine", functools.partial(VP, schedule="cosine")),
        ("flow", Flow),
    ),
)
"""Every forward process by name: its constructor (keyword arguments are its fields)."""


def make_process(name: str, **kwargs) -> _Gaussian:
    """Build a process by name: ``"ve"``, ``"vp"`` (linear), ``"vp-cosine"`` or ``"flow"``.

    Args:
        name: the process name (``PROCESSES``).
        **kwargs: fields of the process dataclass, e.g. ``sigma_max=1.0`` for VE.

    Returns:
        The process.

    Raises:
        ToydiffError: (a ValueError) for an unknown name, listing the known ones.
    """
    return PROCESSES[name](**kwargs)


class RunSettings:
    """What every run's config (2D or image) shares: a named process and a JSON form.

    A config that mixes this in has ``process`` (a name for ``make_process``) and ``sigma_max``
    (the VE process's largest noise level, ignored by the others).
    """

    def make_process(self):
        """The forward process this run trains on."""
        kwargs = {"sigma_max": self.sigma_max} if self.process == "ve" else {}
        return make_process(self.process, **kwargs)

    def to_dict(self) -> dict:
        """A JSON-ready dict of the settings."""
        return dataclasses.asdict(self)
