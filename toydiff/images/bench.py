"""``toydiff bench --images``: how fast the image path trains and samples on this machine.

For the models each data set names in its spec (``DataSpec.bench``: the digits, 32x32 shapes and
the text-conditioned 16x16 shapes model, ...): training images per second (after compiling),
guided sampling images per second, and the U-Net's FLOPs per image, counted from its shape
(``unet.forward_flops``) and cross-checked against XLA's ``cost_analysis``. On an accelerator
with a known bf16 peak it adds the model FLOP utilisation (MFU).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time

import jax
import jax.numpy as jnp
from flax import nnx

from toydiff.bench import machine
from toydiff.engine import parallel
from toydiff.errors import DataError
from toydiff.images import clip, training
from toydiff.images import data as image_data
from toydiff.images.model import abstract_network, image_config, param_count
from toydiff.nets.unet import forward_flops

PEAK_BF16 = {  # dense bf16 tensor FLOP/s, from the vendors' data sheets
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L4": 121e12,
    "A10": 125e12,
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5": 459e12,
}


def peak_flops(device_kind: str) -> float | None:
    """The bf16 peak of a device kind, if known."""
    for name, peak in PEAK_BF16.items():
        if name.lower() in device_kind.lower():
            return peak
    return None


def xla_flops(config) -> float:
    """XLA's own count of one image's forward FLOPs (``cost_analysis``), as a cross-check."""
    graphdef, params = abstract_network(config.net)
    n = 8

    def forward(params, x):
        return nnx.merge(graphdef, params)(x, jnp.full((n,), 0.5), None)

    x = jax.ShapeDtypeStruct((n, *config.net.dim), jnp.float32)
    cost = jax.jit(forward).lower(params, x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost.get("flops", float("nan"))) / n


def bench_config(config, steps: int = 40, n_sample: int = 256, sample_steps: int = 32) -> dict:
    """Train ``steps`` steps and sample ``n_sample`` guided images; throughput and FLOPs."""
    config = dataclasses.replace(config, steps=steps, chunk=steps // 2)
    mesh = parallel.make_mesh()
    model = training.train(config, progress=False, mesh=mesh)
    train_rate = model.timing["steps_per_s"] * config.batch_size
    if config.condition == "text":
        prompts = image_data.spec(config.data).full_captions()[0][:3]
        labels = [prompts[i % len(prompts)] for i in range(n_sample)]
    else:
        names = model.class_names
        labels = [names[i % len(names)] for i in range(n_sample)]
    key = jax.random.key(0)

    def sample():
        return model.sample(key, n=n_sample, steps=sample_steps, sampler="ddim", label=labels)

    t0 = time.perf_counter()
    jax.block_until_ready(sample())
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(sample())
    sample_s = time.perf_counter() - t0
    flops = forward_flops(config.net)
    report = {
        "data": config.data,
        "condition": config.condition,
        "image": list(config.net.dim),
        "batch": config.batch_size,
        "params": param_count(config.net),
        "dtype": config.net.dtype,
        "devices": parallel.describe(mesh)["devices"],
        "train_compile_s": model.timing["compile_s"],
        "train_images_per_s": train_rate,
        "sample_compile_s": compile_s,
        "sample_images_per_s": n_sample / sample_s,
        "sample_steps": sample_steps,
        "forward_flops_per_image": flops,
        "xla_forward_flops_per_image": xla_flops(config),
        "train_tflops_per_s": 3 * flops * train_rate / 1e12,
    }
    peak = peak_flops(jax.devices()[0].device_kind)
    if peak is not None:
        report["mfu"] = 3 * flops * train_rate / (peak * len(jax.devices()))
    return report


def run(batch: int | None = None, dtype: str | None = None, conv: str | None = None) -> dict:
    """The image benchmark: every data set's bench models, on every visible device; a data set
    whose optional extra is not installed is skipped, and ``skipped`` says why."""
    changes = {k: v for k, v in {"dtype": dtype, "conv": conv}.items() if v is not None}
    if batch is not None:
        changes["batch_size"] = batch
    with tempfile.TemporaryDirectory() as folder:  # throughput needs a CLIP, not a trained one
        configs, skipped = [], {}
        for name, spec in image_data.REGISTRY.items():
            try:
                spec.available()
            except DataError as err:  # an optional data set whose extra is not installed
                skipped[name] = str(err)
                continue
            for entry in spec.bench:
                entry = {**entry, **changes}
                if entry.get("condition") == "text":
                    clip_dir = f"{folder}/{name}"
                    clip.untrained(clip.clip_config(name)).save(clip_dir)
                    entry["clip"] = clip_dir
                configs.append(image_config(name, **entry))
        models = [bench_config(c) for c in configs]
    return {
        "machine": machine(),
        "models": models,
        "skipped": skipped,
        "sampler": "ddim, classifier-free guidance (2 U-Net calls per step)",
    }
