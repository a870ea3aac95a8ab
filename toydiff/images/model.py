"""A trained image model: its settings, network parameters and loss history in one object.

``ImageModel`` is the image path's ``toydiff.model.Model``: it shares its ``denoiser`` and
``sample`` (``toydiff.engine.sampling.Sampling``), so guidance, negative classes, every sampler
and the exact oracle are the 2D lab's own, now over samples of shape (H, W, C).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib

import jax
import numpy as np
from flax import nnx

from toydiff.engine import checkpoint, compilation
from toydiff.engine.guidance import DEFAULT_GUIDANCE, IMAGE_NEGATIVE_GUIDANCE
from toydiff.engine.oracle import point_set_oracle
from toydiff.engine.sampling import Sampling
from toydiff.errors import CheckpointError, ToydiffError
from toydiff.images import data as image_data
from toydiff.images import text
from toydiff.images.clip import CLIPModel
from toydiff.images.config import CONDITIONS, ImageTrainConfig
from toydiff.nets import NETWORKS, network_of
from toydiff.nets.params import count, restore

KIND = "images"

SAMPLE_WORK = {"cpu": 2.5e9, "accelerator": 1e11}
"""FLOPs of one forward pass of a sampler call: enough to keep every core busy (a 2-core CPU ran
the digits U-Net at 1.5x the images per second in calls of 512 images as in calls of 128), few
enough that a call's memory stays small and n rounds up to few compiled sizes."""

DIGITS = image_data.spec("digits").recipe
"""The digits model (``images.data.digits.RECIPE``)."""

SHAPES = image_data.spec("shapes").recipe
"""The shapes model (``images.data.shapes.RECIPE``)."""


def image_config(data: str, **changes) -> ImageTrainConfig:
    """The default config of a data set (its spec's ``recipe``) with ``changes`` applied.

    ``network`` picks the network ("unet" or "dit"; default: the data set's own), starting from
    the data set's recipe for it (``DataSpec.recipes``). ``size``, ``label_by`` and
    ``condition`` reshape the network to match (input size, channels and number of classes);
    other keys are fields of ``ImageTrainConfig`` or of its ``net``. A text condition applies
    the data set's ``text_recipe`` (its steps and held-out combinations) and records the
    fingerprint of the CLIP it names.

    Raises:
        ToydiffError: an unknown data set, network, attribute, size or setting, a setting of
            another network, or a text condition on a data set without captions or with a CLIP
            of another data set or size.
    """
    spec = image_data.spec(data).available()
    base = recipe_for(spec, changes.pop("network", None))
    fields = _net_fields(type(base.net))
    net_changes = {k: changes.pop(k) for k in list(changes) if k in fields}
    other = _ALL_NET_FIELDS - fields - {"size", "num_classes"}
    stray = [k for k in changes if k in other]
    if stray:
        raise ToydiffError(
            f"{', '.join(stray)} is a setting of another network, not of {base.network}"
        )
    size = spec.check_size(changes.pop("size", None))
    condition = changes.get("condition", base.condition)
    if condition not in CONDITIONS:
        raise ToydiffError(f"unknown condition {condition!r}; allowed: {', '.join(CONDITIONS)}")
    label_by = spec.check_label_by(changes.pop("label_by", None))
    cond_dim = 0
    if condition == "text":
        if spec.text_recipe is None:
            raise ToydiffError(f"{data} has no captions, so it cannot take --condition text")
        changes = {**spec.text_recipe, **changes}
        clip = load_clip(changes.get("clip", ""))
        if (clip.config.data, clip.config.size) != (data, size):
            raise ToydiffError(
                f"the CLIP at {changes['clip']} reads {clip.config.data} at "
                f"{clip.config.size}x{clip.config.size}, not {data} at {size}"
            )
        cond_dim = clip.config.embed_dim
        changes["clip_fingerprint"] = clip.fingerprint()
    net = dataclasses.replace(
        base.net,
        size=size,
        in_channels=spec.channels,
        num_classes=len(spec.attributes[label_by]) if condition == "class" else 0,
        cond_dim=cond_dim,
        **net_changes,
    )
    return dataclasses.replace(base, data=data, label_by=label_by, **changes, net=net)


def recipe_for(spec, network: str | None) -> ImageTrainConfig:
    """A data set's default config for a network (None: its own default network).

    Raises:
        ToydiffError: an unknown network, or one the data set has no recipe for.
    """
    if network is None or network == spec.recipe.network:
        return spec.recipe
    NETWORKS.check(network)
    if network not in spec.recipes:
        allowed = ", ".join([spec.recipe.network, *spec.recipes])
        raise ToydiffError(f"{spec.name} has no {network} recipe; networks for it: {allowed}")
    return spec.recipes[network]


def _net_fields(config_class) -> set:
    """The settings of a network config class that a change may name."""
    return {f.name for f in dataclasses.fields(config_class)} - {"size", "num_classes"}


_ALL_NET_FIELDS = set().union(*(_net_fields(n.config) for n in NETWORKS.values()))


def load_clip(directory):
    """The toy CLIP a text-conditioned config names; ToydiffError if there is none."""
    if not directory:
        raise ToydiffError("--condition text needs --clip DIR (a run made by `toydiff clip train`)")
    return CLIPModel.load(directory)


@dataclasses.dataclass(frozen=True, eq=False)
class ImageModel(Sampling):
    """A trained (or training) image model.

    Attributes:
        config: the run's settings.
        graphdef: the network's graph definition.
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
        """Images per sampler call, sized by work (see ``Sampling.sample_chunk``): the largest
        power of two whose forward pass stays within ``SAMPLE_WORK`` FLOPs on this backend,
        between 8 and 4,096. The digits U-Net (4.1 MFLOP an image) samples 512 at a time on a
        CPU, so 50 of each digit are one call; the 32x32 shapes U-Net (17 MFLOP), 128."""
        work = SAMPLE_WORK["cpu" if jax.default_backend() == "cpu" else "accelerator"]
        fit = max(1, int(work // network_of(self.config.net).forward_flops(self.config.net)))
        return min(4096, max(8, 1 << (fit.bit_length() - 1)))

    @property
    def compiler_options(self) -> dict | None:
        """The image path's XLA options for its network's samplers
        (``compilation.image_options``)."""
        return compilation.image_options(self.config.network)

    @property
    def num_params(self) -> int:
        """Scalar parameters of the network."""
        return param_count(self.config.net)

    def default_guidance(self, negative) -> float:
        """w = 3, or ``guidance.IMAGE_NEGATIVE_GUIDANCE`` (2) with a negative."""
        return DEFAULT_GUIDANCE if negative is None else IMAGE_NEGATIVE_GUIDANCE

    @functools.cached_property
    def dataset(self) -> image_data.ImageSet:
        """The training images (loaded on first use)."""
        return load_split(self.config, "train")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one image, (H, W, C), or of one clip, (F, H, W, C)."""
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
        """The network's working numbers per sample in one guided step (its registry entry's
        ``working_floats``)."""
        return network_of(self.config.net).working_floats(self.config.net)

    @property
    def training_size(self) -> int:
        """The number of training images."""
        return int(self.dataset.x.shape[0])

    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of the classes the model is conditioned on (none for text or no condition)."""
        if self.config.condition != "class":
            return ()
        return image_data.spec(self.config.data).attributes[self.config.label_by]

    @functools.cached_property
    def clip(self):
        """The frozen toy CLIP of a text-conditioned run, checked against its training CLIP."""
        clip = load_clip(self.config.clip)
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
        keep = np.stack(
            [matches(ds.attributes, ds.values, text.attributes(p, ds.name)) for p in prompts]
        )
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


def training_indices(config: ImageTrainConfig) -> np.ndarray:
    """The indices of a run's training images in its data set, held-out combinations left out
    (decided from the attributes alone, so no image is drawn to find them)."""
    spec = image_data.spec(config.data)
    idx = spec.split("train", config.n_train)
    if not config.held_out:
        return idx
    return idx[~held_out_mask(spec.attribute_ids(idx), spec.attributes, config.held_out)]


def load_split(config: ImageTrainConfig, split: str) -> image_data.ImageSet:
    """The training or held-out images of a run's data set (without held-out combinations)."""
    spec = image_data.spec(config.data)
    if split != "train":
        return spec.load(split, size=config.net.size, label_by=config.label_by, n=config.n_train)
    images = spec.draw(training_indices(config), config.net.size)
    return dataclasses.replace(images, label_by=config.label_by)


def matches(attributes: dict, values: dict, named: dict) -> np.ndarray:
    """Which images have every attribute ``named`` (name -> value name); (n,) bool.

    Args:
        attributes: attribute name -> value ids of the images, (n,) each.
        values: attribute name -> value names.
        named: the attribute values to match, by name.
    """
    n = len(next(iter(attributes.values())))
    keep = np.ones(n, bool)
    for attribute, value in named.items():
        keep &= attributes[attribute] == values[attribute].index(value)
    return keep


def held_out_mask(attributes: dict, values: dict, held_out) -> np.ndarray:
    """Which images belong to a held-out combination; (n,) bool (see ``matches``)."""
    hit = np.zeros(len(next(iter(attributes.values()))), bool)
    for combo in held_out:
        hit |= matches(attributes, values, dict(combo))
    return hit


def fingerprint(config: ImageTrainConfig) -> str:
    """A fingerprint of the run's training data (the data set, size, split and classes)."""
    spec = image_data.spec(config.data)
    idx = spec.split("train", config.n_train)
    return spec.run_fingerprint(idx, config.net.size, config.label_by, len(config.held_out))


@functools.cache
def abstract_network(net):
    """The network's graph definition and a parameter state of the right shapes (no values);
    ``net`` is a ``UNetConfig`` or a ``DiTConfig``."""
    module = network_of(net).module
    return nnx.split(nnx.eval_shape(lambda: module(net)), nnx.Param)


def init_params(net, seed: int):
    """The network's initial parameters (drawn on the host in milliseconds; see ``layers``)."""
    return nnx.split(network_of(net).module(net, seed), nnx.Param)[1]


def param_count(net) -> int:
    """Scalar parameters of a network."""
    return count(abstract_network(net)[1])
