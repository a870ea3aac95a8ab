"""Networks: Flax NNX architectures that map (xt, t, cond) to an array of xt's shape.

No loss, schedule or guidance lives here. ``NETWORKS`` names the image networks a run can train
(``--net``), each with its config class, its module and its analytic costs:

- ``unet``: the U-Net (``unet.py``), convolutions at several resolutions with skips;
- ``dit``: the diffusion transformer (``dit.py``), patches as tokens, adaLN-Zero blocks; it
  also reads clips (n, F, H, W, C).

The 2D lab's MLPs (``mlp.py``) are built by the 2D lab's own model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from toydiff.engine.registry import Registry
from toydiff.nets import dit, unet


@dataclasses.dataclass(frozen=True)
class Network:
    """An image network: what a config of ``--net NAME`` builds and what it costs.

    Attributes:
        name: the name a user types.
        description: one line for help and docs.
        config: its config class (a frozen dataclass with ``size``, ``in_channels``,
            ``num_classes``, ``cond_dim``, ``dtype``, ``dim`` and ``check()``).
        module: ``module(config, seed)`` builds the network.
        forward_flops: ``forward_flops(config)``: FLOPs of one sample's forward pass.
        working_floats: ``working_floats(config)``: numbers per sample a guided sampling step
            keeps at its peak (the memory check's estimate).
        clips: whether it reads clips (n, F, H, W, C) as well as images.
    """

    name: str
    description: str
    config: type
    module: type
    forward_flops: Callable
    working_floats: Callable
    clips: bool = False


NETWORKS = Registry(
    "network",
    (
        (
            "unet",
            Network(
                "unet",
                "a U-Net: convolutions at two or more resolutions, attention at the lowest",
                unet.UNetConfig,
                unet.UNet,
                unet.forward_flops,
                unet.working_floats,
            ),
        ),
        (
            "dit",
            Network(
                "dit",
                "a diffusion transformer: patches as tokens, adaLN-Zero blocks (images or clips)",
                dit.DiTConfig,
                dit.DiT,
                dit.forward_flops,
                dit.working_floats,
                clips=True,
            ),
        ),
    ),
)
"""The image networks by name: one line each."""


def network_of(config) -> Network:
    """The registry entry of a network config (a ``UNetConfig`` or a ``DiTConfig``)."""
    for entry in NETWORKS.values():
        if type(config) is entry.config:
            return entry
    raise TypeError(f"not a network config: {type(config).__name__}")


__all__ = ["NETWORKS", "Network", "network_of"]
