"""Tests for toydiff.engine.checkpoint: bit-exact round trips, atomic writes, clear errors."""

import json
import os
import zipfile

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from flax import nnx

from toydiff.engine import checkpoint
from toydiff.engine.checkpoint import FILENAME, Run, load_run, save_run
from toydiff.errors import CheckpointError


def _params():
    """A nested params dict mixing key types, depths, dtypes and 0-d leaves."""
    weird = np.array([np.nan, -0.0, np.inf, 1e-45], np.float32)
    weird.view(np.uint32)[0] = 0x7FC00123  # a NaN payload must survive too
    return {
        "encoder": {
            0: {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "bias": np.float64(0.5)},
            1: {"w": np.array([[1, -2]], np.int32), "scale": jnp.asarray(weird)},
        },
        "flag": np.array([True, False]),
        7: {"deep": {"deeper": {3: np.array(-5, np.int8)}}},
        "half": np.array([1.5, -2.25], ml_dtypes.bfloat16),
        "empty": {},
    }


def _run(**changes):
    """A small run with every field populated."""
    fields = dict(
        config={"process": "ve", "net": {"hidden": [64, 64], "act": None}, "lr": 1e-3, "ema": True},
        params=_params(),
        fingerprint="9f86d081884c7d65",
        loss_history=np.array([1.0, 0.5, 0.25], np.float32),
        extra={"points": np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)},
    )
    return Run(**(fields | changes))


def _assert_same(expected, actual, where="params"):
    """Asserts two nested dicts have the same key types and bit-identical numpy leaves."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        assert [(type(k), k) for k in expected] == [(type(k), k) for k in actual], where
        for key in expected:
            _assert_same(expected[key], actual[key], f"{where}[{key!r}]")
        return
    expected = np.asarray(expected)
    assert isinstance(actual, np.ndarray), where
    assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), where
    assert actual.tobytes() == expected.tobytes(), where


def _rewrite(path, header=None, drop=()):
    """Rewrites a saved run with a changed header and/or some entries left out."""
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist() if name not in drop}
    if header is not None:
        entries["header.json"] = json.dumps(header(json.loads(entries["header.json"])))
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def _load_error(path):
    """Loads ``path``, expecting a one-line CheckpointError, and returns its message."""
    with pytest.raises(CheckpointError) as info:
        load_run(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_round_trip_is_bit_for_bit(tmp_path):
    run = _run()
    path = save_run(tmp_path, run)
    assert path == tmp_path / FILENAME
    loaded = load_run(tmp_path)
    _assert_same(run.params, loaded.params)
    _assert_same(run.extra, loaded.extra, "extra")
    _assert_same(run.loss_history, loaded.loss_history, "loss_history")
    assert loaded.config == run.config
    assert loaded.fingerprint == run.fingerprint


@pytest.mark.parametrize("target", ["directory", "file"])
def test_load_accepts_directory_or_file(tmp_path, target):
    path = save_run(tmp_path, _run(extra={}))
    loaded = load_run(tmp_path if target == "directory" else path)
    assert loaded.extra == {}
    _assert_same(_params(), loaded.params)


def test_save_creates_missing_directories(tmp_path):
    path = save_run(tmp_path / "a" / "b", _run())
    assert path.is_file()
    assert load_run(path).fingerprint == "9f86d081884c7d65"


def test_flax_nnx_model_round_trip(tmp_path):
    model = nnx.Sequential(nnx.Linear(2, 8, rngs=nnx.Rngs(0)), nnx.Linear(8, 2, rngs=nnx.Rngs(1)))
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    save_run(tmp_path, _run(params=params))

    fresh = nnx.Sequential(nnx.Linear(2, 8, rngs=nnx.Rngs(5)), nnx.Linear(8, 2, rngs=nnx.Rngs(6)))
    x = jnp.linspace(-2.0, 2.0, 20).reshape(10, 2)
    assert np.asarray(fresh(x)).tobytes() != np.asarray(model(x)).tobytes()
    state = nnx.state(fresh, nnx.Param)
    nnx.replace_by_pure_dict(state, load_run(tmp_path).params)
    nnx.update(fresh, state)
    assert np.asarray(fresh(x)).tobytes() == np.asarray(model(x)).tobytes()


def test_failed_save_keeps_old_run_and_leaves_no_temp_file(tmp_path, monkeypatch):
    save_run(tmp_path, _run())
    real_save, calls = np.save, []

    def flaky_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        real_save(*args, **kwargs)

    monkeypatch.setattr(checkpoint.np, "save", flaky_save)
    with pytest.raises(OSError, match="disk full"):
        save_run(tmp_path, _run(fingerprint="new"))
    monkeypatch.undo()

    assert len(calls) == 3
    assert os.listdir(tmp_path) == [FILENAME]
    assert load_run(tmp_path).fingerprint == "9f86d081884c7d65"


@pytest.mark.parametrize(
    "changes",
    [
        {"config": {"lr": np.float32(0.1)}},
        {"params": {("a", "b"): np.zeros(2)}},
        {"params": {"w": np.array([object()])}},
        {"params": [np.zeros(2)]},
        {"fingerprint": 123},
        {"extra": {"a/b": np.zeros(2)}},
    ],
)
def test_save_rejects_what_it_cannot_store(tmp_path, changes):
    with pytest.raises(CheckpointError) as info:
        save_run(tmp_path / "run", _run(**changes))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()


def test_missing_path(tmp_path):
    message = _load_error(tmp_path / "nowhere")
    assert "no run at" in message and "nowhere" in message and "toydiff train" in message


def test_directory_without_run(tmp_path):
    assert "no run at" in _load_error(tmp_path)


def test_truncated_file(tmp_path):
    path = save_run(tmp_path, _run())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    message = _load_error(path)
    assert "truncated" in message and str(path) in message


@pytest.mark.parametrize(
    "content",
    [b"", np.random.default_rng(0).bytes(3000), b"PK\x03\x04 not really"],
    ids=["empty", "random-bytes", "fake-zip-header"],
)
def test_garbage_file(tmp_path, content):
    path = tmp_path / FILENAME
    path.write_bytes(content)
    assert "truncated or not a toydiff run" in _load_error(path)


@pytest.mark.parametrize("header", [None, {"format": "other", "version": 1}, [1, 2]])
def test_foreign_zip(tmp_path, header):
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("weights.bin", b"\x00" * 16)
        if header is not None:
            archive.writestr("header.json", json.dumps(header))
    message = _load_error(path)
    assert "not a toydiff run" in message and "model.zip" in message


def test_newer_version(tmp_path):
    path = save_run(tmp_path, _run())
    _rewrite(path, header=lambda h: h | {"version": checkpoint.VERSION + 1})
    message = _load_error(path)
    assert "version 2" in message and "newer" in message


@pytest.mark.parametrize("entry", ["params/0.npy", "loss_history.npy", "extra/points.npy"])
def test_missing_array_entry(tmp_path, entry):
    path = save_run(tmp_path, _run())
    _rewrite(path, drop=[entry])
    message = _load_error(path)
    assert "missing array entry" in message and entry in message


def test_corrupt_array_entry(tmp_path):
    path = save_run(tmp_path, _run())
    _rewrite(path, drop=["loss_history.npy"])
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("loss_history.npy", b"\x93NUMPY garbage")
    assert "corrupt array entry" in _load_error(path)


def test_malformed_header(tmp_path):
    path = save_run(tmp_path, _run())
    _rewrite(path, header=lambda h: h | {"param_tree": [{"path": [["float", 1.5]], "entry": None}]})
    assert "malformed header" in _load_error(path)
