"""The former single module of :mod:`imgkernel.images`, kept so old imports still work.

New code imports from :mod:`imgkernel.images`; this module only re-exports.
"""

from imgkernel.images.deliver import deliver
from imgkernel.images.display import DISPLAY_MODES, to_display
from imgkernel.images.formats import (
    EXTENSIONS,
    format_from_name,
    is_binary_format,
    normalize_format,
    sniff_format,
)
from imgkernel.images.image import Image, attach_alpha, max_value_for
from imgkernel.images.outputs import check_inputs, expand_outputs
from imgkernel.images.read import probe_image, read_array, read_image
from imgkernel.images.write import (
    DEFAULT_JPEG_QUALITY,
    DEFAULT_PNG_COMPRESS_LEVEL,
    write_array,
    write_image,
    write_text,
)

__all__ = [
    "DEFAULT_JPEG_QUALITY",
    "DEFAULT_PNG_COMPRESS_LEVEL",
    "DISPLAY_MODES",
    "EXTENSIONS",
    "Image",
    "attach_alpha",
    "check_inputs",
    "deliver",
    "expand_outputs",
    "format_from_name",
    "is_binary_format",
    "max_value_for",
    "normalize_format",
    "probe_image",
    "read_array",
    "read_image",
    "sniff_format",
    "to_display",
    "write_array",
    "write_image",
    "write_text",
]
