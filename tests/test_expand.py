"""Loss nodes broadcast themselves: the Expand (and half-type Cast pairs) around them go.

``onnx_smoothl1.simplify`` (used by ``export`` and ``fuse``) drops an ``Expand`` only when
its output feeds nothing but loss nodes and the loss's broadcast shape stays what it was.
Checked here: bare losses on broadcast inputs export as one node (both exporters, static
and dynamic batch); an Expand to a larger shape than the broadcast (a user's ``expand``,
which changes what 'sum' adds up) and an Expand with another consumer stay, in export and
in fuse of a plain torch export, with torch's values either way; an Expand whose shape
inference cannot tell stays; the Cast pair goes only around a half-type loss.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

torch = pytest.importorskip("torch")
F = torch.nn.functional

import onnx_smoothl1 as sl1  # noqa: E402
from onnx_smoothl1 import oracle, runtime, spec  # noqa: E402
from onnx_smoothl1.simplify import broadcast_shape, drop_expands, drop_half_casts, simplify  # noqa: E402


class Program(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, y):
        return self.fn(x, y)


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _run(model: onnx.ModelProto, *arrays: np.ndarray) -> list[np.ndarray]:
    """ORT's function path (a hand-made model gets its functions attached, on a copy)."""
    if not model.functions:
        model = sl1.attach_function(onnx.ModelProto.FromString(model.SerializeToString()))
    names = [i.name for i in model.graph.input]
    return runtime.run(sl1.inference_session(model, custom_op=False), dict(zip(names, arrays)))


def _quiet_export(*args, **kwargs) -> onnx.ModelProto:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sl1.export(*args, **kwargs)


def _plain(fn, x: torch.Tensor, y: torch.Tensor) -> onnx.ModelProto:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.onnx.export(Program(fn), (x, y), dynamo=True, verbose=False,
                                 input_names=["x", "y"]).model_proto


# --- export: bare losses on broadcast inputs are one node ---------------------------------

BARE = {
    "SmoothL1Loss_none": (torch.nn.SmoothL1Loss(beta=0.5, reduction="none"), spec.OP_TYPE),
    "SmoothL1Loss_sum": (torch.nn.SmoothL1Loss(reduction="sum"), spec.OP_TYPE),
    "HuberLoss_none": (torch.nn.HuberLoss(delta=0.35, reduction="none"), spec.HUBER_OP_TYPE),
    "HuberLoss_mean": (torch.nn.HuberLoss(delta=0.35), spec.HUBER_OP_TYPE),
}


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic_batch"])
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
@pytest.mark.parametrize("name", list(BARE))
def test_bare_loss_on_broadcast_inputs_is_one_node(name, dynamo, dynamic):
    module, op_type = BARE[name]
    x, y = torch.randn(6, 1, 5), torch.randn(4, 5)
    dynamic_shapes = ({0: torch.export.Dim("batch")}, None) if dynamic else None
    model = _quiet_export(module, (x, y), dynamo=dynamo, dynamic_shapes=dynamic_shapes)
    assert _ops(model) == [op_type]
    assert list(model.graph.node[0].input) == ["input", "target"]
    xr = torch.randn(3 if dynamic else 6, 1, 5)
    (out,) = _run(model, xr.numpy(), y.numpy())
    ref = module(xr.double(), y.double()).numpy()
    assert out.shape == ref.shape
    reduction = module.reduction
    assert oracle.compare(out, ref, dtype="float32", reduction=reduction,
                          torch_own=module(xr, y).numpy()).ok


# --- where dropping an Expand would change the result ---------------------------------------


def _user_expand(a, b):
    """A user's own expand to a larger shape than a and b broadcast to: 'sum' adds 3 copies."""
    return F.smooth_l1_loss(a.expand(3, 4, 5), b, reduction="sum")


def _expand_read_twice(a, b):
    """The broadcast x is also returned: its Expand has a consumer besides the loss."""
    u, v = torch.broadcast_tensors(a, b)
    return F.huber_loss(u, v, reduction="sum", delta=0.5), u * 2.0


UNSAFE = {"user_expand": _user_expand, "expand_read_twice": _expand_read_twice}


def _unsafe_inputs(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(3)
    if name == "user_expand":
        return torch.randn(4, 5), torch.randn(4, 5)
    return torch.randn(6, 1, 5), torch.randn(4, 5)


def _check_unsafe(name: str, model: onnx.ModelProto) -> None:
    """The Expand that matters still feeds the loss; values are torch's."""
    loss = next(n for n in model.graph.node if spec.is_loss_node(n))
    producer = {o: n for n in model.graph.node for o in n.output}
    fed = [producer[i] for i in loss.input if i in producer and producer[i].op_type == "Expand"]
    if name == "user_expand":
        # Which one stays depends on the exporter's graph (dynamo: y's broadcast Expand, x's
        # own goes as y's keeps the shape; legacy: x's own, after torch's broadcast ones):
        # whichever it is, it is the only one left, and one input reaches the loss at (3, 4, 5).
        assert _ops(model).count("Expand") == 1 and len(fed) == 1, _ops(model)
    else:
        # The broadcast x is read by the Mul too: its Expand feeds the loss still.
        assert len(fed) >= 1 and any(
            fed[0].output[0] in n.input for n in model.graph.node if n.op_type == "Mul"), _ops(model)
    x, y = _unsafe_inputs(name)
    got = _run(model, x.numpy(), y.numpy())
    want = UNSAFE[name](x.double(), y.double())
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape)
        np.testing.assert_allclose(g, w.numpy(), rtol=2e-6)


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
@pytest.mark.parametrize("name", list(UNSAFE))
def test_export_keeps_an_expand_that_matters(name, dynamo):
    x, y = _unsafe_inputs(name)
    _check_unsafe(name, _quiet_export(Program(UNSAFE[name]), (x, y), dynamo=dynamo))


@pytest.mark.parametrize("name", list(UNSAFE))
def test_fuse_keeps_an_expand_that_matters(name):
    x, y = _unsafe_inputs(name)
    plain = _plain(UNSAFE[name], x, y)
    fused, count = sl1.fuse(plain)
    assert count == 1
    _check_unsafe(name, fused)


@pytest.mark.parametrize("fn,op_type", [
    (lambda a, b: F.smooth_l1_loss(a, b, reduction="none", beta=2.0), spec.OP_TYPE),
    (lambda a, b: F.huber_loss(a, b, reduction="mean", delta=0.75), spec.HUBER_OP_TYPE),
], ids=["smooth_l1", "huber"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_fuse_of_plain_broadcast_export_is_one_node(fn, op_type, dtype):
    x, y = torch.randn(6, 1, 5).to(dtype), torch.randn(4, 5).to(dtype)
    plain = _plain(fn, x, y)
    assert _ops(plain).count("Expand") == 2
    fused, count = sl1.fuse(plain)
    assert count == 1 and _ops(fused) == [op_type]
    np.testing.assert_allclose(_run(fused, x.numpy(), y.numpy())[0].astype(np.float64),
                               _run(plain, x.numpy(), y.numpy())[0].astype(np.float64),
                               rtol=4 * float(torch.finfo(dtype).eps))


# --- the pass itself on hand-made graphs ---------------------------------------------------

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16


def _model(nodes, inputs, outputs, inits=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                   helper.make_opsetid(spec.DOMAIN, 1)], ir_version=9)


def _shape_const(name: str, dims) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.array(dims, np.int64), name)


def _expand_model(target, x_shape=(6, 1, 5), y_shape=(4, 5), shape_from_input=False) -> onnx.ModelProto:
    vi = helper.make_tensor_value_info
    inputs = [vi("x", F32, list(x_shape)), vi("y", F32, list(y_shape))]
    inits = []
    if shape_from_input:
        inputs.append(vi("s", TensorProto.INT64, [len(target)]))
    else:
        inits.append(_shape_const("s", target))
    nodes = [helper.make_node("Expand", ["x", "s"], ["xe"]),
             sl1.make_huber_node("xe", "y", "loss", delta=0.5, reduction="sum")]
    return _model(nodes, inputs, [vi("loss", F32, [])], inits)


def test_drop_expands_decides_by_shape():
    same = _expand_model([6, 4, 5])  # exactly broadcast(x, y): goes, with its shape constant
    assert drop_expands(same) == 1
    assert _ops(same) == [spec.HUBER_OP_TYPE] and not same.graph.initializer
    ones = _expand_model([1, 1, 1])  # a no-op Expand: goes
    assert drop_expands(ones) == 1
    larger = _expand_model([2, 6, 4, 5])  # a new leading axis doubles the sum: stays
    assert drop_expands(larger) == 0 and _ops(larger) == ["Expand", spec.HUBER_OP_TYPE]
    # A shape fed at run time: inference knows its rank only (x (6,1,5) -> (6, unk, 5)).
    # Against y (4, 5) every valid run broadcasts to (6, 4, 5) anyway: goes.
    proved = _expand_model([6, 4, 5], shape_from_input=True)
    assert drop_expands(proved) == 1
    # Against y (5,) the Expand's middle axis is all there is: cannot tell, stays.
    unknown = _expand_model([6, 4, 5], y_shape=(5,), shape_from_input=True)
    assert drop_expands(unknown) == 0 and _ops(unknown) == ["Expand", spec.HUBER_OP_TYPE]

    x = np.random.default_rng(0).standard_normal((6, 1, 5)).astype(np.float32)
    y = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    (kept,) = _run(_expand_model([6, 4, 5]), x, y)
    (gone,) = _run(same, x, y)
    np.testing.assert_allclose(gone, kept, rtol=1e-6)
    (bigger,) = _run(larger, x, y)
    np.testing.assert_allclose(bigger, 2 * kept, rtol=1e-6)  # what dropping it would lose


def test_expand_that_is_a_graph_output_stays():
    model = _expand_model([6, 4, 5])
    model.graph.output.append(helper.make_tensor_value_info("xe", F32, [6, 4, 5]))
    assert drop_expands(model) == 0


def test_broadcast_shape():
    assert broadcast_shape([6, 1, 5], [4, 5]) == [6, 4, 5]
    assert broadcast_shape(["n", 1, 5], [4, 5]) == ["n", 4, 5]
    assert broadcast_shape(["n", 5], [1, 5]) == ["n", 5]
    assert broadcast_shape([5], ["m"]) == [5]  # a model that runs has m in {1, 5}
    assert broadcast_shape(["n"], ["m"]) is None  # n vs m: undecided
    assert broadcast_shape([3], [4]) is None
    assert broadcast_shape([None, 5], [5]) is None
    assert broadcast_shape(None, [5]) is None
    assert broadcast_shape([], [2, 3]) == [2, 3]


def _cast_model(src=F16, back=F16, loss_is_output=False) -> onnx.ModelProto:
    vi = helper.make_tensor_value_info
    nodes = [helper.make_node("Cast", ["x"], ["x32"], to=F32), helper.make_node("Cast", ["y"], ["y32"], to=F32),
             sl1.make_node("x32", "y32", "l32", beta=0.5, reduction="mean"),
             helper.make_node("Cast", ["l32"], ["loss"], to=back)]
    outputs = [vi("loss", back, [])] + ([vi("l32", F32, [])] if loss_is_output else [])
    return _model(nodes, [vi("x", src, [7, 3]), vi("y", src, [7, 3])], outputs)


def test_half_cast_pair_goes_only_around_a_half_loss():
    model = _cast_model()
    before = onnx.ModelProto()
    before.CopyFrom(model)
    assert drop_half_casts(model) == 1
    assert _ops(model) == [spec.OP_TYPE] and list(model.graph.node[0].output) == ["loss"]
    x = np.random.default_rng(2).standard_normal((7, 3)).astype(np.float16)
    y = np.random.default_rng(3).standard_normal((7, 3)).astype(np.float16)
    np.testing.assert_array_equal(_run(model, x, y)[0], _run(before, x, y)[0])
    # float64 -> float32 is not exact, float32 result read elsewhere, a Cast back to float32: stay.
    assert drop_half_casts(_cast_model(src=TensorProto.DOUBLE, back=TensorProto.DOUBLE)) == 0
    assert drop_half_casts(_cast_model(loss_is_output=True)) == 0
    assert drop_half_casts(_cast_model(back=F32)) == 0


def test_simplify_takes_cast_and_expand_in_either_order():
    vi = helper.make_tensor_value_info
    nodes = [helper.make_node("Cast", ["x"], ["x32"], to=F32),
             helper.make_node("Expand", ["x32", "s"], ["xe"]),
             helper.make_node("Cast", ["y"], ["y32"], to=F32),
             sl1.make_huber_node("xe", "y32", "l32", delta=2.0, reduction="none"),
             helper.make_node("Cast", ["l32"], ["loss"], to=F16)]
    model = _model(nodes, [vi("x", F16, [6, 1, 5]), vi("y", F16, [4, 5])], [vi("loss", F16, [6, 4, 5])],
                   [_shape_const("s", [6, 4, 5])])
    assert simplify(model) == {"casts": 1, "expands": 1}
    assert _ops(model) == [spec.HUBER_OP_TYPE] and list(model.graph.node[0].input) == ["x", "y"]
    onnx.checker.check_model(sl1.attach_function(model), full_check=True)
