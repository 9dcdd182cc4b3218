"""``onnx-smoothl1 bench`` / benchmarks/report.py: the report from benchmark JSON files.

No benchmark runs here (that is ``make bench``); the report is built from small synthetic
results shaped like benchmarks/cpu.py's and benchmarks/gpu.py's output.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]


def _report_module():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cpu_rows():
    rows = []
    for log2n in (4, 24):
        for reduction in ("mean", "sum", "none"):
            fused, function, torch, read, abs_ = 1e-3 * log2n, 25e-3 * log2n, 5e-3 * log2n, 0.9e-3 * log2n, 1e-3
            rows.append({
                "log2n": log2n, "n": 2**log2n, "reduction": reduction, "fused": fused,
                "function": function, "torch": torch, "read": read,
                "abs": abs_ if log2n == 4 else None, "fused_over_read": fused / read,
                "function_over_fused": function / fused, "torch_over_fused": torch / fused,
                "fused_over_abs": fused / abs_ if log2n == 4 else None,
            })
    return rows


def _gpu_rows():
    rows = []
    for dtype in ("float32", "float16"):
        for reduction in ("mean", "none"):
            rows.append({
                "gpu": "NVIDIA H200", "dtype": dtype, "reduction": reduction, "log2n": 28,
                "n": 2**28, "op_s": 6e-4, "function_s": 5e-3, "torch_s": 1e-3, "copy_s": 1e-3,
                "op_eff_Bps": 3.7e12, "copy_Bps": 4.2e12, "op_over_copy": 3.7 / 4.2,
                "torch_over_op": 1.7, "function_over_op": 8.0,
            })
    return rows


def test_report_from_cpu_and_gpu_results(tmp_path):
    report = _report_module()
    (tmp_path / "cpu_bench.json").write_text(json.dumps({
        "meta": {"onnxruntime": "1.30.0", "torch": "2.13.0", "numpy": "2.4", "threads": 2,
                 "beta": 1.0, "command": "python benchmarks/cpu.py",
                 "loadavg_start": [1.0, 1, 1], "loadavg_end": [1.5, 1, 1]},
        "rows": _cpu_rows(),
    }))
    (tmp_path / "gpu_bench.json").write_text(json.dumps(_gpu_rows()))
    text = report.build_report(tmp_path)
    assert text.startswith("# SmoothL1Loss benchmark report")
    assert "function path / fused = **25.00x**" in text
    assert "torch / fused = **5.00x**" in text
    assert "fused / one-node Abs graph = **4.00x**" in text
    assert "onnxruntime 1.30.0" in text and "load average 1.0" in text
    assert report.cpu_name() in text  # the machine, described when cpu.py recorded none
    assert "NVIDIA H200" in text and "3.70 TB/s" in text and "88%" in text
    assert "| 24 | mean |" in text and "| float16 | none | 28 |" in text


def test_report_without_results_says_how_to_get_them(tmp_path):
    text = _report_module().build_report(tmp_path)
    assert "No benchmark results yet" in text
    assert "make gpu-check" in text


def test_cli_bench_from_results(tmp_path):
    # A copy of the checkout's benchmarks/ (with synthetic results), so nothing real is touched.
    root = tmp_path / "checkout"
    shutil.copytree(ROOT / "benchmarks", root / "benchmarks", ignore=shutil.ignore_patterns("results"))
    results = root / "benchmarks" / "results"
    results.mkdir()
    (results / "cpu_bench.json").write_text(json.dumps({"meta": {}, "rows": _cpu_rows()}))
    proc = run_cli("bench", "--from-results", "--root", str(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (results / "REPORT.md").read_text().count("| mean |") == 2
    proc = run_cli("bench", "--from-results", "--root", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "benchmarks" in proc.stderr
    # --output DIR elsewhere: the report goes inside it, with the plots it links
    (results / "cpu_bench.png").write_bytes(b"\x89PNG fake")
    out_dir = tmp_path / "elsewhere"
    out_dir.mkdir()
    proc = run_cli("bench", "--from-results", "--root", str(root), "--output", str(out_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = (out_dir / "REPORT.md").read_text()
    assert "](cpu_bench.png)" in report and (out_dir / "cpu_bench.png").read_bytes() == b"\x89PNG fake"


def test_report_gpu_rows_name_the_loss_and_compare_huber(tmp_path):
    """gpu.py's rows carry the loss; the headline gives HuberLoss against SmoothL1Loss and the
    machine file's driver line (nvidia-smi) and CUDA version."""
    rows = _gpu_rows()
    huber = [{**r, "loss": "huber", "op_eff_Bps": r["op_eff_Bps"] * 0.99} for r in rows]
    (tmp_path / "gpu_bench.json").write_text(json.dumps([{**r, "loss": "smooth_l1"} for r in rows] + huber))
    (tmp_path / "gpu_bench.machine.json").write_text(json.dumps({
        "onnxruntime": "1.30.0", "torch": "2.11.0+cu130", "torch_cuda": "13.0",
        "nvidia-smi": "NVIDIA H200, 580.159.04, 143771 MiB, 1980 MHz, 3201 MHz"}))
    text = _report_module().build_report(tmp_path)
    assert "HuberLoss float32 'mean'" in text and "-1.0% against SmoothL1Loss" in text
    assert "| huber | float16 | none | 28 |" in text and "| smooth_l1 | float16 | none | 28 |" in text
    assert "580.159.04" in text and "(CUDA 13.0)" in text


def test_text_table_fits_a_terminal(monkeypatch):
    """`parity` on a terminal: every line fits its width (cells cut with "~"); without a width
    (a log) the lines stay whole."""
    from onnx_smoothl1 import parity

    monkeypatch.setenv(parity.DISABLE_ENV, "ort-cuda")  # a long "unsupported" reason, GPU or not
    report = parity.run_grid(["float32", "float64"], shapes=["rank0"], betas=[1.0], deltas=[1.0],
                             paths=["torch", "ort-function", "ort-cuda"])
    wide = report.text()
    assert max(len(line) for line in wide.splitlines()) > 80
    narrow = report.text(width=80)
    assert all(len(line) <= 80 for line in narrow.splitlines()), narrow
    assert "~" in narrow and "--report PATH.md has every reason in full" in narrow
