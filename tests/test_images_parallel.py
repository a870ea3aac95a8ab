"""Data parallelism: lanes, 8 simulated devices, two processes, and resuming a killed run.

The multi-device runs are separate processes (a device count is fixed when JAX starts), driven
through the real command line. They all train the same small run; every one must end at the
parameters of the plain one-device run.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from toydiff.engine import checkpoint, parallel
from toydiff.images.model import ImageModel

RUN = [
    "images", "train", "--data", "digits", "--steps", "8", "--batch", "16",
    "--channels", "8", "--no-attention", "--quiet", "--json",
]  # fmt: skip
"""The small run of test_cli_images (the same settings, so the same compiled training chunk of 8
steps): every one-device process after the first reads it from the compilation cache."""


def _cli(args, devices=1, env=None, **popen):
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "toydiff.cli", *map(str, args)]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def _run(args, devices=1):
    proc = _cli(args, devices)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return json.loads(out) if out.strip() else None


def _leaves(path):
    return [np.asarray(a) for a in jax.tree.leaves(ImageModel.load(path).params)]


def _assert_same_training(path, reference):
    """The same run up to float round-off: every step's loss, and the parameters.

    Splitting a batch over devices changes the order of the gradient sums, so gradients differ
    in the last bits. Adam divides each gradient by its own running size, so for the few
    parameters whose gradient is nearly zero (biases feeding a group norm) those bits become
    updates of up to lr = 2e-3 per step. The losses must agree to float precision (the same
    images, times and noise), nearly every parameter to 1e-5, and every one to within 1e-3,
    while a different seed moves them by ~0.1.
    """
    a, b = ImageModel.load(path), ImageModel.load(reference)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-4)  # a different draw: ~10%
    x = np.concatenate([np.ravel(v) for v in jax.tree.leaves(a.params)])
    y = np.concatenate([np.ravel(v) for v in jax.tree.leaves(b.params)])
    assert np.abs(x - y).max() < 1e-3
    assert np.mean(np.abs(x - y) > 1e-5 + 1e-4 * np.abs(y)) < 0.02


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("one-device")
    report = _run([*RUN, "--out", out])
    assert report["mesh"]["devices"] == 1
    return out


def test_lanes_hold_every_training_image_once():
    n, batch = 1438, 128
    members = [parallel.lane_members(n, batch, j) for j in range(batch)]
    everything = np.sort(np.concatenate(members))
    np.testing.assert_array_equal(everything, np.arange(n))
    sizes = [len(m) for m in members]
    assert max(sizes) - min(sizes) <= 1


def test_lane_draws_stay_inside_each_lane():
    mesh = parallel.make_mesh()
    x = np.arange(10, dtype=np.float32)[:, None, None, None]
    lanes = parallel.make_lanes(mesh, 4, 10, lambda idx: (x[idx], idx.astype(np.int32)))
    for step in range(20):
        xb, cond = lanes.draw(jax.random.key(step))
        assert np.array_equal(np.asarray(cond) % 4, np.arange(4))  # slot j draws from lane j
        np.testing.assert_array_equal(np.asarray(xb)[:, 0, 0, 0], np.asarray(cond))


def test_eight_devices_train_to_the_one_device_parameters(reference, tmp_path):
    report = _run([*RUN, "--out", tmp_path], devices=8)
    assert report["mesh"]["devices"] == 8
    _assert_same_training(tmp_path, reference)


DIT = [*RUN[:8], "--net", "dit", "--width", "16", "--depth", "1", "--heads", "2", *RUN[11:]]
"""The same small run with a small transformer instead of the U-Net."""


def test_eight_devices_train_the_transformer_to_the_one_device_parameters(tmp_path):
    one, eight = tmp_path / "one", tmp_path / "eight"
    assert _run([*DIT, "--out", one])["mesh"]["devices"] == 1
    assert _run([*DIT, "--out", eight], devices=8)["mesh"]["devices"] == 8
    assert ImageModel.load(one).config.network == "dit"
    _assert_same_training(eight, one)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_to_the_one_process_parameters(reference, tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    procs = [
        _cli(
            [
                *RUN,
                "--out",
                tmp_path,
                "--coordinator",
                address,
                "--num-processes",
                2,
                "--process-id",
                i,
            ],
            devices=2,
        )  # fmt: skip
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    report = json.loads(outputs[0][0])
    assert outputs[1][0].strip() == ""  # only process 0 prints
    assert report["mesh"]["devices"] == 4 and report["mesh"]["processes"] == 2
    _assert_same_training(tmp_path, reference)


LONG = [*RUN[:4], "--steps", "160", *RUN[6:], "--checkpoint-every", "20"]


def _state_step(out) -> int:
    try:
        return checkpoint.load_run(out / "state.toydiff").config["step"]
    except Exception:  # not written yet, or being replaced
        return 0


def test_a_killed_run_resumes_bit_for_bit(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _run([*LONG, "--out", whole])
    proc = _cli([*LONG, "--out", killed])
    deadline = time.time() + 300
    while _state_step(killed) < 20 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    step = _state_step(killed)
    assert 20 <= step < 160, f"the run was not killed mid-way (checkpoint at step {step})"
    assert not (killed / "run.toydiff").exists()
    _run([*LONG, "--out", killed, "--resume"])
    for a, b in zip(_leaves(killed), _leaves(whole), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ImageModel.load(killed).losses, ImageModel.load(whole).losses)
