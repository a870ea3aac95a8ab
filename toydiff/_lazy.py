"""Submodules imported on first use, for the package ``__init__`` files (PEP 562)."""

from __future__ import annotations

import importlib


def attach(package: str, names: tuple[str, ...], namespace: dict):
    """A module ``__getattr__`` and ``__dir__`` that import ``package.NAME`` on first use.

    Args:
        package: the package's name (its ``__name__``).
        names: the submodules to load lazily.
        namespace: the package's ``globals()``; a loaded submodule is stored there, so later
            lookups never reach ``__getattr__`` again.

    Returns:
        ``(__getattr__, __dir__)`` to assign in the package.
    """

    def __getattr__(name):
        if name in names:
            module = importlib.import_module(f"{package}.{name}")
            namespace[name] = module
            return module
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted({*namespace, *names})

    return __getattr__, __dir__
