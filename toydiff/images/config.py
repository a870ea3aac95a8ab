"""The settings of an image run and of a toy CLIP: small frozen dataclasses, nothing else.

They check only what they can see themselves (a known objective and process, a valid U-Net).
Whether a data set can be drawn at a size, or has captions for a text condition, is checked by
the builders that read the registry (``images.model.image_config``, ``images.clip.clip_config``),
so every config they return is valid, and none is changed after it is built.
"""

from __future__ import annotations

import dataclasses

from toydiff.engine.objectives import check_objective
from toydiff.engine.processes import RunSettings
from toydiff.errors import ToydiffError
from toydiff.nets import NETWORKS
from toydiff.nets.dit import DiTConfig
from toydiff.nets.unet import UNetConfig

CONDITIONS = ("class", "text", "none")
"""What an image model is told about each image: its class, its caption (through a toy CLIP) or
nothing."""


@dataclasses.dataclass(frozen=True)
class ImageTrainConfig(RunSettings):
    """Everything that defines an image run. ``image_config(data)`` gives each data set's defaults.

    Attributes:
        data: the data set (a name in ``images.data.REGISTRY``).
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
        n_train: training images, for a data set that can draw any number (None: the
            default split).
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
        network: the network, a name in ``nets.NETWORKS``: "unet" or "dit".
        net: the network's shape (a ``UNetConfig`` or a ``DiTConfig``, as ``network`` says),
            including its compute dtype.
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
    network: str = "unet"
    net: UNetConfig | DiTConfig = UNetConfig(channels=(16, 32), num_classes=10)

    def __post_init__(self):
        NETWORKS.check(self.network)
        if type(self.net) is not NETWORKS[self.network].config:
            raise ToydiffError(
                f"network {self.network!r} takes a {NETWORKS[self.network].config.__name__}, "
                f"not a {type(self.net).__name__}"
            )
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
        network = d.get("network", "unet")  # runs saved before the transformer have none
        net = dict(d.get("net", {}))
        if network == "unet":
            net["channels"] = tuple(net.get("channels", UNetConfig.channels))
        held_out = tuple(tuple(tuple(pair) for pair in combo) for combo in d.get("held_out", ()))
        net_config = NETWORKS[network].config(**net)
        return cls(**{**d, "network": network, "net": net_config, "held_out": held_out})


@dataclasses.dataclass(frozen=True)
class CLIPConfig:
    """A toy CLIP run. ``clip_config(data)`` gives each data set's defaults.

    Attributes:
        data: the data set (one with captions).
        size: image size.
        channels: colour channels of the images.
        frames: frames of a clip (the image encoder reads the frames stacked as channels), or
            0 for still images.
        embed_dim: size of the shared space.
        width: channels of the CNN and width of the word vectors.
        steps, batch_size, lr, weight_decay, seed, chunk: training, as for the image models.
        ema: weight average (0: none).
    """

    data: str = "shapes"
    size: int = 16
    channels: int = 3
    frames: int = 0
    embed_dim: int = 32
    width: int = 64
    steps: int = 500
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    ema: float = 0.0
    seed: int = 0
    chunk: int = 100

    def __post_init__(self):
        if self.embed_dim < 2 or self.width < 8 or self.width % 8:
            raise ToydiffError("embed_dim must be at least 2 and width a multiple of 8")

    def to_dict(self) -> dict:
        """A JSON-ready dict of the settings."""
        return dataclasses.asdict(self)
