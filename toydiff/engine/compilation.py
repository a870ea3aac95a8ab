"""JAX's persistent compilation cache, kept in toydiff's cache folder.

Every toydiff process (a notebook kernel, a CLI call, a test worker) compiles the same training
chunks and samplers; with this cache only the first one pays. Entries are keyed by JAX itself on
the compiled program, the JAX and XLA versions, the backend and the device kind, so a new
library version or another machine never reads a stale entry. The cache is bounded and uses
JAX's file lock around every read and write, so processes can share it safely.

Set ``TOYDIFF_COMPILATION_CACHE=0`` to turn it off.
"""

from __future__ import annotations

import functools
import os
import pathlib

import jax

MAX_BYTES = 2 * 1024**3
MIN_COMPILE_S = 0.0
"""Keep every program, however small. Code outside jit (a notebook cell, a test) runs op by op,
and each op is a program compiled on first use in every process: 50-100 ms each on a 2-core
laptop, hundreds of them per chapter. Reading one back takes about a millisecond. Measured on
three test files run a second time: 29.7 CPU s keeping only programs that compile in 0.2 s or
more, 15.7 CPU s keeping all (710 files, 3.3 MB)."""


def folder() -> pathlib.Path:
    """Where compiled programs are kept: ``xla/`` inside toydiff's cache folder."""
    root = os.environ.get("TOYDIFF_CACHE") or pathlib.Path.home() / ".cache" / "toydiff"
    return pathlib.Path(root) / "xla"


def enable() -> pathlib.Path | None:
    """Point JAX's persistent compilation cache at ``folder()``; returns it (None if off)."""
    if os.environ.get("TOYDIFF_COMPILATION_CACHE", "1") == "0":
        return None
    path = folder()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home: compile every time rather than fail
    if not os.access(path, os.W_OK):
        return None  # a shared read-only cache (a hub's image): no warnings on every compile
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)  # bounded, and locked
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
    return path


CPU_IMAGE_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
"""XLA:CPU options the image path compiles its training chunks and samplers with: convolutions
and matrix products go to XLA's multi-threaded Eigen kernels instead of YNNPACK fusions, which ran
one op at a time on one core here (an XLA trace of the digits U-Net's training step: the two
cores busy about half the time, one op after another). Measured side by side on a 2-core AMD
EPYC (Zen 4), with the hybrid convolution: 1.25-1.45x the training steps per second and
1.4-1.5x the guided sampling rate of the same programs compiled with the defaults. The 2D
lab keeps XLA's defaults, so its models train to bit-identical weights.

The diffusion transformer keeps the defaults too: it is all dense matrix products, which
YNNPACK's fusions run well. Its training step (shapes, 64 tokens of width 64, batch 64) took
175 ms with the defaults and 292 ms with these options, side by side on the same machine."""

CONVOLUTIONAL = ("unet",)
"""The networks that compile with ``CPU_IMAGE_OPTIONS`` on a CPU."""


def image_options(network: str = "unet") -> dict | None:
    """Compiler options for the image path's programs of a network on this backend, or None.

    ``CPU_IMAGE_OPTIONS`` for a convolutional network on a CPU, if this XLA knows them (a tiny
    program is compiled with them once per process to find out; an XLA without them compiles
    with its defaults); None for the transformer, and on a GPU or TPU.
    """
    return _cpu_image_options() if network in CONVOLUTIONAL else None


@functools.cache
def _cpu_image_options() -> dict | None:
    """``CPU_IMAGE_OPTIONS`` if this is a CPU whose XLA knows them, else None."""
    if jax.default_backend() != "cpu":
        return None
    try:
        jax.jit(lambda x: x + 1).lower(1.0).compile(compiler_options=CPU_IMAGE_OPTIONS)
    except Exception:  # an older or newer XLA without the option: its defaults are the answer
        return None
    return dict(CPU_IMAGE_OPTIONS)
