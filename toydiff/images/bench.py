"""``toydiff bench --images``: how fast the image path trains and samples on this machine.

For the models each data set names in its spec (``DataSpec.bench``: the digits, 32x32 shapes and
the text-conditioned 16x16 shapes model, the transformers, ...): training images per second
(after compiling), guided sampling images per second, and the network's FLOPs per image, counted
from its shape (``unet.forward_flops``, ``dit.forward_flops``) and cross-checked against XLA's
``cost_analysis``; from those, the FLOP/s achieved and their share of the machine's peak: on an
accelerator with a known bf16 peak the data sheet's (the model FLOP utilisation, MFU), on a CPU
the rate a large float32 matrix product reaches here (``matmul_peak``).

``versus`` (``toydiff bench --images --versus CMD``) times whole recipe processes
(``toydiff.images.recipe``) against another program doing the same work, alternated.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from toydiff.bench import check_command, machine, timed_process
from toydiff.engine import parallel
from toydiff.errors import DataError
from toydiff.images import clip, training
from toydiff.images import data as image_data
from toydiff.images.model import abstract_network, image_config, param_count
from toydiff.nets import network_of

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


@functools.cache
def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of the best of ``repeats`` (size x size) float32 matrix products on the default
    device: what this machine's cores reach on the friendliest work there is, the yardstick
    for a CPU's share of peak (its vendor's number assumes every core at full vector width)."""
    a = jnp.ones((size, size), jnp.float32)
    product = jax.jit(lambda a: a @ a)
    jax.block_until_ready(product(a))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(product(a))
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best


def peak(device_kind: str) -> tuple[float, str]:
    """(FLOP/s, where the number comes from) for the share-of-peak figures."""
    sheet = peak_flops(device_kind)
    if sheet is not None:
        return sheet * len(jax.devices()), "bf16 data sheet"
    return matmul_peak() * len(jax.devices()), "a 2048x2048 float32 product measured here"


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
    flops = network_of(config.net).forward_flops(config.net)
    report = {
        "data": config.data,
        "network": config.network,
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
        "sample_tflops_per_s": 2 * sample_steps * flops * n_sample / sample_s / 1e12,
    }
    top, source = peak(jax.devices()[0].device_kind)
    report["peak_tflops_per_s"] = top / 1e12
    report["peak_from"] = source
    report["train_share_of_peak"] = 3 * flops * train_rate / top
    report["sample_share_of_peak"] = report["sample_tflops_per_s"] * 1e12 / top
    if peak_flops(jax.devices()[0].device_kind) is not None:
        report["mfu"] = report["train_share_of_peak"]
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
                network = entry.get("network", spec.recipe.network)
                entry = {**entry, **changes}
                if network != "unet":  # the convolution is a U-Net setting
                    entry.pop("conv", None)
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
        "sampler": "ddim, classifier-free guidance (2 network calls per step)",
    }


def recipe_process(data: str = "digits", out=None, env=None, steps: int | None = None) -> dict:
    """One whole ``python -m toydiff.images.recipe`` process, timed from outside.

    Returns:
        Its JSON report (``recipe.run``) and ``wall_s``, the process timed from outside.
    """
    cmd = [sys.executable, "-m", "toydiff.images.recipe", "--data", data]
    cmd += [] if out is None else ["--out", str(out)]
    cmd += [] if steps is None else ["--steps", str(steps)]
    wall, stdout = timed_process(cmd, "the timed recipe process", env)
    return {**_last_json(stdout), "wall_s": wall}


def _last_json(stdout: str) -> dict:
    """The last line of a program's output read as a JSON object, or {} if it is not one."""
    lines = stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        return {}
    return report if isinstance(report, dict) else {}


def judged(path, data: str) -> float:
    """The share of the images in an ``.npz`` (``x`` (n, H, W, C), ``labels`` (n,) class ids)
    that the data set's independent judge reads as the class they were asked to be."""
    from toydiff.images import judge

    with np.load(path) as f:
        x, labels = np.asarray(f["x"], np.float32), np.asarray(f["labels"])
    spec = image_data.spec(data)
    predicted = judge.judge_for(data, x.shape[1]).predict(x, spec.label_by)
    return float(np.mean(predicted == labels))


def versus(command: str, data: str = "digits", pairs: int = 3, steps: int | None = None) -> dict:
    """The image recipe as whole processes, side by side with another program's.

    The two alternate, ``pairs`` times each, on this noisy shared machine, and the medians are
    compared. One untimed recipe process first fills a fresh compilation cache (as on any
    machine that has trained once; its time is reported as ``versus_toydiff_first_s``). A
    ``{out}`` in the command is replaced by an ``.npz`` path, and the images it writes there
    (``x``, ``labels``) are judged by the same classifier as toydiff's.

    Args:
        command: the other program, e.g. ``python digits_unet_torch.py 500 {out}``.
        data: the recipe's data set.
        pairs: how many times each runs.
        steps: the recipe's training steps (default: its own; give the other program the same).

    Returns:
        Medians of each side's whole-process seconds (and of the training and sampling seconds
        each reports in its JSON line, where it prints one), ``versus_speedup`` (theirs /
        ours), images per second for training and sampling, and the judged accuracies.
    """
    argv = check_command(command)
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "TOYDIFF_CACHE": folder}
        first = recipe_process(data, env=env, steps=steps)
        mine, other = f"{folder}/toydiff.npz", f"{folder}/other.npz"
        their_argv = [word.replace("{out}", other) for word in argv]
        for _ in range(pairs):
            ours.append(recipe_process(data, mine, env, steps))
            wall, stdout = timed_process(their_argv, "--versus: the command")
            theirs.append({**_last_json(stdout), "wall_s": wall})
        quality = {"versus_toydiff_judged": judged(mine, data)}
        if their_argv != argv:
            quality["versus_other_judged"] = judged(other, data)
    work = {
        "train_images": ours[0]["steps"] * ours[0]["batch"],
        "sampled_images": ours[0]["images_sampled"],
    }
    report = {"versus_command": command, "versus_pairs": pairs, "versus_data": data}
    report["versus_toydiff_first_s"] = first["wall_s"]
    for side, runs in (("toydiff", ours), ("other", theirs)):
        for key in ("wall_s", "train_s", "sample_s"):
            values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
            if len(values) == len(runs):
                report[f"versus_{side}_{key}"] = float(np.median(values))
        if f"versus_{side}_train_s" in report:
            train_s = report[f"versus_{side}_train_s"]
            report[f"versus_{side}_train_images_per_s"] = work["train_images"] / train_s
        if f"versus_{side}_sample_s" in report:
            sample_s = report[f"versus_{side}_sample_s"]
            report[f"versus_{side}_sample_images_per_s"] = work["sampled_images"] / sample_s
    report["versus_speedup"] = report["versus_other_wall_s"] / report["versus_toydiff_wall_s"]
    return {**report, **quality}


def side_by_side(models, *, n_per_class: int = 16, key=None, **kw) -> list[dict]:
    """Networks on the same data, compared as chapter 10 shows them: size, work, speed, quality.

    Each model samples ``n_per_class`` images of every class (guided, the default w) twice from
    the same key: the first call compiles and is judged, the second is timed.

    Args:
        models: class-conditional ``ImageModel`` s of one data set (a U-Net, a transformer).
        n_per_class: images of each class.
        key: PRNG key (default key(0)).
        **kw: passed to ``model.sample`` (sampler, steps, guidance).

    Returns:
        One row per model: {"network", "params", "mflop_per_image" (one forward pass, counted
        from its shape), "sample_images_per_s" (guided, on this machine), "accuracy" (the
        independent judge's, averaged over the classes), "samples"}.
    """
    from toydiff.images import judge

    key = jax.random.key(0) if key is None else key
    rows = []
    for model in models:
        scores = judge.score_model(model, n_per_class=n_per_class, key=key, **kw)
        n = len(scores["samples"])
        labels = [name for name in model.class_names for _ in range(n_per_class)]
        t0 = time.perf_counter()
        jax.block_until_ready(model.sample(key, n=n, label=labels, **kw))
        seconds = time.perf_counter() - t0
        net = model.config.net
        rows.append(
            {
                "network": model.config.network,
                "params": param_count(net),
                "mflop_per_image": network_of(net).forward_flops(net) / 1e6,
                "sample_images_per_s": n / seconds,
                "accuracy": scores["accuracy"],
                "samples": scores["samples"],
            }
        )
    return rows
