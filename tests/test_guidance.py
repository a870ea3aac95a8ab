import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toydiff.engine import guidance
from toydiff.engine.objectives import NetworkDenoiser
from toydiff.engine.processes import VE
from toydiff.nets.mlp import CONDITIONAL, init_network


@pytest.fixture(scope="module")
def net():
    graphdef, params = init_network(CONDITIONAL, seed=3)
    return NetworkDenoiser(params, None, graphdef, VE(sigma_max=1.0), "eps")


@pytest.fixture(scope="module")
def xt():
    return jax.random.normal(jax.random.key(0), (32, 2))


def test_weight_one_is_conditional_and_zero_is_unconditional(net, xt):
    cond = net.with_label(1)(xt, 0.4)
    uncond = net.with_label(None)(xt, 0.4)
    for w, expected in ((1.0, cond), (0.0, uncond)):
        got = guidance.classifier_free(net, 1, w)(xt, 0.4)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_guidance_extrapolates_linearly(net, xt):
    _, e_c = net.with_label(2)(xt, 0.4)
    _, e_u = net.with_label(None)(xt, 0.4)
    _, e_w = guidance.classifier_free(net, 2, 3.0)(xt, 0.4)
    np.testing.assert_allclose(e_w, e_u + 3.0 * (e_c - e_u), rtol=1e-4, atol=1e-5)
    assert not np.allclose(e_c, e_u)  # the labels really change the prediction


def test_negative_class_replaces_unconditional(net, xt):
    _, e_c = net.with_label(0)(xt, 0.4)
    _, e_n = net.with_label(2)(xt, 0.4)
    _, e_w = guidance.classifier_free(net, 0, 2.0, negative=2)(xt, 0.4)
    np.testing.assert_allclose(e_w, e_n + 2.0 * (e_c - e_n), rtol=1e-4, atol=1e-5)


def test_x0_and_eps_stay_consistent(net, xt):
    proc = net.process
    x0, eps = guidance.classifier_free(net, 1, 4.0)(xt, 0.7)
    np.testing.assert_allclose(proc.alpha(0.7) * x0 + proc.sigma(0.7) * eps, xt, atol=1e-4)


@pytest.mark.parametrize("w", [0.0, 1.0, 3.0, 7.5])
def test_convention_converters(w, net, xt):
    s = guidance.to_smalldiffusion(w)
    assert guidance.from_smalldiffusion(s) == pytest.approx(w)
    assert guidance.from_flow_matching(guidance.to_flow_matching(w)) == pytest.approx(w)
    _, e_c = net.with_label(1)(xt, 0.4)
    _, e_u = net.with_label(None)(xt, 0.4)
    _, ours = guidance.classifier_free(net, 1, w)(xt, 0.4)
    np.testing.assert_allclose(e_c + s * (e_c - e_u), ours, rtol=1e-4, atol=1e-5)  # smalldiffusion
    s_fm = guidance.to_flow_matching(w)
    np.testing.assert_allclose((1 + s_fm) * e_c - s_fm * e_u, ours, rtol=1e-4, atol=1e-5)


def test_changing_w_does_not_recompile(net, xt):
    f = jax.jit(lambda d, x: d(x, 0.5))
    f(guidance.classifier_free(net, 1, 2.0), xt)
    size = f._cache_size()
    f(guidance.classifier_free(net, 0, jnp.float32(5.0)), xt)
    assert f._cache_size() == size
