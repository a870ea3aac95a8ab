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

from toydiff.cli import sampling
from toydiff.cli.args import add_batch_size, finite, positive, seed
from toydiff.cli.output import emit, load_npz
from toydiff.errors import ToydiffError


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
    if args.batch_size is not None:
        changes["batch_size"] = args.batch_size
    if args.net is not None:
        changes["network"] = args.net
    for name in ("channels", "dtype", "conv", "width", "depth", "heads", "patch"):
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
        emit(
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
    t0 = time.perf_counter()  # ``train`` checks the config and --out before any work
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


def _read_images(path: str) -> dict:
    """The arrays of a ``toydiff images sample`` file; ToydiffError if it is not one."""
    arrays = load_npz(path, "`toydiff images sample ... --out FILE.npz`")
    x = arrays.get("x")
    if x is None or x.ndim not in (4, 5) or x.shape[0] < 2:
        raise ToydiffError(
            f"{path} has no array 'x' of images (n >= 2, H, W, C) or clips (n >= 2, F, H, W, C)"
        )
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
    want = spec.shape(x.shape[-2] if spec.max_size else None)
    if tuple(x.shape[1:]) != want:
        raise ToydiffError(
            f"{args.samples} holds images of shape {x.shape[1:]}, but {args.data} images are {want}"
        )
    prompt = args.prompt
    if prompt is None and args.label is None and "prompt" in arrays:
        prompt = str(arrays["prompt"])
    if prompt is not None:
        result = judge.prompt_scores(x, prompt, args.data)
        result["novelty"] = judge.novelty(x, image_data.load(args.data, size=x.shape[-2]).x)
        emit(args, result, "  ".join(_fmt(k, v) for k, v in result.items()))
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
    emit(args, result, "  ".join(_fmt(k, v) for k, v in result.items()))


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
    from toydiff.engine.objectives import OBJECTIVES
    from toydiff.engine.processes import PROCESSES
    from toydiff.images import data as image_data
    from toydiff.images.config import CONDITIONS
    from toydiff.nets import NETWORKS
    from toydiff.nets.layers import CONVS
    from toydiff.nets.unet import DTYPES

    names = image_data.NAMES
    group = sub.add_parser("images", help=f"the image path: {', '.join(names)}")
    verbs = group.add_subparsers(dest="images_verb", required=True, parser_class=type(group))

    p = verb(
        verbs, "train", cmd_train, f"train a network on an image data set ({', '.join(names)})"
    )
    p.add_argument("--data", required=True, choices=names)
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--size", type=int, help=f"image size ({_sizes()})")
    p.add_argument("--label-by", help=f"class attribute ({_attributes()})")
    p.add_argument("--condition", choices=CONDITIONS, default="class")
    p.add_argument("--clip", help="toy CLIP run for --condition text (`toydiff clip train`)")
    p.add_argument("--steps", type=positive, help="training steps")
    add_batch_size(p, positive, "global batch (a multiple of the devices)")
    p.add_argument("--seed", type=seed)
    p.add_argument("--process", choices=PROCESSES)
    p.add_argument("--objective", choices=[o for o in OBJECTIVES if o != "naive"])
    p.add_argument("--lr", type=finite, help="AdamW learning rate")
    p.add_argument("--cond-drop", type=finite, help="label dropout for guidance, in [0, 1)")
    p.add_argument(
        "--net",
        choices=NETWORKS.names,
        help="network: unet or dit (a diffusion transformer); default: the data set's own",
    )
    p.add_argument("--channels", type=_channels, help="U-Net channels per level, e.g. 32,64")
    p.add_argument("--no-attention", action="store_true", help="U-Net: no self-attention")
    p.add_argument("--conv", choices=CONVS, help="U-Net convolution: auto (hybrid on CPU)")
    p.add_argument("--width", type=positive, help="transformer: token width (e.g. 64)")
    p.add_argument("--depth", type=positive, help="transformer: blocks (e.g. 4)")
    p.add_argument("--heads", type=positive, help="transformer: attention heads (e.g. 4)")
    p.add_argument("--patch", type=positive, help="patch side (transformer tokens, U-Net folds)")
    p.add_argument("--dtype", choices=DTYPES, help="compute dtype of matmuls (bfloat16 on GPU/TPU)")
    p.add_argument("--distributed", action="store_true", help="jax.distributed.initialize()")
    p.add_argument("--coordinator", help="HOST:PORT of process 0 (multi-process by hand)")
    p.add_argument("--num-processes", type=positive)
    p.add_argument("--process-id", type=int)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--checkpoint-every", type=positive, help="steps between checkpoints")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = verb(verbs, "sample", sampling.run, "sample a trained image run and save the images")
    sampling.add_arguments(p, images=True)

    p = verb(verbs, "eval", cmd_eval, "judge images: accuracy, diversity, novelty")
    p.add_argument("samples", help=".npz file made by `toydiff images sample`")
    p.add_argument("--data", required=True, choices=names)
    p.add_argument("--label", help="class the images were asked to be (default: from the file)")
    p.add_argument("--prompt", help="prompt the images were drawn for (default: from the file)")
    p.add_argument("--label-by", help="class attribute (default: from the file)")
