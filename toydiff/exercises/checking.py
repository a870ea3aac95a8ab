"""The machinery of every checker: call the learner's function safely, compare, name the mistake.

A checker builds ``Case``s (inputs, the library's answer, and the typical wrong answers by name)
and hands them to ``check``, which calls the learner's function on each, compares with the
library's answer and returns a ``Feedback``. ``check`` never raises: an exception, a missing return
or a wrong shape becomes a one-line message. Inputs come from ``chapter_key``, so a checker is
reproducible.
"""

from __future__ import annotations

import dataclasses
import html
import warnings
from collections.abc import Callable

import jax
import numpy as np

_SEED = 2024  # every checker draws its inputs from key(_SEED + its chapter)


N_ROWS = 64  # rows per test input


_RTOL = _ATOL = 1e-4  # a float32 answer is well inside; every named mistake is far outside


_GREEN, _RED = "#1a7f37", "#cf222e"


_BROADCAST_HINT = (
    " (hint: a per-example value of shape (n,) needs [:, None] to broadcast against points of "
    "shape (n, 2))"
)


@dataclasses.dataclass(frozen=True)
class Feedback:
    """A checker's verdict: truthy when passed; shows itself in green or red in a notebook.

    Attributes:
        passed: whether the learner's function gave the reference answer.
        message: one line saying what is right, or naming what is wrong.
    """

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return f"{'✅' if self.passed else '❌'} {self.message}"

    def _colour(self) -> str:
        """Green for passed, red for failed."""
        return _GREEN if self.passed else _RED

    def _repr_html_(self) -> str:
        text = html.escape(str(self), quote=False)
        return f'<div style="color: {self._colour()}; font-weight: bold">{text}</div>'

    def _repr_markdown_(self) -> str:
        text = html.escape(str(self), quote=False)
        return f'<span style="color: {self._colour()}"><b>{text}</b></span>'


@dataclasses.dataclass(frozen=True, eq=False)
class Case:
    """One call of the learner's function: its arguments, the right answer, the named wrong ones."""

    args: tuple
    want: np.ndarray
    mistakes: tuple[tuple[str, np.ndarray], ...] = ()


def chapter_key(chapter: int) -> jax.Array:
    """The fixed key of a chapter's checker."""
    return jax.random.key(_SEED + chapter)


def as_numpy(x) -> np.ndarray:
    """Any array as float64 NumPy, for comparisons and for computing the wrong variants."""
    return np.asarray(x, dtype=np.float64)


def _fresh(arg):
    """A copy of a mutable NumPy argument, so a learner's in-place edit cannot change the cases."""
    return arg.copy() if isinstance(arg, np.ndarray) else arg


def _one_line(text: str, limit: int = 200) -> str:
    """Text collapsed onto one line and cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _raised(exc: Exception) -> str:
    """The one-line message for a learner's function that raised."""
    detail = _one_line(str(exc))
    hint = _BROADCAST_HINT if "broadcast" in detail.lower() else ""
    return f"your function raised {type(exc).__name__}" + (f": {detail}" if detail else "") + hint


def _call(fn: Callable, signature: str, args: tuple):
    """Call the learner's function; return (result, None) or (None, Feedback) if it raised."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*(_fresh(a) for a in args)), None
    except NotImplementedError:
        message = f"not done yet: fill in the function {signature} and run this check again"
        return None, Feedback(False, message)
    except Exception as exc:  # a checker never raises; it reports
        return None, Feedback(False, _raised(exc))


def _as_array(out):
    """The learner's result as float64 NumPy, or (None, a message saying why it is not one)."""
    if out is None:
        return None, "your function returned None: did you forget the return statement?"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(out, dtype=np.float64), None
    except Exception:
        return None, f"your function returned a {type(out).__name__}, not an array of numbers"


def _close(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal within float32 round-off."""
    return bool(np.allclose(got, want, rtol=_RTOL, atol=_ATOL))


def _shape_message(want: tuple, got: tuple) -> str:
    """Expected vs got shape, with a hint when the answer is transposed."""
    message = f"wrong shape: expected {want}, got {got}"
    if len(got) == 2 and got == want[::-1]:
        message += " (transposed? stack the coordinates along the last axis, axis=-1)"
    return message


def _row(x: np.ndarray) -> str:
    """One row of numbers, short."""
    return np.array2string(x, precision=3, separator=", ", suppress_small=True)


def _unnamed_mistake(got: np.ndarray, want: np.ndarray) -> str:
    """Describe a wrong answer that matches none of the named mistakes."""
    if _close(got, -want):
        return "sign error: your result is minus the expected one"
    norm = float(np.vdot(want, want))
    scale = float(np.vdot(got, want)) / norm if norm > 0 else 0.0
    if scale != 0 and _close(got, scale * want):
        return f"off by a constant factor: your values are {scale:.3g} times the expected ones"
    err = np.abs(got - want)
    row = int(np.unravel_index(np.argmax(err), err.shape)[0])
    return (
        f"wrong values: the largest error is {err.max():.3g}, in row {row}: "
        f"expected {_row(want[row])}, got {_row(got[row])}"
    )


def _check_case(fn: Callable, signature: str, case: Case, nan_hint: str) -> Feedback | None:
    """None if the learner's function gets this case right, else Feedback naming what is wrong."""
    out, failed = _call(fn, signature, case.args)
    if failed is not None:
        return failed
    got, problem = _as_array(out)
    if problem is not None:
        return Feedback(False, problem)
    if got.shape != case.want.shape:
        return Feedback(False, _shape_message(case.want.shape, got.shape))
    bad = int(np.sum(~np.isfinite(got)))
    if bad:
        return Feedback(
            False, f"your function returned NaN or inf in {bad} of {got.size} values{nan_hint}"
        )
    if _close(got, case.want):
        return None
    for message, wrong in case.mistakes:
        if _close(got, wrong):
            return Feedback(False, message)
    return Feedback(False, _unnamed_mistake(got, case.want))


def check(
    fn, signature: str, cases: tuple[Case, ...], success: str, nan_hint: str = ""
) -> Feedback:
    """Run every case; the first failing one gives the verdict."""
    if not callable(fn):
        return Feedback(False, f"expected a function {signature}, got a {type(fn).__name__}")
    for case in cases:
        failed = _check_case(fn, signature, case, nan_hint)
        if failed is not None:
            return failed
    return Feedback(True, success)
