"""onnx_smoothl1.inline: standard ops only, no custom domain; runs in onnx.reference and ORT."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

import onnx_smoothl1 as sl1
from onnx_smoothl1 import oracle, runtime, spec
from onnx_smoothl1.function import make_node

from conftest import make_inputs


def _assert_standard_only(model: onnx.ModelProto) -> None:
    assert not any(f.domain == spec.DOMAIN for f in model.functions)
    assert all(o.domain != spec.DOMAIN for o in model.opset_import)
    stack = [model.graph]
    while stack:
        graph = stack.pop()
        for node in graph.node:
            assert node.domain in ("", "ai.onnx"), node
            for attr in node.attribute:
                stack.extend([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs))
    onnx.checker.check_model(model, full_check=True)


@pytest.mark.parametrize("fold", [True, False], ids=["folded", "unfolded"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("reduction", spec.REDUCTIONS)
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_inline_runs_in_reference_and_ort(beta, reduction, dtype, fold):
    model = sl1.make_model(beta=beta, reduction=reduction, dtype=dtype, rank=3)
    inlined = sl1.inline(model, fold=fold)
    _assert_standard_only(inlined)
    if fold:
        ops = {n.op_type for n in inlined.graph.node}
        assert not ops & {"If", "NegativeLogLikelihoodLoss"}, ops
    x, y = make_inputs((3, 4, 5), (3, 4, 5), dtype, seed=4)
    x.reshape(-1)[:3] = [np.nan, np.inf, -np.inf]
    ref = oracle.reference(x, y, beta=beta, reduction=reduction)
    own = oracle.torch_same_dtype(x, y, beta=beta, reduction=reduction) if dtype == "float32" else None
    out = ReferenceEvaluator(inlined).run(None, {"input": x, "target": y})[0]
    assert oracle.compare(out, ref, dtype=dtype, reduction=reduction, torch_own=own).ok
    session = sl1.inference_session(inlined, custom_op=False)
    out = runtime.run(session, {"input": x, "target": y})[0]
    verdict = oracle.compare(out, ref, dtype=dtype, reduction=reduction, torch_own=own)
    assert verdict.ok, verdict.detail


def test_inline_keeps_each_nodes_attributes_and_other_functions():
    """Two losses with different beta/reduction, plus an unrelated local function."""
    h = onnx.helper
    other = h.make_function("my.domain", "Twice", ["a"], ["b"], [h.make_node("Add", ["a", "a"], ["b"])],
                            [h.make_opsetid("", 18)])
    graph = h.make_graph(
        [make_node("x", "y", "l_sum", beta=0.25, reduction="sum"),
         make_node("x", "y", "l_none", beta=2.0, reduction="none"),
         h.make_node("Twice", ["l_sum"], ["twice"], domain="my.domain")],
        "g",
        [h.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [4, 3]) for n in ("x", "y")],
        [h.make_tensor_value_info("twice", onnx.TensorProto.FLOAT, []),
         h.make_tensor_value_info("l_none", onnx.TensorProto.FLOAT, [4, 3])],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 18), h.make_opsetid("my.domain", 1)],
                         functions=[other])
    sl1.attach_function(model)
    model.ir_version = sl1.model.ir_version_for(model)
    inlined = sl1.inline(model, fold=False)
    assert [(f.domain, f.name) for f in inlined.functions] == [("my.domain", "Twice")]
    assert {o.domain for o in inlined.opset_import} == {"", "my.domain"}
    x, y = make_inputs((4, 3), (4, 3), "float32", seed=5)
    twice, none = ReferenceEvaluator(inlined).run(None, {"x": x, "y": y})
    own_sum = oracle.torch_same_dtype(x, y, beta=0.25, reduction="sum")
    own_none = oracle.torch_same_dtype(x, y, beta=2.0, reduction="none")
    assert oracle.compare(twice / 2, oracle.reference(x, y, beta=0.25, reduction="sum"), dtype="float32",
                          reduction="sum", torch_own=own_sum).ok
    assert oracle.compare(none, oracle.reference(x, y, beta=2.0, reduction="none"), dtype="float32",
                          reduction="none", torch_own=own_none).ok


def test_inline_custom_op_model_gets_the_function_first():
    model = sl1.make_model(beta=0.5, reduction="mean", rank=1)
    del model.functions[:]  # what export(mode="custom_op") writes
    inlined = sl1.inline(model)
    _assert_standard_only(inlined)
    x, y = make_inputs((7,), (7,), "float32", seed=6)
    out = ReferenceEvaluator(inlined).run(None, {"input": x, "target": y})[0]
    assert oracle.compare(out, oracle.reference(x, y, beta=0.5), dtype="float32", reduction="mean").ok


def test_inline_does_not_modify_its_argument():
    model = sl1.make_model(rank=2)
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    sl1.inline(model)
    assert model == copy
    with pytest.raises(ValueError, match="ModelProto"):
        sl1.inline(b"bytes")


def test_inline_for_openvino():
    ov = pytest.importorskip("openvino")
    model = sl1.inline(sl1.make_model(beta=0.5, reduction="sum", rank=2))
    core = ov.Core()
    compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU")
    x, y = make_inputs((5, 3), (5, 3), "float32", seed=7)
    out = compiled({"input": x, "target": y})[0]
    ref = oracle.reference(x, y, beta=0.5, reduction="sum")
    np.testing.assert_allclose(out, ref, rtol=1e-5)
