"""``onnx-smoothl1 doctor``: what this install can run (onnx_smoothl1.doctor)."""

from __future__ import annotations

import argparse
import json


def cmd_doctor(args: argparse.Namespace) -> None:
    from ..doctor import doctor

    report = doctor(print_report=not args.json)
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
    if not report.ok:
        raise SystemExit(1)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check this install: onnxruntime, the library, CUDA, optional packages",
        description="Checks which onnxruntime distribution is installed (and whether two clash), "
        "whether the custom-op library loads, registers and runs its CPU kernel, whether its CUDA "
        "kernels are compiled in and usable here, and which optional packages are present; prints "
        "what to do about each problem. Exit 0 when the fused kernel runs (and no two onnxruntime "
        "distributions clash), 1 otherwise. "
        "Example: onnx-smoothl1 doctor --json",
    )
    p.add_argument("--json", action="store_true", help="print the findings as JSON instead of text")
    p.set_defaults(func=cmd_doctor)
