"""Sampling from the command line: one set of arguments and one runner.

``toydiff sample`` and ``toydiff images sample`` are the same verb: the arguments below, and
``run``, which reads the run (a 2D run or an image run, by the kind its file records), checks the
request once (``Sampling.check_sample``: the sampler, steps, n, labels or prompts, guidance and
memory) before any sampling, samples it (``Sampling.run``) and writes the samples. What needs no
run is checked before the run is even read, and the output files last, since checking them makes
a missing folder.
"""

from __future__ import annotations

import time

import numpy as np

from toydiff.cli.args import finite, integer, output_file, seed
from toydiff.cli.output import emit
from toydiff.errors import CheckpointError, ToydiffError


def add_arguments(p, *, images: bool) -> None:
    """The sampling arguments, shared by ``sample`` and ``images sample``."""
    from toydiff.engine.limits import MAX_SAMPLER_STEPS
    from toydiff.engine.samplers import SAMPLERS

    made_by = "`toydiff images train`" if images else "`toydiff train` or `toydiff images train`"
    p.add_argument("--run", required=True, help=f"run directory made by {made_by}")
    p.add_argument("--sampler", default="ddpm", choices=SAMPLERS)
    p.add_argument(
        "--steps", type=int, default=64, help=f"sampler steps (1 to {MAX_SAMPLER_STEPS})"
    )
    p.add_argument("--n", type=integer, help="how many samples (2,000 points; 64 images)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--eta", type=finite, help="DDIM stochasticity in [0, 1] (default 0)")
    p.add_argument("--label", help="class to generate (a run trained with labels)")
    p.add_argument("--negative", help="class to steer away from")
    p.add_argument("--prompt", help='what to draw, for a text run: "a small red circle"')
    p.add_argument("--negative-prompt", help='what to steer away from: "... wearing a hat"')
    p.add_argument("--clip", help="read prompts with this CLIP run (checked against the run)")
    p.add_argument(
        "--guidance",
        type=finite,
        help="classifier-free guidance weight w (3; 1.25 with a negative class, 2 for images)",
    )
    p.add_argument("--exact", action="store_true", help="the exact oracle of the training data")
    p.add_argument("--trajectory", action="store_true", help="also save every step")
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument(
        "--grid", help="also write the images as a .png grid, or clips as a .gif or .mp4 grid"
    )


def load_model(path):
    """The diffusion run at ``path``: a 2D ``Model`` or an ``ImageModel``, by its kind."""
    from toydiff.engine import checkpoint
    from toydiff.images.model import KIND, ImageModel
    from toydiff.model import Model

    kind = checkpoint.run_kind(path)
    if kind is None:
        return Model.load(path)
    if kind == KIND:
        return ImageModel.load(path)
    raise CheckpointError(
        f"{path} is {checkpoint.kind_name(kind)}, not a diffusion run to sample; a toy CLIP "
        "is used with `toydiff clip ...`"
    )


def _asked(args, model) -> tuple:
    """(what to steer toward, what away from): class names, or prompts for a text run."""
    text_run = getattr(model.config, "condition", None) == "text"
    if text_run and (args.label is not None or args.negative is not None):
        raise ToydiffError("this run reads prompts: use --prompt and --negative-prompt")
    if not text_run and (args.prompt is not None or args.negative_prompt is not None):
        raise ToydiffError("this run was trained on classes, not prompts: use --label")
    if text_run:
        return args.prompt, args.negative_prompt
    return args.label, args.negative


def run(args) -> None:
    """Sample as the arguments say and write the samples (and the grid); print the report."""
    import jax

    from toydiff.engine import guidance, limits, samplers

    # Everything that needs no run, before the run is even read.
    options = {} if args.eta is None else {"eta": args.eta}
    samplers.check(args.sampler, args.steps, options)
    if args.n is not None:
        limits.check_count(args.n)
    guidance.check_negative(args.label, args.negative)
    guidance.check_negative(args.prompt, args.negative_prompt, words=("prompt", "negative prompt"))
    model = load_model(args.run)
    images = len(model.sample_shape) >= 3  # images (H, W, C) or clips (F, H, W, C)
    clips = len(model.sample_shape) == 4
    if args.clip is not None:
        if getattr(model.config, "condition", None) != "text":
            raise ToydiffError(
                f"--clip reads prompts, but the run at {args.run} was trained on "
                f"--condition {getattr(model.config, 'condition', 'class')}"
            )
        model = model.with_clip(args.clip)
    if args.grid is not None and not images:
        raise ToydiffError(f"--grid draws images, but the run at {args.run} samples 2D points")
    label, negative = _asked(args, model)
    try:  # labels, guidance, memory: checked once, before any sampling
        request = model.check_sample(
            args.n,
            args.steps,
            args.sampler,
            options=options,
            label=label,
            negative=negative,
            guidance=args.guidance,
            exact=args.exact,
        )
    except ToydiffError as err:
        raise ToydiffError(f"--run {args.run}: {err}") from None
    out = output_file(args.out, ".npz", add_suffix=True)  # last: they make a missing folder
    grid = None if args.grid is None else _grid_file(args.grid, clips)
    t0 = time.perf_counter()
    traj = np.asarray(jax.block_until_ready(model.run(jax.random.key(args.seed), request)))
    seconds = time.perf_counter() - t0
    arrays = _arrays(args, model, traj, images)
    try:
        np.savez(out, **arrays)
    except OSError as err:
        raise ToydiffError(f"cannot write {out}: {err.strerror or err}") from None
    if grid is not None:
        from toydiff.images import viz

        (viz.save_clip_grid if clips else viz.save_grid)(arrays["x"], grid)
    what = "clips" if clips else "images" if images else "samples"
    payload = {
        "out": str(out),
        "grid": None if grid is None else str(grid),
        "n": request.n,
        "shape": list(arrays["x"].shape),
        "steps": request.steps,
        "sampler": request.sampler,
        "label": args.label,
        "negative": args.negative,
        "prompt": args.prompt,
        "negative_prompt": args.negative_prompt,
        "guidance": request.guidance,
        "exact": request.exact,
        "trajectory": args.trajectory,
        "seconds": seconds,
        f"{what}_per_s": request.n / seconds,
    }
    emit(args, payload, f"wrote {request.n} {what} to {out} ({seconds:.2f} s)")


def _grid_file(path: str, clips: bool):
    """The --grid file: a .png of images, or a .gif or .mp4 of clips (checked writable)."""
    from pathlib import Path

    from toydiff.images.viz import CLIP_FORMATS

    if not clips:
        return output_file(path, ".png")
    suffix = Path(path).suffix
    if suffix not in CLIP_FORMATS:
        shown = suffix or "a name without a suffix"
        raise ToydiffError(f"{path}: clips are drawn as a .gif or .mp4 grid, not {shown}")
    return output_file(path, suffix)


def _arrays(args, model, traj: np.ndarray, images: bool) -> dict:
    """What a samples file holds: the samples (images clipped to [-1, 1]), the data set and its
    classes, what was asked, and the whole trajectory with --trajectory."""
    x = np.clip(traj[-1], -1.0, 1.0) if images else traj[-1]
    arrays = {"x": x, "data": np.array(model.config.data)}
    class_names = model.class_names if images else model.cloud.class_names
    arrays["class_names"] = np.array(list(class_names), dtype=str)
    if images:
        arrays["label_by"] = np.array(model.config.label_by)
    if args.trajectory:
        arrays["trajectory"] = traj
    if args.label is not None:
        arrays["label"] = np.int32(model.condition(args.label))
    for name in ("prompt", "negative_prompt"):
        if getattr(args, name) is not None:
            arrays[name] = np.array(getattr(args, name))
    return arrays
