"""Images in and out: reading, atomic writing, the display mapping, batches of files.

=================  ===========================================================
module             what it holds
=================  ===========================================================
``image``          the :class:`Image` record, array layouts, the unit rule
``formats``        format names from file names, options and first bytes
``read``           :func:`read_image`, :func:`probe_image`, :func:`read_array`
``write``          :func:`write_image` and friends; the per-format save options
``deliver``        atomic delivery to a file or standard output
``display``        :func:`to_display` and the :class:`Display` policy
``outputs``        output names for a batch: files, directories, templates
``batch``          :class:`OutputOptions` and :func:`run_images`
``many``           many inputs in batches: worker processes, Dask, the failure rule
``inputs``         inputs from arguments, quoted globs and ``--files-from`` lists
``stream``         results as row bands, written as they come (:class:`Bands`)
``png``            imgkernel's PNG writer (parallel deflate strips)
``pool``           pooling image files (:func:`pool_files`)
``regions``        reading rectangles of TIFF and Zarr images larger than memory
``tiled_write``    writing TIFF and Zarr images band by band, tile by tile
``cluster``        where tiles are computed: local threads or a Dask cluster
``tiled``          the tiled engine (:func:`run_large`) and :func:`pool_large`
=================  ===========================================================

``tifffile`` (extra ``tiff``), ``zarr`` (extra ``zarr``) and ``distributed``
(extra ``dask``) are imported only by the functions that need them.
"""

from typing import TYPE_CHECKING

from imgkernel.images.batch import OutputOptions, run_images
from imgkernel.images.deliver import deliver
from imgkernel.images.display import (
    DISPLAY_MODES,
    POINTWISE_DISPLAY_MODES,
    Display,
    Offset,
    to_display,
)
from imgkernel.images.formats import format_from_name, is_text_output
from imgkernel.images.image import (
    LAYOUTS,
    ArrayLayout,
    Image,
    attach_alpha,
    max_value_for,
    to_pixel_type,
)
from imgkernel.images.inputs import list_inputs
from imgkernel.images.many import BatchOptions, Outcome, Reporter, attempt, run_many
from imgkernel.images.outputs import expand_outputs
from imgkernel.images.read import check_stdin_once, probe_image, read_array, read_image
from imgkernel.images.stream import STREAMED_FORMATS, Bands, write_bands
from imgkernel.images.write import SAVE_OPTIONS, write_array, write_image, write_text
from imgkernel.lazy import lazy_exports

if TYPE_CHECKING:  # the lazily loaded names below, for type checkers
    from imgkernel.images.pool import POOL_MODES, pool_files, pool_image
    from imgkernel.images.regions import open_region_source
    from imgkernel.images.route import LargeRoute
    from imgkernel.images.tiled import LargeResult, pool_large, run_large

__all__ = [
    "STREAMED_FORMATS",
    "Bands",
    "write_bands",
    "DISPLAY_MODES",
    "LAYOUTS",
    "POINTWISE_DISPLAY_MODES",
    "POOL_MODES",
    "SAVE_OPTIONS",
    "ArrayLayout",
    "BatchOptions",
    "Display",
    "Image",
    "LargeResult",
    "LargeRoute",
    "Offset",
    "Outcome",
    "OutputOptions",
    "Reporter",
    "attempt",
    "attach_alpha",
    "check_stdin_once",
    "deliver",
    "expand_outputs",
    "format_from_name",
    "is_text_output",
    "list_inputs",
    "open_region_source",
    "max_value_for",
    "pool_files",
    "pool_image",
    "pool_large",
    "probe_image",
    "read_array",
    "read_image",
    "run_images",
    "run_large",
    "run_many",
    "to_display",
    "to_pixel_type",
    "write_array",
    "write_image",
    "write_text",
]

#: Names loaded on first use: what only some commands need stays out of start-up.
_LAZY = {
    "POOL_MODES": "imgkernel.images.pool",
    "pool_files": "imgkernel.images.pool",
    "pool_image": "imgkernel.images.pool",
    "open_region_source": "imgkernel.images.regions",
    "LargeResult": "imgkernel.images.tiled",
    "LargeRoute": "imgkernel.images.route",
    "pool_large": "imgkernel.images.tiled",
    "run_large": "imgkernel.images.tiled",
}


__getattr__ = lazy_exports(__name__, _LAZY)
