"""A small U-Net in Flax NNX for images, with pluggable conditioning.

The network maps (xt, t, cond) to an output of the same shape as xt, (n, H, W, C), exactly as the
2D ``networks.ScoreMLP`` does for points; what the output means is decided by the objective. Its
parts, in the order of Ho et al.'s DDPM U-Net:

- a sinusoidal time embedding and an MLP, plus a conditioning embedding added to it;
- residual blocks (group norm, SiLU, 3x3 convolution, the embedding added in between);
- average-pool downsampling and nearest-neighbour upsampling, with skip connections;
- optional single-head self-attention at the lowest resolution.

Conditioning is a module of its own (``ClassConditioner`` or ``VectorConditioner`` from
``layers``), so the same U-Net takes class ids now and text embeddings in the CLIP
chapter.

Convolutions: ``conv="xla"`` uses ``lax.conv_general_dilated`` and XLA's own gradients, the right
choice on a GPU or TPU. On XLA:CPU the forward convolution is fast but the kernel gradient XLA
derives is not (a convolution over the batch; jax-ml/jax#12868), so ``conv="hybrid"`` keeps XLA's
forward and input gradient and computes the kernel gradient as one matrix product.
``conv="matmul"`` writes each convolution as padding, nine shifted slices and one matrix product
(the first image path's kernel, kept so its saved models rebuild exactly). ``conv="auto"`` (the
default) is "hybrid" on a CPU and "xla" elsewhere. All use the same (3, 3, C_in, C_out) kernel
and give the same result up to rounding.

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
import numpy as np
from flax import nnx

from toydiff.nets.layers import CONVS, Conv3x3, Dense, GroupNorm, make_conditioner

DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Shape of a ``UNet``.

    Attributes:
        size: height and width of the images; must be divisible by 2^(len(channels) - 1).
        in_channels: colour channels (1 for digits, 3 for shapes).
        patch: side of the pixel patches folded into channels before the first convolution
            (space-to-depth, unfolded again at the end): 2 runs a 16x16 image at 8x8 with 4x
            the channels, about a quarter of the work (Hoogeboom et al. 2023).
        channels: feature channels at each resolution, from the full size down.
        attention: add self-attention at the lowest resolution.
        groups: groups of every group norm (each entry of ``channels`` must divide by it).
        time_features: sinusoidal features of t (even).
        emb_dim: width of the time and condition embedding.
        num_classes: number of real classes for class conditioning (0: none).
        cond_dim: size of a conditioning vector (e.g. a text embedding); 0 for none.
        conv: one of ``layers.CONVS``: "auto", "hybrid", "matmul" or "xla" (see the module
            docstring).
        dtype: compute dtype of convolutions and matrix products: ``"float32"`` or ``"bfloat16"``.
            Parameters, norms and the output stay float32.
    """

    size: int = 8
    in_channels: int = 1
    patch: int = 1
    channels: tuple[int, ...] = (32, 64)
    attention: bool = True
    groups: int = 8
    time_features: int = 32
    emb_dim: int = 128
    num_classes: int = 0
    cond_dim: int = 0
    conv: str = "auto"
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
        factor = self.patch * 2 ** (len(self.channels) - 1)
        if self.patch < 1 or self.size < factor or self.size % factor:
            raise ValueError(
                f"image size {self.size} cannot go through {len(self.channels)} resolutions "
                f"with patch {self.patch}; it must be a multiple of {factor}"
            )
        if any(c % self.groups for c in self.channels):
            raise ValueError(f"channels {self.channels} must all divide by groups={self.groups}")
        if self.conv not in CONVS:
            raise ValueError(f"unknown conv {self.conv!r}; expected one of {', '.join(CONVS)}")
        if self.in_channels < 1 or not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be positive, got {self.in_channels}, {self.channels}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; expected one of {', '.join(DTYPES)}")
        if self.num_classes and self.cond_dim:
            raise ValueError("condition on classes or on vectors, not both")


class ResBlock(nnx.Module):
    """norm, SiLU, conv, + embedding, norm, SiLU, conv, plus a (1x1-projected) skip."""

    def __init__(self, cin: int, cout: int, config: UNetConfig, rng):
        conv = {"impl": config.conv, "dtype": jnp.dtype(config.dtype)}
        self.norm1 = GroupNorm(cin, config.groups)
        self.conv1 = Conv3x3(cin, cout, rng, **conv)
        self.emb = Dense(config.emb_dim, cout, rng, dtype=conv["dtype"])
        self.norm2 = GroupNorm(cout, config.groups)
        self.conv2 = Conv3x3(cout, cout, rng, zero=True, **conv)
        self.skip = Dense(cin, cout, rng, dtype=conv["dtype"]) if cin != cout else None

    def __call__(self, x, emb):
        h = self.conv1(nnx.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, None, None, :]
        h = self.conv2(nnx.silu(self.norm2(h)))
        return (x if self.skip is None else self.skip(x)) + h


class Attention(nnx.Module):
    """Single-head self-attention over the H * W positions, with a residual connection."""

    def __init__(self, channels: int, config: UNetConfig, rng):
        self.dtype = jnp.dtype(config.dtype)
        self.norm = GroupNorm(channels, config.groups)
        self.qkv = Dense(channels, 3 * channels, rng, dtype=self.dtype)
        self.out = Dense(channels, channels, rng, dtype=self.dtype, zero=True)

    def __call__(self, x):
        n, h, w, c = x.shape
        q, k, v = jnp.split(self.qkv(self.norm(x)).reshape(n, h * w, 3 * c), 3, axis=-1)
        q, k, v = (a.astype(self.dtype) for a in (q, k, v))
        logits = jnp.einsum("nqc,nkc->nqk", q, k).astype(jnp.float32) / math.sqrt(c)
        attn = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
        out = self.out(jnp.einsum("nqk,nkc->nqc", attn, v))
        return x + out.reshape(n, h, w, c)


def time_embedding(t, features: int, max_period: float = 1000.0):
    """Sinusoidal features of t in [0, 1] (Vaswani et al.; Ho et al.'s U-Net).

    Frequencies run geometrically from 1 to ``max_period`` radians per unit time, so both the
    coarse and the fine structure of the noise level can be read off.

    Args:
        t: times, shape (n,).
        features: an even number of features.
        max_period: the highest angular frequency.

    Returns:
        Shape (n, features).
    """
    half = features // 2
    freqs = jnp.exp(jnp.linspace(0.0, math.log(max_period), half))
    angles = t[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def space_to_depth(x, p: int):
    """Fold p x p pixel patches into channels: (n, H, W, C) -> (n, H/p, W/p, p * p * C)."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h // p, w // p, p * p * c)


def depth_to_space(x, p: int):
    """Unfold channels into p x p pixel patches: the inverse of ``space_to_depth``."""
    n, h, w, c = x.shape
    x = x.reshape(n, h, w, p, p, c // (p * p)).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h * p, w * p, c // (p * p))


def downsample(x):
    """2x2 average pooling: (n, H, W, C) -> (n, H/2, W/2, C)."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def upsample(x):
    """Nearest-neighbour upsampling: (n, H, W, C) -> (n, 2H, 2W, C)."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class UNet(nnx.Module):
    """A time- and condition-embedded U-Net on images of shape (n, H, W, C).

    Args:
        config: the shape.
        seed: seed of the weights (drawn with numpy on the host; see ``layers``).
    """

    def __init__(self, config: UNetConfig = UNetConfig(), seed: int = 0):
        config.check()
        self.config = config
        rng = np.random.default_rng(seed)
        conv = {"impl": config.conv, "dtype": jnp.dtype(config.dtype)}
        chans, emb = config.channels, config.emb_dim
        self.time_in = Dense(config.time_features, emb, rng)
        self.time_out = Dense(emb, emb, rng)
        self.conditioner = make_conditioner(config.num_classes, config.cond_dim, emb, rng)
        folded = config.in_channels * config.patch**2
        self.conv_in = Conv3x3(folded, chans[0], rng, **conv)
        widths = (chans[0], *chans)
        self.down = nnx.List(
            [ResBlock(a, b, config, rng) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.mid = ResBlock(chans[-1], chans[-1], config, rng)
        self.attn = Attention(chans[-1], config, rng) if config.attention else None
        ups = (chans[-1], *chans[::-1])  # input width of each up block, before the skip
        self.up = nnx.List(
            [ResBlock(ups[i] + c, c, config, rng) for i, c in enumerate(chans[::-1])]
        )
        self.norm_out = GroupNorm(chans[0], config.groups)
        self.conv_out = Conv3x3(chans[0], folded, rng, zero=True, **conv)

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
        emb = self.time_out(nnx.silu(self.time_in(time_embedding(t, self.config.time_features))))
        if self.conditioner is not None:
            emb = emb + self.conditioner(cond, n)
        emb = nnx.silu(emb)
        h = self.conv_in(space_to_depth(xt.astype(jnp.float32), self.config.patch))
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
        return depth_to_space(self.conv_out(nnx.silu(self.norm_out(h))), self.config.patch)


def count_params(params) -> int:
    """Number of scalar parameters in a parameter state."""
    return sum(int(p.size) for p in jax.tree.leaves(params))


def forward_flops(config: UNetConfig) -> int:
    """Floating-point operations of one image through the U-Net, counted from its shape.

    Matrix products and convolutions only (2 per multiply-add); norms, activations and
    additions are a few percent more. Training costs about 3x this per image (forward plus a
    backward pass of twice the work); a guided sampling step 2x (conditional and base).
    """
    c, emb, side = config.channels, config.emb_dim, config.size // config.patch
    folded = config.in_channels * config.patch**2
    flops = 2 * (config.time_features * emb + emb * emb)  # time MLP
    flops += 2 * config.cond_dim * emb

    def conv(px, cin, cout):
        return 2 * px * 9 * cin * cout

    def res(px, cin, cout):
        skip = 2 * px * cin * cout if cin != cout else 0
        return conv(px, cin, cout) + conv(px, cout, cout) + 2 * emb * cout + skip

    widths = (c[0], *c)
    px = [(side // 2**i) ** 2 for i in range(len(c))]
    flops += conv(px[0], folded, c[0]) + conv(px[0], c[0], folded)
    flops += sum(res(px[i], widths[i], widths[i + 1]) for i in range(len(c)))
    flops += res(px[-1], c[-1], c[-1])
    if config.attention:
        flops += 2 * px[-1] * c[-1] * 4 * c[-1] + 4 * px[-1] ** 2 * c[-1]
    ups = (c[-1], *c[::-1])
    flops += sum(res(px[len(c) - 1 - i], ups[i] + w, w) for i, w in enumerate(c[::-1]))
    return int(flops)


def working_floats(config: UNetConfig) -> int:
    """Numbers per image a guided sampling step keeps at its peak (for the memory check): 64
    per number of its feature maps (each level's H x W x channels, after the patches), which
    covers the skip connections kept for the way up, the 3x3 patches of the matmul
    convolutions and the two calls of a guided step.

    XLA's plan on the CPU (``memory_analysis()`` of a guided DDPM sampler on 128 images) came
    to 86k numbers per image for the digits U-Net (this gives 98k) and 167k for the shapes
    U-Net (196k).
    """
    side = config.size // config.patch
    return 64 * sum((side >> level) ** 2 * c for level, c in enumerate(config.channels))
