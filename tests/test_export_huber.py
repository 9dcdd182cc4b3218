"""onnx_smoothl1.export of torch.nn.HuberLoss / F.huber_loss: one HuberLoss node, torch's values.

Grid: exporter (dynamo, legacy) x dtype (float16, bfloat16, float32, float64) x reduction x
shapes (equal, broadcast (B,1,5) vs (4,5)), each exported once with a dynamic batch and run
at another batch. Each export must be exactly one ``HuberLoss`` node (no Expand, Cast, Mul
around it) with the FLOAT ``delta`` and the reduction, carry the HuberLoss function, hold no
float64 unless it is a float64 model, and match ``torch.nn.functional.huber_loss``
(``test_export.huber_verdict``) on ORT's function path, and on the fused kernel when the
library is built. A delta torch refuses (<= 0, NaN) or the node refuses (inf) is a
``ValueError`` naming ``delta``.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from _no_f64 import float64_free  # noqa: E402
from test_export import _run_any, _to_torch, huber_verdict  # noqa: E402

import onnx_smoothl1 as sl1  # noqa: E402
from onnx_smoothl1 import exporter, oracle, runtime, spec  # noqa: E402

HAS_KERNEL = runtime._library_candidate()[0] is not None
#: (x shape, y shape) with the batch first in x; y has the batch too where it is not broadcast.
SHAPES = {"equal": ((6, 5), (6, 5)), "broadcast": ((6, 1, 5), (4, 5))}
#: delta per reduction: 0.3 is not exact in float32 (the node holds float32(0.3)), 1.0 is
#: the default, 1.5 a plain one.
DELTAS = {"none": 0.3, "mean": 1.0, "sum": 1.5}


def _export(dtype: str, dynamo: bool, reduction: str, shapes: str, mode: str = "function"):
    from conftest import make_inputs

    xs, ys = SHAPES[shapes]
    x, y = make_inputs(xs, ys, dtype, seed=11)
    batch = torch.export.Dim("batch")
    dynamic = ({0: batch}, {0: batch} if shapes == "equal" else None)
    module = torch.nn.HuberLoss(delta=DELTAS[reduction], reduction=reduction).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sl1.export(module, (_to_torch(x, dtype), _to_torch(y, dtype)), mode=mode, dynamo=dynamo,
                          dynamic_shapes=dynamic)


def _check_node(model: onnx.ModelProto, reduction: str) -> None:
    (node,) = model.graph.node  # the whole graph: no Expand, Cast or Mul left around it
    assert (node.domain, node.op_type) == (spec.DOMAIN, spec.HUBER_OP_TYPE)
    attrs = {a.name: a for a in node.attribute}
    assert set(attrs) == {"delta", "reduction"}
    assert attrs["delta"].type == onnx.AttributeProto.FLOAT
    assert attrs["delta"].f == np.float32(DELTAS[reduction])
    assert attrs["reduction"].s.decode() == reduction
    assert [n.input[:] for n in model.graph.node] == [[i.name for i in model.graph.input]]


@pytest.mark.parametrize("shapes", list(SHAPES))
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
def test_huber_is_one_node_with_torchs_values(dynamo, dtype, reduction, shapes):
    from conftest import make_inputs

    model = _export(dtype, dynamo, reduction, shapes)
    _check_node(model, reduction)
    assert [(f.domain, f.name) for f in model.functions] == [(spec.DOMAIN, spec.HUBER_OP_TYPE)]
    assert model.ir_version <= sl1.model.MAX_IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    if dtype != "float64":
        assert float64_free(model) == []
    want = oracle.NUMPY_DTYPES[dtype]
    assert onnx.helper.tensor_dtype_to_np_dtype(model.graph.output[0].type.tensor_type.elem_type) == want

    xs, ys = SHAPES[shapes]
    x, y = make_inputs((9, *xs[1:]), (9, *ys[1:]) if shapes == "equal" else ys, dtype, seed=12)
    feeds = dict(zip([i.name for i in model.graph.input], (x, y)))
    runs = {"function": _run_any(model, feeds, dtype)}
    if HAS_KERNEL:
        runs["kernel"] = runtime.run(sl1.inference_session(model, custom_op=True), feeds)
    for path, (out,) in runs.items():
        assert out.dtype == want
        verdict = huber_verdict(out, x, y, delta=DELTAS[reduction], reduction=reduction, dtype=dtype)
        assert verdict.ok, f"{path} {dtype} {reduction} {shapes}: {verdict.detail}"


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
def test_huber_custom_op_mode(dynamo):
    """mode='custom_op': the node alone (no function), run by the compiled kernel."""
    if not HAS_KERNEL:
        pytest.skip("compiled custom-op library not built")
    from conftest import make_inputs

    model = _export("float32", dynamo, "mean", "broadcast", mode="custom_op")
    _check_node(model, "mean")
    assert not model.functions
    x, y = make_inputs((3, 1, 5), (4, 5), "float32", seed=13)
    (out,) = runtime.run(sl1.inference_session(model, custom_op=True), {"input": x, "target": y})
    assert huber_verdict(out, x, y, delta=1.0, reduction="mean", dtype="float32").ok


def test_huber_next_to_smooth_l1_in_one_model():
    """Both op types in one model: each gets its own node and function; F.huber_loss with
    delta 1 stays a HuberLoss node even next to an identical-valued smooth_l1."""

    class Two(torch.nn.Module):
        def forward(self, x, y):
            return F.smooth_l1_loss(x, y, reduction="sum"), F.huber_loss(x, y, reduction="sum")

    x, y = torch.randn(5, 3), torch.randn(5, 3)
    for dynamo in (True, False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = sl1.export(Two(), (x, y), dynamo=dynamo)
        assert sorted(n.op_type for n in model.graph.node) == sorted(spec.LOSS_OP_TYPES)
        assert exporter.count_loss_nodes(model) == 2
        assert sorted(f.name for f in model.functions) == sorted(spec.LOSS_OP_TYPES)
        got = sl1.inference_session(model, custom_op=False).run(None, {"x": x.numpy(), "y": y.numpy()})
        want = [F.smooth_l1_loss(x.double(), y.double(), reduction="sum"), F.huber_loss(x.double(), y.double(),
                                                                                       reduction="sum")]
        for g, w in zip(got, want):
            assert oracle.compare(g, w.numpy(), dtype="float32", reduction="sum").ok


@pytest.mark.parametrize("delta", [0.0, -1.0, float("nan"), float("inf")])
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
def test_bad_delta_is_a_clear_error(dynamo, delta):
    """torch refuses delta <= 0 and NaN while tracing; the node refuses inf (torch takes it).
    Either way: one ValueError that names delta, torch's own error kept as the cause."""
    x, y = torch.randn(4, 3), torch.randn(4, 3)
    with warnings.catch_warnings(), pytest.raises(ValueError, match=r"^delta must be") as info:
        warnings.simplefilter("ignore")
        sl1.export(torch.nn.HuberLoss(delta=delta), (x, y), dynamo=dynamo)
    assert "delta" in str(info.value)
    if not delta == float("inf"):
        assert "non-positive values for delta" in str(info.value)  # torch's words, quoted


def test_negative_beta_is_a_clear_error():
    x, y = torch.randn(4, 3), torch.randn(4, 3)
    for dynamo in (True, False):
        with warnings.catch_warnings(), pytest.raises(ValueError, match=r"^beta must be"):
            warnings.simplefilter("ignore")
            sl1.export(torch.nn.SmoothL1Loss(beta=-0.5), (x, y), dynamo=dynamo)
