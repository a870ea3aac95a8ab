import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toydiff import data
from toydiff.engine.loop import objective
from toydiff.errors import ToydiffError, TrainingError
from toydiff.model import REFERENCE
from toydiff.nets.mlp import init_network
from toydiff.training import train, train_chunks

SMALL = dataclasses.replace(REFERENCE, steps=600, chunk=200)


def _leaves(model):
    return [np.asarray(a) for a in jax.tree.leaves(model.params)]


@pytest.mark.quality
def test_loss_falls_and_history_is_complete(seeded, quality):
    """The objective on one fixed set of draws (each spiral point 100 times) falls by at least a
    tenth from the initial weights to the trained ones. (The per-step losses are too noisy for
    this: each step draws its own times and noise, and the first 100 steps already learn; their
    ratio to the last 100 ranged 0.83-0.92 over training seeds 0-9.)"""
    config = seeded(dataclasses.replace(SMALL, ema=0.0))  # the weights as trained, not averaged
    model = train(config, progress=False)
    assert model.losses.shape == (600,)
    assert model.timing["steps_per_s"] > 0 and model.timing["compile_s"] > 0
    x0 = jnp.tile(jnp.asarray(data.load("spiral").x), (100, 1))
    graphdef, initial = init_network(config.net, config.seed)
    loss = objective(config)
    key = jax.random.key(123)
    before, after = (float(loss(p, graphdef, key, x0, None)[0]) for p in (initial, model.params))
    quality.below("loss on fixed draws, trained / initial", after / before, 0.9)  # 0.55 here


def test_same_seed_same_model_and_different_seed_differs():
    a, b = train(SMALL, progress=False), train(SMALL, progress=False)
    c = train(dataclasses.replace(SMALL, seed=1), progress=False)
    assert all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b), strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(c), strict=True))


def test_chunks_yield_growing_snapshots():
    steps = [m.steps for m in train_chunks(dataclasses.replace(SMALL, steps=500))]
    assert steps == [200, 400, 500]


def test_chunking_does_not_change_the_result():
    a = train(dataclasses.replace(SMALL, chunk=600), progress=False)
    b = train(dataclasses.replace(SMALL, chunk=150), progress=False)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-5)


def test_ctrl_c_keeps_the_last_finished_chunk():
    def stop_after_two(model):
        if model.steps == 400:
            raise KeyboardInterrupt

    model = train(SMALL, progress=False, callback=stop_after_two)
    assert model.interrupted and model.steps == 400
    assert np.all(np.isfinite(_leaves(model)[0]))


def test_non_finite_loss_stops_with_a_clear_message():
    with pytest.raises(TrainingError, match="diverged.*step"):
        train(dataclasses.replace(SMALL, lr=1e12), progress=False)


def test_minibatches_and_labels():
    cfg = dataclasses.replace(
        SMALL,
        data="spiral-classes",
        labels=True,
        batch_size=64,
        net=dataclasses.replace(SMALL.net, num_classes=3),
        cond_drop=0.2,
    )
    model = train(cfg, progress=False)
    assert model.steps == 600 and np.isfinite(model.losses).all()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": 0}, "steps"),
        ({"cond_drop": 1.5}, "cond-drop"),
        ({"labels": True}, "labels"),
        ({"batch_size": -5}, "batch-size"),
        ({"lr": -1.0}, "lr"),
        ({"sigma_max": 0.005}, "sigma-max"),
    ],
)
def test_bad_settings(changes, message):
    with pytest.raises(ToydiffError, match=message):
        train(dataclasses.replace(SMALL, **changes), data.spiral(), progress=False)


def test_unknown_process_and_objective():
    with pytest.raises(ToydiffError, match="flow"):
        dataclasses.replace(SMALL, process="sde")
    with pytest.raises(ToydiffError, match="velocity"):
        dataclasses.replace(SMALL, objective="noise")


def test_cached_train_trains_once(tmp_path, monkeypatch):
    from toydiff import training

    monkeypatch.setenv("TOYDIFF_CACHE", str(tmp_path))
    cfg = dataclasses.replace(SMALL, steps=200)
    first = training.cached_train(cfg, progress=False)
    assert len(list(tmp_path.iterdir())) == 1
    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("trained again"))
    again = training.cached_train(cfg, progress=False)
    assert all(np.array_equal(x, y) for x, y in zip(_leaves(first), _leaves(again), strict=True))


def test_a_complete_cache_entry_loads_without_writing(tmp_path, monkeypatch):
    """A read-only shared cache (a hub image warmed once) serves its models: no lock, no write."""
    from toydiff import training
    from toydiff.engine import cache

    monkeypatch.setenv("TOYDIFF_CACHE", str(tmp_path))
    cfg = dataclasses.replace(SMALL, steps=400)
    first = training.cached_train(cfg, progress=False)

    def no_writes(*args, **kwargs):
        raise PermissionError(13, "Permission denied (a read-only cache)")

    monkeypatch.setattr(cache.filelock, "FileLock", no_writes)
    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("trained again"))
    again = training.cached_train(cfg, progress=False)
    assert all(np.array_equal(x, y) for x, y in zip(_leaves(first), _leaves(again), strict=True))
    assert [m.steps for m in training.cached_snapshots(cfg, progress=False)] == [200, 400]
