"""Property tests (hypothesis): every available CPU path agrees with PyTorch.

Paths: onnxruntime running the model-local function, onnx.reference on the same model, the
fused C++ kernel (when the library is built), the onnxruntime-extensions Python op (when
``onnx_smoothl1.pyop`` and onnxruntime-extensions are installed, for the dtypes it supports)
and ``onnx_smoothl1.inline``'s standard-op copy of the model in onnxruntime.
A path that is not available skips with the reason; none passes without running.

Inputs: shapes of rank 0-5 with sizes 0..4 (broadcastable pairs, numpy rules), float16,
bfloat16, float32 and float64, beta in {0, float32 subnormals, 1e-30, 1e30, ...} or random,
each reduction, and values mixing NaN, +-inf, +-0, the dtype's largest/smallest magnitudes,
values straddling beta, and random magnitudes.

The oracle is ``onnx_smoothl1.oracle``: PyTorch in float64 and SPEC's tolerances (float32
reductions: no worse than PyTorch's own float32 result).

Bounded in CI (hypothesis profile "ci", see conftest.py). The thorough run (>= 10,000
examples per test)::

    pytest tests/test_property.py --hypothesis-profile=thorough
"""

from __future__ import annotations

import collections
import functools
import importlib.util
import warnings

import numpy as np
import onnx
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx.reference import ReferenceEvaluator

import onnx_smoothl1 as sl1
from onnx_smoothl1 import oracle, runtime

DTYPES = ["float16", "bfloat16", "float32", "float64"]

# --- which paths exist here --------------------------------------------------------------


def _kernel_unavailable() -> str | None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if runtime.has_custom_op():
            return None
    return "fused kernel library not built: " + "; ".join(str(w.message) for w in caught)


def _pyop_unavailable() -> str | None:
    if importlib.util.find_spec("onnxruntime_extensions") is None:
        return "onnxruntime-extensions is not installed"
    if importlib.util.find_spec("onnx_smoothl1.pyop") is None:
        return "onnx_smoothl1.pyop does not exist (yet)"
    return None


def pyop_dtypes() -> tuple[str, ...]:
    """The dtypes the Python op accepts (it must refuse the others with a Python error)."""
    from onnx_smoothl1 import pyop

    for name in ("SUPPORTED_DTYPES", "DTYPES", "supported_dtypes"):
        value = getattr(pyop, name, None)
        if value is not None:
            value = value() if callable(value) else value
            return tuple(oracle.spec.check_dtype(d) if not isinstance(d, int) else
                         next(k for k, v in sl1.spec.DTYPES.items() if v == d) for d in value)
    return ("float32", "float64")


def _inline_unavailable() -> str | None:
    if importlib.util.find_spec("onnx_smoothl1.inline") is None:
        return "onnx_smoothl1.inline does not exist (yet)"
    return None


UNAVAILABLE = {
    "ort-function": None,
    "onnx-reference": None,
    "kernel": _kernel_unavailable(),
    "python-op": _pyop_unavailable(),
    # inline(model): standard ops only (what OpenVINO/tract run), in onnxruntime
    "inlined-ort": _inline_unavailable(),
}
PATHS = list(UNAVAILABLE)

# --- running a model on one path ---------------------------------------------------------


@functools.lru_cache(maxsize=512)
def model_bytes(beta: float, reduction: str, dtype: str) -> bytes:
    return sl1.make_model(beta=beta, reduction=reduction, dtype=dtype).SerializeToString()


class _SessionCache:
    """Bounded LRU of sessions (random betas would otherwise pile up sessions)."""

    def __init__(self, size: int = 64):
        self.size, self.items = size, collections.OrderedDict()

    def get(self, key, make):
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = self.items[key] = make()
        if len(self.items) > self.size:
            self.items.popitem(last=False)
        return value


_SESSIONS = _SessionCache()
_CUSTOM_OP = {"ort-function": False, "kernel": True, "python-op": "python"}


@functools.lru_cache(maxsize=256)
def inlined(model: bytes) -> bytes:
    from onnx_smoothl1.inline import inline

    return inline(onnx.load_from_string(model)).SerializeToString()


def run_path(path: str, model: bytes, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if path == "inlined-ort":
        path, model = "ort-function", inlined(model)
    if path == "onnx-reference":
        with np.errstate(all="ignore"):
            evaluator = _SESSIONS.get(("ref", model), lambda: ReferenceEvaluator(onnx.load_from_string(model)))
            return np.asarray(evaluator.run(None, {"input": x, "target": y})[0])
    session = _SESSIONS.get(
        (path, model), lambda: sl1.inference_session(model, custom_op=_CUSTOM_OP[path])
    )
    return runtime.run(session, {"input": x, "target": y})[0]


# --- strategies --------------------------------------------------------------------------

# Subnormal betas exactly representable in float32 (the attribute's type): a double such as
# 1e-40 itself is refused by make_model (stored as 9.99995e-41, spec.check_float32_attribute).
F32_SUBNORMALS = [float(np.float32(1e-45)), float(np.float32(1e-40)),
                  float(np.nextafter(np.float32(2.0**-126), np.float32(0)))]
SPECIAL_BETAS = [0.0, *F32_SUBNORMALS, 1e-30, 1e30, 1.0, 0.5, float(np.finfo(np.float32).max)]

betas = st.one_of(
    st.sampled_from(SPECIAL_BETAS),
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False, width=32),
    st.floats(min_value=2.0**-126, max_value=2.0**126, allow_nan=False, allow_infinity=False, width=32),
    # "human" betas (<= 6 significant digits): the ones the Python op can receive exactly
    st.builds(lambda k, e: k * 10.0**e, st.integers(1, 999_999), st.integers(-12, 6)),
)


def _finfo(dtype: str):
    import ml_dtypes

    npdt = oracle.NUMPY_DTYPES[dtype]
    return ml_dtypes.finfo(npdt) if dtype == "bfloat16" else np.finfo(npdt)


def special_values(dtype: str) -> list[float]:
    fi = _finfo(dtype)
    big, tiny, sub = float(fi.max), float(fi.tiny), float(fi.smallest_subnormal)
    return [np.nan, np.inf, -np.inf, 0.0, -0.0, big, -big, tiny, -tiny, sub, -sub, 1.0, -1.0]


def elements(dtype: str) -> st.SearchStrategy[float]:
    return st.one_of(
        st.sampled_from(special_values(dtype)),
        st.floats(min_value=-4.0, max_value=4.0),
        st.floats(allow_nan=False, allow_infinity=False),  # any float64 magnitude
        st.floats(min_value=-1e-30, max_value=1e-30),
    )


@st.composite
def cases(draw, dtype=None, beta=None):
    """(x, y, beta, reduction, dtype) with broadcastable shapes of rank 0-5."""
    dtype = dtype or draw(st.sampled_from(DTYPES))
    beta = draw(betas) if beta is None else beta
    reduction = draw(st.sampled_from(sl1.REDUCTIONS))
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=5, min_side=0, max_side=4))
    sx, sy = shapes.input_shapes
    npdt = oracle.NUMPY_DTYPES[dtype]
    mode = draw(st.sampled_from(["independent", "near-beta"]))
    if mode == "near-beta" and beta > 0:
        # y constant, x = y + beta * factor: every |x - y| straddles beta (the switch).
        c = draw(st.floats(min_value=-1e3, max_value=1e3))
        factors = draw(hnp.arrays(np.float64, sx, elements=st.sampled_from(
            [1.0, -1.0, 1 - 2.0**-10, 1 + 2.0**-10, 1 - 1e-7, 1 + 1e-7, 0.5, -2.0, 0.0])))
        ys = np.full(sy, c)
        with np.errstate(all="ignore"):
            xs = c + oracle.as_beta(beta) * factors
    else:
        ys = draw(hnp.arrays(np.float64, sy, elements=elements(dtype)))
        xs = draw(hnp.arrays(np.float64, sx, elements=elements(dtype)))
    note(f"mode={mode}")
    with np.errstate(all="ignore"):
        x, y = np.asarray(xs).astype(npdt), np.asarray(ys).astype(npdt)
    return x, y, beta, reduction, dtype


def _note(text: str) -> None:
    try:
        note(text)
    except Exception:  # outside a hypothesis test (plain regression tests)
        pass


def refused(path: str, beta: float, dtype: str) -> str | None:
    """Why ``path`` must refuse (clean ValueError at session creation) this case, if it must."""
    if path != "python-op":
        return None
    from onnx_smoothl1 import pyop

    if dtype not in pyop_dtypes():
        return dtype
    received = getattr(pyop, "received_beta", None)
    if received is not None and received(oracle.as_beta(beta)) != oracle.as_beta(beta):
        return "6 significant digits"  # onnxruntime-extensions passes float attributes as %g text
    return None


def check(path: str, x, y, beta: float, reduction: str, dtype: str) -> None:
    why = refused(path, beta, dtype)
    if why:
        with pytest.raises(ValueError, match=why):
            run_path(path, model_bytes(beta, reduction, dtype), x, y)
        return
    _note(f"path={path} dtype={dtype} beta={beta!r} reduction={reduction} x.shape={x.shape} y.shape={y.shape}")
    _note(f"x={x!r}\ny={y!r}")
    out = run_path(path, model_bytes(beta, reduction, dtype), x, y)
    with np.errstate(all="ignore"):
        ref = oracle.reference(x, y, beta=beta, reduction=reduction)
        own = oracle.torch_same_dtype(x, y, beta=beta, reduction=reduction)
        verdict = oracle.compare(out, ref, dtype=dtype, reduction=reduction, torch_own=own)
    if not verdict.ok and dtype == "float64" and _subnormal_square_corner(x, y, beta):
        why = _no_worse_than_torch_vs_exact(out, ref, x, y, beta, reduction)
        _note(f"float64 subnormal d*d corner: {why}")
        if why is None:
            return
    assert verdict.ok, (
        f"{path} {dtype} beta={beta!r} {reduction}: {verdict.detail}\nout={out!r}\nref={ref!r}\ntorch={own!r}"
    )


# float64 with |x - y| < 2**-511 on the quadratic branch: d*d is subnormal, so every order of
# operations loses bits there - torch's own float64 (0.5*d)*d/beta included (the oracle is not
# exact: e.g. d=1.356e-158, beta=float32 1.4e-45: torch is 2.0e-8 off the exact value, the
# kernel's d*d*(0.5/beta) 7e-9 off). SPEC's 1e-12 against torch cannot be met by another order,
# so there a path passes when it is no worse than torch against the exact rational result (the
# same "no worse than PyTorch's own" rule SPEC uses for float32 reductions).
_SUBNORMAL_SQUARE = 2.0**-511


def _subnormal_square_corner(x, y, beta: float) -> bool:
    with np.errstate(all="ignore"):
        d = np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))
    b = oracle.as_beta(beta)
    return bool(np.any((d < _SUBNORMAL_SQUARE) & (d < b) & (d > 0)))


def _exact(x, y, beta: float, reduction: str):
    """Exact rational SmoothL1 (Fractions) of finite inputs; None when any is not finite."""
    from fractions import Fraction

    xb, yb = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
    if not (np.all(np.isfinite(xb)) and np.all(np.isfinite(yb))):
        return None
    b = Fraction(oracle.as_beta(beta))
    elems = []
    for xi, yi in zip(xb.ravel().tolist(), yb.ravel().tolist()):
        d = abs(Fraction(xi) - Fraction(yi))
        elems.append(d * d / (2 * b) if d < b else d - b / 2)
    if reduction == "none":
        return elems, xb.shape
    total = sum(elems, Fraction(0))
    return [total if reduction == "sum" else total / len(elems)] if elems else None, ()


def _no_worse_than_torch_vs_exact(out, ref, x, y, beta: float, reduction: str) -> str | None:
    """None when ``out`` is as close to the exact result as torch's float64 ``ref`` (+1e-12)."""
    from fractions import Fraction

    exact = _exact(x, y, beta, reduction)
    if exact is None or exact[0] is None:
        return "not applicable (non-finite or empty input)"
    values, shape = exact
    outs, refs = np.asarray(out).ravel().tolist(), np.asarray(ref).ravel().tolist()
    if np.asarray(out).shape != shape or len(outs) != len(values):
        return f"shape {np.asarray(out).shape} != {shape}"
    for o, r, e in zip(outs, refs, values):
        if not (np.isfinite(o) and np.isfinite(r)):
            return f"non-finite output {o} / reference {r}"
        err_out, err_torch = abs(Fraction(o) - e), abs(Fraction(r) - e)
        if err_out > err_torch + Fraction(oracle.F64_RTOL) * abs(e):
            return f"output {o!r} is further from the exact {float(e)!r} than torch's {r!r}"
    return None


def _require(path: str, dtype: str | None = None) -> None:
    if UNAVAILABLE[path]:
        pytest.skip(f"{path}: {UNAVAILABLE[path]}")


# --- the properties ------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@given(case=cases())
def test_path_agrees_with_torch(path, case):
    """Random shapes/dtypes/betas/reductions/values: each path within SPEC of torch float64."""
    _require(path)
    x, y, beta, reduction, dtype = case
    if path == "python-op" and dtype not in pyop_dtypes():
        return  # refused dtypes: test_hardening.py (subprocess: declaring them would abort)
    check(path, x, y, beta, reduction, dtype)


#: Examples per test relative to the profile's max_examples ("ci": 200, "thorough": 10,000):
#: the main property gets them all, per-beta and float64 cross-checks a share.
_PROFILE_EXAMPLES = settings.default.max_examples


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("beta", SPECIAL_BETAS)
@settings(max_examples=max(10, _PROFILE_EXAMPLES // 20))
@given(data=st.data())
def test_special_betas(path, beta, data):
    """The corner betas (0 = L1, float32 subnormals, 1e-30, 1e30, FLT_MAX) on every dtype."""
    _require(path)
    x, y, beta, reduction, dtype = data.draw(cases(beta=beta))
    if path == "python-op" and dtype not in pyop_dtypes():
        return
    check(path, x, y, beta, reduction, dtype)


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=max(10, _PROFILE_EXAMPLES // 5))
@given(data=st.data())
def test_paths_agree_with_each_other_float64(path, data):
    """float64 'none': every path gives the function path's values (NaN where it is NaN)."""
    _require(path)
    x, y, beta, _, _ = data.draw(cases(dtype="float64"))
    if refused(path, beta, "float64"):
        return check(path, x, y, beta, "none", "float64")  # asserts the clean refusal
    model = model_bytes(beta, "none", "float64")
    out = run_path(path, model, x, y)
    base = run_path("ort-function", model, x, y)
    if _subnormal_square_corner(x, y, beta):
        return check(path, x, y, beta, "none", "float64")  # see _SUBNORMAL_SQUARE
    assert out.shape == base.shape and out.dtype == base.dtype
    np.testing.assert_array_equal(np.isnan(out), np.isnan(base))
    fin = np.isfinite(base)
    np.testing.assert_array_equal(out[~fin & ~np.isnan(base)], base[~fin & ~np.isnan(base)])
    np.testing.assert_allclose(out[fin], base[fin], rtol=oracle.F64_RTOL, atol=0)


@pytest.mark.parametrize("path", PATHS)
def test_float64_subnormal_square_corner(path):
    """The corner the thorough run found: d*d subnormal in float64 (see _SUBNORMAL_SQUARE)."""
    _require(path)
    x = np.array([1.35608926e-158, 3e-160, 1e-200, 0.0])
    y = np.zeros(4)
    for beta in (float(np.float32(1e-45)), 1e-30, 1.0):
        for reduction in sl1.REDUCTIONS:
            check(path, x, y, beta, reduction, "float64")


def test_overflow_corner_is_float64_accurate():
    """beta 1e30, |x-y| 1e20: torch float32 computes 0.5*d*d = inf; SPEC's oracle (float64)
    says 5e9. The function path computes in float64 and matches the oracle."""
    x = np.array([1e20, -1e20, 3e19], np.float32)
    y = np.zeros(3, np.float32)
    torch_own = oracle.torch_same_dtype(x, y, beta=1e30, reduction="none")
    assert np.all(np.isinf(torch_own)), torch_own  # documents PyTorch's float32 overflow
    for path in [p for p in PATHS if not UNAVAILABLE[p] and p != "python-op"]:
        check(path, x, y, 1e30, "none", "float32")


@pytest.mark.parametrize("beta", [1.000005, 0.999999, 1e-9, 2.0**-126, 1e-30])
def test_inline_keeps_betas_near_one_and_tiny(beta):
    """Regression: inline() once ran onnxscript's optimize(), whose no-op rules match
    constants approximately and turned Div by beta=1.000005 into Div by 1 and Sub of
    0.5*beta=5e-10 into Sub of 0."""
    _require("inlined-ort")
    b = oracle.as_beta(beta)
    x = np.array([b, 0.5 * b, 3 * b, 1.0, 2.0])
    y = np.zeros(5)
    for reduction in sl1.REDUCTIONS:
        check("inlined-ort", x, y, beta, reduction, "float64")


@pytest.mark.parametrize("path", PATHS)
def test_beta_infinity(path):
    """beta = +inf is allowed (spec.check_beta): 0.5*d*d/inf = 0 for finite d, inf - inf = NaN."""
    _require(path)
    x = np.array([0.0, 1.0, np.inf, -np.inf, np.nan, 1e38, -0.0], np.float32)
    y = np.zeros(7, np.float32)
    for dtype in ("float32", "float64"):
        for reduction in sl1.REDUCTIONS:
            check(path, x.astype(dtype), y.astype(dtype), float("inf"), reduction, dtype)
