"""Shared fixtures: processes and trained reference models (trained once per test session)."""

import dataclasses

import jax
import pytest

from toydiff.model import REFERENCE, REFERENCE_CONDITIONAL
from toydiff.processes import VE, VP, Flow
from toydiff.training import train

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
    return train(REFERENCE, progress=False)


@pytest.fixture(scope="session")
def naive_model():
    """The same settings, trained on the naive one-step objective."""
    return train(dataclasses.replace(REFERENCE, objective="naive"), progress=False)


@pytest.fixture(scope="session")
def conditional_model():
    """The story's 3-class model (30,000 steps, batches of 200, label dropout)."""
    return train(REFERENCE_CONDITIONAL, progress=False)
