"""``onnx-smoothl1 export | fuse | inline`` as a user runs them (subprocess, module form)."""

from __future__ import annotations

import textwrap
import warnings

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from _no_f64 import float64_free  # noqa: E402
from conftest import run_cli  # noqa: E402

import onnx_smoothl1 as sl1  # noqa: E402
from onnx_smoothl1 import exporter, oracle, spec  # noqa: E402

USER_CODE = textwrap.dedent(
    """
    import torch

    class Regressor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Linear(3, 1)
            self.loss = torch.nn.HuberLoss(delta=0.5)

        def forward(self, x, y):
            return self.loss(self.net(x), y)

    def make():
        return Regressor()

    def make_with_args():
        return Regressor(), (torch.randn(4, 3), torch.randn(4, 1))

    def plain_loss():
        return torch.nn.SmoothL1Loss(reduction="sum", beta=0.5)
    """
)


@pytest.fixture
def user_module(tmp_path):
    path = tmp_path / "usermodels.py"
    path.write_text(USER_CODE)
    return path


def test_export_from_a_file_then_run(user_module, tmp_path):
    out = tmp_path / "reg.onnx"
    proc = run_cli("export", f"{user_module}:make", "--args-shape", "8,3", "--args-shape", "8,1",
                   "--dynamic-batch", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    # the loss-node count, labelled by type (a HuberLoss used to be counted as "SmoothL1Loss")
    assert "1 HuberLoss node(s)" in proc.stdout and "SmoothL1Loss" not in proc.stdout, proc.stdout
    model = onnx.load(str(out))
    assert exporter.count_loss_nodes(model) == 1 and model.functions
    # nn.HuberLoss(delta=0.5) is its own node, with its function (float32: no float64 in it).
    assert [n.op_type for n in model.graph.node if spec.is_loss_node(n)] == [spec.HUBER_OP_TYPE]
    assert [f.name for f in model.functions] == [spec.HUBER_OP_TYPE]
    assert float64_free(model) == []
    x, y = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32), np.zeros((5, 1), np.float32)
    assert sl1.inference_session(model, custom_op=False).run(None, {"x": x, "y": y})[0].shape == ()


def _main(*argv: str) -> int:
    from onnx_smoothl1.cli import main

    return main(list(argv))


@pytest.mark.parametrize("extra", [["--legacy"], ["--mode", "custom_op"], ["--mode", "inline", "--opset", "18"]])
def test_export_variants_by_module_name(user_module, tmp_path, extra, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(user_module.parent))
    out = tmp_path / "m.onnx"
    assert _main("export", "usermodels:make_with_args", *extra, "-o", str(out)) == 0, capsys.readouterr()
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert float64_free(model) == []
    if "inline" in extra:
        assert all(o.domain != spec.DOMAIN for o in model.opset_import)


def test_export_fuse_inline_round_trip(user_module, tmp_path):
    import torch

    # A model from plain torch.onnx.export, fused, then inlined again.
    plain = tmp_path / "plain.onnx"
    x, y = torch.randn(6, 3), torch.randn(6, 3)
    torch.onnx.export(torch.nn.SmoothL1Loss(reduction="sum", beta=0.5), (x, y), str(plain), dynamo=True,
                      verbose=False, input_names=["input", "target"])
    fused = tmp_path / "fused.onnx"
    proc = run_cli("fuse", str(plain), str(fused))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("fused 1 loss(es)")
    inlined = tmp_path / "inlined.onnx"
    proc = run_cli("inline", str(fused), str(inlined))
    assert proc.returncode == 0, proc.stderr
    ref = oracle.reference(x.numpy(), y.numpy(), beta=0.5, reduction="sum")
    for path in (fused, inlined):
        assert float64_free(onnx.load(str(path))) == []
        out = sl1.inference_session(str(path), custom_op=False).run(None, {"input": x.numpy(), "target": y.numpy()})[0]
        assert oracle.compare(out, ref, dtype="float32", reduction="sum",
                              torch_own=torch.nn.functional.smooth_l1_loss(x, y, reduction="sum", beta=0.5).numpy()).ok


@pytest.mark.parametrize(
    "args,message",
    [
        (["export", "nocolon", "-o", "x.onnx"], "MODULE:FACTORY"),
        (["export", "no_such_module_xyz:make", "--args-shape", "3", "-o", "x.onnx"], "cannot import"),
        (["export", "{user}:missing", "--args-shape", "3", "-o", "x.onnx"], "no attribute"),
        (["export", "{user}:make", "--args-shape", "8,a", "-o", "x.onnx"], "--args-shape"),
        (["export", "{user}:make", "-o", "x.onnx"], "--args-shape"),
        (["export", "{user}:make", "--args-shape", "8,3", "-o", "x.onnx"], "missing a required argument"),
        (["export", "{user}:make", "--args-shape", "1,3", "--args-shape", "1,1", "--dynamic-batch",
          "-o", "x.onnx"], "batch size >= 2"),
        (["export", "{user}:plain_loss", "--args-shape", "3", "--args-shape", "3", "--mode", "fused",
          "-o", "x.onnx"], "invalid choice"),
        (["fuse", "missing.onnx", "out.onnx"], "no such file"),
        (["inline", "{user}", "out.onnx"], "not a readable ONNX model"),
    ],
)
def test_user_mistakes_exit_2(user_module, tmp_path, args, message, capsys):
    args = [a.replace("{user}", str(user_module)) for a in args]
    args = [str(tmp_path / a) if a.endswith(".onnx") and a != str(user_module) else a for a in args]
    try:
        code = _main(*args)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err


def test_user_mistake_in_a_subprocess_has_no_traceback(user_module, tmp_path):
    """Under ``python -m onnx_smoothl1.cli`` too (cli's UsageError is then __main__'s)."""
    for args in (["export", f"{user_module}:missing", "--args-shape", "3", "-o", str(tmp_path / "x.onnx")],
                 ["fuse", str(tmp_path / "missing.onnx"), str(tmp_path / "out.onnx")]):
        proc = run_cli(*args)
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_export_dtype_float64_converts_the_module(user_module, tmp_path):
    """--dtype float64: the example inputs and the module's weights (it used to fail with
    "Gemm ... B has inconsistent type": float64 inputs, float32 weights)."""
    out = tmp_path / "f64.onnx"
    proc = run_cli("export", f"{user_module}:make", "--args-shape", "8,3", "--args-shape", "8,1",
                   "--dtype", "float64", "-o", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    model = onnx.load(str(out))
    assert {i.type.tensor_type.elem_type for i in model.graph.input} == {onnx.TensorProto.DOUBLE}
    assert all(t.data_type == onnx.TensorProto.DOUBLE for t in model.graph.initializer), \
        [t.data_type for t in model.graph.initializer]


HAND_WRITTEN = textwrap.dedent(
    """
    import torch

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(3, 1)

        def forward(self, x, y):
            d = (self.net(x) - y).abs()
            return torch.where(d < 1.0, 0.5 * d * d, d - 0.5).mean()

    def make():
        return M()
    """
)


def test_export_reports_a_recognised_hand_written_loss(tmp_path):
    src = tmp_path / "hand.py"
    src.write_text(HAND_WRITTEN)
    args = ["export", f"{src}:make", "--args-shape", "8,3", "--args-shape", "8,1"]
    proc = run_cli(*args, "-o", str(tmp_path / "a.onnx"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 HuberLoss node(s) (1 recognised in plain ops: HuberLoss(delta=1, reduction=mean))" in proc.stdout
    proc = run_cli(*args, "--no-fuse", "-o", str(tmp_path / "b.onnx"))
    assert proc.returncode == 0 and "no loss nodes" in proc.stdout, proc.stdout + proc.stderr[-2000:]


def test_fuse_names_what_it_recognised(tmp_path):
    """`fuse` on a legacy (no value_info) export of a hand-written mmdet-style loss and a
    summed L1 of the same difference: both named, with parameter and reduction."""

    class Hand(torch.nn.Module):
        def forward(self, p, t):
            n = (p - t).abs()
            return torch.where(n < 0.5, 0.5 * n * n / 0.5, n - 0.25).mean() + (p - t).abs().sum()

    plain = tmp_path / "plain.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Hand(), (torch.randn(4, 3), torch.randn(4, 3)), str(plain), dynamo=False)
    proc = run_cli("fuse", str(plain), str(tmp_path / "fused.onnx"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(
        "fused 2 loss(es): SmoothL1Loss(beta=0.5, reduction=mean); SmoothL1Loss(beta=0, reduction=sum);"), proc.stdout
