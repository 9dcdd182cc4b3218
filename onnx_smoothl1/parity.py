"""Cross-runtime parity runner: every available path against PyTorch, on one grid of cases.

``run_grid()`` builds a grid of cases (shape x dtype x beta x reduction), runs each case
through every execution path that is available here, and compares each output with PyTorch
in float64 through :func:`onnx_smoothl1.oracle.compare` (SPEC tolerances; nothing here
defines a tolerance of its own). The result is a path x dtype matrix: pass / fail with the
worst absolute and relative errors, or "unsupported: <reason>".

Paths (``PATHS``), each detected at run time:

- ``torch``: ``F.smooth_l1_loss`` in the inputs' own dtype (what users compare against);
- ``ort-function``: onnxruntime running the model-local function (no library);
- ``ort-kernel``: onnxruntime with the compiled fused CPU kernel (``has_custom_op()``);
- ``ort-cuda``: the library's CUDA kernel (needs ``CUDAExecutionProvider``);
- ``python-op``: the onnxruntime-extensions Python op on a node-only model;
- ``onnx-reference``: ``onnx.reference.ReferenceEvaluator`` on the function model;
- ``openvino``: OpenVINO CPU (``INFERENCE_PRECISION_HINT="f32"``) on the inlined model;
- ``tract``: tract on the inlined model, in a worker subprocess (tract 0.23 aborts the whole
  process with a Rust panic on some inputs, e.g. reducing an empty 1-D tensor).

What counts as "unsupported" rather than "fail" (everything else that does not match is a
failure):

- the path is not available (package not installed, library not built, no CUDA EP, or named
  in ``ONNX_SMOOTHL1_PARITY_DISABLE``), with the reason;
- a path of ours rejects a case with a clear error where SPEC allows it (a kernel that only
  takes equal shapes rejecting broadcasting; the Python op refusing float16/bfloat16);
- a third-party runtime (OpenVINO, tract) raises an error or crashes on a case, or is known
  to compute a dtype at lower precision (OpenVINO's CPU plugin computes float64 in float32):
  the measured error is shown with the reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import importlib.util
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from . import oracle, spec

#: Comma-separated path names to treat as unavailable (tests, or to skip a slow runtime).
DISABLE_ENV = "ONNX_SMOOTHL1_PARITY_DISABLE"

PASS, FAIL, UNSUPPORTED = "pass", "fail", "unsupported"

# --------------------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------------------

#: label -> (input shape, target shape). Rank 0, size 1, empty (1-D and 3-D), odd sizes,
#: numpy broadcasting, and one size large enough for a multi-block / multithreaded kernel.
SHAPES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "rank0": ((), ()),
    "one": ((1,), (1,)),
    "empty": ((0,), (0,)),
    "empty3d": ((2, 0, 3), (2, 0, 3)),
    "3x4x5": ((3, 4, 5), (3, 4, 5)),
    "broadcast": ((4, 1, 3), (5, 3)),
    "odd": ((7, 129), (7, 129)),
    "large": ((2**17 + 3,), (2**17 + 3,)),
    "nonfinite": ((16,), (16,)),
}
#: beta == 0 (plain L1), a beta not exact in float32, the default, and a large one.
BETAS: tuple[float, ...] = (0.0, 0.3, 1.0, 7.5)
DTYPES: tuple[str, ...] = tuple(spec.DTYPES)

#: A smaller grid for quick checks and the test suite.
QUICK_SHAPES = ("rank0", "empty", "broadcast", "odd", "nonfinite")
QUICK_BETAS = (0.0, 1.0)


@dataclass(frozen=True)
class Case:
    shape: str
    dtype: str
    beta: float
    reduction: str

    @property
    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return SHAPES[self.shape]

    @property
    def label(self) -> str:
        return f"{self.shape}/{self.dtype}/beta={self.beta:g}/{self.reduction}"


def grid(
    dtypes: Sequence[str] = DTYPES,
    *,
    shapes: Sequence[str] | None = None,
    betas: Sequence[float] | None = None,
    reductions: Sequence[str] = spec.REDUCTIONS,
    quick: bool = False,
) -> list[Case]:
    """The cases: every shape x dtype x beta x reduction (``quick`` takes a subset)."""
    shapes = list(shapes) if shapes is not None else list(QUICK_SHAPES if quick else SHAPES)
    betas = list(betas) if betas is not None else list(QUICK_BETAS if quick else BETAS)
    for s in shapes:
        if s not in SHAPES:
            raise ValueError(f"unknown shape {s!r}; choose from {', '.join(SHAPES)}")
    dtypes = [spec.check_dtype(d, name="dtypes") for d in dtypes]
    for r in reductions:
        spec.check_reduction(r)
    return [
        Case(s, d, spec.check_beta(b), r)
        for d in dtypes
        for s in shapes
        for b in betas
        for r in reductions
    ]


def make_inputs(case: Case, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs whose |x - y| spans ~1e-4 .. ~20, so every beta in BETAS splits them.

    The ``nonfinite`` shape also holds NaN, +-inf and +-0 (in both inputs, inf - inf too).
    """
    sx, sy = case.shapes
    rng = np.random.default_rng([seed, list(SHAPES).index(case.shape)])
    npdt = oracle.NUMPY_DTYPES[case.dtype]
    scale = np.exp(rng.uniform(np.log(1e-4), np.log(10.0), size=sx))
    x = np.asarray(rng.standard_normal(sx) * scale)
    y = np.asarray(rng.standard_normal(sy) * 2.0)
    if case.shape == "nonfinite":
        x[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, np.inf]
        y[:6] = [1.0, 2.0, 3.0, -0.0, 0.0, np.inf]  # last pair: inf - inf = NaN
        y[7] = np.nan
    return x.astype(npdt), y.astype(npdt)


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


class Unsupported(Exception):
    """Raised by a path for a case (or a whole dtype) it does not support, with the reason.

    ``max_abs``/``max_rel`` carry the measured error when the path ran but is known to be
    less accurate than SPEC (``KNOWN_LIMITS``).
    """

    def __init__(self, reason: str, max_abs: float = np.nan, max_rel: float = np.nan):
        super().__init__(reason)
        self.max_abs, self.max_rel = max_abs, max_rel


@dataclass
class CaseResult:
    path: str
    case: Case
    status: str
    max_abs: float = 0.0
    max_rel: float = 0.0
    detail: str = ""


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
        the path ran, see ``KNOWN_LIMITS``) is appended to the reason."""
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

    @property
    def ok(self) -> bool:
        """True when no supported case failed (every supported cell passes)."""
        return all(c.status != FAIL for c in self.cells.values())

    def failures(self) -> list[CaseResult]:
        return [r for c in self.cells.values() for r in c.results if r.status == FAIL]

    # ---------------------------------------------------------------- text and Markdown
    def text(self) -> str:
        head = ["path"] + self.dtypes
        rows = [[p] + [self.cells[p, d].summary() for d in self.dtypes] for p in self.paths]
        widths = [min(60, max(len(r[i]) for r in [head, *rows])) for i in range(len(head))]
        lines = [
            f"parity grid: {len(self.cases)} cases x {len(self.paths)} paths "
            f"({self.seconds:.1f} s); errors vs torch float64",
            "  ".join(h.ljust(w) for h, w in zip(head, widths)),
        ]
        for r in rows:
            lines.append("  ".join(v[:w].ljust(w) for v, w in zip(r, widths)))
        lines.append("")
        for (p, d), cell in self.cells.items():
            if cell.status == UNSUPPORTED and len(cell.reasons()) <= 1:
                continue  # already in the matrix
            for reason, n in cell.reasons().items():
                lines.append(f"  {p} {d}: {n} case(s) unsupported: {reason}")
        for r in self.failures()[:30]:
            lines.append(f"  FAIL {r.path} {r.case.label}: {r.detail}")
        for p, note in self.notes.items():
            lines.append(f"  note {p}: {note}")
        lines.append("OK: every supported cell passes" if self.ok else "FAILED")
        return "\n".join(lines)

    def markdown(self) -> str:
        env = ", ".join(f"{k} {v}" for k, v in self.environment.items())
        shapes = sorted({c.shape for c in self.cases}, key=list(SHAPES).index)
        betas = sorted({c.beta for c in self.cases})
        out = [
            "# SmoothL1Loss parity report",
            "",
            f"Generated by `onnx-smoothl1 parity` in {self.seconds:.1f} s. Environment: {env}.",
            "",
            f"Grid: {len(self.cases)} cases = shapes {{{', '.join(shapes)}}} x dtypes "
            f"{{{', '.join(self.dtypes)}}} x beta {{{', '.join(f'{b:g}' for b in betas)}}} x "
            f"reduction {{{', '.join(sorted({c.reduction for c in self.cases}))}}}, each run "
            "through every path and compared with PyTorch in float64 (`oracle.compare`, SPEC "
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
        if self.titles:
            out += ["Paths:", ""] + [f"- `{p}`: {t}" for p, t in self.titles.items()] + [""]
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
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "environment": self.environment,
            "cases": len(self.cases),
            "seconds": self.seconds,
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
        }


# --------------------------------------------------------------------------------------
# Model helpers
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _function_model(beta: float, reduction: str, dtype: str) -> bytes:
    from .model import make_model

    return make_model(beta=beta, reduction=reduction, dtype=dtype).SerializeToString()


def node_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` without the SmoothL1Loss FunctionProto (custom-op models)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [f for f in out.functions if (f.domain, f.name) != (spec.DOMAIN, spec.OP_TYPE)]
    del out.functions[:]
    out.functions.extend(kept)
    return out


def _with_input_dims(
    model: onnx.ModelProto, dims: Mapping[str, Sequence[int | str]]
) -> onnx.ModelProto:
    """A copy of ``model`` whose named graph inputs declare ``dims`` (int: fixed, str: symbolic)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for value in out.graph.input:
        if value.name not in dims:
            continue
        tensor = value.type.tensor_type
        tensor.ClearField("shape")
        tensor.shape.SetInParent()
        for d in dims[value.name]:
            if isinstance(d, str):
                tensor.shape.dim.add().dim_param = d
            else:
                tensor.shape.dim.add().dim_value = int(d)
    return out


def with_static_shapes(
    model: onnx.ModelProto, shapes: Mapping[str, tuple[int, ...]]
) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs declare these concrete shapes.

    OpenVINO's CPU plugin rejects inputs of unknown rank and tract wants known shapes.
    """
    return _with_input_dims(model, shapes)


def with_ranks(model: onnx.ModelProto, ranks: Mapping[str, int]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs have these ranks, every dimension symbolic."""
    return _with_input_dims(model, {k: [f"{k}_d{i}" for i in range(r)] for k, r in ranks.items()})


def has_smoothl1_function(model: onnx.ModelProto) -> bool:
    return (spec.DOMAIN, spec.OP_TYPE) in {(f.domain, f.name) for f in model.functions}


def inline_model(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """The model with the function inlined and the custom domain dropped, and which tool did it.

    Uses the project's ``onnx_smoothl1.inline.inline`` when it is importable, else
    ``onnx.inliner`` plus dropping the domain import.
    """
    try:
        from .inline import inline  # the exporter issue's inliner
    except ImportError:
        import onnx.inliner

        work = onnx.ModelProto()
        work.CopyFrom(model)
        if not has_smoothl1_function(work):
            from .function import attach_function

            attach_function(work)
        out = onnx.inliner.inline_local_functions(work)
        keep = [o for o in out.opset_import if o.domain != spec.DOMAIN]
        del out.opset_import[:]
        out.opset_import.extend(keep)
        return out, "onnx.inliner (onnx_smoothl1.inline not available)"
    return inline(model, check=False), "onnx_smoothl1.inline.inline"


def specialise(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold the inlined function's reduction probe and ``If`` nodes away.

    Each inlined copy of the body knows its node's ``reduction``, so the
    NegativeLogLikelihoodLoss probe is a constant and both ``If`` conditions are constants:
    onnxscript's optimizer folds them and keeps only the selected branch. tract needs this
    (it has no NegativeLogLikelihoodLoss, and it cannot type an ``If`` whose branches return
    different ranks).
    """
    import onnxscript.optimizer

    out = onnxscript.optimizer.optimize(model)
    return out if isinstance(out, onnx.ModelProto) else onnx.ModelProto.FromString(out)


def _op_types(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in spec.walk_nodes(model.graph.node)}


# --------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------


class ParityPath:
    """One way of running the node. Subclasses implement ``_why_unavailable`` and ``run``."""

    name = ""
    title = ""
    #: our own implementation (errors are failures) vs a third-party runtime (errors are
    #: reported as unsupported with the runtime's message)
    third_party = False
    #: can run an arbitrary user model (``--model``)
    runs_models = True
    #: the oracle itself in the inputs' dtype: shown for reference, never a failure
    baseline = False

    def __init__(self) -> None:
        self.notes: list[str] = []

    @functools.cached_property
    def unavailable(self) -> str | None:
        disabled = {p.strip() for p in os.environ.get(DISABLE_ENV, "").split(",") if p.strip()}
        if self.name in disabled:
            return f"disabled by {DISABLE_ENV}"
        try:
            return self._why_unavailable()
        except Exception as exc:  # an import that fails in an unexpected way
            return f"{type(exc).__name__}: {_first_line(exc)}"

    def _why_unavailable(self) -> str | None:
        return None

    def run_case(self, case: Case, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Run one grid case (a one-node model); default: build the model and ``run_model``."""
        model = onnx.ModelProto.FromString(_function_model(case.beta, case.reduction, case.dtype))
        return self.run_model(model, {"input": x, "target": y}, key=case)[0]

    def run_model(
        self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], key: object = None
    ) -> list[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _first_line(exc: BaseException, limit: int = 240) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:limit] + ("..." if len(text) > limit else "")


def _import_reason(module: str, extra: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install 'onnx-smoothl1[{extra}]')"
    return None


class TorchPath(ParityPath):
    name = "torch"
    title = "PyTorch eager F.smooth_l1_loss in the inputs' dtype"
    runs_models = False
    baseline = True

    def _why_unavailable(self) -> str | None:
        if not oracle.has_torch():
            return "torch is not installed (pip install 'onnx-smoothl1[torch]'); the oracle is numpy float64"
        return None

    def run_case(self, case, x, y):
        return oracle.torch_same_dtype(x, y, beta=case.beta, reduction=case.reduction)


class _OrtPath(ParityPath):
    custom_op: object = False
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

    def __init__(self) -> None:
        super().__init__()
        self._sessions: dict[object, object] = {}
        self._proved: set[str] = set()
        self._refused: dict[str, str] = {}

    def _model_for(self, model: onnx.ModelProto) -> onnx.ModelProto:
        return model

    def _session(self, model: onnx.ModelProto, key: object):
        from .runtime import inference_session

        cache_key = (key.beta, key.reduction, key.dtype) if isinstance(key, Case) else id(model)
        if cache_key not in self._sessions:
            self._sessions[cache_key] = inference_session(
                self._model_for(model), providers=list(self.providers), custom_op=self.custom_op
            )
        return self._sessions[cache_key]

    def run_model(self, model, feeds, key=None):
        from .runtime import run

        self._prove(model, feeds, key)
        return run(self._session(model, key), feeds)

    def _prove(self, model, feeds, key) -> None:
        """Once per dtype: check (by ORT profiling) that the intended implementation ran."""


class OrtFunctionPath(_OrtPath):
    name = "ort-function"
    title = "onnxruntime, model-local function (no library), CPU"
    custom_op = False

    def _model_for(self, model):
        if has_smoothl1_function(model):
            return model
        from .function import attach_function

        work = onnx.ModelProto()
        work.CopyFrom(model)
        return attach_function(work)


class OrtKernelPath(_OrtPath):
    name = "ort-kernel"
    title = "onnxruntime + fused C++ CPU kernel (compiled library)"
    custom_op = True

    def _why_unavailable(self):
        import onnxruntime as ort

        from .runtime import CustomOpUnavailable, get_library_path

        try:
            path = get_library_path()
        except CustomOpUnavailable as exc:
            return _first_line(exc, 400)
        try:  # the library refuses onnxruntime releases older than its API (1.21)
            ort.SessionOptions().register_custom_ops_library(path)
        except Exception as exc:
            return f"the library does not load into onnxruntime {ort.__version__}: {_first_line(exc)}"
        return None

    def _prove(self, model, feeds, key):
        dtype = key.dtype if isinstance(key, Case) else "model"
        if dtype in self._proved:
            return
        from .runtime import profile_node_ops, ran_fused_kernel

        _, ops = profile_node_ops(
            self._model_for(model), feeds, providers=list(self.providers), custom_op=True
        )
        if not ran_fused_kernel(ops):
            raise RuntimeError(f"the fused kernel did not run (ORT profile shows {sorted(set(ops))})")
        self._proved.add(dtype)


def _profile_providers(model: onnx.ModelProto, feeds, providers, custom_op) -> list[tuple[str, str]]:
    """(op_type, execution provider) of every node event in one profiled run."""
    import onnxruntime as ort

    from .runtime import inference_session, run

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.log_severity_level = 3
        options.profile_file_prefix = os.path.join(tmp, "parity")
        session = inference_session(model, providers=providers, custom_op=custom_op, options=options)
        run(session, feeds)
        with open(session.end_profiling()) as f:
            events = json.load(f)
    return [
        (e["args"].get("op_name", ""), e["args"].get("provider", ""))
        for e in events
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")
    ]


class OrtCudaPath(_OrtPath):
    name = "ort-cuda"
    title = "onnxruntime CUDAExecutionProvider + the library's CUDA kernel"
    custom_op = True
    providers = ("CUDAExecutionProvider", "CPUExecutionProvider")

    def _why_unavailable(self):
        import onnxruntime as ort

        available = ort.get_available_providers()
        if "CUDAExecutionProvider" not in available:
            return (
                f"onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                f"(available: {', '.join(available)})"
            )
        return OrtKernelPath._why_unavailable(self)

    def _prove(self, model, feeds, key):
        dtype = key.dtype if isinstance(key, Case) else "model"
        if dtype in self._refused:
            raise Unsupported(self._refused[dtype])
        if dtype in self._proved:
            return
        events = _profile_providers(model, feeds, list(self.providers), True)
        placed = {p for op, p in events if op == spec.OP_TYPE}
        if not placed:
            raise RuntimeError(f"SmoothL1Loss did not run as one node (profile: {events[:8]})")
        if placed != {"CUDAExecutionProvider"}:
            self._refused[dtype] = (
                f"ORT placed SmoothL1Loss on {', '.join(sorted(placed))}, not CUDA: the library "
                f"has no CUDA kernel for {dtype} (built without CUDA?)"
            )
            raise Unsupported(self._refused[dtype])
        self._proved.add(dtype)


class PythonOpPath(_OrtPath):
    name = "python-op"
    title = "onnxruntime-extensions Python op (node-only model)"
    custom_op = "python"

    def _why_unavailable(self):
        reason = _import_reason("onnxruntime_extensions", "pyop")
        if reason:
            return reason
        if importlib.util.find_spec(f"{__package__}.pyop") is None:
            return "onnx_smoothl1.pyop is not available in this checkout"
        importlib.import_module(f"{__package__}.pyop")
        return None

    def _model_for(self, model):
        return node_only(model)

    def run_model(self, model, feeds, key=None):
        try:
            return super().run_model(model, feeds, key)
        except Exception as exc:
            supported = getattr(importlib.import_module(f"{__package__}.pyop"), "SUPPORTED_DTYPES", None)
            dtypes = {str(np.asarray(v).dtype) for v in feeds.values()}
            if supported is not None and not dtypes <= set(supported):
                raise Unsupported(
                    f"the Python op is declared for {', '.join(supported)} only "
                    "(onnxruntime-extensions aborts the process on half types), so onnxruntime "
                    f"rejects a {', '.join(sorted(dtypes))} node: {_first_line(exc, 120)}"
                ) from exc
            if _is_refusal(exc):
                raise Unsupported(f"the Python op refuses this case: {_first_line(exc)}") from exc
            raise


def _is_refusal(exc: BaseException) -> bool:
    """A deliberate Python-side refusal from our own code (not an ORT or runtime error)."""
    if isinstance(exc, Unsupported):
        return True
    if "onnxruntime" in (type(exc).__module__ or ""):
        return False
    return isinstance(exc, (ValueError, TypeError, NotImplementedError))


class ReferencePath(ParityPath):
    name = "onnx-reference"
    title = "onnx.reference.ReferenceEvaluator on the function model"

    def __init__(self):
        super().__init__()
        self._evals: dict[object, object] = {}

    def run_model(self, model, feeds, key=None):
        from onnx.reference import ReferenceEvaluator

        cache_key = (key.beta, key.reduction, key.dtype) if isinstance(key, Case) else id(model)
        if cache_key not in self._evals:
            if not has_smoothl1_function(model):
                model = OrtFunctionPath._model_for(self, model)
            self._evals[cache_key] = ReferenceEvaluator(model)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            outs = self._evals[cache_key].run(None, dict(feeds))
        return [np.asarray(o) for o in outs]


# ---------------------------------------------------------------- inlined-model runtimes


class _InlinedPath(ParityPath):
    third_party = True

    def __init__(self):
        super().__init__()
        self._inliner = ""
        self._cache: dict[object, Any] = {}

    def _inlined(
        self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], key: object = None
    ) -> onnx.ModelProto:
        """The inlined model: for grid cases with each input's rank declared (dimensions
        symbolic, so one model serves every case of that rank); for a user's model with the
        feeds' concrete shapes."""
        if isinstance(key, Case):
            shaped = with_ranks(model, {k: np.ndim(v) for k, v in feeds.items()})
        else:
            shaped = with_static_shapes(model, {k: np.shape(v) for k, v in feeds.items()})
        out, how = inline_model(shaped)
        if how != self._inliner:
            self._inliner = how
            self.notes.append(f"inlined with {how}")
        return out

    def _cache_key(self, feeds: Mapping[str, np.ndarray], key: object) -> object:
        if not isinstance(key, Case):
            return None
        return (key.beta, key.reduction, key.dtype, tuple(np.ndim(v) for v in feeds.values()))

    def run_case(self, case, x, y):
        model = onnx.ModelProto.FromString(_function_model(case.beta, case.reduction, case.dtype))
        out = self.run_model(model, {"input": x, "target": y}, key=case)[0]
        limit = KNOWN_LIMITS.get((self.name, case.dtype))
        if limit is not None:
            reason, nonfinite_too = limit
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                ref = oracle.reference(x, y, beta=case.beta, reduction=case.reduction)
                verdict = oracle.compare(out, ref, dtype=case.dtype, reduction=case.reduction)
            finite_only = verdict.detail.startswith("max abs")
            if not verdict.ok and (finite_only or nonfinite_too):
                if finite_only:
                    raise Unsupported(reason, verdict.max_abs, verdict.max_rel)
                raise Unsupported(f"{reason} [{verdict.detail}]")
        return out


#: (path, dtype) -> (known lower-precision behaviour of a third-party runtime, whether it
#: also explains NaN/inf mismatches). A case there that misses SPEC's tolerance is reported
#: as unsupported with this reason and the measured error (other mismatches still fail); if
#: a newer release gets it right, the case simply passes.
KNOWN_LIMITS: dict[tuple[str, str], tuple[str, bool]] = {
    ("openvino", "float64"): (
        "OpenVINO's CPU plugin has no float64 arithmetic: it converts f64 models to f32 "
        "(INFERENCE_PRECISION_HINT takes only f32/bf16/f16), accumulates sums in f32, and "
        "saturates +-inf to +-FLT_MAX, so inf - inf gives 0 instead of NaN",
        True,
    ),
}


#: (path, dtype) -> a known limit of a third-party runtime that costs at most one more
#: rounding than PyTorch: a case beyond SPEC's bound is reported unsupported with this
#: reason and the measured error when its result is within 1 ulp of PyTorch's own result
#: element by element (checked in ``_evaluate``); anything further off still fails.
_RECIPROCAL = (
    "divides by the constant beta as a multiplication by 1/beta (one rounding more than "
    "PyTorch's (0.5*d)*d/beta)"
)
ULP_LIMITS: dict[tuple[str, str], str] = {
    ("openvino", "float32"): f"OpenVINO's CPU plugin {_RECIPROCAL}",
    ("tract", "float32"): f"tract {_RECIPROCAL}",
    ("ort-openvino-ep", "float32"): f"OpenVINO {_RECIPROCAL}",
}


def _within_one_ulp(out: np.ndarray, own: np.ndarray, dtype: str) -> bool:
    """Element by element within one ulp of ``own``, with identical NaN/inf positions."""
    out, own = np.asarray(out), np.asarray(own)
    if out.shape != own.shape or out.dtype != own.dtype:
        return False
    with np.errstate(all="ignore"):
        a, b = out.astype(np.float64), own.astype(np.float64)
        if not np.array_equal(np.isnan(a), np.isnan(b)) or not np.array_equal(a[np.isinf(a)], b[np.isinf(a)]):
            return False
        fin = np.isfinite(b)
        spacing = np.abs(np.spacing(own[fin])).astype(np.float64)
        return bool(np.all(np.abs(a[fin] - b[fin]) <= spacing))


class OpenVinoPath(_InlinedPath):
    name = "openvino"
    title = "OpenVINO CPU, INFERENCE_PRECISION_HINT=f32, inlined model"

    def _why_unavailable(self):
        reason = _import_reason("openvino", "runtimes")
        if reason:
            return reason
        import openvino as ov

        self._core = ov.Core()
        if "CPU" not in self._core.available_devices:
            return f"OpenVINO has no CPU device (devices: {self._core.available_devices})"
        self.notes.append(f"openvino {ov.__version__}, CPU, INFERENCE_PRECISION_HINT=f32")
        return None

    def run_model(self, model, feeds, key=None):
        import openvino as ov

        try:
            ck = self._cache_key(feeds, key)
            compiled = self._cache.get(ck) if ck is not None else None
            if compiled is None:
                inlined = self._inlined(model, feeds, key)
                compiled = self._core.compile_model(
                    self._core.read_model(inlined.SerializeToString(), b""),
                    "CPU",
                    {"INFERENCE_PRECISION_HINT": "f32"},
                )
                if ck is not None:
                    self._cache[ck] = compiled
            request = compiled.create_infer_request()
            request.infer({k: _ov_tensor(ov, v) for k, v in feeds.items()})
            outs = [_ov_array(ov, request.get_output_tensor(i)) for i in range(len(compiled.outputs))]
        except Exception as exc:
            raise Unsupported(f"OpenVINO: {_ov_error(exc)}") from exc
        return outs


def _ov_tensor(ov, array: np.ndarray):
    array = np.ascontiguousarray(array) if np.ndim(array) else np.asarray(array)
    if array.dtype == oracle.NUMPY_DTYPES["bfloat16"]:
        # numpy has no bfloat16: hand OpenVINO the bits with the element type spelled out.
        tensor = ov.Tensor(ov.Type.bf16, ov.Shape(list(array.shape)))
        if array.size:
            tensor.data.view(np.uint16)[...] = array.view(np.uint16)
        return tensor
    return ov.Tensor(array.copy())


def _ov_array(ov, tensor) -> np.ndarray:
    shape = tuple(tensor.shape)
    if tensor.element_type == ov.Type.bf16:
        bits = np.array(tensor.data).view(np.uint16).reshape(shape)
        return bits.view(oracle.NUMPY_DTYPES["bfloat16"])
    return np.array(tensor.data).reshape(shape)


def _ov_error(exc: BaseException) -> str:
    # OpenVINO prefixes every message with "Exception from src/...:NN:" lines.
    lines = [l.strip() for l in str(exc).splitlines() if l.strip()]
    useful = [l for l in lines if not l.startswith("Exception from")] or lines
    return " ".join(useful)[:300]


class TractPath(_InlinedPath):
    name = "tract"
    title = "tract on the inlined model, in a worker subprocess"

    def __init__(self):
        super().__init__()
        self._worker: _Worker | None = None
        self._as_is_checked = False

    def _why_unavailable(self):
        reason = _import_reason("tract", "runtimes")
        if reason:
            return reason
        from importlib.metadata import version

        self.notes.append(f"tract {version('tract')}")
        return None

    def _check_as_is(self, model, feeds, key) -> None:
        """Record (once) whether tract runs the plain inlined function without folding."""
        self._as_is_checked = True
        try:
            self._call(self._inlined(model, feeds, key), feeds)
            self.notes.append("tract runs the inlined function as-is")
        except Unsupported as exc:
            self.notes.append(
                "tract cannot run the inlined function as-is (" + str(exc) + "); the runner "
                "folds each node's reduction probe and If nodes first (parity.specialise)"
            )

    def run_model(self, model, feeds, key=None):
        if not self._as_is_checked:
            self._check_as_is(model, feeds, key)
        if not isinstance(key, Case):
            inlined = self._inlined(model, feeds, key)
            if {"NegativeLogLikelihoodLoss", "If"} & _op_types(inlined):
                inlined = specialise(inlined)
            return self._call(inlined, feeds)
        # Grid cases: inline and specialise once per node (the slow part), then declare ranks.
        ck = (key.beta, key.reduction, key.dtype)
        if ck not in self._cache:
            inlined = self._inlined(model, {}, key)
            if {"NegativeLogLikelihoodLoss", "If"} & _op_types(inlined):
                inlined = specialise(inlined)
            self._cache[ck] = inlined
        # Concrete shapes: tract then folds the sum's padding arithmetic to constants.
        return self._call(with_static_shapes(self._cache[ck], {k: np.shape(v) for k, v in feeds.items()}),
                          feeds)

    def _call(self, model: onnx.ModelProto, feeds) -> list[np.ndarray]:
        for array in feeds.values():
            if np.asarray(array).dtype == oracle.NUMPY_DTYPES["bfloat16"]:
                raise Unsupported("tract has no bfloat16 tensors ('Unknown DatumType Bfloat16')")
        if self._worker is None:
            self._worker = _Worker()
        names = [i.name for i in model.graph.input if i.name in feeds]
        status, payload = self._worker.call((model.SerializeToString(), [feeds[n] for n in names]))
        if status == "crash":
            self._worker = _Worker()  # start the replacement now: it imports while we work
            raise Unsupported(f"tract aborts the process: {payload}")
        if status == "error":
            raise Unsupported(f"tract: {payload}")
        return payload

    def close(self):
        if self._worker is not None:
            self._worker.close()
            self._worker = None


class _Worker:
    """A Python subprocess that runs risky runtimes; a crash there cannot take us down."""

    def __init__(self) -> None:
        self._stderr = tempfile.TemporaryFile()
        env = {**os.environ, "RUST_BACKTRACE": "0"}
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_SOURCE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )

    #: seconds one request may take before the worker is killed (a hang is a crash too)
    TIMEOUT = 300.0

    def call(self, request: tuple) -> tuple[str, Any]:
        import select

        try:
            _send(self._proc.stdin, request)
            ready, _, _ = select.select([self._proc.stdout], [], [], self.TIMEOUT)
            if not ready:
                self._proc.kill()
                self._proc.wait()
                return "crash", f"no answer within {self.TIMEOUT:.0f} s (killed)"
            return _recv(self._proc.stdout)
        except (EOFError, BrokenPipeError, struct.error, pickle.UnpicklingError):
            code = self._proc.wait()
            self._stderr.seek(0)
            err = self._stderr.read().decode(errors="replace").splitlines()
            panic = [l for i, l in enumerate(err) if "panicked at" in l or (i and "panicked at" in err[i - 1])]
            why = " ".join(panic[:2]) if panic else " ".join(err[-2:])
            why = re.sub(r"thread '[^']*' \(\d+\) ", "", why)
            return "crash", f"exit code {code}: {why.strip()[:300]}"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._proc.stdin.close()
            self._proc.wait(timeout=10)
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _recv(stream) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    (n,) = struct.unpack("<Q", head)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError
    return pickle.loads(data)


#: The worker: a standalone script (imports only numpy and tract, so a restart after a
#: crash is cheap). Requests: (model bytes, input names, arrays); replies ("ok", outputs) or
#: ("error", message), length-prefixed pickles on stdin/stdout.
_WORKER_SOURCE = r"""
import hashlib, os, pickle, struct, sys, tempfile
import numpy as np

def recv(stream):
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(n))

def send(stream, obj):
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()

def main():
    import tract
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr
    runnables = {}
    while True:
        try:
            model_bytes, arrays = recv(stdin)
        except EOFError:
            return
        try:
            digest = hashlib.sha1(model_bytes).hexdigest()
            if digest not in runnables:
                with tempfile.TemporaryDirectory() as tmp:
                    path = os.path.join(tmp, "model.onnx")
                    with open(path, "wb") as f:
                        f.write(model_bytes)
                    onnx_ = tract.onnx()
                    if hasattr(onnx_, "load"):  # tract >= 0.22
                        model = onnx_.load(path).into_model()
                    else:  # tract 0.21
                        model = onnx_.model_for_path(path).into_optimized()
                    runnables[digest] = model.into_runnable()
            outs = runnables[digest].run([np.asarray(a) for a in arrays])
            reply = ("ok", [np.asarray(o.to_numpy()) for o in outs])
        except Exception as exc:
            reply = ("error", " ".join(str(exc).split("Stack backtrace:")[0].split())[:300])
        send(stdout, reply)

main()
"""


#: Every path, in matrix order.
PATHS: dict[str, type[ParityPath]] = {
    p.name: p
    for p in (
        TorchPath,
        OrtFunctionPath,
        OrtKernelPath,
        OrtCudaPath,
        PythonOpPath,
        ReferencePath,
        OpenVinoPath,
        TractPath,
    )
}


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------


def environment() -> dict[str, str]:
    import platform

    import onnxruntime as ort

    env = {
        "python": platform.python_version(),
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "cpu": _cpu_name(),
    }
    for mod in ("torch", "openvino", "tract", "onnxruntime_extensions"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            env[mod] = version(mod.replace("_", "-"))
    return env


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    import platform

    return f"{platform.processor() or platform.machine()} x{os.cpu_count()}"


def _select_paths(names: Iterable[str] | None) -> list[ParityPath]:
    names = list(names) if names is not None else list(PATHS)
    unknown = [n for n in names if n not in PATHS]
    if unknown:
        raise ValueError(f"unknown path(s) {', '.join(unknown)}; choose from {', '.join(PATHS)}")
    return [PATHS[n]() for n in names]


def _evaluate(path: ParityPath, case: Case, x, y, ref64, own) -> CaseResult:
    broadcast = np.shape(x) != np.shape(y)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = path.run_case(case, x, y)
    except Unsupported as exc:
        return CaseResult(path.name, case, UNSUPPORTED, exc.max_abs, exc.max_rel, str(exc))
    except Exception as exc:
        if path.third_party:
            return CaseResult(path.name, case, UNSUPPORTED, detail=f"{path.name}: {_first_line(exc)}")
        if broadcast and any(w in str(exc).lower() for w in ("shape", "broadcast")):
            # SPEC: a path supporting less than numpy broadcasting must reject it clearly.
            return CaseResult(
                path.name, case, UNSUPPORTED, detail=f"rejects broadcasting: {_first_line(exc)}"
            )
        return CaseResult(path.name, case, FAIL, np.inf, np.inf, f"error: {_first_line(exc)}")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # float16 overflow of the reference
        verdict = oracle.compare(out, ref64, dtype=case.dtype, reduction=case.reduction, torch_own=own)
    limit = ULP_LIMITS.get((path.name, case.dtype))
    if not verdict.ok and limit and _within_one_ulp(out, own, case.dtype):
        return CaseResult(path.name, case, UNSUPPORTED, verdict.max_abs, verdict.max_rel,
                          f"{limit} (within 1 ulp of PyTorch's own result)")
    if path.baseline:
        # PyTorch in its own dtype defines the bound for float32 reductions; elsewhere it may
        # itself be more than one rounding off float64. Shown, never counted as a failure.
        note = "" if verdict.ok else f"beyond one rounding ({verdict.detail})"
        return CaseResult(path.name, case, PASS, verdict.max_abs, verdict.max_rel, note)
    return CaseResult(
        path.name, case, PASS if verdict.ok else FAIL, verdict.max_abs, verdict.max_rel, verdict.detail
    )


def run_grid(
    dtypes: Sequence[str] = DTYPES,
    *,
    paths: Iterable[str] | None = None,
    quick: bool = False,
    shapes: Sequence[str] | None = None,
    betas: Sequence[float] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Run the grid through every selected path; see the module docstring."""
    import time

    start = time.perf_counter()
    cases = grid(dtypes, shapes=shapes, betas=betas, quick=quick)
    dtypes = list(dict.fromkeys(c.dtype for c in cases))
    selected = _select_paths(paths)
    cells = {(p.name, d): Cell(p.name, d, baseline=p.baseline) for p in selected for d in dtypes}
    notes: dict[str, str] = {}
    try:
        for case in cases:
            x, y = make_inputs(case)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref64 = oracle.reference(x, y, beta=case.beta, reduction=case.reduction)
                own = oracle.torch_same_dtype(x, y, beta=case.beta, reduction=case.reduction)
            for path in selected:
                if path.unavailable is not None:
                    result = CaseResult(
                        path.name, case, UNSUPPORTED, np.nan, np.nan, path.unavailable
                    )
                else:
                    result = _evaluate(path, case, x, y, ref64, own)
                cells[path.name, case.dtype].results.append(result)
            if progress:
                progress(case.label)
    finally:
        for path in selected:
            path.close()
            if path.notes:
                notes[path.name] = "; ".join(dict.fromkeys(path.notes))
    return Report(
        [p.name for p in selected], dtypes, cells, cases, notes, environment(),
        time.perf_counter() - start, {p.name: p.title for p in selected},
    )


# --------------------------------------------------------------------------------------
# A user's own model
# --------------------------------------------------------------------------------------

#: Relative difference between two paths on a user's model above which the run fails:
#: a few roundings of the output type (float16/bfloat16 results may round differently).
AGREEMENT_RTOL = {"float64": 1e-9, "float32": 1e-5, "float16": 4e-3, "bfloat16": 3e-2}
SYMBOLIC_DIM = 3


def random_feeds(
    model: onnx.ModelProto, given: Mapping[str, np.ndarray] | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Inputs for ``model``: ``given`` ones, the rest random from declared shapes and types.

    Symbolic or missing dimensions become ``SYMBOLIC_DIM``; an input of unknown rank becomes
    1-D. Float inputs are standard normal; integers 0..2; booleans random.
    """
    given = dict(given or {})
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    unknown = set(given) - {i.name for i in inputs}
    if unknown:
        raise ValueError(
            f"--inputs names {', '.join(sorted(unknown))} are not model inputs "
            f"({', '.join(i.name for i in inputs)})"
        )
    rng = np.random.default_rng(seed)
    # A symbolic dimension takes its size from a given input that has it, so shared names
    # ("batch") agree across inputs.
    bound: dict[str, int] = {}
    for value in inputs:
        if value.name in given and value.type.tensor_type.HasField("shape"):
            dims = value.type.tensor_type.shape.dim
            shape = np.shape(given[value.name])
            if len(dims) == len(shape):
                for d, n in zip(dims, shape):
                    if d.dim_param:
                        bound.setdefault(d.dim_param, int(n))
    feeds: dict[str, np.ndarray] = {}
    for value in inputs:
        elem = value.type.tensor_type.elem_type
        if not value.type.HasField("tensor_type") or not elem:
            raise ValueError(f"input {value.name!r} is not a tensor; pass it with --inputs")
        npdt = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))
        if value.name in given:
            array = np.asarray(given[value.name])
            if npdt == oracle.NUMPY_DTYPES["bfloat16"] and array.dtype == np.dtype("V2"):
                array = array.view(npdt)
            if array.dtype != npdt:
                raise ValueError(f"input {value.name!r} must be {npdt}, got {array.dtype}")
            feeds[value.name] = array
            continue
        shape_proto = value.type.tensor_type
        if shape_proto.HasField("shape"):
            dims = shape_proto.shape.dim
            # An unbound symbolic dimension borrows the size at the same position of a given
            # input of the same rank (a prediction and its target usually match).
            peer = next((np.shape(a) for a in given.values() if np.ndim(a) == len(dims)), None)
            shape = tuple(
                d.dim_value if d.HasField("dim_value")
                else bound.get(d.dim_param, peer[i] if peer is not None else SYMBOLIC_DIM)
                for i, d in enumerate(dims)
            )
        else:
            shape = (SYMBOLIC_DIM,)
        if npdt.kind == "f" or npdt == oracle.NUMPY_DTYPES["bfloat16"]:
            feeds[value.name] = np.asarray(rng.standard_normal(shape) * 2.0).astype(npdt)
        elif npdt.kind in "iu":
            feeds[value.name] = rng.integers(0, 3, size=shape).astype(npdt)
        elif npdt.kind == "b":
            feeds[value.name] = rng.random(shape) < 0.5
        else:
            raise ValueError(f"input {value.name!r} has type {npdt}; pass it with --inputs")
    return feeds


@dataclass
class ModelReport:
    outputs: list[str]
    results: dict[str, list[np.ndarray] | str]  # path -> outputs, or why it did not run
    largest: tuple[float, float, str, str, str] | None  # abs, rel, path a, path b, output
    ok: bool
    vs_first: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: for a single-node model: each path's verdict against PyTorch float64 (SPEC tolerance)
    vs_torch: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = []
        for path, res in self.results.items():
            if isinstance(res, str):
                lines.append(f"  {path:15s} {res}")
            else:
                shapes = ", ".join(f"{o.dtype}{list(o.shape)}" for o in res)
                a, r = self.vs_first.get(path, (0.0, 0.0))
                first = next(iter(self.vs_first), path)
                vs = "" if path == first else f"; vs {first}: abs {a:.3g}, rel {r:.3g}"
                if path in self.vs_torch:
                    vs += f"; vs torch float64: {self.vs_torch[path]}"
                lines.append(f"  {path:15s} ran: {shapes}{vs}")
        if self.largest is None:
            lines.append("fewer than two paths ran: nothing to compare")
        else:
            a, r, p1, p2, out = self.largest
            lines.append(
                f"largest difference between paths: abs {a:.3g}, rel {r:.3g} "
                f"({p1} vs {p2}, output {out!r})"
            )
        lines += [f"  note: {n}" for n in self.notes]
        lines.append("OK: the paths agree" if self.ok else "FAILED: the paths disagree")
        return "\n".join(lines)

    def markdown(self) -> str:
        out = ["# SmoothL1Loss parity: user model", "", "| path | result |", "|---|---|"]
        for path, res in self.results.items():
            text = res if isinstance(res, str) else "ran: " + ", ".join(
                f"{o.dtype}{list(o.shape)}" for o in res
            ) + (f"; max diff vs {next(iter(self.vs_first))}: abs {self.vs_first[path][0]:.3g}, "
                 f"rel {self.vs_first[path][1]:.3g}" if path in self.vs_first else "") + (
                f"; vs torch float64: {self.vs_torch[path]}" if path in self.vs_torch else "")
            out.append(f"| {path} | {text.replace('|', '/')} |")
        tail = [l for l in self.text().splitlines() if not l.startswith("  ")]
        out += [""] + [f"{l}\n" for l in tail]
        out += [f"- {n}" for n in self.notes]
        return "\n".join(out)


def _diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    if a.shape != b.shape:
        return np.inf, np.inf
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
    if same.all():
        return 0.0, 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(same, 0.0, np.abs(a64 - b64))
        scale = np.maximum(np.abs(a64), np.abs(b64))
        rel = np.where(same, 0.0, np.where(scale > 0, d / scale, np.inf))
    d = np.nan_to_num(d, nan=np.inf)
    return float(d.max()), float(np.nan_to_num(rel, nan=np.inf).max())


def run_model_file(
    model: onnx.ModelProto | str | os.PathLike,
    inputs: Mapping[str, np.ndarray] | None = None,
    *,
    paths: Iterable[str] | None = None,
    seed: int = 0,
) -> ModelReport:
    """Run a user's model (containing the node) through every path that can run it."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    if not any(spec.is_loss_node(n) for n in spec.walk_nodes(model.graph.node)):
        raise ValueError(f"the model has no {spec.DOMAIN}::{spec.OP_TYPE} node")
    feeds = random_feeds(model, inputs, seed)
    outputs = [o.name for o in model.graph.output]
    results: dict[str, list[np.ndarray] | str] = {}
    selected = _select_paths(paths)
    try:
        for path in selected:
            if not path.runs_models:
                results[path.name] = (
                    "reference: every path is compared with PyTorch float64 below"
                    if _single_node(model) is not None
                    else "unsupported: only a model that is one SmoothL1Loss node has a torch "
                    "equivalent here"
                )
                continue
            if path.unavailable is not None:
                results[path.name] = f"unsupported: {path.unavailable}"
                continue
            if path.name == "python-op" and isinstance(results.get("ort-function"), str):
                # onnxruntime-extensions aborts the process when a Python op raises, so the
                # Python op only gets inputs the function path accepted.
                results[path.name] = "skipped: the function path failed on these inputs"
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    results[path.name] = [np.asarray(o) for o in path.run_model(model, feeds)]
            except Unsupported as exc:
                results[path.name] = f"unsupported: {exc}"
            except Exception as exc:
                results[path.name] = f"error: {_first_line(exc)}"
    finally:
        for path in selected:
            path.close()
    ran = {p: r for p, r in results.items() if not isinstance(r, str)}
    largest = None
    ok = not any(isinstance(r, str) and r.startswith("error") for r in results.values())
    notes: list[str] = []
    vs_torch: dict[str, str] = {}
    single = _single_node(model)
    if single is not None and ran:
        # The whole model is one SmoothL1Loss node: compare every path with PyTorch too.
        beta, reduction, (xi, yi) = single
        x, y = feeds[xi], feeds[yi]
        dtype = next((n for n, dt in oracle.NUMPY_DTYPES.items() if dt == np.asarray(x).dtype), None)
        if dtype is not None:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                ref = oracle.reference(x, y, beta=beta, reduction=reduction)
                own = oracle.torch_same_dtype(x, y, beta=beta, reduction=reduction)
                for p, outs in ran.items():
                    v = oracle.compare(outs[0], ref, dtype=dtype, reduction=reduction, torch_own=own)
                    limited = KNOWN_LIMITS.get((p, dtype))
                    if v.ok:
                        vs_torch[p] = f"pass (abs {v.max_abs:.3g}, rel {v.max_rel:.3g})"
                    elif limited:
                        vs_torch[p] = f"outside SPEC, known limit ({v.detail})"
                    else:
                        vs_torch[p] = f"FAIL ({v.detail})"
                        ok = False
    names = list(ran)
    vs_first: dict[str, tuple[float, float]] = {}
    for p in names:
        diffs = [_diff(a, b) for a, b in zip(ran[names[0]], ran[p])]
        vs_first[p] = (max((d[0] for d in diffs), default=0.0), max((d[1] for d in diffs), default=0.0))
    for i, p1 in enumerate(names):
        for p2 in names[i + 1 :]:
            for k, (a, b) in enumerate(zip(ran[p1], ran[p2])):
                d_abs, d_rel = _diff(a, b)
                if largest is None or (d_rel, d_abs) > (largest[1], largest[0]):
                    largest = (d_abs, d_rel, p1, p2, outputs[k] if k < len(outputs) else str(k))
                key = next((n for n, dt in oracle.NUMPY_DTYPES.items() if dt == a.dtype), None)
                if key is not None and d_rel > AGREEMENT_RTOL[key] and d_abs > 0:
                    limited = [q for q in (p1, p2) if (q, key) in KNOWN_LIMITS]
                    if limited:
                        notes.append(
                            f"{', '.join(limited)} differs by rel {d_rel:.3g} on {key} output "
                            f"{outputs[k] if k < len(outputs) else k!r}: known limit: "
                            f"{KNOWN_LIMITS[limited[0], key][0]}"
                        )
                    else:
                        ok = False
    return ModelReport(outputs, results, largest, ok, vs_first, vs_torch, list(dict.fromkeys(notes)))


def _single_node(model: onnx.ModelProto) -> tuple[float, str, tuple[str, str]] | None:
    """(beta, reduction, (input, target)) when the graph is exactly one SmoothL1Loss node
    fed by graph inputs and producing the only graph output, else None."""
    nodes = list(model.graph.node)
    if len(nodes) != 1 or (nodes[0].domain, nodes[0].op_type) != (spec.DOMAIN, spec.OP_TYPE):
        return None
    node = nodes[0]
    inputs = {i.name for i in model.graph.input}
    if len(node.input) != 2 or not set(node.input) <= inputs or len(model.graph.output) != 1:
        return None
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    reduction = attrs.get("reduction", spec.DEFAULT_REDUCTION)
    if isinstance(reduction, bytes):
        reduction = reduction.decode()
    try:
        return spec.check_beta(attrs.get("beta", spec.DEFAULT_BETA)), spec.check_reduction(reduction), (
            node.input[0], node.input[1])
    except ValueError:
        return None


# Execution-provider paths (parity_eps.py subclasses ParityPath and imports this module, so
# they are added last; imported first, parity_eps adds them itself).
_EP_PATHS_PENDING = True
from . import parity_eps as _parity_eps  # noqa: E402

PATHS.update((p.name, p) for p in getattr(_parity_eps, "EP_PATHS", ()))
