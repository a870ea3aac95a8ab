import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toydiff import data
from toydiff.engine.oracle import exact_field, gaussian_mixture_oracle, point_set_oracle
from toydiff.engine.processes import VE


def test_single_point_denoises_to_itself(process, key):
    oracle = point_set_oracle(process, jnp.array([[0.3, -0.4]]))
    xt = jax.random.normal(key, (8, 2))
    x0_hat, eps_hat = oracle(xt, 0.5)
    np.testing.assert_allclose(x0_hat, np.tile([0.3, -0.4], (8, 1)), atol=1e-6)
    a, s = process.alpha(0.5), process.sigma(0.5)
    np.testing.assert_allclose(eps_hat, (xt - a * x0_hat) / s, rtol=1e-5, atol=1e-5)


def test_point_set_is_a_mixture_of_tiny_gaussians(process, key):
    pts = data.spiral().x[::10]
    mixture = gaussian_mixture_oracle(process, pts, np.tile(1e-9 * np.eye(2), (len(pts), 1, 1)))
    xt = jax.random.normal(key, (32, 2))
    for t in (0.3, 0.6, 0.9):
        np.testing.assert_allclose(
            point_set_oracle(process, pts)(xt, t)[0], mixture(xt, t)[0], atol=1e-4
        )


def _log_density(process, means, covs, x, t):
    a, s = process.alpha(t), process.sigma(t)
    cov_t = a**2 * covs + s**2 * jnp.eye(2)
    diff = x - a * means
    logp = -0.5 * jnp.einsum("ki,kij,kj->k", diff, jnp.linalg.inv(cov_t), diff)
    return jax.nn.logsumexp(logp - 0.5 * jnp.linalg.slogdet(cov_t)[1])


def test_mixture_score_is_the_gradient_of_log_density(process, key):
    means = jnp.array([[0.5, 0.5], [-0.7, 0.2], [0.0, -0.8]])
    covs = jnp.array([np.diag([0.05, 0.1]), [[0.1, 0.03], [0.03, 0.05]], 0.02 * np.eye(2)])
    oracle = gaussian_mixture_oracle(process, means, covs)
    x = jax.random.normal(key, (16, 2))
    for t in (0.2, 0.5, 0.8):
        score = jax.vmap(jax.grad(lambda p, t=t: _log_density(process, means, covs, p, t)))(x)
        _, eps_hat = oracle(x, t)
        np.testing.assert_allclose(-eps_hat / process.sigma(t), score, rtol=1e-3, atol=1e-3)


def test_per_example_times_match_scalar_times(key):
    process = VE()
    oracle = gaussian_mixture_oracle(process, jnp.zeros((1, 2)), jnp.eye(2)[None])
    x = jax.random.normal(key, (5, 2))
    np.testing.assert_allclose(oracle(x, jnp.full(5, 0.4))[0], oracle(x, 0.4)[0], rtol=1e-5)


def test_class_oracle_keeps_only_its_class():
    cloud = data.spiral_classes()
    oracle = point_set_oracle(VE(), cloud.x, cloud.labels, label=2)
    cats, people = cloud.x[cloud.labels == 2], cloud.x[cloud.labels == 0]
    x0_cats, _ = oracle(jnp.asarray(cats), 0.0)
    np.testing.assert_allclose(x0_cats, cats, atol=1e-4)  # cats denoise to themselves
    x0_people, _ = oracle(jnp.asarray(people), 0.2)
    dist = np.min(np.linalg.norm(np.asarray(x0_people)[:, None] - people[None], axis=-1), axis=1)
    assert np.all(dist > 0.1)  # and people are pulled away, toward the cats' arc


def test_exact_field_points_home_at_small_noise():
    pts = data.spiral().x
    outer = pts[50:]  # neighbours here are > 0.08 apart, far beyond sigma_min = 0.01
    field = exact_field(point_set_oracle(VE(), pts), jnp.asarray(outer + 0.003), 0.0)
    # -eps_hat = (x0_hat - xt) / sigma points from the perturbed point back to the data point
    cos = np.sum(np.asarray(field) * -0.003, axis=1) / (
        np.linalg.norm(field, axis=1) * 0.003 * 2**0.5
    )
    assert np.all(cos > 0.99)


def test_class_oracle_needs_labels():
    with pytest.raises(ValueError, match="labels"):
        point_set_oracle(VE(), data.spiral().x, label=1)
