"""The ONNX backend node test cases of the operators imgkernel supports (helpers for the tests).

The ``onnx`` wheel ships the case generators (``onnx.backend.test.case.node``)
but not their data: importing a generator module builds its cases (the model
and the expected outputs). Only the modules of supported operators are
imported, so the suite does not pay for the others.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

import numpy as np

#: Generator modules of the operators imgkernel converts.
CASE_MODULES = (
    "add averagepool batch_normalization clip concat conv convtranspose div dropout flatten "
    "gemm globalaveragepool globalmaxpool hardsigmoid hardswish identity leakyrelu logsoftmax "
    "lrn matmul maxpool mul pad prelu reducemean relu reshape resize sigmoid softmax squeeze "
    "sub sum tanh transpose unsqueeze upsample"
).split()

#: Tensor dtypes imgkernel runs: float32 data, and int64 for constant operands (shapes,
#: axes, pads, sizes). A case with any other input or output dtype (integer data, bool,
#: float64, float16) or a non-tensor input (sequence, optional) is excluded.
RUN_DTYPES = (np.dtype(np.float32), np.dtype(np.int64))


@cache
def node_cases() -> dict[str, Any]:
    """Every node test case of the supported operators' generators, by name."""
    import onnx.backend.test.case.node as package

    np.random.seed(0)  # noqa: NPY002 - the generators draw from the legacy global state
    for module in CASE_MODULES:
        importlib.import_module(f"{package.__name__}.{module}")
    return {case.name: case for case in package._NodeTestCases}


def excluded_dtype(case: Any) -> str | None:
    """Why the case is excluded (an unsupported dtype or type), or None."""
    inputs, outputs = case.data_sets[0]
    for value in [*inputs, *outputs]:
        if isinstance(value, np.generic):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray):
            return type(value).__name__  # a sequence or an optional
        if value.dtype not in RUN_DTYPES:
            return str(value.dtype)
    for value in outputs:
        if np.asarray(value).dtype != np.float32:
            return str(np.asarray(value).dtype)
    return None


def run_case(case: Any, convert: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """(got, expected) per output: converted with all inputs offered as constants, then run."""
    inputs, outputs = case.data_sets[0]
    names = [i.name for i in case.model.graph.input]
    values = dict(zip(names, inputs, strict=False))
    model = convert(case.model, constants=values)
    feeds = {spec.name: values[spec.name] for spec in model.graph.inputs}
    got = model.run(feeds)
    return list(zip(got, outputs, strict=True))
