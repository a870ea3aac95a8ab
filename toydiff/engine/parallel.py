"""Data parallelism the standard way: one ``data`` mesh axis, replicated weights, split batches.

The pattern of the JAX training cookbook. Parameters, their average and the optimiser state are
replicated (``P()``); the training images are split along the ``data`` axis (``P("data")``) and
built with ``jax.make_array_from_process_local_data``, so each process holds only its share. The
same code runs on one CPU, on eight simulated CPU devices, on a GPU, on a TPU pod, or on many
machines after ``jax.distributed.initialize``; XLA inserts the all-reduce of the gradients.

Batches come from *lanes*. With a global batch of B, training image i belongs to lane i mod B,
and slot j of every batch draws one image uniformly from lane j. The draw depends only on the
step and the slot, never on how many devices or processes there are, so 1 device, 8 devices and
2 processes train to the same weights; and the process that owns slot j needs only lane j's
images. Lanes differ in length by at most one image, so an image's chance of being drawn differs
from uniform by at most 1 / (images per lane).

References:
    JAX documentation, "Distributed arrays and automatic parallelization" and "The Training
    Cookbook"; ``jax.distributed.initialize`` for Slurm, Open MPI and Cloud TPU.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from toydiff.errors import ToydiffError

AXIS = "data"


def initialize(
    distributed: bool = False,
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Join a multi-process run, before anything else touches a JAX device.

    With ``distributed`` alone, ``jax.distributed.initialize`` finds Slurm, Open MPI or a Cloud
    TPU pod by itself; ``coordinator`` ("HOST:PORT"), ``num_processes`` and ``process_id`` set it
    by hand. On CPUs the processes talk through gloo collectives.

    Raises:
        ToydiffError: an incomplete hand-set triple, or a process id out of range.
    """
    manual = (coordinator, num_processes, process_id)
    if not distributed and all(v is None for v in manual):
        return
    if any(v is not None for v in manual) and any(v is None for v in manual):
        raise ToydiffError(
            "set all of --coordinator HOST:PORT, --num-processes N and --process-id I, or none"
        )
    if num_processes is not None and not 0 <= process_id < num_processes:
        raise ToydiffError(f"--process-id must be in 0..{num_processes - 1}, got {process_id}")
    if coordinator is not None and ":" not in coordinator:
        raise ToydiffError(f"--coordinator must be HOST:PORT, got {coordinator!r}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
    )


def make_mesh(devices=None) -> Mesh:
    """A one-axis mesh (``data``) over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.array(devices), (AXIS,))


def describe(mesh: Mesh) -> dict:
    """The mesh in words: device count, kind, processes and the axis."""
    devices = mesh.devices.ravel()
    return {
        "devices": int(devices.size),
        "device_kind": str(devices[0].device_kind),
        "platform": str(devices[0].platform),
        "processes": jax.process_count(),
        "axis": AXIS,
    }


def check_batch(batch: int, mesh: Mesh, examples: int | None = None) -> None:
    """Raise ToydiffError unless the batch splits evenly over the mesh's devices (and, when
    ``examples`` is given, that many training examples can fill it)."""
    n = mesh.devices.size
    if batch < 1 or batch % n:
        raise ToydiffError(
            f"--batch-size {batch} does not split over {n} devices; use a multiple of {n}"
        )
    if examples is not None and batch > examples:
        raise ToydiffError(f"--batch-size {batch} is larger than the {examples} training images")


def replicate(tree, mesh: Mesh):
    """Put every array of ``tree`` on every device of the mesh (the weights, the optimiser)."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def fetch(tree):
    """A numpy copy of a replicated pytree, readable in every process."""
    return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)


def lane_members(n: int, batch: int, lane: int) -> np.ndarray:
    """The training-image indices of one lane: lane, lane + batch, lane + 2 batch, ... < n."""
    return np.arange(lane, n, batch)


def local_lanes(mesh: Mesh, batch: int) -> range:
    """The lanes whose images this process must hold: those of its devices' slots."""
    sharding = NamedSharding(mesh, P(AXIS))
    slices = sharding.addressable_devices_indices_map((batch,)).values()
    starts = [s[0].start or 0 for s in slices]
    stops = [batch if s[0].stop is None else s[0].stop for s in slices]
    return range(min(starts), max(stops))


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["x", "cond", "counts"], meta_fields=[]
)
@dataclasses.dataclass(frozen=True)
class Lanes:
    """A batch source: slot j of every batch is a uniform draw from lane j.

    Attributes:
        x: images by lane, shape (B, L, H, W, C), zero-padded where a lane is short.
        cond: conditions by lane, (B, L) class ids or (B, L, D) vectors; None for none.
        counts: images in each lane, shape (B,).
    """

    x: jax.Array
    cond: jax.Array | None
    counts: jax.Array

    def draw(self, key):
        """One batch: (x0 (B, H, W, C), cond (B, ...) or None)."""
        idx = jax.random.randint(key, self.counts.shape, 0, self.counts)
        pick = jax.vmap(lambda lane, i: lane[i])
        return pick(self.x, idx), None if self.cond is None else pick(self.cond, idx)


def make_lanes(mesh: Mesh, batch: int, n: int, fetch_images: Callable) -> Lanes:
    """Build the global lanes, each process loading only the images of its own lanes.

    Args:
        mesh: the device mesh.
        batch: the global batch size B (a multiple of the device count).
        n: the number of training images.
        fetch_images: ``fetch_images(indices) -> (x, cond)``: numpy images (k, H, W, C) and
            conditions (k, ...) or None, for training-image indices (k,).

    Returns:
        ``Lanes`` whose arrays are sharded along ``data``.
    """
    if n < batch:
        raise ToydiffError(f"--batch {batch} is larger than the {n} training images")
    length = math.ceil(n / batch)
    lanes = local_lanes(mesh, batch)
    members = [lane_members(n, batch, j) for j in lanes]
    x, cond = fetch_images(np.concatenate(members))
    sharding = NamedSharding(mesh, P(AXIS))

    def by_lane(a):
        out = np.zeros((len(lanes), length, *a.shape[1:]), a.dtype)
        start = 0
        for k, m in enumerate(members):
            out[k, : len(m)] = a[start : start + len(m)]
            start += len(m)
        return jax.make_array_from_process_local_data(sharding, out, (batch, *out.shape[1:]))

    counts = np.array([len(m) for m in members], np.int32)
    return Lanes(
        x=by_lane(x),
        cond=None if cond is None else by_lane(cond),
        counts=jax.make_array_from_process_local_data(sharding, counts, (batch,)),
    )


def shard_batch(x, mesh: Mesh):
    """Split an array that every process holds in full along ``data`` (e.g. sampling noise)."""
    return jax.device_put(jnp.asarray(x), NamedSharding(mesh, P(AXIS)))
