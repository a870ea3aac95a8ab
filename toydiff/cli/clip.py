"""``toydiff clip``: train a toy CLIP, and ask it about pictures and words.

- ``train``: contrastive training; reports the zero-shot accuracy on held-out images.
- ``similarity``: the cosine similarity of images and texts.
- ``classify``: zero-shot labels, with candidate captions given or built from an attribute.
- ``nearest-words``: the vocabulary words nearest to a vector: a text's embedding, a file's, or
  the mean difference of matched pictures ("hat" minus no hat).
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from toydiff.cli.output import emit, load_npz
from toydiff.errors import ToydiffError


def _model(path):
    from toydiff.images.clip import CLIPModel

    return CLIPModel.load(path)


def cmd_train(args):
    from toydiff.engine import checkpoint
    from toydiff.engine.loop import check_settings
    from toydiff.images import clip, shared_space

    changes = {
        k: getattr(args, k) for k in ("steps", "seed", "size") if getattr(args, k) is not None
    }
    if args.batch_size is not None:
        changes["batch_size"] = args.batch_size
    config = clip.clip_config(args.data, **changes)
    check_settings(config)
    checkpoint.check_output(args.out, overwrite=args.overwrite)  # before training, not after
    t0 = time.perf_counter()
    model = clip.train(config, progress=not args.quiet)
    path = model.save(args.out, overwrite=args.overwrite)
    accuracy = shared_space.zero_shot_accuracy(model)
    payload = {
        "run": str(path),
        "data": config.data,
        "steps": model.steps,
        "final_loss": float(model.losses[-20:].mean()),
        "temperature": model.temperature,
        "zero_shot_accuracy": accuracy,
        "wall_s": time.perf_counter() - t0,
        **model.timing,
    }
    scores = ", ".join(f"{a} {v:.1%}" for a, v in accuracy.items())
    emit(args, payload, f"saved {path}; zero-shot accuracy on held-out images: {scores}")


def _images(args, model):
    """Images from --images FILE.npz, else the first --n held-out images; with their set."""
    from toydiff.images.clip import training_images

    if args.images is not None:
        x = load_npz(args.images, "`toydiff images sample ... --out FILE.npz`").get("x")
        if x is None or np.ndim(x) != 4:
            raise ToydiffError(f"{args.images} has no array 'x' of shape (n, H, W, C)")
        return np.asarray(x[: args.n], np.float32), None
    held = training_images(model.config, "test")
    return held.x[: args.n], held.take(np.arange(min(args.n, len(held.x))))


def cmd_similarity(args):
    from toydiff.images import shared_space

    model = _model(args.run)
    shared_space.check_words(model, args.text)
    x, _ = _images(args, model)
    sim = shared_space.similarity(model, x, args.text)
    rows = [" ".join(f"{v:+.3f}" for v in row) for row in sim]
    emit(
        args,
        {"texts": args.text, "n": len(x), "similarity": sim},
        "\n".join([" | ".join(args.text), *rows]),
    )


def cmd_classify(args):
    from toydiff.images import shared_space

    model = _model(args.run)
    if (args.captions is None) == (args.attribute is None):
        raise ToydiffError("classify needs --captions C [C ...] or --attribute NAME (not both)")
    x, held = _images(args, model)
    if args.captions is not None:
        shared_space.check_words(model, args.captions)
        best = shared_space.zero_shot(model, x, prompts=args.captions)
        payload = {"labels": [args.captions[i] for i in best]}
    else:
        from toydiff.images import data as image_data

        values = image_data.spec(model.config.data).attributes
        if args.attribute not in values:
            raise ToydiffError(
                f"unknown attribute {args.attribute!r}; allowed: {', '.join(values)}"
            )
        ids = shared_space.zero_shot(model, x, attribute=args.attribute)
        payload = {"labels": [values[args.attribute][i] for i in ids]}
        if held is not None:
            payload["accuracy"] = float(np.mean(ids == held.attributes[args.attribute]))
    text = "\n".join(payload["labels"])
    if "accuracy" in payload:
        text += f"\nzero-shot accuracy {payload['accuracy']:.1%} on {len(x)} held-out images"
    emit(args, payload, text)


def cmd_nearest(args):
    from toydiff.images import shared_space

    model = _model(args.run)
    given = [v for v in (args.attribute, args.text, args.vector) if v is not None]
    if len(given) != 1:
        raise ToydiffError("nearest-words needs exactly one of --attribute, --text, --vector")
    if args.attribute is not None:
        if model.config.data != "shapes":
            raise ToydiffError("--attribute differences are drawn for shapes")
        vector = shared_space.direction(model, args.attribute)
    elif args.text is not None:
        shared_space.check_words(model, [args.text])
        vector = model.encode_texts(args.text)
    else:
        path = pathlib.Path(args.vector)
        try:
            vector = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ToydiffError(f"cannot read a vector from {path}: {err}") from None
    ranked = shared_space.nearest_words(model, vector, args.k)
    payload = {"words": [w for w, _ in ranked], "cosines": [c for _, c in ranked]}
    emit(args, payload, "\n".join(f"{w:10s} {c:+.3f}" for w, c in ranked))


def add_parser(sub, verb) -> None:
    """Add ``toydiff clip {train, similarity, classify, nearest-words}``."""
    from toydiff.cli.args import add_batch_size, positive, seed
    from toydiff.images import data as image_data

    group = sub.add_parser("clip", help="the toy CLIP: a shared space for words and pictures")
    verbs = group.add_subparsers(dest="clip_verb", required=True, parser_class=type(group))

    captioned = {n: s for n, s in image_data.REGISTRY.items() if s.captioned}
    steps = ", ".join(f"{s.clip_recipe.steps} {n}" for n, s in captioned.items())
    p = verb(verbs, "train", cmd_train, "train a toy CLIP on images and their captions")
    p.add_argument("--data", required=True, choices=tuple(captioned))
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--steps", type=positive, help=f"training steps ({steps})")
    add_batch_size(p, positive, "images per step (256)")
    p.add_argument("--size", type=int, help="image size, for a data set drawn at any size")
    p.add_argument("--seed", type=seed)
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    def images(p):
        p.add_argument("--run", required=True, help="a CLIP run directory (`toydiff clip train`)")
        p.add_argument("--images", help=".npz with an array x (default: held-out images)")
        p.add_argument("--n", type=positive, default=8, help="how many images")

    p = verb(verbs, "similarity", cmd_similarity, "cosine similarity of images and texts")
    images(p)
    p.add_argument("--text", nargs="+", required=True, help="one or more texts")

    p = verb(verbs, "classify", cmd_classify, "zero-shot labels for images")
    images(p)
    p.add_argument("--captions", nargs="+", help="candidate captions")
    p.add_argument("--attribute", help="label this attribute (shape, colour, size, hat; digit)")

    p = verb(verbs, "nearest-words", cmd_nearest, "vocabulary words nearest to a vector")
    p.add_argument("--run", required=True, help="a CLIP run directory")
    p.add_argument("--attribute", help="matched-pair difference, e.g. hat (shapes)")
    p.add_argument("--text", help="a text's embedding")
    p.add_argument("--vector", help=".npy file with a vector")
    p.add_argument("--k", type=positive, default=5, help="how many words")
