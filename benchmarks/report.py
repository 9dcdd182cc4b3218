"""Benchmark report: runs benchmarks/cpu.py (and benchmarks/gpu.py on a CUDA machine) and
writes ``benchmarks/results/REPORT.md`` with the tables, the PNG plots, the machine (CPU /
GPU name), the library versions and the headline ratios.

    onnx-smoothl1 bench [--quick] [--no-cpu] [--gpu] [--from-results] [--output PATH.md]
    python benchmarks/report.py [same options]

``--from-results`` runs nothing and rebuilds the report from the JSON files already in
``benchmarks/results/`` (for example a ``gpu_bench.json`` brought back from a GPU machine by
``make gpu-check``). ``--quick`` is a smoke run (small sizes) written under
``build/bench-quick/`` so it never overwrites the real results.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- machine info
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    from importlib.metadata import PackageNotFoundError, version

    for name in ("onnxruntime", "onnxruntime-gpu", "onnx", "torch", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def machine_info() -> dict[str, object]:
    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        **_versions(),
    }


def cuda_available() -> tuple[bool, str]:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return False, f"onnxruntime not importable ({exc})"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False, f"onnxruntime {ort.__version__} has no CUDAExecutionProvider"
    try:
        import torch

        if not torch.cuda.is_available():
            return False, "torch sees no CUDA device"
    except ImportError:
        return False, "torch not importable"
    return True, ""


# ----------------------------------------------------------------------------- running
def _run(cmd: list[str], log: Path, *, quiet: bool = False) -> int:
    """Run a benchmark script, its output teed to ``log``. On a terminal (and not ``quiet``)
    its stderr goes straight to the terminal, so its progress bar is drawn there."""
    print("$ " + " ".join(cmd), flush=True)
    live = not quiet and sys.stderr.isatty()
    if quiet:
        cmd = [*cmd, "--quiet"]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=None if live else subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            f.write(line)
        return proc.wait()


# ----------------------------------------------------------------------------- formatting
def _t(v) -> str:
    if v is None or v != v:  # None or NaN
        return "-"
    return f"{v * 1e6:.1f} µs" if v < 1e-3 else f"{v * 1e3:.2f} ms"


def _x(v) -> str:
    return "-" if v is None or v != v else f"{v:.2f}x"


def _find(rows, **kw):
    return next((r for r in rows if all(r.get(k) == v for k, v in kw.items())), None)


def cpu_headline(rows: list[dict]) -> list[str]:
    lines = []
    r24 = _find(rows, log2n=24, reduction="mean")
    if r24:
        lines += [
            f"N = 2^24 float32 'mean': fused kernel {_t(r24['fused'])}, function path "
            f"{_t(r24['function'])}, torch {_t(r24['torch'])}, read limit (np.dot) {_t(r24['read'])}",
            f"- fused / read limit = **{_x(r24['fused_over_read'])}** (target <= 1.3x)",
            f"- function path / fused = **{_x(r24['function_over_fused'])}** (target >= 8x)",
            f"- torch / fused = **{_x(r24['torch_over_fused'])}** (target >= 2.3x)",
        ]
    for log2n, reduction, target in ((24, "mean", 1.0), (24, "none", 1.05), (4, "mean", 1.05),
                                     (4, "sum", 1.05), (4, "none", 1.05)):
        r = _find(rows, log2n=log2n, reduction=reduction)
        if r and r.get("function_over_plain") is not None:
            lines.append(
                f"- N = 2^{log2n} {reduction}: function path / plain torch.onnx export = "
                f"**{_x(r['function_over_plain'])}** ({_t(r['function'])} vs {_t(r.get('plain'))};"
                f" target <= {target:.2f}x)"
            )
    for log2n in (24, 26):
        r = _find(rows, log2n=log2n, reduction="mean")
        if r and r.get("accuracy"):
            acc = r["accuracy"]
            lines.append(
                f"- N = 2^{log2n} 'mean' relative error: function {acc['function']:.2e}, torch eager "
                f"{acc['torch']:.2e}, plain export {acc['plain']:.2e}, fused {acc['fused']:.2e}"
            )
    r4 = _find(rows, log2n=4, reduction="mean")
    if r4 and r4.get("fused_over_abs"):
        lines.append(
            f"- N = 16: fused / one-node Abs graph = **{_x(r4['fused_over_abs'])}** "
            f"({_t(r4['fused'])} vs {_t(r4['abs'])} per call; target <= 1.5x)"
        )
    if not r24:
        top = max((r["log2n"] for r in rows), default=None)
        r = _find(rows, log2n=top, reduction="mean") if top is not None else None
        if r:
            lines.append(
                f"N = 2^{top} 'mean' (largest measured): fused / read {_x(r['fused_over_read'])}, "
                f"function / fused {_x(r['function_over_fused'])}, torch / fused {_x(r['torch_over_fused'])}"
            )
    return lines


def cpu_table(rows: list[dict]) -> list[str]:
    out = [
        "| log2 N | reduction | fused | function | plain torch.onnx | torch | read (np.dot) | Abs node "
        "| fused/read | function/fused | function/plain | torch/fused |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: (["mean", "sum", "none"].index(r["reduction"]), r["log2n"])):
        out.append(
            f"| {r['log2n']} | {r['reduction']} | {_t(r['fused'])} | {_t(r['function'])} | "
            f"{_t(r.get('plain'))} | {_t(r['torch'])} | {_t(r['read'])} | {_t(r.get('abs'))} | "
            f"{_x(r['fused_over_read'])} | {_x(r['function_over_fused'])} | "
            f"{_x(r.get('function_over_plain'))} | {_x(r['torch_over_fused'])} |"
        )
    return out


def _loss(r: dict) -> str:
    """The row's loss (rows written before HuberLoss was benchmarked carry none)."""
    return r.get("loss", "smooth_l1")


def gpu_headline(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    top = max(r["log2n"] for r in rows)
    lines = [f"N = 2^{top} on {rows[0].get('gpu', 'the GPU')} (effective bandwidth against the "
             "same run's device-to-device copy of the same bytes):"]
    by_key = {(_loss(r), r["dtype"], r["reduction"]): r for r in rows if r["log2n"] == top}
    for (loss, dtype, reduction), r in by_key.items():
        label = f"{'HuberLoss' if loss == 'huber' else 'SmoothL1Loss'} {dtype}"
        versus = ""
        if loss == "huber" and ("smooth_l1", dtype, reduction) in by_key:
            ref = by_key[("smooth_l1", dtype, reduction)]["op_eff_Bps"]
            versus = f", {r['op_eff_Bps'] / ref - 1:+.1%} against SmoothL1Loss"
        if reduction == "mean":
            extra = f", torch / CUDA op = **{_x(r['torch_over_op'])}**" if dtype == "float32" else ""
            lines.append(
                f"- {label} 'mean': **{r['op_eff_Bps'] / 1e12:.2f} TB/s** effective input "
                f"bandwidth = **{r['op_over_copy']:.0%}** of the device copy "
                f"({r['copy_Bps'] / 1e12:.2f} TB/s){extra}{versus}"
            )
        elif reduction == "none":
            lines.append(
                f"- {label} 'none': {r['op_eff_Bps'] / 1e12:.2f} TB/s counting the output = "
                f"{r['op_over_copy']:.0%} of copy{versus}"
            )
    return lines


def gpu_table(rows: list[dict]) -> list[str]:
    out = [
        "| loss | dtype | reduction | log2 N | CUDA op | function (CUDA EP) | torch | copy | op TB/s | op / copy "
        "| torch / op | function / op |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {_loss(r)} | {r['dtype']} | {r['reduction']} | {r['log2n']} | {_t(r['op_s'])} | "
            f"{_t(r['function_s'])} | {_t(r['torch_s'])} | {_t(r['copy_s'])} | "
            f"{r['op_eff_Bps'] / 1e12:.2f} | {r['op_over_copy']:.0%} | {_x(r['torch_over_op'])} | "
            f"{_x(r['function_over_op'])} |"
        )
    return out


def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def build_report(results: Path, notes: list[str] | None = None) -> str:
    """REPORT.md text from the JSON (and PNG) files in ``results``."""
    cpu = _load(results / "cpu_bench.json")
    cpu_meta = _load(results / "cpu_bench.machine.json")
    if cpu is not None and cpu_meta is None:
        # cpu.py run directly (not through `bench`): it ran here, so describe this machine.
        cpu_meta = {**machine_info(), "note": "machine described when the report was built"}
    cpu_meta = cpu_meta or {}
    gpu = _load(results / "gpu_bench.json")
    gpu_meta = _load(results / "gpu_bench.machine.json") or {}
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# SmoothL1Loss benchmark report",
        "",
        f"Written by `onnx-smoothl1 bench` (benchmarks/report.py) on {now}, from the files in "
        "this directory. Timings are medians per call; see benchmarks/cpu.py and "
        "benchmarks/gpu.py for the method.",
        "",
    ]
    out += ["## Headline", ""]
    if cpu:
        out += cpu_headline(cpu["rows"])
        memory = cpu.get("meta", {}).get("memory")
        if memory:
            out.append(
                f"- N = 2^{memory['log2n']} float32 'mean', function path: peak RSS over the inputs "
                f"{memory['peak_over_inputs_bytes'] / 2**30:.2f} GiB = {memory['ratio']:.2f}x the "
                f"input bytes (target <= 2.5x)"
                + (f"; {memory['no_arena_ratio']:.2f}x with ORT's CPU arena disabled"
                   if "no_arena_ratio" in memory else "")
            )
    if gpu:
        out += [""] + gpu_headline(gpu)
    if not cpu and not gpu:
        out.append("No benchmark results yet (run `onnx-smoothl1 bench`).")
    out.append("")

    out += ["## CPU", ""]
    if cpu:
        meta = cpu.get("meta", {})
        cpu_label = cpu_meta.get("cpu", "not recorded")
        cores = cpu_meta.get("affinity") or cpu_meta.get("cpu_count")
        out += [
            f"- Machine: {cpu_label}" + (f", {cores} cores available" if cores else "")
            + (f"; {cpu_meta['platform']}" if cpu_meta.get("platform") else ""),
            f"- onnxruntime {meta.get('onnxruntime', '?')}, torch {meta.get('torch', '?')}, "
            f"numpy {meta.get('numpy', '?')}; {meta.get('threads', '?')} threads "
            f"(intra_op_num_threads / torch.set_num_threads); float32, beta {meta.get('beta', 1.0)}",
            f"- Command: `{meta.get('command', 'python benchmarks/cpu.py')}`"
            + (f"; load average {meta['loadavg_start'][0]:.1f} at start, {meta['loadavg_end'][0]:.1f} "
               "at end (the machine is shared: treat small differences with care)"
               if meta.get("loadavg_start") and meta.get("loadavg_end") else ""),
            "",
            "![CPU: time per call vs N, log-log](cpu_bench.png)" if (results / "cpu_bench.png").exists() else "",
            "",
            *cpu_table(cpu["rows"]),
            "",
        ]
    else:
        out += ["Not run here (no cpu_bench.json).", ""]

    out += ["## GPU", ""]
    if gpu:
        name = gpu[0].get("gpu", "?") if gpu else "?"
        versions = ", ".join(
            f"{k} {gpu_meta[k]}" for k in ("onnxruntime-gpu", "onnxruntime", "torch") if k in gpu_meta
        )
        if gpu_meta.get("torch_cuda"):
            versions += f" (CUDA {gpu_meta['torch_cuda']})"
        out += [
            f"- GPU: {name}" + (f"; host CPU {gpu_meta['cpu']}" if gpu_meta.get("cpu") else ""),
            *([f"- nvidia-smi (name, driver, memory, max SM / memory clocks): {gpu_meta['nvidia-smi']}"]
              if gpu_meta.get("nvidia-smi") else []),
            f"- Versions: {versions or 'not recorded (JSON brought back from the GPU machine; see its gpu_check log)'}",
            "",
            "![GPU: effective bandwidth vs N](gpu_bench.png)" if (results / "gpu_bench.png").exists() else "",
            "",
            *gpu_table(gpu),
            "",
        ]
    else:
        ok, why = cuda_available()
        out += [
            "Not run on this machine"
            + (f" ({why})" if not ok else "")
            + ". On a GPU machine run `make gpu-check` (custom_op/gpu_check.sh) or "
            "`onnx-smoothl1 bench --gpu`, then bring `gpu_bench.json`/`gpu_bench.png` back "
            "into benchmarks/results/ and run `onnx-smoothl1 bench --from-results`.",
            "",
        ]
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(line for line in out) + "\n"


# ----------------------------------------------------------------------------- entry point
def main(
    root: Path | None = None,
    *,
    quick: bool = False,
    cpu: bool = True,
    gpu: bool | None = None,
    from_results: bool = False,
    output: str | None = None,
    quiet: bool = False,
) -> int:
    root = Path(root) if root else ROOT
    results = root / ("build/bench-quick" if quick else "benchmarks/results")
    results.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    code = 0
    if not from_results:
        if cpu:
            args = ["--out", str(results)]
            if quick:
                args += ["--max-log2", "12", "--budget", "0.1"]
            (results / "cpu_bench.machine.json").write_text(json.dumps(machine_info(), indent=1) + "\n")
            rc = _run([sys.executable, str(root / "benchmarks" / "cpu.py"), *args], results / "cpu_bench.log",
                      quiet=quiet)
            if rc:
                notes.append(f"benchmarks/cpu.py exited with {rc} (see cpu_bench.log)")
                code = rc
        ok, why = cuda_available()
        if gpu is None:
            gpu = ok
            if not ok:
                notes.append(f"GPU benchmark skipped: {why}")
        if gpu:
            args = ["--out", str(results)]
            if quick:
                args += ["--min-log2", "16", "--max-log2", "20"]
            info = machine_info()
            try:
                import torch

                info["gpu"] = torch.cuda.get_device_name(0)
            except Exception:  # noqa: BLE001 - informational only
                pass
            (results / "gpu_bench.machine.json").write_text(json.dumps(info, indent=1) + "\n")
            rc = _run([sys.executable, str(root / "benchmarks" / "gpu.py"), *args], results / "gpu_bench.log")
            if rc:
                notes.append(f"benchmarks/gpu.py exited with {rc} (a target missed, or see gpu_bench.log)")
    text = build_report(results, notes)
    target = Path(output) if output else results / "REPORT.md"
    if target.is_dir() or (output and str(output).endswith(("/", "\\"))):
        target = target / "REPORT.md"  # --output DIR: the report goes inside it
    from onnx_smoothl1.files import write_bytes, write_text

    # The report links its plots by file name: next to a report written elsewhere, copy them.
    if target.parent.resolve() != results.resolve():
        for png in ("cpu_bench.png", "gpu_bench.png"):
            if (results / png).is_file() and f"]({png})" in text:
                write_bytes(target.parent / png, (results / png).read_bytes(), arg="--output")
    write_text(target, text, arg="--output")
    print(f"wrote {target}")
    return code


def _cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-cpu", action="store_true")
    p.add_argument("--gpu", action="store_true", default=None)
    p.add_argument("--from-results", action="store_true")
    p.add_argument("--output")
    a = p.parse_args(argv)
    return main(quick=a.quick, cpu=not a.no_cpu, gpu=a.gpu, from_results=a.from_results, output=a.output)


if __name__ == "__main__":
    raise SystemExit(_cli())
