"""Named kernels: the built-in library and the user's, and specs resolved against them.

The built-in kernels live in ``kernels.toml`` (shipped inside the package as
``imgkernel/kernels.toml``; read from the repository's top level in a source
checkout).  Its header comment documents the file format and the sign
conventions chosen where sources disagree.  :func:`load_library` adds the
user's file and any others; :meth:`KernelLibrary.resolve` builds the record
for a spec such as ``gaussian:sigma=2.5``.

Examples
--------
>>> lib = load_library(include_user=False)
>>> lib.resolve("sobel-x").weights
array([[-1.,  0.,  1.],
       [-2.,  0.,  2.],
       [-1.,  0.,  1.]])
>>> k = lib.resolve("gaussian:sigma=0.5")
>>> k.name, k.shape, round(k.total, 12)
('gaussian:sigma=0.5', (5, 5), 1.0)
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections import ChainMap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from imgkernel.errors import ImgkernelError, UsageError, read_user_text
from imgkernel.kernels.checks import format_value, normalize_name, quote
from imgkernel.kernels.definitions import (
    KernelDefinition,
    LazyDefinitions,
    generator_definitions,
    parse_definitions,
)
from imgkernel.kernels.generators import GENERATORS
from imgkernel.kernels.record import Kernel

if TYPE_CHECKING:  # pathlib (with urllib and ipaddress) costs 3 ms of every start-up
    from pathlib import Path

__all__ = [
    "KernelLibrary",
    "library_of",
    "load_library",
    "parse_spec",
    "user_kernels_path",
]


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``"name:key=value,key=value"`` into the name and raw parameters.

    Examples
    --------
    >>> parse_spec("gaussian:sigma=2.5,size=7")
    ('gaussian', {'sigma': '2.5', 'size': '7'})
    >>> parse_spec("sobel")
    ('sobel', {})
    """
    if not isinstance(spec, str):
        raise UsageError(f"kernel spec {quote(spec)} is not text")
    name, sep, rest = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise UsageError(f"kernel spec {quote(spec)} has no kernel name")
    params: dict[str, str] = {}
    if sep:
        if not rest.strip():
            raise UsageError(f"kernel spec {quote(spec)} has ':' but no parameters")
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not eq or not key or not value:
                raise UsageError(
                    f"kernel spec {quote(spec)}: parameter {quote(item.strip())} is not key=value"
                )
            if key in params:
                raise UsageError(f"kernel spec {quote(spec)}: parameter {quote(key)} given twice")
            params[key] = value
    return name, params


class KernelLibrary(Mapping[str, KernelDefinition]):
    """Named kernel definitions (a read-only mapping name -> definition).

    Names are case-insensitive and ``_`` equals ``-`` (``EDGE_ENHANCE`` finds
    ``edge-enhance``).  Build one with :func:`load_library`.
    """

    def __init__(self, definitions: Mapping[str, KernelDefinition]):
        # library_of's layers are kept as they are: the built-in one parses a
        # table only when it is looked up.
        self._defs: Mapping[str, KernelDefinition] = (
            definitions if isinstance(definitions, _Layers) else dict(definitions)
        )

    # -- Mapping protocol -------------------------------------------------
    def __getitem__(self, name: str) -> KernelDefinition:
        return self._defs[normalize_name(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._defs)

    def __len__(self) -> int:
        return len(self._defs)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normalize_name(name) in self._defs

    # -- queries ----------------------------------------------------------
    def names(self) -> list[str]:
        """All kernel names, sorted."""
        return sorted(self._defs)

    def describe(self, name: str) -> str:
        """The one-line description of a kernel (see :meth:`details` for more).

        Examples
        --------
        >>> load_library(include_user=False).describe("blur")
        "Pillow's BLUR: 5x5 ring of ones (inner 3x3 zero), scale 16"
        """
        d = self._lookup(name)
        alias = d.alias if d.kind == "alias" else None
        if not d.description and alias is not None and alias in self._defs:
            return self._defs[alias].description
        return d.description

    def details(self, name: str) -> str:
        """A multi-line description: kind, parameters or matrix, display, source.

        Examples
        --------
        >>> print(load_library(include_user=False).details("box"))  # doctest: +ELLIPSIS
        box: Box / mean blur: size x size, all weights 1/size^2 (size default 3)
        generator box; parameters: size=3
        display: clip; offset: 0
        source: .../kernels.toml
        """
        d = self._lookup(name)
        lines = [f"{d.name}: {self.describe(name)}"]
        if d.kind == "rows":
            lines.append("weights (after scale):")
            lines.extend(
                "  " + " ".join(f"{v:g}" for v in row) for row in self.resolve(d.name).weights
            )
        elif d.kind == "generator":
            schema = ", ".join(
                f"{key}={format_value(d.params[key])}" if key in d.params else f"{key} (optional)"
                for key in GENERATORS[d.generator or ""].names
            )
            lines.append(f"generator {d.generator}; parameters: {schema}")
        elif d.kind == "magnitude":
            lines.append(f"magnitude of: {', '.join(d.components)}")
        else:
            lines.append(f"alias of: {d.alias}")
        if d.kind != "alias":
            k = self.resolve(d.name)
            lines.append(f"display: {k.display}; offset: {format_value(k.offset)}")
        lines.append(f"source: {d.source}")
        return "\n".join(lines)

    def _lookup(self, name: str) -> KernelDefinition:
        key = normalize_name(name) if isinstance(name, str) else ""
        if key in self._defs:
            return self._defs[key]
        import difflib  # only to suggest a name (1 ms of start-up otherwise)

        close = difflib.get_close_matches(key, self._defs, n=3, cutoff=0.6)
        if close:
            quoted = [f"'{c}'" for c in close]
            alternatives = quoted[0]
            if len(quoted) > 1:
                alternatives = ", ".join(quoted[:-1]) + " or " + quoted[-1]
            hint = f"did you mean {alternatives}?"
        else:
            hint = "known kernels: " + ", ".join(self.names())
        raise UsageError(f"unknown kernel {quote(name)}; {hint}")

    # -- building ---------------------------------------------------------
    def resolve(self, spec: str) -> Kernel:
        """Build the kernel for ``"name"`` or ``"name:key=value,..."``.

        Examples
        --------
        >>> lib = load_library(include_user=False)
        >>> lib.resolve("box:size=2").weights
        array([[0.25, 0.25],
               [0.25, 0.25]])
        >>> k = lib.resolve("dilated:rate=3")
        >>> k.name, k.shape, k.dilation, k.extent
        ('dilated:rate=3', (3, 3), (3, 3), (7, 7))
        >>> lib.resolve("gausian")  # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        imgkernel.errors.UsageError: unknown kernel 'gausian';
            did you mean 'gaussian', 'gaussian-5' or 'gaussian-3'?
        """
        name, raw = parse_spec(spec)
        return self._build(name, raw, ())

    def _build(self, name: str, raw: Mapping[str, object], stack: tuple[str, ...]) -> Kernel:
        d = self._lookup(name)
        if d.name in stack:
            chain = " -> ".join((*stack, d.name))
            raise UsageError(f"kernel {quote(d.name)} refers to itself ({chain})")
        stack = (*stack, d.name)
        if d.kind == "alias":
            k = self._build(d.alias or "", raw, stack)
            return k if d.display is None else dataclasses.replace(k, display=d.display)
        if d.kind == "generator":
            return self._build_generated(d, raw, stack)
        if raw:
            first = next(iter(raw))
            raise UsageError(
                f"kernel {quote(d.name)} takes no parameters (got {quote(f'{first}={raw[first]}')})"
            )
        if d.kind == "magnitude":
            return self._build_magnitude(d, stack)
        assert d.rows is not None
        return Kernel(
            d.name, d.rows, d.offset, d.description, d.display or "clip", arithmetic=d.arithmetic
        )

    def _build_magnitude(self, d: KernelDefinition, stack: tuple[str, ...]) -> Kernel:
        """The components' stack: they must be single kernels of one shape and dilation."""
        parts = [self._build(c, {}, stack) for c in d.components]
        first = parts[0]
        for p in parts:
            if p.combine != "single":
                raise UsageError(
                    f"kernel {quote(d.name)}: component {quote(p.name)} is itself a magnitude"
                )
            if p.shape != first.shape or p.dilation != first.dilation:
                raise UsageError(
                    f"kernel {quote(d.name)}: components {quote(first.name)} {first.shape} and "
                    f"{quote(p.name)} {p.shape} differ in shape or dilation"
                )
        weights = np.stack([p.weights for p in parts])
        return Kernel(
            d.name,
            weights,
            d.offset,
            d.description,
            d.display or "abs",
            first.dilation,
            "magnitude",
        )

    def _build_generated(
        self, d: KernelDefinition, raw: Mapping[str, object], stack: tuple[str, ...]
    ) -> Kernel:
        """Run the generator on the table's parameters overridden by the spec's."""
        generator = GENERATORS[d.generator or ""]
        where = f"kernel {quote(d.name)}"
        given = generator.convert(raw, where)
        params = {**d.params, **given}
        missing = generator.missing(params)
        if missing:
            raise UsageError(f"{where}: parameter {quote(missing[0])} has no default; pass it")
        for param in generator.params:
            if param.names_kernel and param.name in params:
                params[param.name] = self._build(params[param.name], {}, stack)
        try:
            made = generator.build(params)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
        name = generator.spec(d.name, given)
        if not isinstance(made, Kernel):
            return Kernel(name, made, d.offset, d.description, d.display or "clip")
        # Derived from a base kernel: the table's own offset and display win if it has them.
        return dataclasses.replace(
            made, name=name, offset=d.offset or made.offset, display=d.display or made.display
        )

    def _check_references(self, definitions: Iterable[KernelDefinition] | None = None) -> None:
        """Every name ``definitions`` (default: all) refer to is in the library."""
        for d in self._defs.values() if definitions is None else definitions:
            for ref in d.references():
                if ref not in self._defs:
                    import difflib

                    close = difflib.get_close_matches(ref, self._defs, n=1)
                    hint = f"; did you mean '{close[0]}'?" if close else ""
                    raise UsageError(
                        f"{d.source}: kernel {quote(d.name)} refers to unknown kernel "
                        f"{quote(ref)}{hint}"
                    )


# ------------------------------------------------------------ loading


def user_kernels_path() -> Path:
    """``$XDG_CONFIG_HOME/imgkernel/kernels.toml`` (default ``~/.config/...``)."""
    from pathlib import Path

    return Path(_user_kernels_file())


def _user_kernels_file() -> str:
    base = os.environ.get("XDG_CONFIG_HOME", "")
    if not base or not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "imgkernel", "kernels.toml")


@functools.lru_cache(maxsize=1)
def _builtin_definitions() -> LazyDefinitions:
    """The built-in ``kernels.toml``: inside the installed package, else at the repository top."""
    # An installed package holds it beside its modules, a source tree at its
    # top: read it as a file (importlib.resources would import zipfile and its
    # readers, 5 ms of start-up), and through importlib.resources only from a zip.
    package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    for folder in (package, os.path.dirname(package)):
        path = os.path.join(folder, "kernels.toml")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                return LazyDefinitions(f.read(), path)
    try:
        import importlib.resources

        res = importlib.resources.files("imgkernel") / "kernels.toml"
        if res.is_file():
            return LazyDefinitions(res.read_text(encoding="utf-8"), str(res))
    except (ModuleNotFoundError, OSError):
        pass
    raise ImgkernelError(
        f"built-in kernels.toml not found (looked inside the imgkernel package and at {path})"
    )


class _Layers(ChainMap[str, KernelDefinition]):
    """The user's tables over the built-in ones over the generators' defaults, named
    in the order one merged table would give: the built-in file's, then the user's
    new names, then the generators' own."""

    def __iter__(self) -> Iterator[str]:
        given, builtins, generators = self.maps
        return iter(dict.fromkeys([*builtins, *given, *generators]))


def library_of(*sources: Mapping[str, KernelDefinition]) -> KernelLibrary:
    """The built-in kernels overridden by each of ``sources`` in turn, references checked.

    A registered generator that no table names is found under its own name.
    The built-in tables' own references are checked by the tests (a source
    can replace a name, not remove it).
    """
    given: dict[str, KernelDefinition] = {}
    for source in sources:
        given.update(source)
    # ChainMap writes only to its first map: the lazy built-ins are only read.
    builtins = cast("dict[str, KernelDefinition]", _builtin_definitions())
    library = KernelLibrary(_Layers(given, builtins, generator_definitions()))
    library._check_references(given.values())
    return library


def load_library(
    extra_files: Sequence[str | Path] = (), *, include_user: bool = True
) -> KernelLibrary:
    """Load the built-in kernels, the user's file and ``extra_files``.

    Later sources override earlier ones by name: built-ins, then
    ``$XDG_CONFIG_HOME/imgkernel/kernels.toml`` (if ``include_user`` and the
    file exists), then each of ``extra_files`` in order.

    Raises
    ------
    UsageError
        For a missing extra file, bad TOML, bad rows, unknown generators or
        parameters, or references to unknown kernels; the message names the
        file and the kernel.
    """
    if isinstance(extra_files, str | os.PathLike):
        extra_files = [extra_files]
    paths: list[str] = []
    if include_user and os.path.isfile(_user_kernels_file()):
        paths.append(_user_kernels_file())
    paths.extend(os.fspath(p) for p in extra_files)
    return library_of(*(parse_definitions(read_user_text(p), p) for p in paths))
