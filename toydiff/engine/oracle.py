"""Exact denoisers: the ideal answer a network is trying to learn.

For data made of a finite point set, or of a Gaussian mixture, E[x0 | xt] has a closed form. These
oracles speak the denoiser interface ``(xt, t) -> (x0_hat, eps_hat)``, so every sampler can run on
them in place of a network, and the exact vector field -eps_hat can be drawn beside the learned one.
They are pytrees (arrays as leaves, the process as static metadata), so jitted samplers accept them.

Reference: Karras et al., "Elucidating the Design Space of Diffusion-Based Generative Models",
NeurIPS 2022, eq. 57 (the ideal denoiser of a finite data set).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from toydiff.engine.processes import broadcast


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["points", "log_weights"],
    meta_fields=["process"],
)
@dataclasses.dataclass(frozen=True)
class PointSetOracle:
    """The exact denoiser of the empirical distribution of a finite point set.

    E[x0 | xt] is the softmax-weighted mean of the points x_i with weights
    exp(-|xt - a x_i|^2 / (2 s^2)), and the exact score is (a E[x0 | xt] - xt) / s^2. Points may
    be images: each is then one point of the space with an axis per pixel.

    Attributes:
        points: the data, shape (m, d) or (m, H, W, C).
        log_weights: log prior weight of each point, shape (1, m), or (n, m) with one row per
            sample; -inf removes a point (this is how the class-conditional oracle keeps only
            one class, or each sample's own class).
        process: the forward process.
    """

    points: jax.Array
    log_weights: jax.Array
    process: object

    def __call__(self, xt, t):
        n = xt.shape[0]
        flat, points = xt.reshape(n, -1), self.points.reshape(self.points.shape[0], -1)
        a, s = broadcast(self.process.alpha(t), flat), broadcast(self.process.sigma(t), flat)
        # |x - a p|^2 = |x|^2 - 2 a x.p + a^2 |p|^2: one matrix product, no (n, m, d) array.
        sq = jnp.sum(flat**2, axis=-1, keepdims=True) + a**2 * jnp.sum(points**2, axis=-1)
        d2 = jnp.maximum(sq - 2 * a * (flat @ points.T), 0.0)
        # a and s have shape (n, 1) or (1, 1), so they broadcast against d2 of shape (n, m).
        w = jax.nn.softmax(-d2 / (2 * s**2) + self.log_weights, axis=-1)
        x0_hat = (w @ points).reshape(xt.shape)
        return x0_hat, (xt - broadcast(self.process.alpha(t), xt) * x0_hat) / broadcast(
            self.process.sigma(t), xt
        )


def point_set_oracle(process, points, labels=None, label=None, mask=None) -> PointSetOracle:
    """The exact denoiser of a point set, optionally restricted to one class.

    Args:
        process: the forward process.
        points: the data, shape (m, d) or (m, H, W, C).
        labels: class ids of the points, shape (m,), or None.
        label: keep only points with this class id, or with each sample's class id (an array
            (n,), for n samples); None keeps all points.
        mask: keep only the points where this is True: (m,), or (n, m), one row per sample.

    Returns:
        A ``PointSetOracle``.
    """
    points = jnp.asarray(points, jnp.float32)
    log_w = jnp.zeros((1, points.shape[0]), jnp.float32)
    if label is not None:
        if labels is None:
            raise ValueError("a class-conditional oracle needs the points' labels")
        label = jnp.reshape(jnp.asarray(label), (-1, 1))  # (1, 1) or (n, 1)
        log_w = jnp.where(jnp.asarray(labels)[None, :] == label, 0.0, -jnp.inf)
    if mask is not None:
        mask = jnp.asarray(mask, bool)
        log_w = jnp.where(mask.reshape((-1, points.shape[0])), log_w, -jnp.inf)
    return PointSetOracle(points, log_w, process)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["means", "covs", "log_weights"],
    meta_fields=["process"],
)
@dataclasses.dataclass(frozen=True)
class GaussianMixtureOracle:
    """The exact denoiser of a Gaussian mixture sum_k pi_k N(mu_k, Sigma_k).

    Under xt = a x0 + s eps, component k gives xt ~ N(a mu_k, a^2 Sigma_k + s^2 I) and
    E[x0 | xt, k] = mu_k + a Sigma_k (a^2 Sigma_k + s^2 I)^{-1} (xt - a mu_k); the responsibilities
    of the components weight these means.

    Attributes:
        means: component means, shape (K, d).
        covs: component covariances, shape (K, d, d).
        log_weights: log mixture weights, shape (K,).
        process: the forward process.
    """

    means: jax.Array
    covs: jax.Array
    log_weights: jax.Array
    process: object

    def _gains(self, t):
        """Per-component precision (K, d, d), gain a Sigma_k cov_t^-1 (K, d, d) and log-det (K,)."""
        a, s = self.process.alpha(t), self.process.sigma(t)
        d = self.means.shape[1]
        cov_t = a**2 * self.covs + s**2 * jnp.eye(d, dtype=self.covs.dtype)
        precision = jnp.linalg.inv(cov_t)
        _, logdet = jnp.linalg.slogdet(cov_t)
        return precision, a * self.covs @ precision, logdet

    def _denoise(self, xt, t):
        """Denoise points xt (n, d) that share one scalar time t."""
        a, s = self.process.alpha(t), self.process.sigma(t)
        precision, gain, logdet = self._gains(t)
        diff = xt[:, None, :] - a * self.means[None]  # (n, K, d)
        mahal = jnp.einsum("nki,kij,nkj->nk", diff, precision, diff)
        log_resp = self.log_weights - 0.5 * (mahal + logdet)  # (n, K)
        cond_means = self.means[None] + jnp.einsum("kij,nkj->nki", gain, diff)
        x0_hat = jnp.einsum("nk,nki->ni", jax.nn.softmax(log_resp, axis=-1), cond_means)
        return x0_hat, (xt - a * x0_hat) / s

    def __call__(self, xt, t):
        t = jnp.asarray(t, xt.dtype)
        if t.ndim == 0:
            return self._denoise(xt, t)
        one = jax.vmap(lambda x, ti: self._denoise(x[None], ti))
        x0_hat, eps_hat = one(xt, t)
        return x0_hat[:, 0], eps_hat[:, 0]


def gaussian_mixture_oracle(process, means, covs, weights=None) -> GaussianMixtureOracle:
    """The exact denoiser of a Gaussian mixture; a single Gaussian is a mixture of one.

    Args:
        process: the forward process.
        means: shape (K, d).
        covs: shape (K, d, d), symmetric positive definite.
        weights: mixture weights, shape (K,); uniform if None.

    Returns:
        A ``GaussianMixtureOracle``.
    """
    means = jnp.atleast_2d(jnp.asarray(means, jnp.float32))
    covs = jnp.asarray(covs, jnp.float32).reshape(means.shape[0], means.shape[1], means.shape[1])
    k = means.shape[0]
    weights = jnp.full((k,), 1.0 / k) if weights is None else jnp.asarray(weights, jnp.float32)
    return GaussianMixtureOracle(means, covs, jnp.log(weights / jnp.sum(weights)), process)


def exact_field(denoiser, points, t):
    """The vector field -eps_hat that the lab draws, at the points (n, d) and scalar time t."""
    _, eps_hat = denoiser(points, t)
    return -eps_hat
