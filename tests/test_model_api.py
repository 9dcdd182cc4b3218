"""make_model, the ready-made models, and the runtime helpers' contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import onnx_smoothl1 as sl1
from onnx_smoothl1 import cli, runtime

REPO = Path(__file__).resolve().parents[1]


def test_constants():
    assert sl1.DOMAIN == "onnx_smoothl1"
    assert sl1.OP_TYPE == "SmoothL1Loss"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("reduction", sl1.REDUCTIONS)
def test_make_model_structure(dtype, reduction):
    model = sl1.make_model(beta=0.5, reduction=reduction, dtype=dtype)
    assert [i.name for i in model.graph.input] == ["input", "target"]
    assert [o.name for o in model.graph.output] == ["loss"]
    for value in model.graph.input:  # any rank: no declared shape
        assert not value.type.tensor_type.HasField("shape")
        assert value.type.tensor_type.elem_type == sl1.spec.DTYPES[dtype]
    (node,) = model.graph.node
    assert (node.domain, node.op_type) == (sl1.DOMAIN, sl1.OP_TYPE)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {"beta": 0.5, "reduction": reduction.encode()}
    (fn,) = model.functions
    assert (fn.domain, fn.name) == (sl1.DOMAIN, sl1.OP_TYPE)
    # beta is an attribute reference, not a baked-in constant.
    refs = {a.ref_attr_name for n in fn.node for a in n.attribute if a.ref_attr_name}
    assert refs == {"beta", "reduction"}
    ops = {n.op_type for n in sl1.spec.walk_nodes(fn.node)}
    assert {"Sub", "Abs", "Less", "Where", "Mul", "Div", "ReduceSum"} <= ops
    assert model.ir_version <= 13
    ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("reduction", sl1.REDUCTIONS)
def test_make_huber_model_structure(dtype, reduction):
    """make_model's sibling: same inputs/outputs, a HuberLoss node with delta, its function."""
    model = sl1.make_huber_model(delta=0.5, reduction=reduction, dtype=dtype)
    assert [i.name for i in model.graph.input] == ["input", "target"]
    assert [o.name for o in model.graph.output] == ["loss"]
    for value in model.graph.input:
        assert not value.type.tensor_type.HasField("shape")
        assert value.type.tensor_type.elem_type == sl1.spec.DTYPES[dtype]
    (node,) = model.graph.node
    assert (node.domain, node.op_type) == (sl1.DOMAIN, sl1.HUBER_OP_TYPE)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {"delta": 0.5, "reduction": reduction.encode()}
    assert [(f.domain, f.name) for f in model.functions] == [(sl1.DOMAIN, sl1.HUBER_OP_TYPE)]
    assert model.ir_version <= 13
    ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    "kwargs, argument",
    [({"delta": 0.0}, "delta"), ({"delta": -1.0}, "delta"), ({"delta": float("inf")}, "delta"),
     ({"reduction": "avg"}, "reduction"), ({"dtype": "int32"}, "dtype"), ({"rank": -1}, "rank")],
)
def test_make_huber_model_value_errors(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        sl1.make_huber_model(**kwargs)


@pytest.mark.parametrize("rank", [0, 1, 3])
def test_ranked_model_passes_full_check(rank):
    model = sl1.make_model(reduction="none", rank=rank)
    onnx.checker.check_model(model, full_check=True)
    assert len(model.graph.input[0].type.tensor_type.shape.dim) == rank


def test_unknown_rank_model_checks_everything_but_input_declarations():
    model = sl1.make_model()
    with pytest.raises(onnx.checker.ValidationError, match="shape"):
        onnx.checker.check_model(model)  # onnx's main-graph rule, see make_model's docstring
    onnx.checker.check_model(sl1.model.ranked_twin(model), full_check=True)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"beta": -0.5}, "beta"),
        ({"beta": float("nan")}, "beta"),
        ({"beta": "1"}, "beta"),
        ({"reduction": "avg"}, "reduction"),
        ({"reduction": "MEAN"}, "reduction"),
        ({"dtype": "int32"}, "dtype"),
        ({"dtype": "bool"}, "dtype"),
        ({"opset": 12}, "opset"),
        ({"opset": sl1.spec.max_opset() + 1}, "opset"),
        ({"rank": -1}, "rank"),
    ],
)
def test_make_model_value_errors(kwargs, argument):
    with pytest.raises(ValueError, match=argument) as info:
        sl1.make_model(**kwargs)
    if argument == "reduction":
        assert "'none', 'mean', 'sum'" in str(info.value)
    if argument == "dtype":
        assert "float16, bfloat16, float32, float64" in str(info.value)


def test_opset_13_and_14_take_one_element_type_per_body():
    """Without CastLike (opset < 15) a body is typed statically: one element type each."""
    for opset in (13, 14):
        fn = sl1.make_model(dtype="float16", opset=opset).functions[0]
        assert fn.node[-1].op_type == "Cast"  # float32 arithmetic, one rounding to float16
        with pytest.raises(ValueError, match="CastLike"):
            sl1.make_function(opset, ["float32", "float64"])
        with pytest.raises(ValueError, match="CastLike"):
            sl1.make_function(opset, None)
    mixed = sl1.make_function(15, ["float16", "float32"])
    assert mixed.node[-1].op_type == "CastLike"


def test_ready_made_models_are_reproducible(tmp_path):
    written = cli.write_ready_made(tmp_path)
    assert {p.name for p in written} >= {
        "smooth_l1_mean.onnx", "smooth_l1_sum.onnx", "smooth_l1_none.onnx", "smooth_l1_mean_f16.onnx",
        "huber_mean.onnx",
    }
    for path in written:
        checked_in = REPO / "models" / path.name
        assert checked_in.read_bytes() == path.read_bytes(), f"{checked_in} is stale: run `make models`"


def test_inference_session_accepts_proto_bytes_and_path(tmp_path):
    model = sl1.make_model(reduction="sum")
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    x = np.arange(6, dtype=np.float32)
    results = [
        runtime.run(sl1.inference_session(m, custom_op=False), {"input": x, "target": -x})[0]
        for m in (model, model.SerializeToString(), path, str(path))
    ]
    assert all(r == results[0] for r in results)
    with pytest.raises(ValueError, match="model"):
        sl1.inference_session(12)
    with pytest.raises(ValueError, match="no such file"):
        sl1.inference_session(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="custom_op"):
        sl1.inference_session(model, custom_op="yes")


def test_custom_op_required_but_missing(monkeypatch, tmp_path):
    monkeypatch.setenv(runtime.LIBRARY_ENV, str(tmp_path / "nope.so"))
    with pytest.raises(sl1.CustomOpUnavailable, match="does not name an existing file"):
        sl1.get_library_path()
    with pytest.raises(sl1.CustomOpUnavailable, match="custom_op=True"):
        sl1.inference_session(sl1.make_model(), custom_op=True)
    with pytest.warns(RuntimeWarning, match="unavailable"):
        assert sl1.has_custom_op() is False
    # 'auto' quietly falls back to the function.
    session = sl1.inference_session(sl1.make_model(), custom_op="auto")
    assert session.smoothl1_path == "function"


def test_function_path_profile_shows_inlined_ops():
    x = np.ones(8, np.float32)
    (out,), ops = sl1.profile_node_ops(sl1.make_model(), {"input": x, "target": x}, custom_op=False)
    assert out == 0
    assert sl1.OP_TYPE not in ops and {"Sub", "Abs", "Where"} <= set(ops)
