"""``toydiff images``: train, sample and judge the image models from the command line.

Thin, like the rest of the CLI: it parses, checks every argument before any work starts, calls
``toydiff.images`` and prints. ``--json`` prints exactly one JSON object on stdout; progress goes
to stderr. Only process 0 of a multi-process run prints or writes files.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import sys
import time

import numpy as np

from toydiff.cli.args import finite, output_file, positive, seed
from toydiff.errors import ToydiffError


def _emit(args, payload, text):
    from toydiff.cli import _emit as emit

    emit(args, payload, text)


def _channels(text: str) -> tuple[int, ...]:
    """Parse --channels "32,64" into (32, 64)."""
    try:
        channels = tuple(int(c) for c in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not channels or min(channels) < 1:
        raise argparse.ArgumentTypeError(f"channels must be positive integers, got {text!r}")
    return channels


def _config(args):
    """The run's config from the defaults of its data set and the given options."""
    from toydiff.images.model import image_config

    changes = {}
    names = ("size", "label_by", "condition", "clip", "process", "objective", "seed", "lr")
    for name in (*names, "cond_drop", "steps"):
        if getattr(args, name, None) is not None:
            changes[name] = getattr(args, name)
    if args.clip is not None and args.condition != "text":
        raise ToydiffError("--clip is for --condition text")
    if args.cond_drop is not None and args.condition == "none":
        raise ToydiffError(
            f"--cond-drop {args.cond_drop} drops the condition, but --condition none has none"
        )
    if args.batch is not None:
        changes["batch_size"] = args.batch
    for name in ("channels", "dtype", "conv"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.no_attention:
        changes["attention"] = False
    return image_config(args.data, **changes)


@contextlib.contextmanager
def _stdout_to_stderr():
    """Send everything written to file descriptor 1 to stderr meanwhile.

    Native libraries write there too (gloo prints "[Gloo] Rank 0 is connected ..." when the
    processes meet), and stdout must hold nothing but the one JSON object.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def cmd_train(args):
    with _stdout_to_stderr():
        payload = _train(args)
    if payload is not None:
        _emit(
            args,
            payload,
            f"saved {payload['run']} after {payload['steps']} steps on "
            f"{payload['mesh']['devices']} {payload['mesh']['platform']} device(s) "
            f"(loss {payload['final_loss']:.4f})",
        )


def _train(args) -> dict | None:
    """Train as the arguments say; the report for process 0, None for the others."""
    from toydiff.engine import parallel

    parallel.initialize(args.distributed, args.coordinator, args.num_processes, args.process_id)

    import jax

    from toydiff.images import training
    from toydiff.images.model import param_count

    config = _config(args)
    mesh = parallel.make_mesh()
    training.check_config(config, mesh)
    training.check_output(args.out, resume=args.resume, overwrite=args.overwrite)
    t0 = time.perf_counter()
    model = training.train(
        config,
        out=args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        checkpoint_every=args.checkpoint_every,
        progress=not args.quiet,
        mesh=mesh,
    )
    if jax.process_index() != 0:
        return None
    return {
        "run": str(pathlib.Path(args.out) / "run.toydiff"),
        "data": config.data,
        "label_by": config.label_by,
        "steps": model.steps,
        "final_loss": float(model.losses[-50:].mean()),
        "interrupted": model.interrupted,
        "params": param_count(config.net),
        "mesh": parallel.describe(mesh),
        "wall_s": time.perf_counter() - t0,
        **model.timing,
    }


def cmd_sample(args):
    import jax

    from toydiff.cli import check_run
    from toydiff.engine import guidance, limits, samplers
    from toydiff.images import viz
    from toydiff.images.model import ImageModel

    # Everything that needs no model, before the run is even read.
    options = {} if args.eta is None else {"eta": args.eta}
    samplers.check(args.sampler, args.steps, options)
    limits.check_count(args.n)
    guidance.check_negative(args.label, args.negative)
    guidance.check_negative(args.prompt, args.negative_prompt, words=("prompt", "negative prompt"))
    model = ImageModel.load(args.run)
    if args.clip is not None:
        if model.config.condition != "text":
            raise ToydiffError(
                f"--clip reads prompts, but the run at {args.run} was trained on "
                f"--condition {model.config.condition}"
            )
        model = model.with_clip(args.clip)
    label, negative = _asked(args, model)
    denoiser_kwargs = {
        "label": label,
        "exact": args.exact,
        "guidance": args.guidance,
        "negative": negative,
    }
    request = {"n": args.n, "steps": args.steps, "sampler": args.sampler, "options": options}
    check_run(args.run, model, **request, **denoiser_kwargs)  # labels, weights, memory
    out = output_file(args.out, ".npz")  # last: it makes a missing folder
    grid = None if args.grid is None else output_file(args.grid, ".png")
    t0 = time.perf_counter()
    traj = model.sample(jax.random.key(args.seed), **request, **denoiser_kwargs)
    traj = np.asarray(jax.block_until_ready(traj))
    seconds = time.perf_counter() - t0
    arrays = {
        "x": np.clip(traj[-1], -1.0, 1.0),
        "data": np.array(model.config.data),
        "label_by": np.array(model.config.label_by),
        "class_names": np.array(model.class_names),
    }
    if args.trajectory:
        arrays["trajectory"] = traj
    if args.label is not None:
        arrays["label"] = np.int32(model.condition(args.label))
    for name in ("prompt", "negative_prompt"):
        if getattr(args, name) is not None:
            arrays[name] = np.array(getattr(args, name))
    np.savez(out, **arrays)
    if grid is not None:
        viz.save_grid(arrays["x"], grid)
    payload = {
        "out": str(out),
        "grid": None if grid is None else str(grid),
        "n": args.n,
        "shape": list(arrays["x"].shape),
        "steps": args.steps,
        "sampler": args.sampler,
        "label": args.label,
        "negative": args.negative,
        "prompt": args.prompt,
        "negative_prompt": args.negative_prompt,
        "guidance": args.guidance,
        "exact": args.exact,
        "seconds": seconds,
        "images_per_s": args.n / seconds,
    }
    _emit(args, payload, f"wrote {args.n} images to {out} ({seconds:.2f} s)")


def _asked(args, model) -> tuple:
    """(what to steer toward, what away from): class names, or prompts for a text run."""
    text_run = model.config.condition == "text"
    if text_run and (args.label is not None or args.negative is not None):
        raise ToydiffError("this run reads prompts: use --prompt and --negative-prompt")
    if not text_run and (args.prompt is not None or args.negative_prompt is not None):
        raise ToydiffError("this run was trained on classes, not prompts: use --label")
    if text_run:
        return args.prompt, args.negative_prompt
    return args.label, args.negative


def _read_images(path: str) -> dict:
    """The arrays of a ``toydiff images sample`` file; ToydiffError if it is not one."""
    from toydiff.cli import load_npz

    arrays = load_npz(path, "`toydiff images sample ... --out FILE.npz`")
    x = arrays.get("x")
    if x is None or x.ndim != 4 or x.shape[0] < 2:
        raise ToydiffError(f"{path} has no array 'x' of shape (n >= 2, H, W, C)")
    if not np.all(np.isfinite(x)):
        raise ToydiffError(f"{path}: 'x' holds non-finite values")
    return arrays


def cmd_eval(args):
    from toydiff.images import data as image_data
    from toydiff.images import judge

    if args.label is not None and args.prompt is not None:
        raise ToydiffError("eval judges against --label NAME or --prompt TEXT, not both")
    arrays = _read_images(args.samples)
    label_by = args.label_by
    if label_by is None and "label_by" in arrays:
        label_by = str(arrays["label_by"])
    x = arrays["x"]
    spec = image_data.spec(args.data)
    label_by = spec.check_label_by(label_by)
    want = spec.shape(x.shape[1] if spec.max_size else None)
    if tuple(x.shape[1:]) != want:
        raise ToydiffError(
            f"{args.samples} holds images of shape {x.shape[1:]}, but {args.data} images are {want}"
        )
    prompt = args.prompt
    if prompt is None and args.label is None and "prompt" in arrays:
        prompt = str(arrays["prompt"])
    if prompt is not None:
        result = judge.prompt_scores(x, prompt, args.data)
        result["novelty"] = judge.novelty(x, image_data.load(args.data, size=x.shape[1]).x)
        _emit(args, result, "  ".join(_fmt(k, v) for k, v in result.items()))
        return
    label = args.label
    if label is None and "label" in arrays:
        label = int(arrays["label"])
    if label is None:
        raise ToydiffError(
            "eval needs --label NAME or --prompt TEXT (what the images were asked to be)"
        )
    image_data.class_id(label, spec.attributes[label_by], label_by, args.data)
    result = judge.evaluate(x, args.data, label, label_by=label_by)
    _emit(args, result, "  ".join(_fmt(k, v) for k, v in result.items()))


def _sizes() -> str:
    """The image sizes of the data sets, for --help."""
    from toydiff.images import data as image_data

    return "; ".join(
        f"{name}: even, 8..{s.max_size}, default {s.size}" if s.max_size else f"{name}: {s.size}"
        for name, s in image_data.REGISTRY.items()
    )


def _attributes() -> str:
    """The class attributes of the data sets, for --help."""
    from toydiff.images import data as image_data

    return "; ".join(
        f"{name}: {', '.join(s.attributes)}" for name, s in image_data.REGISTRY.items()
    )


def _fmt(key, value) -> str:
    return f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}"


def add_parser(sub, verb) -> None:
    """Add ``toydiff images {train, sample, eval}`` to the CLI's sub-parsers."""
    from toydiff.engine.limits import MAX_SAMPLER_STEPS
    from toydiff.engine.objectives import OBJECTIVES
    from toydiff.engine.processes import PROCESSES
    from toydiff.engine.samplers import SAMPLERS
    from toydiff.images import data as image_data
    from toydiff.images.config import CONDITIONS
    from toydiff.nets.unet import CONVS, DTYPES

    names = image_data.NAMES
    group = sub.add_parser("images", help=f"the image path: {', '.join(names)}")
    verbs = group.add_subparsers(dest="images_verb", required=True, parser_class=type(group))

    p = verb(verbs, "train", cmd_train, f"train a U-Net on an image data set ({', '.join(names)})")
    p.add_argument("--data", required=True, choices=names)
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--size", type=int, help=f"image size ({_sizes()})")
    p.add_argument("--label-by", help=f"class attribute ({_attributes()})")
    p.add_argument("--condition", choices=CONDITIONS, default="class")
    p.add_argument("--clip", help="toy CLIP run for --condition text (`toydiff clip train`)")
    p.add_argument("--steps", type=positive, help="training steps")
    p.add_argument("--batch", type=positive, help="global batch (a multiple of the devices)")
    p.add_argument("--seed", type=seed)
    p.add_argument("--process", choices=PROCESSES)
    p.add_argument("--objective", choices=[o for o in OBJECTIVES if o != "naive"])
    p.add_argument("--lr", type=finite, help="AdamW learning rate")
    p.add_argument("--cond-drop", type=finite, help="label dropout for guidance, in [0, 1)")
    p.add_argument("--channels", type=_channels, help="U-Net channels per level, e.g. 32,64")
    p.add_argument("--no-attention", action="store_true", help="no self-attention")
    p.add_argument("--conv", choices=CONVS, help="convolution kernel: matmul (CPU) or xla")
    p.add_argument("--dtype", choices=DTYPES, help="compute dtype of matmuls (bfloat16 on GPU/TPU)")
    p.add_argument("--distributed", action="store_true", help="jax.distributed.initialize()")
    p.add_argument("--coordinator", help="HOST:PORT of process 0 (multi-process by hand)")
    p.add_argument("--num-processes", type=positive)
    p.add_argument("--process-id", type=int)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--checkpoint-every", type=positive, help="steps between checkpoints")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = verb(verbs, "sample", cmd_sample, "sample a trained image run and save the images")
    p.add_argument("--run", required=True, help="run directory made by `toydiff images train`")
    p.add_argument("--label", help="class to generate")
    p.add_argument("--negative", help="class to steer away from")
    p.add_argument("--prompt", help='what to draw, for a text run: "a small red circle"')
    p.add_argument("--negative-prompt", help='what to steer away from: "... wearing a hat"')
    p.add_argument("--clip", help="read prompts with this CLIP run (checked against the run)")
    p.add_argument("--guidance", type=finite, help="guidance weight w (3; 2 with a negative)")
    p.add_argument("--sampler", default="ddpm", choices=SAMPLERS)
    p.add_argument(
        "--steps", type=positive, default=64, help=f"sampler steps (1 to {MAX_SAMPLER_STEPS})"
    )
    p.add_argument("--eta", type=finite, help="DDIM stochasticity in [0, 1] (default 0)")
    p.add_argument("--n", type=positive, default=64)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--exact", action="store_true", help="the exact oracle of the training set")
    p.add_argument("--trajectory", action="store_true", help="also save every step")
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument("--grid", help="also write the images as a .png grid")

    p = verb(verbs, "eval", cmd_eval, "judge images: accuracy, diversity, novelty")
    p.add_argument("samples", help=".npz file made by `toydiff images sample`")
    p.add_argument("--data", required=True, choices=names)
    p.add_argument("--label", help="class the images were asked to be (default: from the file)")
    p.add_argument("--prompt", help="prompt the images were drawn for (default: from the file)")
    p.add_argument("--label-by", help="class attribute (default: from the file)")
