"""Samplers against closed forms and against each other."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toydiff import data
from toydiff.engine.oracle import gaussian_mixture_oracle, point_set_oracle
from toydiff.engine.processes import VE
from toydiff.engine.samplers import SAMPLERS, ddim, ddpm, euler, frame_times, get_sampler, sample

MEAN = np.array([0.5, -0.3])
COV = np.array([[0.5, 0.2], [0.2, 0.3]])
ODE_AND_SDE = ("ddim", "euler", "heun", "sde")


def _whitened_noise(key, n):
    """Standard normal draws whose sample mean is exactly 0 and sample covariance exactly I."""
    z = np.asarray(jax.random.normal(key, (n, 2)), np.float64)
    z -= z.mean(0)
    return z @ np.linalg.inv(np.linalg.cholesky(np.cov(z.T, bias=True))).T


def _exact_start(process, key, n):
    """Points drawn from the exact marginal of N(MEAN, COV) at t_max, with exact moments."""
    t = process.t_max
    a, s = float(process.alpha(t)), float(process.sigma(t))
    chol = np.linalg.cholesky(a**2 * COV + s**2 * np.eye(2))
    return jnp.asarray(a * MEAN + _whitened_noise(key, n) @ chol.T, jnp.float32)


def _moments(x):
    x = np.asarray(x, np.float64)
    return x.mean(0), np.cov(x.T)


def _relative(err, ref):
    return np.linalg.norm(err) / np.linalg.norm(ref)


def _run(name, process, x_init, steps, key):
    oracle = gaussian_mixture_oracle(process, MEAN[None], COV[None])
    return get_sampler(name)(key, oracle, process, x_init, steps)


@pytest.mark.parametrize("name", ODE_AND_SDE)
def test_gaussian_reproduced_by_every_sampler_on_every_process(name, process, key):
    # The samplers start from the exact marginal at t_max, so only the sampler is under test.
    n = 100_000 if name == "sde" else 20_000
    x = _run(name, process, _exact_start(process, key, n), 256, jax.random.key(1))[-1]
    mean, cov = _moments(x)
    assert _relative(mean - MEAN, MEAN) < 0.03
    assert _relative(cov - COV, COV) < 0.03


def test_ddpm_reproduces_gaussian_on_reference_process(key):
    process = VE()
    x = _run("ddpm", process, _exact_start(process, key, 100_000), 256, jax.random.key(1))[-1]
    mean, cov = _moments(x)
    assert _relative(mean - MEAN, MEAN) < 0.03
    assert _relative(cov - COV, COV) < 0.03


def _ddpm_chain_covariance(process, steps):
    """Closed-form covariance of DDPM's discrete chain on N(MEAN, COV), in float64.

    Each step is linear in x: x_r = (c_x I + c_0 M_t) x + const + sqrt(var) z, with
    x0_hat = M_t x + const and M_t = a Sigma (a^2 Sigma + s^2 I)^-1.
    """
    ts = np.asarray(frame_times(process, steps), np.float64)
    a = np.append(np.asarray(process.alpha(ts), np.float64), 1.0)  # the last step ends clean
    s = np.append(np.asarray(process.sigma(ts), np.float64), 0.0)
    eye = np.eye(2)
    cov = a[0] ** 2 * COV + s[0] ** 2 * eye
    for i in range(steps):
        a_tr = a[i] / a[i + 1]
        s2_tr = s[i] ** 2 - a_tr**2 * s[i + 1] ** 2
        c_x, c_0 = a_tr * s[i + 1] ** 2 / s[i] ** 2, a[i + 1] * s2_tr / s[i] ** 2
        var = s2_tr * s[i + 1] ** 2 / s[i] ** 2
        m = a[i] * COV @ np.linalg.inv(a[i] ** 2 * COV + s[i] ** 2 * eye)
        lin = c_x * eye + c_0 * m
        cov = lin @ cov @ lin.T + var * eye
    return cov


def test_ddpm_matches_its_closed_form_chain(process, key):
    """DDPM's finite-step chain is known in closed form for Gaussian data; match it.

    Ancestral sampling drops the uncertainty of x0 given xt from each step's variance, so at 256
    steps it under-disperses by a few percent (Bao et al. 2022, Analytic-DPM); the closed form
    says exactly how much, and the sampler must agree with it.
    """
    x = _run("ddpm", process, _exact_start(process, key, 100_000), 256, jax.random.key(1))[-1]
    mean, cov = _moments(x)
    expected = _ddpm_chain_covariance(process, 256)
    assert _relative(cov - expected, expected) < 0.01
    assert _relative(mean - MEAN, MEAN) < 0.03


def test_ddim_with_eta_one_is_ddpm(process, key):
    oracle = gaussian_mixture_oracle(process, MEAN[None], COV[None])
    x_init = process.prior(key, (256, 2))
    a = ddpm(jax.random.key(7), oracle, process, x_init, 32)
    b = ddim(jax.random.key(7), oracle, process, x_init, 32, eta=1.0)
    np.testing.assert_allclose(a, b, atol=2e-4)


def test_euler_is_ddim_with_eta_zero(process, key):
    """DDIM is Euler's method on the probability-flow ODE in Karras' coordinates."""
    oracle = gaussian_mixture_oracle(process, MEAN[None], COV[None])
    x_init = process.prior(key, (256, 2))
    a = euler(key, oracle, process, x_init, 32)
    b = ddim(key, oracle, process, x_init, 32, eta=0.0)
    np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("name", [s for s in SAMPLERS if s != "ddpm-nonoise"])
def test_spiral_oracle_lands_on_the_points(name, key):
    cloud = data.spiral()
    process = VE()
    oracle = point_set_oracle(process, cloud.x)
    x = np.asarray(sample(key, oracle, process, 500, 64, sampler=name)[-1])
    dist = np.min(np.linalg.norm(x[:, None] - cloud.x[None], axis=-1), axis=1)
    assert np.mean(dist < 0.05) > 0.97
    assert np.median(dist) < 0.02
    # and they spread over the data instead of piling onto a few points
    hit = np.unique(np.argmin(np.linalg.norm(x[:, None] - cloud.x[None], axis=-1), axis=1))
    assert hit.size > 80


def test_nonoise_collapses_toward_the_mean(key):
    cloud = data.spiral()
    process = VE()
    oracle = point_set_oracle(process, cloud.x)
    x = np.asarray(sample(key, oracle, process, 500, 64, sampler="ddpm-nonoise")[-1])
    centre = cloud.x.mean(0)
    assert (
        np.linalg.norm(x - centre, axis=1).mean()
        < 0.5 * np.linalg.norm(cloud.x - centre, axis=1).mean()
    )


@pytest.mark.parametrize("name", SAMPLERS)
def test_trajectory_shape_and_reproducibility(name, key):
    process = VE()
    oracle = point_set_oracle(process, data.spiral().x)
    traj = sample(key, oracle, process, 16, 8, sampler=name)
    assert traj.shape == (9, 16, 2)
    np.testing.assert_array_equal(traj, sample(key, oracle, process, 16, 8, sampler=name))
    other = sample(jax.random.key(99), oracle, process, 16, 8, sampler=name)
    assert not np.allclose(traj[-1], other[-1])


def test_trajectory_starts_at_x_init(key):
    process = VE()
    oracle = point_set_oracle(process, data.spiral().x)
    x_init = process.prior(key, (10, 2))
    traj = ddpm(key, oracle, process, x_init, 5)
    np.testing.assert_array_equal(traj[0], x_init)


def test_new_data_does_not_recompile(key):
    process = VE()
    x_init = process.prior(key, (10, 2))
    ddim(key, point_set_oracle(process, data.spiral().x), process, x_init, 5, eta=0.0)
    before = ddim._cache_size()
    ddim(key, point_set_oracle(process, data.spiral().x + 1.0), process, x_init, 5, eta=0.3)
    assert ddim._cache_size() == before


def test_unknown_sampler():
    with pytest.raises(ValueError, match="ddpm, ddpm-nonoise, ddim, euler, heun, sde"):
        get_sampler("dpm++")


def test_starting_part_way_uses_the_later_part_of_the_schedule(key):
    """From t_start the schedule is t_start -> t_min -> clean, without recompiling per t_start."""
    process = VE()
    oracle = point_set_oracle(process, data.spiral().x)
    x = process.prior(key, (4, 2)) * 0.05
    full = ddim(key, oracle, process, x, 8, eta=0.0, t_start=jnp.float32(process.t_max))
    np.testing.assert_allclose(full, ddim(key, oracle, process, x, 8, eta=0.0), atol=1e-6)
    size = ddim._cache_size()
    part = ddim(key, oracle, process, x, 8, eta=0.0, t_start=jnp.float32(0.4))
    assert ddim._cache_size() == size
    times = np.asarray(frame_times(process, 8, 0.4))
    np.testing.assert_allclose(times[[0, -1]], [0.4, process.t_min], atol=1e-6)
    assert not np.allclose(part[-1], full[-1])


def test_a_sampler_compiled_with_options_is_the_same_sampler():
    # The image path compiles its samplers with its own XLA options (compilation.image_options);
    # the function is the same, so the trajectory is the same up to the last bits, and the
    # default sampler (the 2D lab's) is left as it was.
    from toydiff.engine import compilation

    options = compilation.image_options()
    if jax.default_backend() == "cpu":
        assert options == compilation.CPU_IMAGE_OPTIONS
    assert compilation.image_options("dit") is None  # the transformer keeps the defaults
    assert get_sampler("ddim") is SAMPLERS["ddim"]
    assert get_sampler("ddim", None) is SAMPLERS["ddim"]
    process = VE()
    denoiser = gaussian_mixture_oracle(process, MEAN[None], COV[None])
    x_init = _exact_start(process, jax.random.key(0), 64)
    opts = {"xla_cpu_enable_fast_min_max": False}
    for name in ("ddpm", "ddpm-nonoise", "ddim"):
        variant = get_sampler(name, opts)
        assert variant is not get_sampler(name)
        assert variant is get_sampler(name, dict(opts))  # compiled once per options
        a = get_sampler(name)(jax.random.key(1), denoiser, process, x_init, 8)
        b = variant(jax.random.key(1), denoiser, process, x_init, 8)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
