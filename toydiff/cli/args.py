"""Argument types of the command line, shared by every verb: each parses one value or says why not.

argparse turns the ``ArgumentTypeError`` into one line that names the option, e.g. ``toydiff
train: argument --lr: must be a finite number, got 'nan'``. Ranges that the library checks too
(the seed) call the library's check, so the CLI and the API say the same thing. ``output_file``
checks an output file's folder before the work that fills it.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys

from toydiff.engine import checkpoint, limits
from toydiff.errors import ToydiffError


def finite(text: str) -> float:
    """Parse a finite float (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def integer(text: str) -> int:
    """Parse an integer (argparse type)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive(text: str) -> int:
    """Parse a positive integer (argparse type)."""
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed(text: str) -> int:
    """Parse a seed: a whole number from 0 to 2**63 - 1 (``limits.check_seed``)."""
    value = integer(text)
    try:
        return limits.check_seed(value, what="")
    except ToydiffError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def output_file(path: str, suffix: str, *, add_suffix: bool = False) -> pathlib.Path:
    """The output file an option names, its folder created and checked writable before any work.

    Args:
        path: the file name given.
        suffix: the file type, e.g. ".npz".
        add_suffix: append ``suffix`` to a name without any (``samples`` becomes
            ``samples.npz``, as ``np.savez`` would). A name with another suffix is always refused.

    Raises:
        ToydiffError: a name of another type, a directory, or a folder that cannot be written.
    """
    out = pathlib.Path(path)
    if out.suffix != suffix:
        if out.suffix or not add_suffix:
            raise ToydiffError(f"{path}: expected a {suffix} file name")
        out = out.with_name(out.name + suffix)
    if out.is_dir():
        raise ToydiffError(f"{out} is a directory; expected a {suffix} file name")
    try:
        checkpoint.check_writable(out.parent)
    except ToydiffError as err:
        raise ToydiffError(f"cannot write {out}: {err}") from None
    return out


class Renamed(argparse.Action):
    """An option with an old name that still works: using the old name prints a one-line note
    on stderr (``toydiff: note: --batch is now --batch-size``) and stores the value as the new
    one does."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string != self.option_strings[0]:
            print(
                f"toydiff: note: {option_string} is now {self.option_strings[0]}",
                file=sys.stderr,
            )
        setattr(namespace, self.dest, values)


def add_batch_size(parser, kind, help_text: str) -> None:
    """``--batch-size`` (old name ``--batch``): examples per training step, for every train verb
    and the image bench."""
    parser.add_argument(
        "--batch-size", "--batch", dest="batch_size", type=kind, action=Renamed, help=help_text
    )
