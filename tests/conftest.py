"""Shared fixtures: processes and the trained reference models.

The models come from ``cached_train``, keyed by config, data and source code, so the tests and the
notebooks of one CI run (which points TOYDIFF_CACHE at a fresh folder) train each model once.
"""

import dataclasses

import jax
import pytest

from toydiff.model import REFERENCE, REFERENCE_CONDITIONAL, REFERENCE_LONG
from toydiff.processes import VE, VP, Flow
from toydiff.training import cached_train

PROCESSES = {
    "ve": VE(),
    "vp": VP(),
    "vp-cosine": VP(schedule="cosine"),
    "flow": Flow(),
}


@pytest.fixture(params=list(PROCESSES), ids=list(PROCESSES))
def process(request):
    return PROCESSES[request.param]


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture(scope="session")
def reference_model():
    """The story's spiral model on the reference settings (15,000 full-batch steps)."""
    return cached_train(REFERENCE, progress=False)


@pytest.fixture(scope="session")
def naive_model():
    """The same settings, trained on the naive one-step objective."""
    return cached_train(dataclasses.replace(REFERENCE, objective="naive"), progress=False)


@pytest.fixture(scope="session")
def conditional_model():
    """The story's 3-class model (30,000 steps, batches of 200, label dropout)."""
    return cached_train(REFERENCE_CONDITIONAL, progress=False)


@pytest.fixture(scope="session")
def long_model():
    """The spiral model trained for 30,000 steps (chapter 7)."""
    return cached_train(REFERENCE_LONG, progress=False)
