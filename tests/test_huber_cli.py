"""``onnx-smoothl1 make-model --loss huber`` and the ready-made Huber model, as a user runs
them (the console script's module form)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import run_cli

import onnx_smoothl1 as sl1
from onnx_smoothl1 import oracle, runtime, spec

REPO = Path(__file__).resolve().parents[1]


def test_make_model_writes_a_huber_model(tmp_path):
    out = tmp_path / "huber.onnx"
    result = run_cli("make-model", "--loss", "huber", "--delta", "0.35", "--reduction", "sum",
                     "--dtype", "float64", "--rank", "2", "-o", str(out))
    assert result.returncode == 0, result.stderr
    model = onnx.load(out)
    (node,) = model.graph.node
    assert (node.domain, node.op_type) == (spec.DOMAIN, spec.HUBER_OP_TYPE)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {"delta": np.float32(0.35), "reduction": b"sum"}
    assert [f.name for f in model.functions] == [spec.HUBER_OP_TYPE]
    # The same bytes as the Python API writes.
    api = sl1.make_huber_model(delta=0.35, reduction="sum", dtype="float64", rank=2)
    assert out.read_bytes() == api.SerializeToString()
    x = np.linspace(-3, 3, 12).reshape(3, 4)
    y = np.zeros((3, 4))
    got = runtime.run(sl1.inference_session(model, custom_op=False), {"input": x, "target": y})[0]
    ref = oracle.reference(x, y, delta=0.35, reduction="sum", loss="huber")
    assert oracle.compare(got, ref, dtype="float64", reduction="sum").ok


def test_make_model_default_is_still_smooth_l1(tmp_path):
    out = tmp_path / "sl1.onnx"
    result = run_cli("make-model", "--beta", "0.5", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == sl1.make_model(beta=0.5).SerializeToString()
    assert run_cli("make-model", "--loss", "huber", "-o", str(out)).returncode == 0
    assert out.read_bytes() == sl1.make_huber_model().SerializeToString()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--loss", "huber", "--delta", "0"], "delta must be a finite float > 0"),
        (["--loss", "huber", "--delta", "-1"], "delta must be a finite float > 0"),
        (["--loss", "huber", "--delta", "nan"], "delta must be a finite float > 0"),
        (["--loss", "huber", "--delta", "inf"], "delta must be a finite float > 0"),
        (["--loss", "huber", "--beta", "0.5"], "--loss huber takes --delta"),
        (["--delta", "0.5"], "--delta is HuberLoss's parameter"),
        (["--loss", "mse"], "invalid choice: 'mse'"),
    ],
)
def test_make_model_bad_arguments(tmp_path, args, message):
    out = tmp_path / "m.onnx"
    result = run_cli("make-model", *args, "-o", str(out))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_ready_made_huber_model():
    """models/huber_mean.onnx (``make models``): a HuberLoss(delta=1, mean) float32 model that
    loads in onnxruntime and matches torch (its bytes are checked by
    tests/test_model_api.py::test_ready_made_models_are_reproducible)."""
    model = onnx.load(REPO / "models" / "huber_mean.onnx")
    assert model.ir_version <= 10
    assert [n.op_type for n in model.graph.node] == [spec.HUBER_OP_TYPE]
    x = np.array([[0.5, -3.0, 1.0], [2.0, 0.0, -0.25]], np.float32)
    y = np.zeros_like(x)
    got = runtime.run(sl1.inference_session(model, custom_op=False), {"input": x, "target": y})[0]
    ref = oracle.reference(x, y, delta=1.0, reduction="mean", loss="huber")
    own = oracle.torch_same_dtype(x, y, delta=1.0, reduction="mean", loss="huber")
    assert oracle.compare(got, ref, dtype="float32", reduction="mean", torch_own=own).ok


def test_info_names_huber_nodes_and_delta(tmp_path):
    path = tmp_path / "mixed.onnx"
    graph = onnx.helper.make_graph(
        [sl1.make_huber_node("a", "b", "h", delta=0.25, reduction="sum", name="hub"),
         sl1.make_node("a", "b", "s", beta=2.0, reduction="none", name="sl")],
        "mixed", [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [3]) for n in "ab"],
        [onnx.helper.make_tensor_value_info("h", onnx.TensorProto.FLOAT, []),
         onnx.helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT, [3])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    sl1.attach_function(model)
    model.ir_version = sl1.model.ir_version_for(model)
    onnx.save(model, path)
    result = run_cli("info", str(path))
    assert result.returncode == 0, result.stderr
    assert "node hub: onnx_smoothl1::HuberLoss(a, b) -> h; delta=0.25, reduction=sum, function attached: yes" \
        in result.stdout
    assert "node sl: onnx_smoothl1::SmoothL1Loss(a, b) -> s; beta=2.0, reduction=none" in result.stdout
    assert "1 SmoothL1Loss node(s)" in result.stdout and "1 HuberLoss node(s)" in result.stdout
