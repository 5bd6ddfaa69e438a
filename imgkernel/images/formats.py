"""Format names: from file names, from user options, and from a file's first bytes."""

from __future__ import annotations

import os

from imgkernel.errors import UsageError

#: Lower-case file extension -> format name.
EXTENSIONS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".gif": "GIF",
    ".ppm": "PPM",
    ".pgm": "PPM",
    ".pbm": "PPM",
    ".pnm": "PPM",
    ".npy": "NPY",
}

#: Formats handled here, in the order they are listed in messages.
FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF", "PPM", "NPY")

#: Preferred extension for each format (for generated output names).
FORMAT_EXTENSIONS = {
    "PNG": ".png",
    "JPEG": ".jpg",
    "TIFF": ".tif",
    "BMP": ".bmp",
    "WEBP": ".webp",
    "GIF": ".gif",
    "PPM": ".ppm",
    "NPY": ".npy",
}

#: Formats that are text, not image data (never refused on a terminal).
_TEXT_FORMATS = frozenset({"TXT", "TEXT", "CSV", "TSV", "JSON"})

#: Text outputs a batch writes (``pool --global`` numbers), recognised by name too.
TEXT_OUTPUTS = ("TXT", "JSON")
_TEXT_EXTENSIONS = {".json": "JSON", ".txt": "TXT"}


def format_from_name(path: str) -> str | None:
    """Format name for a file name's extension, or None for ``-`` or no extension.

    >>> format_from_name("out/edges.PNG"), format_from_name("x.jpeg"), format_from_name("a.npy")
    ('PNG', 'JPEG', 'NPY')
    >>> format_from_name("-") is None, format_from_name("noext") is None
    (True, True)
    >>> format_from_name("x.xyz")
    Traceback (most recent call last):
    ...
    imgkernel.errors.UsageError: x.xyz: unknown image file extension '.xyz' (known: .bmp, .gif, \
.jfif, .jpe, .jpeg, .jpg, .npy, .pbm, .pgm, .png, .pnm, .ppm, .tif, .tiff, .webp)
    """
    path = os.fspath(path)
    if path == "-":
        return None
    ext = os.path.splitext(os.path.basename(path))[1].lower()
    if not ext:
        return None
    if ext in _TEXT_EXTENSIONS:
        return _TEXT_EXTENSIONS[ext]
    try:
        return EXTENSIONS[ext]
    except KeyError:
        known = ", ".join(sorted(EXTENSIONS))
        raise UsageError(f"{path}: unknown image file extension {ext!r} (known: {known})") from None


def normalize_format(fmt: str) -> str:
    """Canonical format name for a user-given one ("jpg", ".png", "tif" -> ...).

    >>> normalize_format("jpg"), normalize_format(".PNG"), normalize_format("npy")
    ('JPEG', 'PNG', 'NPY')
    """
    key = fmt.strip().lower()
    if not key.startswith("."):
        key = "." + key
    if key in EXTENSIONS:
        return EXTENSIONS[key]
    upper = fmt.strip().upper()
    if upper in FORMATS:
        return upper
    known = ", ".join(f.lower() for f in FORMATS)
    raise UsageError(f"unknown image format {fmt!r} (known: {known})")


def requested_format(fmt: str | None) -> str | None:
    """An output format option as given, upper-cased (``jpg`` -> ``JPEG``); None stays None.

    Unknown names pass: they are refused when the first image is written.

    >>> requested_format("jpg"), requested_format("tif"), requested_format("json")
    ('JPEG', 'TIFF', 'JSON')
    >>> requested_format(None) is None
    True
    """
    if fmt is None:
        return None
    upper = fmt.upper()
    return {"JPG": "JPEG", "TIF": "TIFF"}.get(upper, upper)


def is_text_output(fmt: str) -> bool:
    """True for the text outputs a batch writes as lines (``txt``, ``json``).

    >>> is_text_output("json"), is_text_output("NPY")
    (True, False)
    """
    return fmt.upper() in TEXT_OUTPUTS


def is_binary_format(fmt: str | None) -> bool:
    """True for image formats (everything except text formats such as TXT/CSV/JSON).

    >>> is_binary_format("PNG"), is_binary_format("npy"), is_binary_format("csv")
    (True, True, False)
    """
    if fmt is None:
        return True
    return fmt.strip().lstrip(".").upper() not in _TEXT_FORMATS


def sniff_format(head: bytes) -> str | None:
    """Format name from the first bytes of a file, or None if not recognised.

    >>> sniff_format(b"\\x89PNG\\r\\n\\x1a\\n...."), sniff_format(b"\\x93NUMPY\\x01\\x00")
    ('PNG', 'NPY')
    >>> sniff_format(b"hello") is None
    True
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "TIFF"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(b"\x93NUMPY"):
        return "NPY"
    if head.startswith(b"BM") and len(head) >= 18:
        # BITMAPFILEHEADER is followed by a DIB header whose size is 12..124.
        dib = int.from_bytes(head[14:18], "little")
        if dib in (12, 16, 40, 52, 56, 64, 108, 124):
            return "BMP"
    if len(head) >= 3 and head[:1] == b"P" and head[1:2] in b"123456" and head[2:3] in b" \t\r\n#":
        return "PPM"
    return None
