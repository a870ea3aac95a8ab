"""The U-Net's layers, in Flax NNX, initialised on the host from a numpy generator.

Why not ``nnx.Linear`` and ``nnx.Rngs``: every random initialiser there is a JAX random op, and
on XLA:CPU each one compiles separately; a U-Net's seventy-odd parameters took 6 to 16 s to
initialise before the first training step, compiled together or one by one. Drawn with
``numpy.random.Generator`` (seeded by the run's seed, drawn in construction order, so still a
pure function of the seed), they take milliseconds. The layers themselves are the textbook ones.

Conditioning is pluggable: ``ClassConditioner`` embeds class ids with a null class;
``VectorConditioner`` maps a condition vector (a text embedding in the CLIP chapter) with a
learned null embedding. Both return an (n, dim) embedding the U-Net adds to its time embedding.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def _normal(rng: np.random.Generator, shape, std: float) -> nnx.Param:
    return nnx.Param(jnp.asarray(rng.standard_normal(shape, dtype=np.float32) * std))


def _const(shape, value: float) -> nnx.Param:
    return nnx.Param(jnp.full(shape, value, jnp.float32))


class Dense(nnx.Module):
    """y = x W + b, with W ~ N(0, 1 / fan_in) (LeCun), or zeros; computed in ``dtype``."""

    def __init__(self, cin: int, cout: int, rng, *, dtype=jnp.float32, zero: bool = False):
        self.kernel = _const((cin, cout), 0.0) if zero else _normal(rng, (cin, cout), cin**-0.5)
        self.bias = _const((cout,), 0.0)
        self.dtype = dtype

    def __call__(self, x):
        y = x.astype(self.dtype) @ self.kernel[...].astype(self.dtype)
        return y.astype(jnp.float32) + self.bias[...]


def conv3x3_matmul(x, kernel):
    """A 3x3 'same' convolution as one matrix product of the nine shifted copies of x.

    Args:
        x: images, shape (n, H, W, C).
        kernel: shape (3, 3, C, O).

    Returns:
        Shape (n, H, W, O).
    """
    _, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = jnp.concatenate(
        [xp[:, i : i + h, j : j + w, :] for i in range(3) for j in range(3)], axis=-1
    )  # (n, H, W, 9C), ordered like kernel.reshape(9C, O)
    return patches @ kernel.reshape(9 * c, -1)


def conv3x3_xla(x, kernel):
    """The same convolution through ``lax.conv_general_dilated``."""
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def conv3x3_kernel_grad(x, dy):
    """The gradient of a 3x3 'same' convolution with respect to its kernel, as one matrix product.

    With y = conv(x, k), dk[a, b, c, o] = sum over n, i, j of x[n, i+a-1, j+b-1, c] dy[n, i, j, o].
    The three column shifts of x side by side (n, H, W, 3C) meet the three row shifts of dy
    side by side (n, H, W, 3O) in one product over every pixel of every image: (3C, 3O), which
    holds all nine (C, O) blocks of the kernel.

    Args:
        x: the convolution's input, shape (n, H, W, C).
        dy: the gradient of its output, shape (n, H, W, O).

    Returns:
        Shape (3, 3, C, O), like the kernel.
    """
    _, h, w, c = x.shape
    o = dy.shape[-1]
    xp = jnp.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)))
    cols = jnp.concatenate([xp[:, :, b : b + w] for b in range(3)], axis=-1)  # [b, c]
    dyp = jnp.pad(dy, ((0, 0), (1, 1), (0, 0), (0, 0)))
    rows = jnp.concatenate([dyp[:, 2 - a : 2 - a + h] for a in range(3)], axis=-1)  # [a, o]
    dk = jnp.einsum("nijk,nijl->kl", cols, rows).reshape(3, c, 3, o)
    return dk.transpose(2, 0, 1, 3)


@jax.custom_vjp
def conv3x3_hybrid(x, kernel):
    """The same convolution: XLA's forward, XLA's for the input's gradient, and the kernel's
    gradient as one matrix product (``conv3x3_kernel_grad``).

    On XLA:CPU the forward convolution and the input gradient (the same convolution of dy with
    the kernel flipped and its channels swapped) run multi-threaded and fast, but the kernel
    gradient XLA derives itself (a convolution over the batch) ran 20-100x slower than the
    forward on 8x8 images; written as a product it runs at the speed of the others.
    """
    return conv3x3_xla(x, kernel)


def _hybrid_forward(x, kernel):
    return conv3x3_xla(x, kernel), (x, kernel)


def _hybrid_backward(residuals, dy):
    x, kernel = residuals
    dx = conv3x3_xla(dy, kernel[::-1, ::-1].transpose(0, 1, 3, 2))
    return dx, conv3x3_kernel_grad(x, dy).astype(kernel.dtype)


conv3x3_hybrid.defvjp(_hybrid_forward, _hybrid_backward)

IMPLS = {"matmul": conv3x3_matmul, "xla": conv3x3_xla, "hybrid": conv3x3_hybrid}
CONVS = ("auto", *IMPLS)
"""The convolution kernels a U-Net can use. "auto" picks "hybrid" on a CPU and "xla" on a
GPU or TPU (where XLA's own gradients are fast), when the network is built."""


def resolve_conv(impl: str) -> str:
    """The kernel ``impl`` names: itself, or for "auto" the best one on JAX's default backend."""
    if impl == "auto":
        return "hybrid" if jax.default_backend() == "cpu" else "xla"
    return impl


class Conv3x3(nnx.Module):
    """A 3x3 'same' convolution with bias; ``impl`` is one of ``CONVS`` (same maths)."""

    def __init__(self, cin, cout, rng, *, impl="matmul", dtype=jnp.float32, zero=False):
        shape = (3, 3, cin, cout)
        self.kernel = _const(shape, 0.0) if zero else _normal(rng, shape, (9 * cin) ** -0.5)
        self.bias = _const((cout,), 0.0)
        self.impl, self.dtype = resolve_conv(impl), dtype

    def __call__(self, x):
        y = IMPLS[self.impl](x.astype(self.dtype), self.kernel[...].astype(self.dtype))
        return y.astype(jnp.float32) + self.bias[...]


class GroupNorm(nnx.Module):
    """Group normalisation over (H, W, channels of a group), in float32 (Wu & He 2018)."""

    def __init__(self, channels: int, groups: int, eps: float = 1e-5):
        self.scale = _const((channels,), 1.0)
        self.bias = _const((channels,), 0.0)
        self.groups, self.eps = groups, eps

    def __call__(self, x):
        n, h, w, c = x.shape
        g = x.astype(jnp.float32).reshape(n, h, w, self.groups, c // self.groups)
        mean = g.mean(axis=(1, 2, 4), keepdims=True)
        var = jnp.mean((g - mean) ** 2, axis=(1, 2, 4), keepdims=True)
        g = (g - mean) * jax.lax.rsqrt(var + self.eps)
        return g.reshape(n, h, w, c) * self.scale[...] + self.bias[...]


class ClassConditioner(nnx.Module):
    """A learned embedding of class ids with one extra row, the null class (id ``num_classes``)."""

    def __init__(self, num_classes: int, dim: int, rng):
        self.num_classes = num_classes
        self.table = _normal(rng, (num_classes + 1, dim), 1.0)

    @property
    def null(self) -> int:
        """The null class id."""
        return self.num_classes

    def __call__(self, cond, n: int):
        """Embed class ids of shape () or (n,) (None: the null class); returns (n, dim)."""
        cond = self.num_classes if cond is None else cond
        return self.table[...][jnp.broadcast_to(jnp.asarray(cond, jnp.int32), (n,))]


class VectorConditioner(nnx.Module):
    """A linear map of a condition vector (e.g. a text embedding), with a learned null embedding.

    The zero vector stands for "no condition": L2-normalised embeddings are never zero, so it
    cannot be confused with a real one, and label dropout writes it like any other condition.
    """

    def __init__(self, cond_dim: int, dim: int, rng):
        self.cond_dim = cond_dim
        self.proj = Dense(cond_dim, dim, rng)
        self.null_embedding = _normal(rng, (dim,), 1.0)

    @property
    def null(self):
        """The null condition: a zero vector."""
        return jnp.zeros((self.cond_dim,), jnp.float32)

    def __call__(self, cond, n: int):
        """Embed vectors of shape (D,) or (n, D) (None or zeros: the null); returns (n, dim)."""
        null = jnp.broadcast_to(self.null_embedding[...], (n, self.null_embedding.shape[0]))
        if cond is None:
            return null
        cond = jnp.broadcast_to(jnp.asarray(cond, jnp.float32), (n, self.cond_dim))
        is_null = jnp.all(cond == 0, axis=-1, keepdims=True)
        return jnp.where(is_null, null, self.proj(cond) * math.sqrt(self.cond_dim))


def make_conditioner(num_classes: int, cond_dim: int, dim: int, rng):
    """A ``ClassConditioner`` (num_classes > 0), a ``VectorConditioner`` (cond_dim > 0) or None."""
    if num_classes:
        return ClassConditioner(num_classes, dim, rng)
    if cond_dim:
        return VectorConditioner(cond_dim, dim, rng)
    return None
