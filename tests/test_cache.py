"""The model cache's key: a model is trained again when the code that defines it changes, and
only then (``toydiff.engine.cache``)."""

import pytest

from toydiff.engine import cache
from toydiff.errors import ToydiffError
from toydiff.images import training as image_training


def test_the_2d_model_is_defined_by_the_engine_the_network_and_its_trainer():
    modules = cache.defining_modules("toydiff.training")
    for needed in (
        "toydiff.training",
        "toydiff.engine.loop",
        "toydiff.engine.objectives",
        "toydiff.engine.processes",
        "toydiff.nets.mlp",
    ):
        assert needed in modules
    for never in ("toydiff.viz", "toydiff.exercises", "toydiff.engine.samplers"):
        assert not any(m.startswith(never) for m in modules), never
    lab = ("toydiff.widgets", "toydiff.cli", "toydiff.images")
    assert not any(m.startswith(lab) for m in modules)


def test_an_image_model_is_defined_by_its_network_and_its_data_set_file():
    modules = cache.defining_modules(*image_training._defined_by("shapes"))
    assert {"toydiff.nets.unet", "toydiff.images.data.shapes", "toydiff.engine.parallel"} <= set(
        modules
    )
    assert "toydiff.images.data.digits" not in modules  # another data set's file
    for never in ("toydiff.images.judge", "toydiff.images.viz", "toydiff.images.widgets"):
        assert never not in modules


def _fake(monkeypatch, tmp_path, files: dict):
    """Point the cache at fake modules toydiff.fake.* written to tmp_path."""
    for name, source in files.items():
        (tmp_path / f"{name}.py").write_text(source)

    def source(module):
        path = tmp_path / f"{module.rsplit('.', 1)[-1]}.py"
        return path if module.startswith("toydiff.fake.") and path.exists() else None

    monkeypatch.setattr(cache, "_source", source)
    cache.code_fingerprint.cache_clear()
    return cache.code_fingerprint("toydiff.fake.a")


def test_docstrings_comments_and_layout_change_nothing_code_does(tmp_path, monkeypatch):
    a = 'def f(x):\n    """Double."""\n    return 2 * x\n\nfrom toydiff.fake import b\n'
    base = _fake(monkeypatch, tmp_path, {"a": a, "b": "Y = 1\n"})
    same = {
        "a": '"""A module."""\n\n\ndef f(x):  # twice\n    return 2*x\n'
        "from toydiff.fake import b\n",
        "b": "# the constant\nY = 1\n",
    }
    assert _fake(monkeypatch, tmp_path, same) == base
    assert _fake(monkeypatch, tmp_path, {"a": a, "b": "Y = 2\n"}) != base  # an imported module
    assert _fake(monkeypatch, tmp_path, {"a": a.replace("2 *", "3 *"), "b": "Y = 1\n"}) != base
    cache.code_fingerprint.cache_clear()


def test_an_unknown_trainer_is_an_error():
    with pytest.raises(ToydiffError, match="not a module of toydiff"):
        cache.defining_modules("toydiff.nowhere")
