"""onnx_smoothl1.fuse on models from plain ``torch.onnx.export`` (no help from this project).

For each torch program: the fused model has the expected loss nodes (SmoothL1Loss for
smooth_l1/L1, HuberLoss for huber) and their functions, the expected node count (no
Expand or half-type Cast left around a loss), passes the full checker, and its outputs
equal the original's and torch's float64 result within SPEC tolerance (ORT function path;
the fused kernel too when the library is built). torch 2.13's legacy exporter cannot export
smooth_l1_loss / huber_loss at all (UnsupportedOperatorError), so plain models come from
dynamo, with and without torch's optimizer. Expand safety cases: tests/test_expand.py.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from _no_f64 import float64_free  # noqa: E402
from test_export import HandWrittenHuber1, _run_any, huber_verdict  # noqa: E402

import onnx_smoothl1 as sl1  # noqa: E402
from onnx_smoothl1 import exporter, oracle, runtime, spec  # noqa: E402

HAS_KERNEL = runtime._library_candidate()[0] is not None
TORCH_DTYPES = {"float16": torch.float16, "float32": torch.float32, "float64": torch.float64}


class Program(torch.nn.Module):
    def __init__(self, *fns, modules=()):
        super().__init__()
        self.fns = fns
        self.mods = torch.nn.ModuleList(modules)

    def forward(self, x, y):
        out = tuple(fn(self, x, y) for fn in self.fns)
        return out if len(out) > 1 else out[0]


def _p(fns, reductions, *, dtype="float32", shapes=((6, 3), (6, 3)), optimize=True, modules=(), ops=None,
       after=None):
    """``ops``: the loss op type per output (default SmoothL1Loss); ``after``: the fused main
    graph's node count."""
    ops = list(ops or [spec.OP_TYPE] * len(reductions))
    return dict(make=lambda: Program(*fns, modules=modules), reductions=reductions, dtype=dtype,
                shapes=shapes, optimize=optimize, losses=len(reductions), ops=ops, after=after)


H = spec.HUBER_OP_TYPE
S = spec.OP_TYPE

# Betas/deltas exact in float32.
PROGRAMS = {
    "mean": _p([lambda m, x, y: m.mods[0](x, y)], ["mean"], modules=[torch.nn.SmoothL1Loss()], after=1),
    "sum_beta0.5": _p([lambda m, x, y: F.smooth_l1_loss(x, y, reduction="sum", beta=0.5)], ["sum"], after=1),
    "none_beta2_broadcast": _p([lambda m, x, y: F.smooth_l1_loss(x, y, reduction="none", beta=2.0)],
                               ["none"], shapes=((4, 1, 3), (5, 3)), after=1),
    "HuberLoss_delta2": _p([lambda m, x, y: m.mods[0](x, y)], ["mean"], modules=[torch.nn.HuberLoss(delta=2.0)],
                           ops=[H], after=1),
    "huber_none_delta1": _p([lambda m, x, y: F.huber_loss(x, y, reduction="none")], ["none"], ops=[H], after=1),
    "huber_sum_broadcast": _p([lambda m, x, y: F.huber_loss(x, y, reduction="sum", delta=0.25)], ["sum"],
                              shapes=((6, 1, 5), (4, 5)), ops=[H], after=1),
    "beta0_mean": _p([lambda m, x, y: F.smooth_l1_loss(x, y, beta=0.0)], ["mean"], after=1),
    "float16_mean": _p([lambda m, x, y: F.smooth_l1_loss(x, y)], ["mean"], dtype="float16",
                       shapes=((6, 1), (6, 4)), after=1),
    "float16_huber_sum": _p([lambda m, x, y: F.huber_loss(x, y, reduction="sum", delta=0.5)], ["sum"],
                            dtype="float16", ops=[H], after=1),
    "float64_sum_beta0.25": _p([lambda m, x, y: F.smooth_l1_loss(x, y, reduction="sum", beta=0.25)],
                               ["sum"], dtype="float64", after=1),
    "float64_huber_none_broadcast": _p([lambda m, x, y: F.huber_loss(x, y, reduction="none", delta=1.5)],
                                       ["none"], dtype="float64", shapes=((6, 1, 5), (4, 5)), ops=[H], after=1),
    "several_in_a_model": _p(
        [lambda m, x, y: F.smooth_l1_loss(torch.tanh(x) * 3.0, y, beta=0.5),
         lambda m, x, y: F.huber_loss(x, y, reduction="none", delta=1.5),
         lambda m, x, y: F.l1_loss(x, y, reduction="sum")],
        ["mean", "none", "sum"], ops=[S, H, S], after=5),  # Tanh, Mul and the three losses
    "unoptimized_mean": _p([lambda m, x, y: F.smooth_l1_loss(x, y)], ["mean"], optimize=False, after=1),
    "unoptimized_huber_delta1": _p([lambda m, x, y: F.huber_loss(x, y)], ["mean"], optimize=False, ops=[H],
                                   after=1),
    "unoptimized_float64_none": _p([lambda m, x, y: F.smooth_l1_loss(x, y, reduction="none", beta=0.5)],
                                   ["none"], dtype="float64", optimize=False, after=1),
}


def _inputs(prog, batch_seed=0):
    from conftest import make_inputs

    return make_inputs(*prog["shapes"], prog["dtype"], seed=batch_seed)


@functools.cache
def plain_export(name: str) -> bytes:
    """What torch.onnx.export writes today, without this project."""
    prog = PROGRAMS[name]
    x, y = _inputs(prog)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(prog["make"]().eval(), (torch.from_numpy(x), torch.from_numpy(y)),
                                    dynamo=True, optimize=prog["optimize"], verbose=False,
                                    input_names=["x", "y"])
    model = program.model_proto
    assert exporter.count_loss_nodes(model) == 0
    return model.SerializeToString()


def _run(model: onnx.ModelProto, x, y, custom_op=False) -> list[np.ndarray]:
    session = sl1.inference_session(model, custom_op=custom_op)
    return runtime.run(session, {"x": x, "y": y})


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_fuse_plain_torch_export(name):
    prog = PROGRAMS[name]
    original = onnx.load_from_string(plain_export(name))
    before = onnx.ModelProto()
    before.CopyFrom(original)
    result = sl1.fuse(original)
    fused, count = result
    assert original == before, "fuse must not modify its argument"
    assert count == result.count == prog["losses"]
    assert sl1.fuse(original, l1="all").count == prog["losses"]  # no double counting of |x-y|
    assert exporter.count_loss_nodes(fused) == prog["losses"]
    assert sorted(n.op_type for n in fused.graph.node if spec.is_loss_node(n)) == sorted(prog["ops"])
    assert len(fused.graph.node) < len(original.graph.node)
    if prog["after"] is not None:
        assert len(fused.graph.node) == prog["after"], [n.op_type for n in fused.graph.node]
    assert not any(n.op_type == "Expand" for n in fused.graph.node)  # all of torch's are safe to drop
    assert sorted((f.domain, f.name) for f in fused.functions) == sorted({(spec.DOMAIN, o) for o in prog["ops"]})
    assert fused.ir_version <= sl1.model.MAX_IR_VERSION
    onnx.checker.check_model(fused, full_check=True)
    if prog["dtype"] != "float64":
        assert float64_free(original) == [], "torch's own export already holds float64"
        assert float64_free(fused) == [], "fusing must not bring float64 into the model"

    dtype = prog["dtype"]
    x, y = _inputs(prog, batch_seed=3)
    module = prog["make"]().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = module.double()(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(y.astype(np.float64)))
        own = module.float()(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32)))
    ref = ref if isinstance(ref, tuple) else (ref,)
    own = own if isinstance(own, tuple) else (own,)
    expected_before = _run(original, x, y)
    paths = [False, True] if HAS_KERNEL else [False]
    for custom_op in paths:
        got = _run(fused, x, y, custom_op=custom_op)
        assert len(got) == len(ref) == len(expected_before)
        for i, (out, r, o, b, red) in enumerate(zip(got, ref, own, expected_before, prog["reductions"])):
            assert out.dtype == b.dtype and out.shape == b.shape
            verdict = oracle.compare(out, r.numpy(), dtype=dtype, reduction=red,
                                     torch_own=o.numpy() if dtype == "float32" else None)
            assert verdict.ok, f"{name} output {i} custom_op={custom_op}: {verdict.detail}"
            # ... and the original's own output, within a few roundings of the type.
            eps = float(np.finfo(b.dtype).eps)
            np.testing.assert_allclose(out.astype(np.float64), b.astype(np.float64), rtol=8 * eps,
                                       atol=8 * eps * float(np.abs(b.astype(np.float64)).max(initial=0)))


def test_fuse_is_idempotent_and_leaves_other_models_alone():
    fused, count = sl1.fuse(onnx.load_from_string(plain_export("mean")))
    assert count == 1
    again, count2 = sl1.fuse(fused)
    assert count2 == 0 and again == fused
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        linear = torch.onnx.export(torch.nn.Linear(3, 2), (torch.randn(2, 3),), dynamo=True, verbose=False).model_proto
    out, n = sl1.fuse(linear)
    assert n == 0 and out == linear


def _abs_sub_model(reduce: bool, dtype=onnx.TensorProto.FLOAT, shape=(3,)) -> onnx.ModelProto:
    h = onnx.helper
    nodes = [h.make_node("Sub", ["a", "b"], ["d0"]), h.make_node("Abs", ["d0"], ["d"])]
    out = "d"
    if reduce:
        nodes.append(h.make_node("ReduceSum", ["d"], ["s"], keepdims=0))
        out = "s"
    inputs = [h.make_tensor_value_info("a", dtype, list(shape)), h.make_tensor_value_info("b", dtype, list(shape))]
    graph = h.make_graph(nodes, "g", inputs, [h.make_tensor_value_info(out, dtype, [] if reduce else list(shape))])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 18)], ir_version=9)


def test_l1_modes():
    bare = _abs_sub_model(reduce=False)
    assert sl1.fuse(bare).count == 0  # default "reduced": |a - b| alone is not taken for a loss
    assert sl1.fuse(bare, l1="all").count == 1
    reduced = _abs_sub_model(reduce=True)
    assert sl1.fuse(reduced).count == 1
    assert sl1.fuse(reduced, l1="off").count == 0
    a, b = np.array([1.0, -2.0, 3.5], np.float32), np.array([0.5, 2.0, np.nan], np.float32)
    for model in (bare, reduced):
        fused, _ = sl1.fuse(model, l1="all")
        want = sl1.inference_session(model).run(None, {"a": a, "b": b})[0]
        got = sl1.inference_session(fused, custom_op=False).run(None, {"a": a, "b": b})[0]
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="l1"):
        sl1.fuse(bare, l1="yes")


@pytest.mark.parametrize("axes, folded", [([0], False), ([1], False), ([0, 1], True), ([-1, 0], True)])
def test_partial_reduction_is_not_fused(axes, folded):
    """ReduceSum over some axes is not the loss's reduction: only the element-wise part fuses
    and the ReduceSum stays; over every axis (named in any order) it folds into the node."""
    model = _abs_sub_model(reduce=True, shape=(2, 3))
    node = model.graph.node[2]
    node.input.append("axes")
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(axes, np.int64), "axes"))
    model.graph.output[0].type.tensor_type.shape.ClearField("dim")
    if not folded:
        model.graph.output[0].type.tensor_type.shape.dim.add().dim_value = 3 if axes == [0] else 2
    fused, count = sl1.fuse(model, l1="all")
    assert count == 1
    assert [n.op_type for n in fused.graph.node] == [spec.OP_TYPE] + ([] if folded else ["ReduceSum"])
    assert onnx.helper.get_attribute_value(
        next(a for a in fused.graph.node[0].attribute if a.name == "reduction")) == (b"sum" if folded else b"none")
    a, b = np.random.default_rng(0).standard_normal((2, 2, 3)).astype(np.float32)
    got = sl1.inference_session(fused, custom_op=False).run(None, {"a": a, "b": b})[0]
    np.testing.assert_allclose(got, np.abs(a - b).sum(axis=tuple(axes)), rtol=1e-6)


def test_beta_not_exact_in_float32_is_left_alone():
    """A float64 model with beta exactly 0.3: the node's FLOAT beta would change the values.

    (torch.onnx itself writes beta rounded to float32 even in float64 models, so its own
    exports always fuse; this model is edited to hold the exact float64 0.3.)
    """
    x, y = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.onnx.export(Program(lambda m, a, b: F.smooth_l1_loss(a, b, beta=0.3)), (x, y),
                                  dynamo=True, verbose=False).model_proto
    assert sl1.fuse(model).count == 1  # beta as torch wrote it: float32(0.3), exact
    for init in model.graph.initializer:
        value = onnx.numpy_helper.to_array(init)
        if value.dtype == np.float64 and value.size == 1 and float(value) in (np.float32(0.3), np.float32(0.15)):
            exact = 0.3 if float(value) == np.float32(0.3) else 0.15
            init.CopyFrom(onnx.numpy_helper.from_array(np.array(exact, np.float64).reshape(value.shape), init.name))
    assert sl1.fuse(model).count == 0


def test_fuse_rejects_non_models():
    with pytest.raises(ValueError, match="ModelProto"):
        sl1.fuse(b"not a model")


# --- no float64 in a fused model that had none; float64 models still match torch ----------

NO_F64_LOSSES = {
    "smooth_l1_mean_beta0.5": (lambda x, y: F.smooth_l1_loss(x, y, beta=0.5), "mean", None),
    "huber_none_delta1.5": (lambda x, y: F.huber_loss(x, y, reduction="none", delta=1.5), "none", 1.5),
    "huber_sum_delta0.5": (lambda x, y: F.huber_loss(x, y, reduction="sum", delta=0.5), "sum", 0.5),
    "huber_mean_delta0.3": (lambda x, y: F.huber_loss(x, y, delta=0.3), "mean", 0.3),
    "l1_mean": (lambda x, y: F.l1_loss(x, y), "mean", None),
}
ALL_TORCH_DTYPES = {**TORCH_DTYPES, "bfloat16": torch.bfloat16}


def _torch_tensor(a: np.ndarray, dtype: str) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a).astype(np.float32 if dtype == "bfloat16" else a.dtype)).to(
        ALL_TORCH_DTYPES[dtype])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("name", list(NO_F64_LOSSES))
def test_fused_model_has_no_float64(name, dtype):
    """A float16/bfloat16/float32 model gains no float64 from fusing (graph, If branches,
    function); a float64 one is fused too. Either way the result matches torch."""
    from conftest import make_inputs

    fn, reduction, delta = NO_F64_LOSSES[name]
    x, y = make_inputs((16, 5), (16, 5), dtype, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = torch.onnx.export(Program(lambda m, a, b: fn(a, b)), (_torch_tensor(x, dtype), _torch_tensor(y, dtype)),
                                  dynamo=True, verbose=False, input_names=["x", "y"]).model_proto
    fused, count = sl1.fuse(plain)
    assert count == 1 and exporter.count_loss_nodes(fused) == 1
    want = spec.HUBER_OP_TYPE if delta is not None else spec.OP_TYPE
    assert [n.op_type for n in fused.graph.node] == [want]  # the half types' Casts went too
    if dtype != "float64":
        assert float64_free(plain) == [], "torch's own export already holds float64"
        assert float64_free(fused) == []
    (out,) = _run_any(fused, {"x": x, "y": y}, dtype)
    if delta is not None:
        verdict = huber_verdict(out, x, y, delta=delta, reduction=reduction, dtype=dtype)
    else:
        ref = oracle.reference(x, y, beta=0.5 if name.startswith("smooth") else 0.0, reduction=reduction)
        own = None
        if dtype == "float32":
            own = fn(torch.from_numpy(x), torch.from_numpy(y)).numpy()
        verdict = oracle.compare(out, ref, dtype=dtype, reduction=reduction, torch_own=own)
    assert verdict.ok, f"{name} {dtype}: {verdict.detail}"


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
def test_fuse_finds_the_loss_in_legacy_exports_without_value_info(dynamo):
    """The legacy exporter writes no value_info; fuse infers the element types it checks
    (issue 24: it used to find nothing in legacy exports) and the output is unchanged."""
    import io

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(HandWrittenHuber1().eval(), (torch.randn(8, 3), torch.randn(8, 1)), buf, dynamo=dynamo)
    plain = onnx.load_from_string(buf.getvalue())
    if not dynamo:
        assert not plain.graph.value_info  # the premise: nothing declared in between
    fused = sl1.fuse(plain)
    assert fused.count == 1 and exporter.count_loss_nodes(fused.model) == 1
    rng = np.random.default_rng(3)
    feeds = {i.name: rng.standard_normal(s).astype(np.float32)
             for i, s in zip(plain.graph.input, [(8, 3), (8, 1)])}
    want = runtime.run(sl1.inference_session(plain, custom_op=False), feeds)[0]
    got = runtime.run(sl1.inference_session(fused.model, custom_op=True), feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)
