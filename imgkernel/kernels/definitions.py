"""Kernel definitions: the tables of a kernels TOML file, checked but not yet built.

A table holds exactly one of ``rows`` (a matrix), ``generator`` (a registered
generator and its default ``params``), ``combine = "magnitude"`` (with
``components``) or ``alias``; ``description``, ``display`` and ``offset``
go with any of them.  The header of the repository's ``kernels.toml``
documents the format.  Every message names the file, the kernel and the bad
value.

Examples
--------
>>> defs = parse_definitions('[kernels.edge]\\nrows = [[-1, 0, 1]]\\ndisplay = "abs"', "my.toml")
>>> defs["edge"].kind, defs["edge"].rows, defs["edge"].display
('rows', array([[-1.,  0.,  1.]]), 'abs')
>>> parse_definitions("[kernels.soft]\\ngenerator = 'gaussian'", "my.toml")["soft"].params
{'truncate': 4.0}
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgkernel.errors import UsageError, check_choice
from imgkernel.kernels.checks import (
    NAME_PATTERN,
    check_offset,
    check_shape,
    kernel_name,
    normalize_name,
    quote,
)
from imgkernel.kernels.generators import GENERATORS, find_generator
from imgkernel.kernels.matrix import apply_scale
from imgkernel.kernels.record import ARITHMETIC_MODES, KERNEL_DISPLAY_MODES

__all__ = [
    "KernelDefinition",
    "LazyDefinitions",
    "generator_definitions",
    "parse_definition",
    "parse_definitions",
]


@dataclass(frozen=True)
class KernelDefinition:
    """One parsed table of a kernels TOML file (not yet built)."""

    name: str
    kind: str  # "rows" | "generator" | "magnitude" | "alias"
    description: str = ""
    display: str | None = None
    rows: np.ndarray | None = None  # already divided by scale
    offset: float = 0.0
    arithmetic: str = "core"
    generator: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    components: tuple[str, ...] = ()
    alias: str | None = None
    source: str = ""

    def references(self) -> tuple[str, ...]:
        """Names of other kernels this definition needs."""
        if self.kind == "alias" and self.alias:
            return (self.alias,)
        if self.kind == "magnitude":
            return self.components
        generator = GENERATORS.get(self.generator or "")
        if generator is None:
            return ()
        return tuple(
            self.params[p.name]
            for p in generator.params
            if p.names_kernel and p.name in self.params
        )


#: Which key makes a table which kind of definition.
_KIND_KEYS = ("rows", "generator", "combine", "alias")
#: Keys each kind refuses (they belong to another kind).
_STRAY_KEYS = {
    "rows": {"generator", "params", "components"},
    "generator": {"scale", "components", "arithmetic"},
    "combine": {"scale", "params", "arithmetic"},
    "alias": {"scale", "params", "components", "offset", "arithmetic"},
}
_TABLE_KEYS = {
    *_KIND_KEYS,
    "description",
    "display",
    "scale",
    "offset",
    "params",
    "components",
    "arithmetic",
}


def parse_definition(name: str, table: object, source: str) -> KernelDefinition:
    """Check one table ``[kernels.NAME]`` of ``source`` and make its definition."""
    where = f"{source}: kernel {quote(name)}"
    kind_key, table = _kind_key(table, where)
    description = table.get("description", "")
    if not isinstance(description, str):
        raise UsageError(f"{where}: description {quote(description)} is not a string")
    display = table.get("display")
    if display is not None:
        display = check_choice(display, f"{where}: display", KERNEL_DISPLAY_MODES)
    fields = _KIND_FIELDS[kind_key](table, where)
    return KernelDefinition(
        name=name,
        description=" ".join(description.split()),
        display=display,
        offset=check_offset(table.get("offset", 0.0), where),
        arithmetic=check_choice(
            table.get("arithmetic", "core"), f"{where}: arithmetic", ARITHMETIC_MODES
        ),
        source=source,
        **fields,
    )


def _kind_key(table: object, where: str) -> tuple[str, dict[str, Any]]:
    """The one key of :data:`_KIND_KEYS` in ``table``, and the table, after checking its keys."""
    if not isinstance(table, dict):
        raise UsageError(f"{where}: expected a table of keys, got {quote(table)}")
    unknown = sorted(set(table) - _TABLE_KEYS)
    if unknown:
        raise UsageError(
            f"{where}: unknown key {quote(unknown[0])} (valid: {', '.join(sorted(_TABLE_KEYS))})"
        )
    kinds = [key for key in _KIND_KEYS if key in table]
    if len(kinds) != 1:
        raise UsageError(
            f"{where}: needs exactly one of rows, generator, combine or alias "
            f"(got {', '.join(kinds) or 'none'})"
        )
    stray = _STRAY_KEYS[kinds[0]] & set(table)
    if stray:
        raise UsageError(f"{where}: key {quote(sorted(stray)[0])} does not go with {kinds[0]!r}")
    return kinds[0], table


def _rows_fields(table: dict[str, Any], where: str) -> dict[str, Any]:
    rows = table["rows"]
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) and r for r in rows):
        raise UsageError(f"{where}: rows must be a non-empty list of non-empty lists")
    for i, row in enumerate(rows, 1):
        if len(row) != len(rows[0]):
            raise UsageError(
                f"{where}: rows are ragged (row {i} has {len(row)} values, row 1 has "
                f"{len(rows[0])})"
            )
        for v in row:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise UsageError(f"{where}: row {i} value {quote(v)} is not a finite number")
    m = np.array(rows, dtype=np.float64)
    check_shape(m.shape, where)
    return {"kind": "rows", "rows": apply_scale(m, table.get("scale", 1), where)}


def _generator_fields(table: dict[str, Any], where: str) -> dict[str, Any]:
    generator = find_generator(table["generator"], f"{where}: generator")
    raw = table.get("params", {})
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: params {quote(raw)} is not a table")
    params = {**generator.defaults(), **generator.convert(raw, where)}
    return {"kind": "generator", "generator": generator.name, "params": params}


def _magnitude_fields(table: dict[str, Any], where: str) -> dict[str, Any]:
    check_choice(table["combine"], f"{where}: combine", ("magnitude",))
    components = table.get("components")
    if not isinstance(components, list) or not components:
        raise UsageError(f'{where}: combine needs components = ["a", "b"]')
    names = tuple(kernel_name(c, f"{where}: components") for c in components)
    return {"kind": "magnitude", "components": names}


def _alias_fields(table: dict[str, Any], where: str) -> dict[str, Any]:
    return {"kind": "alias", "alias": kernel_name(table["alias"], f"{where}: alias")}


_KIND_FIELDS = {
    "rows": _rows_fields,
    "generator": _generator_fields,
    "combine": _magnitude_fields,
    "alias": _alias_fields,
}


def _kernel_tables(data: dict[str, Any], source: str) -> dict[str, Any]:
    """The kernel tables of a parsed file: ``[kernels.NAME]``, or a single
    top-level kernel (named after the file), or top-level ``[NAME]`` tables."""
    if "kernels" in data:
        tables = data["kernels"]
        if not isinstance(tables, dict):
            raise UsageError(f"{source}: 'kernels' must be a table of [kernels.NAME] tables")
        return tables
    if any(key in data for key in _KIND_KEYS):
        return {os.path.splitext(os.path.basename(source))[0]: data}
    return data


def parse_definitions(text: str, source: str) -> dict[str, KernelDefinition]:
    """The definitions in the TOML ``text`` of the file ``source``, by normalized name."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source}: not valid TOML ({exc})") from None
    definitions: dict[str, KernelDefinition] = {}
    for raw_name, table in _kernel_tables(data, source).items():
        name = normalize_name(raw_name)
        if not NAME_PATTERN.match(name):
            raise UsageError(
                f"{source}: kernel name {quote(raw_name)} must use letters, digits and '-'"
            )
        if name in definitions:
            raise UsageError(f"{source}: kernel {quote(name)} is defined twice")
        definitions[name] = parse_definition(name, table, source)
    return definitions


#: A line opening a kernel's table (``[kernels.NAME]``) or one of its sub-tables.
_TABLE_HEADER = re.compile(r"^\[kernels\.([A-Za-z0-9_-]+)(\.[A-Za-z0-9_.-]+)?\]\s*(#.*)?$")


class LazyDefinitions(Mapping[str, KernelDefinition]):
    """The definitions of a kernels TOML text, each table parsed when first looked up.

    A command uses one or two of the built-in kernels: parsing the whole file
    took 3 ms of every start-up. The text is cut at its ``[kernels.NAME]``
    headers; any other table form (or a name given twice) parses it whole.

    >>> defs = LazyDefinitions("[kernels.a]\\nalias = 'b'\\n[kernels.b]\\nrows = [[1]]", "x.toml")
    >>> sorted(defs), defs["a"].alias
    (['a', 'b'], 'b')
    """

    def __init__(self, text: str, source: str):
        self._source = source
        self._parsed: dict[str, KernelDefinition] = {}
        chunks = _split_tables(text)
        if chunks is None:
            self._parsed = parse_definitions(text, source)
            chunks = dict.fromkeys(self._parsed, "")
        self._chunks = chunks

    def __getitem__(self, name: str) -> KernelDefinition:
        found = self._parsed.get(name)
        if found is None:
            found = parse_definitions(self._chunks[name], self._source)[name]
            self._parsed[name] = found
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._chunks)

    def __len__(self) -> int:
        return len(self._chunks)


def _split_tables(text: str) -> dict[str, str] | None:
    """Each kernel's tables as text, by normalized name; None when the text does not
    cut cleanly (a table not under ``kernels.``, a name twice, keys before the first)."""
    chunks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            header = _TABLE_HEADER.match(line)
            if header is None:
                return None
            name = normalize_name(header.group(1))
            if header.group(2) is None:
                if name in chunks:
                    return None
                chunks[name] = current = []
            elif name not in chunks:
                return None
            current = chunks[name]
        elif current is None:
            if line.strip() and not line.lstrip().startswith("#"):
                return None
            continue
        current.append(line)
    return {name: "".join(lines) for name, lines in chunks.items()}


def generator_definitions() -> dict[str, KernelDefinition]:
    """A definition for every registered generator under its own name, with its defaults.

    ``kernels.toml`` has a table for each built-in generator, which overrides
    these; a generator registered later is found by name all the same.
    """
    return {
        name: KernelDefinition(
            name=name,
            kind="generator",
            description=generator.description,
            generator=name,
            params=generator.defaults(),
            source="generator registry",
        )
        for name, generator in GENERATORS.items()
    }
