"""Fuzz: mutated models and argument sets against the CLI and the Python API.

Hypothesis generates the cases: valid SmoothL1Loss and HuberLoss models (every reduction and
dtype, fixed and any rank, and inlined standard-op copies for fuse/inline) mutated by byte flips, truncations and
insertions, attribute mutations (beta/delta/reduction: wrong types, bad values, missing, unknown), element-type and
shape mutations and structural ones (function removed, domain/opset/IR versions, op type,
node arity, dangling inputs), plus input arrays of random dtypes and shapes. Each case goes
to ``onnx-smoothl1 info``, ``run`` (function and kernel), ``fuse`` and ``inline`` and to
``inference_session`` + ``runtime.run`` (function, kernel, Python op). The contract:

* CLI: exit code 0, or 2 with a one-line ``error:`` message; never a traceback or a signal.
* API: a result, or an exception of a clear kind (ValueError, CustomOpUnavailable,
  onnxruntime's own errors) with a message; never TypeError/KeyError/AttributeError & co.
  from our code, never a signal or a hang.

To keep CI time bounded (a subprocess costs ~1 s to start here) the cases run in batches in a
driver subprocess (this file run as a script: ``python tests/test_fuzz.py --driver N``): it
logs each case before running it, so a native crash (negative exit status) or a hang (faulthandler
timeout) is reported with the case that caused it. A few cases also run as real per-command
subprocesses. Commands that do not exist yet (fuse/inline before the exporters land) are
skipped with a reason.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # the driver runs as a script
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from onnx import helper  # noqa: E402

CASE_TIMEOUT_S = 60

# --- base models ------------------------------------------------------------------------------


def base_models() -> dict[str, bytes]:
    import onnx_smoothl1 as sl1

    models = {}
    for reduction in ("none", "mean", "sum"):
        for dtype in ("float32", "float16", "float64", "bfloat16"):
            models[f"{reduction}-{dtype}"] = sl1.make_model(reduction=reduction, dtype=dtype, beta=0.5)
    models["mean-rank2"] = sl1.make_model(rank=2)
    models["sum-beta0"] = sl1.make_model(reduction="sum", beta=0.0)
    # HuberLoss: every reduction and dtype too (fewer combinations: the mutations are shared).
    for reduction, dtype in (("none", "float32"), ("mean", "float16"), ("sum", "float64"),
                             ("mean", "bfloat16"), ("none", "float64"), ("sum", "float32")):
        models[f"huber-{reduction}-{dtype}"] = sl1.make_huber_model(
            reduction=reduction, dtype=dtype, delta=0.35)
    models["huber-mean-rank2"] = sl1.make_huber_model(rank=2)
    out = {k: m.SerializeToString() for k, m in models.items()}
    try:
        from onnx_smoothl1.inline import inline

        out["inlined-mean"] = inline(sl1.make_model()).SerializeToString()
        out["huber-inlined-mean"] = inline(sl1.make_huber_model()).SerializeToString()
    except Exception:  # inline not available (yet): the other bases still cover everything
        pass
    return out


# --- mutations (applied to a ModelProto; the byte ones to the serialized model) --------------

ATTR_VALUES = st.one_of(
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.lists(st.floats(-2, 2, width=32), max_size=3),
    st.lists(st.text(max_size=4), min_size=1, max_size=3),
    st.sampled_from(["none", "mean", "sum", "avg", "", "MEAN", "mean\x00"]),
    st.none(),  # remove the attribute
)
ELEM_TYPES = st.one_of(st.integers(0, 26), st.sampled_from([999, -1]))
DIMS = st.lists(st.one_of(st.integers(-3, 5), st.sampled_from([2**40, -(2**40)]),
                          st.text("abN", min_size=1, max_size=3)), max_size=6)


def _set_attr(node: onnx.NodeProto, name: str, value) -> None:
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept)
    if value is None:
        return
    if isinstance(value, bytes):
        attr = onnx.AttributeProto(name=name, type=onnx.AttributeProto.STRING, s=value)
    elif isinstance(value, list) and not value:
        attr = onnx.AttributeProto(name=name, type=onnx.AttributeProto.FLOATS)
    else:
        attr = helper.make_attribute(name, value)
    node.attribute.append(attr)


def _set_dims(value: onnx.ValueInfoProto, dims) -> None:
    tt = value.type.tensor_type
    if dims is None:
        tt.ClearField("shape")
        return
    tt.shape.Clear()
    for d in dims:
        dim = tt.shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d


@st.composite
def model_mutation(draw):
    """(description, function ModelProto -> None)."""
    kind = draw(st.sampled_from(["attr", "attr", "elem", "shape", "struct", "struct", "none"]))
    if kind == "attr":
        name = draw(st.sampled_from(["beta", "delta", "reduction", "bogus"]))
        value = draw(ATTR_VALUES)
        return f"attr {name}={value!r}", lambda m: _set_attr(m.graph.node[0], name, value)
    if kind == "elem":
        which = draw(st.sampled_from(["input", "target", "output", "all"]))
        elem = draw(ELEM_TYPES)

        def apply(m):
            values = {"input": [m.graph.input[0]], "target": [m.graph.input[-1]],
                      "output": [m.graph.output[0]]}.get(which) or [*m.graph.input, *m.graph.output]
            for v in values:
                v.type.tensor_type.elem_type = elem
        return f"elem {which}={elem}", apply
    if kind == "shape":
        which = draw(st.sampled_from(["input", "target", "output"]))
        dims = draw(st.one_of(st.none(), DIMS))

        def apply(m):
            v = {"input": m.graph.input[0], "target": m.graph.input[-1], "output": m.graph.output[0]}[which]
            _set_dims(v, dims)
        return f"shape {which}={dims!r}", apply
    if kind == "struct":
        what = draw(st.sampled_from([
            "drop-function", "domain-version", "opset-version", "ir-version", "op-type", "node-domain",
            "drop-input", "extra-input", "dangling-input", "empty-input-name", "duplicate-node",
            "drop-output", "drop-opset-domain", "function-body-cut", "rename-graph-input",
        ]))
        n = draw(st.integers(-2, 100))

        def apply(m):
            node = m.graph.node[0] if m.graph.node else None
            if what == "drop-function":
                del m.functions[:]
            elif what == "domain-version":
                for o in m.opset_import:
                    if o.domain == "onnx_smoothl1":
                        o.version = n
            elif what == "opset-version":
                for o in m.opset_import:
                    if o.domain == "":
                        o.version = n
            elif what == "ir-version":
                m.ir_version = n
            elif what == "op-type" and node is not None:
                node.op_type = draw_text
            elif what == "node-domain" and node is not None:
                node.domain = draw_text
            elif what == "drop-input" and node is not None and node.input:
                del node.input[-1]
            elif what == "extra-input" and node is not None:
                node.input.append(node.input[0] if node.input else "input")
            elif what == "dangling-input" and node is not None and node.input:
                node.input[0] = "nowhere"
            elif what == "empty-input-name" and node is not None and node.input:
                node.input[-1] = ""
            elif what == "duplicate-node" and node is not None:
                m.graph.node.append(node)
            elif what == "drop-output":
                del m.graph.output[:]
            elif what == "drop-opset-domain":
                keep = [o for o in m.opset_import if o.domain != "onnx_smoothl1"]
                del m.opset_import[:]
                m.opset_import.extend(keep)
            elif what == "function-body-cut" and m.functions:
                del m.functions[0].node[n % max(len(m.functions[0].node), 1):]
            elif what == "rename-graph-input" and m.graph.input:
                m.graph.input[0].name = draw_text

        draw_text = draw(st.text(max_size=6))
        return f"struct {what} n={n} text={draw_text!r}", apply
    return "no model mutation", lambda m: None


@st.composite
def byte_mutation(draw):
    """(description, function bytes -> bytes)."""
    kind = draw(st.sampled_from(["none", "none", "flip", "truncate", "insert", "empty"]))
    if kind == "flip":
        flips = draw(st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=8))

        def apply(b: bytes) -> bytes:
            a = bytearray(b)
            for pos, x in flips:
                if a:
                    a[pos % len(a)] ^= x
            return bytes(a)
        return f"flip {flips}", apply
    if kind == "truncate":
        frac = draw(st.floats(0, 1))
        return f"truncate {frac:.3f}", lambda b: b[: int(len(b) * frac)]
    if kind == "insert":
        pos, junk = draw(st.integers(0, 10**6)), draw(st.binary(min_size=1, max_size=16))
        return f"insert {junk!r}@{pos}", lambda b: b[: pos % (len(b) + 1)] + junk + b[pos % (len(b) + 1):]
    if kind == "empty":
        return "empty", lambda b: b""
    return "no byte mutation", lambda b: b


FEED_DTYPES = ["model", "model", "model", "float32", "float16", "float64", "int32", "bool"]
SHAPE_PAIRS = [((3,), (3,)), ((), ()), ((0,), (0,)), ((4, 1, 3), (5, 3)), ((3,), (4,)), ((2, 3), (3, 2)),
               ((1,) * 8, (1,) * 8), ((2, 0, 3), (1, 3)), ((7,), ())]


@st.composite
def fuzz_case(draw, bases: tuple[str, ...]):
    return {
        "base": draw(st.sampled_from(bases)),
        "mutations": [draw(model_mutation()) for _ in range(draw(st.integers(0, 3)))],
        "bytes": draw(byte_mutation()),
        "feed_dtype": draw(st.sampled_from(FEED_DTYPES)),
        "shapes": draw(st.sampled_from(SHAPE_PAIRS)),
        "values": draw(st.sampled_from(["normal", "special"])),
        "seed": draw(st.integers(0, 2**16)),
    }


def build(case: dict, bases: dict[str, bytes]) -> tuple[bytes, str]:
    model = onnx.ModelProto.FromString(bases[case["base"]])
    desc = [case["base"]]
    for text, apply in case["mutations"]:
        desc.append(text)
        try:
            apply(model)
        except Exception as exc:  # a mutation that does not fit this model (e.g. bad enum)
            desc.append(f"(mutation not applicable: {type(exc).__name__})")
    text, apply = case["bytes"]
    try:
        data = model.SerializeToString()
    except Exception as exc:
        desc.append(f"(unserializable: {type(exc).__name__})")
        data = bases[case["base"]]
    desc.append(text)
    return apply(data), "; ".join(desc)


def feeds_for(data: bytes, case: dict) -> tuple[np.ndarray, np.ndarray]:
    import ml_dtypes

    rng = np.random.default_rng(case["seed"])
    kind = case["feed_dtype"]
    dtype = np.dtype(np.float32)
    if kind == "model":
        try:
            elem = onnx.ModelProto.FromString(data).graph.input[0].type.tensor_type.elem_type
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem))
        except Exception:
            pass
    else:
        dtype = np.dtype(kind)
    if dtype.kind in "US" or dtype == np.dtype(object):
        dtype = np.dtype(np.float32)
    sx, sy = case["shapes"]

    def make(shape):
        if case["values"] == "special":
            vals = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e-30, 1.0], size=shape)
        else:
            vals = rng.standard_normal(shape) * 3
        with np.errstate(all="ignore"):
            if dtype == np.dtype(ml_dtypes.bfloat16) or dtype.kind == "f":
                return np.asarray(vals).astype(dtype)
            if dtype.kind == "b":
                return np.asarray(vals) > 0
            return np.nan_to_num(np.asarray(vals)).astype(dtype)

    return make(sx), make(sy)


# --- the driver: runs in a subprocess ------------------------------------------------------------

#: Exceptions the Python API may raise for bad input (anything else is an unclear error).
def _clear_api_errors() -> tuple[type, ...]:
    import onnxruntime.capi.onnxruntime_pybind11_state as ort_state

    import onnx_smoothl1 as sl1

    ort_errors = tuple(v for v in vars(ort_state).values()
                       if isinstance(v, type) and issubclass(v, Exception))
    return (ValueError, sl1.CustomOpUnavailable, *ort_errors)


def _cli(argv: list[str]) -> tuple[int, str, str]:
    from onnx_smoothl1 import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(argv)
        except SystemExit as exc:  # argparse
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            rc = "traceback"
    return rc, out.getvalue(), err.getvalue()


def available_commands() -> dict[str, str | None]:
    """Command -> None if available, else why it is skipped."""
    from onnx_smoothl1 import cli, runtime

    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    result: dict[str, str | None] = {}
    for cmd in ("info", "run", "fuse", "inline"):
        result[cmd] = None if cmd in sub.choices else f"`onnx-smoothl1 {cmd}` does not exist (yet)"
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        has = runtime.has_custom_op()
    result["kernel"] = None if has else "fused kernel not built: " + "; ".join(str(w.message) for w in caught)
    import importlib.util

    result["pyop"] = (None if importlib.util.find_spec("onnx_smoothl1.pyop") and
                      importlib.util.find_spec("onnxruntime_extensions") else "Python op not available")
    return result


def check_case(case: dict, bases: dict[str, bytes], tmp: Path, avail: dict, clear_errors,
               log=None) -> dict:
    import onnx_smoothl1 as sl1
    from onnx_smoothl1 import runtime

    data, desc = build(case, bases)
    model_path = tmp / "m.onnx"
    model_path.write_bytes(data)
    x, y = feeds_for(data, case)
    np.save(tmp / "x.npy", x)
    np.save(tmp / "y.npy", y)
    problems, outcomes = [], {}

    def step(name):
        if log is not None:  # a crash leaves the step it happened in as the log's last line
            log.write(f"  STEP {name}\n")
            log.flush()

    def cli_check(name, argv):
        step(name)
        rc, out, err = _cli(argv)
        outcomes[name] = rc
        if rc == "traceback" or "Traceback" in err:
            problems.append(f"{name}: traceback\n{err[-1500:]}")
        elif rc not in (0, 2):
            problems.append(f"{name}: exit {rc}\n{err[-500:]}")
        elif rc == 2 and "error:" not in err:
            problems.append(f"{name}: exit 2 without an error message: {err[-500:]!r}")

    m = str(model_path)
    if not avail["info"]:
        cli_check("info", ["info", m])
    if not avail["run"]:
        run_args = ["run", m, "--input", str(tmp / "x.npy"), "--target", str(tmp / "y.npy")]
        cli_check("run-function", run_args + ["--no-custom-op"])
        if not avail["kernel"]:
            cli_check("run-kernel", run_args + ["--custom-op"])
    for cmd in ("fuse", "inline"):
        if not avail[cmd]:
            cli_check(cmd, [cmd, m, str(tmp / f"{cmd}.onnx")])
            if outcomes[cmd] == 0 and not avail["run"]:  # the output must be a loadable model
                cli_check(f"{cmd}+info", ["info", str(tmp / f"{cmd}.onnx")])
    modes = [False] + ([True] if not avail["kernel"] else []) + (["python"] if not avail["pyop"] else [])
    for mode in modes:
        name = f"api-{mode}"
        step(name)
        try:
            session = sl1.inference_session(data, custom_op=mode)
            feeds = {i.name: v for i, v in zip(session.get_inputs(), (x, y))}
            runtime.run(session, feeds)
            outcomes[name] = "ok"
        except clear_errors as exc:
            outcomes[name] = type(exc).__name__
            if not str(exc).strip():
                problems.append(f"{name}: {type(exc).__name__} without a message")
        except Exception as exc:
            outcomes[name] = type(exc).__name__
            problems.append(f"{name}: unclear error {type(exc).__name__}: {exc}\n"
                            f"{traceback.format_exc()[-1500:]}")
    return {"desc": desc, "feeds": f"{x.dtype}{x.shape} {y.dtype}{y.shape}", "outcomes": outcomes,
            "problems": problems}


def driver(examples: int, derandomize: bool, log_path: str) -> int:
    import faulthandler
    import warnings

    warnings.simplefilter("ignore")
    bases = base_models()
    avail = available_commands()
    clear_errors = _clear_api_errors()
    results = []
    log = open(log_path, "w", buffering=1)
    tmp = Path(tempfile.mkdtemp(prefix="sl1fuzz"))

    @settings(max_examples=examples, derandomize=derandomize, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=fuzz_case(tuple(sorted(bases))))
    def one(case):
        n = len(results)
        log.write(f"START {n}\n")
        build_desc = build(case, bases)[1]
        log.write(f"CASE {n}: {build_desc} feeds={case['feed_dtype']} {case['shapes']} {case['values']}\n")
        log.flush()
        os.fsync(log.fileno())
        faulthandler.dump_traceback_later(CASE_TIMEOUT_S, exit=True, file=sys.stderr)
        try:
            results.append(check_case(case, bases, tmp, avail, clear_errors, log))
        finally:
            faulthandler.cancel_dump_traceback_later()
        log.write(f"DONE {n}\n")

    one()
    summary = {"cases": len(results), "skipped": {k: v for k, v in avail.items() if v},
               "problems": [r for r in results if r["problems"]],
               "outcomes": {}}
    for r in results:
        for k, v in r["outcomes"].items():
            key = f"{k}={v}"
            summary["outcomes"][key] = summary["outcomes"].get(key, 0) + 1
    print(json.dumps(summary))
    return 0


# --- the tests -------------------------------------------------------------------------------


def _examples() -> int:
    """>= 250 cases in CI; 4x more under the thorough hypothesis profile."""
    return 1000 if settings.default.max_examples >= 10_000 else 250


def test_fuzz_cli_and_api_batched(tmp_path):
    import pytest

    examples = _examples()
    log = tmp_path / "fuzz.log"
    derandomize = settings.default.derandomize
    proc = subprocess.run(
        [sys.executable, str(Path(__file__)), "--driver", str(examples), str(int(derandomize)), str(log)],
        capture_output=True, text=True, errors="replace", timeout=1800, cwd=REPO,
    )
    text = log.read_text() if log.exists() else ""
    cases = [line for line in text.splitlines() if line.startswith("CASE ")]
    steps = [line.strip() for line in text.splitlines() if line.startswith("  STEP ")]
    last = [f"{cases[-1]} at {steps[-1] if steps else '?'}"] if cases else ["(no case started)"]
    assert proc.returncode >= 0, f"driver killed by signal {-proc.returncode} during {last[0]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"driver failed (rc {proc.returncode}) during {last[0]}\n{proc.stderr[-5000:]}"
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"[fuzz] {summary['cases']} cases; skipped: {summary['skipped']}")
    print("[fuzz] outcomes: " + ", ".join(f"{k}: {v}" for k, v in sorted(summary["outcomes"].items())))
    assert summary["cases"] >= 200
    problems = summary["problems"]
    assert not problems, f"{len(problems)} case(s) broke the contract; first ones:\n" + "\n\n".join(
        f"{p['desc']} feeds {p['feeds']}:\n" + "\n".join(p["problems"]) for p in problems[:5])
    for cmd in ("fuse", "inline", "kernel", "pyop"):
        if summary["skipped"].get(cmd):
            pytest.skip(f"fuzzed everything but {cmd}: {summary['skipped'][cmd]}")


def _subprocess_cases() -> list[tuple[str, bytes]]:
    import onnx_smoothl1 as sl1

    good = sl1.make_model().SerializeToString()
    bad_attr = sl1.make_model()
    _set_attr(bad_attr.graph.node[0], "reduction", b"\xff\xfe")
    huber = sl1.make_huber_model(delta=0.35, reduction="sum")
    bad_delta = sl1.make_huber_model()
    _set_attr(bad_delta.graph.node[0], "delta", -1.0)
    flipped = bytearray(good)
    for pos in range(40, len(flipped), 97):
        flipped[pos] ^= 0x5A
    non_utf8_name = bytearray(good)
    non_utf8_name[non_utf8_name.find(b"target")] = 0xFF  # protobuf then hands out bytes
    return [("good", good), ("truncated", good[: len(good) // 3]), ("non-utf8-reduction",
            bad_attr.SerializeToString()), ("flipped", bytes(flipped)),
            ("non-utf8-name", bytes(non_utf8_name)), ("good-huber", huber.SerializeToString()),
            ("huber-negative-delta", bad_delta.SerializeToString())]


def test_fuzz_real_subprocesses(tmp_path):
    """A few cases per command as a user runs them: one process each."""
    def run_cli(*args: str) -> subprocess.CompletedProcess:
        # errors="replace": onnxruntime echoes corrupt (non-UTF-8) names on stderr
        return subprocess.run([sys.executable, "-m", "onnx_smoothl1.cli", *args], capture_output=True,
                              text=True, errors="replace", timeout=300, cwd=REPO)

    avail = available_commands()
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 3), np.float32))
    for name, data in _subprocess_cases():
        model = tmp_path / f"{name}.onnx"
        model.write_bytes(data)
        argvs = [["info", str(model)], ["run", str(model), "--input", str(x), "--target", str(x)]]
        argvs += [[cmd, str(model), str(tmp_path / f"{name}-{cmd}.onnx")] for cmd in ("fuse", "inline")
                  if not avail[cmd]]
        for argv in argvs:
            proc = run_cli(*argv)
            assert proc.returncode >= 0, f"{argv}: signal {-proc.returncode}"
            assert proc.returncode in (0, 2), f"{argv}: rc {proc.returncode}\n{proc.stderr[-2000:]}"
            assert "Traceback" not in proc.stderr, f"{argv}:\n{proc.stderr[-2000:]}"
            if proc.returncode == 2:
                assert "error:" in proc.stderr, (argv, proc.stderr)
            if name.startswith("good"):
                assert proc.returncode == 0, (argv, proc.stderr)


if __name__ == "__main__" and sys.argv[1:2] == ["--driver"]:
    sys.exit(driver(int(sys.argv[2]), bool(int(sys.argv[3])), sys.argv[4]))
