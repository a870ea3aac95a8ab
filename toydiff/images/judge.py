"""Independent judges of generated images, and the chapter-10 measures.

A judge never sees a diffusion model: it is trained (or set by hand) on the real training split
only, and checked on the held-out split. Each data set brings its own (``DataSpec.judge``, in
its file under ``images/data/``). Measures:

- ``accuracy``: the share of samples the judge labels with the asked-for class;
- ``diversity``: the mean pairwise distance of the samples over that of real images of the class;
- ``novelty``: the share of samples that are not copies. A copy lies nearer to some training
  image than the 5th percentile of the training images' own leave-one-out nearest-neighbour
  distances, so held-out real images score about 0.95, and the exact oracle (which can only
  return training images) about 0.

"""

from __future__ import annotations

import functools

import jax
import numpy as np

from toydiff.errors import ToydiffError
from toydiff.images import data as image_data
from toydiff.images.data.base import flatten

NOVELTY_PERCENTILE = 5.0
_CHUNK = 512


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distances (n, m) between rows of a and b."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def nearest(x, ref, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each image of x's nearest image in ref: (Euclidean distances (n,), indices (n,)).

    With ``exclude_self`` (x is ref), an image's distance to itself is left out.
    """
    a, b = flatten(x).astype(np.float64), flatten(ref).astype(np.float64)
    dist, idx = np.empty(len(a)), np.empty(len(a), np.int64)
    for s in range(0, len(a), _CHUNK):
        d = _sq_dist(a[s : s + _CHUNK], b)
        if exclude_self:
            d[np.arange(d.shape[0]), np.arange(s, s + d.shape[0])] = np.inf
        idx[s : s + _CHUNK] = d.argmin(1)
        dist[s : s + _CHUNK] = d[np.arange(d.shape[0]), idx[s : s + _CHUNK]]
    return np.sqrt(dist), idx


def nearest_distance(x, ref, exclude_self: bool = False) -> np.ndarray:
    """Euclidean distance from each image of x to its nearest image in ref, shape (n,)."""
    return nearest(x, ref, exclude_self)[0]


def copy_threshold(train_x) -> float:
    """The distance below which a sample counts as a copy of a training image."""
    loo = nearest_distance(train_x, train_x, exclude_self=True)
    return float(np.percentile(loo, NOVELTY_PERCENTILE))


def novelty(x, train_x, threshold: float | None = None) -> float:
    """The share of images of x that are not copies of a training image."""
    threshold = copy_threshold(train_x) if threshold is None else threshold
    return float(np.mean(nearest_distance(x, train_x) >= threshold))


def mean_pairwise(x) -> float:
    """The mean Euclidean distance between distinct images of x."""
    a = flatten(x).astype(np.float64)
    if len(a) < 2:
        raise ToydiffError("diversity needs at least 2 images")
    d = np.sqrt(_sq_dist(a, a))
    return float(d.sum() / (len(a) * (len(a) - 1)))


def diversity(x, real_x) -> float:
    """Mean pairwise distance of x over that of real images (of the same class)."""
    return mean_pairwise(x) / mean_pairwise(real_x)


def judge_for(data: str, size: int | None = None):
    """The independent judge of a data set at an image size (its spec's ``judge``), trained
    once per process."""
    spec = image_data.spec(data).available()
    return _judge(data, spec.check_size(size))


@functools.cache
def _judge(data: str, size: int):
    return image_data.spec(data).judge(size)


def evaluate(x, data: str, label, *, label_by=None, train=None, threshold=None) -> dict:
    """Accuracy, diversity and novelty of images that were asked to be class ``label``.

    Args:
        x: generated images, shape (n, H, W, C), or clips (n, F, H, W, C).
        data: the data set the images should come from.
        label: the class name or id they were asked to be.
        label_by: the class attribute (default: digit, or shape).
        train: the training split (loaded if None).
        threshold: the copy distance (computed from ``train`` if None).

    Returns:
        {"label", "n", "accuracy", "diversity", "novelty"}, and "consistent_share" for clips.
    """
    x = np.asarray(x, np.float32)
    if train is None:
        train = image_data.load(data, "train", size=x.shape[-2], label_by=label_by)
    label = train.label_id(label)
    judge = judge_for(data, train.shape[-2])
    predicted = judge.predict(x, train.label_by)
    out = {
        "label": train.class_names[label],
        "n": int(len(x)),
        "accuracy": float(np.mean(predicted == label)),
        "diversity": diversity(x, train.x[train.labels == label]),
        "novelty": novelty(x, train.x, threshold),
    }
    if hasattr(judge, "consistent"):  # clips: the same shape and colour in every frame
        out["consistent_share"] = float(np.mean(judge.consistent(x)))
    return out


def _per_class(model, n_per_class: int, key, **kw) -> tuple[list, np.ndarray]:
    """Samples of every class in one sampler call: (the asked class of each, images)."""
    asked = [name for name in model.class_names for _ in range(n_per_class)]
    key = jax.random.key(0) if key is None else key
    return asked, np.clip(np.asarray(model.sample(key, n=len(asked), label=asked, **kw)[-1]), -1, 1)


def score_model(model, *, n_per_class=50, key=None, **kw) -> dict:
    """Sample every class of an image model and judge the samples class by class.

    Args:
        model: a class-conditional ``ImageModel``.
        n_per_class: samples per class.
        key: PRNG key (default key(0)).
        **kw: passed to ``model.sample``: guidance, exact, sampler, steps.

    Returns:
        {"per_class": class name -> ``evaluate``'s dict, "accuracy", "diversity", "novelty"
        (the last three averaged over the classes), "samples": the judged images, shape
        (n_per_class x classes, H, W, C), clipped to [-1, 1], ``n_per_class`` of each class in
        the order of ``model.class_names``}, so a figure can show exactly what was scored.
    """
    asked, x = _per_class(model, n_per_class, key, **kw)
    train = model.dataset
    threshold = copy_threshold(train.x)
    asked = np.array(asked)
    per_class = {
        name: evaluate(x[asked == name], model.config.data, name, train=train, threshold=threshold)
        for name in model.class_names
    }
    means = {m: float(np.mean([r[m] for r in per_class.values()])) for m in _MEASURES}
    return {"per_class": per_class, **means, "samples": x}


_MEASURES = ("accuracy", "diversity", "novelty")


def confusion(model, *, n_per_class=100, key=None, **kw) -> np.ndarray:
    """The judge's confusion matrix of the model's samples: row = asked, column = judged."""
    asked, x = _per_class(model, n_per_class, key, **kw)
    names = model.class_names
    predicted = judge_for(model.config.data, model.config.net.size).predict(
        x, model.config.label_by
    )
    rows = np.array([names.index(a) for a in asked])
    counts = np.zeros((len(names), len(names)))
    np.add.at(counts, (rows, predicted), 1)
    return counts / n_per_class


def negative_effect(model, *, w=None, pairs=1, n=1500, key=None, **kw) -> dict:
    """What a negative class does, on the pairs of classes the model mixes up most.

    The pairs are (class, rival) where plain conditional samples (w = 1) of the class are most
    often judged as the rival. For each pair, at the same weight w, plain guidance (away from the
    null class) and negative guidance (away from the rival) are compared by the share of samples
    judged as the rival.

    Args:
        model: a class-conditional ``ImageModel``.
        w: the guidance weight of both (default: ``DEFAULT_NEGATIVE_GUIDANCE``).
        pairs: how many of the most-confused pairs to test.
        n: samples per pair and setting (and per class for the confusion matrix).
        key: PRNG key (default key(0)).
        **kw: passed to ``model.sample`` (sampler, steps).

    Returns:
        {"w", "pairs": [(class, rival, confusion at w = 1)], "plain_share", "negative_share"
        (judged as the rival, over all pairs), "plain_accuracy", "negative_accuracy"}.
    """
    from toydiff.engine.guidance import DEFAULT_NEGATIVE_GUIDANCE

    w = DEFAULT_NEGATIVE_GUIDANCE if w is None else w
    names = model.class_names
    conf = confusion(model, n_per_class=100, key=key, guidance=1.0, **kw)
    np.fill_diagonal(conf, -1.0)
    order = np.argsort(conf, axis=None)[::-1][:pairs]
    chosen = [
        (names[i], names[j], float(conf[i, j]))
        for i, j in zip(*np.unravel_index(order, conf.shape), strict=True)
    ]
    asked = [c for c, _, _ in chosen for _ in range(n)]
    rivals = np.array([names.index(r) for _, r, _ in chosen for _ in range(n)])
    asked_ids = np.array([names.index(c) for c in asked])
    judge = judge_for(model.config.data, model.config.net.size)
    key = jax.random.key(0) if key is None else key
    out = {"w": w, "pairs": chosen}
    for name, negative in (("plain", None), ("negative", [names[r] for r in rivals])):
        x = model.sample(key, n=len(asked), label=asked, guidance=w, negative=negative, **kw)[-1]
        predicted = judge.predict(np.clip(np.asarray(x), -1, 1), model.config.label_by)
        out[f"{name}_share"] = float(np.mean(predicted == rivals))
        out[f"{name}_accuracy"] = float(np.mean(predicted == asked_ids))
    return out


def prompt_scores(x, prompt: str, data: str = "shapes") -> dict:
    """How well images match a prompt, by the attribute judges (no CLIP, no diffusion model).

    A prompt names some attributes ("a small red circle wearing a hat" names all four; "a red
    circle" leaves size and hat free). An image is right when every named attribute is.

    Args:
        x: images (n, H, W, C).
        prompt: the prompt they were drawn for.
        data: their data set.

    Returns:
        {"prompt", "n", "prompt_accuracy", "<attribute>_accuracy" for each named attribute,
        "hat_share" (the share judged to wear a hat, shapes only)}.
    """
    from toydiff.images import text

    x = np.asarray(x, np.float32)
    named = text.attributes(prompt, data)
    judge = judge_for(data, x.shape[-2])
    values = image_data.spec(data).attributes
    right = np.ones(len(x), bool)
    out = {"prompt": prompt, "n": int(len(x))}
    for attribute, value in named.items():
        ok = judge.predict(x, attribute) == values[attribute].index(value)
        out[f"{attribute}_accuracy"] = float(ok.mean())
        right &= ok
    out["prompt_accuracy"] = float(right.mean())
    if hasattr(judge, "consistent"):  # clips: the same shape and colour in every frame
        out["consistent_share"] = float(np.mean(judge.consistent(x)))
    if "hat" in values:
        out["hat_share"] = float(np.mean(judge.predict(x, "hat") == 1))
    return out


def score_prompts(model, prompts, *, n=32, key=None, **kw) -> dict:
    """Sample every prompt at once and judge each sample against its own prompt.

    Args:
        model: a text-conditioned ``ImageModel``.
        prompts: the prompts.
        n: samples per prompt.
        key: PRNG key (default key(0)).
        **kw: passed to ``model.sample`` (guidance, negative, sampler, steps); ``negative`` may
            be one prompt or one per prompt.

    Returns:
        {"per_prompt": prompt -> ``prompt_scores``, "prompt_accuracy" (the mean over prompts),
        "<attribute>_accuracy" (means over the prompts that name it), "samples": the judged
        images, shape (n x prompts, H, W, C), clipped to [-1, 1], ``n`` per prompt in order}.
    """
    prompts = list(prompts)
    asked = [p for p in prompts for _ in range(n)]
    negative = kw.pop("negative", None)
    if isinstance(negative, list | tuple):
        negative = [q for q in negative for _ in range(n)]
    key = jax.random.key(0) if key is None else key
    x = model.sample(key, n=len(asked), label=asked, negative=negative, **kw)[-1]
    x = np.clip(np.asarray(x), -1, 1)
    per_prompt = {
        p: prompt_scores(x[i * n : (i + 1) * n], p, model.config.data)
        for i, p in enumerate(prompts)
    }
    out = {"per_prompt": per_prompt}
    keys = {
        k
        for r in per_prompt.values()
        for k in r
        if k.endswith("_accuracy") or k in ("hat_share", "consistent_share")
    }
    for k in sorted(keys):
        out[k] = float(np.mean([r[k] for r in per_prompt.values() if k in r]))
    out["samples"] = x
    return out


NEGATIVE_PROMPTS = (
    "a small green square",
    "a large red circle",
    "a small blue circle",
    "a large yellow triangle",
)


def negative_prompt_effect(model, prompts=NEGATIVE_PROMPTS, *, n=32, w=None, key=None, **kw):
    """The share wearing a hat, for prompts that name no hat: with plain guidance at the default
    w, and with a negative prompt that adds the hat ("... wearing a hat") at the image models'
    negative default (``guidance.IMAGE_NEGATIVE_GUIDANCE``).

    Args:
        model: a text-conditioned ``ImageModel``.
        prompts: prompts naming no hat.
        n: samples per prompt and setting.
        w: guidance weight with the negative prompt (default: ``IMAGE_NEGATIVE_GUIDANCE``;
            plain guidance uses the default w, 3).
        key: PRNG key.
        **kw: passed to ``model.sample`` (sampler, steps).

    Returns:
        {"per_prompt": [{"prompt", "plain_hat_share", "negative_hat_share", ...}],
        "plain_hat_share", "negative_hat_share", "negative_prompt_accuracy"}.
    """
    from toydiff.engine.guidance import DEFAULT_GUIDANCE, IMAGE_NEGATIVE_GUIDANCE

    w = IMAGE_NEGATIVE_GUIDANCE if w is None else w
    negatives = [f"{p} wearing a hat" for p in prompts]
    plain = score_prompts(model, prompts, n=n, key=key, guidance=DEFAULT_GUIDANCE, **kw)
    steered = score_prompts(model, prompts, n=n, key=key, guidance=w, negative=negatives, **kw)
    rows = [
        {
            "prompt": p,
            "negative_prompt": q,
            "plain_hat_share": plain["per_prompt"][p]["hat_share"],
            "negative_hat_share": steered["per_prompt"][p]["hat_share"],
            "negative_prompt_accuracy": steered["per_prompt"][p]["prompt_accuracy"],
        }
        for p, q in zip(prompts, negatives, strict=True)
    ]
    return {
        "per_prompt": rows,
        "w": w,
        "plain_hat_share": plain["hat_share"],
        "negative_hat_share": steered["hat_share"],
        "negative_prompt_accuracy": steered["prompt_accuracy"],
    }


def negative_direction_effect(model, prompt: str, direction: str, *, n=64, w=None, key=None, **kw):
    """What a negative prompt naming a motion does to clips: the share moving that way.

    The plain prompt (``prompt``, which names no direction) at the default w, against the same
    prompt with the negative prompt "``prompt`` moving ``direction``" at the negative default
    (``guidance.IMAGE_NEGATIVE_GUIDANCE``), from the same noise.

    Args:
        model: a text-conditioned clip ``ImageModel``.
        prompt: a prompt naming no direction, e.g. "a red circle".
        direction: the motion to forbid, e.g. "left".
        n: clips per setting.
        w: guidance weight with the negative prompt (default: the negative default).
        key: PRNG key (default key(0)).
        **kw: passed to ``model.sample`` (sampler, steps).

    Returns:
        {"prompt", "negative_prompt", "plain_w", "negative_w", "plain_share", "negative_share"
        (the shares judged moving ``direction``), "plain_consistent", "negative_consistent",
        "negative_prompt_accuracy" (every attribute ``prompt`` names right, with the negative)}.
    """
    from toydiff.engine.guidance import DEFAULT_GUIDANCE, IMAGE_NEGATIVE_GUIDANCE

    w = IMAGE_NEGATIVE_GUIDANCE if w is None else w
    negative = f"{prompt} moving {direction}"
    judge = judge_for(model.config.data, model.config.net.size)
    wanted = image_data.spec(model.config.data).attributes["direction"].index(direction)
    key = jax.random.key(0) if key is None else key
    out = {
        "prompt": prompt,
        "negative_prompt": negative,
        "plain_w": DEFAULT_GUIDANCE,
        "negative_w": w,
    }
    for name, guidance, neg in (("plain", DEFAULT_GUIDANCE, None), ("negative", w, negative)):
        x = model.sample(key, n=n, label=prompt, negative=neg, guidance=guidance, **kw)[-1]
        x = np.clip(np.asarray(x), -1, 1)
        out[f"{name}_share"] = float(np.mean(judge.predict(x, "direction") == wanted))
        out[f"{name}_consistent"] = float(np.mean(judge.consistent(x)))
        if neg is not None:
            out["negative_prompt_accuracy"] = prompt_scores(x, prompt, model.config.data)[
                "prompt_accuracy"
            ]
    return out
