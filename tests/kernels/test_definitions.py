"""Tables of a kernels TOML file (imgkernel.kernels.definitions): what a bad table says."""

from __future__ import annotations

import pytest

from imgkernel.errors import UsageError
from imgkernel.kernels import load_library


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[kernels.k]\nrows = [[1, 2], [3]]\n", "ragged"),
        ("[kernels.k]\nrows = [[1, 'a']]\n", "'a'"),
        ("[kernels.k]\nrows = []\n", "non-empty"),
        ("[kernels.k]\nrows = [[]]\n", "non-empty"),
        ("[kernels.k]\ngenerator = 'wavelet'\n", "'wavelet'"),
        ("[kernels.k]\ngenerator = 'gaussian'\nparams = { sigma = -2 }\n", "got -2"),
        ("[kernels.k]\ngenerator = 'gaussian'\nparams = { sgma = 2 }\n", "'sgma'"),
        ("[kernels.k]\nrows = [[1]]\nscale = 0\n", "got 0"),
        ("[kernels.k]\nrows = [[1]]\noffset = 128\n", "got 128"),
        ("[kernels.k]\nrows = [[1]]\ndisplay = 'fancy'\n", "'fancy'"),
        ("[kernels.k]\nrows = [[1]]\nscal = 2\n", "'scal'"),
        ("[kernels.k]\ndescription = 'nothing'\n", "exactly one of"),
        ("[kernels.k]\ncombine = 'magnitude'\ncomponents = ['sobel-x', 'nope']\n", "'nope'"),
        ("[kernels.k]\nalias = 'nosuch'\n", "'nosuch'"),
        ("[kernels.k\nrows = [[1]]\n", "not valid TOML"),
    ],
)
def test_bad_library_files(tmp_path, toml, needle):
    path = tmp_path / "mine.toml"
    path.write_text(toml)
    with pytest.raises(UsageError) as info:
        load_library([path], include_user=False)
    msg = str(info.value)
    assert needle in msg and "mine.toml" in msg, msg
