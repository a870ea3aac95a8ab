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


# ----------------------------------------------------------------------------- CI order

# `pytest -n 2 --dist worksteal` first hands each worker one contiguous half of the collection,
# then moves tests from the back of the longer queue to whichever worker runs dry. So each half
# starts with the groups that train the big models (trained once, into the shared cache) and the
# tests and notebooks that reuse them, arranged so that the two workers never wait for the same
# model at the same time; the light tests fill the rest of each half and are what gets stolen.
# Only the order changes: every test runs, and within a group the collection order is kept.
FIRST_HALF = (
    "tests/test_images_text_model.py",  # the shapes CLIP, then the text-to-image U-Net
    "tests/test_images_clip.py",
    "notebooks/11_",
    "notebooks/01_",
    "tests/test_cli_clip.py",
    "tests/test_images_parallel.py",
    "notebooks/07_",  # the 30,000-step spiral model and flow matching
    "notebooks/04_",
)
SECOND_HALF = (
    "tests/test_images_quality.py",  # the digits and shapes U-Nets
    "tests/browser/",
    "notebooks/10_",
    "notebooks/09_",  # the story's 3-class model
    "notebooks/08_",
    "notebooks/00_",
)


def _group(nodeid: str, prefixes: tuple[str, ...]) -> int | None:
    return next((i for i, p in enumerate(prefixes) if nodeid.startswith(p)), None)


def pytest_collection_modifyitems(config, items):
    """Heavy groups first in each half of the run (see FIRST_HALF); nothing is deselected."""
    first = [it for it in items if _group(it.nodeid, FIRST_HALF) is not None]
    second = [it for it in items if _group(it.nodeid, SECOND_HALF) is not None]
    first.sort(key=lambda it: _group(it.nodeid, FIRST_HALF))  # stable: file order kept
    second.sort(key=lambda it: _group(it.nodeid, SECOND_HALF))
    heavy = {id(it) for it in first + second}
    rest = [it for it in items if id(it) not in heavy]
    fill = max(0, len(items) // 2 - len(first))
    items[:] = first + rest[:fill] + second + rest[fill:]
