"""Shared fixtures: processes, the trained reference models, and the quality checks' record.

The models come from ``cached_train``, keyed by config, data and source code, so the tests and the
notebooks of one CI run (which points TOYDIFF_CACHE at a fresh folder) train each model once.

The quality checks (tests marked ``quality``: every assertion on what a trained model does) take
their models through ``seeded`` and state their thresholds through the ``quality`` fixture. Two
options exist for measuring their margins (``tests/margins.py`` runs them):

- ``--train-seed K`` trains every model a quality check uses with its seed shifted by K, so the
  same checks can be run over several training seeds;
- ``--quality-log FILE`` appends every checked value, with its threshold, to a JSON-lines file.
"""

import dataclasses
import json
import math
import operator
import os

import jax
import pytest

from toydiff.engine.processes import VE, VP, Flow
from toydiff.model import REFERENCE, REFERENCE_CONDITIONAL, REFERENCE_LONG
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


# ----------------------------------------------------------------------------- quality checks


def pytest_addoption(parser):
    group = parser.getgroup("toydiff quality checks")
    group.addoption(
        "--train-seed",
        type=int,
        default=0,
        help="shift the training seed of every model a quality check trains by this much",
    )
    group.addoption(
        "--quality-log",
        default=None,
        help="append every quality check's value and threshold to this JSON-lines file",
    )


@pytest.fixture(scope="session")
def train_seed(request) -> int:
    """How far ``--train-seed`` shifts every quality check's training seed (0 by default)."""
    return request.config.getoption("--train-seed")


@pytest.fixture(scope="session")
def seeded(train_seed):
    """``seeded(config)``: the config with its training seed shifted by ``--train-seed``."""
    return lambda config: dataclasses.replace(config, seed=config.seed + train_seed)


_OPS = {
    ">=": (operator.ge, lambda value, bound: value - bound),
    ">": (operator.gt, lambda value, bound: value - bound),
    "<=": (operator.le, lambda value, bound: bound - value),
    "<": (operator.lt, lambda value, bound: bound - value),
}


class Quality:
    """The checks of one quality test: each names a measured value and its threshold.

    A failed check does not stop the test: every check still runs, and the test fails at its end
    with all of them listed (value, threshold, margin). So a failing run still reports every
    number, and a margin sweep sees the whole picture.
    """

    def __init__(self, item, log: str | None, seed: int):
        self.item, self.log, self.seed = item, log, seed
        self.failures: list[str] = []

    def at_least(self, name: str, value, bound) -> None:
        """Check ``value >= bound``."""
        self._check(name, value, ">=", bound)

    def above(self, name: str, value, bound) -> None:
        """Check ``value > bound``."""
        self._check(name, value, ">", bound)

    def at_most(self, name: str, value, bound) -> None:
        """Check ``value <= bound``."""
        self._check(name, value, "<=", bound)

    def below(self, name: str, value, bound) -> None:
        """Check ``value < bound``."""
        self._check(name, value, "<", bound)

    def within(self, name: str, value, low, high) -> None:
        """Check ``low <= value <= high``."""
        self._check(f"{name} (low end)", value, ">=", low)
        self._check(f"{name} (high end)", value, "<=", high)

    def _check(self, name: str, value, op: str, bound) -> None:
        value, bound = float(value), float(bound)
        passes, margin_of = _OPS[op]
        ok = passes(value, bound) and math.isfinite(value)
        if self.log:
            row = {
                "test": self.item.nodeid,
                "check": name,
                "value": value,
                "op": op,
                "bound": bound,
                "margin": margin_of(value, bound),
                "ok": ok,
                "seed": self.seed,
                "xla_flags": os.environ.get("XLA_FLAGS", ""),
            }
            with open(self.log, "a") as f:  # one short line: appends from workers do not mix
                f.write(json.dumps(row) + "\n")
        if not ok:
            self.failures.append(f"{name}: {value:.4g} is not {op} {bound:g}")


@pytest.fixture
def quality(request, train_seed):
    """The test's ``Quality`` record; it fails the test at its end if any check failed."""
    q = Quality(request.node, request.config.getoption("--quality-log"), train_seed)
    request.node.quality = q
    return q


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fail a quality test whose checks failed, listing every one of them."""
    result = yield
    failures = getattr(getattr(item, "quality", None), "failures", None)
    if failures:
        pytest.fail("quality checks failed:\n  " + "\n  ".join(failures), pytrace=False)
    return result


# ----------------------------------------------------------------------------- trained models


@pytest.fixture(scope="session")
def reference_model(seeded):
    """The story's spiral model on the reference settings (15,000 full-batch steps)."""
    return cached_train(seeded(REFERENCE), progress=False)


@pytest.fixture(scope="session")
def naive_model(seeded):
    """The same settings, trained on the naive one-step objective."""
    return cached_train(seeded(dataclasses.replace(REFERENCE, objective="naive")), progress=False)


@pytest.fixture(scope="session")
def conditional_model(seeded):
    """The story's 3-class model (30,000 steps, batches of 200, label dropout)."""
    return cached_train(seeded(REFERENCE_CONDITIONAL), progress=False)


@pytest.fixture(scope="session")
def long_model(seeded):
    """The spiral model trained for 30,000 steps (chapter 7)."""
    return cached_train(seeded(REFERENCE_LONG), progress=False)


# ----------------------------------------------------------------------------- CI order

# `pytest -n 2 --dist worksteal` first hands each worker one contiguous half of the collection,
# then moves tests from the back of the longer queue to whichever worker runs dry. So each half
# starts with the groups that train the big models (trained once, into the shared cache) and the
# tests and notebooks that reuse them, arranged so that the two workers never wait for the same
# model at the same time; the light tests fill the rest of each half and are what gets stolen.
# Only the order changes: every test runs, and within a group the collection order is kept.
FIRST_HALF = (
    "tests/test_images_video.py",  # the clips CLIP, then the video transformer (chapter 12)
    "notebooks/12_",
    "tests/test_instruction_sets.py::test_quality_checks_hold_with_an_older_instruction_set[SSE4_2-digits]",
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
    "tests/test_instruction_sets.py",  # the 2D quality checks again under SSE4_2
    "tests/test_images_quality.py",  # the digits and shapes U-Nets, the shapes transformer
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
    taken = {id(it) for it in first}
    second = [
        it for it in items if id(it) not in taken and _group(it.nodeid, SECOND_HALF) is not None
    ]
    first.sort(key=lambda it: _group(it.nodeid, FIRST_HALF))  # stable: file order kept
    second.sort(key=lambda it: _group(it.nodeid, SECOND_HALF))
    heavy = {id(it) for it in first + second}
    rest = [it for it in items if id(it) not in heavy]
    fill = max(0, len(items) // 2 - len(first))
    items[:] = first + rest[:fill] + second + rest[fill:]
