"""The onnxruntime-extensions Python op: parity, selection via inference_session, and the
float16 trap (refused with a Python error, proven in a subprocess that must not abort)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("onnxruntime_extensions")

from conftest import SHAPES, make_inputs  # noqa: E402

import onnx_smoothl1 as sl1  # noqa: E402
from onnx_smoothl1 import oracle, pyop, runtime, spec  # noqa: E402


def _custom_op_model(**kwargs):
    model = sl1.make_model(**kwargs)
    del model.functions[:]  # node only, as export(mode="custom_op") writes it
    return model


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("reduction", spec.REDUCTIONS)
@pytest.mark.parametrize("dtype", pyop.SUPPORTED_DTYPES)
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_python_op_parity(beta, dtype, reduction, shape):
    session = sl1.inference_session(_custom_op_model(beta=beta, reduction=reduction, dtype=dtype),
                                    custom_op="python")
    assert session.smoothl1_path == "python-op"
    x, y = make_inputs(*SHAPES[shape], dtype, seed=8)
    if x.size >= 3:
        x.reshape(-1)[:3] = [np.nan, np.inf, -np.inf]
    out = runtime.run(session, {"input": x, "target": y})[0]
    ref = oracle.reference(x, y, beta=beta, reduction=reduction)
    own = oracle.torch_same_dtype(x, y, beta=beta, reduction=reduction) if dtype == "float32" else None
    verdict = oracle.compare(out, ref, dtype=dtype, reduction=reduction, torch_own=own)
    assert verdict.ok, verdict.detail


def test_python_op_really_runs_the_node():
    model = _custom_op_model(reduction="sum")
    outputs, ops = runtime.profile_node_ops(model, {"input": np.ones(4, np.float32),
                                                     "target": np.zeros(4, np.float32)}, custom_op="python")
    assert spec.OP_TYPE in ops and float(outputs[0]) == 2.0


def test_numpy_body_errors():
    with pytest.raises(ValueError, match="broadcast"):
        pyop.smooth_l1_loss(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="reduction"):
        pyop.smooth_l1_loss(np.ones(3), np.ones(3), reduction="max")
    with pytest.raises(ValueError, match="beta"):
        pyop.smooth_l1_loss(np.ones(3), np.ones(3), beta=-1.0)
    assert pyop.smooth_l1_loss(np.ones(3), np.ones(3), reduction=b"sum") == 0.0


def test_unsupported_dtypes_are_refused_in_python():
    for dtype in ("float16", "bfloat16", np.float16, "half"):
        with pytest.raises(ValueError, match="Python op cannot run"):
            pyop.register([dtype])
    with pytest.raises(ValueError):
        pyop.register(["int32"])
    assert pyop.register() == list(pyop.SUPPORTED_DTYPES)


_TRAP = textwrap.dedent(
    """
    import numpy as np, onnx_smoothl1 as sl1
    from onnx_smoothl1 import pyop
    try:
        pyop.register(["float16"])
    except ValueError as exc:
        print("refused:", exc)
    else:
        raise SystemExit("float16 was not refused")
    # A float16 custom-op model with the Python op registered: onnxruntime must fail with a
    # Python exception (no float16 kernel), not abort the process.
    model = sl1.make_model(dtype="float16")
    del model.functions[:]
    try:
        session = sl1.inference_session(model, custom_op="python")
        session.run(None, {"input": np.ones(3, np.float16), "target": np.zeros(3, np.float16)})
    except Exception as exc:
        print("onnxruntime error:", type(exc).__name__)
    else:
        raise SystemExit("float16 model ran on the Python op?")
    print("alive")
    """
)


def test_float16_refusal_does_not_abort_the_process():
    proc = subprocess.run([sys.executable, "-c", _TRAP], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert "refused:" in proc.stdout and "alive" in proc.stdout
    assert "onnxruntime error:" in proc.stdout


def test_library_path_is_the_extensions_library():
    import onnxruntime_extensions

    assert pyop.library_path() == onnxruntime_extensions.get_library_path()
