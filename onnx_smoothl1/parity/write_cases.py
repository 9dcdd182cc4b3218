"""``onnx-smoothl1 parity --write-cases DIR``: the grid in the ONNX backend-test layout.

Each case becomes ``DIR/<case>/model.onnx`` plus ``DIR/<case>/test_data_set_0/`` holding
``input_0.pb``, ``input_1.pb`` (the inputs, TensorProtos named as the graph inputs) and
``output_0.pb`` (the expected output). The expected output is SPEC's: the float64 reference
(PyTorch's, or numpy's without torch) rounded to the case's dtype. onnxruntime's
``onnx_test_runner``, polygraphy, or any runtime's own backend harness can replay them.

The model is the node plus its model-local function (IR version the project's), with the
case's concrete input shapes declared, so runtimes that need static shapes take it as is.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from .. import oracle
from ..files import write_bytes
from .cases import Case, make_inputs
from .models import function_model, with_static_shapes

DATA_SET = "test_data_set_0"


def expected_output(case: Case, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SPEC's expected result: the float64 reference rounded (once) to the case's dtype."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        ref64 = np.asarray(oracle.reference(x, y, **case.oracle_args))  # type: ignore[arg-type]
        return ref64.astype(np.float64).astype(oracle.NUMPY_DTYPES[case.dtype])


def case_model(case: Case) -> onnx.ModelProto:
    """The case's model: node + function, inputs declared with the case's concrete shapes."""
    sx, sy = case.shapes
    model = function_model(case.beta, case.reduction, case.dtype, case.loss)
    return with_static_shapes(model, {"input": sx, "target": sy})


def _tensor(array: np.ndarray, name: str) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def write_case(directory: str | os.PathLike[str], case: Case) -> Path:
    """Write one case under ``directory``; return its folder."""
    folder = Path(directory) / case.name
    data = folder / DATA_SET
    data.mkdir(parents=True, exist_ok=True)
    model = case_model(case)
    write_bytes(folder / "model.onnx", model.SerializeToString(), arg="--write-cases")
    x, y = make_inputs(case)
    names = [i.name for i in model.graph.input]
    for k, (name, array) in enumerate(zip(names, (x, y))):
        write_bytes(data / f"input_{k}.pb", _tensor(array, name).SerializeToString(), arg="--write-cases")
    out = expected_output(case, x, y)
    write_bytes(data / "output_0.pb", _tensor(out, model.graph.output[0].name).SerializeToString(),
                arg="--write-cases")
    return folder


def write_cases(directory: str | os.PathLike[str], cases: Sequence[Case]) -> list[Path]:
    """Write every case (see the module docstring); return the case folders."""
    if not cases:
        raise ValueError("cases: nothing to write (empty grid)")
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise ValueError(f"--write-cases: {root} exists and is not a directory")
    return [write_case(root, case) for case in cases]


def read_case(folder: str | os.PathLike[str]) -> tuple[onnx.ModelProto, dict[str, np.ndarray], list[np.ndarray]]:
    """(model, inputs by name, expected outputs) of one written case folder."""
    folder = Path(folder)
    model = onnx.load(str(folder / "model.onnx"))
    data = folder / DATA_SET
    inputs = {}
    for path in sorted(data.glob("input_*.pb")):
        tensor = onnx.TensorProto.FromString(path.read_bytes())
        inputs[tensor.name] = numpy_helper.to_array(tensor)
    outputs = [
        numpy_helper.to_array(onnx.TensorProto.FromString(p.read_bytes()))
        for p in sorted(data.glob("output_*.pb"))
    ]
    return model, inputs, outputs
