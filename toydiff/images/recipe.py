"""One whole image-recipe process: train a data set's default model, then sample every class.

``python -m toydiff.images.recipe --data digits --out samples.npz`` does, in one process, what a
user of the image path does first: ``toydiff images train --data digits`` with its defaults, then
``per_class`` images of each class with 64 DDPM steps at guidance w = 3. It prints one JSON
line of timings (import and data, training, sampling, the whole process) in the same form as the
plain-PyTorch baseline of the same work (``../shared/baselines/digits_unet_torch.py``), so
``toydiff bench --images --versus CMD`` can time the two side by side; with ``--out`` it writes
the samples (``x`` (n, H, W, C) in [-1, 1], ``labels`` (n,)) for a judge to score.
"""

from __future__ import annotations

import argparse
import json
import sys

SAMPLE_STEPS = 64
GUIDANCE = 3.0


def run(data: str = "digits", per_class: int = 50, out=None, steps: int | None = None) -> dict:
    """Train ``data``'s recipe and sample ``per_class`` images of every class; the timings.

    Args:
        data: a class-conditional data set of the image path.
        per_class: images of each class to sample.
        out: an ``.npz`` path to write the samples to, or None.
        steps: training steps (default: the recipe's).

    Returns:
        {"import_and_data_s", "train_s", "sample_s", "whole_s" (seconds since the process
        started), "steps", "batch", "images_sampled", "train_images_per_s" and
        "sample_images_per_s" (each over its own phase, compiling included)}.
    """
    import dataclasses

    import jax
    import numpy as np

    from toydiff.engine.loop import process_age
    from toydiff.errors import ToydiffError
    from toydiff.images import training
    from toydiff.images.model import image_config

    config = image_config(data)
    if config.condition != "class":
        raise ToydiffError(f"{data}'s recipe is not class-conditional; the recipe samples classes")
    if per_class < 1:
        raise ToydiffError(f"--per-class must be at least 1, got {per_class}")
    if steps is not None:
        config = dataclasses.replace(config, steps=steps)
    t_init = process_age()
    model = training.train(config, progress=False)
    t_train = process_age()
    labels = [name for name in model.class_names for _ in range(per_class)]
    key = jax.random.key(config.seed)
    traj = model.sample(key, n=len(labels), steps=SAMPLE_STEPS, label=labels, guidance=GUIDANCE)
    x = np.clip(np.asarray(traj[-1]), -1.0, 1.0)
    t_end = process_age()
    if out is not None:
        ids = np.array([model.class_names.index(name) for name in labels], np.int32)
        np.savez(out, x=x, labels=ids)
    return {
        "import_and_data_s": round(t_init, 2),
        "train_s": round(t_train - t_init, 2),
        "sample_s": round(t_end - t_train, 2),
        "whole_s": round(t_end, 2),
        "data": data,
        "steps": config.steps,
        "batch": config.batch_size,
        "images_sampled": len(labels),
        "train_images_per_s": config.steps * config.batch_size / (t_train - t_init),
        "sample_images_per_s": len(labels) / (t_end - t_train),
    }


def main(argv=None) -> int:
    """The command: ``python -m toydiff.images.recipe [--data D] [--per-class N] [--out F]``."""
    parser = argparse.ArgumentParser(prog="python -m toydiff.images.recipe", description=__doc__)
    parser.add_argument("--data", default="digits", help="a class-conditional data set")
    parser.add_argument("--per-class", type=int, default=50, help="images of each class")
    parser.add_argument("--steps", type=int, help="training steps (the recipe's by default)")
    parser.add_argument("--out", help="write the samples to this .npz")
    args = parser.parse_args(argv)
    from toydiff.errors import ToydiffError

    try:
        report = run(args.data, args.per_class, args.out, args.steps)
    except ToydiffError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
