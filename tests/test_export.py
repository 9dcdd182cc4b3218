"""onnx_smoothl1.export: torch losses -> loss nodes, parity with torch on every path.

Grid: torch programs (CASES) x exporter (dynamo, legacy) x mode (function, custom_op,
inline) x runtime path (ORT function, ORT fused kernel, Python op, ORT inlined), all run at a
batch size different from the export example's. Expected values: the same torch module in
float64 (PyTorch is the oracle), compared with SPEC tolerances (``oracle.compare``).
Exports are cached per (case, dtype, exporter, mode), so each is done once. HuberLoss's own
grid (dtypes x reductions x broadcast, bad delta) is tests/test_export_huber.py; Expand
removal is tests/test_expand.py.
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

import onnx_smoothl1 as sl1  # noqa: E402
from onnx_smoothl1 import exporter, oracle, runtime, spec  # noqa: E402

HAS_KERNEL = runtime._library_candidate()[0] is not None
EXAMPLE_BATCH = 6
RUN_BATCH = 9


class Losses(torch.nn.Module):
    """forward(x, y) -> tuple of losses given as callables (each may call nn modules)."""

    def __init__(self, *fns, modules=()):
        super().__init__()
        self.fns = fns
        self.mods = torch.nn.ModuleList(modules)

    def forward(self, x, y):
        return tuple(fn(self, x, y) for fn in self.fns)


class Regressor(torch.nn.Module):
    """A small regression model whose forward returns its training loss."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
        self.loss = torch.nn.SmoothL1Loss(beta=0.5)

    def forward(self, x, y):
        return self.loss(self.net(x), y)


def _case(fns, reductions, shapes=((EXAMPLE_BATCH, 3), (EXAMPLE_BATCH, 3)), modules=(), y_batch=True,
          nodes=None):
    """``nodes``: loss nodes per exporter where that is not one per loss."""
    return {"make": lambda: Losses(*fns, modules=modules), "reductions": reductions,
            "shapes": shapes, "y_batch": y_batch, "nodes": nodes or {}}


# Every beta/delta is exact in float32 (ONNX FLOAT attributes), see SPEC "Accuracy".
CASES = {
    "SmoothL1Loss": _case([lambda m, x, y: m.mods[0](x, y)], ["mean"],
                          modules=[torch.nn.SmoothL1Loss()]),
    "smooth_l1_sum_beta0.5": _case([lambda m, x, y: F.smooth_l1_loss(x, y, reduction="sum", beta=0.5)], ["sum"]),
    "smooth_l1_none_broadcast": _case(
        [lambda m, x, y: F.smooth_l1_loss(x, y, reduction="none", beta=2.0)], ["none"],
        shapes=((EXAMPLE_BATCH, 1, 3), (5, 3)), y_batch=False),
    "HuberLoss": _case([lambda m, x, y: m.mods[0](x, y)], ["mean"],
                       modules=[torch.nn.HuberLoss(delta=2.0)]),
    "huber_none_delta0.5": _case([lambda m, x, y: F.huber_loss(x, y, reduction="none", delta=0.5)], ["none"]),
    "beta0_sum": _case([lambda m, x, y: m.mods[0](x, y)], ["sum"],
                       modules=[torch.nn.SmoothL1Loss(beta=0.0, reduction="sum")]),
    "L1Loss_next_to_smooth_l1": _case(
        [lambda m, x, y: m.mods[0](x, y), lambda m, x, y: F.smooth_l1_loss(x, y, beta=0.25)],
        ["mean", "mean"], modules=[torch.nn.L1Loss()]),
    "deprecated_size_average_reduce": _case(
        [lambda m, x, y: F.smooth_l1_loss(x, y, size_average=False),
         lambda m, x, y: F.smooth_l1_loss(x, y, reduce=False),
         lambda m, x, y: F.huber_loss(x, y, reduction="sum")],
        [spec.legacy_reduction(False, None, "mean"), spec.legacy_reduction(None, False, "mean"), "sum"]),
    "several_losses": _case(
        [lambda m, x, y: F.smooth_l1_loss(x, y),
         lambda m, x, y: F.smooth_l1_loss(2.0 * x, y, reduction="none", beta=0.5),
         lambda m, x, y: F.huber_loss(x, y, reduction="sum", delta=1.5),
         lambda m, x, y: F.l1_loss(x, y, reduction="none")],
        ["mean", "none", "sum", "none"]),
}
#: torch dtype per SPEC dtype name
TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16,
                "float32": torch.float32, "float64": torch.float64}


def _inputs(case: dict, dtype: str, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from conftest import make_inputs

    (xs, ys) = case["shapes"]
    xs = (batch, *xs[1:])
    ys = (batch, *ys[1:]) if case["y_batch"] else ys
    return make_inputs(xs, ys, dtype, seed=seed)


def _to_torch(a: np.ndarray, dtype: str) -> torch.Tensor:
    host = np.asarray(a).astype(np.float32 if dtype == "bfloat16" else a.dtype)
    return torch.from_numpy(host).to(TORCH_DTYPES[dtype])


def _dynamic_shapes(case: dict):
    batch = torch.export.Dim("batch")
    return ({0: batch}, {0: batch} if case["y_batch"] else None)


@functools.cache
def exported(name: str, dtype: str, dynamo: bool, mode: str) -> bytes:
    case = CASES[name]
    x, y = _inputs(case, dtype, EXAMPLE_BATCH, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sl1.export(case["make"]().eval(), (_to_torch(x, dtype), _to_torch(y, dtype)),
                           mode=mode, dynamo=dynamo, dynamic_shapes=_dynamic_shapes(case))
    return model.SerializeToString()


def _session(model: bytes, path: str):
    if path == "ort-kernel" and not HAS_KERNEL:
        pytest.skip("compiled custom-op library not built")
    if path == "python-op":
        pytest.importorskip("onnxruntime_extensions")
    custom_op = {"ort-function": False, "ort-kernel": True, "python-op": "python", "ort": False}[path]
    return sl1.inference_session(model, custom_op=custom_op)


def _check_parity(name: str, dtype: str, outputs: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> None:
    case = CASES[name]
    module = case["make"]().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = module.double()(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(y.astype(np.float64)))
        own = module.float()(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32)))
    assert len(outputs) == len(ref) == len(case["reductions"])
    for i, (out, r, o, red) in enumerate(zip(outputs, ref, own, case["reductions"])):
        verdict = oracle.compare(out, r.numpy(), dtype=dtype, reduction=red,
                                 torch_own=o.numpy() if dtype == "float32" else None)
        assert verdict.ok, f"{name} output {i} ({red}, {dtype}): {verdict.detail}"


def _run_and_check(name: str, dtype: str, dynamo: bool, mode: str, path: str) -> onnx.ModelProto:
    blob = exported(name, dtype, dynamo, mode)
    model = onnx.load_from_string(blob)
    x, y = _inputs(CASES[name], dtype, RUN_BATCH, seed=2)
    names = [i.name for i in model.graph.input]
    try:
        session = _session(blob, path)
    except Exception as exc:
        # onnxruntime's CPU provider has no bfloat16 Expand/Add, which torch emits around the
        # loss for broadcasting (legacy: always). Our node is not the problem: run the
        # model in onnx.reference instead where that can (function/inline modes).
        if dtype != "bfloat16" or "Could not find an implementation" not in str(exc) or (
            spec.OP_TYPE in str(exc)
        ):
            raise
        if mode == "custom_op":
            pytest.skip(f"onnxruntime CPU lacks a bfloat16 kernel around the loss: {exc}")
        from onnx.reference import ReferenceEvaluator

        outputs = ReferenceEvaluator(model).run(None, dict(zip(names, (x, y))))
    else:
        outputs = runtime.run(session, dict(zip(names, (x, y))))
    _check_parity(name, dtype, outputs, x, y)
    return model


MODE_PATHS = [
    ("function", "ort-function"),
    ("function", "ort-kernel"),
    ("custom_op", "ort-kernel"),
    ("custom_op", "python-op"),
    ("inline", "ort"),
]


@pytest.mark.parametrize("mode,path", MODE_PATHS, ids=[f"{m}-{p}" for m, p in MODE_PATHS])
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
@pytest.mark.parametrize("name", list(CASES))
def test_export_parity_float32(name, dynamo, mode, path):
    model = _run_and_check(name, "float32", dynamo, mode, path)
    losses = exporter.count_loss_nodes(model)
    if mode == "inline":
        assert losses == 0 and not model.functions
        assert all(o.domain != spec.DOMAIN for o in model.opset_import)
    else:
        case = CASES[name]
        assert losses == case["nodes"].get("dynamo" if dynamo else "legacy", len(case["reductions"]))
        assert bool(model.functions) == (mode == "function")


# float16 / bfloat16 / float64 on the programs that exercise each translation.
DTYPE_CASES = ["SmoothL1Loss", "HuberLoss", "smooth_l1_none_broadcast", "beta0_sum"]
DTYPE_PATHS = [mp for mp in MODE_PATHS if mp[1] != "python-op"]


@pytest.mark.parametrize("mode,path", DTYPE_PATHS, ids=[f"{m}-{p}" for m, p in DTYPE_PATHS])
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
@pytest.mark.parametrize("name", DTYPE_CASES)
def test_export_parity_dtypes(name, dtype, dynamo, mode, path):
    model = _run_and_check(name, dtype, dynamo, mode, path)
    assert onnx.helper.tensor_dtype_to_np_dtype(model.graph.input[0].type.tensor_type.elem_type) == (
        oracle.NUMPY_DTYPES[dtype]
    )


# --- no float64 in a model that had none (SPEC, "Precision and portability") -------------

NO_F64_CASES = ["SmoothL1Loss", "HuberLoss", "huber_none_delta0.5", "beta0_sum",
                "L1Loss_next_to_smooth_l1", "several_losses"]


@pytest.mark.parametrize("mode", list(exporter.MODES))
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("name", NO_F64_CASES)
def test_export_has_no_float64(name, dtype, dynamo, mode):
    """Nothing float64 anywhere: graph, If branches, the model-local function (nested too)."""
    model = onnx.load_from_string(exported(name, dtype, dynamo, mode))
    assert float64_free(model) == []


def test_float64_free_finds_float64_everywhere():
    """The checker itself: float64 planted in each kind of place is reported."""
    clean = sl1.make_model(dtype="float32")
    assert float64_free(clean) == []
    assert float64_free(sl1.make_model(dtype="float64"))  # a float64 model is all float64

    def planted(edit):
        model = onnx.ModelProto()
        model.CopyFrom(clean)
        edit(model)
        return float64_free(model)

    def deepest_branch(nodes, depth=0):
        """(depth, graph) of the most deeply nested subgraph under ``nodes``."""
        best = (depth, None)
        for node in nodes:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    got = deepest_branch(attr.g.node, depth + 1)
                    best = max(best, got if got[1] is not None else (depth + 1, attr.g),
                               key=lambda t: t[0])
        return best

    def cast_in_nested_branch(model):
        depth, branch = deepest_branch(model.functions[0].node)
        assert depth >= 2, "the function body has no nested If any more"
        branch.node.insert(0, onnx.helper.make_node("Cast", ["input"], ["x64"], to=onnx.TensorProto.DOUBLE))

    def double_constant_in_function(model):
        model.functions[0].node.insert(0, onnx.helper.make_node(
            "Constant", [], ["c64"], value=onnx.numpy_helper.from_array(np.float64(1.0), "c64")))

    def double_initializer(model):
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros(2), "unused64"))

    def double_value_info(model):
        model.graph.value_info.append(
            onnx.helper.make_tensor_value_info("loss", onnx.TensorProto.DOUBLE, None))

    for edit in (cast_in_nested_branch, double_constant_in_function, double_initializer,
                 double_value_info):
        assert planted(edit), edit.__name__
    assert any(f.startswith("inferred ") for f in planted(cast_in_nested_branch))


def huber_verdict(out: np.ndarray, x: np.ndarray, y: np.ndarray, *, delta: float, reduction: str,
                  dtype: str) -> oracle.Verdict:
    """A HuberLoss output against ``torch.nn.functional.huber_loss`` under SPEC's tolerances.

    The reference is torch's huber_loss on the inputs upcast to float64, with delta rounded
    to float32 (the node's FLOAT attribute, as torch.onnx writes it too). float32 also passes
    when no worse than torch's own float32 huber_loss with that delta (SPEC: PyTorch's own
    result always passes). The node computes torch's formula, so no allowance beyond that.
    """
    d32 = oracle.as_beta(delta)
    x64, y64 = (torch.from_numpy(np.asarray(a).astype(np.float64)) for a in (x, y))
    ref = F.huber_loss(x64, y64, reduction=reduction, delta=d32).numpy()
    own = None
    if dtype == "float32":
        own = F.huber_loss(torch.from_numpy(np.asarray(x)), torch.from_numpy(np.asarray(y)),
                           reduction=reduction, delta=d32).numpy()
    return oracle.compare(out, ref, dtype=dtype, reduction=reduction, torch_own=own)


def _run_any(model: onnx.ModelProto, feeds: dict, dtype: str) -> list[np.ndarray]:
    """ORT's function path; onnx.reference where ORT's CPU lacks a bfloat16 kernel."""
    try:
        session = sl1.inference_session(model, custom_op=False)
    except Exception as exc:
        if dtype != "bfloat16" or "Could not find an implementation" not in str(exc):
            raise
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(model).run(None, feeds)
    return runtime.run(session, feeds)


@pytest.mark.parametrize("dtype", ["float64"])
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
def test_python_op_float64(dtype, dynamo):
    _run_and_check("HuberLoss", dtype, dynamo, "custom_op", "python-op")
    _run_and_check("SmoothL1Loss", dtype, dynamo, "custom_op", "python-op")


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
def test_node_attributes(dynamo):
    model = onnx.load_from_string(exported("several_losses", "float32", dynamo, "function"))
    got = []
    for node in sl1.spec.walk_nodes(model.graph.node):
        if sl1.spec.is_loss_node(node):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            param = spec.LOSS_PARAMS[node.op_type]
            assert set(attrs) == {param, "reduction"}, node
            got.append((node.op_type, attrs[param], attrs["reduction"].decode()))
    # smooth_l1 mean b1, smooth_l1 none b0.5, huber sum d1.5 (its own node), l1 none (beta 0)
    assert sorted(got) == sorted([(spec.OP_TYPE, 1.0, "mean"), (spec.OP_TYPE, 0.5, "none"),
                                  (spec.HUBER_OP_TYPE, 1.5, "sum"), (spec.OP_TYPE, 0.0, "none")])
    assert sorted(f.name for f in model.functions) == sorted(spec.LOSS_OP_TYPES)
    assert model.ir_version <= sl1.model.MAX_IR_VERSION
    onnx.checker.check_model(model, full_check=True)


def test_regression_model_with_its_loss():
    """A module whose forward returns its training loss; both exporters, function mode."""
    x = torch.randn(EXAMPLE_BATCH, 3)
    y = torch.randn(EXAMPLE_BATCH, 3)
    module = Regressor().eval()
    xr, yr = torch.randn(RUN_BATCH, 3), torch.randn(RUN_BATCH, 3)
    expected = module(xr, yr).detach().numpy()
    batch = torch.export.Dim("batch")
    for dynamo in (True, False):
        model = sl1.export(module, (x, y), dynamo=dynamo, dynamic_shapes=({0: batch}, {0: batch}))
        assert exporter.count_loss_nodes(model) == 1
        for custom_op in (False, True) if HAS_KERNEL else (False,):
            session = sl1.inference_session(model, custom_op=custom_op)
            out = session.run(None, {"x": xr.numpy(), "y": yr.numpy()})[0]
            np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_fully_dynamic_shapes_and_file_output(tmp_path):
    a, b = torch.export.Dim("a"), torch.export.Dim("b")
    path = tmp_path / "loss.onnx"
    model = sl1.export(torch.nn.SmoothL1Loss(reduction="none", beta=0.5), (torch.randn(4, 5), torch.randn(4, 5)),
                       path, dynamic_shapes=({0: a, 1: b}, {0: a, 1: b}))
    assert onnx.load(str(path)) == model
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert all(dims), dims
    session = sl1.inference_session(model, custom_op=False)
    from conftest import make_inputs

    for shape in [(2, 7), (11, 3)]:
        x, y = make_inputs(shape, shape, "float32")
        out = session.run(None, {"input": x, "target": y})[0]
        ref = oracle.reference(x, y, beta=0.5, reduction="none")
        assert oracle.compare(out, ref, dtype="float32", reduction="none").ok


def test_legacy_registration_leaves_no_global_state():
    from torch.onnx._internal.torchscript_exporter import registration

    names = ["aten::smooth_l1_loss", "aten::huber_loss", "aten::l1_loss"]
    opset = exporter.DEFAULT_OPSET
    before = {n: registration.registry.is_registered_op(n, opset) for n in names}
    sl1.export(torch.nn.SmoothL1Loss(), (torch.randn(3), torch.randn(3)), dynamo=False)
    assert {n: registration.registry.is_registered_op(n, opset) for n in names} == before
    # A failing export unregisters too.
    with pytest.raises(TypeError):  # forward() is missing an argument
        sl1.export(torch.nn.SmoothL1Loss(), (torch.randn(3),), dynamo=False)
    assert {n: registration.registry.is_registered_op(n, opset) for n in names} == before



PLAIN_LEGACY_OUTCOMES = """
import io, json, warnings
import torch
import onnx_smoothl1 as sl1
warnings.simplefilter("ignore")
LOSSES = {"smooth_l1": torch.nn.SmoothL1Loss, "huber": torch.nn.HuberLoss, "l1": torch.nn.L1Loss}

def outcome(make):
    try:
        torch.onnx.export(make(), (torch.randn(3), torch.randn(3)), io.BytesIO(), dynamo=False)
        return "exported"
    except Exception as exc:
        return type(exc).__name__

fresh = {k: outcome(v) for k, v in LOSSES.items()}
for make in LOSSES.values():
    sl1.export(make(), (torch.randn(3), torch.randn(3)), dynamo=False)
after = {k: outcome(v) for k, v in LOSSES.items()}
print(json.dumps([fresh, after]))
"""


def test_plain_legacy_export_behaves_as_torch_after_ours():
    """issue 24's leak: after onnx_smoothl1.export(dynamo=False), a plain legacy torch.onnx
    export of smooth_l1/huber/l1 in the same process gives torch's own outcome (it used to be
    "ValueError: min() arg is an empty sequence" instead of UnsupportedOperatorError)."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", PLAIN_LEGACY_OUTCOMES], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh, after = json.loads(proc.stdout.strip().splitlines()[-1])
    assert after == fresh, (fresh, after)
    assert fresh["smooth_l1"] == "UnsupportedOperatorError", fresh  # torch 2.13 has no symbolic


def test_legacy_restores_a_users_own_symbolic():
    opset = exporter.DEFAULT_OPSET

    def mine(g, x, y, reduction, beta):  # pragma: no cover - never called
        raise AssertionError

    torch.onnx.register_custom_op_symbolic("aten::smooth_l1_loss", mine, opset)
    try:
        from torch.onnx._internal.torchscript_exporter import registration

        sl1.export(torch.nn.SmoothL1Loss(), (torch.randn(3), torch.randn(3)), dynamo=False)
        group = registration.registry.get_function_group("aten::smooth_l1_loss")
        assert group.get(opset) is mine
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::smooth_l1_loss", opset)


def test_dynamo_export_registers_no_schema():
    sl1.export(torch.nn.SmoothL1Loss(), (torch.randn(3), torch.randn(3)))
    assert not onnx.defs.has(spec.OP_TYPE, spec.DOMAIN)


def test_opsets():
    x, y = torch.randn(4, 3), torch.randn(4, 3)
    module = torch.nn.SmoothL1Loss(beta=0.5)
    ref = oracle.reference(x.numpy(), y.numpy(), beta=0.5)
    for dynamo, opset in [(True, 18), (False, 13), (False, 14), (False, 17)]:
        model = sl1.export(module, (x, y), dynamo=dynamo, opset=opset)
        assert {o.domain: o.version for o in model.opset_import}[""] == opset
        out = sl1.inference_session(model, custom_op=False).run(None, {"input": x.numpy(), "target": y.numpy()})[0]
        assert oracle.compare(out, ref, dtype="float32", reduction="mean", torch_own=module(x, y).numpy()).ok
    default = sl1.export(module, (x, y))
    assert {o.domain: o.version for o in default.opset_import}[""] == exporter.DEFAULT_OPSET == 20


def test_arguments_are_checked():
    x = torch.randn(3)
    with pytest.raises(ValueError, match="mode"):
        sl1.export(torch.nn.SmoothL1Loss(), (x, x), mode="fused")
    with pytest.raises(ValueError, match="opset"):
        sl1.export(torch.nn.SmoothL1Loss(), (x, x), opset=3)
    with pytest.raises(ValueError, match="dynamic_shapes or dynamic_axes"):
        sl1.export(torch.nn.SmoothL1Loss(), (x, x), dynamo=False, dynamic_shapes=({0: "n"}, None),
                   dynamic_axes={"input": {0: "n"}})


def test_model_without_loss_exports_plainly():
    model = sl1.export(torch.nn.Linear(3, 2), (torch.randn(2, 3),))
    assert not model.functions and all(o.domain != spec.DOMAIN for o in model.opset_import)


def test_dynamic_axes_from_shapes():
    n = torch.export.Dim("n")
    assert exporter.dynamic_axes_from_shapes(({0: n}, None), ["x", "y"]) == {"x": {0: "n"}}
    assert exporter.dynamic_axes_from_shapes({"y": [None, "m"]}, ["x", "y"]) == {"y": {1: "m"}}


def test_opset_13_14_need_one_known_type():
    """Without CastLike the function is specialised, so finish needs the loss input types."""
    h = onnx.helper
    # Loss inputs from an op shape inference does not know: no type.
    graph = h.make_graph(
        [h.make_node("Foo", ["x"], ["u"], domain="other"),
         sl1.make_node("u", "u", "loss", beta=0.5, reduction="mean")],
        "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3])],
        [h.make_tensor_value_info("loss", onnx.TensorProto.FLOAT, [])])
    for opset in (13, 14):
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset), h.make_opsetid("other", 1)])
        with pytest.raises(ValueError, match="opset >= 15"):
            exporter.finish(model, "function")
    # float32 next to float64 at opset 13: one body cannot serve both.
    module = Losses(lambda m, x, y: F.smooth_l1_loss(x, y), lambda m, x, y: F.smooth_l1_loss(x.double(), y.double()))
    with warnings.catch_warnings(), pytest.raises(ValueError, match="opset >= 15"):
        warnings.simplefilter("ignore")
        sl1.export(module, (torch.randn(4, 3), torch.randn(4, 3)), dynamo=False, opset=13)
    # ... which opset 15 handles, in float32 and float64 as the inputs are.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sl1.export(module, (torch.randn(4, 3), torch.randn(4, 3)), dynamo=False, opset=15)
    x, y = torch.randn(4, 3), torch.randn(4, 3)
    out = sl1.inference_session(model, custom_op=False).run(None, {"x": x.numpy(), "y": y.numpy()})
    assert out[0].dtype == np.float32 and out[1].dtype == np.float64
    np.testing.assert_allclose(out[1], F.smooth_l1_loss(x.double(), y.double()).numpy(), rtol=1e-12)


class HandWrittenHuber1(torch.nn.Module):
    """A hand-written smooth-L1 with beta 1 (= Huber with delta 1) after a Linear, as detection
    code writes it (also used by test_fuse)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(3, 1)

    def forward(self, x, y):
        d = (self.net(x) - y).abs()
        return torch.where(d < 1.0, 0.5 * d * d, d - 0.5).mean()


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
def test_export_recognises_hand_written_losses_and_reports_them(dynamo):
    """export runs fuse after torch's export: a loss written by hand becomes a node, recorded
    as recognised in the model's metadata; fuse=False keeps torch's plain ops."""
    import warnings

    from onnx_smoothl1.exporter import found_losses

    args = (torch.randn(8, 3), torch.randn(8, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sl1.export(HandWrittenHuber1().eval(), args, dynamo=dynamo)
        plain = sl1.export(HandWrittenHuber1().eval(), args, dynamo=dynamo, fuse=False)
    assert exporter.count_loss_nodes(model) == 1 and exporter.count_loss_nodes(plain) == 0
    found = found_losses(model)
    assert len(found) == 1 and found[0]["recognised"] is True and found[0]["reduction"] == "mean", found
    assert found_losses(plain) == []
    feeds = {i.name: a.numpy() for i, a in zip(model.graph.input, args)}
    got = runtime.run(sl1.inference_session(model, custom_op=True), feeds)[0]
    want = runtime.run(sl1.inference_session(plain, custom_op=False), feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_export_reports_losses_from_torch_calls_as_not_recognised():
    from onnx_smoothl1.exporter import found_losses

    model = sl1.export(torch.nn.HuberLoss(delta=0.5), (torch.randn(4), torch.randn(4)))
    assert found_losses(model) == [{"op_type": "HuberLoss", "delta": 0.5, "reduction": "mean", "recognised": False}]
