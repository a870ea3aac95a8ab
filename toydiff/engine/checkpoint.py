"""Saving and loading a training run as one self-describing file.

A run is everything training produces: the config it used, the network parameters, the
fingerprint of the data it saw, the loss curve and any extra named arrays (for example the
training points). ``save_run`` writes it to ``DIR/run.toydiff`` and ``load_run`` reads it back,
bit for bit.

The file is a zip archive holding

- ``header.json``: ``{"format": "toydiff-run", "version": 1, "config": ..., "fingerprint": ...,
  "param_tree": [...], "extra": [...], "dtypes": {...}}``;
- ``params/<i>.npy``: one entry per parameter leaf, named by its position in ``param_tree``;
- ``loss_history.npy``;
- ``extra/<name>.npy``: one entry per extra array.

Each ``param_tree`` item is ``{"path": [["str", "layers"], ["int", 0], ["str", "kernel"]],
"entry": "params/0.npy"}``, so int and str keys come back with their own types (an empty
sub-dict has ``"entry": null``). ``.npy`` cannot name the ml_dtypes types such as bfloat16, so
``dtypes`` maps those entries to their dtype name. No entry is ever unpickled.

The write is atomic: the archive goes to a temporary file beside the target, is flushed to disk,
and then renamed over it, so a crash leaves either the old run or the new one, never half of one.

Before a long job writes a run, ``check_output`` makes sure it can: the directory is not a file,
can be created and written to (a probe file is written and removed), and holds no run that would
be replaced (``check_vacant``, which names the run already there with ``describe_run``).

References:
    NumPy NEP 1, "A simple file format for NumPy arrays" (the ``.npy`` entries).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import pathlib
import tempfile
import time
import zipfile
import zlib
from collections.abc import Mapping

import ml_dtypes
import numpy as np

from toydiff.errors import CheckpointError, ToydiffError

FILENAME = "run.toydiff"
FORMAT = "toydiff-run"
VERSION = 1

_HEADER = "header.json"
_LOSS = "loss_history.npy"
_KEY_TYPES = {"str": str, "int": int}
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError)


@dataclasses.dataclass(frozen=True)
class Run:
    """What one training run produces.

    Attributes:
        config: JSON-serialisable settings (nested dicts, lists, str, int, float, bool, None).
            JSON has no tuples or int keys: tuples come back as lists, int keys as strings.
        params: nested dict of parameter arrays with str or int keys, as returned by
            ``nnx.to_pure_dict(state)``. Leaves may have any dtype and shape, including 0-d.
        fingerprint: hex string identifying the training data.
        loss_history: (k,) float32 training loss per logged step.
        extra: optional named numpy arrays, e.g. ``{"points": (n, 2) float32}``.
    """

    config: dict
    params: dict
    fingerprint: str
    loss_history: np.ndarray
    extra: dict = dataclasses.field(default_factory=dict)


def save_run(
    directory, run: Run, filename: str = FILENAME, *, overwrite: bool = True
) -> pathlib.Path:
    """Writes ``run`` to ``directory/run.toydiff`` (or ``directory/filename``) atomically.

    The directory is created if needed. If anything fails, the temporary file is removed and any
    checkpoint already there is left untouched.

    Args:
        directory: folder for the run (str or path-like).
        run: the run to save.
        filename: the file's name inside the directory.
        overwrite: replace a file already there (the default here, where training states are
            rewritten); False refuses, naming it (``check_vacant``), as the models' ``save`` do.

    Returns:
        The path of the written file.

    Raises:
        CheckpointError: the run cannot be stored (a non-JSON config, an unsupported param key or
            leaf) or the directory cannot be created.
        ToydiffError: ``overwrite`` is False and the directory already holds the file.
    """
    directory = pathlib.Path(directory)
    if not overwrite:
        check_vacant(directory, (filename,), hint="pass overwrite=True to replace it")
    header, arrays = _pack(run)
    text = _header_text(header)
    _make_directory(directory)
    path = directory / filename
    _write_atomic(path, text, arrays)
    return path


def load_run(directory_or_file) -> Run:
    """Reads a run written by ``save_run``.

    Args:
        directory_or_file: the run's folder or the ``run.toydiff`` file itself.

    Returns:
        The run; every array is a numpy array with the saved dtype, shape and bytes.

    Raises:
        CheckpointError: the path does not exist, or the file is truncated, foreign, from a newer
            toydiff, or lacks an entry its header names.
    """
    path = _resolve(directory_or_file)
    try:
        with zipfile.ZipFile(path) as archive:
            header = _read_header(archive, path)
            return _unpack(archive, header, path)
    except _ZIP_ERRORS:
        raise _error(f"{path} is truncated or not a toydiff run") from None
    except OSError as exc:
        raise _error(f"cannot read {path}: {exc.strerror or exc}") from None


def run_kind(directory_or_file) -> str | None:
    """What kind of run a file holds, from its header alone: None (a 2D run), ``"images"``,
    ``"clip"`` or ``"images-state"``. CheckpointError as ``load_run`` for a bad file."""
    path = _resolve(directory_or_file)
    try:
        with zipfile.ZipFile(path) as archive:
            config = _read_header(archive, path).get("config")
    except _ZIP_ERRORS:
        raise _error(f"{path} is truncated or not a toydiff run") from None
    except OSError as exc:
        raise _error(f"cannot read {path}: {exc.strerror or exc}") from None
    return config.get("kind") if isinstance(config, dict) else None


def kind_name(kind: str | None) -> str:
    """A run kind in words: "a 2D run", "an image run", "a toy CLIP", ..."""
    return _KINDS.get(kind, "a run")


# Checking an output directory before the work.


def check_output(
    directory, *, overwrite: bool = False, filenames=(FILENAME,), hint: str = ""
) -> pathlib.Path:
    """Check, before any training, that a run can be written to ``directory``.

    Args:
        directory: the run directory (created if missing).
        overwrite: a run already there may be replaced.
        filenames: the files that make a run there (``run.toydiff``; image runs add their
            training state).
        hint: what the message of a refused run suggests; default "pass --overwrite ...".

    Returns:
        The directory, as a path.

    Raises:
        ToydiffError: ``directory`` is a file, cannot be created or written, or holds a run that
            would be replaced (without ``overwrite``).
    """
    directory = pathlib.Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ToydiffError(f"--out {directory} is a file; expected a run directory")
    if not overwrite:
        check_vacant(directory, filenames, hint or "pass --overwrite to replace it")
    check_writable(directory)
    return directory


def check_vacant(directory, filenames=(FILENAME,), hint: str = "pass --overwrite") -> None:
    """Raise ToydiffError, naming the run, if ``directory`` holds any of ``filenames``."""
    directory = pathlib.Path(directory)
    existing = [directory / name for name in filenames if (directory / name).is_file()]
    if existing:
        described = "; ".join(f"{p.name}: {describe_run(p)}" for p in existing)
        raise ToydiffError(f"{directory} already holds a run ({described}); {hint}")


def check_writable(directory) -> pathlib.Path:
    """Create ``directory`` and write and remove a probe file in it, or raise ToydiffError."""
    directory = pathlib.Path(directory)
    if directory.is_file():
        raise ToydiffError(f"cannot write to {directory}: it is a file, not a folder")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe"):
            pass
    except OSError as err:
        raise ToydiffError(f"cannot write to {directory}: {err.strerror or err}") from None
    return directory


_KINDS = {
    None: "a 2D run",
    "images": "an image run",
    "clip": "a toy CLIP",
    "images-state": "an image training state",
}


def describe_run(path) -> str:
    """What the run file at ``path`` is, in a few words: "a 2D run of spiral, 15000 steps,
    saved 2025-05-01 14:03" (its kind, data, steps trained and the file's time)."""
    path = pathlib.Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read(_HEADER))["config"]
            steps = len(np.load(io.BytesIO(archive.read(_LOSS)), allow_pickle=False))
        saved = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
        kind = config.get("kind")
        settings = config.get("train", {}) if kind == "images-state" else config
        data = settings.get("data", "unknown data")
        interrupted = ", interrupted" if settings.get("interrupted") else ""
    except (OSError, KeyError, TypeError, ValueError, AttributeError, *_ZIP_ERRORS):
        return "a file that is not a readable run"
    return f"{_KINDS.get(kind, 'a run')} of {data}, {steps} steps{interrupted}, saved {saved}"


# Writing.


def _pack(run: Run) -> tuple[dict, dict[str, np.ndarray]]:
    """Splits a run into a JSON header and a dict of archive entry name -> array."""
    if not isinstance(run.params, Mapping):
        raise _error(f"run params must be a nested dict, got {type(run.params).__name__}")
    if not isinstance(run.fingerprint, str):
        raise _error(f"run fingerprint must be a str, got {type(run.fingerprint).__name__}")
    arrays = {_LOSS: _as_array(run.loss_history, "loss_history")}
    param_tree = []
    for i, (keys, leaf) in enumerate(_flatten(run.params, ())):
        entry = None if leaf is None else f"params/{i}.npy"
        param_tree.append({"path": [_encode_key(k, keys) for k in keys], "entry": entry})
        if entry is not None:
            arrays[entry] = _as_array(leaf, f"params{list(keys)}")
    for name, value in run.extra.items():
        arrays[_extra_entry(name)] = _as_array(value, f"extra[{name!r}]")
    header = {
        "format": FORMAT,
        "version": VERSION,
        "config": run.config,
        "fingerprint": run.fingerprint,
        "param_tree": param_tree,
        "extra": list(run.extra),
        "dtypes": {name: tag for name, a in arrays.items() if (tag := _dtype_tag(a))},
    }
    return header, arrays


def _header_text(header: dict) -> str:
    """Serialises the header, refusing a config that JSON cannot hold."""
    try:
        return json.dumps(header)
    except (TypeError, ValueError) as exc:
        raise _error(f"run config is not JSON-serialisable: {exc}") from None


def _flatten(tree, keys: tuple):
    """Yields (key path, leaf) pairs of a nested dict; an empty dict yields (path, None)."""
    if not isinstance(tree, Mapping):
        yield keys, tree
        return
    if not tree:
        yield keys, None
    for key, child in tree.items():
        yield from _flatten(child, keys + (key,))


def _encode_key(key, keys: tuple) -> list:
    """Encodes one dict key as a JSON [type, key] pair."""
    for tag, kind in _KEY_TYPES.items():
        if type(key) is kind:
            return [tag, key]
    raise _error(
        f"params key {key!r} at {list(keys)} has type {type(key).__name__}; "
        "only str and int keys can be saved"
    )


def _as_array(value, where: str) -> np.ndarray:
    """Converts a leaf to numpy, refusing object arrays (they would need pickle)."""
    array = np.asarray(value)
    if array.dtype.hasobject:
        raise _error(f"{where} has dtype {array.dtype}; only numeric arrays can be saved")
    return array


def _extra_entry(name) -> str:
    """The archive entry name of one extra array."""
    if not isinstance(name, str) or not name or "/" in name:
        raise _error(f"extra array name {name!r} must be a non-empty str without '/'")
    return f"extra/{name}.npy"


def _dtype_tag(array: np.ndarray) -> str | None:
    """The ml_dtypes name (e.g. 'bfloat16') of a dtype that .npy stores as raw void, else None."""
    name = array.dtype.name
    return name if array.dtype.kind == "V" and hasattr(ml_dtypes, name) else None


def _make_directory(directory: pathlib.Path) -> None:
    """Creates the run directory, turning OS failures into a CheckpointError."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _error(f"cannot create run directory {directory}: {exc.strerror or exc}") from None


def _write_atomic(path: pathlib.Path, header: str, arrays: dict) -> None:
    """Writes the archive to a temporary file beside ``path``, syncs it, then renames it."""
    tmp = tempfile.NamedTemporaryFile(delete=False, dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with tmp:
            _write_zip(tmp, header, arrays)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp.name, 0o644)  # mkstemp makes 0600; a run is an ordinary shareable file.
        os.replace(tmp.name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp.name)
        raise
    _sync_directory(path.parent)


def _write_zip(file, header: str, arrays: dict) -> None:
    """Writes header.json and one .npy entry per array into an open binary file."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_HEADER, header)
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            archive.writestr(name, buffer.getvalue())


def _sync_directory(directory: pathlib.Path) -> None:
    """Flushes the rename to disk where the OS allows opening a directory (POSIX)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# Reading.


def _resolve(directory_or_file) -> pathlib.Path:
    """The checkpoint file for a run directory or file path; it must exist."""
    path = pathlib.Path(directory_or_file)
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise _error(f"no run at {path}; train one with `toydiff train` or `toydiff images train`")
    return path


def _read_header(archive: zipfile.ZipFile, path: pathlib.Path) -> dict:
    """Reads and checks header.json: our format, a version we can read."""
    if _HEADER not in archive.namelist():
        raise _error(f"{path} is not a toydiff run (foreign file)")
    try:
        header = json.loads(archive.read(_HEADER))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _error(f"{path} is truncated or not a toydiff run (unreadable header)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _error(f"{path} is not a toydiff run (foreign file)")
    version = header.get("version")
    if type(version) is not int:
        raise _error(f"{path} has a malformed header (version {version!r})")
    if version > VERSION:
        raise _error(
            f"{path} is format version {version}, newer than this toydiff reads "
            f"({VERSION}); upgrade toydiff"
        )
    return header


def _unpack(archive: zipfile.ZipFile, header: dict, path: pathlib.Path) -> Run:
    """Builds a Run from a checked header and the archive's array entries."""

    def read(entry):
        return _read_array(archive, entry, header.get("dtypes", {}), path)

    try:
        return Run(
            config=header["config"],
            params=_build_tree(header["param_tree"], read),
            fingerprint=header["fingerprint"],
            loss_history=read(_LOSS),
            extra={name: read(_extra_entry(name)) for name in header.get("extra", [])},
        )
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise _error(f"{path} has a malformed header ({type(exc).__name__}: {exc})") from None


def _build_tree(param_tree: list, read) -> dict:
    """Rebuilds the nested params dict from its header description."""
    tree = {}
    for item in param_tree:
        keys = [_decode_key(pair) for pair in item["path"]]
        node = tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        entry = item["entry"]
        value = {} if entry is None else read(entry)
        if keys:
            node[keys[-1]] = value
    return tree


def _decode_key(pair: list):
    """Decodes one [type, key] pair, checking the key has the recorded type."""
    tag, key = pair
    if type(key) is not _KEY_TYPES[tag]:
        raise ValueError(f"key {key!r} is not a {tag}")
    return key


def _read_array(archive: zipfile.ZipFile, entry: str, dtypes: dict, path) -> np.ndarray:
    """Loads one .npy entry without pickle and restores an ml_dtypes dtype if recorded."""
    try:
        data = archive.read(entry)
    except KeyError:
        raise _error(f"{path} is missing array entry {entry!r}") from None
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise _error(f"{path} has a corrupt array entry {entry!r}: {exc}") from None
    tag = dtypes.get(entry)
    return array if tag is None else _view_as(array, tag, entry, path)


def _view_as(array: np.ndarray, tag: str, entry: str, path) -> np.ndarray:
    """Reinterprets a raw-void array as the ml_dtypes type named ``tag``."""
    dtype = getattr(ml_dtypes, tag, None)
    if dtype is None or np.dtype(dtype).itemsize != array.dtype.itemsize:
        raise _error(f"{path} entry {entry!r} has dtype {tag!r}, which this install cannot read")
    return array.view(dtype)


def _error(message: str) -> CheckpointError:
    """A CheckpointError whose message is guaranteed to be one line."""
    return CheckpointError(" ".join(message.splitlines()))
