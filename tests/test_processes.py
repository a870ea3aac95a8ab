import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toydiff.engine.processes import PREDICTIONS, VE, VP, make_process


def test_ve_reference_boundaries():
    p = VE()
    np.testing.assert_allclose(p.sigma(0.0), 0.01, rtol=1e-6)
    np.testing.assert_allclose(p.sigma(1.0), 10.0, rtol=1e-6)
    np.testing.assert_allclose(p.sigma(0.5), np.sqrt(0.01 * 10.0), rtol=1e-5)  # log-linear
    np.testing.assert_allclose(p.t_of_sigma(p.sigma(0.3)), 0.3, rtol=1e-5)


def test_vp_boundaries():
    for p in (VP(), VP(schedule="cosine")):
        assert float(p.alpha(0.0)) == pytest.approx(1.0, abs=1e-6)
        assert float(p.alpha(p.t_max)) < 0.01
        t = jnp.linspace(p.t_min, p.t_max, 50)
        np.testing.assert_allclose(p.alpha(t) ** 2 + p.sigma(t) ** 2, 1.0, rtol=1e-5)


def test_flow_boundaries():
    p = make_process("flow")
    np.testing.assert_allclose(p.alpha(0.0), 1.0)
    np.testing.assert_allclose(p.sigma(1.0), 1.0)


def test_schedules_are_monotone(process):
    t = jnp.linspace(process.t_min, process.t_max, 200)
    assert np.all(np.diff(np.asarray(process.sigma(t))) > 0)
    assert np.all(np.diff(np.asarray(process.alpha(t))) <= 0)
    snr = np.asarray(process.alpha(t) / process.sigma(t))
    assert np.all(np.diff(snr) < 0)


def test_derivatives_match_finite_differences(process):
    t = jnp.linspace(process.t_min + 0.01, process.t_max - 0.01, 7)
    h = 1e-3
    fd_a = (process.alpha(t + h) - process.alpha(t - h)) / (2 * h)
    fd_s = (process.sigma(t + h) - process.sigma(t - h)) / (2 * h)
    np.testing.assert_allclose(process.dalpha(t), fd_a, rtol=2e-2, atol=1e-3)
    np.testing.assert_allclose(process.dsigma(t), fd_s, rtol=2e-2, atol=1e-3)


@pytest.mark.parametrize("kind", PREDICTIONS)
def test_conversions_round_trip(process, kind, key):
    k1, k2, k3 = jax.random.split(key, 3)
    x0 = jax.random.normal(k1, (64, 2))
    t = jax.random.uniform(k2, (64,), minval=0.05, maxval=0.95)
    xt, eps = process.marginal(k3, x0, t)
    pred = jax.jit(process.predict, static_argnums=4)(xt, t, x0, eps, kind)
    x0_back, eps_back = process.x0_eps_from(xt, t, pred, kind)
    np.testing.assert_allclose(x0_back, x0, atol=2e-4)
    np.testing.assert_allclose(eps_back, eps, atol=2e-4)


def test_score_is_tweedie(process, key):
    x0 = jnp.zeros((4, 2))
    xt, eps = process.marginal(key, x0, 0.5)
    # For x0 = 0 the marginal is N(0, s^2 I), whose score is -xt / s^2.
    np.testing.assert_allclose(
        process.score_from_eps(xt, 0.5, eps), -xt / process.sigma(0.5) ** 2, rtol=1e-5
    )


def test_marginal_statistics(process, key):
    x0 = jnp.full((200_000, 2), 0.7)
    xt, _ = process.marginal(key, x0, 0.6)
    np.testing.assert_allclose(xt.mean(0), 0.7 * process.alpha(0.6), atol=0.01)
    np.testing.assert_allclose(xt.std(0), process.sigma(0.6), rtol=0.01)


def test_prior_matches_t_max(process, key):
    x = process.prior(key, (100_000, 2))
    np.testing.assert_allclose(x.std(0), process.sigma(process.t_max), rtol=0.02)


def test_unknown_names():
    with pytest.raises(ValueError, match="ve, vp, vp-cosine, flow"):
        make_process("ddpm")
    with pytest.raises(ValueError, match="linear"):
        VP(schedule="quadratic")
    with pytest.raises(ValueError, match="velocity"):
        VE().x0_eps_from(jnp.zeros((1, 2)), 0.5, jnp.zeros((1, 2)), "noise")


def test_random_walk_matches_the_closed_form_marginal(process, key):
    """Chapter 3: the simulated spread of the walk agrees with sigma(t)^2 within 2%."""
    from toydiff.engine.processes import random_walk

    x0 = jnp.tile(jnp.array([[0.3, -0.5]]), (100_000, 1))
    ts, paths = random_walk(key, process, x0, steps=100)
    assert paths.shape == (101, 100_000, 2)
    for i in (25, 50, 100):
        a, s = float(process.alpha(ts[i])), float(process.sigma(ts[i]))
        # pooled over both coordinates: 200,000 draws, a standard error of 0.3%
        np.testing.assert_allclose(paths[i].var(0).mean(), s**2, rtol=0.02)
        np.testing.assert_allclose(
            paths[i].mean(0), a * np.array([0.3, -0.5]), atol=0.02 + 0.02 * s
        )
