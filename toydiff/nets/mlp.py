"""Flax NNX networks: time-conditioned MLPs for 2D points (the image U-Net is in ``images``).

Networks only map (xt, t, label) to an output of the same shape as xt. What that output means
(eps, x0, v, velocity) is decided by the objective, and how it is turned into a sampler's field by
``objectives.make_denoiser``; no loss, schedule or guidance lives here.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx


@dataclasses.dataclass(frozen=True)
class NetConfig:
    """Shape of a ``ScoreMLP``. The defaults are the reference unconditional model.

    Attributes:
        hidden: widths of the hidden layers.
        time_features: number of sinusoidal features of t (even).
        num_classes: number of real classes; 0 for an unconditional network.
        class_dim: size of the learned class embedding.
        dim: dimension of the data points.
    """

    hidden: tuple[int, ...] = (16, 128, 128, 128, 128, 16)
    time_features: int = 8
    num_classes: int = 0
    class_dim: int = 4
    dim: int = 2

    @property
    def null_class(self) -> int:
        """The label id that means "no class", used for unconditional predictions."""
        return self.num_classes


CONDITIONAL = NetConfig(hidden=(16, 128, 256, 128, 16), num_classes=3)
"""The reference class-conditional network: widths (16, 128, 256, 128, 16), 4-d class embedding."""


def time_embedding(t, features: int):
    """Sinusoidal features of t in [0, 1].

    Args:
        t: times, shape (n,).
        features: an even number of output features.

    Returns:
        Array of shape (n, features): sin and cos of t at octave-spaced frequencies pi/2 * 2^k.
    """
    freqs = 0.5 * math.pi * 2.0 ** jnp.arange(features // 2, dtype=jnp.float32)
    angles = t[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class ScoreMLP(nnx.Module):
    """An MLP on [xt, embed(t), embed(label)] with GELU activations.

    With ``num_classes > 0`` the network has a class embedding with one extra row, the null class
    (id ``num_classes``), which stands for "no label" and gives the unconditional prediction that
    classifier-free guidance needs.
    """

    def __init__(self, config: NetConfig = NetConfig(), *, rngs: nnx.Rngs):
        if config.time_features % 2:
            raise ValueError(f"time_features must be even, got {config.time_features}")
        self.config = config
        width_in = config.dim + config.time_features
        if config.num_classes:
            self.class_embed = nnx.Embed(config.num_classes + 1, config.class_dim, rngs=rngs)
            width_in += config.class_dim
        widths = (width_in, *config.hidden)
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.head = nnx.Linear(widths[-1], config.dim, rngs=rngs)

    @property
    def null_condition(self) -> int:
        """The label meaning "no class" (for label dropout and guidance)."""
        return self.config.null_class

    def __call__(self, xt, t, label=None):
        """Apply the network.

        Args:
            xt: noisy points, shape (n, dim).
            t: times in [0, 1], shape () or (n,).
            label: class ids, shape () or (n,); None means the null class.

        Returns:
            Array of shape (n, dim).
        """
        n = xt.shape[0]
        t = jnp.broadcast_to(jnp.asarray(t, xt.dtype), (n,))
        h = [xt, time_embedding(t, self.config.time_features)]
        if self.config.num_classes:
            if label is None:
                label = self.config.null_class
            label = jnp.broadcast_to(jnp.asarray(label, jnp.int32), (n,))
            h.append(self.class_embed(label))
        h = jnp.concatenate(h, axis=-1)
        for layer in self.layers:
            h = nnx.gelu(layer(h))
        return self.head(h)


def init_network(config: NetConfig, seed: int) -> tuple[nnx.GraphDef, nnx.State]:
    """Build a ``ScoreMLP`` and split it into its graph definition and parameters.

    Args:
        config: the network shape.
        seed: seed of the parameter initialisation.

    Returns:
        (graphdef, params): pass ``params`` to jitted functions and rebuild the module inside with
        ``nnx.merge(graphdef, params)``.
    """
    graphdef, init = _initialiser(config)
    return graphdef, init(jax.random.key(seed))


@functools.cache
def _initialiser(config: NetConfig):
    """The graph definition, and one compiled function from a seed to the initial parameters.

    Built op by op, a network's initialisers compile one small program each (about 1.5 s in all
    on a 2-core laptop); as one jitted function they compile once, and a later process reads
    that program from the persistent compilation cache. The parameters are the same draws.
    """
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: ScoreMLP(config, rngs=nnx.Rngs(0))), nnx.Param)

    @jax.jit
    def init(key):
        return nnx.split(ScoreMLP(config, rngs=nnx.Rngs(key)), nnx.Param)[1]

    return graphdef, init
