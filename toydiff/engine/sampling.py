"""Sampling a trained model: one front end for every model, 2D points or images.

``Sampling`` is the mixin a trained model (the 2D ``Model``, the image path's ``ImageModel``)
gets its denoiser and its ``sample`` from. A request goes through two steps:

1. ``check_sample`` validates it once, before any work: the sampler and its options, the steps,
   the number of samples, the labels or prompts, the guidance weight and the negative, and the
   memory it needs. It returns a ``Request`` holding the checked values, the conditions already
   in the network's terms (class ids or text embeddings) and the default weight filled in.
2. ``run`` draws the starting noise and runs the sampler, in chunks of ``Request.chunk`` samples:
   one chunk for the 2D lab, batches padded to a power of two for the image path (so that every
   n reuses one of a few compiled samplers). Each chunk goes through the same route: a denoiser
   (the network, guided or not, or the exact oracle) handed to one of ``samplers.SAMPLERS``.

``sample`` is the two together. The command line, the widgets and the judges use the same two
steps, so a request is checked exactly once and sampled exactly one way.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from toydiff.engine import limits, samplers
from toydiff.engine.guidance import check_negative, check_weight, classifier_free, default_weight
from toydiff.engine.objectives import NetworkDenoiser
from toydiff.errors import ToydiffError


@dataclasses.dataclass(frozen=True, eq=False)
class Request:
    """A checked sampling request (``Sampling.check_sample``), ready for ``Sampling.run``.

    Attributes:
        n: number of samples.
        steps: sampler steps.
        sampler: one of ``samplers.SAMPLERS``.
        options: the sampler's options (checked), e.g. ``{"eta": 0.5}`` for ddim.
        x_init: the starting noise (n, *sample_shape), float32, or None to draw it.
        label: the condition as given (one, or a list of one per sample on a chunking model);
            the exact oracle reads it.
        condition: ``label`` as the network takes it (class ids or embeddings), or None.
        negative: the negative condition as the network takes it, or None.
        guidance: the guidance weight w, the default filled in; None when unguided.
        exact: sample the exact oracle of the training data instead of the network.
        chunk: samples per sampler call (``n`` for one call).
    """

    n: int
    steps: int
    sampler: str
    options: dict
    x_init: jax.Array | None
    label: object
    condition: object
    negative: object
    guidance: float | None
    exact: bool
    chunk: int


class Sampling:
    """Denoising and sampling, shared by the 2D ``Model`` and the image path's model.

    A subclass provides ``params``, ``graphdef``, ``losses``, ``config`` (with ``data``,
    ``objective`` and ``make_process()``), ``sample_shape`` (the shape of one sample),
    ``condition(label)`` (a user's label as the network's condition, None staying None),
    ``oracle(label)`` (the exact denoiser of the training data, optionally of the label's class),
    ``conditional`` (whether the run takes labels at all), and for the memory estimate of
    ``check_sample``, ``network_floats`` (the network's working numbers per sample in one guided
    step) and ``training_size`` (the number of training examples, which the exact oracle
    weighs).
    """

    @property
    def steps(self) -> int:
        """Number of training steps done."""
        return int(self.losses.shape[0])

    @property
    def process(self):
        """The forward process the model was trained on."""
        return self.config.make_process()

    conditional_hint: str = "`toydiff train --labels`"
    """How to train a run that takes labels (named when an unconditional run is given one)."""

    @property
    def condition_words(self) -> tuple[str, str]:
        """What a condition and its negative are called in messages: label and negative."""
        return ("label", "negative")

    def check_condition(self, label=None, *, exact=False, guidance=None, negative=None):
        """Check a condition, a weight and a negative; returns them in the network's terms.

        Args:
            label: the condition (a class name or id, or a prompt; or one per sample) to steer
                toward; None for unconditional.
            exact: the exact oracle will be sampled instead of the network.
            guidance: classifier-free guidance weight w (toydiff convention); None means the
                default (``guidance.default_weight``: 3, or 1.25 with a negative class).
            negative: the condition to steer away from; it must differ from ``label``.

        Returns:
            (condition, negative, w): the label and the negative as the network takes them
            (None stays None), and the weight (None when unguided).

        Raises:
            ToydiffError: for an unknown label, a non-finite weight, guidance or a negative on a
                run trained without labels, guidance without a label, a negative equal to the
                label, or guidance with --exact. Nothing given is ever silently ignored.
        """
        if guidance is not None:
            guidance = check_weight(guidance)
        if not self.conditional and (guidance is not None or negative is not None):
            given = "guidance" if guidance is not None else "a negative"
            raise ToydiffError(
                f"this run ({self.config.data}) was trained without labels, so it has no classes "
                f"to guide by: {given} cannot be used; train one with labels "
                f"({self.conditional_hint})"
            )
        if exact and (negative is not None or guidance is not None):
            raise ToydiffError("guidance and negative classes need the network, not --exact")
        condition, negative_c = self.condition(label), self.condition(negative)
        if exact:
            return condition, None, None
        same = None
        if condition is not None and negative_c is not None:
            same = _same_condition(condition, negative_c)
        check_negative(label, negative, same, self.condition_words)
        if condition is None:
            if guidance is not None:
                word = self.condition_words[0]
                raise ToydiffError(
                    f"guidance w = {guidance:g} needs a {word} to steer toward (--{word}); "
                    "without one the run samples unguided"
                )
            return None, None, None
        w = self.default_guidance(negative_c) if guidance is None else guidance
        return condition, negative_c, w

    def network(self) -> NetworkDenoiser:
        """The trained network as an unconditional denoiser (``with_label`` conditions it)."""
        return NetworkDenoiser(
            self.params, None, self.graphdef, self.process, self.config.objective
        )

    def guided(self, condition, w, negative=None):
        """The network steered toward ``condition`` (checked, in the network's terms) with
        weight w, away from ``negative``; the unconditional network when ``condition`` is None."""
        if condition is None:
            return self.network()
        return classifier_free(self.network(), condition, w, negative)

    def denoiser(self, label=None, *, exact=False, guidance=None, negative=None):
        """The denoiser ``(xt, t) -> (x0_hat, eps_hat)`` to sample or draw with.

        Args:
            label, exact, guidance, negative: as for ``check_condition``.

        Returns:
            A denoiser pytree: the exact oracle, or the network, guided when a label is given.

        Raises:
            ToydiffError: whatever ``check_condition`` refuses.
        """
        condition, negative_c, w = self.check_condition(
            label, exact=exact, guidance=guidance, negative=negative
        )
        return self.oracle(label) if exact else self.guided(condition, w, negative_c)

    def default_guidance(self, negative) -> float:
        """The weight w used when none is given (``guidance.default_weight``)."""
        return default_weight(negative)

    default_n: int = 2000
    """Samples drawn when ``sample`` is not told how many (2,000 points; image models draw 64)."""

    sample_chunk: int | None = None
    """None: one sampler call for any n (the 2D lab). A number: run the sampler on batches of at
    most this many, each padded to a power of two (from 8), so that every n reuses one of a few
    compiled programs instead of compiling its own (the image path, where a compile costs
    seconds and a sample far more than a 2D point). Chunk i then draws its noise from
    ``fold_in(key, i)``."""

    compiler_options: dict | None = None
    """XLA options the samplers are compiled with (None: the shared, default-compiled ones; the
    image path sets ``compilation.image_options()``)."""

    def working_floats(self, exact: bool = False) -> int:
        """Working numbers per sample in flight during a step (for ``limits.sample_bytes``).

        The exact oracle holds a few (n, m) arrays for m training points (distances, weights):
        4 m per sample. The network's own are the subclass's ``network_floats``.
        """
        return 4 * self.training_size if exact else self.network_floats

    def _in_flight(self, n: int) -> int | None:
        """Samples per sampler call: None for one call on all n, else the padded chunk size."""
        if self.sample_chunk is None:
            return None
        return min(self.sample_chunk, max(8, 1 << (n - 1).bit_length()))

    def check_sample(
        self,
        n=None,
        steps=64,
        sampler="ddpm",
        x_init=None,
        options=None,
        *,
        label=None,
        negative=None,
        guidance=None,
        exact=False,
    ) -> Request:
        """Every check of a sampling request, before any work; returns the checked ``Request``.

        Checks the sampler and its options (``samplers.check``: eta only for ddim, in [0, 1]),
        the steps (at most ``limits.MAX_SAMPLER_STEPS``), n, the memory the request needs
        (``limits.check_sample_memory``), and the labels, weight and negative
        (``check_condition``).

        Args:
            n, steps, sampler, x_init, options, label, negative, guidance, exact: as for
                ``sample``.

        Returns:
            The ``Request``, for ``run``.

        Raises:
            ToydiffError: the first mistake found, naming the bad value and what is allowed.
        """
        options = samplers.check(sampler, steps, options)
        if x_init is not None:
            shape = tuple(np.shape(x_init))
            if shape[1:] != tuple(self.sample_shape):
                raise ToydiffError(
                    f"x_init must have shape (n, {', '.join(map(str, self.sample_shape))}), "
                    f"got {shape}"
                )
            n = shape[0]
            x_init = jnp.asarray(x_init, jnp.float32)
        n = limits.check_count(self.default_n if n is None else n)
        in_flight = self._in_flight(n)
        limits.check_sample_memory(  # first: a huge n is refused before a label per sample
            n, steps, self.sample_shape, self.working_floats(exact), in_flight
        )
        if in_flight is not None:
            label, negative = _per_sample(label, n, "label"), _per_sample(negative, n, "negative")
        condition, negative_c, w = self.check_condition(
            label, exact=exact, guidance=guidance, negative=negative
        )
        return Request(
            n=n,
            steps=int(steps),
            sampler=sampler,
            options=options,
            x_init=x_init,
            label=label,
            condition=condition,
            negative=negative_c,
            guidance=w,
            exact=bool(exact),
            chunk=n if in_flight is None else in_flight,
        )

    def run(self, key, request: Request) -> jax.Array:
        """Sample a checked request; returns the trajectory (steps + 1, n, *sample_shape).

        The key splits into the starting noise and the sampler's noise; on a chunking model
        chunk i draws from ``fold_in`` of each with i. Padding samples (to fill the last chunk)
        repeat the last condition and are dropped at the end.
        """
        n, size = request.n, request.chunk
        pad = -n % size
        k_prior, k_run = jax.random.split(key)
        chunked = self.sample_chunk is not None
        sampler = samplers.get_sampler(request.sampler, self.compiler_options)
        x_init = request.x_init
        if x_init is not None and pad:
            x_init = jnp.concatenate([x_init, jnp.zeros((pad, *x_init.shape[1:]), jnp.float32)])
        parts = []
        for i, start in enumerate(range(0, n + pad, size)):
            part = slice(start, start + size)
            if x_init is None and chunked:  # one compiled draw per chunk size
                x0 = _prior_chunk(self.process, k_prior, i, (size, *self.sample_shape))
            elif x_init is None:  # one draw, op by op, as ``samplers.sample`` draws it
                x0 = self.process.prior(k_prior, (size, *self.sample_shape))
            else:
                x0 = x_init[part]
            denoiser = self._chunk_denoiser(request, part, pad)
            k = jax.random.fold_in(k_run, i) if chunked else k_run
            parts.append(sampler(k, denoiser, self.process, x0, request.steps, **request.options))
        traj = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=1)
        return traj[:, :n] if pad else traj

    def _chunk_denoiser(self, request: Request, part: slice, pad: int):
        """The denoiser of one chunk: its slice of per-sample conditions (padded)."""

        def cut(values):
            # a chunking model holds one condition per sample (``check_sample``); else one
            if values is None or self.sample_chunk is None:
                return values
            if isinstance(values, list):
                return (values + values[-1:] * pad)[part]
            values = np.asarray(values)
            return np.concatenate([values, np.repeat(values[-1:], pad, axis=0)])[part]

        if request.exact:
            return self.oracle(cut(request.label))
        return self.guided(cut(request.condition), request.guidance, cut(request.negative))

    def sample(self, key, n=None, steps=64, sampler="ddpm", x_init=None, options=None, **kw):
        """Sample with any sampler; returns the trajectory, shape (steps + 1, n, *sample_shape).

        Args:
            key: a PRNG key; split into the starting noise and the sampler's noise.
            n: number of samples (ignored when ``x_init`` is given); ``default_n`` if None.
            steps: number of sampler steps, 1 to ``limits.MAX_SAMPLER_STEPS``.
            sampler: one of ``samplers.SAMPLERS``.
            x_init: starting noise (n, *sample_shape) at t_max; drawn from the prior if None.
            options: sampler options, e.g. ``{"eta": 0.5}`` for ddim (and only ddim).
            **kw: label, exact, guidance, negative (``check_condition``); ``label`` and
                ``negative`` may be one value or one per sample.

        Raises:
            ToydiffError: before any sampling, for anything ``check_sample`` refuses: an unknown
                sampler, an option it does not take, steps or n out of range, a bad label or
                weight, or a request that will not fit in the free memory.
        """
        return self.run(key, self.check_sample(n, steps, sampler, x_init, options, **kw))


@functools.partial(jax.jit, static_argnames=("process", "shape"))
def _prior_chunk(process, key, i, shape):
    """Chunk i's starting noise: the prior drawn with ``fold_in(key, i)``, shape ``shape``.

    One compiled program per chunk shape; op by op, the fold, the draw and the scaling each
    compiled their own, about 1.5 s for every new shape on a 2-core laptop. (Compiled, the draw
    can differ from the op-by-op one in its last bits, which is why a model that samples in one
    chunk keeps the op-by-op draw of ``samplers.sample``.)
    """
    return process.prior(jax.random.fold_in(key, i), shape)


def _same_condition(a, b) -> np.ndarray:
    """Where two conditions are the same: class ids compare as numbers, embeddings (float
    vectors on the last axis) as whole vectors. One bool, or one per sample."""
    a, b = np.asarray(a), np.asarray(b)
    same = a == b
    if a.dtype.kind == "f" and same.ndim:
        same = same.all(axis=-1)
    return same


def _per_sample(label, n: int, what: str):
    """One label per sample, as a list of length n (None stays None)."""
    if label is None:
        return None
    if isinstance(label, list | tuple | np.ndarray):
        if len(label) != n:
            raise ToydiffError(f"{len(label)} {what}s given for {n} samples; give one, or one each")
        return list(label)
    return [label] * n
