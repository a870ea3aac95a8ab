import dataclasses

import jax
import numpy as np
import pytest

from toydiff.errors import CheckpointError, ToydiffError
from toydiff.model import REFERENCE, Model, TrainConfig
from toydiff.training import train


@pytest.fixture(scope="module")
def small():
    return train(dataclasses.replace(REFERENCE, steps=300, chunk=100), progress=False)


@pytest.fixture(scope="module")
def small_labelled():
    cfg = dataclasses.replace(
        REFERENCE,
        data="spiral-classes",
        labels=True,
        steps=200,
        chunk=100,
        net=dataclasses.replace(REFERENCE.net, num_classes=3),
    )
    return train(cfg, progress=False)


def test_save_load_bit_for_bit(small, tmp_path):
    small.save(tmp_path / "run")
    back = Model.load(tmp_path / "run")
    assert back.config == small.config
    np.testing.assert_array_equal(back.losses, small.losses)
    for a, b in zip(jax.tree.leaves(small.params), jax.tree.leaves(back.params), strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    key = jax.random.key(3)
    np.testing.assert_array_equal(small.sample(key, n=50, steps=8), back.sample(key, n=50, steps=8))


def test_config_round_trip():
    cfg = dataclasses.replace(REFERENCE, process="flow", objective="velocity")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_saving_over_a_run_keeps_it_loadable(small, tmp_path):
    small.save(tmp_path)
    small.save(tmp_path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["run.toydiff"]
    assert Model.load(tmp_path).steps == small.steps


def test_saving_never_silently_replaces_a_run(small, tmp_path):
    small.save(tmp_path)
    before = (tmp_path / "run.toydiff").read_bytes()
    with pytest.raises(ToydiffError, match="already holds a run .*2D run of spiral, 300 steps"):
        small.save(tmp_path)
    assert (tmp_path / "run.toydiff").read_bytes() == before


def test_truncated_run(small, tmp_path):
    path = small.save(tmp_path / "good")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.toydiff").write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        Model.load(bad)


def test_sample_shapes_and_exact(small):
    traj = small.sample(jax.random.key(0), n=20, steps=5, sampler="heun")
    assert traj.shape == (6, 20, 2)
    exact = small.sample(jax.random.key(0), n=20, steps=5, exact=True)
    assert not np.allclose(exact[-1], traj[-1])


def test_field_is_minus_eps(small):
    pts = np.zeros((3, 2), np.float32)
    _, eps = small.denoiser()(pts, 0.5)
    np.testing.assert_allclose(small.field(pts, 0.5), -eps)


def test_label_errors(small, small_labelled):
    with pytest.raises(ToydiffError, match="without labels"):
        small.denoiser(label="cats")
    with pytest.raises(ToydiffError, match="birds"):
        small_labelled.denoiser(label="birds")
    with pytest.raises(ToydiffError, match="--label"):
        small_labelled.denoiser(negative="dogs")
    with pytest.raises(ToydiffError, match="exact"):
        small_labelled.denoiser(label="dogs", exact=True, guidance=2.0)
    assert small_labelled.label_id("cats") == 2


def test_field_is_compiled_once(small):
    from toydiff import model as model_lib

    pts = np.zeros((900, 2), np.float32)
    small.field(pts, 0.2)
    size = model_lib._field._cache_size()
    small.field(pts, 0.7)
    small.field(pts + 1, 0.4)
    assert model_lib._field._cache_size() == size
