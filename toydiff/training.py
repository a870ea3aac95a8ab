"""Training the 2D lab's models: the spiral and every other point cloud.

The loop itself is the engine's (``toydiff.engine.loop.run_chunks``): a jitted ``lax.scan`` in
chunks of ``TrainConfig.chunk`` steps, the same loop the image path and the toy CLIP train with.
What this module adds is the 2D side of it: the batches (``Resample``: the whole cloud, or draws
with replacement), the checks of a config against its data, the progress bar (``train``), and
the model cache (``cached_train``), which trains a model once and loads it afterwards.

Step i draws its randomness from ``fold_in(key, i)``, so a run is a pure function of its config.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from toydiff import data as data_lib
from toydiff.engine import checkpoint
from toydiff.engine.cache import cache_entry, cached, code_fingerprint
from toydiff.engine.loop import check_settings, follow, init_state, run_chunks, timing
from toydiff.errors import ToydiffError
from toydiff.model import REFERENCE, Model, TrainConfig
from toydiff.nets.mlp import init_network


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
        ToydiffError: at once (before the first snapshot is asked for), for settings that cannot
            train on this data (``check_config``).
        TrainingError: if the loss becomes NaN or infinite.
    """
    cloud = data_lib.load(config.data) if cloud is None else cloud
    check_config(config, cloud)
    return _chunks(config, cloud)


def _chunks(config: TrainConfig, cloud: data_lib.PointCloud) -> Iterator[Model]:
    """``train_chunks``'s snapshots, of a checked config."""
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
            timing(progress),
        )


def train(
    config: TrainConfig = REFERENCE,
    cloud: data_lib.PointCloud | None = None,
    *,
    out=None,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable[[Model], None] | None = None,
) -> Model:
    """Train a model, with a progress bar on stderr, and save it to ``out``.

    The config and ``out`` are checked before any work (and ``out`` before training, not after
    it: a run that could not be saved, or would replace another, is refused while nothing is
    lost). Ctrl-C stops training and returns the model after the last finished chunk (its
    ``interrupted`` flag is set); nothing trained before that is lost.

    Args:
        config: the training settings; the defaults are the reference spiral model.
        cloud: the data; loaded from ``config.data`` if None.
        out: the run directory to save the model in; None keeps it in memory only.
        overwrite: replace a run already in ``out``.
        progress: show a progress bar.
        callback: called with each chunk's snapshot (for live plots).

    Returns:
        The trained ``Model``.
    """
    snapshots = train_chunks(config, cloud)  # checks the config
    if out is not None:
        checkpoint.check_output(out, overwrite=overwrite)
    model = follow(snapshots, config.steps, progress=progress, callback=callback)
    if out is not None:
        model.save(out, overwrite=True)  # ``out`` was checked before training
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
    """The data of a 2D config and the parts of its cache key (config, data, defining code)."""
    cloud = data_lib.load(config.data)
    return cloud, [config.to_dict(), cloud.fingerprint(), code_fingerprint("toydiff.training")]


def cache_folder(config: TrainConfig):
    """The model cache's folder for a 2D config (trained or not)."""
    return cache_entry(_cache_key(config)[1])


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
    folder = cache_folder(config) / SNAPSHOTS
    runs = sorted(folder.glob("*/run.toydiff"))
    if not runs or int(runs[-1].parent.name) != final.steps:
        raise ToydiffError(
            f"the cache entry of this model has no training snapshots in {folder}; delete the "
            "entry's folder and ask again to retrain it"
        )
    return [Model.load(run) for run in runs]
