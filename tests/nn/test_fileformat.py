"""The .npz model file: round trips, validation of every part, crafted and foreign files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from imgkernel.errors import UsageError
from imgkernel.nn import (
    Model,
    load_model,
    save_model,
)
from imgkernel.nn.demo import stripes_model
from imgkernel.nn.layers import (
    AvgPool,
    BatchNorm,
    Clip,
    Conv2D,
    Dense,
    GlobalMaxPool,
    LeakyReLU,
    MinPool,
    Reshape,
    Sigmoid,
    Softmax,
    Tanh,
)
from imgkernel.nn.spec import InputSpec

RNG = np.random.default_rng(1234)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def spec(c: int = 3, h: int = 8, w: int = 8) -> InputSpec:
    return InputSpec(channels=c, height=h, width=w)


def test_save_load_round_trip(tmp_path: Path):
    layers = [
        Conv2D("c1", rand(4, 3, 3, 3), rand(4), stride=(1, 2), padding=(0, 1, 2, 1), dilation=1),
        BatchNorm("bn", rand(4), rand(4), rand(4), np.abs(rand(4)) + 0.5, epsilon=1e-3),
        LeakyReLU("lr", alpha=0.1),
        Conv2D("c2", rand(4, 2, 3, 3), None, padding="same", groups=2),
        Clip("clip", min=-1.0, max=1.0),
        MinPool("minp", size=2, stride=1, padding=1, ceil_mode=True),
        Sigmoid("sig"),
        AvgPool("avg", size=3, stride=2, padding=1, count_include_pad=True),
        Tanh("tanh"),
        GlobalMaxPool("gmax"),
        Reshape("reshape", shape=[0, -1]),
        Dense("fc", rand(5, 4), rand(5)),
        Softmax("sm", axis=1),
    ]
    m = Model.from_layers(
        layers, list("abcde"), InputSpec(3, 16, 12, mean=[0.5] * 3, std=[0.2] * 3)
    )
    path = tmp_path / "m.npz"
    save_model(m, path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temp file left
    m2 = load_model(str(path))
    assert m2.to_json() == m.to_json()
    x = rand(2, 3, 16, 12)
    np.testing.assert_array_equal(m2(x), m(x))
    # the header is a plain string, readable without pickle
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(str(z["__model__"]))
    assert header["format"] == "imgkernel-model" and header["version"] == 2


def write_npz(path: Path, header: dict | None, **arrays) -> Path:
    entries = dict(arrays)
    if header is not None:
        entries["__model__"] = np.array(json.dumps(header))
    np.savez(path, **entries)
    return path


def header(layers: list[dict], **extra) -> dict:
    h = {
        "format": "imgkernel-model",
        "version": 1,
        "input": {"channels": 1, "height": 8, "width": 8},
        "labels": [],
        "layers": layers,
    }
    h.update(extra)
    return h


CONV = {"type": "conv2d", "name": "c1", "weight": "c1.weight", "bias": "c1.bias"}


DENSE = {"type": "dense", "name": "fc", "weight": "fc.weight"}


def test_valid_handwritten_file_loads(tmp_path: Path):
    p = write_npz(
        tmp_path / "ok.npz",
        header([CONV, {"type": "flatten", "name": "f"}, DENSE], labels=["x", "y"]),
        **{"c1.weight": rand(2, 1, 3, 3), "c1.bias": rand(2), "fc.weight": rand(2, 72)},
    )
    m = load_model(p)
    assert m.output_shape == (None, 2) and m.labels == ["x", "y"]
    # a uint8-bytes header is accepted too
    no_bias = {"type": "conv2d", "name": "c1", "weight": "c1.weight"}
    raw = np.frombuffer(json.dumps(header([no_bias])).encode(), np.uint8)
    np.savez(tmp_path / "bytes.npz", __model__=raw, **{"c1.weight": rand(2, 1, 3, 3)})
    assert load_model(tmp_path / "bytes.npz").layers[0].bias is None


@pytest.mark.parametrize(
    "layers,arrays,match",
    [
        (
            [CONV],
            {"c1.weight": rand(2, 1, 3, 3)},
            r"layer 0 \('c1', conv2d\): missing array 'c1.bias'",
        ),
        (
            [CONV, {"type": "flatten", "name": "f"}, DENSE],
            {"c1.weight": rand(2, 1, 3, 3), "c1.bias": rand(2), "fc.weight": rand(2, 70)},
            r"layer 2 \('fc', dense\): weight expects 70 input features, got 72",
        ),
        (
            [CONV, {"type": "conv2d", "name": "c2", "weight": "w2"}],
            {"c1.weight": rand(2, 1, 3, 3), "c1.bias": rand(2), "w2": rand(2, 3, 3, 3)},
            r"layer 1 \('c2', conv2d\): weight expects 3 input channels",
        ),
        ([{"type": "swish", "name": "act"}], {}, r"layer 0 \('act'\): unknown layer type 'swish'"),
        (
            [{"type": "leaky_relu", "name": "lr", "alpha": "big"}],
            {},
            r"layer 0 \('lr', leaky_relu\): alpha must be a number",
        ),
        (
            [{"type": "relu", "name": "r", "inplace": True}],
            {},
            r"layer 0 \('r', relu\): unknown attribute",
        ),
        (
            [{"type": "maxpool", "name": "p", "size": 9}],
            {},
            r"layer 0 \('p', maxpool\): the 9x9 pooling window .* padded input is only 8x8",
        ),
        (
            [{"type": "conv2d", "name": "c", "weight": "w", "stride": 0}],
            {"w": rand(1, 1, 3, 3)},
            r"layer 0 \('c', conv2d\): stride must be at least 1",
        ),
    ],
)
def test_validation_errors(tmp_path: Path, layers, arrays, match):
    p = write_npz(tmp_path / "bad.npz", header(layers), **arrays)
    with pytest.raises(UsageError, match=match):
        load_model(p)


def test_pickled_npz_is_rejected(tmp_path: Path):
    obj = np.empty(1, dtype=object)
    obj[0] = {"evil": True}
    p = write_npz(tmp_path / "p.npz", header([CONV]), **{"c1.weight": obj, "c1.bias": rand(2)})
    with pytest.raises(UsageError, match="pickle"):
        load_model(p)
    p2 = tmp_path / "p2.npz"
    np.savez(p2, __model__=np.array([json.dumps(header([]))], dtype=object))
    with pytest.raises(UsageError, match="pickled"):
        load_model(p2)


def test_not_a_model(tmp_path: Path):
    (tmp_path / "t.npz").write_text("hello")
    with pytest.raises(UsageError, match="not an npz"):
        load_model(tmp_path / "t.npz")
    with pytest.raises(UsageError, match=r"no __model__"):
        load_model(write_npz(tmp_path / "n.npz", None, a=rand(2)))
    with pytest.raises(UsageError, match="not an imgkernel model"):
        load_model(write_npz(tmp_path / "f.npz", header([], format="keras")))
    with pytest.raises(UsageError, match="version 3"):
        load_model(write_npz(tmp_path / "v.npz", header([], version=3)))
    with pytest.raises(UsageError, match="no model file or bundled model"):
        load_model(tmp_path / "missing.npz")
    np.save(tmp_path / "single.npy", rand(3))
    with pytest.raises(UsageError, match="not an npz"):
        load_model(tmp_path / "single.npy")


@pytest.mark.parametrize(
    "text,match",
    [
        ('{"format":"imgkernel-model","version":1' + "0" * 5000 + "}", "not valid JSON"),
        ("[" * 100000 + "]" * 100000, "not valid JSON"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_crafted_header_is_a_usage_error_naming_the_file(tmp_path: Path, text, match):
    p = tmp_path / "crafted.npz"
    np.savez(p, __model__=np.array(text))
    with pytest.raises(UsageError, match=match) as info:
        load_model(p)
    assert str(info.value).startswith(f"{p}: ")
    assert "\n" not in str(info.value)


def test_bad_header_encodings_name_the_file(tmp_path: Path):
    p = tmp_path / "bytes.npz"
    np.savez(p, __model__=np.frombuffer(b"\xff\xfe{}", np.uint8))
    with pytest.raises(UsageError, match="not valid UTF-8") as info:
        load_model(p)
    assert str(info.value).startswith(f"{p}: ")
    p2 = tmp_path / "floats.npz"
    np.savez(p2, __model__=rand(3))
    with pytest.raises(UsageError, match="must be a unicode string") as info:
        load_model(p2)
    assert str(info.value).startswith(f"{p2}: ")


def test_save_model_permissions_follow_umask_and_existing_file(tmp_path: Path):
    import os
    import stat

    m = stripes_model()
    old = os.umask(0o022)
    try:
        new = tmp_path / "new.npz"
        save_model(m, new)
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        existing = tmp_path / "existing.npz"
        existing.write_bytes(b"old")
        existing.chmod(0o640)
        save_model(m, existing)
        assert stat.S_IMODE(existing.stat().st_mode) == 0o640
    finally:
        os.umask(old)
    assert load_model(existing).to_json() == m.to_json()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.npz", "new.npz"]


def test_save_model_missing_directory_is_a_usage_error_naming_the_target(tmp_path: Path):
    target = tmp_path / "nodir" / "m.npz"
    with pytest.raises(UsageError, match="does not exist") as info:
        save_model(stripes_model(), target)
    assert str(info.value).startswith(f"{target}: ")
    assert ".tmp" not in str(info.value)


@pytest.mark.parametrize(
    "inp,match",
    [
        ({"channels": 1, "height": 10**9, "width": 10**9}, r"input height must be at most 16384"),
        ({"channels": 3, "height": 8, "width": 16385}, r"input width must be at most 16384"),
        ({"channels": 2, "height": 8, "width": 8}, r"input channels must be 1 or 3"),
        ({"channels": 1, "height": 0, "width": 8}, r"input height must be at least 1"),
    ],
)
def test_absurd_input_spec_is_rejected_on_load(tmp_path: Path, inp, match):
    p = write_npz(tmp_path / "huge.npz", header([{"type": "relu", "name": "r"}], input=inp))
    with pytest.raises(UsageError, match=match) as info:
        load_model(p)
    assert str(info.value).startswith(f"{p}: ")


@pytest.mark.parametrize(
    "content,match",
    [
        (b"hello world", r"not an npz model file \(not a zip archive\)"),
        (b"", r"not an npz model file \(the file is empty\)"),
        (b"PK\x03\x04garbage", r"not an npz model file"),
    ],
)
def test_non_zip_file_is_not_called_a_pickle(tmp_path: Path, content, match):
    p = tmp_path / "short.npz"
    p.write_bytes(content)
    with pytest.raises(UsageError, match=match) as info:
        load_model(p)
    assert "pickle" not in str(info.value)
    assert str(info.value).startswith(f"{p}: ")


def test_real_pickle_file_is_reported_as_a_pickle(tmp_path: Path):
    import pickle

    p = tmp_path / "model.npz"
    p.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(UsageError, match=r"not an npz model file \(a Python pickle") as info:
        load_model(p)
    assert str(info.value).startswith(f"{p}: ")


# --------------------------------------------------------------------- damaged, hostile files


def _digits_arrays() -> dict:
    from imgkernel.nn.fileformat import _bundled_dir

    with np.load(io.BytesIO(_bundled_dir().joinpath("digits.npz").read_bytes())) as archive:
        return {k: archive[k] for k in archive.files}


def _header(arrays: dict) -> dict:
    raw = arrays["__model__"]
    return json.loads(str(raw) if raw.dtype.kind == "U" else raw.tobytes().decode())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("corrupt", "damaged model file"),
        ("overflow", r"contains NaN or infinite values \(in float32\)"),
        ("claims", "claims .* more than"),
        ("many", "more than the limit"),
        ("description", "description must be a string"),
        ("padding", "too large"),
    ],
)
def test_hostile_model_files_are_one_line_usage_errors(tmp_path, make, message):
    import zipfile

    arrays = _digits_arrays()
    header = _header(arrays)
    path = tmp_path / f"{make}.npz"
    key = next(k for k in arrays if k.endswith("weight"))
    if make == "overflow":  # finite in float64, infinite in float32
        arrays[key] = np.full(arrays[key].shape, 1e300)
    elif make == "many":
        header["layers"] = [{"type": "relu", "name": f"r{i}"} for i in range(20_000)]
    elif make == "description":
        header["description"] = {"text": "not a string"}
    elif make == "padding":
        conv = next(e for e in header["layers"] if e["type"] == "conv2d")
        conv["padding"] = [10**6] * 4
    arrays["__model__"] = np.array(json.dumps(header))
    if make == "corrupt":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.save(buffer, array, allow_pickle=False)
                archive.writestr(name + ".npy", buffer.getvalue())
        data = bytearray(path.read_bytes())
        at = data.find(b"__model__.npy") + 200
        data[at : at + 16] = b"\xff" * 16
        path.write_bytes(bytes(data))
    elif make == "claims":  # a member header claiming 100 GB
        from numpy.lib import format as npformat

        buffer = io.BytesIO()
        npformat.write_array_header_1_0(
            buffer, {"descr": "<f4", "fortran_order": False, "shape": (10**5, 10**5, 10)}
        )
        with zipfile.ZipFile(path, "w") as archive:
            for name, array in arrays.items():
                member = io.BytesIO()
                np.save(member, array, allow_pickle=False)
                data = buffer.getvalue() if name == key else member.getvalue()
                archive.writestr(name + ".npy", data)
    else:
        np.savez(path, **arrays)
    with pytest.raises(UsageError, match=message) as caught:
        load_model(str(path))
    assert str(caught.value).startswith(str(path))
    assert "\n" not in str(caught.value)
