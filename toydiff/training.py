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

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from toydiff import data as data_lib
from toydiff.errors import ToydiffError, TrainingError
from toydiff.model import REFERENCE, Model, TrainConfig
from toydiff.networks import init_network
from toydiff.objectives import loss_fn


# No buffer donation: a chunk's snapshot must stay valid if the next chunk is interrupted.
@functools.partial(jax.jit, static_argnames=("graphdef", "config", "length"))
def _run_chunk(params, ema, opt_state, key, start, x, labels, *, graphdef, config, length):
    """Run ``length`` AdamW steps from ``start``; returns params, ema, opt_state, losses."""
    opt = _optimizer(config)
    process = config.make_process()
    n = x.shape[0]

    def body(carry, i):
        params, ema, opt_state = carry
        k_batch, k_loss = jax.random.split(jax.random.fold_in(key, start + i))
        xb, lb = x, labels
        if config.batch_size:
            idx = jax.random.randint(k_batch, (config.batch_size,), 0, n)
            xb = x[idx]
            lb = None if labels is None else labels[idx]
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, _), grads = grad_fn(
            params,
            graphdef,
            k_loss,
            xb,
            lb,
            process=process,
            objective=config.objective,
            naive_dt=config.naive_dt,
            cond_drop=config.cond_drop,
        )
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda e, p: config.ema * e + (1 - config.ema) * p, ema, params)
        return (params, ema, opt_state), loss

    carry, losses = jax.lax.scan(body, (params, ema, opt_state), jnp.arange(length))
    return (*carry, losses)


def _optimizer(config: TrainConfig):
    """AdamW with the configured learning rate and weight decay."""
    return optax.adamw(config.lr, weight_decay=config.weight_decay)


@dataclasses.dataclass
class _Progress:
    """What the chunk loop reports: steps done, seconds spent compiling and training."""

    steps: int = 0
    compile_s: float = 0.0
    train_s: float = 0.0


def check_config(config: TrainConfig, cloud: data_lib.PointCloud):
    """Raise ToydiffError for settings that cannot train on this data."""
    if config.steps < 1:
        raise ToydiffError(f"--steps must be at least 1, got {config.steps}")
    if config.chunk < 1:
        raise ToydiffError(f"chunk must be at least 1, got {config.chunk}")
    if not 0.0 <= config.cond_drop < 1.0:
        raise ToydiffError(f"--cond-drop must be in [0, 1), got {config.cond_drop}")
    if config.batch_size < 0:
        raise ToydiffError(f"--batch-size must be 0 (all points) or more, got {config.batch_size}")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise ToydiffError(f"--lr must be a positive number, got {config.lr}")
    if config.process == "ve" and not (math.isfinite(config.sigma_max) and config.sigma_max > 0.01):
        raise ToydiffError(f"--sigma-max must be above sigma_min = 0.01, got {config.sigma_max}")
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
    ema = params
    opt_state = _optimizer(config).init(params)
    key = jax.random.key(config.seed)
    x = jnp.asarray(cloud.x)
    labels = jnp.asarray(cloud.labels) if config.labels else None
    losses: list[np.ndarray] = []
    progress = _Progress()
    compiled: dict[int, Callable] = {}
    while progress.steps < config.steps:
        length = min(config.chunk, config.steps - progress.steps)
        args = (params, ema, opt_state, key, jnp.int32(progress.steps), x, labels)
        if length not in compiled:
            t0 = time.perf_counter()
            lowered = _run_chunk.lower(*args, graphdef=graphdef, config=config, length=length)
            compiled[length] = lowered.compile()
            progress.compile_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        new_params, ema, opt_state, chunk_losses = compiled[length](*args)
        chunk_losses = np.asarray(chunk_losses)
        progress.train_s += time.perf_counter() - t0
        _check_finite(chunk_losses, progress.steps, config)
        params = new_params
        progress.steps += length
        losses.append(chunk_losses)
        yield Model(
            config,
            graphdef,
            ema if config.ema else params,
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
    """Seconds spent compiling and training, and steps per second after compilation."""
    rate = progress.steps / progress.train_s if progress.train_s > 0 else float("nan")
    return {"compile_s": progress.compile_s, "train_s": progress.train_s, "steps_per_s": rate}


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
    model = None
    bar = tqdm(
        total=config.steps,
        unit="step",
        file=sys.stderr,
        disable=not progress,
        desc="training",
        dynamic_ncols=True,
    )
    try:
        for model in train_chunks(config, cloud):
            bar.update(model.steps - bar.n)
            bar.set_postfix(loss=f"{model.losses[-config.chunk :].mean():.4f}")
            if callback is not None:
                callback(model)
    except KeyboardInterrupt:
        if model is None:
            raise
        model = dataclasses.replace(model, interrupted=True)
        print(f"\ninterrupted: keeping the model after {model.steps} steps", file=sys.stderr)
    finally:
        bar.close()
    return model


def cache_dir() -> pathlib.Path:
    """Where ``cached_train`` keeps models: $TOYDIFF_CACHE, else ~/.cache/toydiff."""
    root = os.environ.get("TOYDIFF_CACHE") or pathlib.Path.home() / ".cache" / "toydiff"
    return pathlib.Path(root)


def _source_hash() -> str:
    """A hash of toydiff's own source files, so a cached model never outlives the code."""
    h = hashlib.sha256()
    for path in sorted(pathlib.Path(__file__).parent.glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


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
    cloud = data_lib.load(config.data)
    blob = json.dumps([config.to_dict(), cloud.fingerprint(), _source_hash()], sort_keys=True)
    directory = cache_dir() / hashlib.sha256(blob.encode()).hexdigest()[:16]
    if (directory / "run.toydiff").exists():
        try:
            return Model.load(directory)
        except ToydiffError:
            pass  # a damaged cache entry is simply trained again
    model = train(config, cloud, progress=progress)
    if not model.interrupted:
        model.save(directory)
    return model
