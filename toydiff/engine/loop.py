"""The one training loop: a jitted ``lax.scan`` of AdamW steps, run in chunks.

Every model toydiff trains goes through ``run_chunks``: the 2D lab's MLPs, the image path's
U-Nets (data-parallel over a device mesh) and the toy CLIP. A config brings its objective (a
diffusion loss, or its own ``loss_fn()``), its optimiser settings and its chunk length; a *source*
brings the batches (``draw(key) -> (x0, cond)``). Each chunk of ``config.chunk`` steps is one
compiled call. Between chunks Python checks that the loss is finite and hands over a snapshot, so
callers can show progress, save checkpoints or draw live plots. ``follow`` drains those snapshots
behind a progress bar, and Ctrl-C keeps the last finished chunk.

Step i draws its randomness from ``fold_in(key, i)``, so a run is a pure function of its config,
and a run resumed at a chunk boundary ends bit for bit where an uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
import time
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from toydiff.engine import limits
from toydiff.engine.objectives import loss_fn
from toydiff.errors import ToydiffError, TrainingError

LR_SCHEDULES = ("constant", "cosine")
"""How the learning rate moves over a run (``optimizer``)."""


@dataclasses.dataclass(frozen=True)
class TrainState:
    """Where a run stands: the step reached, the weights, their average and the optimiser state."""

    step: int
    params: nnx.State
    ema: nnx.State
    opt_state: optax.OptState


def init_state(config, params) -> TrainState:
    """The state at step 0: the initial weights, an average equal to them, a fresh optimiser."""
    return TrainState(0, params, params, optimizer(config).init(params))


def objective(config, loss: Callable | None = None) -> Callable:
    """What a run trains: ``loss(params, graphdef, key, x0, cond) -> (loss, per_example)``.

    ``loss`` when one is given (the toy CLIP's contrastive loss); else the diffusion objective
    the config names (``objectives.loss_fn`` with its process, objective and label dropout).
    """
    if loss is not None:
        return loss
    return functools.partial(
        loss_fn,
        process=config.make_process(),
        objective=config.objective,
        naive_dt=config.naive_dt,
        cond_drop=config.cond_drop,
    )


# No buffer donation: a chunk's snapshot must stay valid if the next chunk is interrupted.
@functools.partial(jax.jit, static_argnames=("graphdef", "config", "length", "loss"))
def _run_chunk(params, ema, opt_state, key, start, source, *, graphdef, config, length, loss):
    """Run ``length`` AdamW steps from ``start``; returns params, ema, opt_state, losses."""
    opt = optimizer(config)
    grad_fn = jax.value_and_grad(objective(config, loss), has_aux=True)

    def body(carry, i):
        params, ema, opt_state = carry
        k_batch, k_loss = jax.random.split(jax.random.fold_in(key, start + i))
        xb, lb = source.draw(k_batch)
        (value, _), grads = grad_fn(params, graphdef, k_loss, xb, lb)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda e, p: config.ema * e + (1 - config.ema) * p, ema, params)
        return (params, ema, opt_state), value

    carry, losses = jax.lax.scan(body, (params, ema, opt_state), jnp.arange(length))
    return (*carry, losses)


def optimizer(config):
    """AdamW with the configured learning rate and weight decay.

    The rate is constant, or with ``lr_schedule="cosine"`` (2D configs) falls along a half
    cosine from ``lr`` at step 0 to 0 at the last step (Loshchilov & Hutter, "SGDR", 2017): large
    steps early, small ones at the end, where the weights settle instead of jittering.
    """
    lr = config.lr
    if getattr(config, "lr_schedule", "constant") == "cosine":
        lr = optax.cosine_decay_schedule(config.lr, config.steps)
    return optax.adamw(lr, weight_decay=config.weight_decay)


@dataclasses.dataclass
class Progress:
    """What the chunk loop reports: steps done, seconds spent compiling and training, and how
    old the process was when its first training step started."""

    steps: int = 0
    compile_s: float = 0.0
    train_s: float = 0.0
    first_step_s: float = float("nan")


_IMPORTED = time.perf_counter()


def process_age() -> float:
    """Seconds since this process started: from the kernel's clock on Linux (so the Python
    start-up and every import count), else since toydiff was imported."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


def _next_stop(step: int, total: int, *periods: int | None) -> int:
    """The first chunk boundary after ``step``: a multiple of any period, or ``total``."""
    stops = [total] + [(step // p + 1) * p for p in periods if p]
    return min(stops)


def run_chunks(
    config,
    graphdef,
    source,
    state: TrainState,
    key,
    *,
    loss: Callable | None = None,
    chunk: int | None = None,
    every: int | None = None,
    compiler_options: dict | None = None,
) -> Iterator[tuple[TrainState, np.ndarray, Progress]]:
    """The training engine: advance ``state`` to ``config.steps`` in compiled chunks.

    The 2D lab, the image path and the toy CLIP all train through this one loop. Chunk
    boundaries sit at multiples of the chunk length (and of ``every``, where checkpoints go),
    counted from step 0, so a run resumed from a checkpoint runs exactly the chunks an
    uninterrupted run does.

    Args:
        config: a frozen config with ``steps``, ``chunk``, ``lr``, ``weight_decay``, ``ema``,
            and, unless ``loss`` is given, ``objective``, ``naive_dt``, ``cond_drop`` and
            ``make_process()`` (a diffusion model); hashable, since the compiled chunk is
            specialised on it.
        graphdef: the network's graph definition.
        source: a pytree with ``draw(key) -> (x0, labels)`` (``Resample``, or the image path's
            lanes); its arrays may be sharded over a mesh, and the parameters replicated.
        state: where to start (``init_state`` for a new run).
        key: the run's key; step i draws from ``fold_in(key, i)``.
        loss: the loss to train instead of the config's diffusion objective (see
            ``objective``); a hashable function.
        chunk: steps per chunk (default ``config.chunk``): a run with checkpoints every k
            steps chunks by a divisor of k, and a resumed run by the chunk it began with.
        every: an extra period of chunk boundaries (the checkpoint period), or None.
        compiler_options: XLA options to compile the chunks with (the image path's
            ``compilation.image_options()``); None keeps XLA's defaults (the 2D lab, the CLIP).

    Yields:
        (state, losses, progress) after each chunk: the new state, the chunk's per-step losses
        (numpy) and the compile and training seconds of this call so far.

    Raises:
        TrainingError: if the loss becomes NaN or infinite.
    """
    progress = Progress()
    compiled: dict[int, Callable] = {}
    chunk = config.chunk if chunk is None else chunk
    while state.step < config.steps:
        length = _next_stop(state.step, config.steps, chunk, every) - state.step
        args = (state.params, state.ema, state.opt_state, key, jnp.int32(state.step), source)
        if length not in compiled:
            t0 = time.perf_counter()
            lowered = _run_chunk.lower(
                *args, graphdef=graphdef, config=config, length=length, loss=loss
            )
            compiled[length] = lowered.compile(compiler_options=compiler_options)
            progress.compile_s += time.perf_counter() - t0
        if progress.steps == 0:
            progress.first_step_s = process_age()
        t0 = time.perf_counter()
        params, ema, opt_state, chunk_losses = compiled[length](*args)
        chunk_losses = np.asarray(chunk_losses)
        progress.train_s += time.perf_counter() - t0
        check_finite(chunk_losses, state.step, config)
        progress.steps += length
        state = TrainState(state.step + length, params, ema, opt_state)
        yield state, chunk_losses, progress


def check_settings(config) -> None:
    """Raise ToydiffError for settings no run can train with, whatever it trains on.

    Shared by the 2D lab (``check_config``), the image models and the toy CLIP: the steps, chunk,
    seed and learning rate, and where the config has them, the label dropout and VE's
    sigma_max.
    """
    if not limits.is_whole(config.steps) or config.steps < 1:
        raise ToydiffError(f"--steps must be at least 1, got {config.steps}")
    if config.chunk < 1:
        raise ToydiffError(f"chunk must be at least 1, got {config.chunk}")
    limits.check_seed(config.seed)
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise ToydiffError(f"--lr must be a positive number, got {config.lr}")
    cond_drop = getattr(config, "cond_drop", 0.0)
    if not 0.0 <= cond_drop < 1.0:
        raise ToydiffError(f"--cond-drop must be in [0, 1), got {cond_drop}")
    if getattr(config, "process", None) == "ve" and not (
        math.isfinite(config.sigma_max) and config.sigma_max > 0.01
    ):
        raise ToydiffError(f"--sigma-max must be above sigma_min = 0.01, got {config.sigma_max}")


def check_finite(chunk_losses: np.ndarray, start: int, config) -> None:
    """Raise TrainingError naming the first step whose loss is not finite."""
    bad = np.flatnonzero(~np.isfinite(chunk_losses))
    if bad.size:
        step = start + int(bad[0])
        raise TrainingError(
            f"training diverged: the loss became {chunk_losses[bad[0]]} at step {step}; "
            f"try a smaller learning rate than {config.lr}"
        )


def timing(progress: Progress) -> dict:
    """Seconds spent compiling and training, steps per second after compilation, and the
    process's age when training started (``first_step_s``: start-up, imports, data, the
    network's initialisation and compiling, all before the first step)."""
    rate = progress.steps / progress.train_s if progress.train_s > 0 else float("nan")
    return {
        "compile_s": progress.compile_s,
        "train_s": progress.train_s,
        "steps_per_s": rate,
        "first_step_s": progress.first_step_s,
    }


def follow(snapshots: Iterator, total: int, *, progress=True, callback=None, desc="training"):
    """Drain an iterator of training snapshots behind a progress bar; returns the last one.

    Each snapshot has ``steps`` and ``losses`` and a dataclass field ``interrupted``. Ctrl-C
    stops the run and returns the last finished snapshot with ``interrupted=True``.

    Args:
        snapshots: e.g. ``train_chunks(config)``.
        total: the step count the bar runs to.
        progress: show the bar on stderr.
        callback: called with each snapshot (for live plots).
        desc: the bar's label.

    Returns:
        The last snapshot.
    """
    snap = None
    bar = tqdm(
        total=total,
        unit="step",
        file=sys.stderr,
        disable=not progress,
        desc=desc,
        dynamic_ncols=True,
    )
    try:
        for snap in snapshots:
            new = snap.steps - bar.n
            bar.update(new)
            bar.set_postfix(loss=f"{snap.losses[-max(new, 1) :].mean():.4f}")
            if callback is not None:
                callback(snap)
    except KeyboardInterrupt:
        if snap is None:
            raise
        snap = dataclasses.replace(snap, interrupted=True)
        print(f"\ninterrupted: keeping the model after {snap.steps} steps", file=sys.stderr)
    finally:
        bar.close()
    return snap
