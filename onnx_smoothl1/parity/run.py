"""Running the grid: every case through every selected path, each result judged by
``oracle.compare`` (SPEC's tolerances; nothing here defines a tolerance of its own).

What counts as "unsupported" rather than "fail" (everything else that does not match fails):

- the path is not available (package not installed, library not built, no device, or named
  in ``ONNX_SMOOTHL1_PARITY_DISABLE``), with the reason;
- a path of ours rejects a case with a clear error where SPEC allows it (a kernel that only
  takes equal shapes rejecting broadcasting; the Python op refusing float16/bfloat16);
- a third-party runtime raises an error or crashes on a case (its own message is shown), or
  the case is in the scope of one of its known limits (``ParityPath.limits``, decided by the
  case alone, so the verdict does not follow the machine), always with the measured error;
  beyond the limit's bound the case fails.
"""

from __future__ import annotations

import functools
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import oracle
from .cases import DTYPES, LOSSES, Case, grid, make_inputs
from .limits import measured_errors
from .registry import ParityPath, Unsupported, first_line, select_paths
from .report import FAIL, PASS, UNSUPPORTED, CaseResult, Cell, Report, environment


def evaluate(
    path: ParityPath, case: Case, x: np.ndarray, y: np.ndarray, ref64: np.ndarray,
    own: np.ndarray | None,
) -> CaseResult:
    """Run one case through one path and judge it (see the module docstring)."""
    broadcast = np.shape(x) != np.shape(y)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = path.run_case(case, x, y)
    except Unsupported as exc:
        return CaseResult(path.name, case, UNSUPPORTED, exc.max_abs, exc.max_rel, str(exc))
    except Exception as exc:
        if path.third_party:
            return CaseResult(
                path.name, case, UNSUPPORTED, np.nan, np.nan, f"{path.name}: {first_line(exc)}"
            )
        if broadcast and any(w in str(exc).lower() for w in ("shape", "broadcast")):
            # SPEC: a path supporting less than numpy broadcasting must reject it clearly.
            return CaseResult(
                path.name, case, UNSUPPORTED, np.nan, np.nan, f"rejects broadcasting: {first_line(exc)}"
            )
        return CaseResult(path.name, case, FAIL, np.inf, np.inf, f"error: {first_line(exc)}")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # float16 overflow of the reference
        verdict = oracle.compare(out, ref64, dtype=case.dtype, reduction=case.reduction, torch_own=own)
    if path.baseline:
        # PyTorch in its own dtype defines the bound for float32 reductions; elsewhere it may
        # itself be more than one rounding off float64. Shown, never counted as a failure.
        note = "" if verdict.ok else f"beyond one rounding ({verdict.detail})"
        return CaseResult(path.name, case, PASS, verdict.max_abs, verdict.max_rel, note)
    limit = path.limit_for(case)
    if limit is not None:
        # In the limit's scope: the same verdict on every machine, whatever this one's last
        # bits (see parity.limits); beyond the limit's bound it is a real failure.
        max_abs, max_rel = measured_errors(out, ref64)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            beyond = limit.exceeded(out, ref64, own, x, y, case)
        if beyond is None:
            return CaseResult(path.name, case, UNSUPPORTED, max_abs, max_rel, limit.describe(), verdict.ok)
        return CaseResult(
            path.name, case, FAIL, max_abs, max_rel,
            f"beyond the known limit ({limit.reason}): {beyond}; {verdict.detail or 'within SPEC'}",
        )
    return CaseResult(
        path.name, case, PASS if verdict.ok else FAIL, verdict.max_abs, verdict.max_rel, verdict.detail
    )


def _what_ran(proofs: dict[str, list[str]], dtypes: Sequence[str]) -> str:
    """One path's proofs, dtype -> what ran: the texts alone when each holds for every dtype
    (one per loss op type where the proof names the node), else each with its dtypes."""
    by_text: dict[str, list[str]] = {}
    for d in dtypes:
        for text in dict.fromkeys(proofs.get(d, [])):
            by_text.setdefault(text, []).append(d)
    if not by_text:
        return ""
    if all(len(ds) == len(dtypes) for ds in by_text.values()):
        return "; ".join(by_text)  # e.g. one proof per loss op type, the same for every dtype
    return "; ".join(f"{t} ({', '.join(ds)})" for t, ds in by_text.items())


def run_grid(
    dtypes: Sequence[str] = DTYPES,
    *,
    paths: Iterable[str] | None = None,
    quick: bool = False,
    shapes: Sequence[str] | None = None,
    betas: Sequence[float] | None = None,
    losses: Sequence[str] = LOSSES,
    deltas: Sequence[float] | None = None,
    progress: Callable[[str, int], None] | None = None,
    now: Callable[[str], None] | None = None,
    require: bool = False,
) -> Report:
    """Run the grid through every selected path; see the module docstring.

    ``progress(label, units)`` is called as results come in: ``units`` (case, path) results
    are done (a grid of C cases and P paths has C x P), ``label`` is the case's (and the path's
    when it runs apart). ``now("case_label: path")`` is called before each path runs a case
    (the CLI's progress bar shows both). ``require``: every selected path must be available
    (``PathUnavailable`` otherwise, before anything runs), as when the caller named them.

    Every path gets ``prepare(cases)`` first (the compiler paths start compiling in their
    workers). A path whose runtime runs in a worker process (``in_worker``) is driven from a
    thread of its own, beside the in-process paths: it mostly waits on its worker, which then
    computes while the runner does. Each path still runs its cases in grid order, and the
    results are collected in that order, so the report does not depend on the timing."""
    start = time.perf_counter()
    cases = grid(dtypes, shapes=shapes, betas=betas, quick=quick, losses=losses, deltas=deltas)
    dtype_list = list(dict.fromkeys(c.dtype for c in cases))
    selected = select_paths(paths)
    if require:  # the paths were named: one that cannot run here is an error, before the grid
        for path in selected:
            if path.unavailable is not None:
                for p in selected:
                    p.close()
                raise PathUnavailable(path.name, path.unavailable)
    cells = {
        (p.name, d): Cell(p.name, d, baseline=p.baseline) for p in selected for d in dtype_list
    }
    proofs: dict[str, dict[str, list[str]]] = {p.name: {} for p in selected}
    seconds: dict[str, float] = dict.fromkeys((p.name for p in selected), 0.0)
    notes: dict[str, str] = {}
    results: dict[tuple[str, Case], CaseResult] = {}

    def one(path: ParityPath, case: Case, x: np.ndarray, y: np.ndarray, ref64: np.ndarray,
            own: np.ndarray | None) -> None:
        if path.unavailable is not None:
            results[path.name, case] = CaseResult(path.name, case, UNSUPPORTED, np.nan, np.nan, path.unavailable)
            return
        if now:
            now(f"{case.label}: {path.name}")
        t0 = time.perf_counter()
        result = evaluate(path, case, x, y, ref64, own)
        seconds[path.name] += time.perf_counter() - t0
        if result.status == PASS or result.spec_ok is not None or (
            result.status == FAIL and np.isfinite(result.max_abs)
        ):
            ran = path.what_ran()
            if ran:
                proofs[path.name].setdefault(case.dtype, []).append(ran)
        results[path.name, case] = result

    # One computation of a case's data serves the main loop and every path's thread (the
    # references are most of it, ~13 ms a float32 case): they walk the grid in the same order
    # and drift apart only so far. Read-only, as they are shared. Called inside the
    # warnings-silenced block below.
    @functools.lru_cache(maxsize=64)
    def inputs(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        x, y = make_inputs(case)
        ref64 = oracle.reference(x, y, **case.oracle_args)  # type: ignore[arg-type]
        own = oracle.torch_same_dtype(x, y, **case.oracle_args)  # type: ignore[arg-type]
        for a in (x, y, ref64, own):
            if isinstance(a, np.ndarray):
                a.flags.writeable = False
        return x, y, ref64, own

    stop = threading.Event()  # the runner failed or was interrupted: the threads end too
    interrupted = False

    def apart(path: ParityPath) -> None:
        for case in cases:
            if stop.is_set():
                return
            one(path, case, *inputs(case))
            if progress:
                progress(f"{case.label}: {path.name}", 1)

    try:
        for path in selected:
            if path.unavailable is None:
                path.prepare(cases)
        threaded = [p for p in selected if p.unavailable is None and p.in_worker]
        in_process = [p for p in selected if p not in threaded]
        # evaluate() silences warnings per case; warnings.catch_warnings is process-wide, so
        # the threads must all save and restore the same state: silenced around them all.
        with warnings.catch_warnings(), ThreadPoolExecutor(
            max_workers=max(1, len(threaded)), thread_name_prefix="parity"
        ) as pool:
            warnings.simplefilter("ignore")
            futures = [pool.submit(apart, p) for p in threaded]
            try:
                for case in cases:
                    data = inputs(case)
                    for path in in_process:
                        one(path, case, *data)
                    if progress:
                        progress(case.label, len(in_process))
            except KeyboardInterrupt:
                stop.set()  # the threads end after their current case
                interrupted = True
            except BaseException:
                stop.set()
                raise
            finally:
                for future in futures:
                    try:
                        future.result()  # re-raises what a path's thread raised
                    except Exception:
                        if not interrupted:  # a worker killed by the same Ctrl-C: expected
                            raise
    finally:
        for path in selected:
            path.close()
            if path.notes:
                notes[path.name] = "; ".join(dict.fromkeys(path.notes))
    for case in cases:
        for path in selected:
            if (path.name, case) in results:
                cells[path.name, case.dtype].results.append(results[path.name, case])
    report = Report(
        [p.name for p in selected], dtype_list, cells, cases, notes, environment(),
        time.perf_counter() - start, {p.name: p.title for p in selected},
        {p.name: _what_ran(proofs[p.name], dtype_list) for p in selected}, seconds, partial=interrupted,
    )
    if interrupted:
        raise GridInterrupted(report)
    return report


class PathUnavailable(ValueError):
    """``run_grid(require=True)``: a named path cannot run here; ``name`` and ``reason``."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"paths: {name} is not available here: {reason}")
        self.name, self.reason = name, reason


class GridInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``run_grid``: ``report`` holds the results done by then (``partial``)."""

    def __init__(self, report: Report) -> None:
        super().__init__("interrupted")
        self.report = report
