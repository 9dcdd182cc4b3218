"""Results of a grid run: per-case results, path x dtype cells, and the report (text,
Markdown, JSON), plus the environment it ran in (versions, CPU and its instruction-set level:
some runtimes pick kernels, and so summation orders, by the CPU's instruction set)."""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .. import oracle
from .cases import SHAPES, Case

PASS, FAIL, UNSUPPORTED = "pass", "fail", "unsupported"


@dataclass
class CaseResult:
    path: str
    case: Case
    status: str
    max_abs: float = 0.0
    max_rel: float = 0.0
    detail: str = ""
    #: for a case classified by a known limit: whether it met SPEC on this machine anyway
    spec_ok: bool | None = None


@dataclass
class Cell:
    """One path x dtype entry of the matrix, aggregated over its cases."""

    path: str
    dtype: str
    results: list[CaseResult] = field(default_factory=list)
    baseline: bool = False

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def status(self) -> str:
        if self.count(FAIL):
            return FAIL
        if self.count(PASS):
            return PASS
        return UNSUPPORTED

    def _worst(self, attr: str) -> float:
        vals = [getattr(r, attr) for r in self.results if r.status in (PASS, FAIL)]
        vals = [v for v in vals if np.isfinite(v)]
        return max(vals) if vals else 0.0

    @property
    def max_abs(self) -> float:
        return self._worst("max_abs")

    @property
    def max_rel(self) -> float:
        return self._worst("max_rel")

    def grouped(self, status: str = UNSUPPORTED) -> dict[str, list[CaseResult]]:
        """Distinct reasons -> the cases with that reason; the worst measured error (when
        the path ran but is outside SPEC for a known reason) is appended to the reason."""
        groups: dict[str, list[CaseResult]] = {}
        for r in self.results:
            if r.status == status:
                groups.setdefault(r.detail, []).append(r)
        out = {}
        for reason, results in groups.items():
            measured = [r for r in results if np.isfinite(r.max_abs) or np.isfinite(r.max_rel)]
            if measured:
                a = max(np.nan_to_num(r.max_abs, nan=0.0) for r in measured)
                b = max(np.nan_to_num(r.max_rel, nan=0.0) for r in measured)
                reason = f"{reason} (measured worst: abs {a:.3g}, rel {b:.3g})"
            judged = [r for r in results if r.spec_ok is not None]
            if judged:
                met = sum(bool(r.spec_ok) for r in judged)
                reason = f"{reason}; within SPEC on this machine: {met}/{len(judged)}"
            out[reason] = results
        return out

    def reasons(self, status: str = UNSUPPORTED) -> dict[str, int]:
        """Distinct reasons -> case count."""
        return {k: len(v) for k, v in self.grouped(status).items()}

    def summary(self) -> str:
        n = len(self.results)
        if self.status == UNSUPPORTED:
            reasons = self.reasons()
            return "unsupported: " + "; ".join(reasons) if reasons else "unsupported"
        if self.baseline:
            return f"reference row: abs {self.max_abs:.2g} rel {self.max_rel:.2g} ({n} cases)"
        text = (
            f"{self.status.upper()} {self.count(PASS)}/{n} abs {self.max_abs:.2g} "
            f"rel {self.max_rel:.2g}"
        )
        if self.count(FAIL):
            text += f" ({self.count(FAIL)} failed)"
        if self.count(UNSUPPORTED):
            text += f" ({self.count(UNSUPPORTED)} unsupported)"
        return text


@dataclass
class Report:
    paths: list[str]
    dtypes: list[str]
    cells: dict[tuple[str, str], Cell]
    cases: list[Case]
    notes: dict[str, str]
    environment: dict[str, str]
    seconds: float = 0.0
    titles: dict[str, str] = field(default_factory=dict)
    #: path -> what really executed, as its path proved it ("kernel", "function (inlined by
    #: ORT)", "inlined model", "<EP> ran the compute nodes"), per dtype where they differ
    ran: dict[str, str] = field(default_factory=dict)
    #: path -> seconds spent running its cases (set-up included: imports, compiles)
    path_seconds: dict[str, float] = field(default_factory=dict)
    #: the run was interrupted (Ctrl-C): the cells hold only the results done by then
    partial: bool = False

    @property
    def ok(self) -> bool:
        """True when no supported case failed (every supported cell passes) and the whole
        grid ran."""
        return not self.partial and all(c.status != FAIL for c in self.cells.values())

    def partial_line(self) -> str:
        done = sum(len(c.results) for c in self.cells.values())
        total = len(self.cases) * len(self.paths)
        return f"PARTIAL: interrupted (Ctrl-C) after {done} of {total} case results; the rest did not run"

    def failures(self) -> list[CaseResult]:
        return [r for c in self.cells.values() for r in c.results if r.status == FAIL]

    def verdicts(self) -> dict[str, str]:
        """``path/dtype/case label`` -> pass/fail/unsupported: what must not change between
        two runs of the same grid (errors may differ in the last digits; verdicts may not)."""
        return {
            f"{r.path}/{r.case.label}": r.status
            for cell in self.cells.values()
            for r in cell.results
        }

    # ---------------------------------------------------------------- text and Markdown
    def text(self, width: int | None = None) -> str:
        """The matrix and its notes as text. ``width`` (a terminal's columns): every line is
        cut to fit, cells ending in "~" where cut; the full reasons are in ``markdown()``
        (``--report``). None: cells up to 60 characters, notes whole (logs, files)."""
        head = ["path"] + self.dtypes
        rows = [[p] + [self.cells[p, d].summary() for d in self.dtypes] for p in self.paths]
        widths = [min(60, max(len(r[i]) for r in [head, *rows])) for i in range(len(head))]
        if width is not None and sum(widths) + 2 * (len(widths) - 1) > width:
            room = max(8, (width - widths[0] - 2 * (len(widths) - 1)) // max(1, len(self.dtypes)))
            widths = [widths[0]] + [min(w, room) for w in widths[1:]]
        lines = [
            f"parity grid: {len(self.cases)} cases x {len(self.paths)} paths "
            f"({self.seconds:.1f} s); errors vs {_reference_name()}; cpu "
            f"{self.environment.get('cpu', '?')} ({self.environment.get('isa', '?')})",
            "  ".join(h.ljust(w) for h, w in zip(head, widths)),
        ]
        def cut(v: str, w: int) -> str:
            return v.ljust(w) if len(v) <= w else v[: w - 1] + "~"

        for r in rows:
            lines.append("  ".join(cut(v, w) for v, w in zip(r, widths)))
        lines.append("")
        for p in self.paths:
            if self.ran.get(p):
                lines.append(f"  ran {p}: {self.ran[p]}")
        for (p, d), cell in self.cells.items():
            if cell.status == UNSUPPORTED and len(cell.reasons()) <= 1:
                continue  # already in the matrix
            for reason, n in cell.reasons().items():
                lines.append(f"  {p} {d}: {n} case(s) unsupported: {reason}")
        for failed in self.failures()[:30]:
            lines.append(f"  FAIL {failed.path} {failed.case.label}: {failed.detail}")
        for p, note in self.notes.items():
            lines.append(f"  note {p}: {note}")
        if self.path_seconds:
            times = ", ".join(f"{p} {s:.1f}" for p, s in self.path_seconds.items())
            lines.append(f"  seconds per path (worker paths run side by side: their times overlap): {times}")
        lines.append("OK: every supported cell passes" if self.ok else "FAILED")
        if width is not None and any(len(line) > width for line in lines):
            lines = [line if len(line) <= width else line[: width - 1] + "~" for line in lines]
            lines.append("(cut to the terminal's width; --report PATH.md has every reason in full)"[:width])
        return "\n".join(lines)

    def _grid_parts(self) -> str:
        """The grid in words, one term per loss: ``SmoothL1Loss: shapes {..} x dtypes {..} x
        beta {..} x reduction {..} + HuberLoss: ...`` (case labels name Huber's delta)."""
        parts = []
        for loss in dict.fromkeys(c.loss for c in self.cases):
            cases = [c for c in self.cases if c.loss == loss]
            shapes = sorted({c.shape for c in cases}, key=list(SHAPES).index)
            values = ", ".join(f"{v:g}" for v in sorted({c.beta for c in cases}))
            reductions = ", ".join(sorted({c.reduction for c in cases}))
            parts.append(
                f"{len(cases)} {cases[0].op_type} (shapes {{{', '.join(shapes)}}} x dtypes "
                f"{{{', '.join(self.dtypes)}}} x {cases[0].param_name} {{{values}}} x reduction "
                f"{{{reductions}}})"
            )
        return " + ".join(parts)

    def markdown(self) -> str:
        env = ", ".join(f"{k} {v}" for k, v in self.environment.items())
        out = [
            "# SmoothL1Loss / HuberLoss parity report",
            "",
            f"Generated by `onnx-smoothl1 parity` in {self.seconds:.1f} s. Environment: {env}.",
            "",
            *([f"**{self.partial_line()}**", ""] if self.partial else []),
            f"Grid: {len(self.cases)} cases = {self._grid_parts()}, each run "
            f"through every path and compared with {_reference_name(long=True)} (`oracle.compare`, SPEC "
            "tolerances). Cells: PASS/FAIL, cases passed / cases, worst absolute and relative "
            "error over the passing and failing cases, or why the path does not support them. "
            "The torch row is PyTorch in the inputs' own dtype, shown for reference (never a "
            "failure).",
            "",
            "| path | " + " | ".join(self.dtypes) + " |",
            "|---|" + "---|" * len(self.dtypes),
        ]
        for p in self.paths:
            cells = [self.cells[p, d].summary().replace("|", "\\|") for d in self.dtypes]
            out.append(f"| {p} | " + " | ".join(cells) + " |")
        out += ["", f"**Result: {'every supported cell passes' if self.ok else 'FAILURES'}**", ""]
        if self.titles or self.ran:
            out += ["Paths (what ran: what the path proved executed):", ""]
            for p in self.paths:
                title = self.titles.get(p, "")
                ran = self.ran.get(p) or "nothing (no case ran)"
                out.append(f"- `{p}`: {title}. What ran: {ran}.")
            out.append("")
        details = []
        for (p, d), cell in self.cells.items():
            groups = cell.grouped()
            if cell.status == UNSUPPORTED and len(groups) == 1:
                continue
            for reason, results in groups.items():
                n = len(results)
                cases = [r.case.label for r in results][:4]
                details.append(
                    f"- {p}, {d}: {n} case(s) unsupported ({', '.join(cases)}"
                    f"{', ...' if n > 4 else ''}): {reason}"
                )
        if details:
            out += ["## Unsupported cases inside supported cells", "", *details, ""]
        if self.failures():
            out += ["## Failures", ""]
            out += [f"- {r.path} {r.case.label}: {r.detail}" for r in self.failures()[:100]]
            out.append("")
        if self.notes:
            out += ["## Notes", ""] + [f"- **{p}**: {n}" for p, n in self.notes.items()] + [""]
        if self.path_seconds:
            times = ", ".join(f"{p} {s:.1f}" for p, s in self.path_seconds.items())
            out += [f"Seconds per path (its cases, set-up included; the paths in worker processes run "
                    f"side by side, so their times overlap): {times}.", ""]
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "partial": self.partial,
            "environment": self.environment,
            "cases": len(self.cases),
            "losses": {
                loss: sum(c.loss == loss for c in self.cases)
                for loss in dict.fromkeys(c.loss for c in self.cases)
            },
            "seconds": self.seconds,
            "ran": self.ran,
            "path_seconds": self.path_seconds,
            "cells": {
                f"{p}/{d}": {
                    "status": c.status,
                    "passed": c.count(PASS),
                    "failed": c.count(FAIL),
                    "unsupported": c.count(UNSUPPORTED),
                    "max_abs": c.max_abs,
                    "max_rel": c.max_rel,
                    "reasons": c.reasons(),
                }
                for (p, d), c in self.cells.items()
            },
            "notes": self.notes,
            "verdicts": self.verdicts(),
        }


# --------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------

#: x86-64 micro-architecture levels (the psABI's), as /proc/cpuinfo flag sets.
_X86_LEVELS: tuple[tuple[str, frozenset[str]], ...] = (
    ("x86-64-v2", frozenset({"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"})),
    ("x86-64-v3", frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"})),
    ("x86-64-v4", frozenset({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"})),
)
#: Flags beyond the levels that change which kernels runtimes pick for half types.
_EXTRA_FLAGS = ("avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16", "avx_vnni")


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    return set()


def isa_level(flags: set[str] | None = None) -> str:
    """The CPU's instruction-set level, e.g. ``x86-64-v3 (no avx512)`` or ``x86-64-v4 +
    avx512_bf16, amx_bf16``: runtimes such as OpenVINO choose kernels by it."""
    flags = cpu_flags() if flags is None else flags
    if not flags:
        return f"{platform.machine()} (no /proc/cpuinfo flags)"
    if "sse2" not in flags and "lm" not in flags:
        return f"{platform.machine()} (flags: {', '.join(sorted(flags)[:8])} ...)"
    level = "x86-64"
    for name, needed in _X86_LEVELS:
        if not needed <= flags:
            break
        level = name
    extras = [f for f in _EXTRA_FLAGS if f in flags]
    if extras:
        return f"{level} + {', '.join(extras)}"
    return level + ("" if "avx512f" in flags else " (no avx512)")


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    return f"{platform.processor() or platform.machine()} x{os.cpu_count()}"


def environment() -> dict[str, str]:
    """Versions, the CPU and its instruction-set level, for the report's header."""
    from importlib.metadata import version

    import onnxruntime as ort

    env = {
        "python": platform.python_version(),
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "cpu": cpu_name(),
        "isa": isa_level(),
    }
    for mod in ("torch", "openvino", "tract", "onnxruntime_extensions"):
        with contextlib.suppress(Exception):
            env[mod] = version(mod.replace("_", "-"))
    return env


def _reference_name(long: bool = False) -> str:
    """What the errors are measured against: PyTorch in float64, or, without torch, the oracle's
    numpy float64 formula (``oracle.reference`` falls back to it)."""
    if oracle.has_torch():
        return "PyTorch in float64" if long else "torch float64"
    return "the numpy float64 reference (torch is not installed)" if long else "numpy float64 (no torch)"
