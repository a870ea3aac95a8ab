"""Training objectives, and the denoiser that turns a trained network into a sampler's field.

Every objective draws a clean point x0, a time t and noise, builds the noisy point xt, and regresses
the network output on a target. They differ only in the target:

- ``eps``: the total noise eps that was added (DDPM; the reference).
- ``x0``: the clean point itself.
- ``v``: v = alpha eps - sigma x0 (Salimans & Ho).
- ``velocity``: the path velocity dx/dt = alpha' x0 + sigma' eps (flow matching).
- ``naive``: the one-step target of the story. Walk the chain one step further, from x_s at
  s = t - dt to x_t, and ask the network for x_s. Its output is scaled so that, in expectation, it
  equals eps (see ``naive_coefficients``); the learning problem is therefore the same as for eps,
  but the target is far noisier, which is the chapter-4 point.

A *denoiser* is a callable ``denoiser(xt, t) -> (x0_hat, eps_hat)``. Samplers, guidance and the
oracle all speak this one interface. ``NetworkDenoiser`` is a pytree whose only leaves are the
parameters and the label, so jitted samplers do not recompile when those change.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx

from toydiff.engine.processes import broadcast
from toydiff.engine.registry import Registry

OBJECTIVES = Registry(
    "objective",
    (("eps", "eps"), ("x0", "x0"), ("v", "v"), ("velocity", "velocity"), ("naive", "eps")),
)
"""Every objective by name, with what the network's output means when trained on it (the naive
one-step target is scaled to predict eps)."""


def check_objective(name: str) -> str:
    """Return ``name`` if it is a known objective, else raise ValueError naming the allowed ones."""
    return OBJECTIVES.check(name)


def naive_coefficients(process, t, s):
    """Coefficients of the one-step posterior mean E[x_s | x_t] = A x_t + B eps_hat.

    For a Gaussian path, q(x_s | x_t, x0) has mean a_s x0 + k (x_t - a_t x0) / sigma_t with
    k = a_t sigma_s^2 / (a_s sigma_t) (the DDPM posterior). Averaging over x0 given x_t gives
    A = a_s / a_t and B = k - a_s sigma_t / a_t.

    Args:
        process: a forward process.
        t: later times, shape (n,).
        s: earlier times s < t, shape (n,).

    Returns:
        (A, B), each of shape (n,).
    """
    a_t, a_s = process.alpha(t), process.alpha(s)
    sig_t, sig_s = process.sigma(t), process.sigma(s)
    k = a_t * sig_s**2 / (a_s * sig_t)
    return a_s / a_t, k - a_s * sig_t / a_t


def _sample_times(key, process, n, t_low):
    return jax.random.uniform(key, (n,), minval=t_low, maxval=process.t_max)


def training_example(key, process, x0, objective: str, naive_dt: float = 0.01):
    """Draw (xt, t, target) for a batch of clean points.

    Args:
        key: a PRNG key.
        process: a forward process.
        x0: clean points, shape (n, d).
        objective: one of ``OBJECTIVES``.
        naive_dt: the step length of the naive one-step target (the story's 1/100).

    Returns:
        xt (n, d), t (n,), target (n, d).
    """
    k_t, k_eps, k_step = jax.random.split(key, 3)
    n = x0.shape[0]
    if objective == "naive":
        t = _sample_times(k_t, process, n, process.t_min + naive_dt)
        s = t - naive_dt
        x_s, _ = process.marginal(k_eps, x0, s)
        ratio = process.alpha(t) / process.alpha(s)
        step_std = jnp.sqrt(jnp.maximum(process.sigma(t) ** 2 - (ratio * process.sigma(s)) ** 2, 0))
        noise = jax.random.normal(k_step, x0.shape)
        xt = broadcast(ratio, x0) * x_s + broadcast(step_std, x0) * noise
        a, b = naive_coefficients(process, t, s)
        return xt, t, (x_s - broadcast(a, x0) * xt) / broadcast(b, x0)
    t = _sample_times(k_t, process, n, process.t_min)
    xt, eps = process.marginal(k_eps, x0, t)
    return xt, t, process.predict(xt, t, x0, eps, OBJECTIVES[objective])


SIGMA_DATA = 0.5
"""Typical spread of the 2D data sets, used to scale the network's input."""


def scale_input(process, xt, t):
    """Scale xt to unit variance before the network sees it: c_in = 1 / sqrt(a^2 s_data^2 + s^2).

    The raw noisy points of the reference VE process reach |x| ~ 30 at sigma_max = 10; the
    network learns far better on inputs of unit size (Karras et al. 2022, "c_in"). This is part
    of how the network is wired to the process, not of the loss or the target.
    """
    a, s = broadcast(process.alpha(t), xt), broadcast(process.sigma(t), xt)
    return xt / jnp.sqrt(a**2 * SIGMA_DATA**2 + s**2)


def drop_labels(key, labels, p: float, null):
    """Replace each condition by the null one with probability p (classifier-free guidance).

    Args:
        key: a PRNG key.
        labels: class ids (n,) or condition vectors (n, D).
        p: the drop probability.
        null: the null condition: a class id, or a vector (D,).

    Returns:
        The conditions, same shape as ``labels``.
    """
    keep = jax.random.uniform(key, labels.shape[:1]) >= p
    return jnp.where(keep.reshape(keep.shape + (1,) * (labels.ndim - 1)), labels, null)


def loss_fn(params, graphdef, key, x0, labels, *, process, objective, naive_dt=0.01, cond_drop=0.0):
    """Mean squared error of the network output against the objective's target.

    Args:
        params: network parameters (an ``nnx.State``).
        graphdef: the network's graph definition.
        key: a PRNG key.
        x0: clean points, shape (n, d), or images (n, H, W, C).
        labels: class ids (n,) or condition vectors (n, D); None for an unconditional network.
        process: a forward process.
        objective: one of ``OBJECTIVES``.
        naive_dt: step length of the naive target.
        cond_drop: probability of training on the null class instead of the label.

    Returns:
        (loss, per_example): the scalar mean and the per-example squared errors summed over
        every axis but the first, shape (n,).
    """
    k_ex, k_drop = jax.random.split(key)
    xt, t, target = training_example(k_ex, process, x0, objective, naive_dt)
    net = nnx.merge(graphdef, params)
    if labels is not None and cond_drop > 0:
        labels = drop_labels(k_drop, labels, cond_drop, net.null_condition)
    out = net(scale_input(process, xt, t), t, labels)
    per_example = jnp.sum((out - target) ** 2, axis=tuple(range(1, out.ndim)))
    return jnp.mean(per_example), per_example


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["params", "label"],
    meta_fields=["graphdef", "process", "objective"],
)
@dataclasses.dataclass(frozen=True)
class NetworkDenoiser:
    """A trained network as a denoiser ``(xt, t) -> (x0_hat, eps_hat)``.

    Attributes:
        params: network parameters.
        label: the condition: a class id (int32, () or one per sample (n,)) or a condition
            vector (float32, (D,) or (n, D)); None for the null condition.
        graphdef: the network's graph definition.
        process: the forward process it was trained on.
        objective: the objective it was trained with (fixes what its output means).
    """

    params: nnx.State
    label: jax.Array | None
    graphdef: nnx.GraphDef
    process: object
    objective: str

    def __call__(self, xt, t):
        net = nnx.merge(self.graphdef, self.params)
        out = net(scale_input(self.process, xt, t), t, self.label)
        return self.process.x0_eps_from(xt, t, out, OBJECTIVES[self.objective])

    def with_label(self, label):
        """The same network with another condition: a class id, a vector, or None (null)."""
        if label is not None:
            label = jnp.asarray(label)
            label = label.astype(
                jnp.int32 if jnp.issubdtype(label.dtype, jnp.integer) else jnp.float32
            )
        return dataclasses.replace(self, label=label)
