"""The checks of scripts/aarch64/e2e.sh, one subcommand each.

Run by the emulated aarch64 python (qemu-user, scripts/aarch64/python_env.sh), with only the
installed wheel and its dependencies on sys.path:

- ``install``   where the package and its library come from (the site the wheel went into,
                an aarch64 ELF), and the library's build info;
- ``kernel``    the library registered in onnxruntime: for both losses, every dtype and every
                reduction, ORT's profile must show the loss node (the fused kernel), the same
                model without the library must show the function's standard ops and no loss
                node, and both outputs must be within SPEC tolerance of the numpy float64
                reference (``onnx_smoothl1.oracle``; torch is not installed);
- ``old-ort``   the library registered directly (``SessionOptions.register_custom_ops_library``)
                in an onnxruntime older than the supported range: must be refused with one
                line naming both versions.

Run by the host's python (plain stdlib) on what the emulated commands wrote:

- ``doctor``    ``onnx-smoothl1 doctor --json``'s findings;
- ``parity``    ``onnx-smoothl1 parity --json``'s results: the grid must cover every dtype,
                reduction and loss, rank 0, empty and broadcast shapes, on ``ort-kernel`` and
                ``ort-function``, every verdict pass, the kernel proven to have run;
- ``demo``      ``onnx-smoothl1 demo``'s table: every row PASS, the kernel rows ran the node.

Each prints what it saw and exits 0, or prints ``FAIL: <why>`` lines and exits 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

EM_AARCH64 = 183  # ELF e_machine
DTYPES = ("float16", "bfloat16", "float32", "float64")
REDUCTIONS = ("none", "mean", "sum")
LOSS_OPS = {"smooth_l1": "SmoothL1Loss", "huber": "HuberLoss"}


class Checks:
    """Collects failures; ``done`` prints them and gives the exit code."""

    def __init__(self, name: str):
        self.name = name
        self.failures: list[str] = []
        self.count = 0
        self.start = time.perf_counter()

    def check(self, ok: bool, what: str) -> bool:
        self.count += 1
        if not ok:
            self.failures.append(what)
            print(f"FAIL: {what}")
        return ok

    def done(self) -> int:
        secs = time.perf_counter() - self.start
        if self.failures:
            print(f"{self.name}: {len(self.failures)} of {self.count} checks failed ({secs:.1f} s)")
            return 1
        print(f"{self.name}: all {self.count} checks passed ({secs:.1f} s)")
        return 0


def elf_machine(path: str) -> int:
    with open(path, "rb") as f:
        head = f.read(20)
    if head[:4] != b"\x7fELF":
        return -1
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


# --- under emulation ---------------------------------------------------------------------------


def cmd_install(args: argparse.Namespace) -> int:
    import ctypes
    import platform

    import onnx_smoothl1
    from onnx_smoothl1 import runtime

    c = Checks("install")
    site = Path(args.site).resolve()
    package = Path(onnx_smoothl1.__file__).resolve()
    lib = Path(runtime.get_library_path()).resolve()
    print(f"machine {platform.machine()}, python {platform.python_version()}, "
          f"onnx_smoothl1 {onnx_smoothl1.__version__} from {package.parent}")
    print(f"library {lib} ({lib.stat().st_size} bytes)")
    c.check(platform.machine() == "aarch64", f"platform.machine() is {platform.machine()!r}, not 'aarch64'")
    c.check(package.is_relative_to(site), f"onnx_smoothl1 imported from {package}, not from the wheel's site {site}")
    c.check(lib.is_relative_to(site), f"library {lib} is not the installed wheel's (site {site})")
    machine = elf_machine(str(lib))
    c.check(machine == EM_AARCH64, f"library ELF e_machine {machine}, not {EM_AARCH64} (aarch64)")
    try:
        handle = ctypes.CDLL(str(lib))
        handle.OnnxSmoothL1BuildInfo.restype = ctypes.c_char_p
        info = json.loads(handle.OnnxSmoothL1BuildInfo())
        print(f"build info {json.dumps(info)}")
        c.check(info.get("version") == onnx_smoothl1.__version__,
                f"library version {info.get('version')} != package {onnx_smoothl1.__version__}")
    except (OSError, AttributeError, ValueError) as exc:
        c.check(False, f"library does not load / has no build info: {exc}")
    return c.done()


#: Input shape pairs of the kernel check: broadcast (both inputs' strides matter; the profile
#: proof runs on it), rank 0 and empty (a 'mean' of nothing is NaN).
KERNEL_SHAPES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "broadcast": ((4, 1, 3), (5, 3)), "rank0": ((), ()), "empty": ((0,), (0,)),
}


def cmd_kernel(args: argparse.Namespace) -> int:
    import numpy as np

    from onnx_smoothl1 import oracle, runtime
    from onnx_smoothl1.model import make_huber_model, make_model

    c = Checks("kernel")
    c.check(not oracle.has_torch(), "torch is importable: this check is meant to run without it")
    if args.ort:
        version = runtime.onnxruntime_module().__version__
        print(f"onnxruntime {version}")
        c.check(version == args.ort, f"onnxruntime is {version}, expected {args.ort}")
    rng = np.random.default_rng(25)
    print(f"{'loss':12} {'dtype':8} {'reduction':9} {'kernel ran':13} {'function ran':24} "
          f"{'shapes':22} max rel err")
    for loss, op_type in LOSS_OPS.items():
        param = 0.35 if loss == "huber" else 0.5
        for dtype in DTYPES:
            npdt = oracle.NUMPY_DTYPES[dtype]
            inputs = {name: ((rng.standard_normal(sx) * 2).astype(npdt), rng.standard_normal(sy).astype(npdt))
                      for name, (sx, sy) in KERNEL_SHAPES.items()}
            for reduction in REDUCTIONS:
                if loss == "huber":
                    model = make_huber_model(delta=param, reduction=reduction, dtype=dtype)
                else:
                    model = make_model(beta=param, reduction=reduction, dtype=dtype)
                where = f"{op_type} {dtype} {reduction}"
                x, y = inputs["broadcast"]
                try:  # the proof of what ran: ORT's profile, with and without the library
                    _, k_ops = runtime.profile_node_ops(model, {"input": x, "target": y}, custom_op=True)
                    _, f_ops = runtime.profile_node_ops(model, {"input": x, "target": y}, custom_op=False)
                    sessions = {"kernel": runtime.inference_session(model, custom_op=True),
                                "function": runtime.inference_session(model, custom_op=False)}
                except Exception as exc:  # the finding: registration or the run failed
                    c.check(False, f"{where}: {' '.join(str(exc).split())[:300]}")
                    continue
                c.check(k_ops == [op_type], f"{where}: kernel session's profile ran {k_ops}, not [{op_type}]")
                c.check(bool(f_ops) and not set(f_ops) & set(LOSS_OPS.values()),
                        f"{where}: function session's profile ran {f_ops} (a loss node, or nothing)")
                worst, shapes_ok = 0.0, []
                for shape, (x, y) in inputs.items():
                    ref = oracle.reference(x, y, beta=param, reduction=reduction, loss=loss)
                    # What torch computes in the dtype (numpy's same operations without torch), as
                    # the parity runner and the demo hand it to SPEC's comparison.
                    own = oracle.torch_same_dtype(x, y, beta=param, reduction=reduction, loss=loss)
                    ok = True
                    for name, session in sessions.items():
                        try:
                            (out,) = runtime.run(session, {"input": x, "target": y})
                        except Exception as exc:
                            ok = c.check(False, f"{where} {shape}: {name}: {' '.join(str(exc).split())[:300]}")
                            continue
                        verdict = oracle.compare(out, ref, dtype=dtype, reduction=reduction, torch_own=own)
                        if np.isfinite(verdict.max_rel):
                            worst = max(worst, float(verdict.max_rel))
                        ok &= c.check(verdict.ok and out.shape == ref.shape,
                                      f"{where} {shape}: {name} output {out.shape} off the float64 reference "
                                      f"{ref.shape}: {verdict}")
                    if ok:
                        shapes_ok.append(shape)
                function_ran = f"{len(f_ops)} std ops ({len(set(f_ops))} kinds)"
                print(f"{op_type:12} {dtype:8} {reduction:9} {','.join(k_ops):13} {function_ran:24} "
                      f"{','.join(shapes_ok) or '-':22} {worst:.2e}")
    return c.done()


def cmd_old_ort(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    from onnx_smoothl1 import runtime

    c = Checks("old-ort")
    lib = runtime.get_library_path()
    print(f"onnxruntime {ort.__version__} from {ort.__file__}")
    c.check(ort.__version__ == args.expect, f"onnxruntime is {ort.__version__}, expected {args.expect}")
    options = ort.SessionOptions()
    try:
        options.register_custom_ops_library(lib)
    except Exception as exc:
        message = str(exc)
        print(f"register_custom_ops_library raised {type(exc).__name__}: {message}")
        c.check("\n" not in message.strip(), f"the refusal is not one line: {message!r}")
        c.check("need onnxruntime >= 1.21" in message, f"the refusal does not name the supported range: {message!r}")
        c.check(f"this is onnxruntime {args.expect}" in message,
                f"the refusal does not name {args.expect}: {message!r}")
    else:
        c.check(False, f"onnxruntime {ort.__version__} registered the library (it needs ORT API 21)")
    return c.done()


# --- on the host, on what the emulated commands wrote -------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    c = Checks("doctor")
    report: dict[str, Any] = json.loads(Path(args.json).read_text())
    lib = report.get("library", {})
    print(f"doctor: ok={report.get('ok')} platform={report.get('package', {}).get('platform')} "
          f"onnxruntime={report.get('onnxruntime', {}).get('version')} library={lib.get('path')} "
          f"cpu_kernel_ran={lib.get('cpu_kernel_ran')} op_types={lib.get('op_types')}")
    c.check(report.get("ok") is True, f"doctor ok is {report.get('ok')}: problems {report.get('problems')}")
    c.check(report.get("package", {}).get("platform") == "Linux aarch64",
            f"doctor reports platform {report.get('package', {}).get('platform')!r}")
    c.check(lib.get("loads") is True and lib.get("registers") is True, f"library loads/registers: {lib}")
    c.check(lib.get("cpu_kernel_ran") is True, f"the CPU kernel did not run: {lib}")
    c.check(sorted(lib.get("op_types", [])) == sorted(LOSS_OPS.values()), f"op types ran: {lib.get('op_types')}")
    path = str(lib.get("path"))
    c.check(path.startswith(str(Path(args.site).resolve())), f"doctor used library {path}, not the wheel's")
    if args.ort:
        version = report.get("onnxruntime", {}).get("version")
        c.check(version == args.ort, f"doctor ran in onnxruntime {version}, expected {args.ort}")
    return c.done()


def cmd_parity(args: argparse.Namespace) -> int:
    c = Checks("parity")
    data: dict[str, Any] = json.loads(Path(args.json).read_text())
    verdicts: dict[str, str] = data.get("verdicts", {})
    paths = args.paths
    print(f"parity: {data.get('cases')} cases x {len(paths)} paths, {len(verdicts)} verdicts, "
          f"{data.get('seconds', 0):.1f} s; ran {data.get('ran')}; environment {data.get('environment')}")
    for name, cell in sorted(data.get("cells", {}).items()):
        print(f"  {name:22} {cell.get('status'):5} {cell.get('passed')}/{cell.get('passed', 0) + cell.get('failed', 0)}"
              f" max abs {cell.get('max_abs', 0):.2g} max rel {cell.get('max_rel', 0):.2g}")
    c.check(data.get("ok") is True and not data.get("partial"),
            f"parity ok={data.get('ok')} partial={data.get('partial')}")
    c.check(len(verdicts) == data.get("cases", -1) * len(paths) and data.get("cases", 0) > 0,
            f"{len(verdicts)} verdicts for {data.get('cases')} cases x {len(paths)} paths")
    bad = {k: v for k, v in verdicts.items() if v != "pass"}
    c.check(not bad, f"{len(bad)} verdicts are not pass: {dict(list(bad.items())[:5])}")
    ran = data.get("ran", {})
    c.check(str(ran.get("ort-kernel", "")).startswith("kernel"), f"ort-kernel ran {ran.get('ort-kernel')!r}")
    c.check("function" in str(ran.get("ort-function", "")), f"ort-function ran {ran.get('ort-function')!r}")
    # What the grid covered, from the case labels: path/shape/dtype/param/reduction.
    seen: dict[str, set[tuple[str, ...]]] = {}
    for key in verdicts:
        path, shape, dtype, param, reduction = key.split("/")
        loss = "huber" if param.startswith("huber ") else "smooth_l1"
        seen.setdefault(path, set()).add((shape, dtype, loss, reduction))
    for path in paths:
        cells = seen.get(path, set())
        for dtype in DTYPES:
            for loss in LOSS_OPS:
                for reduction in REDUCTIONS:
                    shapes = {s for s, d, lo, r in cells if (d, lo, r) == (dtype, loss, reduction)}
                    c.check(bool(shapes), f"{path}: no {loss} {dtype} {reduction} case")
        for shape in args.shapes:
            c.check(any(s == shape for s, *_ in cells), f"{path}: no case of shape {shape}")
    return c.done()


DEMO_ROW = re.compile(r"^(float16|bfloat16|float32|float64)\s+(\S+)\s+(none|mean|sum)\s+(kernel|function)\s+(.+?)\s+"
                      r"(\S+)\s+(\S+)\s+(PASS|FAIL)\b")


def cmd_demo(args: argparse.Namespace) -> int:
    c = Checks("demo")
    rows = [m for m in map(DEMO_ROW.match, Path(args.log).read_text().splitlines()) if m]
    kernel = [m for m in rows if m.group(4) == "kernel"]
    function = [m for m in rows if m.group(4) == "function"]
    print(f"demo: {len(rows)} rows ({len(kernel)} kernel, {len(function)} function), "
          f"{sum(m.group(8) == 'PASS' for m in rows)} PASS")
    c.check(bool(kernel) and len(kernel) == len(function), f"{len(kernel)} kernel rows, {len(function)} function rows")
    for m in rows:
        c.check(m.group(8) == "PASS", f"demo row FAIL: {m.group(0)}")
    for m in kernel:
        c.check(m.group(5).strip() == "SmoothL1Loss", f"kernel row ran {m.group(5).strip()!r}: {m.group(0)}")
    for m in function:
        c.check(m.group(5).strip().endswith("std ops"), f"function row ran {m.group(5).strip()!r}: {m.group(0)}")
    return c.done()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("install")
    p.add_argument("--site", required=True)
    p.set_defaults(func=cmd_install)
    p = sub.add_parser("kernel")
    p.add_argument("--ort", help="the onnxruntime version that must be importable")
    p.set_defaults(func=cmd_kernel)
    p = sub.add_parser("old-ort")
    p.add_argument("--expect", required=True, help="the onnxruntime version that must be importable")
    p.set_defaults(func=cmd_old_ort)
    p = sub.add_parser("doctor")
    p.add_argument("json")
    p.add_argument("--site", required=True)
    p.add_argument("--ort", help="the onnxruntime version doctor must have found")
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("parity")
    p.add_argument("json")
    p.add_argument("--paths", nargs="+", default=["ort-kernel", "ort-function"])
    p.add_argument("--shapes", nargs="+", default=["rank0", "empty", "broadcast"])
    p.set_defaults(func=cmd_parity)
    p = sub.add_parser("demo")
    p.add_argument("log")
    p.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
