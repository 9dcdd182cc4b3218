"""``onnx-smoothl1 parity --write-cases DIR``: the grid (SmoothL1Loss and HuberLoss cases) in
the ONNX backend-test layout, replayed here with onnxruntime (the function path) and with onnx.reference."""

from __future__ import annotations

import warnings

import ml_dtypes
import numpy as np
import pytest
from conftest import run_cli
from onnx.reference import ReferenceEvaluator

from onnx_smoothl1 import oracle, parity, runtime
from onnx_smoothl1.parity.write_cases import DATA_SET, expected_output, read_case, write_cases

CASES = parity.grid(quick=True)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    folders = write_cases(root, CASES)
    return dict(zip(CASES, folders))


def _bits(a: np.ndarray) -> tuple:
    """dtype, shape and the raw bits: exact comparison, NaNs included."""
    a = np.ascontiguousarray(a)
    return a.dtype, a.shape, a.view(f"u{a.dtype.itemsize}").tobytes()


def _close_to_expected(out: np.ndarray, expected: np.ndarray, case: parity.Case) -> str | None:
    """None when ``out`` is what SPEC allows next to the rounded reference, else why not.

    SPEC puts a half-type result within one rounding of the exact result and ``expected`` is
    the exact result rounded once, so both are grid points at most one ulp apart. float32
    may be as far off as PyTorch's own float32 result: 'none' rounds x - y before squaring
    it (a few ulps), sums within PyTorch's error or 2^-22; float64: 1e-12 relative."""
    out = np.asarray(out)
    if out.dtype != expected.dtype or out.shape != expected.shape:
        return f"{out.dtype}{list(out.shape)} != {expected.dtype}{list(expected.shape)}"
    a, e = out.astype(np.float64), expected.astype(np.float64)
    if not np.array_equal(np.isnan(a), np.isnan(e)):
        return "NaN positions differ"
    fin = np.isfinite(e)
    if not np.array_equal(a[~fin & ~np.isnan(e)], e[~fin & ~np.isnan(e)]):
        return "infinities differ"
    err = np.abs(a[fin] - e[fin])
    if case.dtype == "float64":
        bound = 1e-12 * np.abs(e[fin])
    elif case.dtype == "float32" and case.reduction != "none":
        bound = 2.0**-21 * np.abs(e[fin]) + np.abs(np.spacing(expected[fin])).astype(np.float64)
    else:
        finfo = ml_dtypes.finfo(expected.dtype) if expected.dtype == oracle.NUMPY_DTYPES["bfloat16"] \
            else np.finfo(expected.dtype)
        mag = np.abs(e[fin])
        exp = np.floor(np.log2(np.where(mag > 0, mag, float(finfo.tiny))))
        ulps = 4.0 if case.dtype == "float32" else 1.0
        bound = ulps * np.maximum(np.exp2(exp - finfo.nmant), float(finfo.smallest_subnormal))
    bad = err > bound
    if bad.any():
        worst = int(np.argmax(np.where(bad, err / np.maximum(bound, 1e-300), 0.0)))
        return f"off by {err[worst]:.3g} at {e[fin][worst]:.6g} (bound {bound[worst]:.3g})"
    return None


def test_layout_and_contents(written):
    for case, folder in written.items():
        prefix = "test_smoothl1_" if case.loss == "smooth_l1" else "test_huber_"
        assert folder.name == case.name and folder.name.startswith(prefix)
        files = sorted(p.name for p in (folder / DATA_SET).iterdir())
        assert files == ["input_0.pb", "input_1.pb", "output_0.pb"]
        model, inputs, outputs = read_case(folder)
        assert model.ir_version <= 10
        x, y = parity.make_inputs(case)
        assert list(inputs) == ["input", "target"]
        assert _bits(inputs["input"]) == _bits(x) and _bits(inputs["target"]) == _bits(y)
        assert [tuple(d.dim_value for d in i.type.tensor_type.shape.dim) for i in model.graph.input] == \
            [tuple(s) for s in case.shapes]
        # The expected output is the float64 reference rounded to the dtype, bit for bit.
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            ref = np.asarray(oracle.reference(x, y, beta=case.beta, reduction=case.reduction, loss=case.loss))
        assert {n.op_type for n in model.graph.node} == {case.op_type}
        want = ref.astype(oracle.NUMPY_DTYPES[case.dtype])
        assert outputs[0].dtype == want.dtype and outputs[0].shape == want.shape
        assert _bits(outputs[0]) == _bits(want)


@pytest.mark.parametrize("runner", ["onnxruntime", "onnx.reference"])
def test_replay(written, runner):
    failures = []
    for case, folder in written.items():
        model, inputs, outputs = read_case(folder)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if runner == "onnxruntime":
                session = runtime.inference_session(model, custom_op=False)
                out = runtime.run(session, inputs)[0]
            else:
                out = ReferenceEvaluator(model).run(None, inputs)[0]
        why = _close_to_expected(out, outputs[0], case)
        if why:
            failures.append(f"{case.label}: {why}")
    assert not failures, failures


def test_replay_catches_a_wrong_result(written):
    # The replay check is not vacuous: a result one percent off fails it.
    case = next(c for c in written if c.dtype == "float32" and c.shape == "odd" and c.reduction == "none")
    _, _, outputs = read_case(written[case])
    assert _close_to_expected(outputs[0], outputs[0], case) is None
    assert _close_to_expected((outputs[0] * np.float32(1.01)).astype(np.float32), outputs[0], case)


def test_expected_output_rounds_once():
    case = parity.Case("odd", "bfloat16", 0.3, "mean")
    x, y = parity.make_inputs(case)
    out = expected_output(case, x, y)
    ref = float(oracle.reference(x, y, beta=0.3, reduction="mean"))
    assert out.dtype == oracle.NUMPY_DTYPES["bfloat16"] and out.shape == ()
    assert abs(float(out) - ref) <= abs(float(np.spacing(np.float32(ref)))) * 2**16 / 2  # half a bf16 ulp


def test_cli_write_cases(tmp_path):
    proc = run_cli("parity", "--write-cases", str(tmp_path / "out"), "--quick", "--dtypes", "float64")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folders = sorted((tmp_path / "out").iterdir())
    assert len(folders) == len(parity.grid(["float64"], quick=True))
    assert any(f.name.startswith("test_huber_") for f in folders)
    proc = run_cli("parity", "--write-cases", str(tmp_path / "h"), "--quick", "--dtypes", "float64",
                   "--losses", "huber")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = {f.name for f in (tmp_path / "h").iterdir()}
    assert names == {c.name for c in parity.grid(["float64"], quick=True, losses=["huber"])}
    assert all((f / "model.onnx").is_file() and (f / DATA_SET / "output_0.pb").is_file() for f in folders)
    proc = run_cli("parity", "--write-cases", str(tmp_path / "x"), "--model", "m.onnx")
    assert proc.returncode == 2 and "--write-cases" in proc.stderr
    (tmp_path / "file").write_text("")
    proc = run_cli("parity", "--write-cases", str(tmp_path / "file"), "--quick")
    assert proc.returncode == 2 and "not a directory" in proc.stderr
