"""The errors toydiff raises for a user's mistake.

Anything derived from ``ToydiffError`` is a problem with the user's input (a bad argument, file or
value), not a bug. The CLI prints its message on one line, without a traceback, and exits with
status 2.
"""


class ToydiffError(ValueError):
    """A user mistake; the message names the bad value and what is allowed."""


class DataError(ToydiffError):
    """A dataset name, file or array that cannot be used."""


class CheckpointError(ToydiffError):
    """A run directory or checkpoint file that cannot be read."""


class TrainingError(ToydiffError):
    """Training stopped, for example because the loss became NaN or infinite."""
