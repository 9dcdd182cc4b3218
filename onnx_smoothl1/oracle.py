"""PyTorch as the oracle: the float64 reference and SPEC's tolerances, shared by all checks.

Every parity check in the project (tests, the demo, the parity runner) asks the same two
questions, answered here once: what does PyTorch compute in float64 for these inputs (beta
or delta rounded to float32 as an ONNX FLOAT attribute stores it), and is a path's output
within SPEC's tolerance of that for its dtype and reduction.

Both losses: ``loss="smooth_l1"`` (default, ``torch.nn.functional.smooth_l1_loss``, parameter
``beta``) and ``loss="huber"`` (``torch.nn.functional.huber_loss``, parameter ``delta``). The
reference functions take the parameter as ``beta`` for either loss (so a grid over one
parameter needs no branching); ``delta=`` says the same for 'huber' explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import ml_dtypes
import numpy as np

from . import spec

if TYPE_CHECKING:  # torch is optional at run time
    import torch

#: numpy dtypes for the names in ``spec.DTYPES`` (bfloat16 comes from ml_dtypes).
NUMPY_DTYPES: dict[str, np.dtype] = {
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}

F64_RTOL = 1e-12
#: float32 'mean'/'sum' must be no worse than PyTorch's own float32 result, and never need to
#: be better than two float32 ulps (2^-22 relative). With float32 arithmetic the elements carry
#: their own roundings (torch's too), so for a handful of elements even the correctly rounded
#: sum of them is now and then further off than torch's result and beyond one ulp: SPEC's "one
#: rounding" cannot be promised case by case there. The function's sum (pairs, rows, an exact
#: top: README "Accuracy of float32 sums") measured worst 2.1 x 2^-24 (5 elements), within
#: max(torch, 2^-24) in every case tried from 16 to 2^20 elements, no worse than torch at 2^24
#: and 2^26; a plain float32 ReduceSum exceeds this floor from ~2^14 elements on.
F32_REDUCE_FLOOR = 2.0**-22


def as_beta(beta: float) -> float:
    """``beta`` as an ONNX FLOAT attribute holds it (rounded to float32)."""
    return float(np.float32(beta))


def _loss_param(loss: str, beta: float, delta: float | None) -> tuple[str, float]:
    """(loss, its parameter rounded to float32), validated as the loss's node validates it:
    beta >= 0 for 'smooth_l1', a finite delta > 0 for 'huber' (``delta`` if given, else
    ``beta``)."""
    loss = spec.check_loss(loss)
    if loss == "smooth_l1":
        if delta is not None:
            raise ValueError("delta is HuberLoss's parameter; loss='smooth_l1' takes beta")
        return loss, as_beta(spec.check_beta(beta))
    value = spec.check_delta(beta if delta is None else delta)
    return loss, spec.check_delta(as_beta(value))


def _torch_loss(x: torch.Tensor, y: torch.Tensor, loss: str, param: float,
                reduction: str) -> torch.Tensor:
    import torch.nn.functional as F

    if loss == "huber":
        return F.huber_loss(x, y, reduction=reduction, delta=param)
    return F.smooth_l1_loss(x, y, reduction=reduction, beta=param)


def _numpy_elements(d: np.ndarray, loss: str, param: np.floating | float) -> np.ndarray:
    """The element-wise loss in PyTorch's CPU order, in ``d``'s own dtype."""
    work = d.dtype.type
    p, half = work(param), work(0.5)
    with np.errstate(all="ignore"):
        if loss == "huber":
            return np.where(d < p, (half * d) * d, p * (d - half * p))
        if p == 0:
            return d
        return np.where(d < p, (half * d) * d / p, d - half * p)


def has_torch() -> bool:
    """Whether PyTorch can be imported (it is an optional dependency: the oracle falls back to
    numpy in float64 without it)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def reference(
    input: np.ndarray, target: np.ndarray, *, beta: float = 1.0, reduction: str = "mean",
    loss: str = "smooth_l1", delta: float | None = None,
) -> np.ndarray:
    """PyTorch's smooth_l1_loss (or huber_loss) on the inputs upcast to float64 (exact for
    every dtype); the same formula in numpy float64 (:func:`numpy_reference`) when torch is
    not installed."""
    if not has_torch():
        return numpy_reference(input, target, beta=beta, reduction=reduction, loss=loss,
                               delta=delta)
    import torch

    loss, param = _loss_param(loss, beta, delta)
    x = torch.from_numpy(np.asarray(input).astype(np.float64))
    y = torch.from_numpy(np.asarray(target).astype(np.float64))
    return _torch_loss(x, y, loss, param, reduction).numpy()


def numpy_reference(
    input: np.ndarray, target: np.ndarray, *, beta: float = 1.0, reduction: str = "mean",
    loss: str = "smooth_l1", delta: float | None = None,
) -> np.ndarray:
    """SPEC's formula in numpy float64, in PyTorch's own order (beta 0 is ``|x - y|``, as
    torch routes it to l1_loss; Huber is ``d < delta ? (0.5*d)*d : delta*(d - 0.5*delta)``).
    'none' equals torch's float64 result bitwise; sums differ from torch's by summation
    order only (numpy sums pairwise)."""
    x = np.asarray(input).astype(np.float64)
    y = np.asarray(target).astype(np.float64)
    loss, param = _loss_param(loss, beta, delta)
    reduction = spec.check_reduction(reduction)
    with np.errstate(all="ignore"):
        elems = _numpy_elements(np.abs(x - y), loss, param)
        if reduction == "none":
            return np.asarray(elems, dtype=np.float64)
        total = np.sum(elems, dtype=np.float64)
        if reduction == "sum":
            return np.asarray(total)
        return np.asarray(total / elems.size if elems.size else np.nan)


def torch_same_dtype(
    input: np.ndarray, target: np.ndarray, *, beta: float = 1.0, reduction: str = "mean",
    loss: str = "smooth_l1", delta: float | None = None,
) -> np.ndarray | None:
    """PyTorch's own result in the inputs' dtype (what users compare against). Without torch:
    for float32/float64 'none' the same operations in numpy (torch's CPU order: bitwise what
    torch computes); None otherwise ('mean'/'sum', whose summation order numpy cannot
    reproduce, and half types): the oracle then uses its bounds alone."""
    if not has_torch():
        return _numpy_same_dtype(input, target, beta=beta, reduction=reduction, loss=loss,
                                 delta=delta)
    import torch

    loss, param = _loss_param(loss, beta, delta)

    def to_torch(a: np.ndarray) -> torch.Tensor:
        a = np.asarray(a)
        if a.dtype == NUMPY_DTYPES["bfloat16"]:
            return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
        return torch.from_numpy(a.copy())

    out = _torch_loss(to_torch(input), to_torch(target), loss, param, reduction)
    if out.dtype == torch.bfloat16:
        return out.float().numpy().astype(NUMPY_DTYPES["bfloat16"])
    return out.numpy()


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise equal, except that any NaN equals any NaN (payloads differ between paths)."""
    nan_a = np.isnan(a.astype(np.float64))
    if not np.array_equal(nan_a, np.isnan(b.astype(np.float64))):
        return False
    bits = np.dtype(f"u{a.dtype.itemsize}")
    return bool(np.array_equal(a[~nan_a].view(bits), b[~nan_a].view(bits)))


def _errors(a: np.ndarray, ref64: np.ndarray) -> tuple[float, float]:
    """Worst absolute and relative error over the finite elements of both."""
    with np.errstate(invalid="ignore"):
        fin = np.isfinite(a) & np.isfinite(ref64)
    if not fin.any():
        return 0.0, 0.0
    abs_err = np.abs(a[fin] - ref64[fin])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(ref64[fin] != 0, abs_err / np.abs(ref64[fin]),
                       np.where(abs_err == 0, 0.0, np.inf))
    return float(abs_err.max()), float(rel.max())


def _numpy_same_dtype(
    input: np.ndarray, target: np.ndarray, *, beta: float, reduction: str,
    loss: str = "smooth_l1", delta: float | None = None,
) -> np.ndarray | None:
    loss, param = _loss_param(loss, beta, delta)
    x, y = np.asarray(input), np.asarray(target)
    out_dtype = x.dtype
    # float16/bfloat16: torch's scalar and vector kernels round at different steps, which
    # numpy cannot mirror; their bound (one rounding of the output type) needs no torch.
    if spec.check_reduction(reduction) != "none" or out_dtype not in (np.float32, np.float64):
        return None
    work = out_dtype.type
    with np.errstate(all="ignore"):
        d = np.abs(x.astype(work) - y.astype(work))
    return np.asarray(_numpy_elements(d, loss, param)).astype(out_dtype)


@dataclass(frozen=True)
class Verdict:
    """Outcome of one comparison: pass/fail and the worst errors seen."""

    ok: bool
    max_abs: float
    max_rel: float
    detail: str = ""


def _ulp(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Spacing of ``dtype`` at each (finite) value, as float64."""
    finfo = ml_dtypes.finfo(dtype) if dtype == NUMPY_DTYPES["bfloat16"] else np.finfo(dtype)
    mag = np.abs(values.astype(dtype).astype(np.float64))
    # Exponent-based spacing: 2**(floor(log2|v|) - mantissa bits), floored at the subnormal step.
    with np.errstate(divide="ignore"):
        exp = np.floor(np.log2(np.where(mag > 0, mag, float(finfo.tiny))))
    step = np.exp2(exp - finfo.nmant)
    return np.maximum(step, float(finfo.smallest_subnormal))


def compare(
    actual: np.ndarray,
    ref64: np.ndarray,
    *,
    dtype: str,
    reduction: str,
    torch_own: np.ndarray | None = None,
) -> Verdict:
    """Is ``actual`` (a path's output) within SPEC tolerance of the float64 reference?

    A result identical to ``torch_own`` (PyTorch's own result in the same dtype) passes.
    Otherwise shapes and NaN positions must match exactly, infinities must match in sign.
    Finite values: float64 rel <= 1e-12; float32 'none' within one float32 rounding or no
    worse than ``torch_own``, element by element; float32 'mean'/'sum' no worse than
    ``torch_own`` or ``F32_REDUCE_FLOOR``; float16/bfloat16 within one rounding of the
    output type.
    """
    dtype = spec.check_dtype(dtype)
    npdt = NUMPY_DTYPES[dtype]
    actual = np.asarray(actual)
    ref64 = np.asarray(ref64, dtype=np.float64)
    if actual.dtype != npdt:
        return Verdict(False, np.inf, np.inf, f"dtype {actual.dtype} != {npdt}")
    if actual.shape != ref64.shape:
        return Verdict(False, np.inf, np.inf, f"shape {actual.shape} != {ref64.shape}")
    a = actual.astype(np.float64)
    own = None if torch_own is None else np.asarray(torch_own)
    if own is not None and own.dtype == npdt and own.shape == actual.shape:
        if _same_values(actual, own):
            # SPEC: a result identical to PyTorch's own in the same dtype always passes.
            err = _errors(a, ref64)
            return Verdict(True, *err)
    else:
        own = None
    nan_a, nan_r = np.isnan(a), np.isnan(ref64)
    if not np.array_equal(nan_a, nan_r):
        return Verdict(False, np.inf, np.inf, "NaN positions differ")
    # The reference rounded to the output type may overflow to inf: that is the right answer.
    ref_rounded = ref64.astype(npdt).astype(np.float64)
    inf_a, inf_r = np.isinf(a), np.isinf(ref_rounded)
    if not np.array_equal(inf_a, inf_r) or not np.array_equal(a[inf_a], ref_rounded[inf_r]):
        return Verdict(False, np.inf, np.inf, "infinities differ")
    fin = ~(nan_a | inf_a)
    a_f, r_f = a[fin], ref64[fin]
    if a_f.size == 0:
        return Verdict(True, 0.0, 0.0)
    abs_err = np.abs(a_f - r_f)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(r_f != 0, abs_err / np.abs(r_f), np.where(abs_err == 0, 0.0, np.inf))
    max_abs, max_rel = float(abs_err.max()), float(rel.max())
    if dtype == "float64":
        tiny = float(np.finfo(np.float64).tiny)
        ok = bool(np.all(abs_err <= F64_RTOL * np.abs(r_f) + tiny))
    elif dtype == "float32" and reduction != "none":
        bound = F32_REDUCE_FLOOR
        if torch_own is not None:
            t = np.asarray(torch_own, dtype=np.float64)[fin]
            with np.errstate(invalid="ignore"):
                own = np.abs(t - r_f) / np.where(r_f != 0, np.abs(r_f), 1.0)
            if np.all(np.isfinite(own)):
                bound = max(bound, float(own.max()))
        ok = bool(np.all(abs_err <= bound * np.abs(r_f) + _ulp(r_f, npdt) * (r_f == 0)))
    elif dtype == "float32" and own is not None:
        # 'none': within one rounding, or no worse than PyTorch's float32, element by element.
        t_err = np.abs(own.astype(np.float64)[fin] - r_f)
        ok = bool(np.all((abs_err <= _ulp(r_f, npdt)) | (abs_err <= t_err)))
    else:
        ok = bool(np.all(abs_err <= _ulp(r_f, npdt)))
    return Verdict(ok, max_abs, max_rel, "" if ok else f"max abs {max_abs:.3g}, rel {max_rel:.3g}")
