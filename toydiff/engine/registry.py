"""Registries: names a user can type, mapped to what they stand for.

The command line's choices, the chapters, the warm-up and the bench read the registries (the
processes, samplers and objectives of the engine, the image data sets), so a name is declared
once, where the thing it names is defined, and never in a second hand-written list.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from toydiff.errors import ToydiffError


class Registry(Mapping):
    """An ordered, read-only map from names to entries, with errors that list the names.

    Args:
        what: what an entry is, for messages ("sampler", "image data set").
        entries: (name, entry) pairs, in the order choices are listed.
        error: the ``ToydiffError`` subclass an unknown name raises.
    """

    def __init__(self, what: str, entries, error: type[ToydiffError] = ToydiffError):
        self.what = what
        self._entries = dict(entries)
        self._error = error

    def __getitem__(self, name: str):
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self._error(
                f"unknown {self.what} {name!r}; allowed: {', '.join(self._entries)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name) -> bool:
        return name in self._entries

    def get(self, name, default=None):
        """The entry of ``name``, or ``default`` if there is none (no error)."""
        return self._entries.get(name, default)

    @property
    def names(self) -> tuple[str, ...]:
        """The names, in order: the choices a user is offered."""
        return tuple(self._entries)

    def check(self, name: str) -> str:
        """``name`` if it is registered, else ToydiffError listing the allowed names."""
        self[name]
        return name
