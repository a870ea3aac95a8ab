"""Network parameters as saved and restored: a pure dict in a run file, an ``nnx.State`` in use."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from toydiff.errors import CheckpointError


def restore(template, pure: dict, path):
    """Fill a parameter state of the right shapes from a saved pure dict.

    Args:
        template: an ``nnx.State`` of the network's parameters (arrays or shape structs).
        pure: the saved parameters (``nnx.to_pure_dict``'s form).
        path: the run they come from, for messages.

    Returns:
        The state, every leaf a JAX array.

    Raises:
        CheckpointError: the saved parameters do not match the network's shapes.
    """
    template = jax.tree.map(lambda a: a, template)
    try:
        nnx.replace_by_pure_dict(template, pure)
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path} does not match its network shape: {err}") from None
    leaves = jax.tree.leaves(template)
    if any(isinstance(a, jax.ShapeDtypeStruct) for a in leaves):
        raise CheckpointError(f"{path} lacks some of its network's parameters")
    return jax.tree.map(jnp.asarray, template)


def count(state) -> int:
    """The number of scalar parameters in a parameter state."""
    return sum(math.prod(a.shape) for a in jax.tree.leaves(state))
