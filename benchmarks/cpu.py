"""CPU benchmark of SmoothL1Loss: the fused C++ kernel against the function path, torch and
the read limit.

For N = 2^4 ... 2^26 float32 elements and each reduction, in one process, with
``intra_op_num_threads`` = 2 (and torch.set_num_threads(2)):

- ``fused``: the custom-op library registered, ORT runs one SmoothL1Loss node;
- ``function``: the same model without the library, ORT runs the inlined FunctionProto;
- ``torch``: ``torch.nn.functional.smooth_l1_loss`` on the same arrays (torch.from_numpy);
- ``read``: ``np.dot(x, y)``, the time to read both inputs once (the issue's read limit);
- ``abs``: a one-node ORT graph (Abs of x), the floor of ORT's per-Run overhead (N <= 2^16);
- ``plain``: what ``torch.onnx.export(..., dynamo=True)`` itself writes for the same loss (its
  own decomposition, dynamic N), run by ORT CPU: the bar the function must not be slower than.

The function path and the plain export are timed round-robin with each other (both do a
handful of passes over the data); their ratio is the median of per-round ratios. For
'mean' at 2^24 and 2^26 the relative errors of function, plain export, fused kernel and torch
eager against a float64 reference are printed too (``accuracy``). ``--memory`` runs one
function-path call at 2^27 float32 in a fresh process and reports its peak RSS over the inputs.

Each (N, reduction) measures fused, torch, read and abs round-robin (one call of each per
round, so a background load hits them alike), then the function path on its own. Times are
medians; ratios between round-robin paths are medians of the per-round ratios. Prints a table with the ratios
the issue targets, and writes ``cpu_bench.md``, ``cpu_bench.json`` and ``cpu_bench.png``
(log-log time vs N) into ``--out``.

    python benchmarks/cpu.py [--out DIR] [--min-log2 4] [--max-log2 26] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from onnx_smoothl1.files import write_bytes, write_text  # noqa: E402  (atomic: a killed run leaves no half file)

REDUCTIONS = ("mean", "sum", "none")
PATHS = ("fused", "function", "plain", "torch", "read", "abs")
ABS_MAX_LOG2 = 16


def _abs_session(threads: int):
    import onnx
    import onnxruntime as ort
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("Abs", ["x"], ["y"])], "abs",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _plain_export_session(reduction: str, threads: int):
    """ORT session of torch.onnx's own export (dynamo, dynamic N) of smooth_l1_loss, beta 1."""
    import warnings

    import onnxruntime as ort
    import torch

    class Loss(torch.nn.Module):
        def forward(self, x, y):
            return torch.nn.functional.smooth_l1_loss(x, y, reduction=reduction, beta=1.0)

    n = torch.export.Dim("n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(Loss(), (torch.randn(16), torch.randn(16)), dynamo=True,
                                    dynamic_shapes=({0: n}, {0: n}), verbose=False)
    model = program.model_proto
    model.ir_version = min(model.ir_version, 10)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session, names


def _rel_errors(calls: dict, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Relative error of each path's 'mean' against torch's float64 result."""
    import torch

    ref = torch.nn.functional.smooth_l1_loss(torch.from_numpy(x).double(),
                                             torch.from_numpy(y).double(), beta=1.0).item()
    out = {}
    for name, fn in calls.items():
        value = fn()
        value = value[0] if isinstance(value, list) else value
        out[name] = abs(float(np.asarray(value)) - ref) / abs(ref)
    return out


_MEMORY_SCRIPT = r"""
import json, sys, time
import numpy as np
import onnxruntime as ort
import onnx_smoothl1 as sl1
n = 1 << int(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.standard_normal(n, dtype=np.float32)
y = rng.standard_normal(n, dtype=np.float32)
options = ort.SessionOptions()
options.intra_op_num_threads = int(sys.argv[2])
options.enable_cpu_mem_arena = sys.argv[3] == "arena"
session = sl1.inference_session(sl1.make_model(reduction="mean"), custom_op=False, options=options)
session.run(None, {"input": x[:16], "target": y[:16]})

def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key + ":"))

with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
    f.write("5")
before = status("VmRSS")
t = time.perf_counter()
session.run(None, {"input": x, "target": y})
seconds = time.perf_counter() - t
peak = status("VmHWM")
print(json.dumps({"log2n": int(sys.argv[1]), "input_bytes": int(x.nbytes + y.nbytes),
                  "peak_over_inputs_bytes": int(peak - before), "seconds": seconds}))
"""


def _memory(log2n: int, threads: int) -> dict:
    """Peak RSS of one function-path run over its inputs, in a fresh process.

    Measured with ORT's default CPU arena and once without it: the arena rounds each
    extension up (kNextPowerOfTwo), which is most of the gap between the two figures, while
    running without it costs page faults on every call (measured ~2.4x the time at 2^24)."""
    import subprocess

    def one(arena: str) -> dict:
        proc = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(log2n), str(threads), arena],
                              capture_output=True, text=True, cwd=ROOT, check=True)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    result = one("arena")
    result["ratio"] = result["peak_over_inputs_bytes"] / result["input_bytes"]
    bare = one("no-arena")
    result["no_arena_ratio"] = bare["peak_over_inputs_bytes"] / bare["input_bytes"]
    result["no_arena_seconds"] = bare["seconds"]
    return result


def _round_robin(calls: dict, *, min_reps: int, max_reps: int, budget: float,
                 samples: dict | None = None) -> dict[str, float]:
    """Median seconds per call of each callable, measured in interleaved rounds (the
    per-round times go to ``samples`` when given)."""
    for fn in calls.values():  # warm-up: allocator, thread pool, caches
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in calls}
    start = time.perf_counter()
    reps = 0
    while reps < max_reps and (reps < min_reps or time.perf_counter() - start < budget):
        for name, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        reps += 1
    if samples is not None:
        samples.update(times)
    return {k: statistics.median(v) for k, v in times.items()}


def _paired_ratio(samples: dict, a: str, b: str) -> float:
    """Median over rounds of a/b: both ran in the same round, under the same load."""
    return statistics.median(x / y for x, y in zip(samples[a], samples[b]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--min-log2", type=int, default=4)
    parser.add_argument("--max-log2", type=int, default=26)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per (N, reduction) at least")
    parser.add_argument("--focus-log2", type=int, default=24,
                        help="the quoted row (README, issue targets): measured with 4x the budget")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--memory", type=int, nargs="?", const=27, default=None, metavar="LOG2N",
                        help="only measure the function path's peak memory at 2^LOG2N (27)")
    args = parser.parse_args(argv)
    if args.memory is not None:
        m = _memory(args.memory, args.threads)
        print(f"function path, float32 'mean', N=2^{m['log2n']}: peak RSS over the inputs "
              f"{m['peak_over_inputs_bytes'] / 2**30:.2f} GiB = {m['ratio']:.2f}x the input bytes "
              f"({m['input_bytes'] / 2**30:.2f} GiB), {m['seconds']:.1f} s  (target <= 2.5x); "
              f"without ORT's CPU arena {m['no_arena_ratio']:.2f}x, {m['no_arena_seconds']:.1f} s")
        return 0

    import onnxruntime as ort
    import torch

    import onnx_smoothl1 as sl1
    from onnx_smoothl1 import progress

    torch.set_num_threads(args.threads)
    sl1.get_library_path()  # CustomOpUnavailable, saying why, if the kernel is not built

    def session(reduction: str, custom_op: bool):
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        model = sl1.make_model(reduction=reduction, dtype="float32", beta=1.0)
        return sl1.inference_session(model, custom_op=custom_op, options=options)

    load_start = os.getloadavg()
    sessions = {(r, k): session(r, k) for r in REDUCTIONS for k in (True, False)}
    plain = {r: _plain_export_session(r, args.threads) for r in REDUCTIONS}
    abs_session = _abs_session(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    header = (f"{'log2N':>5} {'reduction':>9} {'fused':>10} {'function':>10} {'plain':>10} "
              f"{'torch':>10} {'read':>10} {'abs':>10} | {'fused/read':>10} {'func/fused':>10} "
              f"{'func/plain':>10} {'torch/fused':>11} {'fused/abs':>9}")
    print(f"onnxruntime {ort.__version__}, torch {torch.__version__}, numpy {np.__version__}, "
          f"threads {args.threads}, {platform.processor() or platform.machine()}")
    print(header)
    print("-" * len(header))
    # Progress on stderr for a person at a terminal (silent in logs and with --quiet); closed
    # after the loop (an exception ends the process anyway).
    bars = contextlib.ExitStack()
    bar = bars.enter_context(progress.bar((args.max_log2 - args.min_log2 + 1) * len(REDUCTIONS), "bench cpu",
                                          quiet=args.quiet, unit="size"))
    for log2n in range(args.min_log2, args.max_log2 + 1):
        n = 2**log2n
        x = rng.standard_normal(n, dtype=np.float32)
        y = (rng.standard_normal(n, dtype=np.float32) * 2).astype(np.float32)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        feeds = {"input": x, "target": y}
        for reduction in REDUCTIONS:
            bar.now(f"N=2^{log2n} {reduction}")
            fused, function = sessions[(reduction, True)], sessions[(reduction, False)]
            calls = {
                "fused": lambda s=fused, f=feeds: s.run(None, f),
                "torch": lambda r=reduction, a=tx, b=ty: torch.nn.functional.smooth_l1_loss(a, b, reduction=r,
                                                                                          beta=1.0),
                "read": lambda a=x, b=y: np.dot(a, b),
            }
            if log2n <= ABS_MAX_LOG2:
                calls["abs"] = lambda a=x: abs_session.run(None, {"x": a})
            small = log2n <= 14
            # The function path is 10-30x slower and allocates several float64 temporaries
            # (evicting the inputs from cache), so it is timed on its own, after the others.
            samples: dict = {}
            focus = log2n == args.focus_log2
            med = _round_robin(calls, min_reps=20 if small else 7,
                               max_reps=5000 if small else (200 if focus else 40),
                               budget=args.budget * (4 if focus else 1), samples=samples)
            plain_session, plain_names = plain[reduction]
            plain_feeds = dict(zip(plain_names, (x, y)))
            pair = {"function": lambda s=function, f=feeds: s.run(None, f),
                    "plain": lambda s=plain_session, f=plain_feeds: s.run(None, f)}
            pair_samples: dict = {}
            med.update(_round_robin(pair, min_reps=20 if small else 5,
                                    max_reps=5000 if small else (60 if focus else 15),
                                    budget=args.budget * (4 if focus or log2n <= 4 else 1),
                                    samples=pair_samples))
            row = {"log2n": log2n, "n": n, "reduction": reduction, **{k: med.get(k) for k in PATHS}}
            # Ratios of paths measured in the same rounds are medians of per-round ratios
            # (robust to a background load that changes between rounds); the function path,
            # timed separately, is compared by its median.
            row["fused_over_read"] = _paired_ratio(samples, "fused", "read")
            row["function_over_fused"] = med["function"] / med["fused"]
            row["function_over_plain"] = _paired_ratio(pair_samples, "function", "plain")
            if reduction == "mean" and log2n in (24, 26):
                row["accuracy"] = _rel_errors(
                    {"function": pair["function"], "plain": pair["plain"], "fused": calls["fused"],
                     "torch": calls["torch"]}, x, y)
            row["torch_over_fused"] = _paired_ratio(samples, "torch", "fused")
            row["fused_over_abs"] = _paired_ratio(samples, "fused", "abs") if "abs" in med else None
            rows.append(row)
            print(_fmt_row(row), flush=True)
            bar.done()
    bars.close()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_end = os.getloadavg()
    meta = {
        "loadavg_start": [round(v, 2) for v in load_start],
        "loadavg_end": [round(v, 2) for v in load_end],
        "onnxruntime": ort.__version__, "torch": torch.__version__, "numpy": np.__version__,
        "threads": args.threads, "machine": platform.machine(), "dtype": "float32", "beta": 1.0,
        "command": "python benchmarks/cpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    write_text(out / "cpu_bench.json", json.dumps({"meta": meta, "rows": rows}, indent=1), arg="--out")
    write_text(out / "cpu_bench.md", _markdown(rows, meta), arg="--out")
    _plot(rows, out / "cpu_bench.png", args.threads)
    if args.max_log2 >= 26 and os.environ.get("BENCH_MEMORY", "1") == "1":
        meta["memory"] = _memory(27, args.threads)
        write_text(out / "cpu_bench.json", json.dumps({"meta": meta, "rows": rows}, indent=1), arg="--out")
        write_text(out / "cpu_bench.md", _markdown(rows, meta), arg="--out")
    print()
    print(_targets(rows, meta))
    print(f"wrote {out / 'cpu_bench.md'}, {out / 'cpu_bench.json'}, {out / 'cpu_bench.png'}")
    return 0


def _us(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1e6:.1f}us" if v < 1e-3 else f"{v * 1e3:.2f}ms"


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _fmt_row(r: dict) -> str:
    return (f"{r['log2n']:>5} {r['reduction']:>9} {_us(r['fused']):>10} {_us(r['function']):>10} "
            f"{_us(r.get('plain')):>10} {_us(r['torch']):>10} {_us(r['read']):>10} {_us(r['abs']):>10} | "
            f"{_x(r['fused_over_read']):>10} {_x(r['function_over_fused']):>10} "
            f"{_x(r.get('function_over_plain')):>10} {_x(r['torch_over_fused']):>11} "
            f"{_x(r['fused_over_abs']):>9}")


def _find(rows, log2n, reduction):
    return next((r for r in rows if r["log2n"] == log2n and r["reduction"] == reduction), None)


def _targets(rows, meta: dict | None = None) -> str:
    lines = ["Function path vs torch.onnx's own export (float32, ORT CPU; function / plain):"]
    for log2n, reduction, target in ((24, "mean", 1.0), (24, "none", 1.05), (4, "mean", 1.05),
                                     (4, "sum", 1.05), (4, "none", 1.05)):
        r = _find(rows, log2n, reduction)
        if r and r.get("function_over_plain") is not None:
            lines.append(f"  N=2^{log2n:<2} {reduction:<4}  {r['function_over_plain']:.2f}x  "
                         f"(target <= {target:.2f}x)  [{_us(r['function'])} vs {_us(r['plain'])}]")
    for log2n in (24, 26):
        r = _find(rows, log2n, "mean")
        if r and r.get("accuracy"):
            acc = r["accuracy"]
            lines.append(f"  N=2^{log2n} mean rel. error: function {acc['function']:.2e}, torch eager "
                         f"{acc['torch']:.2e}, plain export {acc['plain']:.2e}, fused {acc['fused']:.2e}"
                         f"  (target: function <= torch)")
    if meta and meta.get("memory"):
        m = meta["memory"]
        lines.append(f"  N=2^{m['log2n']} function peak RSS over inputs {m['peak_over_inputs_bytes'] / 2**30:.2f}"
                     f" GiB = {m['ratio']:.2f}x the input bytes  (target <= 2.5x); without ORT's CPU arena "
                     f"{m.get('no_arena_ratio', float('nan')):.2f}x")
    lines.append("Issue 3 targets (float32, 'mean'):")
    r24 = _find(rows, 24, "mean")
    if r24:
        lines += [
            f"  N=2^24 fused / read limit   = {r24['fused_over_read']:.2f}x  (target <= 1.3x)",
            f"  N=2^24 function / fused     = {r24['function_over_fused']:.2f}x  (target >= 8x)",
            f"  N=2^24 torch / fused        = {r24['torch_over_fused']:.2f}x  (target >= 2.3x)",
        ]
    r4 = _find(rows, 4, "mean")
    if r4 and r4["fused_over_abs"]:
        lines.append(f"  N=16   fused / one-node Abs = {r4['fused_over_abs']:.2f}x  (target <= 1.5x)"
                     f"  [{_us(r4['fused'])} vs {_us(r4['abs'])} per call]")
    return "\n".join(lines)


def _markdown(rows, meta) -> str:
    lines = [
        "# CPU benchmark: SmoothL1Loss, float32",
        "",
        f"`{meta['command']}` — onnxruntime {meta['onnxruntime']}, torch {meta['torch']}, "
        f"numpy {meta['numpy']}, {meta['threads']} threads (intra_op_num_threads / "
        f"torch.set_num_threads), median per call; fused/read, torch/fused and fused/Abs are "
        f"medians of per-round ratios (paths measured round-robin), function/fused a ratio of medians. "
        f"Load average (1/5/15 min) at start {meta['loadavg_start']}, at end {meta['loadavg_end']} "
        f"on {os.cpu_count()} CPUs: other work on the machine shifts these numbers.",
        "",
        "```",
        _targets(rows, meta),
        "```",
        "",
        "| log2 N | reduction | fused | function | plain torch.onnx | torch | read (np.dot) | Abs node "
        "| fused/read | function/fused | function/plain | torch/fused | fused/Abs |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['log2n']} | {r['reduction']} | {_us(r['fused'])} | {_us(r['function'])} | "
            f"{_us(r.get('plain'))} | {_us(r['torch'])} | {_us(r['read'])} | {_us(r['abs'])} | "
            f"{_x(r['fused_over_read'])} | {_x(r['function_over_fused'])} | "
            f"{_x(r.get('function_over_plain'))} | {_x(r['torch_over_fused'])} | {_x(r['fused_over_abs'])} |"
        )
    return "\n".join(lines) + "\n"


def _plot(rows, path: Path, threads: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(REDUCTIONS), figsize=(12, 3.8), sharey=True)
    styles = {"fused": "o-", "function": "s--", "plain": "d--", "torch": "^-.", "read": "k:",
              "abs": "x:"}
    for ax, reduction in zip(axes, REDUCTIONS):
        sel = [r for r in rows if r["reduction"] == reduction]
        for name in PATHS:
            pts = [(r["n"], r[name]) for r in sel if r[name] is not None]
            if pts:
                ax.loglog(*zip(*pts), styles[name], label=name, markersize=3, linewidth=1)
        ax.set_title(f"reduction='{reduction}'")
        ax.set_xlabel("N (float32 elements)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("seconds per call (median)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"SmoothL1Loss on CPU, {threads} threads", fontsize=10)
    fig.tight_layout()
    import io

    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=72)
    write_bytes(path, png.getvalue(), arg="--out")
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
