"""The cross-runtime parity runner (``onnx_smoothl1.parity`` / ``onnx-smoothl1 parity``).

Runs the quick grid once through every path available here (module-scoped), and checks the
report, the CLI (``--report``, ``--model``, ``--inputs``), and that unavailable paths are
reported as unsupported with their reason rather than failing.
"""

from __future__ import annotations

import json
import time

import numpy as np
import onnx
import pytest
from conftest import run_cli
from onnx import TensorProto, helper

import onnx_smoothl1 as sl1
from onnx_smoothl1 import parity
from onnx_smoothl1.model import ir_version_for


@pytest.fixture(scope="module")
def quick_report() -> parity.Report:
    return parity.run_grid(quick=True)


def test_quick_grid_passes_for_every_available_path(quick_report):
    assert quick_report.ok, quick_report.text()
    # The paths that are always available in the test environment really ran and passed.
    for path in ("ort-function", "onnx-reference"):
        for dtype in parity.DTYPES:
            cell = quick_report.cells[path, dtype]
            assert cell.status == parity.PASS, (path, dtype, cell.summary())
            assert cell.count(parity.PASS) == len(cell.results)


def test_every_path_is_in_the_matrix_with_a_verdict_or_reason(quick_report):
    assert quick_report.paths == list(parity.PATHS)
    for (path, dtype), cell in quick_report.cells.items():
        assert len(cell.results) == len(quick_report.cases) // len(parity.DTYPES)
        if cell.status == parity.UNSUPPORTED:
            assert cell.reasons(), (path, dtype)
            assert all(reason.strip() for reason in cell.reasons())
        for r in cell.results:
            if r.status == parity.UNSUPPORTED:
                assert r.detail, (path, dtype, r.case.label)


def test_kernel_path_runs_when_the_library_is_built(quick_report):
    cell = quick_report.cells["ort-kernel", "float32"]
    if sl1.runtime._library_candidate()[0] is None:
        assert cell.status == parity.UNSUPPORTED
        assert "library" in next(iter(cell.reasons()))
    else:
        assert cell.status == parity.PASS, cell.summary()


def test_python_op_refuses_half_types_as_unsupported(quick_report):
    if parity.PythonOpPath().unavailable is not None:
        pytest.skip("Python op not available here")
    for dtype in ("float16", "bfloat16"):
        cell = quick_report.cells["python-op", dtype]
        assert cell.status == parity.UNSUPPORTED
        assert dtype in next(iter(cell.reasons()))
    assert quick_report.cells["python-op", "float32"].status == parity.PASS


def test_grid_cases_cover_the_spec_corners():
    cases = parity.grid()
    shapes = {parity.SHAPES[c.shape] for c in cases}
    assert ((), ()) in shapes  # rank 0
    assert any(0 in sx for sx, _ in shapes)  # empty
    assert any(sx != sy for sx, sy in shapes)  # broadcasting
    assert {c.beta for c in cases} >= {0.0, 1.0}
    assert {c.reduction for c in cases} == set(sl1.REDUCTIONS)
    assert {c.dtype for c in cases} == set(parity.DTYPES)
    # Documented size (docs/parity.md): 9 shapes x 4 dtypes x (4 betas of SmoothL1Loss +
    # 3 deltas of HuberLoss) x 3 reductions.
    assert len(cases) == 432 + 324
    huber = [c for c in cases if c.loss == "huber"]
    assert {c.beta for c in huber} == {0.35, 1.0, 2.5} and len(huber) == 324
    assert {(c.shape, c.dtype, c.reduction) for c in huber} == {
        (c.shape, c.dtype, c.reduction) for c in cases if c.loss == "smooth_l1"}
    assert len({c.label for c in cases}) == len(cases) == len({c.name for c in cases})
    x, y = parity.make_inputs(parity.Case("nonfinite", "float32", 1.0, "none"))
    assert np.isnan(x).any() and np.isinf(x).any() and np.isnan(y).any()


def test_huber_cases_have_readable_labels_and_run_everywhere(quick_report):
    case = parity.Case("broadcast", "float32", 0.35, "mean", "huber")
    assert case.label == "broadcast/float32/huber delta=0.35/mean"
    assert case.name == "test_huber_broadcast_float32_delta0p35_mean"
    assert case.op_type == "HuberLoss" and case.param_name == "delta"
    smooth = parity.Case("broadcast", "float32", 0.35, "mean")
    assert smooth.label == "broadcast/float32/beta=0.35/mean" and smooth.key != case.key
    huber = [c for c in quick_report.cases if c.loss == "huber"]
    assert {c.shape for c in huber} == set(parity.QUICK_HUBER_SHAPES) and len(huber) == 48
    for (path, dtype), cell in quick_report.cells.items():
        results = [r for r in cell.results if r.case.loss == "huber"]
        assert len(results) == 12, (path, dtype)
        if cell.count(parity.PASS) == len(cell.results):
            # A path that runs every SmoothL1Loss case runs every HuberLoss case too.
            assert all(r.status == parity.PASS for r in results), (path, dtype)
    assert "kernel (the ORT profile shows the fused HuberLoss node)" in quick_report.ran["ort-kernel"] or (
        quick_report.cells["ort-kernel", "float32"].status != parity.PASS)


def test_grid_rejects_bad_losses_and_deltas():
    with pytest.raises(ValueError, match="losses"):
        parity.grid(losses=["l2"])
    with pytest.raises(ValueError, match="losses"):
        parity.grid(losses=[])
    with pytest.raises(ValueError, match="deltas"):
        parity.grid(deltas=[0.0])
    assert {c.loss for c in parity.grid(losses=["huber"], quick=True)} == {"huber"}


def test_cli_parity_losses_option():
    proc = run_cli("parity", "--quick", "--dtypes", "float64", "--paths", "torch", "onnx-reference",
                   "--losses", "huber", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "parity grid: 12 cases x 2 paths" in proc.stdout
    proc = run_cli("parity", "--losses", "l2")
    assert proc.returncode == 2 and "--losses" in proc.stderr


def test_report_markdown_and_json(quick_report):
    md = quick_report.markdown()
    assert md.startswith("# SmoothL1Loss / HuberLoss parity report")
    assert "SmoothL1Loss (shapes {" in md and "HuberLoss (shapes {" in md and "x delta {0.35}" in md
    assert "| path | float16 | bfloat16 | float32 | float64 |" in md
    for path in parity.PATHS:
        assert f"| {path} |" in md
    assert "every supported cell passes" in md
    data = quick_report.to_json()
    assert data["ok"] is True
    assert data["losses"] == {"smooth_l1": 120, "huber": 48}
    assert any("/huber delta=0.35/" in k for k in data["verdicts"])
    json.dumps(data, default=float)


def test_cli_parity_writes_markdown_report(tmp_path):
    report = tmp_path / "parity.md"
    out = tmp_path / "parity.json"
    proc = run_cli(
        "parity", "--quick", "--dtypes", "float32", "--paths", "torch", "ort-function",
        "onnx-reference", "--report", str(report), "--json", str(out),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: every supported cell passes" in proc.stdout
    text = report.read_text()
    assert "| ort-function | PASS" in text and "| float32 |" in text
    assert json.loads(out.read_text())["ok"] is True


def test_cli_parity_rejects_unknown_names():
    proc = run_cli("parity", "--paths", "nope")
    assert proc.returncode == 2 and "unknown" in proc.stderr
    proc = run_cli("parity", "--dtypes", "int32")
    assert proc.returncode == 2 and "dtypes" in proc.stderr


def test_unavailable_paths_are_reported_with_reasons(monkeypatch):
    monkeypatch.setenv(parity.DISABLE_ENV, "openvino,tract")
    monkeypatch.setenv(sl1.runtime.LIBRARY_ENV, "/nonexistent/libonnx_smoothl1_ops.so")
    report = parity.run_grid(
        ["float32"], shapes=["odd"], betas=[1.0], deltas=[0.35],
        paths=["ort-function", "ort-kernel", "openvino", "tract"],
    )
    assert report.ok
    assert report.cells["ort-function", "float32"].status == parity.PASS
    for path in ("openvino", "tract"):
        cell = report.cells[path, "float32"]
        assert cell.status == parity.UNSUPPORTED
        assert cell.reasons() == {f"disabled by {parity.DISABLE_ENV}": 6}
        assert f"unsupported: disabled by {parity.DISABLE_ENV}" in report.markdown()
    kernel = report.cells["ort-kernel", "float32"]
    assert kernel.status == parity.UNSUPPORTED
    assert "/nonexistent/" in next(iter(kernel.reasons()))


def test_missing_package_is_reported(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a)
    )
    assert parity.OpenVinoPath().unavailable == (
        "openvino is not installed (pip install 'onnx-smoothl1[runtimes]')"
    )


def test_failures_are_detected_and_exit_nonzero(monkeypatch):
    # A path that is off by 1% must fail the cell (the runner is not vacuous).
    class Broken(parity.OrtFunctionPath):
        name = "broken"

        def run_case(self, case, x, y):
            out = super().run_case(case, x, y)
            return (out.astype(np.float64) * 1.01).astype(out.dtype)

    monkeypatch.setitem(parity.PATHS, "broken", Broken)
    report = parity.run_grid(["float32"], shapes=["odd"], betas=[1.0], deltas=[0.35], paths=["broken"])
    assert not report.ok
    assert report.cells["broken", "float32"].status == parity.FAIL
    # HuberLoss cases are judged too: each of the 6 (both losses) fails.
    assert {r.case.loss for r in report.failures()} == {"smooth_l1", "huber"}
    assert len(report.failures()) == 6
    assert "FAILED" in report.text() and "## Failures" in report.markdown()


def test_runtime_errors_of_our_paths_are_failures(monkeypatch):
    class Raising(parity.OrtFunctionPath):
        name = "raising"

        def run_case(self, case, x, y):
            raise RuntimeError("boom")

    monkeypatch.setitem(parity.PATHS, "raising", Raising)
    report = parity.run_grid(["float64"], shapes=["rank0"], betas=[1.0], deltas=[1.0], paths=["raising"])
    assert not report.ok
    assert report.failures()[0].detail == "error: boom"


def test_an_interrupted_run_stops_the_worker_threads(monkeypatch):
    """Ctrl-C in the runner's loop ends the paths driven from threads too (no waiting for them
    to finish the grid)."""
    seen: list[str] = []
    ran: list[str] = []

    class Interrupting(parity.TorchPath):
        name = "interrupting"

        def run_case(self, case, x, y):
            ran.append(case.label)
            if len(ran) == 3:
                raise KeyboardInterrupt
            return super().run_case(case, x, y)

    class Threaded(parity.TorchPath):
        name = "threaded"
        in_worker = True

        def run_case(self, case, x, y):
            seen.append(case.label)
            time.sleep(0.05)
            return super().run_case(case, x, y)

    pytest.importorskip("torch")
    monkeypatch.setitem(parity.PATHS, "interrupting", Interrupting)
    monkeypatch.setitem(parity.PATHS, "threaded", Threaded)
    cases = parity.grid(["float64"])
    with pytest.raises(KeyboardInterrupt):
        parity.run_grid(["float64"], paths=["interrupting", "threaded"])
    assert len(ran) == 3 and len(seen) < len(cases) // 2


def test_crashing_worker_is_contained():
    # The tract worker runs in a subprocess: a process abort there is reported, not fatal.
    worker = parity.Worker("tract")
    try:
        worker._proc.kill()
        status, detail = worker.call(("run", b"", [], []))
    finally:
        worker.close()
    assert status == "crash" and "exit code" in detail


def _two_node_model(path) -> None:
    dt = TensorProto.FLOAT
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["pred", "scale"], ["scaled"]),
            sl1.make_node("scaled", "target", "loss_a", beta=0.5, reduction="mean", name="a"),
            sl1.make_node("pred", "target", "loss_b", beta=0.0, reduction="none", name="b"),
        ],
        "two_losses",
        [
            helper.make_tensor_value_info("pred", dt, ["batch", 4]),
            helper.make_tensor_value_info("target", dt, ["batch", 4]),
            helper.make_tensor_value_info("scale", dt, []),
        ],
        [
            helper.make_tensor_value_info("loss_a", dt, []),
            helper.make_tensor_value_info("loss_b", dt, ["batch", 4]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    sl1.attach_function(model)
    model.ir_version = ir_version_for(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def test_model_api_on_a_two_node_model(tmp_path):
    path = tmp_path / "two.onnx"
    _two_node_model(path)
    result = parity.run_model_file(path)
    assert result.ok, result.text()
    ran = {p: r for p, r in result.results.items() if not isinstance(r, str)}
    assert {"ort-function", "onnx-reference"} <= set(ran)
    for outputs in ran.values():
        assert outputs[0].shape == () and outputs[1].shape == (parity.SYMBOLIC_DIM, 4)
    assert result.largest is not None and result.largest[1] <= 1e-5
    assert result.results["torch"].startswith("unsupported")
    assert not result.vs_torch  # two nodes: no torch equivalent


def test_cli_model_with_inputs(tmp_path, tmp_npy):
    path = tmp_path / "two.onnx"
    _two_node_model(path)
    rng = np.random.default_rng(1)
    pred = tmp_npy("pred.npy", rng.standard_normal((5, 4)).astype(np.float32))
    scale = tmp_npy("scale.npy", np.float32(3.0))
    report = tmp_path / "model.md"
    proc = run_cli(
        "parity", "--model", str(path), "--inputs", f"pred={pred}", f"scale={scale}",
        "--report", str(report),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "largest difference between paths" in proc.stdout
    # The batch dimension bound by the given input reaches the random one.
    assert "float32[5, 4]" in proc.stdout
    assert "| ort-function | ran:" in report.read_text()


def test_cli_model_bad_inputs(tmp_path, tmp_npy):
    path = tmp_path / "two.onnx"
    _two_node_model(path)
    bad = tmp_npy("bad.npy", np.zeros((5, 4), np.float64))
    proc = run_cli("parity", "--model", str(path), "--inputs", f"pred={bad}")
    assert proc.returncode == 2 and "float32" in proc.stderr
    proc = run_cli("parity", "--model", str(path), "--inputs", f"nope={bad}")
    assert proc.returncode == 2 and "not model inputs" in proc.stderr
    proc = run_cli("parity", "--model", str(path), "--inputs", "pred")
    assert proc.returncode == 2 and "NAME=FILE.npy" in proc.stderr
    no_node = tmp_path / "plain.onnx"
    onnx.save(
        helper.make_model(
            helper.make_graph(
                [helper.make_node("Abs", ["x"], ["y"])], "g",
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
            ),
            opset_imports=[helper.make_opsetid("", 18)],
            ir_version=9,
        ),
        str(no_node),
    )
    proc = run_cli("parity", "--model", str(no_node))
    assert proc.returncode == 2 and "no onnx_smoothl1::SmoothL1Loss or onnx_smoothl1::HuberLoss node" in proc.stderr


def test_cuda_path_detects_a_node_not_placed_on_cuda(monkeypatch):
    # Pretend onnxruntime has the CUDA EP: ORT then falls back to CPU for the session, the
    # profile shows SmoothL1Loss on CPUExecutionProvider, and every case of that dtype is
    # reported unsupported (not silently passed on CPU).
    import onnxruntime as ort

    if sl1.runtime._library_candidate()[0] is None:
        pytest.skip("custom-op library not built")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("real CUDA EP present")
    real = ort.get_available_providers
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real()])
    report = parity.run_grid(["float32"], shapes=["rank0", "odd"], betas=[1.0], deltas=[0.35], paths=["ort-cuda"])
    cell = report.cells["ort-cuda", "float32"]
    assert cell.status == parity.UNSUPPORTED, cell.summary()
    assert cell.count(parity.UNSUPPORTED) == len(cell.results) == 12
    # Each loss node's placement is checked on its own (the HuberLoss kernel too).
    reasons = set(cell.reasons())
    assert all("not CUDA" in r for r in reasons)
    assert any("HuberLoss" in r for r in reasons) and any("SmoothL1Loss" in r for r in reasons)


@pytest.mark.parametrize(
    "model",
    [sl1.make_model(beta=0.5, reduction="sum", dtype="float64", rank=2),
     sl1.make_huber_model(delta=0.35, reduction="none", dtype="float64", rank=2)],
    ids=["smooth_l1", "huber"],
)
def test_single_node_model_is_compared_with_torch(tmp_path, model):
    path = tmp_path / "one.onnx"
    onnx.save(model, str(path))
    result = parity.run_model_file(path, {"input": np.random.default_rng(0).standard_normal((6, 7))})
    assert result.ok, result.text()
    assert result.vs_torch["ort-function"].startswith("pass")
    assert result.vs_torch["onnx-reference"].startswith("pass")
    assert result.results["torch"].startswith("reference")


def test_hanging_worker_is_killed(monkeypatch):
    worker = parity.Worker("tract", timeout=0.5)
    try:
        # The worker reads a length-prefixed request; a header promising more bytes than we
        # send leaves it waiting forever, like a runtime that hangs.
        worker._proc.stdin.write((10**6).to_bytes(8, "little"))
        worker._proc.stdin.flush()
        status, detail = worker.call(("run", b"", [], []))
    finally:
        worker.close()
    assert status == "crash" and "killed" in detail


# --------------------------------------------------------------------------------------
# Stable verdicts
# --------------------------------------------------------------------------------------


def test_two_runs_give_the_same_verdicts(quick_report):
    # Every path again, the same quick grid: not one case may change its verdict.
    again = parity.run_grid(quick=True)
    first, second = quick_report.verdicts(), again.verdicts()
    assert first.keys() == second.keys()
    changed = {k: (first[k], second[k]) for k in first if first[k] != second[k]}
    assert not changed, changed
    table = {k: c.status for k, c in quick_report.cells.items()}
    assert table == {k: c.status for k, c in again.cells.items()}


def _limited_path(scale_ulps: float):
    """The function path with a declared float32 limit, its results moved by ``scale_ulps``
    ulps: what one runtime computes on two different machines."""
    from onnx_smoothl1.parity.limits import KnownLimit, within_ulps

    class Limited(parity.OrtFunctionPath):
        name = f"limited{scale_ulps:g}".replace(".", "p")
        limits = (KnownLimit("float32", "a test limit", "within 16 ulps", within_ulps(16),
                             lambda case: case.reduction == "mean"),)

        def run_case(self, case, x, y):
            out = np.asarray(super().run_case(case, x, y))
            if self.limit_for(case) is None or not scale_ulps:
                return out  # outside the limit's scope the runtime is right
            return (out + np.float32(scale_ulps) * np.spacing(out)).astype(out.dtype)

    return Limited


def test_a_known_limit_gives_the_same_verdict_whether_or_not_it_shows(monkeypatch):
    reports = []
    for ulps in (0.0, 8.0):  # within SPEC on one machine, 8 ulps off (outside SPEC) on another
        cls = _limited_path(ulps)
        monkeypatch.setitem(parity.PATHS, cls.name, cls)
        report = parity.run_grid(["float32"], shapes=["odd", "nonfinite"], betas=[1.0], paths=[cls.name],
                                 losses=["smooth_l1"])
        reports.append({k.split("/", 1)[1]: v for k, v in report.verdicts().items()})
        cell = report.cells[cls.name, "float32"]
        (reason,) = cell.reasons()
        assert reason.startswith("a test limit (known limit") and "measured worst" in reason
        # odd: moved off SPEC by the 8 ulps; nonfinite: its mean is NaN either way
        assert f"within SPEC on this machine: {2 if ulps == 0 else 1}/2" in reason
    assert reports[0] == reports[1]
    assert sorted(set(reports[0].values())) == ["pass", "unsupported"]


def test_a_result_beyond_the_known_limit_fails(monkeypatch):
    cls = _limited_path(40.0)  # beyond the limit's 16 ulps: a real failure, never hidden
    monkeypatch.setitem(parity.PATHS, cls.name, cls)
    report = parity.run_grid(["float32"], shapes=["odd"], betas=[1.0], paths=[cls.name],
                             losses=["smooth_l1"])
    assert not report.ok
    (failure,) = [r for r in report.failures() if r.case.reduction == "mean"]
    assert "beyond the known limit (a test limit)" in failure.detail


def test_openvino_bfloat16_limit_is_scoped_by_the_case_alone():
    # The bfloat16 truncation limit covers every bfloat16 case, so a CPU with AVX512_BF16
    # (correct rounding) and one without (truncation) report the same verdicts.
    case = parity.Case("odd", "bfloat16", 0.3, "mean")
    limit = parity.OpenVinoPath.limit_for(case)
    assert limit is not None and "truncation" in limit.reason
    assert all(parity.OpenVinoPath.limit_for(c) is limit for c in parity.grid(["bfloat16"]))
    assert parity.OpenVinoPath.limit_for(parity.Case("odd", "float16", 0.3, "mean")) is None
    # The reciprocal-division limit: only 'none' with a beta whose reciprocal is inexact.
    # HuberLoss has no division: none of its cases is in that scope (its grid cases, delta
    # 0.35 'none' included, pass SPEC on OpenVINO and tract as they are).
    for path in (parity.TractPath, parity.OpenVinoPath, parity.OrtOpenVinoEpPath):
        scoped = {(c.loss, c.beta, c.reduction) for c in parity.grid(["float32"]) if path.limit_for(c)}
        assert scoped == {("smooth_l1", 0.3, "none"), ("smooth_l1", 7.5, "none")}, path.name
    # The float64 and bfloat16 limits (OpenVINO's arithmetic) hold for HuberLoss too.
    assert parity.OpenVinoPath.limit_for(parity.Case("odd", "float64", 0.35, "sum", "huber")) is not None
    assert parity.OpenVinoPath.limit_for(parity.Case("odd", "bfloat16", 0.35, "sum", "huber")) is not None


def test_openvino_config_is_pinned():
    config = parity.OpenVinoPath.CONFIG
    assert config["INFERENCE_PRECISION_HINT"] == "f32" and config["INFERENCE_NUM_THREADS"] == "1"
    assert config["EXECUTION_MODE_HINT"] == "ACCURACY"


@pytest.mark.parametrize(
    "flags, level",
    [
        ({"lm", "sse2", "cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"}, "x86-64-v2 (no avx512)"),
        ({"lm", "sse2", "cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3", "avx", "avx2", "bmi1",
          "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}, "x86-64-v3 (no avx512)"),
        ({"lm", "sse2", "cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3", "avx", "avx2", "bmi1",
          "bmi2", "f16c", "fma", "abm", "movbe", "xsave", "avx512f", "avx512bw", "avx512cd", "avx512dq",
          "avx512vl", "avx512_bf16"}, "x86-64-v4 + avx512_bf16"),
    ],
)
def test_isa_level(flags, level):
    assert parity.isa_level(flags) == level


def test_report_names_the_isa_and_what_ran(quick_report):
    assert quick_report.environment["isa"] == parity.isa_level()
    assert f"({parity.isa_level()})" in quick_report.text().splitlines()[0]
    assert "| isa " not in quick_report.markdown() and f"isa {parity.isa_level()}" in quick_report.markdown()
    assert quick_report.ran["ort-function"] == "function (inlined by ORT)"
    assert quick_report.to_json()["ran"] == quick_report.ran
    if quick_report.cells["ort-kernel", "float32"].status == parity.PASS:
        assert quick_report.ran["ort-kernel"].startswith("kernel")
    for path in ("openvino", "tract"):
        if quick_report.cells[path, "float32"].status == parity.PASS:
            assert quick_report.ran[path].startswith("inlined model")
    for path in ("ort-webgpu", "ort-openvino-ep"):
        if quick_report.cells[path, "float32"].status == parity.PASS:
            assert "ran the compute nodes" in quick_report.ran[path]
    assert "What ran: function (inlined by ORT)" in quick_report.markdown()


def test_compiled_paths_group_model_holds_both_losses():
    """Needs neither IREE nor TVM: the group model both compile (built once, here)."""
    from _compiled_paths import check_group_holds_both_losses

    check_group_holds_both_losses()
