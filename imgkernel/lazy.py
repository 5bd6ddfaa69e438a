"""Package exports loaded on first use (PEP 562), so start-up imports only what a command needs.

A package facade lists what it exports but imports rarely used modules only
when one of their names is asked for::

    __getattr__ = lazy_exports(__name__, {"pool_large": "imgkernel.images.tiled"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_exports(package: str, names: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` that imports ``names[name]`` and returns its ``name``.

    >>> getter = lazy_exports("imgkernel", {"gcd": "math"})
    >>> getter("gcd")(12, 18)
    6
    """

    def __getattr__(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name]), name)
        setattr(sys.modules[package], name, value)  # the next lookup is a plain one
        return value

    return __getattr__
