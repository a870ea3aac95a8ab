"""The U-Net: shapes, the two convolutions, patches, conditioning, dtypes and errors."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from toydiff.nets import layers
from toydiff.nets.unet import UNet, UNetConfig, depth_to_space, space_to_depth

SMALL = UNetConfig(size=8, in_channels=3, channels=(8, 16), groups=4, num_classes=3)


@functools.partial(jax.jit, static_argnums=0)
def _run(graphdef, state, x, t, cond):
    return nnx.merge(graphdef, state)(x, t, cond)


def apply(net, x, t, cond=None):
    """The network compiled once per shape (tests run faster than op by op)."""
    graphdef, state = nnx.split(net)
    return _run(graphdef, state, x, jnp.float32(t), cond)


def test_output_has_the_input_shape_and_init_is_a_function_of_the_seed():
    x = jax.random.normal(jax.random.key(0), (5, 8, 8, 3))
    net = UNet(SMALL, seed=1)
    assert apply(net, x, 0.3, 1).shape == (5, 8, 8, 3)
    a = jax.tree.leaves(nnx.state(UNet(SMALL, seed=1), nnx.Param))
    b = jax.tree.leaves(nnx.state(UNet(SMALL, seed=1), nnx.Param))
    c = jax.tree.leaves(nnx.state(UNet(SMALL, seed=2), nnx.Param))
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c, strict=True))


def test_matmul_convolution_equals_xlas():
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 5))
    k = jax.random.normal(jax.random.key(1), (3, 3, 5, 7))
    np.testing.assert_allclose(
        layers.conv3x3_matmul(x, k), layers.conv3x3_xla(x, k), atol=1e-5, rtol=1e-5
    )
    x = jax.random.normal(jax.random.key(2), (3, 8, 8, 3))
    a = apply(UNet(SMALL, seed=0), x, 0.5, 2)
    b = apply(UNet(dataclasses.replace(SMALL, conv="xla"), seed=0), x, 0.5, 2)
    np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("shape", [(2, 6, 6, 5, 7), (3, 4, 8, 2, 3), (1, 8, 8, 16, 16)])
def test_hybrid_convolution_and_its_gradients_equal_xlas(shape):
    # The hybrid kernel's own backward pass (XLA's input gradient, the kernel gradient as one
    # product) against the gradients XLA derives for its convolution and the matmul one.
    n, h, w, c, o = shape
    x = jax.random.normal(jax.random.key(0), (n, h, w, c))
    k = jax.random.normal(jax.random.key(1), (3, 3, c, o))
    g = jax.random.normal(jax.random.key(2), (n, h, w, o))
    np.testing.assert_allclose(
        layers.conv3x3_hybrid(x, k), layers.conv3x3_xla(x, k), atol=1e-5, rtol=1e-5
    )
    grads = {
        name: jax.grad(lambda x, k, f=f: jnp.sum(f(x, k) * g), argnums=(0, 1))(x, k)
        for name, f in layers.IMPLS.items()
    }
    for name in ("xla", "matmul"):
        for mine, theirs in zip(grads["hybrid"], grads[name], strict=True):
            np.testing.assert_allclose(mine, theirs, atol=1e-4, rtol=1e-4)
    dk = layers.conv3x3_kernel_grad(x, g)
    assert dk.shape == (3, 3, c, o)
    # one tap by hand: dk[0, 2] pairs x shifted up and right with dy
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    by_hand = jnp.einsum("nijc,nijo->co", xp[:, 0:h, 2 : 2 + w], g)
    np.testing.assert_allclose(dk[0, 2], by_hand, atol=1e-4, rtol=1e-4)


def test_auto_convolution_is_hybrid_on_a_cpu_and_unknown_ones_are_refused():
    assert layers.resolve_conv("auto") == ("hybrid" if jax.default_backend() == "cpu" else "xla")
    assert layers.resolve_conv("matmul") == "matmul"
    assert UNetConfig().conv == "auto"
    net = UNet(SMALL, seed=0)
    assert net.conv_in.impl == layers.resolve_conv("auto")
    with pytest.raises(ValueError, match="unknown conv 'fft'; expected one of auto, matmul"):
        dataclasses.replace(SMALL, conv="fft").check()


def test_space_to_depth_round_trips():
    x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
    y = space_to_depth(x, 2)
    assert y.shape == (2, 2, 3, 12)
    np.testing.assert_array_equal(y[0, 0, 0], x[0, :2, :2].reshape(-1))
    np.testing.assert_array_equal(depth_to_space(y, 2), x)


def test_patched_unet():
    cfg = dataclasses.replace(SMALL, size=16, patch=2)
    assert apply(UNet(cfg), jnp.zeros((2, 16, 16, 3)), 0.5, 0).shape == (2, 16, 16, 3)


def test_the_network_depends_on_time_and_class():
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    net = UNet(SMALL, seed=0)
    params = nnx.state(net, nnx.Param)
    # The last convolutions start at zero (residual identity); give them weights to compare.
    params = jax.tree.map(lambda p: p + 0.1, params)
    nnx.update(net, params)
    assert not np.allclose(apply(net, x, 0.2, 0), apply(net, x, 0.8, 0))
    assert not np.allclose(apply(net, x, 0.5, 0), apply(net, x, 0.5, 1))
    np.testing.assert_array_equal(
        apply(net, x, 0.5, None), apply(net, x, 0.5, SMALL.null_condition)
    )


def test_vector_conditioning_with_a_null_vector():
    cfg = dataclasses.replace(SMALL, num_classes=0, cond_dim=6)
    net = UNet(cfg, seed=0)
    nnx.update(net, jax.tree.map(lambda p: p + 0.1, nnx.state(net, nnx.Param)))
    x = jax.random.normal(jax.random.key(0), (3, 8, 8, 3))
    e = jax.random.normal(jax.random.key(1), (3, 6))
    np.testing.assert_array_equal(apply(net, x, 0.5, None), apply(net, x, 0.5, jnp.zeros(6)))
    assert not np.allclose(apply(net, x, 0.5, e), apply(net, x, 0.5, None))
    mixed = e.at[1].set(0.0)  # one null row among real ones
    np.testing.assert_allclose(apply(net, x, 0.5, mixed)[1], apply(net, x, 0.5, None)[1], atol=1e-6)


def test_bfloat16_compute_stays_close_and_params_stay_float32():
    cfg = dataclasses.replace(SMALL, dtype="bfloat16")
    net = UNet(cfg, seed=0)
    nnx.update(net, jax.tree.map(lambda p: p + 0.05, nnx.state(net, nnx.Param)))
    ref = UNet(SMALL, seed=0)
    nnx.update(ref, nnx.state(net, nnx.Param))
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    out, want = apply(net, x, 0.5, 1), apply(ref, x, 0.5, 1)
    assert out.dtype == jnp.float32
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(net, nnx.Param)))
    assert float(jnp.abs(out - want).max()) < 0.05 * float(jnp.abs(want).max())
    assert not np.array_equal(out, want)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": 10, "channels": (8, 16, 32)}, "multiple of 4"),
        ({"size": 16, "patch": 3}, "multiple of 6"),
        ({"channels": (6, 16)}, "divide by groups"),
        ({"conv": "fft"}, "unknown conv 'fft'"),
        ({"dtype": "float16"}, "unknown dtype 'float16'"),
        ({"cond_dim": 4}, "not both"),
    ],
)
def test_shapes_the_unet_cannot_take(changes, message):
    with pytest.raises(ValueError, match=message):
        UNet(dataclasses.replace(SMALL, **changes))
