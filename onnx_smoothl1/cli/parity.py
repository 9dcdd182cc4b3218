"""The parity and benchmark commands: ``parity`` and ``bench``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..files import check_writable, write_text
from ._common import UsageError
from ._common import load_model as _load_model
from ._common import load_npy as _load_npy
from ._common import split as _split


def _cmd_parity(args: argparse.Namespace) -> None:
    from .. import parity, progress, spec

    paths = _split(args.paths)
    if paths:
        unknown = [p for p in paths if p not in parity.PATHS]
        if unknown:
            raise UsageError(f"--paths: unknown {', '.join(unknown)}; choose from {', '.join(parity.PATHS)}")
    if args.write_cases is not None and args.model is not None:
        raise UsageError("--write-cases writes the grid; it does not take --model")
    if args.model is None:
        if args.inputs:
            raise UsageError("--inputs needs --model")
        dtypes = _split(args.dtypes) or list(spec.DTYPES)
        for d in dtypes:
            spec.check_dtype(d, name="--dtypes")
        losses = _split(args.losses) or list(spec.LOSSES)
        for loss in losses:
            spec.check_loss(loss, name="--losses")
        if args.write_cases is not None:
            _write_cases(args.write_cases, dtypes, args.quick, losses)
            return
        # Output paths are checked before the grid runs (minutes), not after.
        if args.report:
            check_writable(args.report, arg="--report")
        if args.json:
            check_writable(args.json, arg="--json")
        # One unit per (case, path) result: the compiler paths run after the others.
        total = len(parity.grid(dtypes, quick=args.quick, losses=losses)) * len(paths or parity.PATHS)
        with progress.bar(total, "parity", quiet=args.quiet or args.verbose, unit="result") as bar:
            def done(label: str, units: int) -> None:
                if args.verbose:
                    print(f"  {label}", file=sys.stderr)
                bar.done(count=units)

            from ..parity.run import GridInterrupted, PathUnavailable

            try:
                report = parity.run_grid(
                    dtypes, paths=paths, quick=args.quick, losses=losses, progress=done, now=bar.now,
                    require=bool(paths) and not args.allow_missing,  # a path asked for by name must run
                )
            except GridInterrupted as exc:
                report = exc.report
            except PathUnavailable as exc:
                raise UsageError(f"--paths: {exc.name} is not available here: {exc.reason} "
                                 "(add --allow-missing to run the other paths)") from exc
        if report.partial:  # Ctrl-C: what ran is written (marked partial), then exit 130
            if args.report:
                _write(args.report, report.markdown())
            if args.json:
                import json

                _write(args.json, json.dumps(report.to_json(), indent=2, default=float), arg="--json")
            raise KeyboardInterrupt
        print(report.text(width=_terminal_width()))
        if args.report:
            _write(args.report, report.markdown())
        if args.json:
            import json

            _write(args.json, json.dumps(report.to_json(), indent=2, default=float), arg="--json")
        if not report.ok:
            raise SystemExit(1)
        return
    if args.report:
        check_writable(args.report, arg="--report")
    model = _load_model(args.model, arg="--model")
    given = {}
    for item in _split(args.inputs) or []:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise UsageError(f"--inputs: expected NAME=FILE.npy, got {item!r}")
        given[name] = _load_npy(file, f"--inputs {name}")
    result = parity.run_model_file(model, given, paths=paths)
    print(f"{args.model}: outputs {', '.join(result.outputs)}")
    print(result.text())
    if args.report:
        _write(args.report, result.markdown())
    if not result.ok:
        raise SystemExit(1)


def _write_cases(directory: str, dtypes: list[str], quick: bool, losses: list[str]) -> None:
    from ..parity import grid
    from ..parity.write_cases import write_cases

    folders = write_cases(directory, grid(dtypes, quick=quick, losses=losses))
    print(f"wrote {len(folders)} cases (model.onnx + test_data_set_0/input_0.pb, input_1.pb, "
          f"output_0.pb) under {directory}")


def _terminal_width() -> int | None:
    """The terminal's columns when stdout is one (the table is cut to fit); None otherwise
    (a log or a pipe keeps the whole lines)."""
    import shutil

    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def _write(path: str, text: str, arg: str = "--report") -> None:
    write_text(path, text, arg=arg)
    print(f"wrote {path}")


def _cmd_bench(args: argparse.Namespace) -> None:
    if args.output and not args.from_results:  # benchmarks take minutes: check first
        out = Path(args.output)
        check_writable(out / "REPORT.md" if out.is_dir() else out, arg="--output")
    root = Path(args.root) if args.root else Path(__file__).resolve().parents[2]
    if not (root / "benchmarks").is_dir():
        raise UsageError(f"no benchmarks/ directory under {root} (run from a source checkout or pass --root)")
    import importlib.util

    spec = importlib.util.spec_from_file_location("_smoothl1_bench_report", root / "benchmarks" / "report.py")
    if spec is None or spec.loader is None or not (root / "benchmarks" / "report.py").is_file():
        raise UsageError(f"{root / 'benchmarks' / 'report.py'} not found")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    code = report.main(
        root=root,
        quick=args.quick,
        cpu=not args.no_cpu,
        gpu=args.gpu,
        from_results=args.from_results,
        output=args.output,
        quiet=args.quiet,
    )
    if code:
        raise SystemExit(code)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "parity",
        help="run every available path against PyTorch and print a parity matrix",
        description=(
            "Without --model: run the parity grid (shapes incl. rank 0, empty, broadcasting; "
            "every dtype; betas incl. 0; every reduction) through every available path and "
            "compare each with PyTorch float64 under SPEC tolerances. Exit code 1 when a "
            "supported cell fails. With --model: run a model containing the node through "
            "every path that can run it and print the largest difference between paths."
        ),
    )
    p.add_argument("--dtypes", nargs="+", help="subset of float16 bfloat16 float32 float64")
    from ..parity import PATHS

    p.add_argument("--paths", nargs="+", help=f"subset of {' '.join(PATHS)} (default: all)")
    p.add_argument("--allow-missing", action="store_true",
                   help="run the --paths that are available and report the others as unsupported "
                   "(default: a named path that cannot run here is an error)")
    p.add_argument("--quick", action="store_true", help="a smaller grid")
    p.add_argument("--losses", nargs="+", metavar="LOSS",
                   help="subset of smooth_l1 huber (default: both)")
    p.add_argument("--report", metavar="PATH.md", help="also write the matrix as Markdown")
    p.add_argument("--json", metavar="PATH.json", help="also write the results as JSON")
    p.add_argument("--model", metavar="PATH", help="a user's .onnx model containing the node")
    p.add_argument("--inputs", nargs="+", metavar="NAME=FILE.npy",
                   help="inputs for --model (the rest are random from declared shapes)")
    p.add_argument("--write-cases", metavar="DIR",
                   help="do not run: write the grid (with --quick/--dtypes) in the ONNX backend-test "
                   "layout, DIR/<case>/model.onnx + test_data_set_0/{input_0,input_1,output_0}.pb, "
                   "the expected output being the float64 reference rounded to the dtype")
    p.add_argument("-v", "--verbose", action="store_true", help="print each case as it runs")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar (it is drawn on stderr only when stderr is a terminal)")
    p.set_defaults(func=_cmd_parity)

    p = sub.add_parser(
        "bench",
        help="run the benchmarks and write benchmarks/results/REPORT.md",
        description=(
            "Runs benchmarks/cpu.py (and benchmarks/gpu.py when onnxruntime has the CUDA EP, "
            "or with --gpu) and writes REPORT.md with tables, plots, machine and versions."
        ),
    )
    p.add_argument("--quick", action="store_true", help="small sizes only (smoke run)")
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU benchmark")
    p.add_argument("--gpu", action="store_true", default=None,
                   help="run the GPU benchmark (default: when CUDAExecutionProvider exists)")
    p.add_argument("--from-results", action="store_true",
                   help="do not run anything: rebuild REPORT.md from benchmarks/results/*.json")
    p.add_argument("--output", metavar="PATH.md", help="default benchmarks/results/REPORT.md")
    p.add_argument("--root", help="source checkout holding benchmarks/ (default: this package's)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar (drawn on stderr only when stderr is a terminal)")
    p.set_defaults(func=_cmd_bench)
