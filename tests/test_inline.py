"""onnx_smoothl1.inline: standard ops only, no custom domain; runs in onnx.reference and ORT."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import make_inputs
from onnx.reference import ReferenceEvaluator

import onnx_smoothl1 as sl1
from onnx_smoothl1 import oracle, runtime, spec
from onnx_smoothl1.function import make_node


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


# --- declared input shapes (inline(model, input_shapes=...), `inline --input-shape`) -------------


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]


@pytest.mark.parametrize("reduction", spec.REDUCTIONS)
def test_inline_input_shapes_give_static_shapes_everywhere(reduction):
    """Static sizes: no shape arithmetic left, every value and output has a static shape."""
    model = sl1.make_model(beta=0.3, reduction=reduction, dtype="float64")  # inputs of any rank
    inlined = sl1.inline(model, input_shapes={"input": (4, 5), "target": [4, 5]})
    _assert_standard_only(inlined)
    assert [_dims(v) for v in inlined.graph.input] == [[4, 5], [4, 5]]
    assert _dims(inlined.graph.output[0]) == ([4, 5] if reduction == "none" else [])
    ops = {n.op_type for n in inlined.graph.node}
    assert not ops & {"Shape", "Size", "Mod", "If", "NegativeLogLikelihoodLoss"}, ops
    for value in [*inlined.graph.value_info, *inlined.graph.output]:
        shape = value.type.tensor_type.shape
        assert value.type.tensor_type.HasField("shape"), value.name
        assert all(d.HasField("dim_value") for d in shape.dim), (value.name, _dims(value))
    x, y = make_inputs((4, 5), (4, 5), "float64", seed=8)
    ref = oracle.reference(x, y, beta=0.3, reduction=reduction)
    for out in (ReferenceEvaluator(inlined).run(None, {"input": x, "target": y})[0],
                runtime.run(sl1.inference_session(inlined, custom_op=False), {"input": x, "target": y})[0]):
        assert oracle.compare(out, ref, dtype="float64", reduction=reduction).ok


def test_inline_input_shapes_rank0_and_symbolic_dims():
    inlined = sl1.inline(sl1.make_model(reduction="sum"), input_shapes={"input": (), "target": ()})
    assert [_dims(v) for v in inlined.graph.input] == [[], []]
    assert all(v.type.tensor_type.HasField("shape") for v in inlined.graph.input)  # rank 0, not unknown
    x, y = np.float32(2.5), np.float32(0.5)
    out = ReferenceEvaluator(inlined).run(None, {"input": x, "target": y})[0]
    assert out == pytest.approx(1.5)
    # Named dims on a ranked model: the symbolic dims are renamed, the static one kept.
    ranked = sl1.make_model(reduction="none", rank=2)
    inlined = sl1.inline(ranked, input_shapes={"input": ("n", 3), "target": ("n", 3)})
    assert [_dims(v) for v in inlined.graph.input] == [["n", 3], ["n", 3]]
    assert _dims(inlined.graph.output[0]) == ["n", 3]
    # Only the named inputs change; the others keep their declaration.
    inlined = sl1.inline(ranked, input_shapes={"target": (2, 3)})
    assert [_dims(v) for v in inlined.graph.input] == [["input_d0", "input_d1"], [2, 3]]


@pytest.mark.parametrize(
    "shapes, match",
    [
        ({"inp": (4,)}, r"input_shapes: 'inp' is not an input of the model \(inputs: input, target\)"),
        ({"input": (4, 5, 6)}, r"input_shapes\['input'\]: rank 3 given, but input 'input' declares rank 2"),
        ({"input": (4, -1)}, r"input_shapes\['input'\]: dimension 1 must be an int >= 0"),
        ({"input": (4, True)}, r"input_shapes\['input'\]: dimension 1"),
        ({"input": (4, "")}, r"input_shapes\['input'\]: dimension 1"),
        ({"input": "4,5"}, r"input_shapes\['input'\] must be a sequence"),
        ({"input": 4}, r"input_shapes\['input'\] must be a sequence"),
        ([("input", (4, 5))], r"input_shapes must be a mapping"),
    ],
)
def test_inline_input_shapes_bad_input_names_the_argument(shapes, match):
    with pytest.raises(ValueError, match=match):
        sl1.inline(sl1.make_model(rank=2), input_shapes=shapes)


def test_inline_input_shapes_must_keep_static_sizes():
    inlined = sl1.inline(sl1.make_model(rank=2), input_shapes={"input": (4, 5), "target": (4, 5)})
    with pytest.raises(ValueError, match=r"dimension 0 is 4 in input 'input' \[4, 5\]; got 3"):
        sl1.inline(inlined, input_shapes={"input": (3, 5)})
    with pytest.raises(ValueError, match=r"dimension 1 is 5 in input 'input' \[4, 5\]; got 'n'"):
        sl1.inline(inlined, input_shapes={"input": (4, "n")})
    assert sl1.inline(inlined, input_shapes={"input": (4, 5)}).graph.input == inlined.graph.input


def test_parse_input_shapes():
    from onnx_smoothl1.inline import parse_input_shapes

    assert parse_input_shapes(["input=4,5", " target = n , 5 ", "s="]) == {
        "input": [4, 5], "target": ["n", 5], "s": []}
    for bad, match in [("input", "not NAME=D0"), ("=4", "not NAME=D0"), ("input=4,,5", "dimension 1 is empty"),
                       ("input=4,-2", "dimension 1 is negative")]:
        with pytest.raises(ValueError, match=match):
            parse_input_shapes([bad])
    with pytest.raises(ValueError, match="'input' is given twice"):
        parse_input_shapes(["input=1", "input=2"])


def test_cli_inline_input_shape(tmp_path, capsys):
    from onnx_smoothl1 import cli

    src, dst = tmp_path / "m.onnx", tmp_path / "out.onnx"
    onnx.save(sl1.make_model(beta=0.5, reduction="mean"), src)
    assert cli.main(["inline", str(src), str(dst), "--input-shape", "input=3,4",
                     "--input-shape", "target=3,4"]) in (0, None)
    out = onnx.load(dst)
    assert [_dims(v) for v in out.graph.input] == [[3, 4], [3, 4]]
    assert "Shape" not in {n.op_type for n in out.graph.node}
    x, y = make_inputs((3, 4), (3, 4), "float32", seed=9)
    got = ReferenceEvaluator(out).run(None, {"input": x, "target": y})[0]
    assert oracle.compare(got, oracle.reference(x, y, beta=0.5), dtype="float32", reduction="mean").ok
    capsys.readouterr()
    for args, message in [(["--input-shape", "nope=3"], "--input-shape: 'nope' is not an input"),
                          (["--input-shape", "input"], "--input-shape: 'input' is not NAME=D0"),
                          (["--input-shape", "input=3,x,"], "dimension 2 is empty")]:
        assert cli.main(["inline", str(src), str(dst), *args]) == 2
        assert message in capsys.readouterr().err
