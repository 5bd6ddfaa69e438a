"""imgkernel: image convolution, pooling and small-CNN inference.

Importing the package loads numpy only; scipy and Pillow are imported by the
functions that need them.
"""

from imgkernel.core import conv2d, filter2d, global_pool, pool2d
from imgkernel.errors import ImgkernelError, UsageError

__all__ = ["conv2d", "filter2d", "pool2d", "global_pool", "ImgkernelError", "UsageError"]
__version__ = "0.1.0"
