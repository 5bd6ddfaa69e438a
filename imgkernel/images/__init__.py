"""Images in and out: reading, atomic writing, the display mapping, batches of files."""

from imgkernel.images.io import (
    DISPLAY_MODES,
    Image,
    deliver,
    expand_outputs,
    format_from_name,
    max_value_for,
    probe_image,
    read_array,
    read_image,
    to_display,
    write_array,
    write_image,
    write_text,
)

__all__ = [
    "DISPLAY_MODES",
    "Image",
    "deliver",
    "expand_outputs",
    "format_from_name",
    "max_value_for",
    "probe_image",
    "read_array",
    "read_image",
    "to_display",
    "write_array",
    "write_image",
    "write_text",
]
