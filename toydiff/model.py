"""A trained model: its settings, network parameters, data and loss history in one object.

``Model`` is what ``training.train`` returns, what ``Model.load`` reads back, and what the CLI,
notebooks and widgets hold. Its methods are thin: they build a denoiser (network, exact oracle, or
guided) and hand it to the samplers and metrics.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from toydiff import data as data_lib
from toydiff.engine import checkpoint
from toydiff.engine.loop import LR_SCHEDULES
from toydiff.engine.objectives import check_objective
from toydiff.engine.oracle import point_set_oracle
from toydiff.engine.processes import RunSettings
from toydiff.engine.sampling import Sampling
from toydiff.errors import CheckpointError, ToydiffError
from toydiff.nets.mlp import CONDITIONAL, NetConfig, ScoreMLP


@dataclasses.dataclass(frozen=True)
class TrainConfig(RunSettings):
    """Everything that defines a training run. The defaults are the reference spiral model.

    Attributes:
        data: a dataset name (see ``data.REGISTRY``) or a path to a .npy, .csv or .png file.
        process: ``"ve"``, ``"vp"``, ``"vp-cosine"`` or ``"flow"``.
        sigma_max: the VE process's largest noise level (10 in the reference, 1 for the
            conditional model); ignored by the other processes.
        objective: what the network predicts: eps, x0, v, velocity or naive.
        naive_dt: step length of the naive one-step objective.
        labels: train a class-conditional network on the data's labels.
        cond_drop: probability of dropping a label (classifier-free guidance training).
        steps: number of optimiser steps.
        batch_size: points per step, drawn with replacement; 0 means the full data set.
        lr: AdamW learning rate.
        lr_schedule: ``"constant"`` (the reference) or ``"cosine"``: from ``lr`` down to 0 at
            the last step.
        weight_decay: AdamW weight decay.
        ema: decay of the exponential moving average of the weights that the model samples
            with (0 samples with the raw weights). Averaging removes the jitter that a constant
            learning rate leaves in the weights, which deterministic samplers are sensitive to.
        seed: seed of the initialisation and of every random draw in training.
        chunk: steps per compiled chunk (progress is reported between chunks).
        net: the network shape.
    """

    data: str = "spiral"
    process: str = "ve"
    sigma_max: float = 10.0
    objective: str = "eps"
    naive_dt: float = 0.01
    labels: bool = False
    cond_drop: float = 0.0
    steps: int = 15_000
    batch_size: int = 0
    lr: float = 1e-3
    lr_schedule: str = "constant"
    weight_decay: float = 1e-4
    ema: float = 0.999
    seed: int = 0
    chunk: int = 1_000
    net: NetConfig = NetConfig()

    def __post_init__(self):
        try:
            check_objective(self.objective)
            self.make_process()
        except ValueError as err:
            raise ToydiffError(str(err)) from None
        if self.lr_schedule not in LR_SCHEDULES:
            raise ToydiffError(
                f"unknown lr_schedule {self.lr_schedule!r}; allowed: {', '.join(LR_SCHEDULES)}"
            )

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Rebuild a config from ``to_dict``'s output (lists become tuples again)."""
        net = dict(d.get("net", {}))
        if "hidden" in net:
            net["hidden"] = tuple(net["hidden"])
        return cls(**{**d, "net": NetConfig(**net)})


REFERENCE = TrainConfig()
"""The story's unconditional spiral model: VE to sigma_max 10, eps, 15,000 full-batch steps."""

FAST = dataclasses.replace(
    REFERENCE,
    steps=5_000,
    lr=4e-3,
    lr_schedule="cosine",
    ema=0.0,
    net=NetConfig(hidden=(128, 128, 128, 128)),
)
"""The fast recipe: the reference data and process in a third of the steps. The learning rate
starts 4x higher and falls along a cosine to 0 at the last step, which settles the weights as the
reference's weight average does, so none is kept. The network is the reference's without its two
16-wide layers (four layers of 128, slightly fewer multiplications per step): through those
narrow layers a short run learned the inner turns of the spiral on some training seeds and not on
others (precision 0.53 to 0.99 over seeds 0-9), and without them every seed learns them.

It passes chapter 6's checks (DDPM precision and coverage >= 0.9, t* in [0.3, 0.5]) in about
2.7 s of training on a 2-core laptop. Measured over training seeds 0-19 (2,000 samples, 64 DDPM
steps, key 1): precision 0.966 to 0.996 (mean 0.987), coverage 1.000, t* 0.377 to 0.388; the
same with XLA limited to SSE4.2 (seeds 0-9). ``docs/margins.md`` has the table. The chapters keep
the reference recipe."""

REFERENCE_LONG = dataclasses.replace(REFERENCE, steps=30_000)
"""The spiral model trained as long as the conditional one, for the DDIM chapter: deterministic
samplers follow the learned field exactly, so they show its remaining errors more than DDPM does."""

REFERENCE_CONDITIONAL = TrainConfig(
    data="spiral-classes",
    sigma_max=1.0,
    labels=True,
    cond_drop=0.2,
    steps=30_000,
    batch_size=200,
    net=CONDITIONAL,
)
"""The story's 3-class model: sigma_max 1, 30,000 steps with batches of 200, label dropout."""

GUIDANCE_DEMO = dataclasses.replace(
    REFERENCE_CONDITIONAL,
    cond_drop=0.95,
    steps=14_000,
    net=NetConfig(hidden=(64, 64, 64), num_classes=3, class_dim=32),
)
"""A weakly conditioned 3-class model, for chapter 8: the case that guidance exists for.

With REFERENCE_CONDITIONAL plain conditioning (w = 1) already puts 100% of the samples on the
asked-for arc, so guidance has nothing left to fix. This model hides the class on 95% of its
examples and is small (three layers of 64, a 32-d class embedding) and trained 14,000 steps:
it learns the spiral from every example (91% of its unguided samples lie within 0.05 of it) but
the classes from only 1 example in 20. Its class signal points the right way but is weak, so
at w = 1 samples land on the neighbouring arc (dogs on the people arc, cats on the dog arc);
the default guidance multiplies the signal by w = 3 and puts them back.

Measured (2,000 samples per class, 64 DDPM steps, key 1): with training seed 0 the worst class
at w = 1 (cats) reaches 85.7% and the worst class at w = 3 97.5%. Over training seeds 0-9 the
worst class ranged 79.5-89.1% at w = 1 and 93.1-99.2% at w = 3, a gain of 8-18 points; chapter
8's check (``tests/test_phenomena.py``) is below 92%, then at least 90% and 5 points more
(``docs/margins.md``). Training takes about 7 s on two CPU cores, a tenth of
REFERENCE_CONDITIONAL's time.
"""


@dataclasses.dataclass(frozen=True, eq=False)
class Model(Sampling):
    """A trained (or training) 2D model.

    Attributes:
        config: the run's settings.
        graphdef: the network's graph definition.
        params: the network's parameters.
        cloud: the training data.
        losses: the loss of every step so far, shape (steps,).
        timing: seconds spent compiling and training, and steps per second.
        interrupted: True if training was stopped early with Ctrl-C.
    """

    config: TrainConfig
    graphdef: nnx.GraphDef
    params: nnx.State
    cloud: data_lib.PointCloud
    losses: np.ndarray
    timing: dict = dataclasses.field(default_factory=dict)
    interrupted: bool = False

    @property
    def sample_shape(self) -> tuple[int]:
        """The shape of one sample, (2,)."""
        return (self.config.net.dim,)

    @property
    def conditional(self) -> bool:
        """Whether the run was trained with labels (and so takes a label, guidance, a negative)."""
        return bool(self.config.labels)

    @property
    def network_floats(self) -> int:
        """The MLP's working numbers per sample in one step: its two widest adjacent layers
        (a layer's input and output are what a forward pass holds at once), twice, since a
        guided step runs the network on two conditions.

        XLA's plan on the CPU (``memory_analysis()`` of a 64-step sampler) came to 140 to 270
        numbers per point for the reference MLP (this gives 512) and 660 for the guided
        conditional one (768).
        """
        net = self.config.net
        width_in = net.dim + net.time_features + (net.class_dim if net.num_classes else 0)
        widths = (width_in, *net.hidden, net.dim)
        return 2 * max(a + b for a, b in zip(widths[:-1], widths[1:], strict=True))

    @property
    def training_size(self) -> int:
        """The number of training points."""
        return int(self.cloud.x.shape[0])

    def condition(self, label) -> int | None:
        """A label as the network's condition: its class id."""
        return self.label_id(label)

    def oracle(self, label):
        """The exact denoiser of the training points, optionally of one class (name or id)."""
        return point_set_oracle(self.process, self.cloud.x, self.cloud.labels, self.label_id(label))

    def label_id(self, label) -> int | None:
        """A class id from a name or id; None stays None. Raises ToydiffError if unknown."""
        if label is None:
            return None
        if not self.config.labels:
            raise ToydiffError(
                f"this model was trained without labels, so label {label!r} cannot be used"
            )
        if isinstance(label, str):
            return self.cloud.label_id(label)
        if not 0 <= int(label) < self.cloud.num_classes:
            raise ToydiffError(f"label id {label} is out of range 0..{self.cloud.num_classes - 1}")
        return int(label)

    def field(self, points, t, **denoiser_kwargs):
        """The vector field -eps_hat at points (n, 2) and scalar time t; see ``denoiser``."""
        denoiser = self.denoiser(**denoiser_kwargs)
        return _field(denoiser, jnp.asarray(points, jnp.float32), jnp.float32(t))

    def save(self, directory, *, overwrite: bool = False) -> pathlib.Path:
        """Write the run atomically to ``directory/run.toydiff``; returns the file path.

        Args:
            directory: the run directory (created if missing).
            overwrite: replace a run already there. Without it, a run already in ``directory``
                is refused (a ToydiffError naming it), so a trained model is never silently
                replaced.
        """
        extra = {"x": self.cloud.x}
        if self.cloud.labels is not None:
            extra["labels"] = self.cloud.labels
        run = checkpoint.Run(
            config={
                **self.config.to_dict(),
                "class_names": list(self.cloud.class_names),
                "interrupted": self.interrupted,
            },
            params=nnx.to_pure_dict(self.params),
            fingerprint=self.cloud.fingerprint(),
            loss_history=np.asarray(self.losses, np.float32),
            extra=extra,
        )
        return checkpoint.save_run(directory, run, overwrite=overwrite)

    @classmethod
    def load(cls, path) -> Model:
        """Read a run saved by ``save``; raises CheckpointError for a bad or foreign file."""
        run = checkpoint.load_run(path)
        cfg = dict(run.config)
        if cfg.get("kind") is not None:
            raise CheckpointError(
                f"{path} is an image run, not a 2D run; use `toydiff images sample --run ...`"
            )
        class_names = tuple(cfg.pop("class_names", ()))
        interrupted = bool(cfg.pop("interrupted", False))
        try:
            config = TrainConfig.from_dict(cfg)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{path} has an unreadable config: {err}") from None
        cloud = _cloud_of(config, run, class_names)
        graphdef, params = nnx.split(ScoreMLP(config.net, rngs=nnx.Rngs(0)), nnx.Param)
        try:
            nnx.replace_by_pure_dict(params, run.params)
        except (KeyError, ValueError) as err:
            raise CheckpointError(f"{path} does not match its network shape: {err}") from None
        params = jax.tree.map(jnp.asarray, params)
        return cls(config, graphdef, params, cloud, run.loss_history, {}, interrupted)


@jax.jit
def _field(denoiser, points, t):
    """-eps_hat of a denoiser (a pytree, so new parameters or t do not recompile)."""
    return -denoiser(points, t)[1]


def _cloud_of(config: TrainConfig, run: checkpoint.Run, class_names) -> data_lib.PointCloud:
    """The training data of a saved run: regenerated for a named dataset, else the stored points."""
    if config.data in data_lib.REGISTRY:
        cloud = data_lib.load(config.data)
    else:
        cloud = data_lib.PointCloud(
            name=config.data,
            x=run.extra["x"],
            labels=run.extra.get("labels"),
            class_names=class_names,
        )
    if cloud.fingerprint() != run.fingerprint:
        raise CheckpointError(
            f"the data of this run ({config.data}) no longer matches its fingerprint"
        )
    return cloud
