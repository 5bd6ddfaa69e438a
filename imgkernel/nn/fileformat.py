"""The ``.npz`` model file: writing, reading and validating it, and the bundled models.

A model file is a numpy ``.npz`` archive: a ``__model__`` entry holding the
JSON header (format, version, input spec, labels, layers) and one entry per
weight array. ``docs/model-format.md`` describes it. Files are never
unpickled; every defect is a :class:`imgkernel.errors.UsageError` that names
the file.
"""

from __future__ import annotations

import io as _io
import json
import os
import zipfile
from typing import IO, Any

import numpy as np

from imgkernel.errors import UsageError, open_user_file
from imgkernel.nn.layers import LAYER_TYPES, Layer
from imgkernel.nn.model import FORMAT, VERSION, Model
from imgkernel.nn.spec import InputSpec

MODEL_KEY = "__model__"

_HEADER_KEYS = {"format", "version", "input", "labels", "layers", "description"}
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip entry; an empty zip
_NPY_MAGIC = b"\x93NUMPY"
_CORRUPT = (OSError, EOFError, zipfile.BadZipFile)


def save_model(model: Model, path: str | os.PathLike[str]) -> None:
    """Write ``model`` as an imgkernel ``.npz`` file, atomically.

    Written by :func:`imgkernel.images.deliver`: a temporary file beside the target
    then ``os.replace``; a new file gets the umask's permissions, a replaced
    one keeps its own. A missing directory is a :class:`UsageError` naming
    ``path``; ``"-"`` writes to standard output (not to a terminal).
    """
    from imgkernel.images import deliver

    target = os.fspath(path)
    header = np.array(json.dumps(model.to_json(), indent=1))
    entries = {MODEL_KEY: header, **model.arrays()}

    def encode(fh: IO[bytes]) -> None:
        np.savez_compressed(fh, **entries)  # type: ignore[arg-type]

    deliver(target, encode)


def _bundled_dir() -> Any:
    from importlib.resources import files

    return files("imgkernel.nn").joinpath("models")


def list_bundled_models() -> list[str]:
    """Names of the models shipped in the package (``imgkernel/nn/models/*.npz``)."""
    try:
        entries = list(_bundled_dir().iterdir())
    except (FileNotFoundError, NotADirectoryError, OSError):
        return []
    return sorted(e.name[:-4] for e in entries if e.name.endswith(".npz"))


def load_model(path_or_name: str | os.PathLike[str]) -> Model:
    """Load and validate a model file, or a bundled model by name."""
    source = os.fspath(path_or_name)
    if not os.path.exists(source):
        stem = source[:-4] if source.endswith(".npz") else source
        if os.sep not in source and "/" not in source and stem in list_bundled_models():
            data = _bundled_dir().joinpath(stem + ".npz").read_bytes()
            return _load(_io.BytesIO(data), f"bundled model {stem!r}")
        bundled = ", ".join(list_bundled_models()) or "none"
        raise UsageError(f"no model file or bundled model {source!r} (bundled: {bundled})")
    if os.path.isdir(source):
        raise UsageError(f"{source!r} is a directory, not a model file")
    return _load(source, source)


def _not_npz_reason(source: Any) -> str | None:
    """Why ``source`` is not a zip archive, from its first bytes (None: it is one).

    ``np.load(allow_pickle=False)`` says "contains pickled (object) data" for
    any file that is neither zip nor .npy, so the reason is found here instead.
    """
    if hasattr(source, "read"):
        pos = source.tell()
        head = source.read(8)
        source.seek(pos)
    else:
        with open_user_file(source) as fh:
            head = fh.read(8)
    if head.startswith(_ZIP_MAGIC):
        return None
    if not head:
        return "the file is empty"
    if head.startswith(_NPY_MAGIC):
        return "a single .npy array"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "a Python pickle; imgkernel never unpickles model files"
    return "not a zip archive"


def _load(source: Any, label: str) -> Model:
    reason = _not_npz_reason(source)
    if reason is not None:
        raise UsageError(f"{label}: not an npz model file ({reason})")
    try:
        archive = np.load(source, allow_pickle=False)
    except (ValueError, *_CORRUPT) as exc:
        raise UsageError(f"{label}: not an npz model file ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UsageError(f"{label}: not an npz model file (a single .npy array)")
    with archive:
        if MODEL_KEY not in archive.files:
            raise UsageError(f"{label}: not an imgkernel model (no {MODEL_KEY} entry)")
        try:
            raw = archive[MODEL_KEY]
        except ValueError:
            raise UsageError(
                f"{label}: the {MODEL_KEY} entry is a pickled object array; "
                "store the JSON as a string, not an object"
            ) from None
        except _CORRUPT as exc:
            raise UsageError(f"{label}: corrupt model file ({exc})") from None
        try:
            return model_from_json(decode_header(raw), archive)
        except UsageError as exc:
            raise UsageError(f"{label}: {exc}") from None
        except _CORRUPT as exc:
            raise UsageError(f"{label}: corrupt model file ({exc})") from None


def decode_header(raw: np.ndarray) -> dict[str, Any]:
    """The JSON header object from the ``__model__`` entry (unicode or UTF-8 bytes)."""
    if raw.dtype.kind == "U" and raw.ndim in (0, 1):
        text = "".join(raw.reshape(-1).tolist())
    elif raw.dtype == np.uint8 and raw.ndim == 1:
        try:
            text = raw.tobytes().decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError("the model header is not valid UTF-8") from None
    elif raw.dtype.kind == "S" and raw.ndim in (0, 1):
        text = b"".join(raw.reshape(-1).tolist()).decode("utf-8", "replace")
    else:
        raise UsageError(
            f"the {MODEL_KEY} entry must be a unicode string or uint8 bytes, got "
            f"{raw.dtype} of shape {raw.shape}"
        )
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError is a ValueError; so is a number over Python's digit
        # limit, and deep nesting exhausts the recursion limit
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"the model header is not valid JSON: {detail}") from None
    if not isinstance(data, dict):
        raise UsageError("the model header must be a JSON object")
    return data


def _check_header(header: dict[str, Any]) -> None:
    if header.get("format") != FORMAT:
        raise UsageError(
            f"not an imgkernel model (format is {header.get('format')!r}, expected {FORMAT!r})"
        )
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UsageError(f"bad model format version {version!r}")
    if version > VERSION:
        raise UsageError(
            f"the model uses format version {version}; this imgkernel reads version {VERSION} "
            "(upgrade imgkernel)"
        )
    unknown = set(header) - _HEADER_KEYS
    if unknown:
        raise UsageError(f"unknown model header key(s): {', '.join(sorted(unknown))}")
    if "input" not in header:
        raise UsageError("the model header lacks the 'input' spec")


def model_from_json(header: dict[str, Any], arrays: dict[str, np.ndarray] | Any) -> Model:
    """Build and validate a model from its header and a mapping of npz entries."""
    _check_header(header)
    spec = InputSpec.from_json(header["input"])
    labels = header.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
        raise UsageError("model labels must be a list of strings")
    entries = header.get("layers")
    if not isinstance(entries, list):
        raise UsageError("the model header must hold a list of layers")
    layers = [_layer_from_entry(i, entry, arrays) for i, entry in enumerate(entries)]
    return Model(layers, labels, spec, header.get("description", "") or "")


def _layer_from_entry(i: int, entry: Any, arrays: Any) -> Layer:
    """Layer ``i`` of the header, its weight arrays looked up in ``arrays``."""
    name: Any = entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(entry, dict):
        raise UsageError(f"layer {i}: must be an object, got {entry!r}")
    kind = entry.get("type")
    if kind not in LAYER_TYPES:
        raise UsageError(
            f"layer {i} ({name!r}): unknown layer type {kind!r}; known: {', '.join(LAYER_TYPES)}"
        )
    cls = LAYER_TYPES[kind]
    where = f"layer {i} ({name!r}, {kind})"
    available = set(arrays.keys()) if hasattr(arrays, "keys") else set(arrays)
    kwargs: dict[str, Any] = {}
    for key, value in entry.items():
        if key in ("type", "name"):
            continue
        if key not in cls.ARRAYS:
            kwargs[key] = value
        elif value is not None:
            if not isinstance(value, str):
                raise UsageError(f"{where}: {key} must name an array entry, got {value!r}")
            if value not in available:
                raise UsageError(f"{where}: missing array {value!r} ({key})")
            try:
                kwargs[key] = arrays[value]
            except ValueError as exc:
                raise UsageError(
                    f"{where}: array {value!r} cannot be read without pickle ({exc})"
                ) from None
    try:
        return cls(name, **kwargs)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
