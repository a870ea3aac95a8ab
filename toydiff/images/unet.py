"""A small U-Net in Flax NNX for images, with pluggable conditioning.

The network maps (xt, t, cond) to an output of the same shape as xt, (n, H, W, C), exactly as the
2D ``networks.ScoreMLP`` does for points; what the output means is decided by the objective. Its
parts, in the order of Ho et al.'s DDPM U-Net:

- a sinusoidal time embedding and an MLP, plus a conditioning embedding added to it;
- residual blocks (group norm, SiLU, 3x3 convolution, the embedding added in between);
- average-pool downsampling and nearest-neighbour upsampling, with skip connections;
- optional single-head self-attention at the lowest resolution.

Conditioning is a module of its own (``ClassConditioner`` or ``VectorConditioner`` from
``toydiff.networks``), so the same U-Net takes class ids now and text embeddings in the CLIP
chapter.

Convolutions: on XLA:CPU a convolution inside ``lax.scan`` (the training loop) runs many times
slower than the same convolution outside it (jax-ml/jax#12868). ``conv="matmul"`` writes each 3x3
convolution as padding, nine shifted slices and one matrix product, which XLA runs at full speed
anywhere; ``conv="xla"`` uses ``lax.conv_general_dilated`` (better on GPU and TPU). Both use the
same (3, 3, C_in, C_out) kernel and give the same result.

References:
    Ronneberger et al., "U-Net", MICCAI 2015.
    Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020, appendix B.
    Dhariwal & Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from toydiff.networks import make_conditioner, time_embedding

CONVS = ("matmul", "xla")
DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Shape of a ``UNet``.

    Attributes:
        size: height and width of the images; must be divisible by 2^(len(channels) - 1).
        in_channels: colour channels (1 for digits, 3 for shapes).
        channels: feature channels at each resolution, from the full size down.
        attention: add self-attention at the lowest resolution.
        groups: groups of every group norm (each entry of ``channels`` must divide by it).
        time_features: sinusoidal features of t (even).
        emb_dim: width of the time and condition embedding.
        num_classes: number of real classes for class conditioning (0: none).
        cond_dim: size of a conditioning vector (e.g. a text embedding); 0 for none.
        conv: ``"matmul"`` or ``"xla"`` (see the module docstring).
        dtype: compute dtype of convolutions and matrix products: ``"float32"`` or ``"bfloat16"``.
            Parameters, norms and the output stay float32.
    """

    size: int = 8
    in_channels: int = 1
    channels: tuple[int, ...] = (32, 64)
    attention: bool = True
    groups: int = 8
    time_features: int = 32
    emb_dim: int = 128
    num_classes: int = 0
    cond_dim: int = 0
    conv: str = "matmul"
    dtype: str = "float32"

    @property
    def dim(self) -> tuple[int, int, int]:
        """The shape of one image, (H, W, C)."""
        return (self.size, self.size, self.in_channels)

    @property
    def null_condition(self):
        """The condition meaning "no condition": the null class id or a zero vector."""
        if self.cond_dim:
            return jnp.zeros((self.cond_dim,), jnp.float32)
        return self.num_classes

    def check(self) -> None:
        """Raise ValueError naming the first setting the U-Net cannot take."""
        factor = 2 ** (len(self.channels) - 1)
        if self.size < factor or self.size % factor:
            raise ValueError(
                f"image size {self.size} cannot go through {len(self.channels)} resolutions; "
                f"it must be a multiple of {factor}"
            )
        if any(c % self.groups for c in self.channels):
            raise ValueError(f"channels {self.channels} must all divide by groups={self.groups}")
        if self.conv not in CONVS:
            raise ValueError(f"unknown conv {self.conv!r}; expected one of {', '.join(CONVS)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; expected one of {', '.join(DTYPES)}")
        if self.num_classes and self.cond_dim:
            raise ValueError("condition on classes or on vectors, not both")


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


class Conv3x3(nnx.Module):
    """A 3x3 convolution with bias; ``impl`` picks the matmul or the XLA form."""

    def __init__(self, cin: int, cout: int, *, impl: str, dtype, rngs: nnx.Rngs, zero=False):
        init = nnx.initializers.zeros if zero else nnx.initializers.lecun_normal()
        self.kernel = nnx.Param(init(rngs.params(), (3, 3, cin, cout), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((cout,), jnp.float32))
        self.impl, self.dtype = impl, dtype

    def __call__(self, x):
        fn = conv3x3_matmul if self.impl == "matmul" else conv3x3_xla
        y = fn(x.astype(self.dtype), self.kernel[...].astype(self.dtype))
        return y.astype(jnp.float32) + self.bias[...]


def _norm(channels: int, groups: int, rngs):
    return nnx.GroupNorm(channels, num_groups=groups, rngs=rngs)


class ResBlock(nnx.Module):
    """norm, SiLU, conv, + embedding, norm, SiLU, conv, plus a (1x1-projected) skip."""

    def __init__(self, cin: int, cout: int, config: UNetConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(config.dtype)
        self.norm1 = _norm(cin, config.groups, rngs)
        self.conv1 = Conv3x3(cin, cout, impl=config.conv, dtype=dtype, rngs=rngs)
        self.emb = nnx.Linear(config.emb_dim, cout, dtype=dtype, rngs=rngs)
        self.norm2 = _norm(cout, config.groups, rngs)
        self.conv2 = Conv3x3(cout, cout, impl=config.conv, dtype=dtype, rngs=rngs, zero=True)
        self.skip = nnx.Linear(cin, cout, dtype=dtype, rngs=rngs) if cin != cout else None

    def __call__(self, x, emb):
        h = self.conv1(nnx.silu(self.norm1(x)))
        h = h + self.emb(emb).astype(jnp.float32)[:, None, None, :]
        h = self.conv2(nnx.silu(self.norm2(h)))
        skip = x if self.skip is None else self.skip(x).astype(jnp.float32)
        return skip + h


class Attention(nnx.Module):
    """Single-head self-attention over the H * W positions, with a residual connection."""

    def __init__(self, channels: int, config: UNetConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(config.dtype)
        self.norm = _norm(channels, config.groups, rngs)
        self.qkv = nnx.Linear(channels, 3 * channels, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(
            channels, channels, dtype=dtype, kernel_init=nnx.initializers.zeros, rngs=rngs
        )

    def __call__(self, x):
        n, h, w, c = x.shape
        q, k, v = jnp.split(self.qkv(self.norm(x)).reshape(n, h * w, 3 * c), 3, axis=-1)
        logits = jnp.einsum("nqc,nkc->nqk", q, k).astype(jnp.float32) / math.sqrt(c)
        attn = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
        out = self.out(jnp.einsum("nqk,nkc->nqc", attn, v))
        return x + out.astype(jnp.float32).reshape(n, h, w, c)


def downsample(x):
    """2x2 average pooling: (n, H, W, C) -> (n, H/2, W/2, C)."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def upsample(x):
    """Nearest-neighbour upsampling: (n, H, W, C) -> (n, 2H, 2W, C)."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class UNet(nnx.Module):
    """A time- and condition-embedded U-Net on images of shape (n, H, W, C)."""

    def __init__(self, config: UNetConfig = UNetConfig(), *, rngs: nnx.Rngs):
        config.check()
        self.config = config
        dtype = jnp.dtype(config.dtype)
        chans = config.channels
        self.time_mlp = nnx.Sequential(
            nnx.Linear(config.time_features, config.emb_dim, rngs=rngs),
            nnx.silu,
            nnx.Linear(config.emb_dim, config.emb_dim, rngs=rngs),
        )
        self.conditioner = make_conditioner(
            config.num_classes, config.cond_dim, config.emb_dim, rngs=rngs
        )
        self.conv_in = Conv3x3(
            config.in_channels, chans[0], impl=config.conv, dtype=dtype, rngs=rngs
        )
        widths = (chans[0], *chans)
        self.down = nnx.List(
            [
                ResBlock(a, b, config, rngs=rngs)
                for a, b in zip(widths[:-1], widths[1:], strict=True)
            ]
        )
        self.mid = ResBlock(chans[-1], chans[-1], config, rngs=rngs)
        self.attn = Attention(chans[-1], config, rngs=rngs) if config.attention else None
        ups = [chans[-1], *chans[::-1]]
        self.up = nnx.List(
            [
                ResBlock(ups[i] + chans[::-1][i], ups[i + 1], config, rngs=rngs)
                for i in range(len(chans))
            ]
        )
        self.norm_out = _norm(chans[0], config.groups, rngs)
        self.conv_out = Conv3x3(
            chans[0], config.in_channels, impl=config.conv, dtype=dtype, rngs=rngs, zero=True
        )

    @property
    def null_condition(self):
        """The condition meaning "no condition" (for classifier-free guidance)."""
        return self.config.null_condition

    def __call__(self, xt, t, cond=None):
        """Apply the network.

        Args:
            xt: noisy images, shape (n, H, W, C).
            t: times in [0, 1], shape () or (n,).
            cond: class ids (n,) or (), condition vectors (n, D) or (D,), or None for the null
                condition.

        Returns:
            Array of shape (n, H, W, C), float32.
        """
        n = xt.shape[0]
        t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (n,))
        emb = self.time_mlp(time_embedding(t, self.config.time_features))
        if self.conditioner is not None:
            emb = emb + self.conditioner(cond, n)
        emb = nnx.silu(emb)
        h = self.conv_in(xt.astype(jnp.float32))
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.down) - 1:
                h = downsample(h)
        h = self.mid(h, emb)
        if self.attn is not None:
            h = self.attn(h)
        for i, block in enumerate(self.up):
            h = block(jnp.concatenate([h, skips.pop()], axis=-1), emb)
            if i < len(self.up) - 1:
                h = upsample(h)
        return self.conv_out(nnx.silu(self.norm_out(h)))


def count_params(params) -> int:
    """Number of scalar parameters in a parameter state."""
    return sum(int(p.size) for p in jax.tree.leaves(params))
