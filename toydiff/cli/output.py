"""What every verb of the command line prints and reads: one JSON object or a line of text, and
the arrays of a ``.npz`` file it was handed."""

from __future__ import annotations

import json
import math
import pathlib
import zipfile
import zlib

import numpy as np

from toydiff.errors import ToydiffError


def emit(args, payload: dict, text: str) -> None:
    """Print the JSON object with --json, else the human-readable text."""
    if args.json:
        print(json.dumps(plain(payload), allow_nan=False))
    else:
        print(text)


def plain(value):
    """Numpy values as plain JSON numbers and lists; NaN and inf become null (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "__array__"):
        return plain(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def load_npz(path: str, hint: str) -> dict:
    """The arrays of a .npz file; ToydiffError (with ``hint`` on how to make one) if unreadable."""
    p = pathlib.Path(path)
    if not p.exists():
        raise ToydiffError(f"no samples file at {path}; make one with {hint}")
    try:
        with np.load(p, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        reason = " ".join(str(err).split())
        raise ToydiffError(f"{path} is not a readable .npz file ({reason})") from None
