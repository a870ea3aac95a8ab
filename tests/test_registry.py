"""Registries: the names a user can type, declared once (``toydiff.engine.registry``)."""

import pytest

from toydiff.engine import objectives, processes, samplers
from toydiff.engine.registry import Registry
from toydiff.errors import DataError, ToydiffError
from toydiff.images import data


def test_a_registry_keeps_order_and_names_the_allowed_ones():
    r = Registry("colour", [("red", 1), ("green", 2)])
    assert r.names == ("red", "green") and list(r) == ["red", "green"] and len(r) == 2
    assert r["green"] == 2 and "red" in r and "blue" not in r and r.get("blue") is None
    with pytest.raises(ToydiffError, match="unknown colour 'blue'; allowed: red, green"):
        r["blue"]
    with pytest.raises(DataError):
        Registry("thing", [], error=DataError)["x"]


def test_the_engine_and_the_data_sets_are_registries():
    assert samplers.SAMPLERS.names == ("ddpm", "ddpm-nonoise", "ddim", "euler", "heun", "sde")
    assert processes.PROCESSES.names == ("ve", "vp", "vp-cosine", "flow")
    assert objectives.OBJECTIVES.names == ("eps", "x0", "v", "velocity", "naive")
    assert data.REGISTRY.names[:2] == ("digits", "shapes")
    for name, spec in data.REGISTRY.items():
        assert spec.name == name and spec.recipe.data == name
