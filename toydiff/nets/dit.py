"""A diffusion transformer (DiT) in Flax NNX, for images and for clips.

The second image network beside the U-Net, after Peebles & Xie's DiT. Like every network here it
maps (xt, t, cond) to an output of xt's shape; what the output means is the objective's business.
Its parts, in the order of facebookresearch/DiT's ``models.py``:

- **patchify**: the image (n, H, W, C) is cut into p x p patches, or a clip (n, F, H, W, C) into
  pf x p x p "tubelets", and each patch is flattened and mapped linearly to a token of ``width``
  numbers: (n, T, width) with T = (F / pf) (H / p) (W / p);
- **position embeddings**: fixed 2D sine-cosine features of each patch's row and column (half
  the width each), plus, for clips, 1D sine-cosine features of its frame: the transformer sees
  a set of tokens and learns where each sits only from these;
- **conditioning**: the time's sinusoidal features through an MLP, plus the condition's
  embedding (a class, or a prompt's CLIP vector; the same ``layers`` conditioners the U-Net
  uses), summed into one vector c per sample;
- **blocks with adaLN-Zero**: each block is pre-norm self-attention and an MLP, both on the
  whole token sequence (so every patch of every frame sees every other one); the layer norms
  have no weights of their own: c sets a shift, a scale and a gate for each half of the block,
  and the map from c is initialised to zero, so every block starts as the identity;
- **final layer**: an adaLN-modulated norm and a linear map (initialised to zero, so the
  untrained network outputs 0) back to patches, then **unpatchify**.

Cross-attention to a sequence of text tokens is the other way DiT's paper injects a condition.
Our prompts reach the network as one CLIP vector, for which cross-attention would be one
key-value pair, so adaLN-Zero (the paper's best) is the one we build.

References:
    Peebles & Xie, "Scalable Diffusion Models with Transformers", ICCV 2023.
    Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021 (patches as tokens).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from toydiff.nets.layers import Dense, make_conditioner
from toydiff.nets.unet import DTYPES, time_embedding


@dataclasses.dataclass(frozen=True)
class DiTConfig:
    """Shape of a ``DiT``.

    Attributes:
        size: height and width of the images (or frames); must divide by ``patch``.
        in_channels: colour channels.
        frames: frames of a clip (samples (F, H, W, C)); 0 for still images (H, W, C).
        patch: side of the square patches each token covers.
        patch_frames: frames each token covers (clips only); must divide ``frames``.
        width: the token width (divisible by ``heads``; by 4 for the position features).
        depth: transformer blocks.
        heads: attention heads.
        mlp_ratio: the MLP's hidden width over ``width``.
        time_features: sinusoidal features of t (even).
        num_classes: number of real classes for class conditioning (0: none).
        cond_dim: size of a conditioning vector (a text embedding); 0 for none.
        dtype: compute dtype of the matrix products, ``"float32"`` or ``"bfloat16"``;
            parameters, norms, softmax and the output stay float32.
    """

    size: int = 16
    in_channels: int = 3
    frames: int = 0
    patch: int = 2
    patch_frames: int = 1
    width: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    time_features: int = 32
    num_classes: int = 0
    cond_dim: int = 0
    dtype: str = "float32"

    @property
    def dim(self) -> tuple[int, ...]:
        """The shape of one sample: (H, W, C), or (F, H, W, C) for clips."""
        lead = (self.frames,) if self.frames else ()
        return (*lead, self.size, self.size, self.in_channels)

    @property
    def grid(self) -> tuple[int, int, int]:
        """Tokens along (frames, rows, columns)."""
        f = self.frames // self.patch_frames if self.frames else 1
        return (f, self.size // self.patch, self.size // self.patch)

    @property
    def tokens(self) -> int:
        """Tokens per sample, T."""
        return math.prod(self.grid)

    @property
    def patch_dim(self) -> int:
        """Numbers in one patch (or tubelet): pf * p * p * C."""
        pf = self.patch_frames if self.frames else 1
        return pf * self.patch**2 * self.in_channels

    @property
    def null_condition(self):
        """The condition meaning "no condition": the null class id or a zero vector."""
        if self.cond_dim:
            return jnp.zeros((self.cond_dim,), jnp.float32)
        return self.num_classes

    def check(self) -> None:
        """Raise ValueError naming the first setting the transformer cannot take."""
        if self.patch < 1 or self.size < self.patch or self.size % self.patch:
            raise ValueError(
                f"image size {self.size} cannot be cut into patches of {self.patch}; "
                f"it must be a multiple of {self.patch}"
            )
        if self.frames < 0 or self.patch_frames < 1:
            raise ValueError(f"frames must be >= 0 and patch_frames >= 1, got {self.frames}")
        if self.frames and self.frames % self.patch_frames:
            raise ValueError(
                f"{self.frames} frames cannot be cut into tubelets of {self.patch_frames} frames"
            )
        if self.width < 8 or self.width % 4 or self.heads < 1 or self.width % self.heads:
            raise ValueError(
                f"width {self.width} must be a multiple of 4 and of heads={self.heads}"
            )
        if self.depth < 1 or self.mlp_ratio < 1 or self.in_channels < 1:
            raise ValueError("depth, mlp_ratio and in_channels must be positive")
        if self.time_features < 2 or self.time_features % 2:
            raise ValueError(f"time_features must be even, got {self.time_features}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; expected one of {', '.join(DTYPES)}")
        if self.num_classes and self.cond_dim:
            raise ValueError("condition on classes or on vectors, not both")


def sincos_1d(positions, width: int) -> np.ndarray:
    """Sine-cosine features of positions, (P,) -> (P, width), frequencies 1 to 1/10,000."""
    omega = 1.0 / 10000.0 ** (np.arange(width // 2, dtype=np.float64) / (width // 2))
    angles = np.asarray(positions, np.float64)[:, None] * omega[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


@functools.cache
def position_embedding(config: DiTConfig) -> np.ndarray:
    """Fixed position features of every token, (T, width) float32, in token order.

    Rows and columns get half the width each (DiT's 2D sine-cosine); a clip's frame index adds
    1D sine-cosine features over the whole width.
    """
    f, h, w = config.grid
    half = config.width // 2
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    space = np.concatenate(
        [sincos_1d(rows.ravel(), half), sincos_1d(cols.ravel(), half)], axis=1
    )  # (h w, width)
    pos = np.broadcast_to(space[None], (f, h * w, config.width))
    if config.frames:
        pos = pos + sincos_1d(np.arange(f), config.width)[:, None, :]
    return pos.reshape(f * h * w, config.width).astype(np.float32)


def patchify(x, config: DiTConfig):
    """Samples to token patches: (n, [F,] H, W, C) -> (n, T, patch_dim), tokens in
    (frame, row, column) order, each patch flattened as (frame, row, column, channel)."""
    n, c, p = x.shape[0], config.in_channels, config.patch
    f, gh, gw = config.grid
    pf = config.patch_frames if config.frames else 1
    x = x.reshape(n, f, pf, gh, p, gw, p, c)
    x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)  # (n, f, gh, gw, pf, p, p, c)
    return x.reshape(n, f * gh * gw, pf * p * p * c)


def unpatchify(tokens, config: DiTConfig):
    """The inverse of ``patchify``: (n, T, patch_dim) -> (n, [F,] H, W, C)."""
    n, c, p = tokens.shape[0], config.in_channels, config.patch
    f, gh, gw = config.grid
    pf = config.patch_frames if config.frames else 1
    x = tokens.reshape(n, f, gh, gw, pf, p, p, c).transpose(0, 1, 4, 2, 5, 3, 6, 7)
    return x.reshape(n, *config.dim)


def layer_norm(x, eps: float = 1e-6):
    """Layer norm over the last axis without weights of its own (adaLN supplies them)."""
    mean = x.mean(-1, keepdims=True)
    var = jnp.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


def modulate(x, shift, scale):
    """x (n, T, D) scaled and shifted per sample by (n, D) vectors: x (1 + scale) + shift."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


class SelfAttention(nnx.Module):
    """Multi-head self-attention over the tokens: (n, T, D) -> (n, T, D)."""

    def __init__(self, config: DiTConfig, rng):
        self.heads = config.heads
        self.dtype = jnp.dtype(config.dtype)
        self.qkv = Dense(config.width, 3 * config.width, rng, dtype=self.dtype)
        self.proj = Dense(config.width, config.width, rng, dtype=self.dtype)

    def __call__(self, x):
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).astype(self.dtype)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (n, T, heads, d_head)
        out = jax.nn.dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d_head)) v
        return self.proj(out.reshape(n, t, d))


class Block(nnx.Module):
    """A DiT block with adaLN-Zero: x + gate * attn(modulated norm), x + gate * mlp(...)."""

    def __init__(self, config: DiTConfig, rng):
        dtype = jnp.dtype(config.dtype)
        d = config.width
        self.attn = SelfAttention(config, rng)
        self.fc1 = Dense(d, config.mlp_ratio * d, rng, dtype=dtype)
        self.fc2 = Dense(config.mlp_ratio * d, d, rng, dtype=dtype)
        self.ada = Dense(d, 6 * d, rng, dtype=dtype, zero=True)  # adaLN-Zero: starts as identity

    def __call__(self, x, c):
        shift1, scale1, gate1, shift2, scale2, gate2 = jnp.split(self.ada(c), 6, axis=-1)
        x = x + gate1[:, None, :] * self.attn(modulate(layer_norm(x), shift1, scale1))
        h = self.fc2(nnx.gelu(self.fc1(modulate(layer_norm(x), shift2, scale2))))
        return x + gate2[:, None, :] * h


class DiT(nnx.Module):
    """A time- and condition-embedded transformer on images (n, H, W, C) or clips
    (n, F, H, W, C).

    Args:
        config: the shape.
        seed: seed of the weights (drawn with numpy on the host; see ``layers``).
    """

    def __init__(self, config: DiTConfig = DiTConfig(), seed: int = 0):
        config.check()
        self.config = config
        rng = np.random.default_rng(seed)
        d, dtype = config.width, jnp.dtype(config.dtype)
        self.embed = Dense(config.patch_dim, d, rng, dtype=dtype)
        self.time_in = Dense(config.time_features, d, rng)
        self.time_out = Dense(d, d, rng)
        self.conditioner = make_conditioner(config.num_classes, config.cond_dim, d, rng)
        self.blocks = nnx.List([Block(config, rng) for _ in range(config.depth)])
        self.final_ada = Dense(d, 2 * d, rng, zero=True)
        self.final = Dense(d, config.patch_dim, rng, dtype=dtype, zero=True)

    @property
    def null_condition(self):
        """The condition meaning "no condition" (for classifier-free guidance)."""
        return self.config.null_condition

    def __call__(self, xt, t, cond=None):
        """Apply the network.

        Args:
            xt: noisy samples, shape (n, H, W, C), or (n, F, H, W, C) for clips.
            t: times in [0, 1], shape () or (n,).
            cond: class ids (n,) or (), condition vectors (n, D) or (D,), or None for the null
                condition.

        Returns:
            Array of xt's shape, float32.
        """
        n = xt.shape[0]
        t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (n,))
        c = self.time_out(nnx.silu(self.time_in(time_embedding(t, self.config.time_features))))
        if self.conditioner is not None:
            c = c + self.conditioner(cond, n)
        c = nnx.silu(c)  # (n, D)
        x = self.embed(patchify(xt.astype(jnp.float32), self.config))  # (n, T, D)
        x = x + position_embedding(self.config)[None]  # a constant: fixed, not trained
        for block in self.blocks:
            x = block(x, c)
        shift, scale = jnp.split(self.final_ada(c), 2, axis=-1)
        return unpatchify(self.final(modulate(layer_norm(x), shift, scale)), self.config)


def forward_flops(config: DiTConfig) -> int:
    """Floating-point operations of one sample through the transformer, counted from its shape.

    Matrix products only (2 per multiply-add), attention's two products included; norms,
    softmax and activations are a few percent more. Training costs about 3x this per sample, a
    guided sampling step 2x.
    """
    d, tokens, hidden = config.width, config.tokens, config.mlp_ratio * config.width
    per_token = 2 * (3 * d * d + d * d + 2 * d * hidden)  # qkv, projection, MLP
    attention = 2 * 2 * tokens * tokens * d  # q k^T and (weights) v, over all heads
    per_block = tokens * per_token + attention + 2 * d * 6 * d  # + the adaLN map of c
    flops = config.depth * per_block
    flops += 2 * tokens * config.patch_dim * d * 2  # patch embedding and the final map
    flops += 2 * d * 2 * d  # the final adaLN map
    flops += 2 * (config.time_features * d + d * d) + 2 * config.cond_dim * d
    return int(flops)


def working_floats(config: DiTConfig) -> int:
    """Numbers per sample a guided sampling step keeps at its peak (for the memory check):
    two calls, each with the tokens (n, T, D), the MLP's hidden (n, T, 4D), the queries, keys
    and values, and the attention weights (heads, T, T)."""
    tokens, d = config.tokens, config.width
    per_call = tokens * d * (8 + 2 * config.mlp_ratio) + config.heads * tokens * tokens * 2
    return 2 * per_call
