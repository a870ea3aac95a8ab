"""Training image models: the 2D lab's training engine, data-parallel, with checkpoints.

Nothing here is a second training loop. ``train_chunks`` builds the U-Net, replicates its
weights over the device mesh, lays the training images out in lanes (``parallel.Lanes``) and
hands all of it to ``toydiff.engine.loop.run_chunks``, the compiled ``lax.scan`` loop the 2D lab
trains with. What it adds is the bookkeeping of long runs:

- Every ``checkpoint_every`` steps, process 0 writes the whole training state (weights, their
  average, the optimiser state and the loss history) atomically to ``DIR/state.toydiff``, with
  ``toydiff.engine.checkpoint``. We use our own format rather than orbax-checkpoint: the weights are
  replicated and small (megabytes), so one process can write them whole; the format is already
  atomic, pickle-free and tested; and it keeps start-up light. Orbax's strengths (sharded,
  asynchronous writes of huge arrays from many hosts) would serve a model far larger than these.
- ``resume=True`` continues from that state. Chunk boundaries sit at fixed step numbers and every
  draw depends only on the seed and the step, so a resumed run ends bit for bit where an
  uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Callable, Iterator

import jax
import numpy as np
from flax import nnx

from toydiff.engine import checkpoint, compilation, parallel
from toydiff.engine.cache import cached, code_fingerprint
from toydiff.engine.loop import (
    TrainState,
    check_settings,
    follow,
    init_state,
    optimizer,
    run_chunks,
    timing,
)
from toydiff.errors import CheckpointError, ToydiffError
from toydiff.images import clip as clip_lib
from toydiff.images import data as image_data
from toydiff.images import text
from toydiff.images.model import (
    DIGITS,
    ImageModel,
    ImageTrainConfig,
    abstract_network,
    fingerprint,
    image_config,
    init_params,
    load_clip,
    training_indices,
)
from toydiff.nets.params import restore

STATE_FILE = "state.toydiff"


def n_train(config: ImageTrainConfig) -> int:
    """The number of training images of a run."""
    return len(training_indices(config))


def fetcher(config: ImageTrainConfig) -> Callable:
    """``fetch(positions) -> (x, cond)`` for positions in the training set: what a process loads.

    A process draws only the images at its own positions (``spec.draw``), so a data set that
    renders its images (shapes) renders just those.
    """
    conditions = _conditioner(config)
    spec = image_data.spec(config.data)
    kept = training_indices(config)

    def fetch(pos):
        images = spec.draw(kept[pos], config.net.size)
        return images.x, conditions(dataclasses.replace(images, label_by=config.label_by))

    return fetch


def _conditioner(config: ImageTrainConfig) -> Callable:
    """``conditions(images)``: what the U-Net is told about each image.

    Class ids; or the frozen CLIP's embedding of each image's caption, with each of its size,
    colour and hat phrases dropped with probability ``caption_drop`` (a pure function of the
    image's index); or None.
    """
    if config.condition == "class":
        return lambda images: images.labels
    if config.condition == "none":
        return lambda images: None
    clip = _checked_clip(config)

    def embed(images):
        captions = text.dropped_captions(images, config.caption_drop)
        return clip.encode_texts(captions)

    return embed


def _checked_clip(config: ImageTrainConfig):
    """The run's CLIP, refusing one whose weights are not the ones the config names."""
    clip = load_clip(config.clip)
    if clip.fingerprint() != config.clip_fingerprint:
        raise ToydiffError(f"the CLIP at {config.clip} changed since this run was configured")
    return clip


def check_config(config: ImageTrainConfig, mesh) -> None:
    """Raise ToydiffError, before any work, for settings no run can train with
    (``toydiff.engine.loop.check_settings``) or a batch the data or the devices cannot give."""
    check_settings(config)
    parallel.check_batch(config.batch_size, mesh, n_train(config))


def check_output(out, *, resume: bool = False, overwrite: bool = False) -> pathlib.Path:
    """Check, before any training, that a run can be written to ``out``.

    The engine is ``checkpoint.check_output`` (as for the 2D lab and the toy CLIP); an image run
    adds its training state, which ``resume`` continues.

    Raises:
        ToydiffError: ``out`` is a file, cannot be written, holds a run that would be replaced
            (without ``overwrite``), holds nothing to resume (with ``resume``), or both
            ``resume`` and ``overwrite`` are asked for.
    """
    out = pathlib.Path(out)
    if resume and overwrite:
        raise ToydiffError(
            "--resume continues the run in --out and --overwrite replaces it; give one of them"
        )
    missing = not (out.is_dir() and (out / STATE_FILE).is_file())
    if resume and missing and not out.is_file():  # a file is named as such below
        raise ToydiffError(f"nothing to resume: {out} holds no {STATE_FILE}")
    return checkpoint.check_output(
        out,
        overwrite=overwrite or resume,
        filenames=(checkpoint.FILENAME, STATE_FILE),
        hint="pass --resume to continue it or --overwrite to replace it",
    )


def save_state(
    directory, config: ImageTrainConfig, state: TrainState, losses, chunk: int | None = None
) -> pathlib.Path:
    """Write the whole training state atomically to ``directory/state.toydiff``, with the chunk
    length the run trains in (default ``config.chunk``), which a resumed run keeps."""
    host = parallel.fetch((state.params, state.ema, state.opt_state))
    params, ema, opt_state = host
    chunk = config.chunk if chunk is None else chunk
    run = checkpoint.Run(
        config={
            "kind": "images-state",
            "step": state.step,
            "chunk": chunk,
            "train": config.to_dict(),
        },
        params={
            "params": nnx.to_pure_dict(params),
            "ema": nnx.to_pure_dict(ema),
            "opt": dict(enumerate(jax.tree.leaves(opt_state))),
        },
        fingerprint=fingerprint(config),
        loss_history=np.concatenate(losses) if losses else np.zeros(0, np.float32),
    )
    return checkpoint.save_run(directory, run, STATE_FILE)


def load_state(directory, config: ImageTrainConfig) -> tuple[TrainState, list, int]:
    """Read a training state written by ``save_state`` for this run's config.

    Returns (state, [loss history], the chunk length it was trained with: a resumed run keeps
    the same chunk boundaries, so it ends bit for bit where an uninterrupted one does).

    Raises:
        CheckpointError: the file is missing, foreign, or from a run with other settings.
    """
    path = pathlib.Path(directory) / STATE_FILE
    run = checkpoint.load_run(path)
    if run.config.get("kind") != "images-state":
        raise CheckpointError(f"{path} is not an image training state")
    saved = ImageTrainConfig.from_dict(run.config["train"])
    if dataclasses.replace(saved, steps=config.steps, chunk=config.chunk) != config:
        diff = [
            f"{k}={v!r} (saved {getattr(saved, k)!r})"
            for k, v in config.to_dict().items()
            if k not in ("steps", "chunk") and v != saved.to_dict()[k]
        ]
        raise CheckpointError(f"cannot resume {path} with other settings: {', '.join(diff)}")
    _, template = abstract_network(config.net)
    params = restore(template, run.params["params"], path)
    ema = restore(template, run.params["ema"], path)
    opt_template = jax.eval_shape(optimizer(config).init, params)
    leaves = [run.params["opt"][i] for i in range(len(run.params["opt"]))]
    opt_state = jax.tree.unflatten(jax.tree.structure(opt_template), leaves)
    step = int(run.config["step"])
    if step > config.steps:
        raise CheckpointError(f"{path} is at step {step}, past --steps {config.steps}")
    chunk = int(run.config.get("chunk", saved.chunk))  # older states: the config held it
    return TrainState(step, params, ema, opt_state), [run.loss_history], chunk


def train_chunks(
    config: ImageTrainConfig = DIGITS,
    *,
    out=None,
    resume_from: tuple | None = None,
    checkpoint_every: int | None = None,
    chunk: int | None = None,
    mesh=None,
) -> Iterator[ImageModel]:
    """Train an image model, yielding an ``ImageModel`` snapshot after every chunk.

    Args:
        config: the run's settings.
        out: the run directory for periodic checkpoints (written by process 0 only), or None.
        resume_from: (state, losses) from ``load_state``, to continue; None starts afresh.
        checkpoint_every: steps between checkpoints (None: only at the end).
        chunk: steps per compiled chunk (default ``config.chunk``; see ``run_chunks``).
        mesh: the device mesh (default: every device JAX sees).

    Yields:
        The model after each chunk, its weights copied to the host.

    Raises:
        ToydiffError: at once, for settings no run can train with (``check_config``).
    """
    mesh = parallel.make_mesh() if mesh is None else mesh
    check_config(config, mesh)
    return _chunks(config, out, resume_from, checkpoint_every, chunk, mesh)


def _chunks(config, out, resume_from, checkpoint_every, chunk, mesh) -> Iterator[ImageModel]:
    """``train_chunks``'s snapshots, of a checked config."""
    graphdef, _ = abstract_network(config.net)
    if resume_from is not None:
        start, losses = resume_from[0], list(resume_from[1])
    else:
        start, losses = init_state(config, init_params(config.net, config.seed)), []
    if start.step == config.steps:  # resumed at the end: nothing left to train
        yield _snapshot(config, graphdef, start, losses, {})
        return
    start = TrainState(start.step, *parallel.replicate(_arrays(start), mesh))
    lanes = parallel.make_lanes(mesh, config.batch_size, n_train(config), fetcher(config))
    key = jax.random.key(config.seed)
    writer = out is not None and jax.process_index() == 0
    for state, chunk_losses, progress in run_chunks(
        config,
        graphdef,
        lanes,
        start,
        key,
        chunk=chunk,
        every=checkpoint_every,
        compiler_options=compilation.image_options(config.network),
    ):
        losses.append(chunk_losses)
        if writer and (state.step == config.steps or _due(state.step, checkpoint_every)):
            save_state(out, config, state, losses, chunk)
        yield _snapshot(config, graphdef, state, losses, timing(progress))


def _snapshot(config, graphdef, state: TrainState, losses, timing) -> ImageModel:
    """An ``ImageModel`` of the state, its weights copied to the host and back to one device."""
    weights = parallel.fetch(state.ema if config.ema else state.params)
    return ImageModel(
        config, graphdef, jax.tree.map(jax.numpy.asarray, weights), np.concatenate(losses), timing
    )


def _arrays(state: TrainState):
    """The array parts of a training state: (params, ema, opt_state)."""
    return state.params, state.ema, state.opt_state


def _due(step: int, every: int | None) -> bool:
    """Whether a checkpoint falls at ``step``."""
    return bool(every) and step % every == 0


def train(
    config: ImageTrainConfig = DIGITS,
    *,
    out=None,
    resume: bool = False,
    overwrite: bool = False,
    checkpoint_every: int | None = None,
    progress: bool = True,
    callback: Callable[[ImageModel], None] | None = None,
    mesh=None,
) -> ImageModel:
    """Train an image model with a progress bar, and save it to ``out`` (process 0).

    Everything that can be checked is checked before training starts: the output directory, a
    run already there, the batch against the device count. Ctrl-C keeps the last finished chunk
    (and its checkpoint, so ``resume=True`` can continue).

    Args:
        config: the run's settings (default: the digits model).
        out: run directory; None keeps the model in memory only.
        resume: continue the run in ``out`` from its last checkpoint.
        overwrite: replace a run already in ``out``.
        checkpoint_every: steps between checkpoints in ``out``.
        progress: show a progress bar (process 0 only).
        callback: called with each chunk's snapshot.
        mesh: the device mesh (default: every device JAX sees).

    Returns:
        The trained ``ImageModel``.
    """
    mesh = parallel.make_mesh() if mesh is None else mesh
    check_config(config, mesh)
    if out is not None:
        check_output(out, resume=resume, overwrite=overwrite)
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ToydiffError(f"--checkpoint-every must be at least 1, got {checkpoint_every}")
    # Chunk boundaries must include every checkpoint: chunks of a divisor of both periods.
    chunk = math.gcd(config.chunk, checkpoint_every) if checkpoint_every else config.chunk
    resume_from = None
    if resume:  # checked before any work; a resumed run keeps the chunks it began with
        state, losses, chunk = load_state(out, config)
        resume_from = (state, losses)
    snapshots = _chunks(config, out, resume_from, checkpoint_every, chunk, mesh)
    model = follow(
        snapshots,
        config.steps,
        progress=progress and jax.process_index() == 0,
        callback=callback,
        desc=f"training {config.data}",
    )
    if out is not None and jax.process_index() == 0:
        model.save(out, overwrite=True)  # ``out`` was checked before training
    return model


def cached_train(config: ImageTrainConfig = DIGITS, *, progress: bool = True) -> ImageModel:
    """Train once, then load the same image model from the local cache on later calls.

    The cache key covers the config, the data's fingerprint and toydiff's source code.
    """
    return cached(
        [config.to_dict(), fingerprint(config), code_fingerprint(*_defined_by(config.data))],
        ImageModel.load,
        lambda: train(config, progress=progress),
    )


def _defined_by(data: str) -> tuple[str, str]:
    """The modules whose code defines an image model of ``data``: the trainer's, and the data
    set's own file (its captions and vocabulary feed a text condition)."""
    return ("toydiff.images.training", image_data.spec(data).draw.__module__)


def text_model(
    clip=None, *, data: str | None = None, progress: bool = True, **changes
) -> ImageModel:
    """The text-conditioned model of a data set with captions (the shapes, or the clips) on a
    toy CLIP (default: the data set's cached default CLIP).

    Args:
        clip: a saved ``CLIPModel`` (its ``path`` is recorded in the run), or None.
        data: the data set (default: the CLIP's, or the shapes without a CLIP).
        progress: show progress bars while training.
        **changes: settings to change from the data set's text recipe.

    Returns:
        The trained (or cached) ``ImageModel``.
    """
    if data is None:
        data = "shapes" if clip is None else clip.config.data
    if clip is None:
        clip = clip_lib.cached_train(clip_lib.clip_config(data), progress=progress)
    if clip.path is None:
        raise ToydiffError("the CLIP must be saved first: clip.save(DIR), then CLIPModel.load(DIR)")
    config = image_config(data, condition="text", clip=clip.path, **changes)
    return cached_train(config, progress=progress)


def text_prompts(model: ImageModel, held_out: bool = False) -> list[str]:
    """The full captions a text model was trained on (or the held-out ones), shuffled by a
    fixed seed."""
    captions, attrs = image_data.spec(model.config.data).full_captions()
    hidden = [
        any(all(a[k] == v for k, v in combo) for combo in model.config.held_out) for a in attrs
    ]
    chosen = [c for c, h in zip(captions, hidden, strict=True) if h == held_out]
    return [chosen[i] for i in np.random.default_rng(0).permutation(len(chosen))]
