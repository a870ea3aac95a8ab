"""JAX's persistent compilation cache, kept in toydiff's cache folder.

Every toydiff process (a notebook kernel, a CLI call, a test worker) compiles the same training
chunks and samplers; with this cache only the first one pays. Entries are keyed by JAX itself on
the compiled program, the JAX and XLA versions, the backend and the device kind, so a new
library version or another machine never reads a stale entry. The cache is bounded and uses
JAX's file lock around every read and write, so processes can share it safely.

Set ``TOYDIFF_COMPILATION_CACHE=0`` to turn it off.
"""

from __future__ import annotations

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
