"""The bounds a request must stay within, checked before any work starts.

- ``MAX_SAMPLER_STEPS``: the most steps a sampler may be asked for.
- ``check_steps``, ``check_count``, ``check_seed``: whole numbers in their ranges.
- ``sample_bytes`` and ``check_sample_memory``: the memory a sampling request needs, against the
  memory that is free, so that a request too big to fit is refused with what would fit, instead
  of ending in an out-of-memory traceback after the work has started.

The memory estimate, in bytes (float32 throughout)::

    4 * D * copies * (steps + 1) * n   +   4 * W * m

- the trajectory: every sampler keeps all ``steps + 1`` states of the ``n`` samples of
  ``D = prod(sample_shape)`` numbers each. ``copies`` is 2 for one sampler call (the scanned
  states and the trajectory they are joined into are both alive at the end) and 3 for a model
  that samples in chunks (the chunks, their concatenation and its cut to n);
- the working memory of the network: ``W`` numbers per sample in flight (the model's
  ``working_floats``) for the ``m`` samples in flight (n, or the chunk size).

It is an estimate meant never to fall below what XLA needs, at the price of refusing some requests
that would just fit: ``W`` assumes a guided step (two network calls) even when there is no
guidance. On the CPU (``memory_analysis()`` of the samplers) the 2D and image working memory
came to 0.3 to 0.9 of ``W``; on an H200, the largest 2D request the check lets through (36
million points at 64 steps, estimated at 113 GB) peaked at 57 GB and ran, and image requests
peaked at 0.4 to 0.6 of the estimate. The parameters and compiled code (megabytes) are left
out. The free memory is the accelerator's when JAX runs on one (``memory_stats()``), else
this machine's (``MemAvailable`` of /proc/meminfo, or ``os.sysconf`` where there is none).
"""

from __future__ import annotations

import math
import numbers
import os

from toydiff.errors import ToydiffError

MAX_SAMPLER_STEPS = 10_000
"""The most steps a sampler may be asked for.

A 2D sampler step takes about a millisecond (2,000 points on a CPU), so 10,000 steps finish in
seconds; an image step of 64 images takes tens of milliseconds, so they finish in minutes. No
sampler here improves past a few thousand steps (chapter 7: DDIM, Euler and Heun have converged
long before 1,000), so a larger number is a typo (``--steps 100000000`` would run for a day with
no progress shown), not a request."""

MAX_SEED = 2**63 - 1
"""The largest seed: JAX keys and numpy generators take any non-negative 64-bit integer."""

FLOAT_BYTES = 4


def is_whole(value) -> bool:
    """Whether value is an integer (numpy integers included; bools and floats not)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_steps(steps, what: str = "--steps") -> int:
    """Raise ToydiffError unless ``steps`` is a whole number from 1 to ``MAX_SAMPLER_STEPS``.

    ``what`` names the value in the message ("" leaves it out, for argparse, which names it).
    """
    if not is_whole(steps) or not 1 <= steps <= MAX_SAMPLER_STEPS:
        raise ToydiffError(
            f"{what} must be a whole number from 1 to {MAX_SAMPLER_STEPS} (more steps do not "
            f"sample any better), got {steps}".lstrip()
        )
    return int(steps)


def check_count(value, what: str = "--n") -> int:
    """Raise ToydiffError unless ``value`` is a whole number of at least 1."""
    if not is_whole(value) or value < 1:
        raise ToydiffError(f"{what} must be a whole number of at least 1, got {value}".lstrip())
    return int(value)


def check_seed(seed, what: str = "--seed") -> int:
    """Raise ToydiffError unless ``seed`` is a whole number from 0 to ``MAX_SEED``."""
    if not is_whole(seed) or not 0 <= seed <= MAX_SEED:
        rule = f"{what} must be a whole number from 0 to 2**63 - 1"
        raise ToydiffError(f"{rule}, got {seed}".lstrip())
    return int(seed)


def sample_bytes(
    n: int, steps: int, sample_shape, working_floats: int, in_flight: int | None = None
) -> tuple[int, int]:
    """The bytes a sampling request needs: (total, of which the trajectory).

    Args:
        n: number of samples.
        steps: sampler steps.
        sample_shape: the shape of one sample: (2,), or (H, W, C).
        working_floats: the network's working numbers per sample in flight.
        in_flight: samples per sampler call when the model samples in chunks (each call's n is
            padded up to it); None for one call on all n.

    Returns:
        (total bytes, bytes of one copy of the trajectory); see the module docstring.
    """
    d = math.prod(sample_shape)
    trajectory = FLOAT_BYTES * d * (steps + 1) * n
    copies = 2 if in_flight is None else 3
    m = n if in_flight is None else in_flight
    return copies * trajectory + FLOAT_BYTES * working_floats * m, trajectory


def host_available_bytes() -> int | None:
    """Memory this machine can give now: MemAvailable, else free pages; None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_bytes() -> tuple[int | None, str]:
    """(free bytes where the samples will be made, where that is); None bytes if unknown.

    On an accelerator: its memory limit minus what JAX holds there now. On a CPU: this
    machine's available memory.
    """
    import jax

    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
            return free, f"on the {device.device_kind}"
    return host_available_bytes(), "on this machine"


def _size(n_bytes: float) -> str:
    """A byte count for people: '52 GB', '310 MB', '12 kB'."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{int(n_bytes)} bytes"


def check_sample_memory(
    n: int, steps: int, sample_shape, working_floats: int, in_flight: int | None = None
) -> int:
    """Raise ToydiffError, before any sampling, if the request will not fit in free memory.

    The message names the request, the memory it needs (and how much of it the trajectory
    takes), the memory free, and the most samples that fit at these steps.

    Args:
        n, steps, sample_shape, working_floats, in_flight: as for ``sample_bytes``.

    Returns:
        The estimated bytes (when the free memory cannot be read, nothing is refused).
    """
    need, trajectory = sample_bytes(n, steps, sample_shape, working_floats, in_flight)
    free, where = available_bytes()
    if free is None or need <= free:
        return need
    per_sample, fixed = _per_sample_and_fixed(steps, sample_shape, working_floats, in_flight)
    fit = max(0, int((free - fixed) // per_sample))
    hint = f"at most {fit} samples fit at {steps} steps" if fit else "not even one sample fits"
    raise ToydiffError(
        f"--n {n} with --steps {steps} needs about {_size(need)} ({_size(trajectory)} for one "
        f"copy of the trajectory), but only {_size(free)} is free {where}; {hint}"
    )


def _per_sample_and_fixed(steps, sample_shape, working_floats, in_flight) -> tuple[int, int]:
    """``sample_bytes`` as per_sample * n + fixed (it is linear in n)."""
    one, _ = sample_bytes(1, steps, sample_shape, working_floats, in_flight)
    two, _ = sample_bytes(2, steps, sample_shape, working_floats, in_flight)
    return two - one, 2 * one - two
