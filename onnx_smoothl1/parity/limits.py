"""Known limits of third-party runtimes, classified the same way on every machine.

A runtime's documented deviation from SPEC (OpenVINO has no float64 arithmetic; on CPUs
without AVX512_BF16 it converts float32 to bfloat16 by truncation; OpenVINO and tract divide
by a constant beta as a multiplication by 1/beta) may show on one machine and not on the
next: whether a truncated bfloat16 crosses SPEC's one-rounding bound depends on the last bit
of a float32 sum, which depends on the CPU's instruction set and the thread count. A verdict
that follows the machine would turn a known limit into a red run here and a green one there.

So a limit's *scope* is decided by the case alone (dtype, reduction, beta), never by the
result: every case in scope is reported "unsupported: <reason>" with its measured error,
whether or not it happens to meet SPEC on this machine (the report says how many did). The
limit's *bound* is what the reason explains; a result beyond it is a real failure and fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from .. import oracle
from .cases import Case

#: (output, float64 reference, PyTorch's own result or None, x, y, case) -> None when the
#: result is within what the limit explains, else why not.
Bound = Callable[[np.ndarray, np.ndarray, "np.ndarray | None", np.ndarray, np.ndarray, Case], "str | None"]


@dataclass(frozen=True)
class KnownLimit:
    """One known limit of a runtime: its reason, scope (``dtype`` and ``applies(case)``) and
    bound (``exceeded``; ``bound_text`` says it in words for the report)."""

    dtype: str
    reason: str
    bound_text: str
    exceeded: Bound
    applies: Callable[[Case], bool] = lambda case: True

    def covers(self, case: Case) -> bool:
        return case.dtype == self.dtype and self.applies(case)

    def describe(self) -> str:
        return f"{self.reason} (known limit, classified on every machine; bound: {self.bound_text})"


def measured_errors(out: np.ndarray, ref64: np.ndarray) -> tuple[float, float]:
    """Worst absolute and relative error over the elements finite in both."""
    a = np.asarray(out).astype(np.float64)
    r = np.asarray(ref64, dtype=np.float64)
    if a.shape != r.shape:
        return np.inf, np.inf
    with np.errstate(all="ignore"):
        fin = np.isfinite(a) & np.isfinite(r)
        if not fin.any():
            return 0.0, 0.0
        err = np.abs(a[fin] - r[fin])
        rel = np.where(r[fin] != 0, err / np.abs(r[fin]), np.where(err == 0, 0.0, np.inf))
    return float(err.max()), float(rel.max())


def _ulp(values: np.ndarray, dtype: str) -> np.ndarray:
    """Spacing of ``dtype`` at each value (from its exponent), as float64."""
    npdt = oracle.NUMPY_DTYPES[dtype]
    finfo = ml_dtypes.finfo(npdt) if dtype == "bfloat16" else np.finfo(npdt)
    with np.errstate(all="ignore"):
        mag = np.abs(values)
        exp = np.floor(np.log2(np.where(mag > 0, mag, float(finfo.tiny))))
    return np.maximum(np.exp2(exp - finfo.nmant), float(finfo.smallest_subnormal))


def within_ulps(n: float) -> Bound:
    """Same NaN and infinity positions as the reference (rounded to the dtype), and finite
    values within ``n`` ulps of it."""

    def exceeded(out, ref64, own, x, y, case):
        npdt = oracle.NUMPY_DTYPES[case.dtype]
        a = np.asarray(out).astype(np.float64)
        with np.errstate(all="ignore"):
            r = np.asarray(ref64, np.float64).astype(npdt).astype(np.float64)
        if a.shape != r.shape:
            return f"shape {a.shape} != {r.shape}"
        if not np.array_equal(np.isnan(a), np.isnan(r)):
            return "NaN positions differ"
        if not np.array_equal(a[np.isinf(a) | np.isinf(r)], r[np.isinf(a) | np.isinf(r)]):
            return "infinities differ"
        fin = np.isfinite(r)
        ref = np.asarray(ref64, np.float64)[fin]
        err = np.abs(a[fin] - ref)
        if np.any(err > n * _ulp(ref, case.dtype)):
            return f"more than {n:g} ulps off (max abs {float(err.max()):.3g})"
        return None

    return exceeded


def float32_arithmetic(rtol: float) -> Bound:
    """A float64 result computed in float32: finite values within ``rtol`` (relative) of the
    float64 reference *of the inputs rounded to float32* (the conversion is the limit: near
    x == y it makes |x - y| far off relative to itself); NaN/infinity differences only
    where an input is infinite (float32 saturation of +-inf to +-FLT_MAX turns inf - inf
    into 0)."""

    def exceeded(out, ref64, own, x, y, case):
        x32 = np.asarray(x).astype(np.float32)
        y32 = np.asarray(y).astype(np.float32)
        with np.errstate(all="ignore"):
            r = np.asarray(
                oracle.reference(x32, y32, **case.oracle_args), np.float64
            )
        a = np.asarray(out).astype(np.float64)
        if a.shape != r.shape:
            return f"shape {a.shape} != {r.shape}"
        with np.errstate(all="ignore"):
            same = (np.isnan(a) & np.isnan(r)) | (a == r)
            both = np.isfinite(a) & np.isfinite(r)
            inf_x, inf_y = np.isinf(x32), np.isinf(y32)
            if case.reduction == "none":
                inf_in = np.broadcast_to(inf_x | inf_y, r.shape) if r.shape else bool(inf_x | inf_y)
            else:
                inf_in = np.full(r.shape, bool(inf_x.any() or inf_y.any()))
            if np.any(~same & ~both & ~inf_in):
                return "NaN/infinity differs where no input is infinite"
            err = np.abs(a[both] - r[both])
            tiny = float(np.finfo(np.float32).tiny)
            if np.any(err > rtol * np.abs(r[both]) + tiny):
                return (f"beyond float32 arithmetic on float32-rounded inputs (rtol {rtol:g}; "
                        f"max abs {float(err.max()):.3g})")
        return None

    return exceeded


def within_one_ulp_of_torch(out, ref64, own, x, y, case) -> str | None:
    """Element by element within one ulp of PyTorch's own result (same NaN/inf positions)."""
    if own is None:
        return "no PyTorch result in this dtype to compare with"
    a, t = np.asarray(out), np.asarray(own)
    if a.shape != t.shape or a.dtype != t.dtype:
        return f"{a.dtype}{list(a.shape)} vs PyTorch's {t.dtype}{list(t.shape)}"
    with np.errstate(all="ignore"):
        a64, t64 = a.astype(np.float64), t.astype(np.float64)
        if not np.array_equal(np.isnan(a64), np.isnan(t64)):
            return "NaN positions differ from PyTorch's"
        inf = np.isinf(a64) | np.isinf(t64)
        if not np.array_equal(a64[inf], t64[inf]):
            return "infinities differ from PyTorch's"
        fin = ~inf & ~np.isnan(t64)
        spacing = np.abs(np.spacing(t[fin])).astype(np.float64)
        if np.any(np.abs(a64[fin] - t64[fin]) > spacing):
            return "more than 1 ulp from PyTorch's own result"
    return None


def inexact_reciprocal(case: Case) -> bool:
    """SmoothL1Loss 'none' with a beta whose float32 reciprocal is inexact (beta 0 divides by
    nothing; a power of two has an exact reciprocal): where multiplying by 1/beta can differ
    from dividing by beta. HuberLoss never: its formula has no division."""
    beta = oracle.as_beta(case.beta)
    if case.loss != "smooth_l1" or case.reduction != "none" or beta == 0:
        return False
    mantissa, _ = np.frexp(beta)
    return bool(mantissa != 0.5)


RECIPROCAL_DIVISION = (
    "divides by the constant beta as a multiplication by 1/beta (one rounding more than "
    "PyTorch's (0.5*d)*d/beta)"
)


def reciprocal_limit(runtime: str) -> KnownLimit:
    """The float32 reciprocal-division limit of ``runtime`` (OpenVINO, tract)."""
    return KnownLimit(
        "float32", f"{runtime} {RECIPROCAL_DIVISION}", "within 1 ulp of PyTorch's own result",
        within_one_ulp_of_torch, inexact_reciprocal,
    )
