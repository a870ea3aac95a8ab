"""The model cache: train a model once, then load it, until the code that defines it changes.

A cache entry is a folder named by the hash of a model's *key*: its config, the fingerprint of its
training data, and the fingerprint of the code that defines it (``code_fingerprint``). That code
is the trainer's module and every toydiff module it imports, directly or not, except the ones
that cannot change a trained weight (``NOT_DEFINING``: sampling, guidance, the oracle, limits,
checkpoints, the cache itself) and never the lab (pictures, widgets, exercises, the command
line). Each module counts by its syntax tree without docstrings, so an edited comment, docstring
or line break retrains nothing, while an edited loss, network or data generator retrains exactly
the models built on it.

Entries are written atomically and under a file lock, so processes share a cache safely and a
read-only cache (a warmed JupyterHub image) works.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import pathlib
from collections.abc import Callable

import filelock

from toydiff.engine import compilation
from toydiff.errors import ToydiffError

NOT_DEFINING = frozenset(
    {
        "toydiff.errors",
        "toydiff.engine.cache",
        "toydiff.engine.checkpoint",
        "toydiff.engine.compilation",
        "toydiff.engine.guidance",
        "toydiff.engine.limits",
        "toydiff.engine.oracle",
        "toydiff.engine.samplers",
        "toydiff.engine.sampling",
    }
)
"""Modules whose code cannot change what a training run computes: how models are sampled,
guided, checked, saved and cached. A change to one of them never retrains a cached model."""

LAB = ("toydiff.viz", "toydiff.widgets", "toydiff.exercises", "toydiff.demos", "toydiff.cli")
"""Packages and modules of the lab and the command line, never part of a model's code."""


def cache_dir() -> pathlib.Path:
    """Where cached models live: $TOYDIFF_CACHE, else ~/.cache/toydiff."""
    return compilation.folder().parent


_PACKAGE = pathlib.Path(__file__).resolve().parents[1]  # the toydiff folder


def _source(module: str) -> pathlib.Path | None:
    """The source file of a toydiff module; None for a package (its ``__init__`` only gathers
    names) or for a name that is not a module (``from toydiff.engine.loop import follow``)."""
    path = _PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")
    return path if module.startswith("toydiff.") and path.is_file() else None


def _imports(module: str, tree: ast.Module) -> set[str]:
    """The toydiff modules a module imports, anywhere in its body (functions included)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("toydiff")}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.startswith("toydiff"):
                found.add(node.module)
                # ``from toydiff.engine import loop`` imports the module toydiff.engine.loop
                found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if _source(m) is not None}


def _without_docstrings(tree: ast.Module) -> ast.Module:
    """The tree with every module, class and function docstring removed (in place)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]
    return tree


def defining_modules(*roots: str) -> tuple[str, ...]:
    """The modules whose code defines what the trainers ``roots`` compute, sorted.

    The roots and every toydiff module they import, transitively (package ``__init__`` files
    only gather names and do not count), stopping at ``NOT_DEFINING`` and ``LAB``.
    """
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen or module in NOT_DEFINING or module.startswith(LAB):
            continue
        if _source(module) is None:
            raise ToydiffError(f"{module} is not a module of toydiff")
        seen.add(module)
        tree = ast.parse(_source(module).read_bytes())
        todo.extend(_imports(module, tree))
    return tuple(sorted(seen))


@functools.cache
def code_fingerprint(*roots: str) -> str:
    """A hash of the code that defines the models the trainers ``roots`` make.

    Each module in ``defining_modules(*roots)`` counts by its syntax tree without docstrings
    (comments and formatting never reach the tree), so only a change to what the code does
    changes the fingerprint.
    """
    h = hashlib.sha256()
    for module in defining_modules(*roots):
        tree = _without_docstrings(ast.parse(_source(module).read_bytes()))
        h.update(module.encode() + b"\0" + ast.dump(tree).encode() + b"\0")
    return h.hexdigest()[:16]


def cache_entry(parts: list) -> pathlib.Path:
    """The cache folder of the model named by ``parts`` (trained or not)."""
    blob = json.dumps(parts, sort_keys=True)
    return cache_dir() / hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached(parts: list, load: Callable, make: Callable):
    """Load a model from the cache entry named by the hash of ``parts``, or make and save it.

    Args:
        parts: JSON-serialisable parts of the cache key (config, data fingerprint, code
            fingerprint).
        load: ``load(directory) -> model``; a ToydiffError (a damaged entry) means train again.
        make: ``make() -> model``, a model with ``save(directory)`` and ``interrupted``.

    Returns:
        The model.
    """
    directory = cache_entry(parts)
    if (directory / "run.toydiff").exists():
        # A complete entry: written atomically, so it loads without the lock (a read-only
        # shared cache, e.g. one warmed in a JupyterHub image, works too).
        try:
            return load(directory)
        except ToydiffError:
            pass  # a damaged entry is trained again below, under the lock
    directory.mkdir(parents=True, exist_ok=True)
    # One process trains an entry; another asking for it meanwhile waits, then loads it.
    with filelock.FileLock(directory / ".lock"):
        if (directory / "run.toydiff").exists():
            try:
                return load(directory)
            except ToydiffError:
                pass  # a damaged cache entry is simply trained again
        model = make()
        if not model.interrupted:
            model.save(directory, overwrite=True)  # a damaged entry is replaced
    return model
