"""Output names for a batch of inputs: a file, a directory, or a template like ``{stem}.png``."""

from __future__ import annotations

import os
import string
from typing import Any

from imgkernel.errors import UsageError
from imgkernel.images.read import NO_INPUT, check_stdin_once

_TEMPLATE_FIELDS = ("stem", "name", "ext", "index", "dir")


def check_inputs(inputs: list[str]) -> None:
    """Reject an empty input list and ``-`` (standard input) given more than once."""
    if not inputs:
        raise UsageError(NO_INPUT)
    check_stdin_once(inputs)


def _fields(path: str, index: int, default_ext: str | None) -> dict[str, Any]:
    if path == "-":
        stem, ext, parent = "stdin", "", "."
    else:
        base = os.path.basename(path)
        stem, ext = os.path.splitext(base)
        parent = os.path.dirname(path) or "."
    if default_ext:
        ext = default_ext if default_ext.startswith(".") else "." + default_ext
    elif not ext:
        ext = ".png"
    return {"stem": stem, "name": stem + ext, "ext": ext[1:], "index": index, "dir": parent}


def _apply_template(template: str, fields: dict[str, Any]) -> str:
    known = ", ".join("{" + f + "}" for f in _TEMPLATE_FIELDS)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise UsageError(f"output template {template!r} is malformed ({exc})") from None
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in _TEMPLATE_FIELDS:
            # also refuses attribute and index access such as {stem.upper}
            raise UsageError(
                f"output template {template!r}: unknown field {{{field}}} (known: {known})"
            )
        if conversion or (spec and (len(spec) > 8 or any(c in spec for c in "{}"))):
            raise UsageError(f"output template {template!r}: unsupported format for {{{field}}}")
    try:
        result = template.format(**fields)
    except (ValueError, IndexError, AttributeError, KeyError) as exc:
        raise UsageError(f"output template {template!r} is malformed ({exc})") from None
    if len(result) > 4096:
        raise UsageError(f"output template {template!r} makes a name that is too long")
    return result


def expand_outputs(inputs: list[str], output: str | None, *, default_ext: str | None) -> list[str]:
    """Output path for each input.

    * One input: ``output`` None or ``"-"`` -> standard output (``"-"``).
    * ``output`` ending in ``/`` (or an existing directory) -> ``DIR/<name>``,
      where name is the input's file name with its extension replaced by
      ``default_ext`` when given (``stdin.png`` style for ``-``).
    * ``output`` containing ``{...}`` is a template with fields ``{stem}``
      (file name without extension), ``{name}`` (``stem`` + output extension),
      ``{ext}`` (that extension without the dot: ``default_ext`` if given, else
      the input's), ``{index}`` (1-based position, format specs allowed:
      ``{index:03d}``) and ``{dir}`` (the input's directory).
    * Otherwise, with one input, ``output`` is the file name itself.

    Several inputs need a directory or a template that gives distinct names;
    standard output is refused.  Output directories must already exist.

    >>> expand_outputs(["a.png"], None, default_ext=None)
    ['-']
    >>> expand_outputs(["x/a.png", "b.jpg"], "{stem}-edges.png", default_ext=None)
    ['a-edges.png', 'b-edges.png']
    >>> expand_outputs(["x/a.png", "b.jpg"], "{index:02d}.{ext}", default_ext=".npy")
    ['01.npy', '02.npy']
    """
    inputs = [os.fspath(i) for i in inputs]
    check_inputs(inputs)
    if output is not None:
        output = os.fspath(output)
    if output is None or output == "-":
        if len(inputs) > 1:
            raise UsageError(
                f"{len(inputs)} inputs cannot all go to standard output; use -o DIR/ or a "
                "template such as -o 'out/{stem}-edges.png'"
            )
        return ["-"]
    if "{" in output:
        outs = [
            _apply_template(output, _fields(p, i, default_ext)) for i, p in enumerate(inputs, 1)
        ]
    elif output.endswith(("/", os.sep)) or (os.path.isdir(output) and not _zarr_store(output)):
        outs = [
            os.path.join(output, _fields(p, i, default_ext)["name"])
            for i, p in enumerate(inputs, 1)
        ]
    elif len(inputs) == 1:
        outs = [output]
    else:
        raise UsageError(
            f"with {len(inputs)} inputs, -o must be a directory ending in '/' or a template "
            f"containing {{stem}}, {{name}}, {{ext}} or {{index}} (got {output!r})"
        )
    _check_outputs(inputs, outs, output)
    return outs


def _check_outputs(inputs: list[str], outs: list[str], output: str) -> None:
    """Distinct, non-empty names in directories that exist."""
    seen: dict[str, str] = {}
    folders: set[str] = set()
    for src, dst in zip(inputs, outs, strict=True):
        key = os.path.normpath(dst)
        if key in seen:
            raise UsageError(
                f"inputs {seen[key]} and {src} would both be written to {dst}; "
                "use a template with {index} or {dir}"
            )
        seen[key] = src
        if dst == "-" or not dst:
            raise UsageError(f"output template {output!r} gives an empty or '-' name for {src}")
        parent = os.path.dirname(dst)
        if parent and parent not in folders:
            if not os.path.isdir(parent):
                raise UsageError(f"{dst}: directory {parent} does not exist")
            folders.add(parent)


def check_no_input_overwritten(inputs: list[str], outs: list[str], *, allowed: bool) -> None:
    """Refuse an output that is one of the inputs (a same-name target, ``-o ./``, a template).

    Compared by file identity where the output exists (hard links and
    symbolic links included), else by resolved path. ``allowed``
    (``--overwrite``) lets it through: the input is read whole before the
    atomic write replaces it.
    """
    if allowed:
        return
    sources = {_identity(src): src for src in reversed(inputs) if src != "-"}
    for dst in outs:
        if dst == "-":
            continue
        src = sources.get(_identity(dst))
        if src is not None:
            raise UsageError(
                f"{dst} is also an input ({src}); refusing to overwrite it "
                "(choose another -o, or pass --overwrite)"
            )


def _identity(path: str) -> tuple[int, int] | str:
    """``(device, inode)`` of an existing file, else its resolved absolute path."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return (st.st_dev, st.st_ino)


def _zarr_store(path: str) -> bool:
    """An existing Zarr store is an output to replace, not a folder to write into."""
    from imgkernel.images.regions import is_zarr_path

    return path.lower().endswith(".zarr") or is_zarr_path(path)
