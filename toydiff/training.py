"""Training: a jitted ``lax.scan`` loop, run in chunks so progress can be shown.

Each chunk of ``TrainConfig.chunk`` steps is one compiled call. Between chunks, Python updates the
progress bar, checks that the loss is finite, and hands a snapshot to an optional callback (the
live training view uses this). Ctrl-C during training keeps the last finished chunk.

Step i draws its randomness from ``fold_in(key, i)``, so a run is a pure function of its config.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import pathlib
import sys
import time
from collections.abc import Callable, Iterator

import filelock
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from toydiff import compilation, limits
from toydiff import data as data_lib
from toydiff.errors import ToydiffError, TrainingError
from toydiff.model import REFERENCE, Model, TrainConfig
from toydiff.networks import init_network
from toydiff.objectives import loss_fn


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["x", "labels"], meta_fields=["batch_size"]
)
@dataclasses.dataclass(frozen=True)
class Resample:
    """Where the 2D lab's batches come from: the whole set, or draws with replacement.

    Attributes:
        x: the training points, shape (n, d).
        labels: their class ids, shape (n,), or None.
        batch_size: examples per step; 0 means the whole set every step.
    """

    x: jax.Array
    labels: jax.Array | None
    batch_size: int

    def draw(self, key):
        """One batch: (x0 (b, d), labels (b,) or None)."""
        if not self.batch_size:
            return self.x, self.labels
        idx = jax.random.randint(key, (self.batch_size,), 0, self.x.shape[0])
        return self.x[idx], None if self.labels is None else self.labels[idx]


@dataclasses.dataclass(frozen=True)
class TrainState:
    """Where a run stands: the step reached, the weights, their average and the optimiser state."""

    step: int
    params: nnx.State
    ema: nnx.State
    opt_state: optax.OptState


def init_state(config, params) -> TrainState:
    """The state at step 0: the initial weights, an average equal to them, a fresh optimiser."""
    return TrainState(0, params, params, _optimizer(config).init(params))


def objective(config) -> Callable:
    """What a config trains: ``loss(params, graphdef, key, x0, cond) -> (loss, per_example)``.

    A config with a ``loss_fn()`` method brings its own (the toy CLIP's contrastive loss);
    every other config trains the diffusion objective it names (``objectives.loss_fn``).
    """
    if hasattr(config, "loss_fn"):
        return config.loss_fn()
    return functools.partial(
        loss_fn,
        process=config.make_process(),
        objective=config.objective,
        naive_dt=config.naive_dt,
        cond_drop=config.cond_drop,
    )


# No buffer donation: a chunk's snapshot must stay valid if the next chunk is interrupted.
@functools.partial(jax.jit, static_argnames=("graphdef", "config", "length"))
def _run_chunk(params, ema, opt_state, key, start, source, *, graphdef, config, length):
    """Run ``length`` AdamW steps from ``start``; returns params, ema, opt_state, losses."""
    opt = _optimizer(config)
    grad_fn = jax.value_and_grad(objective(config), has_aux=True)

    def body(carry, i):
        params, ema, opt_state = carry
        k_batch, k_loss = jax.random.split(jax.random.fold_in(key, start + i))
        xb, lb = source.draw(k_batch)
        (loss, _), grads = grad_fn(params, graphdef, k_loss, xb, lb)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda e, p: config.ema * e + (1 - config.ema) * p, ema, params)
        return (params, ema, opt_state), loss

    carry, losses = jax.lax.scan(body, (params, ema, opt_state), jnp.arange(length))
    return (*carry, losses)


def _optimizer(config):
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
class _Progress:
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
    config, graphdef, source, state: TrainState, key, *, every: int | None = None
) -> Iterator[tuple[TrainState, np.ndarray, _Progress]]:
    """The training engine: advance ``state`` to ``config.steps`` in compiled chunks.

    Both the 2D lab and the image path train through this one loop. Chunk boundaries sit at
    multiples of ``config.chunk`` (and of ``every``, where checkpoints go), counted from step 0,
    so a run resumed from a checkpoint runs exactly the chunks an uninterrupted run does.

    Args:
        config: a frozen config with ``steps``, ``chunk``, ``lr``, ``weight_decay``, ``ema``,
            and either ``objective``, ``naive_dt``, ``cond_drop`` and ``make_process()`` (a
            diffusion model) or ``loss_fn()`` (see ``objective``); hashable, since the compiled
            chunk is specialised on it.
        graphdef: the network's graph definition.
        source: a pytree with ``draw(key) -> (x0, labels)`` (``Resample``, or the image path's
            lanes); its arrays may be sharded over a mesh, and the parameters replicated.
        state: where to start (``init_state`` for a new run).
        key: the run's key; step i draws from ``fold_in(key, i)``.
        every: an extra period of chunk boundaries (the checkpoint period), or None.

    Yields:
        (state, losses, progress) after each chunk: the new state, the chunk's per-step losses
        (numpy) and the compile and training seconds of this call so far.

    Raises:
        TrainingError: if the loss becomes NaN or infinite.
    """
    progress = _Progress()
    compiled: dict[int, Callable] = {}
    while state.step < config.steps:
        length = _next_stop(state.step, config.steps, config.chunk, every) - state.step
        args = (state.params, state.ema, state.opt_state, key, jnp.int32(state.step), source)
        if length not in compiled:
            t0 = time.perf_counter()
            lowered = _run_chunk.lower(*args, graphdef=graphdef, config=config, length=length)
            compiled[length] = lowered.compile()
            progress.compile_s += time.perf_counter() - t0
        if progress.steps == 0:
            progress.first_step_s = process_age()
        t0 = time.perf_counter()
        params, ema, opt_state, chunk_losses = compiled[length](*args)
        chunk_losses = np.asarray(chunk_losses)
        progress.train_s += time.perf_counter() - t0
        _check_finite(chunk_losses, state.step, config)
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


def check_config(config: TrainConfig, cloud: data_lib.PointCloud):
    """Raise ToydiffError for settings that cannot train on this data (see ``check_settings``)."""
    check_settings(config)
    if config.cond_drop and not config.labels:
        raise ToydiffError(
            f"--cond-drop {config.cond_drop} drops labels, but this run trains without them; "
            "add --labels or leave --cond-drop out"
        )
    if config.batch_size < 0:
        raise ToydiffError(f"--batch-size must be 0 (all points) or more, got {config.batch_size}")
    if config.labels and cloud.labels is None:
        raise ToydiffError(f"--labels needs labelled data, but {cloud.name!r} has no labels")
    if config.labels and cloud.num_classes != config.net.num_classes:
        raise ToydiffError(
            f"the network has {config.net.num_classes} classes but {cloud.name!r} has "
            f"{cloud.num_classes} ({', '.join(cloud.class_names)})"
        )


def train_chunks(config: TrainConfig, cloud: data_lib.PointCloud | None = None) -> Iterator[Model]:
    """Train, yielding a ``Model`` snapshot after every finished chunk.

    Args:
        config: the training settings.
        cloud: the data; loaded from ``config.data`` if None.

    Yields:
        The model after each chunk; ``model.losses`` holds the loss of every step so far and
        ``model.timing`` the compile and training seconds.

    Raises:
        TrainingError: if the loss becomes NaN or infinite.
    """
    cloud = data_lib.load(config.data) if cloud is None else cloud
    check_config(config, cloud)
    graphdef, params = init_network(config.net, config.seed)
    labels = jnp.asarray(cloud.labels) if config.labels else None
    source = Resample(jnp.asarray(cloud.x), labels, config.batch_size)
    losses: list[np.ndarray] = []
    start = init_state(config, params)
    key = jax.random.key(config.seed)
    for state, chunk_losses, progress in run_chunks(config, graphdef, source, start, key):
        losses.append(chunk_losses)
        yield Model(
            config,
            graphdef,
            state.ema if config.ema else state.params,
            cloud,
            np.concatenate(losses),
            _timing(progress),
        )


def _check_finite(chunk_losses: np.ndarray, start: int, config: TrainConfig):
    """Raise TrainingError naming the first step whose loss is not finite."""
    bad = np.flatnonzero(~np.isfinite(chunk_losses))
    if bad.size:
        step = start + int(bad[0])
        raise TrainingError(
            f"training diverged: the loss became {chunk_losses[bad[0]]} at step {step}; "
            f"try a smaller learning rate than {config.lr}"
        )


def _timing(progress: _Progress) -> dict:
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


def train(
    config: TrainConfig = REFERENCE,
    cloud: data_lib.PointCloud | None = None,
    *,
    progress: bool = True,
    callback: Callable[[Model], None] | None = None,
) -> Model:
    """Train a model, with a progress bar on stderr.

    Ctrl-C stops training and returns the model after the last finished chunk (its
    ``interrupted`` flag is set); nothing trained before that is lost.

    Args:
        config: the training settings; the defaults are the reference spiral model.
        cloud: the data; loaded from ``config.data`` if None.
        progress: show a progress bar.
        callback: called with each chunk's snapshot (for live plots).

    Returns:
        The trained ``Model``.
    """
    return follow(train_chunks(config, cloud), config.steps, progress=progress, callback=callback)


def cache_dir() -> pathlib.Path:
    """Where ``cached_train`` keeps models: $TOYDIFF_CACHE, else ~/.cache/toydiff."""
    return compilation.folder().parent


def source_hash(*subpackages: str) -> str:
    """A hash of toydiff's own source files (and of ``subpackages``), so a cached model never
    outlives the code that made it."""
    root = pathlib.Path(__file__).parent
    h = hashlib.sha256()
    for folder in (root, *(root / name for name in subpackages)):
        for path in sorted(folder.glob("*.py")):
            h.update(path.read_bytes())
    return h.hexdigest()


def cache_entry(parts: list) -> pathlib.Path:
    """The cache folder of the model named by ``parts`` (trained or not)."""
    blob = json.dumps(parts, sort_keys=True)
    return cache_dir() / hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached(parts: list, load: Callable, make: Callable):
    """Load a model from the cache entry named by the hash of ``parts``, or make and save it.

    Args:
        parts: JSON-serialisable parts of the cache key (config, data fingerprint, source hash).
        load: ``load(directory) -> model``; a ToydiffError (a damaged entry) means train again.
        make: ``make() -> model``, a model with ``save(directory)`` and ``interrupted``.

    Returns:
        The model.
    """
    directory = cache_entry(parts)
    if (directory / "run.toydiff").exists():
        # A complete entry: written atomically, so it loads without the lock (a read-only
        # shared cache, e.g. one warmed in a JupyterHub image, works too).
        try:
            return load(directory)
        except ToydiffError:
            pass  # a damaged entry is trained again below, under the lock
    directory.mkdir(parents=True, exist_ok=True)
    # One process trains an entry; another asking for it meanwhile waits, then loads it.
    with filelock.FileLock(directory / ".lock"):
        if (directory / "run.toydiff").exists():
            try:
                return load(directory)
            except ToydiffError:
                pass  # a damaged cache entry is simply trained again
        model = make()
        if not model.interrupted:
            model.save(directory, overwrite=True)  # a damaged entry is replaced
    return model


def cached_train(config: TrainConfig = REFERENCE, *, progress: bool = True) -> Model:
    """Train once, then load the same model from the local cache on later calls.

    Nothing is downloaded: the first call trains on this machine and saves the run atomically.
    The cache key covers the config, the data fingerprint and toydiff's source code.

    Args:
        config: the training settings (default: the reference spiral model).
        progress: show the progress bar when training.

    Returns:
        The trained ``Model``.
    """
    cloud, parts = _cache_key(config)
    return cached(
        parts, Model.load, lambda: _train_keeping_snapshots(config, cloud, parts, progress)
    )


def _cache_key(config: TrainConfig) -> tuple[data_lib.PointCloud, list]:
    """The data of a 2D config and the parts of its cache key (config, data, source code)."""
    cloud = data_lib.load(config.data)
    return cloud, [config.to_dict(), cloud.fingerprint(), source_hash()]


SNAPSHOTS = "snapshots"  # the cache entry's folder of per-chunk snapshots


def _train_keeping_snapshots(config, cloud, parts, progress: bool) -> Model:
    """Train, saving the model after every chunk under the cache entry's ``snapshots/``.

    They are written before ``run.toydiff`` (which marks the entry complete), so a complete entry
    always has its snapshots; they cost a few kB each.
    """
    folder = cache_entry(parts) / SNAPSHOTS
    kept: list[Model] = []
    model = train(config, cloud, progress=progress, callback=kept.append)
    if not model.interrupted:
        for snap in kept:
            snap.save(folder / f"{snap.steps:08d}", overwrite=True)
    return model


def cached_snapshots(config: TrainConfig = REFERENCE, *, progress: bool = True) -> list[Model]:
    """The model after every training chunk, from the cache (training once if needed).

    ``cached_train`` keeps these as it trains, so asking for them costs no extra training, and
    the last snapshot is the cached model itself.

    Args:
        config: the training settings.
        progress: show the progress bar when training.

    Returns:
        Models after ``chunk``, ``2 * chunk``, ..., ``steps`` steps (in that order).
    """
    final = cached_train(config, progress=progress)
    folder = cache_entry(_cache_key(config)[1]) / SNAPSHOTS
    runs = sorted(folder.glob("*/run.toydiff"))
    if not runs or int(runs[-1].parent.name) != final.steps:
        raise ToydiffError(
            f"the cache entry of this model has no training snapshots in {folder}; delete the "
            "entry's folder and ask again to retrain it"
        )
    return [Model.load(run) for run in runs]
