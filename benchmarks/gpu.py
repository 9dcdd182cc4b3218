"""GPU benchmark of SmoothL1Loss and HuberLoss: the CUDA custom op against the function path, torch and a copy.

For N = 2^10, 2^16, 2^20, 2^24 and 2^28 elements, float32 / float16 / bfloat16, each reduction
and both losses, in one process, all data on the GPU (IOBinding on torch's device buffers: no
host copies):

- ``op``: the fused CUDA kernel (custom-op library registered, CUDAExecutionProvider);
- ``function``: the same model without the library, ORT running the FunctionProto on CUDA EP
  (SmoothL1Loss only: HuberLoss's body has the same structure);
- ``torch``: ``torch.nn.functional.smooth_l1_loss`` / ``huber_loss`` on the same tensors;
- ``copy``: a device-to-device copy of the inputs' bytes (2N elements), the bandwidth limit.

Each timing is the median over three batches of back-to-back calls ended by one
``torch.cuda.synchronize()`` (which waits for ORT's stream too), per call; ORT Runs skip their
own end-of-Run synchronisation (run option ``disable_synchronize_execution_providers``), so
ORT's per-Run host overhead overlaps the GPU work as torch's launch overhead does. The op is
also timed one Run at a time, each synchronised (``op 1x``); the op's effective bandwidth and
the ratios use the faster of the two (the function path is timed the same way).
Effective bandwidth counts the bytes a fused pass must move: the two inputs for 'mean'/'sum',
plus the output for 'none'; the copy counts bytes read + written. No CUDA graphs (ORT's
``enable_cuda_graph`` stays off, torch runs eagerly), so small N shows per-call overhead.
Prints a table, the issue's targets at the largest N (``check_targets``) and the small-N
ratios; writes ``gpu_bench.json``, ``gpu_bench.machine.json`` (GPU, driver, CUDA and
onnxruntime versions) and ``gpu_bench.png`` into ``--out``.

    python benchmarks/gpu.py [--out DIR] [--sizes 10,16,20,24,28] [--dtypes float32,float16,bfloat16]
                             [--losses smooth_l1,huber]

Needs torch with CUDA, onnxruntime with the CUDAExecutionProvider and the custom-op library
built with CUDA (``ONNX_SMOOTHL1_LIBRARY`` or the package's lib/); custom_op/gpu_check.sh
sets all three up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


ONNX_TYPE = {"float16": 10, "bfloat16": 16, "float32": 1, "float64": 11}  # TensorProto codes
REDUCTIONS = ("mean", "sum", "none")


def _timeit(fn, sync, *, target: float = 0.05, batches: int = 3, max_reps: int = 200) -> float:
    """Seconds per call: median over ``batches`` of (``reps`` calls back to back, then one
    device synchronisation) / reps, with reps sized so that a batch takes about ``target``."""
    for _ in range(2):
        fn()
        sync()
    t0 = time.perf_counter()
    fn()
    sync()
    one = time.perf_counter() - t0
    reps = max(1, min(max_reps, int(target / max(one, 1e-6))))
    times = []
    for _ in range(batches):
        sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
        times.append((time.perf_counter() - t0) / reps)
    return statistics.median(times)


def _timeit_each(fn, sync, reps: int = 10) -> float:
    """Seconds per call, each call synchronised on its own (median)."""
    fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


#: The issue's targets at the largest N (fractions of the device copy's bandwidth).
MEAN_OVER_COPY = 0.90
NONE_OVER_COPY = 0.90
TORCH_OVER_OP_F32_MEAN = 1.8
HUBER_WITHIN = 0.03


def check_targets(rows: list[dict], sizes: list[int]) -> list[bool]:
    """Print MET/MISSED for each target at the largest N, and the small-N ratios; return the
    verdicts (the exit status is non-zero when one is missed)."""
    top = max(sizes)
    verdicts: list[bool] = []
    gpu = rows[0]["gpu"] if rows else "?"
    print(f"\ntargets at N=2^{top} ({gpu}):")

    def target(name: str, ok: bool, detail: str) -> None:
        verdicts.append(ok)
        print(f"  {'MET   ' if ok else 'MISSED'} {name}: {detail}")

    at_top = {(r["loss"], r["dtype"], r["reduction"]): r for r in rows if r["log2n"] == top}
    for (loss, dtype, reduction), r in at_top.items():
        share = f"{r['op_eff_Bps'] / 1e12:.2f} TB/s = {r['op_over_copy']:.1%} of copy {r['copy_Bps'] / 1e12:.2f} TB/s"
        if reduction == "mean":
            target(f"{loss} {dtype} mean >= {MEAN_OVER_COPY:.0%} of copy bandwidth",
                   r["op_over_copy"] >= MEAN_OVER_COPY, share)
            if dtype == "float32":
                target(f"{loss} float32 mean torch/op >= {TORCH_OVER_OP_F32_MEAN}x",
                       r["torch_over_op"] >= TORCH_OVER_OP_F32_MEAN, f"{r['torch_over_op']:.2f}x")
        elif reduction == "none":
            target(f"{loss} {dtype} none >= {NONE_OVER_COPY:.0%} of copy bandwidth (output counted)",
                   r["op_over_copy"] >= NONE_OVER_COPY, share)
        if loss == "huber" and ("smooth_l1", dtype, reduction) in at_top:
            ref = at_top[("smooth_l1", dtype, reduction)]["op_eff_Bps"]
            rel = r["op_eff_Bps"] / ref - 1.0
            target(f"huber {dtype} {reduction} within {HUBER_WITHIN:.0%} of smooth_l1", abs(rel) <= HUBER_WITHIN,
                   f"{rel:+.1%} ({r['op_eff_Bps'] / 1e12:.2f} vs {ref / 1e12:.2f} TB/s)")
    small = [k for k in sizes if k in (10, 16)]
    if small:
        print("small N (no target; per call, op = faster of queued / synchronised Runs, no CUDA graphs):")
        for r in rows:
            if r["log2n"] in small:
                print(f"  {r['loss']:9} {r['dtype']:8} {r['reduction']:4} 2^{r['log2n']}: op {r['op_s'] * 1e6:.1f} us, "
                      f"torch {r['torch_s'] * 1e6:.1f} us, torch/op {r['torch_over_op']:.2f}x")
    return verdicts


def _versions(torch, ort, gpu: str, smoke: bool) -> dict[str, str]:
    """GPU, driver, CUDA and onnxruntime(-gpu) versions, for the report next to the figures."""
    import importlib.metadata as md
    import subprocess

    info = {"gpu": gpu, "torch": torch.__version__, "torch_cuda": str(torch.version.cuda),
            "onnxruntime": ort.__version__, "onnxruntime_file": ort.__file__}
    for dist in ("onnxruntime-gpu", "onnxruntime"):
        try:
            info[f"dist:{dist}"] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    if not smoke:
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,"
                                  "clocks.max.mem", "--format=csv,noheader"], capture_output=True, text=True,
                                 timeout=20, check=False)
            info["nvidia-smi"] = smi.stdout.strip() or smi.stderr.strip()
        except (OSError, subprocess.SubprocessError) as e:
            info["nvidia-smi"] = f"not run: {e}"
        info["cuda_driver_api"] = str(torch._C._cuda_getDriverVersion()) if hasattr(
            torch._C, "_cuda_getDriverVersion") else "?"
    return info


def _time_function_path(queued, each, sync) -> float:
    """The function path's time per call. On the CUDA EP its 'mean'/'sum' take seconds per
    call at 2^28 (measured: 1.6 s, against 0.5 ms for the kernel), so a slow call (> 50 ms) is
    timed twice after one warm-up (the faster kept) instead of in batches: the figure is a ratio of thousands,
    and the benchmark must fit the GPU check's budget."""
    t0 = time.perf_counter()
    each()
    sync()
    if time.perf_counter() - t0 > 0.05:
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            each()
            sync()
            times.append(time.perf_counter() - t0)
        return min(times)
    return min(_timeit(queued, sync, max_reps=50), _timeit_each(each, sync, reps=5))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="directory for gpu_bench.json/png")
    parser.add_argument("--sizes", default="10,16,20,24,28", help="log2 N, comma-separated (largest: the targets)")
    parser.add_argument("--min-log2", type=int, help="with --max-log2: sizes min..max by --step (replaces --sizes)")
    parser.add_argument("--max-log2", type=int)
    parser.add_argument("--step", type=int, default=2, help="log2 step between sizes")
    parser.add_argument("--dtypes", default="float32,float16,bfloat16")
    parser.add_argument("--losses", default="smooth_l1,huber")
    parser.add_argument("--beta", type=float, default=1.0, help="SmoothL1Loss beta and HuberLoss delta")
    parser.add_argument("--no-function", action="store_true", help="skip the (slow) function path")
    parser.add_argument("--smoke-test-on-cpu", action="store_true",
                        help="run the same code on the CPU EP and CPU tensors (checks the script, not the GPU)")
    args = parser.parse_args(argv)

    import torch

    smoke = args.smoke_test_on_cpu
    dev, ep = ("cpu", "CPUExecutionProvider") if smoke else ("cuda", "CUDAExecutionProvider")
    if not smoke and not torch.cuda.is_available():
        print("gpu.py: torch sees no CUDA device", file=sys.stderr)
        return 2
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls") and not smoke:
        try:
            ort.preload_dlls()
        except Exception as e:  # torch has loaded most of them already; sessions will tell
            print(f"onnxruntime.preload_dlls() failed: {e}")
    if ep not in ort.get_available_providers():
        print(f"gpu.py: onnxruntime {ort.__version__} has no {ep}", file=sys.stderr)
        return 2
    import onnx_smoothl1 as sl1

    lib = sl1.get_library_path()
    if smoke:
        gpu = "CPU (smoke test)"
        print(f"GPU: none, smoke test on the CPU EP; torch {torch.__version__}, onnxruntime {ort.__version__}")
    else:
        props = torch.cuda.get_device_properties(0)
        gpu = torch.cuda.get_device_name(0)
        print(f"GPU: {gpu} ({props.multi_processor_count} SMs, {props.total_memory / 2**30:.0f} GiB), "
              f"torch {torch.__version__} (CUDA {torch.version.cuda}), onnxruntime {ort.__version__}")
    versions = _versions(torch, ort, gpu, smoke)
    print("versions:", json.dumps(versions))
    print(f"library: {lib}")
    print("timing: per call, batches of back-to-back calls + one device sync (median of 3); "
          "'eff' = bytes a fused pass moves / time (inputs, + output for 'none'); "
          "copy = D2D copy of both inputs' bytes, read+write; 'op q' = Runs queued without ORT's "
          "end-of-Run sync, 'op 1x' = one synchronised Run at a time; op eff and ratios use the faster. "
          "No CUDA graphs anywhere (ORT's enable_cuda_graph is off, torch runs eagerly).")
    sync = (lambda: None) if smoke else torch.cuda.synchronize
    tdt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    losses = [x.strip() for x in args.losses.split(",") if x.strip()]
    for loss in losses:
        if loss not in ("smooth_l1", "huber"):
            parser.error(f"--losses: unknown loss {loss!r}; choose from smooth_l1, huber")
    if args.min_log2 is not None and args.max_log2 is not None:
        sizes = list(range(args.min_log2, args.max_log2 + 1, args.step))
    else:
        sizes = sorted({int(k) for k in args.sizes.split(",") if k.strip()})

    def session(loss: str, reduction: str, dtype: str, custom_op: bool):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if custom_op and not smoke:  # the node must run on the CUDA EP (the CUDA kernel)
            options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        if loss == "huber":
            model = sl1.make_huber_model(delta=args.beta, reduction=reduction, dtype=dtype)
        else:
            model = sl1.make_model(beta=args.beta, reduction=reduction, dtype=dtype)
        return sl1.inference_session(model, providers=[ep], custom_op=custom_op, options=options)

    def torch_loss(loss: str):
        if loss == "huber":
            return lambda a, b, r: torch.nn.functional.huber_loss(a, b, reduction=r, delta=args.beta)
        return lambda a, b, r: torch.nn.functional.smooth_l1_loss(a, b, reduction=r, beta=args.beta)

    # Runs are queued like torch's kernels: ORT skips its end-of-Run stream synchronisation
    # and the timer synchronises the device (ORT's stream included) once per batch.
    async_run = ort.RunOptions()
    async_run.add_run_config_entry("disable_synchronize_execution_providers", "1")

    def binder(sess, x, y, out, dtype, run_options=async_run):
        b = sess.io_binding()
        b.bind_input("input", dev, 0, ONNX_TYPE[dtype], tuple(x.shape), x.data_ptr())
        b.bind_input("target", dev, 0, ONNX_TYPE[dtype], tuple(y.shape), y.data_ptr())
        b.bind_output("loss", dev, 0, ONNX_TYPE[dtype], tuple(out.shape), out.data_ptr())
        return lambda: sess.run_with_iobinding(b, run_options)

    rows = []
    copy_times: dict[tuple[str, int], float] = {}  # one copy timing per dtype and size
    header = (f"{'loss':9} {'dtype':8} {'red':4} {'N':>6} | {'op q us':>9} {'op 1x us':>9} {'fn us':>9} "
              f"{'torch us':>9} {'copy us':>9} | "
              f"{'op eff':>7} {'copy':>7} {'op/copy':>7} | {'torch/op':>8} {'fn/op':>7}")
    for loss in losses:
        fn_loss = torch_loss(loss)
        for dtype in dtypes:
            # the function path is timed for SmoothL1Loss only (HuberLoss's body has the same
            # structure; its kernel is what the Huber targets are about)
            kinds = (True, False) if not args.no_function and loss == "smooth_l1" else (True,)
            sessions = {(r, c): session(loss, r, dtype, c) for r in REDUCTIONS for c in kinds}
            print()
            print(header)
            print("-" * len(header))
            for reduction in REDUCTIONS:
                for k in sizes:
                    n = 2**k
                    gen = torch.Generator(device=dev).manual_seed(k)
                    x = torch.randn(n, device=dev, dtype=torch.float32, generator=gen).to(tdt[dtype])
                    y = torch.randn(n, device=dev, dtype=torch.float32, generator=gen).to(tdt[dtype])
                    out = torch.empty(n if reduction == "none" else (), device=dev, dtype=tdt[dtype])
                    sync()
                    t_op_queued = _timeit(binder(sessions[(reduction, True)], x, y, out, dtype), sync)
                    # one Run at a time, ORT's own synchronisation included (what a caller waiting
                    # for each result sees); no RunOptions object (passing one costs host time)
                    t_op_each = _timeit_each(binder(sessions[(reduction, True)], x, y, out, dtype, None), sync)
                    t_op = min(t_op_queued, t_op_each)
                    t_fn = float("nan")
                    if (reduction, False) in sessions:
                        out_fn = torch.empty_like(out)
                        try:
                            fn_session = sessions[(reduction, False)]
                            t_fn = _time_function_path(binder(fn_session, x, y, out_fn, dtype),
                                                       binder(fn_session, x, y, out_fn, dtype, None), sync)
                        except Exception as e:  # report, keep benchmarking the rest
                            print(f"  function path failed for {dtype} {reduction}: {str(e).splitlines()[0]}")
                        del out_fn
                    t_torch = _timeit(lambda a=x, b=y, r=reduction, f=fn_loss: f(a, b, r), sync)
                    if (dtype, k) not in copy_times:
                        src = torch.empty(2 * n, device=dev, dtype=tdt[dtype])
                        dst = torch.empty_like(src)
                        copy_times[(dtype, k)] = _timeit(lambda d=dst, s=src: d.copy_(s), sync)
                        del src, dst
                    t_copy = copy_times[(dtype, k)]
                    size = x.element_size()
                    moved = (3 if reduction == "none" else 2) * n * size
                    eff = moved / t_op
                    copy_bw = 2 * (2 * n * size) / t_copy
                    row = dict(gpu=gpu, loss=loss, dtype=dtype, reduction=reduction, log2n=k, n=n, op_s=t_op,
                               op_queued_s=t_op_queued, op_each_s=t_op_each, function_s=t_fn,
                               torch_s=t_torch, copy_s=t_copy, op_eff_Bps=eff, copy_Bps=copy_bw,
                               op_over_copy=eff / copy_bw, torch_over_op=t_torch / t_op,
                               function_over_op=t_fn / t_op)
                    rows.append(row)
                    print(f"{loss:9} {dtype:8} {reduction:4} {'2^' + str(k):>6} | {t_op_queued * 1e6:9.1f} "
                          f"{t_op_each * 1e6:9.1f} {t_fn * 1e6:9.1f} {t_torch * 1e6:9.1f} "
                          f"{t_copy * 1e6:9.1f} | {eff / 1e12:6.2f}T {copy_bw / 1e12:6.2f}T {eff / copy_bw:7.1%} | "
                          f"{t_torch / t_op:8.2f} {t_fn / t_op:7.2f}", flush=True)
                    del x, y, out
                    if not smoke:
                        torch.cuda.empty_cache()
            del sessions

    verdicts = check_targets(rows, sizes)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    from onnx_smoothl1.files import write_bytes, write_text  # atomic: a killed run leaves no half file

    write_text(out_dir / "gpu_bench.json", json.dumps(rows, indent=1), arg="--out")
    machine = out_dir / "gpu_bench.machine.json"  # `onnx-smoothl1 bench --gpu` wrote the host's part
    try:
        known = json.loads(machine.read_text())
    except (OSError, ValueError):
        known = {}
    write_text(machine, json.dumps({**known, **versions}, indent=1), arg="--out")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(dtypes), len(REDUCTIONS), figsize=(5 * len(REDUCTIONS), 3.6 * len(dtypes)),
                                 squeeze=False)
        for i, dtype in enumerate(dtypes):
            for j, reduction in enumerate(REDUCTIONS):
                ax = axes[i][j]
                for loss in losses:
                    sel = [r for r in rows if r["loss"] == loss and r["dtype"] == dtype
                           and r["reduction"] == reduction]
                    ns = [r["n"] for r in sel]
                    moved = [(3 if reduction == "none" else 2) * r["n"] * (4 if dtype == "float32" else 2)
                             for r in sel]
                    series = [("op_s", f"{loss} CUDA op"), ("torch_s", f"{loss} torch")]
                    if loss == losses[0]:
                        series += [("function_s", f"{loss} function (CUDA EP)"), ("copy_s", "copy (same bytes)")]
                    for key, label in series:
                        if key == "copy_s":
                            bw = [r["copy_Bps"] / 1e12 for r in sel]
                        else:
                            bw = [m / r[key] / 1e12 for m, r in zip(moved, sel)]
                        if any(b == b for b in bw):  # skip all-NaN series (function path not timed)
                            ax.plot(ns, bw, marker="o", label=label,
                                    linestyle="--" if loss == "huber" else "-")
                ax.set_xscale("log", base=2)
                ax.set_title(f"{dtype} '{reduction}'")
                ax.set_xlabel("N (elements)")
                ax.set_ylabel("effective TB/s")
                ax.grid(True, alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.suptitle(f"SmoothL1Loss / HuberLoss on {gpu}: effective bandwidth (higher is better)")
        fig.tight_layout()
        import io

        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=110)
        write_bytes(out_dir / "gpu_bench.png", png.getvalue(), arg="--out")
        print(f"\nwrote {out_dir / 'gpu_bench.json'} and {out_dir / 'gpu_bench.png'}")
    except Exception as e:  # the table above is the result; the plot is a convenience
        print(f"\nwrote {out_dir / 'gpu_bench.json'}; no plot ({type(e).__name__}: {e})")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
