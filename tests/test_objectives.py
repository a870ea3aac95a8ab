import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toydiff.engine.objectives import (
    OBJECTIVES,
    check_objective,
    drop_labels,
    loss_fn,
    training_example,
)
from toydiff.engine.processes import VE
from toydiff.nets.mlp import CONDITIONAL, NetConfig, init_network

X0 = jnp.tile(jnp.array([[0.4, -0.2]]), (200_000, 1))


def _exact_eps(process, xt, t):
    """For data that is one point, eps is a deterministic function of xt."""
    a, s = process.alpha(t)[:, None], process.sigma(t)[:, None]
    return (xt - a * X0[: xt.shape[0]]) / s


@pytest.mark.parametrize("objective", ["eps", "x0", "v", "velocity"])
def test_targets_are_the_named_quantity(objective, process, key):
    xt, t, target = training_example(key, process, X0[:1000], objective)
    pred = {"eps": "eps", "x0": "x0", "v": "v", "velocity": "velocity"}[objective]
    x0_back, eps_back = process.x0_eps_from(xt, t, target, pred)
    np.testing.assert_allclose(x0_back, X0[:1000], atol=2e-3)
    np.testing.assert_allclose(eps_back, _exact_eps(process, xt, t), atol=2e-3)


def test_naive_target_is_unbiased_but_noisier(key):
    """The story's point: the one-step target points the same way on average, with more noise."""
    process = VE()
    xt, t, target = training_example(key, process, X0, "naive", naive_dt=0.01)
    residual = np.asarray(target - _exact_eps(process, xt, t))
    assert np.abs(residual.mean(0)).max() < 0.03  # unbiased for eps
    assert residual.var() > 3.0  # while the eps target has zero residual for one point
    xt, t, target = training_example(key, process, X0, "eps")
    assert np.abs(np.asarray(target - _exact_eps(process, xt, t))).max() < 1e-3


def test_loss_shapes_and_value():
    graphdef, params = init_network(NetConfig(), 0)
    loss, per = loss_fn(
        params, graphdef, jax.random.key(0), X0[:50], None, process=VE(), objective="eps"
    )
    assert per.shape == (50,)
    assert float(loss) == pytest.approx(float(per.mean()))


def test_label_dropout_rate(key):
    labels = jnp.zeros(100_000, jnp.int32)
    dropped = drop_labels(key, labels, 0.2, 3)
    assert float(jnp.mean(dropped == 3)) == pytest.approx(0.2, abs=0.01)
    assert set(np.unique(dropped).tolist()) == {0, 3}


def test_conditional_loss_runs_with_dropout(key):
    graphdef, params = init_network(CONDITIONAL, 0)
    labels = jnp.arange(30) % 3
    loss, _ = loss_fn(
        params,
        graphdef,
        key,
        X0[:30],
        labels,
        process=VE(sigma_max=1.0),
        objective="eps",
        cond_drop=0.2,
    )
    assert np.isfinite(float(loss))


def test_unknown_objective():
    assert check_objective("naive") == "naive"
    with pytest.raises(ValueError, match=", ".join(OBJECTIVES)):
        check_objective("score-matching")
