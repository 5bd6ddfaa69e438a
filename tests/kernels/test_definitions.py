"""Tables of a kernels TOML file (imgkernel.kernels.definitions): what a bad table says."""

from __future__ import annotations

from pathlib import Path

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


def test_lazy_builtins_equal_the_whole_file_parsed():
    # The built-in kernels.toml is cut at its [kernels.NAME] headers and each
    # table parsed when looked up; every table must come out as parsing the
    # whole file gives it, and every name the tables refer to must exist
    # (library_of checks only the user's tables).
    from imgkernel.kernels.definitions import LazyDefinitions, parse_definitions

    path = Path(__file__).resolve().parents[2] / "kernels.toml"
    text = path.read_text(encoding="utf-8")
    whole = parse_definitions(text, str(path))
    lazy = LazyDefinitions(text, str(path))
    assert not lazy._parsed  # the file cuts cleanly: nothing parsed yet
    lazy["sobel"]
    assert list(lazy._parsed) == ["sobel"]
    assert list(lazy) == list(whole) and len(lazy) == len(whole) > 30
    for name, expected in whole.items():
        got = lazy[name]
        assert repr(got) == repr(expected), name
        for ref in got.references():
            assert ref in whole, (name, ref)


def test_lazy_definitions_parse_only_what_is_looked_up():
    from imgkernel.kernels.definitions import LazyDefinitions

    text = (
        "# comment\n[kernels.a]\nalias = 'b'\n[kernels.b]\nrows = [[1, 2]]\n"
        "[kernels.g]\ngenerator = 'gaussian'\n[kernels.g.params]\nsigma = 2.0\n"
        "[kernels.bad]\nrows = 'nope'\n"
    )
    lazy = LazyDefinitions(text, "x.toml")
    assert sorted(lazy) == ["a", "b", "bad", "g"]
    assert lazy["g"].params["sigma"] == 2.0  # its sub-table went with it
    assert lazy["b"].rows.tolist() == [[1.0, 2.0]]
    with pytest.raises(UsageError, match="bad"):
        lazy["bad"]  # a bad table is an error when it is used
    with pytest.raises(KeyError):
        lazy["missing"]


@pytest.mark.parametrize(
    "text",
    [
        "[kernels.a]\nrows = [\n[1, 2],\n]\n",  # a line of an array starts with '['
        "top = 1\n[kernels.a]\nrows = [[1]]\n",  # a key before the first table
        "[other]\nx = 1\n[kernels.a]\nrows = [[1]]\n",  # a table not under kernels.
    ],
)
def test_lazy_definitions_parse_whole_what_does_not_cut_cleanly(text):
    from imgkernel.kernels.definitions import LazyDefinitions, parse_definitions

    try:
        expected = parse_definitions(text, "x.toml")
    except UsageError as exc:
        with pytest.raises(UsageError, match=str(exc).split("(")[0][:20]):
            LazyDefinitions(text, "x.toml")
        return
    lazy = LazyDefinitions(text, "x.toml")
    assert {n: repr(lazy[n]) for n in lazy} == {n: repr(d) for n, d in expected.items()}


def test_lazy_definitions_refuse_a_name_twice():
    from imgkernel.kernels.definitions import LazyDefinitions

    with pytest.raises(UsageError, match="twice|defined"):
        LazyDefinitions("[kernels.a]\nrows = [[1]]\n[kernels.A]\nrows = [[2]]\n", "x.toml")


def test_library_names_come_in_the_file_order():
    # The built-in tables first, in kernels.toml's order, as one merged table had them.
    import re

    path = Path(__file__).resolve().parents[2] / "kernels.toml"
    tables = re.findall(r"^\[kernels\.([a-z0-9-]+)\]", path.read_text(), flags=re.M)
    names = list(load_library(include_user=False))
    assert names[: len(tables)] == tables
