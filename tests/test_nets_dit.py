"""The diffusion transformer: patches, positions, adaLN-Zero, attention, costs, configs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from toydiff.nets import NETWORKS, network_of
from toydiff.nets.dit import (
    DiT,
    DiTConfig,
    SelfAttention,
    forward_flops,
    patchify,
    position_embedding,
    unpatchify,
)
from toydiff.nets.unet import UNetConfig

IMAGE = DiTConfig(size=8, in_channels=1, patch=2, width=32, depth=2, heads=4, num_classes=10)
CLIP = DiTConfig(
    size=8, in_channels=3, frames=4, patch=4, patch_frames=2, width=32, depth=2, heads=2, cond_dim=6
)


def _noisy(net: DiT, seed: int = 1) -> DiT:
    """The network with every parameter perturbed: adaLN-Zero makes a fresh one output 0."""
    graphdef, params = nnx.split(net, nnx.Param)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    leaves = [p + 0.2 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys, strict=True)]
    return nnx.merge(graphdef, jax.tree.unflatten(tree, leaves))


@pytest.mark.parametrize("config", [IMAGE, CLIP], ids=["images", "clips"])
def test_output_has_the_input_shape_and_starts_at_zero(config):
    x = jax.random.normal(jax.random.key(0), (3, *config.dim))
    out = DiT(config, seed=0)(x, jnp.array([0.1, 0.5, 0.9]))
    assert out.shape == x.shape == (3, *config.dim) and out.dtype == jnp.float32
    assert float(jnp.abs(out).max()) == 0.0  # adaLN-Zero and a zero final layer


def test_init_is_a_function_of_the_seed():
    leaves = [jax.tree.leaves(nnx.split(DiT(IMAGE, s), nnx.Param)[1]) for s in (0, 0, 1)]
    assert all(np.array_equal(a, b) for a, b in zip(leaves[0], leaves[1], strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(leaves[0], leaves[2], strict=True))


@pytest.mark.parametrize("config", [IMAGE, CLIP], ids=["images", "clips"])
def test_patchify_round_trips_and_cuts_the_patches_it_says(config):
    x = jax.random.normal(jax.random.key(0), (2, *config.dim))
    tokens = patchify(x, config)
    assert tokens.shape == (2, config.tokens, config.patch_dim)
    np.testing.assert_array_equal(unpatchify(tokens, config), x)
    p = config.patch
    f, rows, cols = config.grid
    k = (f - 1) * rows * cols + (rows - 1) * cols + 1  # the last frame group, last row, column 1
    if config.frames:
        pf = config.patch_frames
        want = x[1, (f - 1) * pf : f * pf, (rows - 1) * p : rows * p, p : 2 * p]
    else:
        want = x[1, (rows - 1) * p : rows * p, p : 2 * p]
    np.testing.assert_array_equal(tokens[1, k], np.ravel(want))


def test_position_embeddings_tell_every_token_apart():
    for config in (IMAGE, CLIP):
        pos = position_embedding(config)
        assert pos.shape == (config.tokens, config.width)
        d = ((pos[:, None] - pos[None]) ** 2).sum(-1) + np.eye(len(pos))
        assert d.min() > 1e-3
    same_place = position_embedding(CLIP).reshape(2, 4, 32)  # two frame groups of 2x2 patches
    assert not np.allclose(same_place[0], same_place[1])  # the frame is visible too


def test_attention_is_softmax_of_scaled_products():
    config = DiTConfig(width=16, heads=2)
    attn = SelfAttention(config, np.random.default_rng(0))
    x = jax.random.normal(jax.random.key(0), (2, 5, 16))
    qkv = attn.qkv(x).reshape(2, 5, 3, 2, 8)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # (n, heads, T, 8)
    w = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(8), axis=-1)
    want = attn.proj((w @ v).transpose(0, 2, 1, 3).reshape(2, 5, 16))
    np.testing.assert_allclose(attn(x), want, atol=1e-5)


def test_the_network_depends_on_time_condition_and_far_away_patches():
    net = _noisy(DiT(IMAGE, seed=0))
    x = jax.random.normal(jax.random.key(0), (2, *IMAGE.dim))
    base = net(x, 0.5, jnp.array([3, 3]))
    assert not np.allclose(base, net(x, 0.6, jnp.array([3, 3])), atol=1e-4)
    assert not np.allclose(base, net(x, 0.5, jnp.array([4, 4])), atol=1e-4)
    assert not np.allclose(base, net(x, 0.5, None), atol=1e-4)  # the null class
    corner = x.at[:, :2, :2].add(1.0)  # one patch in the top left
    far = net(corner, 0.5, jnp.array([3, 3]))[:, -2:, -2:]  # the bottom-right patch
    assert not np.allclose(far, base[:, -2:, -2:], atol=1e-5)  # attention is global


def test_clip_conditioning_with_a_null_vector():
    net = _noisy(DiT(CLIP, seed=0))
    x = jax.random.normal(jax.random.key(0), (2, *CLIP.dim))
    np.testing.assert_allclose(net(x, 0.3, jnp.zeros(6)), net(x, 0.3, None), atol=1e-6)
    assert not np.allclose(net(x, 0.3, jnp.ones(6) / 6**0.5), net(x, 0.3, None), atol=1e-4)


def test_bfloat16_compute_stays_close_and_params_stay_float32():
    import dataclasses

    f32 = _noisy(DiT(IMAGE, seed=0))
    graphdef, params = nnx.split(f32, nnx.Param)
    bf16 = nnx.merge(
        nnx.split(DiT(dataclasses.replace(IMAGE, dtype="bfloat16")), nnx.Param)[0], params
    )
    x = jax.random.normal(jax.random.key(0), (2, *IMAGE.dim))
    a, b = f32(x, 0.5, jnp.array([1, 2])), bf16(x, 0.5, jnp.array([1, 2]))
    assert b.dtype == jnp.float32
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.split(bf16, nnx.Param)[1]))
    rel = float(jnp.linalg.norm(a - b) / jnp.linalg.norm(a))
    assert 0 < rel < 0.05


@pytest.mark.parametrize("config", [IMAGE, CLIP], ids=["images", "clips"])
def test_analytic_flops_match_xlas_count(config):
    graphdef, params = nnx.split(DiT(config), nnx.Param)

    def forward(params, x):
        return nnx.merge(graphdef, params)(x, 0.5, None)

    x = jnp.zeros((1, *config.dim))
    cost = jax.jit(forward).lower(params, x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    assert abs(cost["flops"] / forward_flops(config) - 1) < 0.15


def test_the_registry_names_both_networks():
    assert NETWORKS.names == ("unet", "dit")
    assert network_of(IMAGE).module is DiT and network_of(UNetConfig()).name == "unet"
    assert NETWORKS["dit"].clips and not NETWORKS["unet"].clips
    with pytest.raises(Exception, match="unknown network 'vit'; allowed: unet, dit"):
        NETWORKS["vit"]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"size": 10, "patch": 4}, "multiple of 4"),
        ({"frames": 5, "patch_frames": 2}, "tubelets of 2"),
        ({"width": 30, "heads": 4}, "multiple of 4 and of heads=4"),
        ({"dtype": "float16"}, "unknown dtype"),
        ({"num_classes": 3, "cond_dim": 4}, "not both"),
        ({"time_features": 7}, "even"),
    ],
)
def test_shapes_the_transformer_cannot_take(changes, message):
    import dataclasses

    with pytest.raises(ValueError, match=message):
        dataclasses.replace(DiTConfig(), **changes).check()
