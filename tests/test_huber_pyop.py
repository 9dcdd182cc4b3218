"""The HuberLoss Python op (onnxruntime-extensions): parity with torch.nn.functional.huber_loss
for float32/float64, registered and selected like SmoothL1Loss's."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime_extensions")

from conftest import SHAPES, make_inputs  # noqa: E402

import onnx_smoothl1 as sl1  # noqa: E402
from onnx_smoothl1 import oracle, pyop, runtime, spec  # noqa: E402


def _custom_op_model(**kwargs):
    model = sl1.make_huber_model(**kwargs)
    del model.functions[:]  # node only, as export(mode="custom_op") writes it
    return model


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("reduction", spec.REDUCTIONS)
@pytest.mark.parametrize("dtype", pyop.SUPPORTED_DTYPES)
@pytest.mark.parametrize("delta", [0.35, 1.0, 2.5])
def test_python_op_parity(delta, dtype, reduction, shape):
    session = sl1.inference_session(_custom_op_model(delta=delta, reduction=reduction, dtype=dtype),
                                    custom_op="python")
    assert session.smoothl1_path == "python-op"
    x, y = make_inputs(*SHAPES[shape], dtype, seed=9)
    if x.size >= 3:
        x.reshape(-1)[:3] = [np.nan, np.inf, -np.inf]
    out = runtime.run(session, {"input": x, "target": y})[0]
    ref = oracle.reference(x, y, delta=delta, reduction=reduction, loss="huber")
    own = oracle.torch_same_dtype(x, y, delta=delta, reduction=reduction, loss="huber")
    verdict = oracle.compare(out, ref, dtype=dtype, reduction=reduction, torch_own=own)
    assert verdict.ok, verdict.detail


def test_python_op_really_runs_the_huber_node():
    """The profile shows the HuberLoss node itself (not inlined ops); 0.5*1*1 + 1*(3 - 0.5)."""
    model = _custom_op_model(reduction="sum")
    feeds = {"input": np.array([1.0, 3.0], np.float32), "target": np.zeros(2, np.float32)}
    outputs, ops = runtime.profile_node_ops(model, feeds, custom_op="python")
    assert ops == [spec.HUBER_OP_TYPE] and float(outputs[0]) == 3.0


def test_numpy_body():
    with pytest.raises(ValueError, match="delta"):
        pyop.huber_loss(np.ones(3), np.ones(3), delta=0.0)
    with pytest.raises(ValueError, match="broadcast"):
        pyop.huber_loss(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="reduction"):
        pyop.huber_loss(np.ones(3), np.ones(3), reduction="max")
    x = np.array([0.25, -4.0], np.float64)
    np.testing.assert_array_equal(pyop.huber_loss(x, np.zeros(2), delta=2.0, reduction="none"),
                                  [0.5 * 0.25 * 0.25, 2.0 * (4.0 - 1.0)])


def test_delta_the_python_op_cannot_receive_is_refused():
    """onnxruntime-extensions passes FLOAT attributes as 6-digit text: a delta it would round
    is refused by name before a session exists."""
    model = _custom_op_model(delta=1.2345678)
    with pytest.raises(ValueError, match="HuberLoss node .huber.: the Python op would run delta="):
        sl1.inference_session(model, custom_op="python")
