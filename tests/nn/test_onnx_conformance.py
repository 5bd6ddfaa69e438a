"""ONNX conformance: the backend node test cases and the light real models, via convert + run.

Every node test case of the onnx wheel's generators whose operators imgkernel
converts runs here (:mod:`onnx_cases`), compared with the case's expected
outputs at the case's tolerances. The only cases left out are those of
dtypes imgkernel does not run (``onnx_cases.RUN_DTYPES``: float32 data and
int64 constant operands); :func:`test_exclusions_are_only_dtypes` pins their
list. The ``data/light`` models (real architectures with constant weights)
are converted and compared with their stored outputs. Needs only ``onnx``.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

from imgkernel.nn import load_model, save_model  # noqa: E402
from imgkernel.nn.onnx import convert_onnx  # noqa: E402
from imgkernel.nn.onnx.convert import SUPPORTED  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from onnx_cases import excluded_dtype, node_cases, run_case  # noqa: E402

CASES = node_cases()


def supported(case) -> bool:
    return all(n.op_type in SUPPORTED for n in case.model.graph.node)


RUN = sorted(n for n, c in CASES.items() if supported(c) and excluded_dtype(c) is None)
EXCLUDED = sorted(n for n, c in CASES.items() if supported(c) and excluded_dtype(c) is not None)

#: Why cases are excluded: the dtypes imgkernel does not run. With onnx 1.23: integer data
#: (int8 8: Add/Sub/Mul/Div/Clip x3/Identity; int16 4; int32 4: Div, Pad edge/reflect/wrap;
#: uint8 5 incl. MaxPool; uint16 4; uint32 4; uint64 4), bool 8 (Dropout masks and
#: training_mode), int64 outputs 2 (MaxPool indices), sequences/optionals 2 (Identity).
EXCLUDED_DTYPES = {"int8", "int16", "int32", "uint8", "uint16", "uint32", "uint64", "bool",
                   "int64", "list", "float16", "float64", "bfloat16"}  # fmt: skip


@pytest.mark.parametrize("name", RUN)
def test_node_case(name):
    case = CASES[name]
    for got, want in run_case(case, convert_onnx):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol)


def test_exclusions_are_only_dtypes():
    assert len(RUN) >= 230
    reasons = Counter(excluded_dtype(CASES[n]) for n in EXCLUDED)
    # newer onnx releases may add cases; none may be excluded for another reason
    assert set(reasons) <= EXCLUDED_DTYPES, reasons
    ops = {n.op_type for c in CASES.values() if supported(c) for n in c.model.graph.node}
    assert ops >= {"Conv", "ConvTranspose", "Resize", "Gemm", "MaxPool", "AveragePool", "Pad"}


@pytest.mark.parametrize(
    "name",
    [
        "test_conv_with_strides_padding",
        "test_resize_upsample_scales_linear",
        "test_gemm_all_attributes",
    ],
)
def test_node_case_through_the_file_format(name, tmp_path):
    case = CASES[name]
    inputs, outputs = case.data_sets[0]
    values = dict(zip([i.name for i in case.model.graph.input], inputs, strict=True))
    save_model(convert_onnx(case.model, constants=values), tmp_path / "m.npz")
    model = load_model(tmp_path / "m.npz")
    got = model.run({s.name: values[s.name] for s in model.graph.inputs})
    np.testing.assert_allclose(got[0], outputs[0], rtol=case.rtol, atol=case.atol)


LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
LIGHT_MODELS = {  # name: rtol, as onnx.backend.test.case.model lists them
    "bvlc_alexnet": 1e-3,
    "densenet121": 2e-3,
    "inception_v1": 1e-3,
    "inception_v2": 1e-3,
    "resnet50": 1e-3,
    "shufflenet": 1e-3,
    "squeezenet": 1e-3,
    "vgg19": 1e-3,
    "zfnet512": 1e-3,
}


@pytest.mark.parametrize("name", sorted(LIGHT_MODELS))
def test_light_model(name):
    path = LIGHT / f"light_{name}.onnx"
    if not path.exists():
        pytest.skip(f"{path} is not in this onnx wheel")
    model = convert_onnx(path)
    # the backend runner's input: 0, 1/n, 2/n, ... in the input's shape
    shape = tuple(d or 1 for d in model.input_shape)
    n = int(np.prod(shape))
    x = (np.arange(n).reshape(shape) / n).astype(np.float32)
    want = numpy_helper.to_array(onnx.load_tensor(str(LIGHT / f"light_{name}_output_0.pb")))
    np.testing.assert_allclose(model(x), want, rtol=LIGHT_MODELS[name], atol=1e-7)


#: Excluded cases whose integer data are small and exact in float32 (Pad's edge, reflect and
#: wrap modes are tested only on int32): run again with the data cast to float32.
EXACT_IN_FLOAT = sorted(
    n
    for n in EXCLUDED
    if excluded_dtype(CASES[n]) in ("int8", "uint8", "int32")
    and CASES[n].model.graph.node[0].op_type in ("Pad", "MaxPool", "Clip")
)


@pytest.mark.parametrize("name", EXACT_IN_FLOAT)
def test_integer_case_in_float32(name):
    case = CASES[name]
    inputs, outputs = case.data_sets[0]
    names = [i.name for i in case.model.graph.input]
    values = {
        k: np.asarray(v).astype(np.float32) if np.asarray(v).dtype != np.int64 else v
        for k, v in zip(names, inputs, strict=True)
    }
    model = convert_onnx(case.model, constants=values)
    got = model.run({s.name: values[s.name] for s in model.graph.inputs})
    np.testing.assert_array_equal(got[0], np.asarray(outputs[0]).astype(np.float32))
