"""The ``.npz`` model file: writing, reading and validating it, and the bundled models.

A model file is a numpy ``.npz`` archive: a ``__model__`` entry holding the
JSON header (format, version, input spec, graph inputs, nodes, outputs,
labels; :mod:`imgkernel.nn.header` reads it) and one entry per weight array.
``docs/model-format.md`` describes it. Files are never unpickled; every
defect is a :class:`imgkernel.errors.UsageError` that names the file.
"""

from __future__ import annotations

import io as _io
import json
import os
import zipfile
import zlib
from typing import IO, Any

import numpy as np

from imgkernel.errors import UsageError, open_user_file
from imgkernel.nn.header import model_from_json
from imgkernel.nn.model import Model

MODEL_KEY = "__model__"

__all__ = ["MODEL_KEY", "decode_header", "list_bundled_models", "load_model", "model_from_json",
           "save_model"]  # fmt: skip
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip entry; an empty zip
_NPY_MAGIC = b"\x93NUMPY"
#: What a damaged archive member raises while it is read: a bad zip entry, a
#: short file, or deflate data that does not decompress (zlib.error).
_CORRUPT = (OSError, EOFError, zipfile.BadZipFile, zlib.error)


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
        np.savez(fh, **entries)  # type: ignore[arg-type]

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
            raw = _CheckedArrays(archive, 4 * MAX_HEADER_CHARS)[MODEL_KEY]
        except UsageError as exc:
            raise UsageError(f"{label}: the model header is too large ({exc})") from None
        except ValueError:
            raise UsageError(
                f"{label}: the {MODEL_KEY} entry is a pickled object array; "
                "store the JSON as a string, not an object"
            ) from None
        except _CORRUPT as exc:
            raise UsageError(f"{label}: damaged model file ({exc})") from None
        try:
            return model_from_json(decode_header(raw), _CheckedArrays(archive))
        except UsageError as exc:
            raise UsageError(f"{label}: {exc}") from None
        except (*_CORRUPT, ValueError) as exc:
            raise UsageError(f"{label}: damaged model file ({exc})") from None


#: Longest JSON header accepted (10,000 nodes of a few hundred characters).
MAX_HEADER_CHARS = 8 << 20
#: Largest archive entry read (a weight array of a billion float32 values).
MAX_ENTRY_BYTES = 4 << 30


class _CheckedArrays:
    """An npz archive whose members' headers are checked before they are read.

    A member's ``.npy`` header may claim any shape; reading it would then
    allocate that much. Each member's shape is read from its header first and
    refused over :data:`MAX_ENTRY_BYTES`, and a member that fails to
    decompress is a damaged file, not a traceback.
    """

    def __init__(self, archive: Any, limit: int = 0) -> None:
        self.archive = archive
        self.files = archive.files
        self.limit = limit or MAX_ENTRY_BYTES

    def __contains__(self, key: str) -> bool:
        return key in self.archive.files

    def keys(self) -> list[str]:
        return list(self.archive.files)

    def __getitem__(self, key: str) -> np.ndarray:
        from numpy.lib import format as npformat

        with self.archive.zip.open(key + ".npy") as member:
            version = npformat.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = npformat.read_array_header_1_0(member)
            else:
                shape, _, dtype = npformat.read_array_header_2_0(member)
        size = np.dtype(dtype).itemsize
        for length in shape:
            size *= int(length)
        if size > self.limit:
            raise UsageError(
                f"entry {key!r} claims {tuple(shape)} {np.dtype(dtype)}, more than "
                f"{self.limit:,} bytes"
            )
        return self.archive[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default


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
    if len(text) > MAX_HEADER_CHARS:
        raise UsageError(
            f"the model header has {len(text):,} characters, more than the limit of "
            f"{MAX_HEADER_CHARS:,}"
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
