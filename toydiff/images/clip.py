"""A toy CLIP: pictures and captions mapped into one space, trained contrastively.

Two encoders end in L2-normalised vectors of ``embed_dim`` (32) numbers:

- the image encoder, a small CNN: three 3x3 convolutions with group norm and SiLU, halving the
  resolution twice, a mean over positions and a linear map;
- the text encoder: a learned vector per vocabulary word (``text``), averaged over the caption's
  content words, then a two-layer MLP.

Training uses the symmetric contrastive loss of Radford et al. (2021) over the batch's cosine
similarity matrix, scaled by a learned temperature kept as its logarithm and clamped so the
scale stays at most 100, as CLIP does. A batch of shapes holds many repeats of each caption
(48 captions, 256 images), so the one-positive-per-row target of CLIP would call a matching
caption a negative. We treat every image whose caption is the same as a positive instead: the
target of each row is uniform over its matching captions (and of each column over its matching
images).

Training runs through the lab's training engine (``toydiff.training.run_chunks``) on the same
data-parallel mesh as the image models; only the loss differs (``contrastive_loss``).

Reference: Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", ICML 2021.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from toydiff.engine import checkpoint, parallel
from toydiff.engine.cache import cache_entry, cached, code_fingerprint
from toydiff.engine.loop import check_settings, follow, init_state, run_chunks, timing
from toydiff.errors import CheckpointError, ToydiffError
from toydiff.images import data as image_data
from toydiff.images import text
from toydiff.images.config import CLIPConfig
from toydiff.nets.layers import Conv3x3, Dense, GroupNorm
from toydiff.nets.params import restore
from toydiff.nets.unet import downsample

KIND = "clip"
MAX_SCALE = 100.0
SHAPES_CLIP = image_data.spec("shapes").clip_recipe
"""The default toy CLIP: the shapes data set's (``images.data.shapes.SPEC.clip_recipe``)."""


def clip_config(data: str = "shapes", **changes) -> CLIPConfig:
    """The default toy CLIP of a data set (its spec's ``clip_recipe``), with ``changes``.

    Raises:
        ToydiffError: an unknown data set, one without captions, or a size it cannot have.
    """
    spec = image_data.spec(data).available()
    if spec.clip_recipe is None:
        raise ToydiffError(
            f"{data} has no captions to train a toy CLIP on; data sets with captions: "
            f"{', '.join(n for n, s in image_data.REGISTRY.items() if s.captioned)}"
        )
    size = spec.check_size(changes.pop("size", None))
    return dataclasses.replace(spec.clip_recipe, size=size, **changes)


class ImageEncoder(nnx.Module):
    """A small CNN: (n, H, W, C) -> (n, D), not yet normalised.

    A clip (n, F, H, W, C) is read as one image whose channels are its frames' channels
    stacked (n, H, W, F C), so the first convolution sees every frame at once: motion is the
    difference between channels, which a 3x3 filter reads as easily as a colour.
    """

    def __init__(self, config: CLIPConfig, rng):
        w = config.width
        self.convs = nnx.List(
            [
                Conv3x3(config.channels * max(config.frames, 1), w // 2, rng),
                Conv3x3(w // 2, w, rng),
                Conv3x3(w, w, rng),
            ]
        )
        self.norms = nnx.List([GroupNorm(w // 2, 8), GroupNorm(w, 8), GroupNorm(w, 8)])
        self.out = Dense(w, config.embed_dim, rng)

    def __call__(self, x):
        if x.ndim == 5:  # a clip: frames stacked as channels
            n, f, height, width, c = x.shape
            x = x.transpose(0, 2, 3, 1, 4).reshape(n, height, width, f * c)
        h = x
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            h = nnx.silu(norm(conv(h)))
            if i < 2:
                h = downsample(h)
        return self.out(h.mean(axis=(1, 2)))


class TextEncoder(nnx.Module):
    """Word vectors averaged over the content words, then an MLP: (n, T) ids -> (n, D)."""

    def __init__(self, config: CLIPConfig, rng):
        vocab = len(text.vocabulary(config.data))
        self.words = nnx.Param(
            jnp.asarray(rng.standard_normal((vocab + 1, config.width), np.float32))
        )
        self.hidden = Dense(config.width, config.width, rng)
        self.out = Dense(config.width, config.embed_dim, rng)

    def __call__(self, tokens):
        mask = (tokens != text.PAD)[..., None].astype(jnp.float32)  # (n, T, 1)
        mean = (self.words[...][tokens] * mask).sum(1) / jnp.maximum(mask.sum(1), 1.0)
        return self.out(nnx.silu(self.hidden(mean)))


class ToyCLIP(nnx.Module):
    """The two encoders and the learned temperature (its logarithm, ``log_scale``)."""

    def __init__(self, config: CLIPConfig, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.image = ImageEncoder(config, rng)
        self.text = TextEncoder(config, rng)
        self.log_scale = nnx.Param(jnp.asarray(math.log(1 / 0.07), jnp.float32))

    def scale(self):
        """exp(log_scale), clamped at 100."""
        return jnp.exp(jnp.minimum(self.log_scale[...], math.log(MAX_SCALE)))

    def encode_images(self, x):
        """L2-normalised image embeddings (n, D) of images (n, H, W, C)."""
        return _normalise(self.image(x))

    def encode_texts(self, tokens):
        """L2-normalised text embeddings (n, D) of token ids (n, T)."""
        return _normalise(self.text(tokens))


def _normalise(z):
    return z / jnp.linalg.norm(z, axis=-1, keepdims=True).clip(1e-6)


def contrastive_loss(params, graphdef, key, x, tokens):
    """The symmetric contrastive loss, every matching caption counted as a positive.

    Args:
        params: the CLIP's parameters.
        graphdef: its graph definition.
        key: unused (the loss is deterministic; kept for the training engine's signature).
        x: images (B, H, W, C).
        tokens: their captions' token ids (B, T).

    Returns:
        (loss, per_example (B,)): the mean over both directions, and each image's share.
    """
    del key
    model = nnx.merge(graphdef, params)
    logits = model.scale() * model.encode_images(x) @ model.encode_texts(tokens).T  # (B, B)
    same = jnp.all(tokens[:, None, :] == tokens[None, :, :], axis=-1)
    per_example = symmetric_cross_entropy(logits, same)
    return per_example.mean(), per_example


def symmetric_cross_entropy(logits, same):
    """CLIP's loss with many positives: each row's target is uniform over its matching columns.

    Args:
        logits: scaled similarities (B, B), images by rows and captions by columns.
        same: (B, B) bool, True where image i's caption equals caption j (symmetric, with a
            true diagonal).

    Returns:
        Per-example losses (B,): the mean of the image-to-text and text-to-image cross
        entropies. With one positive per row this is exactly CLIP's loss; its minimum is
        log(number of matching captions), not 0.
    """
    targets = same.astype(jnp.float32)
    targets = targets / targets.sum(axis=1, keepdims=True)  # "same" is symmetric: rows = columns
    image_to_text = -jnp.sum(targets * jax.nn.log_softmax(logits, axis=1), axis=1)
    text_to_image = -jnp.sum(targets * jax.nn.log_softmax(logits.T, axis=1), axis=1)
    return 0.5 * (image_to_text + text_to_image)


@dataclasses.dataclass(frozen=True, eq=False)
class CLIPModel:
    """A trained toy CLIP and what it is for: embeddings, similarities, zero-shot labels.

    Attributes:
        config: its settings.
        graphdef: the graph definition of ``ToyCLIP``.
        params: its parameters.
        losses: the loss of every training step.
        timing: compile and training seconds.
        interrupted: training stopped early.
        path: the run directory it was saved to or loaded from (None: only in memory).
    """

    config: CLIPConfig
    graphdef: nnx.GraphDef
    params: nnx.State
    losses: np.ndarray
    timing: dict = dataclasses.field(default_factory=dict)
    interrupted: bool = False
    path: str | None = None

    @property
    def steps(self) -> int:
        """Training steps done."""
        return int(len(self.losses))

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """The content words this CLIP knows."""
        return text.vocabulary(self.config.data)

    @property
    def temperature(self) -> float:
        """1 / scale: the softmax temperature of its similarities."""
        return float(1.0 / _scale(self.graphdef, self.params))

    def encode_images(self, x) -> np.ndarray:
        """Embeddings (n, D) of images (n, H, W, C) or clips (n, F, H, W, C) in [-1, 1]."""
        x = np.asarray(x, np.float32)
        c = self.config
        want = (*((c.frames,) if c.frames else ()), c.size, c.size, c.channels)
        if x.ndim != len(want) + 1 or x.shape[1:] != want:
            what = "clips" if c.frames else "images"
            raise ToydiffError(f"this CLIP reads {what} of shape {want}, got {x.shape[1:]}")
        return np.concatenate(
            [
                np.asarray(_images(self.graphdef, self.params, x[s : s + 512]))
                for s in range(0, len(x), 512)
            ]
        )

    def encode_texts(self, prompts) -> np.ndarray:
        """Embeddings (n, D) of prompts (a list), or (D,) of one prompt."""
        tokens = text.tokenize(prompts, self.config.data)
        single = tokens.ndim == 1
        z = np.asarray(_texts(self.graphdef, self.params, np.atleast_2d(tokens)))
        return z[0] if single else z

    def fingerprint(self) -> str:
        """A fingerprint of the parameters (a diffusion run records the CLIP it was trained on)."""
        import hashlib

        h = hashlib.sha256()
        for leaf in jax.tree.leaves(self.params):
            h.update(np.asarray(leaf).tobytes())
        return h.hexdigest()[:16]

    def save(self, directory, *, overwrite: bool = False) -> pathlib.Path:
        """Write the CLIP atomically to ``directory/run.toydiff``.

        A run already there is refused (a ToydiffError naming it) unless ``overwrite``.
        """
        run = checkpoint.Run(
            config={"kind": KIND, **self.config.to_dict(), "interrupted": self.interrupted},
            params=nnx.to_pure_dict(self.params),
            fingerprint=f"{self.config.data}-{self.config.size}",
            loss_history=np.asarray(self.losses, np.float32),
        )
        return checkpoint.save_run(directory, run, overwrite=overwrite)

    @classmethod
    def load(cls, path) -> CLIPModel:
        """Read a CLIP saved by ``save``; CheckpointError for anything else."""
        run = checkpoint.load_run(path)
        cfg = dict(run.config)
        kind = cfg.pop("kind", None)
        if kind != KIND:
            what = "an image run" if kind else "a 2D run"
            raise CheckpointError(
                f"{path} is {what}, not a toy CLIP; train one with `toydiff clip train`"
            )
        interrupted = bool(cfg.pop("interrupted", False))
        if "channels" not in cfg and cfg.get("data") in image_data.REGISTRY:
            cfg["channels"] = image_data.spec(cfg["data"]).channels  # a CLIP saved before 0.2
        try:
            config = CLIPConfig(**cfg)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{path} has an unreadable config: {err}") from None
        graphdef, template = abstract_clip(config)
        params = restore(template, run.params, path)
        directory = pathlib.Path(path)
        directory = directory if directory.is_dir() else directory.parent
        return cls(config, graphdef, params, run.loss_history, {}, interrupted, str(directory))


@functools.cache
def abstract_clip(config: CLIPConfig):
    """The CLIP's graph definition and a parameter state of the right shapes."""
    return nnx.split(nnx.eval_shape(lambda: ToyCLIP(config)), nnx.Param)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _images(graphdef, params, x):
    return nnx.merge(graphdef, params).encode_images(x)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _texts(graphdef, params, tokens):
    return nnx.merge(graphdef, params).encode_texts(tokens)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _scale(graphdef, params):
    return nnx.merge(graphdef, params).scale()


# Data: every image with its caption's tokens.


def training_images(config: CLIPConfig, split: str = "train") -> image_data.ImageSet:
    """The images a CLIP trains on (or is tested on)."""
    return image_data.load(config.data, split, size=config.size)


def caption_tokens(images: image_data.ImageSet) -> np.ndarray:
    """Token ids (n, T) of the images' captions."""
    return text.tokenize(text.captions(images), images.name)


def train(config: CLIPConfig = SHAPES_CLIP, *, progress: bool = True, mesh=None) -> CLIPModel:
    """Train a toy CLIP on the training split, with a progress bar.

    Args:
        config: the settings.
        progress: show a progress bar (process 0).
        mesh: the device mesh (default: every device).

    Returns:
        The trained ``CLIPModel``.
    """
    check_settings(config)
    mesh = parallel.make_mesh() if mesh is None else mesh
    images = training_images(config)
    parallel.check_batch(config.batch_size, mesh, len(images.x))
    graphdef, params = nnx.split(ToyCLIP(config, config.seed), nnx.Param)
    tokens = caption_tokens(images)
    lanes = parallel.make_lanes(
        mesh, config.batch_size, len(images.x), lambda idx: (images.x[idx], tokens[idx])
    )
    start = init_state(config, params)
    start = dataclasses.replace(
        start,
        **dict(
            zip(
                ("params", "ema", "opt_state"),
                parallel.replicate((start.params, start.ema, start.opt_state), mesh),
                strict=True,
            )
        ),
    )

    def snapshots():
        losses = []
        for state, chunk, prog in run_chunks(
            config, graphdef, lanes, start, jax.random.key(config.seed), loss=contrastive_loss
        ):
            losses.append(chunk)
            weights = jax.tree.map(jnp.asarray, parallel.fetch(state.params))
            yield CLIPModel(config, graphdef, weights, np.concatenate(losses), timing(prog))

    return follow(
        snapshots(),
        config.steps,
        progress=progress and jax.process_index() == 0,
        desc="training CLIP",
    )


def cached_train(config: CLIPConfig = SHAPES_CLIP, *, progress: bool = True) -> CLIPModel:
    """Train once, then load the same CLIP from the local cache."""
    code = code_fingerprint("toydiff.images.clip", image_data.spec(config.data).draw.__module__)
    parts = [{"clip": config.to_dict()}, code]
    model = cached(parts, CLIPModel.load, lambda: train(config, progress=progress))
    return dataclasses.replace(model, path=str(cache_entry(parts)))


def untrained(config: CLIPConfig = SHAPES_CLIP) -> CLIPModel:
    """A CLIP with its initial, random weights (to see the similarity matrix before training)."""
    graphdef, params = nnx.split(ToyCLIP(config, config.seed), nnx.Param)
    return CLIPModel(config, graphdef, params, np.zeros(0, np.float32))
