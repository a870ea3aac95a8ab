"""The ``toydiff`` command line: train, sample, eval, phase, bench, demo, lab, warmup,
``images ...`` and ``clip ...``.

The CLI is thin: it parses arguments, calls the library and prints. With ``--json`` a verb prints
exactly one JSON object on stdout; progress bars and notes go to stderr. A user mistake (a bad
argument, a missing or malformed file) ends with one line on stderr and exit status 2, never a
traceback, and it is caught before any work starts: what needs no run is checked before the run
is read, what needs the run (labels, guidance, memory) before any sampling, and an output before
any training (``tests/test_bad_input.py`` is the whole matrix).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import sys

import numpy as np

from toydiff.cli.output import emit, load_npz
from toydiff.errors import ToydiffError


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, like every other toydiff error."""

    def error(self, message):
        raise ToydiffError(f"{self.prog}: {message} (see --help)")


def cmd_train(args):
    from toydiff import data as data_lib
    from toydiff.engine import checkpoint
    from toydiff.model import FAST, REFERENCE, REFERENCE_CONDITIONAL
    from toydiff.training import train

    if args.sigma_max is not None and args.process != "ve":
        raise ToydiffError(
            f"--sigma-max {args.sigma_max} is the VE process's largest noise level, but "
            f"--process {args.process} has none; leave it out or use --process ve"
        )
    cloud = data_lib.load(args.data)
    if args.recipe == "fast" and args.labels:
        raise ToydiffError(
            "--recipe fast is the unconditional spiral recipe; leave it out with --labels"
        )
    base = REFERENCE_CONDITIONAL if args.labels else FAST if args.recipe == "fast" else REFERENCE
    changes = {
        "data": args.data,
        "seed": args.seed,
        "process": args.process,
        "objective": args.objective,
    }
    if args.labels:
        if cloud.labels is None:
            raise ToydiffError(f"--labels needs labelled data, but {args.data!r} has no labels")
        changes["net"] = dataclasses.replace(base.net, num_classes=cloud.num_classes)
    for name in ("steps", "cond_drop", "batch_size", "lr", "sigma_max"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    config = dataclasses.replace(base, **changes)
    # ``train`` checks the config and --out before any work, and saves the run.
    model = train(config, cloud, out=args.out, overwrite=args.overwrite, progress=not args.quiet)
    path = pathlib.Path(args.out) / checkpoint.FILENAME
    payload = {
        "run": str(path),
        "steps": model.steps,
        "final_loss": float(model.losses[-100:].mean()),
        "interrupted": model.interrupted,
        **model.timing,
    }
    emit(
        args,
        payload,
        f"saved {path} after {model.steps} steps "
        f"(loss {payload['final_loss']:.4f}, {model.timing['steps_per_s']:.0f} steps/s)",
    )


def _read_samples(path: str) -> dict:
    """The arrays of a ``toydiff sample`` output file; ToydiffError if it is not one."""
    arrays = load_npz(path, "`toydiff sample ... --out FILE.npz`")
    x = arrays.get("x")
    if x is None or x.ndim != 2 or x.shape[1] != 2 or x.shape[0] == 0:
        raise ToydiffError(f"{path} has no array 'x' of shape (n, 2)")
    if not np.all(np.isfinite(x)):
        raise ToydiffError(
            f"{path}: 'x' holds {int((~np.isfinite(x)).any(1).sum())} non-finite rows"
        )
    return arrays


def evaluate(x, cloud, label=None, key=None) -> dict:
    """The metrics ``toydiff eval`` prints for samples x (n, 2) against a data set.

    Curve metrics use the data's dense curve when it has one, else its points.
    """
    import jax

    from toydiff import metrics

    key = jax.random.key(0) if key is None else key
    out = {
        "n": int(x.shape[0]),
        "swd": metrics.sliced_wasserstein(key, x, cloud.x),
        "energy": metrics.energy_distance(x, cloud.x),
    }
    if cloud.curve is not None:
        out["precision"] = metrics.curve_precision(x, cloud.curve)
        out["coverage"] = metrics.curve_coverage(x, cloud.curve)
    else:
        out["precision"] = metrics.point_precision(x, cloud.x)
        out["coverage"] = metrics.point_coverage(x, cloud.x)
    if label is not None:
        out["label"] = cloud.class_names[label]
        out["class_accuracy"] = metrics.class_accuracy(x, label, cloud.x, cloud.labels)
    return out


def cmd_eval(args):
    from toydiff import data as data_lib

    arrays = _read_samples(args.samples)
    cloud = data_lib.load(args.data)
    label = None
    if args.label is not None:
        label = cloud.label_id(args.label)
    elif "label" in arrays and cloud.labels is not None:
        label = int(arrays["label"])
        if not 0 <= label < cloud.num_classes:
            raise ToydiffError(
                f"{args.samples} has label id {label}, but {cloud.name} has "
                f"{cloud.num_classes} classes; pass --label NAME"
            )
    result = evaluate(arrays["x"], cloud, label)
    text = "  ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
    )
    emit(args, result, text)


def cmd_phase(args):
    from toydiff import data as data_lib
    from toydiff import metrics
    from toydiff.engine.oracle import exact_field, point_set_oracle
    from toydiff.engine.processes import VE
    from toydiff.model import Model

    if args.run is not None and args.data is not None:
        raise ToydiffError(
            f"--data {args.data} is for --exact without --run; a run brings its own data"
        )
    if args.run is not None:
        model = Model.load(args.run)
        cloud = model.cloud

        def field(p, t):
            return np.asarray(model.field(p, t, exact=args.exact))
    else:
        if not args.exact or args.data is None:
            raise ToydiffError("phase needs --run DIR, or --exact with --data NAME|PATH")
        cloud = data_lib.load(args.data)
        oracle = point_set_oracle(VE(), cloud.x)

        def field(p, t):
            return np.asarray(exact_field(oracle, p, t))

    curve = cloud.curve if cloud.curve is not None else cloud.x
    d = metrics.phase_diagnostic(field, cloud.x, curve)
    payload = {
        "t_star": d["t_star"],
        "t": d["t"],
        "cos_centroid": d["cos_centroid"],
        "cos_curve": d["cos_curve"],
    }
    emit(args, payload, f"t* = {d['t_star']:.3f} (the field switches from the centre to the curve)")


def cmd_bench(args):
    image_only = [
        f"--{k.replace('_', '-')}"
        for k in ("batch_size", "dtype", "conv")
        if getattr(args, k) is not None
    ]
    if not args.images and image_only:
        raise ToydiffError(f"{', '.join(image_only)} bench the image path: add --images")
    lab_only = [f"--{k}" for k in ("steps", "notebooks") if getattr(args, k) is not None]
    lab_only += ["--no-start"] if args.no_start else []
    if args.images and lab_only:
        raise ToydiffError(f"{', '.join(lab_only)} bench the 2D lab, not --images")
    if args.images:
        from toydiff.bench import check_command
        from toydiff.images import bench as image_bench

        if args.versus is not None:
            check_command(args.versus)  # before any work
        report = image_bench.run(batch=args.batch_size, dtype=args.dtype, conv=args.conv)
        if args.versus is not None:
            report.update(image_bench.versus(args.versus))
        lines = [f"machine: {report['machine']}"]
        for m in report["models"]:
            lines.append(
                f"{m['data']} {'x'.join(map(str, m['image']))} {m['network']} "
                f"({m['condition']}): train "
                f"{m['train_images_per_s']:.0f} images/s, sample {m['sample_images_per_s']:.0f} "
                f"images/s ({m['sample_steps']} guided DDIM steps), "
                f"{m['forward_flops_per_image'] / 1e6:.1f} MFLOP per image forward "
                f"(XLA: {m['xla_forward_flops_per_image'] / 1e6:.1f}); "
                f"{m['train_tflops_per_s'] * 1e3:.1f} GFLOP/s training, "
                f"{m['train_share_of_peak']:.0%} of the peak ({m['peak_from']})"
                + (f", MFU {m['mfu']:.1%}" if "mfu" in m else "")
            )
        lines += [f"{name}: skipped ({why})" for name, why in report["skipped"].items()]
        if args.versus is not None:
            lines.append(_versus_line(report))
        emit(args, report, "\n".join(lines))
        return
    from toydiff import bench

    report = bench.run(
        steps=args.steps,
        progress=not args.quiet,
        notebooks=args.notebooks,
        start=not args.no_start,
        versus_command=args.versus,
    )
    lines = [f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in report.items()]
    emit(args, report, "\n".join(lines))


def _versus_line(r: dict) -> str:
    """The image recipe against another program, in words."""
    line = (
        f"recipe ({r['versus_data']}) as whole processes, median of {r['versus_pairs']}: "
        f"toydiff {r['versus_toydiff_wall_s']:.1f} s, the other {r['versus_other_wall_s']:.1f} s: "
        f"toydiff is {r['versus_speedup']:.2f}x as fast"
    )
    judged = [
        f"{side} {r[f'versus_{side}_judged']:.1%}"
        for side in ("toydiff", "other")
        if f"versus_{side}_judged" in r
    ]
    return line + (f"; judged as asked: {', '.join(judged)}" if judged else "")


def cmd_demo(args):
    from toydiff import demos
    from toydiff.engine import checkpoint

    if (args.name is None) == (not args.all):
        raise ToydiffError(
            "demo needs either a NAME or --all (not both); names: " + ", ".join(demos.DEMOS)
        )
    if args.name is not None and args.name not in demos.DEMOS:  # before any model trains
        raise ToydiffError(f"unknown demo {args.name!r}; choose one of {', '.join(demos.DEMOS)}")
    checkpoint.check_writable(args.out)  # before any model trains or frame is drawn
    names = demos.HEADLINE if args.all else (args.name,)
    models = demos.Models.for_quality(args.quick)
    files = []
    for name in names:
        anim = demos.build(name, theme=args.theme, quick=args.quick, models=models)
        for path in demos.save(anim, name, args.out):
            files.append(
                {"path": str(path), "bytes": path.stat().st_size, "frames": demos.frame_count(anim)}
            )
    text = "\n".join(
        f"wrote {f['path']} ({f['bytes'] / 1e6:.2f} MB, {f['frames']} frames)" for f in files
    )
    emit(args, {"files": files}, text)


def build_parser() -> argparse.ArgumentParser:
    """The toydiff argument parser, with one sub-command per verb."""
    from toydiff.cli import clip, images, lab, sampling
    from toydiff.cli.args import add_batch_size, finite, positive, seed
    from toydiff.engine.objectives import OBJECTIVES
    from toydiff.engine.processes import PROCESSES

    parser = _Parser(prog="toydiff", description="An interactive toy-diffusion lab.")
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    def add_verb(subparsers, name, fn, help_text):
        p = subparsers.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        p.set_defaults(fn=fn)
        return p

    def verb(name, fn, help_text):
        return add_verb(sub, name, fn, help_text)

    images.add_parser(sub, add_verb)
    clip.add_parser(sub, add_verb)
    lab.add_parser(sub, add_verb)

    p = verb("train", cmd_train, "train a score network on a 2D data set")
    p.add_argument("--data", default="spiral", help="dataset name or .npy/.csv/.png file")
    p.add_argument("--steps", type=int, help="training steps (15000; 30000 with --labels)")
    p.add_argument(
        "--recipe",
        default="reference",
        choices=("reference", "fast"),
        help="reference (the story's settings) or fast (5000 steps, a cosine learning rate)",
    )
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--process", default="ve", choices=PROCESSES)
    p.add_argument("--objective", default="eps", choices=OBJECTIVES)
    p.add_argument("--labels", action="store_true", help="train a class-conditional model")
    p.add_argument(
        "--cond-drop", type=finite, help="label dropout for guidance (0.2 with --labels)"
    )
    add_batch_size(p, int, "points per step (0 = all)")
    p.add_argument("--lr", type=finite, help="AdamW learning rate (1e-3)")
    p.add_argument("--sigma-max", type=finite, help="VE sigma_max (10; 1 with --labels)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = verb("sample", sampling.run, "sample a trained run (2D or images) and save it as .npz")
    sampling.add_arguments(p, images=False)

    p = verb("eval", cmd_eval, "score samples against a data set")
    p.add_argument("samples", help=".npz file made by `toydiff sample`")
    p.add_argument("--data", required=True, help="dataset name or file")
    p.add_argument("--label", help="class the samples were asked to be")

    p = verb("phase", cmd_phase, "find the phase-change time t* of a field")
    p.add_argument("--run", help="run directory")
    p.add_argument("--exact", action="store_true", help="use the exact field")
    p.add_argument("--data", help="dataset for --exact without --run")

    p = verb("demo", cmd_demo, "render lecture animations as GIF and MP4")
    p.add_argument(
        "name", nargs="?", help="demo to render: forward, phase, noise, ddim, cfg or negative"
    )
    p.add_argument("--all", action="store_true", help="render every headline demo")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--theme", default="dark", choices=("dark", "light"))
    p.add_argument("--quick", action="store_true", help="fewer frames and 500-step models")

    from toydiff.nets.layers import CONVS

    p = verb("bench", cmd_bench, "time training, sampling and drawing on this machine")
    p.add_argument("--steps", type=positive, help="training steps (15000)")
    p.add_argument("--notebooks", metavar="DIR", help="also run and time the notebooks in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--no-start",
        action="store_true",
        help="skip the whole-process and first-picture timings (about a minute)",
    )
    p.add_argument(
        "--versus",
        metavar="CMD",
        help='time whole training processes against CMD, e.g. "python recipe_torch.py 15000"; '
        "with --images, whole digits recipes (a {out} in CMD: where it writes samples to judge)",
    )
    p.add_argument("--images", action="store_true", help="bench the image path instead")
    add_batch_size(p, positive, "image batch (--images)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), help="compute dtype (--images)")
    p.add_argument("--conv", choices=CONVS, help="convolution kernel (--images; auto by default)")
    return parser


def main(argv=None) -> int:
    """Entry point of the ``toydiff`` command; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        args.fn(args)
    except ToydiffError as err:
        print(f"toydiff: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("toydiff: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `toydiff ... | head` stopped reading: end quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 141
    return 0


if __name__ == "__main__":
    sys.exit(main())
