"""A trained image model: its settings, U-Net parameters and loss history in one object.

``ImageModel`` is the image path's ``toydiff.model.Model``: it shares its ``denoiser`` and
``sample`` (``toydiff.engine.sampling.Sampling``), so guidance, negative classes, every sampler
and the exact oracle are the 2D lab's own, now over samples of shape (H, W, C).
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

from toydiff.engine import checkpoint
from toydiff.engine.guidance import DEFAULT_GUIDANCE, IMAGE_NEGATIVE_GUIDANCE
from toydiff.engine.objectives import check_objective
from toydiff.engine.oracle import point_set_oracle
from toydiff.engine.processes import RunSettings
from toydiff.engine.sampling import Sampling
from toydiff.errors import CheckpointError, ToydiffError
from toydiff.images import data as image_data
from toydiff.images import text
from toydiff.nets.unet import UNet, UNetConfig

KIND = "images"
CONDITIONS = ("class", "text", "none")
PROCESSES = ("ve", "vp", "vp-cosine", "flow")


@dataclasses.dataclass(frozen=True)
class ImageTrainConfig(RunSettings):
    """Everything that defines an image run. ``image_config(data)`` gives each data set's defaults.

    Attributes:
        data: ``"digits"`` or ``"shapes"``.
        label_by: the attribute used as the class (digit; shape, colour, size or hat).
        condition: ``"class"`` (a class embedding with a null class), ``"text"`` (the frozen toy
            CLIP's embedding of the caption, with a null embedding) or ``"none"``.
        clip: the toy CLIP run directory (text condition).
        clip_fingerprint: the fingerprint of that CLIP's weights, checked when loading.
        caption_drop: probability of dropping each of the size, colour and hat phrases from a
            training caption (text condition), so a prompt may leave them free.
        held_out: attribute combinations left out of training (text condition), each a tuple
            of (attribute, value) pairs, e.g. (("colour", "blue"), ("shape", "triangle"),
            ("hat", "hat")): every blue triangle wearing a hat.
        n_train: training images (shapes only; None for the default split).
        process: the forward process: ve, vp, vp-cosine or flow.
        sigma_max: the VE process's largest noise level (ignored by the others).
        objective: what the U-Net predicts: eps, x0, v or velocity. Images use v: near the
            cosine schedule's end alpha is 0.0016, so an eps network's x0_hat = (xt - sigma
            eps_hat) / alpha multiplies its error ~600-fold, and our eps samples drifted to
            |x| ~ 200; v-prediction keeps x0_hat bounded (Salimans & Ho 2022).
        naive_dt: step of the naive objective (kept for the shared training loop).
        cond_drop: probability of training on the null class (classifier-free guidance).
        steps: optimiser steps.
        batch_size: global batch; must divide by the number of devices.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        ema: decay of the weight average that sampling uses.
        seed: seed of the initialisation and of every draw in training.
        chunk: steps per compiled chunk (progress is reported between chunks).
        net: the U-Net's shape, including its compute dtype.
    """

    data: str = "digits"
    label_by: str = "digit"
    condition: str = "class"
    clip: str = ""
    clip_fingerprint: str = ""
    caption_drop: float = 0.5
    held_out: tuple = ()
    n_train: int | None = None
    process: str = "vp-cosine"
    sigma_max: float = 80.0
    objective: str = "v"
    naive_dt: float = 0.01
    cond_drop: float = 0.1
    steps: int = 500
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    ema: float = 0.995
    seed: int = 0
    chunk: int = 50
    net: UNetConfig = UNetConfig(channels=(16, 32), num_classes=10)

    def __post_init__(self):
        try:
            check_objective(self.objective)
            self.make_process()
            self.net.check()
        except ValueError as err:
            raise ToydiffError(str(err)) from None
        if self.objective == "naive":
            raise ToydiffError("the naive objective is a 2D teaching device; use eps, x0 or v")

    @classmethod
    def from_dict(cls, d: dict) -> ImageTrainConfig:
        """Rebuild a config from ``to_dict``'s output."""
        net = dict(d.get("net", {}))
        net["channels"] = tuple(net.get("channels", UNetConfig.channels))
        held_out = tuple(tuple(tuple(pair) for pair in combo) for combo in d.get("held_out", ()))
        return cls(**{**d, "net": UNetConfig(**net), "held_out": held_out})


DIGITS = ImageTrainConfig()
"""The digits model: 8x8, conditional on the digit; a U-Net of 16 and 32 channels (121k
parameters), VP cosine, v-prediction, 500 steps of 128 images."""

SHAPES = ImageTrainConfig(
    data="shapes",
    label_by="shape",
    steps=1200,
    batch_size=64,
    net=UNetConfig(size=16, in_channels=3, patch=2, channels=(32, 64), num_classes=3),
)
"""The shapes model: 16x16 RGB, conditional on the shape; 2x2 patches, a U-Net of 32 and 64
channels (388k parameters), 1,200 steps of 64 images. (The text-conditioned model,
``image_config("shapes", condition="text", ...)``, trains ``TEXT_STEPS``.)"""

TEXT_STEPS = 2000
"""Training steps of the text-conditioned model: it must get every attribute right, not only
the shape. Measured here at w = 3: 93% of the seen prompts right and 67% of the held-out
combinations after 2,000 steps; 92% and 50% after 1,600."""

HELD_OUT = (
    (("colour", "blue"), ("shape", "triangle"), ("hat", "hat")),
    (("size", "small"), ("colour", "yellow"), ("shape", "circle")),
)
"""Combinations the text model never sees: every blue triangle wearing a hat, and every small
yellow circle (with or without a hat)."""


def image_config(data: str, **changes) -> ImageTrainConfig:
    """The default config of a data set with ``changes`` applied.

    ``size``, ``label_by`` and ``condition`` reshape the U-Net to match (input size, channels
    and number of classes); other keys are fields of ``ImageTrainConfig`` or of its ``net``.

    Raises:
        ToydiffError: an unknown data set, attribute, size or setting.
    """
    if data not in image_data.NAMES:
        raise ToydiffError(f"unknown image data {data!r}; allowed: {', '.join(image_data.NAMES)}")
    base = DIGITS if data == "digits" else SHAPES
    net_changes = {k: changes.pop(k) for k in list(changes) if k in _NET_FIELDS}
    size = changes.pop("size", None)
    config = dataclasses.replace(base, **changes)
    if config.condition not in CONDITIONS:
        raise ToydiffError(
            f"unknown condition {config.condition!r}; allowed: {', '.join(CONDITIONS)}"
        )
    info = image_data.meta(data, size, config.label_by)
    cond_dim = 0
    if config.condition == "text":
        config = dataclasses.replace(config, steps=changes.get("steps", TEXT_STEPS))
        clip = _clip_of(config)
        if (clip.config.data, clip.config.size) != (data, info["shape"][0]):
            raise ToydiffError(
                f"the CLIP at {config.clip} reads {clip.config.data} at "
                f"{clip.config.size}x{clip.config.size}, not {data} at {info['shape'][0]}"
            )
        cond_dim = clip.config.embed_dim
        held_out = config.held_out if "held_out" in changes else HELD_OUT
        config = dataclasses.replace(
            config,
            clip_fingerprint=clip.fingerprint(),
            held_out=held_out if data == "shapes" else (),
        )
    net = dataclasses.replace(
        config.net,
        size=info["shape"][0],
        in_channels=info["shape"][2],
        num_classes=len(info["class_names"]) if config.condition == "class" else 0,
        cond_dim=cond_dim,
        **net_changes,
    )
    return dataclasses.replace(config, net=net)


def _clip_of(config: ImageTrainConfig):
    """The toy CLIP a text-conditioned config names; ToydiffError if there is none."""
    from toydiff.images.clip import CLIPModel

    if not config.clip:
        raise ToydiffError("--condition text needs --clip DIR (a run made by `toydiff clip train`)")
    return CLIPModel.load(config.clip)


_NET_FIELDS = {f.name for f in dataclasses.fields(UNetConfig)} - {"size", "num_classes"}


@dataclasses.dataclass(frozen=True, eq=False)
class ImageModel(Sampling):
    """A trained (or training) image model.

    Attributes:
        config: the run's settings.
        graphdef: the U-Net's graph definition.
        params: the weights sampling uses (the average, when ``config.ema`` > 0).
        losses: the loss of every step so far, shape (steps,).
        timing: seconds spent compiling and training, and steps per second.
        interrupted: True if training stopped early (Ctrl-C).
    """

    config: ImageTrainConfig
    graphdef: nnx.GraphDef
    params: nnx.State
    losses: np.ndarray
    timing: dict = dataclasses.field(default_factory=dict)
    interrupted: bool = False
    default_n = 64  # a class attribute, not a field: an 8x8 grid when no n is given

    @property
    def sample_chunk(self) -> int:
        """Sampler batches of at most 128 images on a CPU, 1,024 on an accelerator (see
        ``Sampling.sample_chunk``): every n then reuses one of a few compiled samplers."""
        return 128 if jax.default_backend() == "cpu" else 1024

    @property
    def num_params(self) -> int:
        """Scalar parameters of the U-Net."""
        return param_count(self.config.net)

    def default_guidance(self, negative) -> float:
        """w = 3, or ``guidance.IMAGE_NEGATIVE_GUIDANCE`` (2) with a negative."""
        return DEFAULT_GUIDANCE if negative is None else IMAGE_NEGATIVE_GUIDANCE

    @functools.cached_property
    def dataset(self) -> image_data.ImageSet:
        """The training images (loaded on first use)."""
        return load_split(self.config, "train")

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """The shape of one image, (H, W, C)."""
        return self.config.net.dim

    conditional_hint = "`toydiff images train --condition class`"

    @property
    def conditional(self) -> bool:
        """Whether the run takes a condition (a class or a prompt)."""
        return self.config.condition != "none"

    @property
    def condition_words(self) -> tuple[str, str]:
        """("prompt", "negative prompt") for a text run, else ("label", "negative")."""
        if self.config.condition == "text":
            return ("prompt", "negative prompt")
        return ("label", "negative")

    @property
    def network_floats(self) -> int:
        """The U-Net's working numbers per image in one guided step: 64 per number of its
        feature maps (each level's H x W x channels, after the patches), which covers the
        skip connections kept for the way up, the 3x3 patches of the matmul convolutions and
        the two calls of a guided step.

        XLA's plan on the CPU (``memory_analysis()`` of a guided DDPM sampler on 128 images)
        came to 86k numbers per image for the digits U-Net (this gives 98k) and 167k for the
        shapes U-Net (196k).
        """
        net = self.config.net
        side = net.size // net.patch
        return 64 * sum((side >> level) ** 2 * c for level, c in enumerate(net.channels))

    @property
    def training_size(self) -> int:
        """The number of training images."""
        return int(self.dataset.x.shape[0])

    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of the classes the model is conditioned on (none for text or no condition)."""
        if self.config.condition != "class":
            return ()
        return image_data.meta(self.config.data, self.config.net.size, self.config.label_by)[
            "class_names"
        ]

    @functools.cached_property
    def clip(self):
        """The frozen toy CLIP of a text-conditioned run, checked against its training CLIP."""
        clip = _clip_of(self.config)
        if clip.fingerprint() != self.config.clip_fingerprint:
            raise ToydiffError(
                f"the CLIP at {self.config.clip} is not the one this run was trained with "
                f"(weights {clip.fingerprint()}, expected {self.config.clip_fingerprint})"
            )
        return clip

    def with_clip(self, directory) -> ImageModel:
        """The same run reading its prompts with the CLIP in ``directory`` (checked on use)."""
        return dataclasses.replace(
            self, config=dataclasses.replace(self.config, clip=str(directory))
        )

    def condition(self, label):
        """A class name or id, or a prompt (or a list of them, one per sample), as the network's
        condition: class ids, or CLIP text embeddings. None stays None.

        Raises:
            ToydiffError: an unknown class, a bad prompt, or a label the run cannot take.
        """
        if label is None:
            return None
        kind = self.config.condition
        if kind == "none":
            raise ToydiffError(
                f"this run was trained without a condition, so {label!r} cannot be used"
            )
        many = isinstance(label, list | tuple | np.ndarray)
        if kind == "text":
            prompts = [str(p) for p in label] if many else str(label)
            for p in prompts if many else [prompts]:
                text.attributes(p, self.config.data)  # every word problem, before any work
            return self.clip.encode_texts(prompts)
        if many:
            return np.array([self.condition(item) for item in label], np.int32)
        return image_data.class_id(label, self.class_names, self.config.label_by, self.config.data)

    def oracle(self, label):
        """The exact denoiser of the training images: all, one class, or the images whose
        attributes match a prompt (a name, or one per sample)."""
        ds = self.dataset
        if self.config.condition != "text" or label is None:
            return point_set_oracle(self.process, ds.x, ds.labels, self.condition(label))
        prompts = label if isinstance(label, list | tuple | np.ndarray) else [label]
        keep = np.stack([matches(ds, text.attributes(p, ds.name)) for p in prompts])
        if not keep.any(axis=1).all():
            raise ToydiffError("no training image matches the prompt, so the oracle has nothing")
        return point_set_oracle(self.process, ds.x, mask=keep)

    def save(self, directory, *, overwrite: bool = False) -> pathlib.Path:
        """Write the run atomically to ``directory/run.toydiff``; returns the file path.

        A run already there is refused (a ToydiffError naming it) unless ``overwrite``.
        """
        run = checkpoint.Run(
            config={"kind": KIND, **self.config.to_dict(), "interrupted": self.interrupted},
            params=nnx.to_pure_dict(self.params),
            fingerprint=fingerprint(self.config),
            loss_history=np.asarray(self.losses, np.float32),
        )
        return checkpoint.save_run(directory, run, overwrite=overwrite)

    @classmethod
    def load(cls, path) -> ImageModel:
        """Read a run saved by ``save``; raises CheckpointError for a bad or foreign run."""
        run = checkpoint.load_run(path)
        config, interrupted = config_of(run, path)
        if run.fingerprint != fingerprint(config):
            raise CheckpointError(
                f"the data of the run at {path} no longer matches its fingerprint"
            )
        graphdef, params = abstract_network(config.net)
        params = restore(params, run.params, path)
        return cls(config, graphdef, params, run.loss_history, {}, interrupted)


def config_of(run: checkpoint.Run, path) -> tuple[ImageTrainConfig, bool]:
    """The config of a saved image run (and its interrupted flag); CheckpointError if foreign."""
    cfg = dict(run.config)
    kind = cfg.pop("kind", None)
    if kind != KIND:
        raise CheckpointError(
            f"{path} is a 2D run, not an image run; sample it with `toydiff sample --run ...`"
        )
    interrupted = bool(cfg.pop("interrupted", False))
    try:
        return ImageTrainConfig.from_dict(cfg), interrupted
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path} has an unreadable config: {err}") from None


def load_split(config: ImageTrainConfig, split: str) -> image_data.ImageSet:
    """The training or held-out images of a run's data set (without held-out combinations)."""
    images = image_data.load(
        config.data, split, size=config.net.size, label_by=config.label_by, n=config.n_train
    )
    if split == "train" and config.held_out:
        images = images.take(~held_out_mask(images, config.held_out))
    return images


def matches(images: image_data.ImageSet, named: dict) -> np.ndarray:
    """Which images have every attribute ``named`` (name -> value name); (n,) bool."""
    keep = np.ones(len(images.x), bool)
    for attribute, value in named.items():
        keep &= images.attributes[attribute] == images.values[attribute].index(value)
    return keep


def held_out_mask(images: image_data.ImageSet, held_out) -> np.ndarray:
    """Which images belong to a held-out combination; (n,) bool."""
    hit = np.zeros(len(images.x), bool)
    for combo in held_out:
        hit |= matches(images, dict(combo))
    return hit


def fingerprint(config: ImageTrainConfig) -> str:
    """A fingerprint of the run's training data (the data set, size, split and classes)."""
    if config.data == "digits":
        return load_split(config, "train").fingerprint()
    idx = image_data.shape_indices("train", config.n_train)
    probe = image_data.shapes(size=config.net.size, indices=idx[:: max(1, len(idx) // 64)])
    held = f"-{len(config.held_out)}" if config.held_out else ""
    return f"shapes-{config.net.size}-{len(idx)}{held}-{config.label_by}-{probe.fingerprint()[:16]}"


@functools.cache
def abstract_network(net: UNetConfig):
    """The U-Net's graph definition and a parameter state of the right shapes (no values)."""
    return nnx.split(nnx.eval_shape(lambda: UNet(net)), nnx.Param)


def init_params(net: UNetConfig, seed: int):
    """The U-Net's initial parameters (drawn on the host in milliseconds; see ``layers``)."""
    return nnx.split(UNet(net, seed), nnx.Param)[1]


def restore(template, pure: dict, path):
    """Fill a parameter state of the right shapes from a saved pure dict."""
    template = jax.tree.map(lambda a: a, template)
    try:
        nnx.replace_by_pure_dict(template, pure)
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path} does not match its network shape: {err}") from None
    leaves = jax.tree.leaves(template)
    if any(isinstance(a, jax.ShapeDtypeStruct) for a in leaves):
        raise CheckpointError(f"{path} lacks some of its network's parameters")
    return jax.tree.map(jnp.asarray, template)


def param_count(net: UNetConfig) -> int:
    """Scalar parameters of a U-Net."""
    return sum(math.prod(a.shape) for a in jax.tree.leaves(abstract_network(net)[1]))
