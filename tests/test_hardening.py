"""Bad input: every mistake gets a clear error, never a crash, hang or abort.

What might take the process down (the compiled kernel, the Python op, a library that is not
a library, corrupt model bytes reaching onnxruntime's native code) runs in a subprocess whose
exit status and message are asserted; pure-Python checks run in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import run_cli
from onnx import helper

import onnx_smoothl1 as sl1
from onnx_smoothl1 import runtime

REPO = Path(__file__).resolve().parents[1]
F32 = np.float32


def kernel_missing() -> str | None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if runtime.has_custom_op():
            return None
    return "fused kernel library not built: " + "; ".join(str(w.message) for w in caught)


def pyop_missing() -> str | None:
    import importlib.util

    if importlib.util.find_spec("onnxruntime_extensions") is None:
        return "onnxruntime-extensions is not installed"
    if importlib.util.find_spec("onnx_smoothl1.pyop") is None:
        return "onnx_smoothl1.pyop does not exist (yet)"
    return None


needs_kernel = pytest.mark.skipif(bool(kernel_missing()), reason=str(kernel_missing()))
needs_pyop = pytest.mark.skipif(bool(pyop_missing()), reason=str(pyop_missing()))


def run_py(code: str, *, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (repo root as cwd, so the package imports)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def assert_no_signal(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode >= 0, (
        f"killed by signal {-proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}"
    )


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """CLI contract: exit 2, one clear message on stderr, no traceback."""
    assert_no_signal(proc)
    assert proc.returncode == 2, f"rc={proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "error:" in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, f"{needle!r} not in {proc.stderr!r}"


# --- model mutations ------------------------------------------------------------------------


def with_attr(name: str, value, model: onnx.ModelProto | None = None) -> onnx.ModelProto:
    """``model`` (default: make_model()) with the node's attribute ``name`` replaced/removed."""
    model = model or sl1.make_model()
    node = model.graph.node[0]
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept)
    if value is not None:
        node.attribute.append(helper.make_attribute(name, value))
    return model


def with_elem_type(elem: int) -> onnx.ModelProto:
    model = sl1.make_model()
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.elem_type = elem
    return model


def with_domain_version(version: int) -> onnx.ModelProto:
    model = sl1.make_model()
    for o in model.opset_import:
        if o.domain == sl1.DOMAIN:
            o.version = version
    return model


def feeds(n: int = 3, dtype=F32) -> dict[str, np.ndarray]:
    return {"input": np.full(n, 3, dtype), "target": np.zeros(n, dtype)}


BAD_ATTR_TYPES = {
    "beta-int": ("beta", 2, "attribute beta must be FLOAT, got INT"),
    "beta-string": ("beta", "0.5", "attribute beta must be FLOAT, got STRING"),
    "beta-floats": ("beta", [0.5, 1.0], "attribute beta must be FLOAT, got FLOATS"),
    "reduction-int": ("reduction", 1, "attribute reduction must be STRING, got INT"),
    "reduction-strings": ("reduction", ["mean"], "attribute reduction must be STRING, got STRINGS"),
}
BAD_ATTR_VALUES = {
    "beta-negative": ("beta", -1.0, "beta must be a float >= 0, got -1.0"),
    "beta-nan": ("beta", float("nan"), "beta must be a float >= 0, got nan"),
    "beta-minus-inf": ("beta", float("-inf"), "beta must be a float >= 0, got -inf"),
    "reduction-unknown": ("reduction", "avg", "got 'avg'"),
    "reduction-empty": ("reduction", "", "got ''"),
    "reduction-uppercase": ("reduction", "MEAN", "got 'MEAN'"),
}


# --- Python API, function path (in-process: no native code of ours) ------------------------


@pytest.mark.parametrize("case", list(BAD_ATTR_TYPES) + list(BAD_ATTR_VALUES))
@pytest.mark.parametrize("custom_op", [False, "auto"])
def test_bad_attribute_refused_at_session_creation(case, custom_op):
    name, value, message = {**BAD_ATTR_TYPES, **BAD_ATTR_VALUES}[case]
    with pytest.raises(ValueError) as err:
        sl1.inference_session(with_attr(name, value), custom_op=custom_op)
    assert "SmoothL1Loss node 'smooth_l1'" in str(err.value)
    assert message in str(err.value)


@pytest.mark.parametrize("elem", ["INT32", "INT64", "UINT8", "BOOL", "STRING"])
def test_non_float_model_refused(elem):
    """SPEC: integer or bool tensors are an error (the function would return truncated ints)."""
    with pytest.raises(ValueError, match=f"input 'input' is {elem.lower()}; the loss takes float16"):
        sl1.inference_session(with_elem_type(getattr(onnx.TensorProto, elem)), custom_op=False)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.ones(3, np.int32), "Unexpected input data type"),
        (np.ones(3, np.int64), "Unexpected input data type"),
        (np.ones(3, bool), "Unexpected input data type"),
        (np.ones(3, np.float64), "Unexpected input data type"),
        (np.array(["a", "b", "c"]), "non-string"),
    ],
    ids=["int32", "int64", "bool", "float64-into-float32", "string"],
)
def test_wrong_feed_dtype(array, message):
    session = sl1.inference_session(sl1.make_model(), custom_op=False)
    with pytest.raises(Exception, match=message):
        runtime.run(session, {"input": array, "target": np.zeros(3, F32)})


@pytest.mark.parametrize("shapes", [((3,), (4,)), ((2, 3), (3, 2)), ((4, 1, 3), (5, 2))])
def test_unbroadcastable_shapes_function(shapes):
    session = sl1.inference_session(sl1.make_model(), custom_op=False)
    with pytest.raises(Exception, match="broadcast"):
        runtime.run(session, {"input": np.ones(shapes[0], F32), "target": np.ones(shapes[1], F32)})


def test_missing_and_unknown_inputs():
    session = sl1.inference_session(sl1.make_model(), custom_op=False)
    with pytest.raises(ValueError, match=r"Required inputs \(\['target'\]\) are missing"):
        runtime.run(session, {"input": np.ones(3, F32)})
    with pytest.raises(Exception, match="[Ii]nvalid input name"):
        runtime.run(session, {**feeds(), "bogus": np.ones(3, F32)})


@pytest.mark.parametrize("version", [2, 0, 99])
def test_unknown_domain_version_refused(version):
    with pytest.raises(ValueError, match=f"imports domain 'onnx_smoothl1' at version {version}"):
        sl1.inference_session(with_domain_version(version), custom_op=False)


def test_model_without_function_and_without_kernel():
    model = sl1.make_model()
    del model.functions[:]
    with pytest.raises(sl1.CustomOpUnavailable, match="custom_op=True.*re-export with mode='function'.*"
                       "SmoothL1Loss.*is not a registered function/op"):
        sl1.inference_session(model, custom_op=False)


@pytest.mark.parametrize("cut", [0, 10, 0.5, -1])
def test_truncated_model_bytes(cut):
    data = sl1.make_model().SerializeToString()
    data = data[: int(len(data) * cut) if isinstance(cut, float) else cut]
    with pytest.raises(Exception, match="INVALID_PROTOBUF|protobuf|No graph was found"):
        sl1.inference_session(data, custom_op=False)


def test_bad_model_argument():
    with pytest.raises(ValueError, match="no such file"):
        sl1.inference_session("/nonexistent/model.onnx")
    with pytest.raises(ValueError, match="model must be an onnx.ModelProto, bytes or a path"):
        sl1.inference_session(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="custom_op must be True, False, 'auto' or 'python'"):
        sl1.inference_session(sl1.make_model(), custom_op="yes")  # type: ignore[arg-type]


def test_make_model_rejects_bad_arguments():
    for kwargs, message in [
        ({"beta": -0.5}, "beta must be a float >= 0"),
        ({"beta": float("nan")}, "beta must be a float >= 0"),
        ({"beta": "1"}, "beta must be a float >= 0"),
        ({"reduction": "avg"}, "reduction must be one of"),
        ({"reduction": 1}, "reduction must be one of"),
        ({"dtype": "int32"}, "dtype must be one of"),
        ({"dtype": "bool"}, "dtype must be one of"),
    ]:
        with pytest.raises(ValueError, match=message):
            sl1.make_model(**kwargs)


# --- the library path ---------------------------------------------------------------------


def test_library_path_that_does_not_exist(monkeypatch):
    monkeypatch.setenv(runtime.LIBRARY_ENV, "/nonexistent/libonnx_smoothl1_ops.so")
    with pytest.raises(sl1.CustomOpUnavailable, match="does not name an existing file"):
        sl1.get_library_path()
    with pytest.warns(RuntimeWarning, match="/nonexistent/libonnx_smoothl1_ops.so"):
        assert sl1.has_custom_op() is False
    with pytest.raises(sl1.CustomOpUnavailable, match="custom_op=True but .* not available"):
        sl1.inference_session(sl1.make_model(), custom_op=True)
    session = sl1.inference_session(sl1.make_model(), custom_op="auto")  # falls back
    assert session.smoothl1_path == "function"
    assert runtime.run(session, feeds())[0] == pytest.approx(2.5)


def test_cli_library_path_that_does_not_exist(tmp_path, tmp_npy):
    model = tmp_path / "m.onnx"
    onnx.save(sl1.make_model(), model)
    x, y = tmp_npy("x.npy", np.ones(3, F32)), tmp_npy("y.npy", np.zeros(3, F32))
    env = {runtime.LIBRARY_ENV: "/nonexistent/lib.so"}
    assert_user_error(run_cli("run", str(model), "--input", x, "--target", y, "--custom-op", env=env),
                      "/nonexistent/lib.so", "does not name an existing file")
    ok = run_cli("run", str(model), "--input", x, "--target", y, env=env)  # auto: function
    assert ok.returncode == 0, ok.stderr
    assert "path: ONNX function" in ok.stdout


def test_library_path_that_is_not_a_library(tmp_path):
    bogus = tmp_path / "libbogus.so"
    bogus.write_text("not an ELF file\n")
    proc = run_py(
        """
        import sys, onnx_smoothl1 as sl1
        try:
            sl1.inference_session(sl1.make_model(), custom_op=True)
        except Exception as exc:
            print(f"ERROR {type(exc).__name__}: {exc}", file=sys.stderr); sys.exit(3)
        print("no error")
        """,
        env={runtime.LIBRARY_ENV: str(bogus)},
    )
    assert_no_signal(proc)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "libbogus.so" in proc.stderr


# --- the fused kernel (subprocess: a native crash must not take pytest down) ---------------

_KERNEL_SCRIPT = r"""
import json, sys
import numpy as np, onnx, onnxruntime as ort
from onnx import helper
sys.path.insert(0, "tests")
import onnx_smoothl1 as sl1
from onnx_smoothl1 import runtime
from test_hardening import with_attr, with_elem_type, with_domain_version, BAD_ATTR_TYPES, BAD_ATTR_VALUES

lib = runtime.get_library_path()

def raw_session(model):
    # Straight onnxruntime with the library registered: the kernel's own validation, not ours.
    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.register_custom_ops_library(lib)
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])

def outcome(name, fn):
    print("START", name, file=sys.stderr, flush=True)  # the last START names a crash
    try:
        value = fn()
        return {"ok": True, "value": repr(value)}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

def run_raw(model, x, y):
    return raw_session(model).run(None, {"input": x, "target": y})[0]

f32 = lambda *s: np.ones(s, np.float32)
cases = {}
for case, (name, value, _) in {**BAD_ATTR_TYPES, **BAD_ATTR_VALUES}.items():
    cases["attr:" + case] = lambda name=name, value=value: raw_session(with_attr(name, value))
cases["domain-v2"] = lambda: run_raw(with_domain_version(2), f32(3), f32(3))
cases["type:int32"] = lambda: raw_session(with_elem_type(onnx.TensorProto.INT32))
cases["type:bool"] = lambda: raw_session(with_elem_type(onnx.TensorProto.BOOL))
cases["feed:int32"] = lambda: run_raw(sl1.make_model(), np.ones(3, np.int32), np.ones(3, np.int32))
cases["feed:float64-into-float32"] = lambda: run_raw(sl1.make_model(), np.ones(3), np.ones(3))
for sx, sy in [((3,), (4,)), ((2, 3), (3, 2)), ((4, 1, 3), (5, 2))]:
    for red in ("none", "mean"):
        cases[f"shapes:{sx}-{sy}-{red}"] = (
            lambda sx=sx, sy=sy, red=red: run_raw(sl1.make_model(reduction=red), f32(*sx), f32(*sy)))
cases["rank-40"] = lambda: run_raw(sl1.make_model(), f32(*[1] * 40), f32(*[1] * 40))
cases["node-1-input"] = lambda: raw_session(_drop_input())
def _drop_input():
    m = sl1.make_model(); del m.graph.node[0].input[1]; return m
cases["via-api:reduction-unknown"] = lambda: sl1.inference_session(with_attr("reduction", "avg"), custom_op=True)
selected = sys.argv[1:] or list(cases)
print(json.dumps({name: outcome(name, cases[name]) for name in selected}))
"""


@pytest.fixture(scope="module")
def kernel_outcomes():
    reason = kernel_missing()
    if reason:
        pytest.skip(reason)
    proc = subprocess.run([sys.executable, "-c", _KERNEL_SCRIPT], capture_output=True, text=True,
                          errors="replace", timeout=300, cwd=REPO)
    assert_no_signal(proc)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@needs_kernel
@pytest.mark.parametrize("case", list(BAD_ATTR_VALUES))
def test_kernel_refuses_bad_attribute_value_at_session_creation(kernel_outcomes, case):
    """issue 3: the kernel validates attributes at kernel creation; the message names the
    node, the attribute and the value (onnxruntime straight, not through our Python check)."""
    name, value, _ = BAD_ATTR_VALUES[case]
    result = kernel_outcomes["attr:" + case]
    assert not result["ok"], f"session created despite {name}={value!r}: {result}"
    assert "SmoothL1Loss node 'smooth_l1'" in result["error"]
    assert f"attribute {name}=" in result["error"]
    shown = {"beta-negative": "-1", "beta-nan": "nan", "beta-minus-inf": "-inf"}.get(case, repr(value))
    assert shown in result["error"], result


@needs_kernel
@pytest.mark.parametrize("case", list(BAD_ATTR_TYPES))
def test_kernel_refuses_wrong_attribute_type_at_session_creation(kernel_outcomes, case):
    name, value, _ = BAD_ATTR_TYPES[case]
    result = kernel_outcomes["attr:" + case]
    assert not result["ok"], f"session created despite {name}={value!r} ({type(value).__name__})"
    assert "SmoothL1Loss node 'smooth_l1'" in result["error"] and name in result["error"], result
    assert "must be a" in result["error"], result


@needs_kernel
def test_kernel_refuses_non_float_types(kernel_outcomes):
    for case in ("type:int32", "type:bool", "feed:int32", "feed:float64-into-float32"):
        result = kernel_outcomes[case]
        assert not result["ok"], (case, result)
        assert "type" in result["error"].lower(), (case, result)


@needs_kernel
def test_kernel_unbroadcastable_shapes_clear_error(kernel_outcomes):
    for case, result in kernel_outcomes.items():
        if case.startswith("shapes:"):
            assert not result["ok"], (case, result)
            assert "SmoothL1Loss node 'smooth_l1'" in result["error"], (case, result)
            assert "broadcast" in result["error"], (case, result)


@needs_kernel
def test_kernel_rank_limit_and_arity(kernel_outcomes):
    rank = kernel_outcomes["rank-40"]
    assert not rank["ok"] and "rank 40" in rank["error"], rank
    arity = kernel_outcomes["node-1-input"]
    assert not arity["ok"] and "smooth_l1" in arity["error"], arity


@needs_kernel
def test_kernel_through_api_names_the_attribute(kernel_outcomes):
    result = kernel_outcomes["via-api:reduction-unknown"]
    assert not result["ok"] and "attribute reduction" in result["error"] and "'avg'" in result["error"]


@needs_kernel
def test_kernel_unknown_domain_version(kernel_outcomes):
    """onnxruntime straight runs a domain-v2 node with the v1 kernel (the library registers the
    op without a version range); inference_session refuses it (test_unknown_domain_version_refused).
    Recorded here so a change in behaviour is noticed: no crash either way."""
    assert "domain-v2" in kernel_outcomes


@needs_kernel
def test_register_library_twice_one_process_and_two_sessions():
    proc = run_py(
        """
        import numpy as np, onnxruntime as ort
        import onnx_smoothl1 as sl1
        from onnx_smoothl1 import runtime
        lib = runtime.get_library_path()
        model = sl1.make_model(reduction="none").SerializeToString()
        x = np.linspace(-3, 3, 7, dtype=np.float32); y = np.zeros(7, np.float32)
        outs = []
        for _ in range(3):  # a fresh SessionOptions each time: the library is loaded again
            so = ort.SessionOptions(); so.register_custom_ops_library(lib)
            outs.append(ort.InferenceSession(model, so, providers=["CPUExecutionProvider"]))
        s4 = sl1.inference_session(model, custom_op=True)
        s5 = sl1.inference_session(model, custom_op=True)
        res = [s.run(None, {"input": x, "target": y})[0] for s in outs] + [
            runtime.run(s, {"input": x, "target": y})[0] for s in (s4, s5)]
        assert all(np.array_equal(r, res[0]) for r in res), res
        # the same SessionOptions registering the library twice: an error or fine, no crash
        so = ort.SessionOptions(); so.register_custom_ops_library(lib)
        try:
            so.register_custom_ops_library(lib)
            s6 = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
            assert np.array_equal(s6.run(None, {"input": x, "target": y})[0], res[0])
            print("double registration on one SessionOptions: accepted")
        except Exception as exc:
            print(f"double registration on one SessionOptions: refused: {exc}")
        del outs, s4, s5
        print("OK")
        """
    )
    assert_no_signal(proc)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK" in proc.stdout
    print(proc.stdout)


# --- the Python op (onnxruntime-extensions) -----------------------------------------------


@needs_pyop
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_python_op_refuses_unsupported_dtype_without_abort(dtype):
    """Declaring float16 in onnxruntime-extensions' Python op API aborts the process; the
    project must refuse it with a Python error first (subprocess: an abort shows as a signal)."""
    proc = run_py(
        f"""
        import sys, numpy as np, ml_dtypes
        import onnx_smoothl1 as sl1
        from onnx_smoothl1 import runtime
        npdt = {{"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}}["{dtype}"]
        try:
            s = sl1.inference_session(sl1.make_model(dtype="{dtype}"), custom_op="python")
            out = runtime.run(s, {{"input": np.ones(3, npdt), "target": np.zeros(3, npdt)}})
        except Exception as exc:
            print(f"ERROR {{type(exc).__name__}}: {{exc}}", file=sys.stderr); sys.exit(3)
        print("RAN", out)
        """
    )
    assert_no_signal(proc)
    assert proc.returncode == 3, f"rc={proc.returncode}: {proc.stdout} {proc.stderr[-2000:]}"
    assert dtype in proc.stderr, proc.stderr[-2000:]


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def model_file(tmp_path):
    def save(model: onnx.ModelProto | bytes, name: str = "m.onnx") -> str:
        path = tmp_path / name
        path.write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
        return str(path)

    return save


def test_cli_run_bad_inputs(model_file, tmp_npy, tmp_path):
    model = model_file(sl1.make_model())
    good = tmp_npy("good.npy", np.ones(3, F32))
    cases = [
        (tmp_npy("int.npy", np.ones(3, np.int32)), ["'input' must be float32", "got int32"]),
        (tmp_npy("bool.npy", np.ones(3, bool)), ["'input' must be float32", "got bool"]),
        (tmp_npy("str.npy", np.array(["a", "b", "c"])), ["'input' must be float32"]),
        (tmp_npy("wide.npy", np.ones(4, F32)), ["cannot be broadcast together"]),
    ]
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases.append((str(obj), ["is not a readable .npy file"]))
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"\x93NUMPY garbage")
    cases.append((str(junk), ["is not a readable .npy file"]))
    for path, needles in cases:
        assert_user_error(run_cli("run", model, "--input", path, "--target", good, "--no-custom-op"), *needles)


@pytest.mark.parametrize("command", ["run", "info"])
@pytest.mark.parametrize("corruption", ["truncated", "garbage", "empty", "missing"])
def test_cli_corrupt_model_file(command, corruption, model_file, tmp_npy):
    data = sl1.make_model().SerializeToString()
    content = {"truncated": data[: len(data) // 2], "garbage": bytes(range(256)) * 4, "empty": b""}.get(corruption)
    path = model_file(content) if content is not None else "/nonexistent/model.onnx"
    args = [command, path]
    if command == "run":
        x = tmp_npy("x.npy", np.ones(3, F32))
        args += ["--input", x, "--target", x]
    proc = run_cli(*args)
    # An empty file parses as an empty ModelProto: refused as "empty (0 bytes)", naming MODEL
    # (it used to pass as a model with no nodes).
    assert_user_error(proc, "MODEL", *(["empty (0 bytes)"] if corruption == "empty" else []))


@pytest.mark.parametrize(
    "model, needle",
    [
        (with_attr("reduction", "avg"), "attribute reduction must be one of"),
        (with_attr("beta", -2.0), "attribute beta must be a float >= 0"),
        (with_attr("beta", 3), "attribute beta must be FLOAT, got INT"),
        (with_domain_version(2), "at version 2"),
        (with_elem_type(onnx.TensorProto.INT32), "'input' is int32"),
    ],
    ids=["reduction-avg", "beta-negative", "beta-int", "domain-v2", "int32-model"],
)
def test_cli_run_bad_model(model, needle, model_file, tmp_npy):
    elem = model.graph.input[0].type.tensor_type.elem_type
    x = tmp_npy("x.npy", np.ones(3, helper.tensor_dtype_to_np_dtype(elem)))
    assert_user_error(run_cli("run", model_file(model), "--input", x, "--target", x), needle)


def test_cli_info_reports_bad_attributes_without_crashing(model_file):
    proc = run_cli("info", model_file(with_attr("reduction", 7, with_attr("beta", "x"))))
    assert proc.returncode == 0, proc.stderr
    assert "beta=b'x'" in proc.stdout or "beta=x" in proc.stdout


@needs_pyop
def test_python_op_beta_exact_or_refused():
    """onnxruntime-extensions passes FLOAT attributes as %g text (6 significant digits): a beta
    like 0.3 must still be used as the attribute's exact float32 value (float64 parity 1e-12),
    and a beta the text cannot carry (123456.789f arrives as 123457) must be refused."""
    from onnx_smoothl1 import oracle

    x = np.array([0.1, 0.29, 0.31, 5.0, 1e5, 2e5])
    y = np.zeros(6)
    for beta in (0.3, 7.5, 1e-30):
        session = sl1.inference_session(sl1.make_model(beta=beta, reduction="none", dtype="float64"),
                                        custom_op="python")
        out = runtime.run(session, {"input": x, "target": y})[0]
        ref = oracle.reference(x, y, beta=beta, reduction="none")
        assert oracle.compare(out, ref, dtype="float64", reduction="none").ok, (beta, out, ref)
    with pytest.raises(ValueError, match="would run beta=123456.7890625 as 123457.0"):
        sl1.inference_session(sl1.make_model(beta=123456.789, dtype="float64"), custom_op="python")


@needs_pyop
def test_python_op_unbroadcastable_shapes_do_not_abort():
    """Any exception raised inside an onnxruntime-extensions Python op aborts the process
    (std::terminate). runtime.run refuses unbroadcastable graph inputs before running; a raw
    session.run (nothing can check first) gets NaN and a RuntimeWarning, not an abort."""
    proc = run_py(
        """
        import sys, warnings, numpy as np
        import onnx_smoothl1 as sl1
        from onnx_smoothl1 import runtime
        s = sl1.inference_session(sl1.make_model(reduction="none"), custom_op="python")
        x, y = np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)
        try:
            runtime.run(s, {"input": x, "target": y})
            sys.exit("runtime.run did not refuse")
        except ValueError as exc:
            print("REFUSED", exc)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = s.run(None, {"input": x, "target": y})[0]
        assert np.isnan(out).all(), out
        assert any("cannot be broadcast" in str(w.message) for w in caught), caught
        print("RAW NAN")
        """
    )
    assert_no_signal(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "REFUSED SmoothL1Loss inputs 'input' (2, 3) and 'target' (3, 2) cannot be broadcast" in proc.stdout
    assert "RAW NAN" in proc.stdout


def test_mixed_input_types_refused_on_every_path():
    """input float32, target float64: the kernel and the Python op cannot take it (onnxruntime
    type constraint), so the function path refuses it too: one model, one behaviour."""
    model = sl1.make_model()
    model.graph.input[1].type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    modes = [False, "auto"] + (["python"] if not pyop_missing() else [])
    for mode in modes:
        with pytest.raises(ValueError, match="input 'input' is float but target 'target' is double"):
            sl1.inference_session(model, custom_op=mode)


def _cli_has(command: str) -> bool:
    from onnx_smoothl1 import cli

    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    return command in sub.choices


@pytest.mark.parametrize("command", ["fuse", "inline"])
def test_cli_fuse_inline_ready_made_and_malformed_models(command, model_file, tmp_path):
    """Regressions found by the fuzzer: inline of the ready-made (unknown-rank) models died in
    the checker; a model with an unknown element type died in onnx_ir with a traceback."""
    if not _cli_has(command):
        pytest.skip(f"`onnx-smoothl1 {command}` does not exist (yet)")
    ready = REPO / "models" / "smooth_l1_mean.onnx"
    proc = run_cli(command, str(ready), str(tmp_path / "out.onnx"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert onnx.load(tmp_path / "out.onnx").graph.node
    bad = with_elem_type(999)
    assert_user_error(run_cli(command, model_file(bad), str(tmp_path / "bad.onnx")), "IN:")


def test_cli_missing_arguments(model_file, tmp_npy):
    model = model_file(sl1.make_model())
    x = tmp_npy("x.npy", np.ones(3, F32))
    for argv, needle in [
        (["run", model, "--input", x], "the following arguments are required: --target"),
        (["run", "--input", x, "--target", x], "the following arguments are required: MODEL"),
        (["info"], "the following arguments are required: MODEL"),
        (["run", model, "--input", x, "--target", x, "--custom-op", "--no-custom-op"], "not allowed with"),
    ]:
        assert_user_error(run_cli(*argv), needle)
