"""imgkernel.images.formats: format names from file names, options and first bytes."""

from __future__ import annotations

import pytest

from imgkernel.errors import UsageError
from imgkernel.images import format_from_name
from imgkernel.images.formats import (
    is_binary_format,
    is_text_output,
    normalize_format,
    requested_format,
    sniff_format,
)


def test_format_from_name():
    assert format_from_name("a/b.PNG") == "PNG"
    assert format_from_name("x.tiff") == "TIFF"
    assert format_from_name("x.npy") == "NPY"
    assert format_from_name("-") is None
    assert format_from_name("README") is None
    with pytest.raises(UsageError, match=r"\.png"):
        format_from_name("x.doc")


def test_is_binary_format():
    assert is_binary_format("PNG") and is_binary_format("NPY") and is_binary_format(None)
    assert not is_binary_format("txt") and not is_binary_format("JSON")


def test_requested_format_and_text_outputs():
    assert requested_format("jpg") == "JPEG" and requested_format("Png") == "PNG"
    assert requested_format(None) is None
    assert requested_format("xyz") == "XYZ"  # refused later, when writing
    assert is_text_output("json") and is_text_output("TXT") and not is_text_output("npy")


def test_normalize_format():
    assert normalize_format("tif") == "TIFF" and normalize_format(" .JPEG ") == "JPEG"
    assert normalize_format("pgm") == "PPM"
    with pytest.raises(UsageError, match="unknown image format 'doc'"):
        normalize_format("doc")


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"\xff\xd8\xff\xe0", "JPEG"),
        (b"GIF89a", "GIF"),
        (b"MM\x00*", "TIFF"),
        (b"RIFF\x00\x00\x00\x00WEBP", "WEBP"),
        (b"BM" + bytes(12) + (40).to_bytes(4, "little"), "BMP"),
        (b"BM" + bytes(12) + (7).to_bytes(4, "little"), None),
        (b"P5\n", "PPM"),
        (b"P7\n", None),
    ],
)
def test_sniff_format(head, fmt):
    assert sniff_format(head) == fmt
