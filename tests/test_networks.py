import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from toydiff.nets.mlp import CONDITIONAL, NetConfig, ScoreMLP, init_network, time_embedding


def test_reference_widths():
    net = ScoreMLP(NetConfig(), rngs=nnx.Rngs(0))
    widths = [layer.kernel.shape[1] for layer in net.layers]
    assert widths == [16, 128, 128, 128, 128, 16]
    assert net.head.kernel.shape == (16, 2)
    cond = ScoreMLP(CONDITIONAL, rngs=nnx.Rngs(0))
    assert [layer.kernel.shape[1] for layer in cond.layers] == [16, 128, 256, 128, 16]
    assert cond.class_embed.embedding.shape == (4, 4)  # 3 classes + the null class


@pytest.mark.parametrize("t", [0.3, np.linspace(0, 1, 7)])
def test_output_shape(t):
    net = ScoreMLP(NetConfig(), rngs=nnx.Rngs(0))
    assert net(jnp.ones((7, 2)), t).shape == (7, 2)


def test_labels_change_the_output_and_none_is_the_null_class():
    net = ScoreMLP(CONDITIONAL, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (5, 2))
    assert not np.allclose(net(x, 0.5, 0), net(x, 0.5, 1))
    np.testing.assert_array_equal(net(x, 0.5, None), net(x, 0.5, CONDITIONAL.null_class))


def test_time_embedding():
    emb = time_embedding(jnp.array([0.0, 1.0]), 8)
    assert emb.shape == (2, 8)
    np.testing.assert_allclose(emb[0], [0, 0, 0, 0, 1, 1, 1, 1], atol=1e-7)


def test_init_is_seeded():
    _, a = init_network(NetConfig(), 1)
    _, b = init_network(NetConfig(), 1)
    _, c = init_network(NetConfig(), 2)
    leaves = jax.tree.leaves
    assert all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b), strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(c), strict=True))


def test_odd_time_features_rejected():
    with pytest.raises(ValueError, match="even"):
        ScoreMLP(NetConfig(time_features=3), rngs=nnx.Rngs(0))
