"""The ``onnx-smoothl1`` command line, run as a user runs it (subprocesses)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from conftest import run_cli

import onnx_smoothl1 as sl1
from onnx_smoothl1 import oracle

COMMANDS = ["make-model", "make-models", "run", "info", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert "usage: onnx-smoothl1 " + command in result.stdout


def test_make_model_options(tmp_path):
    out = tmp_path / "m.onnx"
    result = run_cli("make-model", "--beta", "0.25", "--reduction", "sum", "--dtype", "float64",
                     "--opset", "17", "-o", str(out))
    assert result.returncode == 0, result.stderr
    model = onnx.load(out)
    assert model.opset_import[0].version == 17
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in model.graph.node[0].attribute}
    assert attrs == {"beta": 0.25, "reduction": b"sum"}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


@pytest.mark.parametrize(
    "args, message",
    [
        (["--beta", "-1"], "beta must be a float >= 0"),
        (["--opset", "9"], "opset must be an integer from 13"),
        (["--reduction", "avg"], "invalid choice"),
        (["--dtype", "int8"], "invalid choice"),
    ],
)
def test_make_model_bad_arguments(tmp_path, args, message):
    result = run_cli("make-model", *args, "-o", str(tmp_path / "m.onnx"))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_run_prints_loss_and_path(tmp_path, tmp_npy):
    x, y = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4), np.zeros((3, 4), np.float32)
    model = tmp_path / "m.onnx"
    onnx.save(sl1.make_model(beta=0.5, reduction="mean"), model)
    result = run_cli("run", str(model), "--input", tmp_npy("x.npy", x), "--target", tmp_npy("y.npy", y),
                     "--no-custom-op")
    assert result.returncode == 0, result.stderr
    value = float(result.stdout.splitlines()[0])
    ref = float(oracle.reference(x, y, beta=0.5, reduction="mean"))
    assert abs(value - ref) <= 1e-6 * ref
    assert "path: ONNX function" in result.stdout


def test_run_bfloat16_npy(tmp_path, tmp_npy):
    x = np.array([1.0, -2.0, 0.25], dtype=ml_dtypes.bfloat16)
    model = tmp_path / "m.onnx"
    onnx.save(sl1.make_model(reduction="sum", dtype="bfloat16"), model)
    result = run_cli("run", str(model), "--input", tmp_npy("x.npy", x),
                     "--target", tmp_npy("y.npy", np.zeros(3, ml_dtypes.bfloat16)), "--no-custom-op")
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.splitlines()[0]) == pytest.approx(0.5 + 1.5 + 0.03125)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing-model", "MODEL: no such file"),
        ("corrupt-model", "not a readable ONNX model"),
        ("missing-npy", "--input: no such file"),
        ("bad-shapes", "cannot be broadcast together"),
        ("int-input", "must be float32"),
    ],
)
def test_run_user_mistakes(tmp_path, tmp_npy, case, message):
    model = tmp_path / "m.onnx"
    onnx.save(sl1.make_model(), model)
    x = tmp_npy("x.npy", np.ones((4, 3), np.float32))
    y = tmp_npy("y.npy", np.ones((4, 3), np.float32))
    if case == "missing-model":
        model = tmp_path / "absent.onnx"
    elif case == "corrupt-model":
        model.write_bytes(model.read_bytes()[:57] + b"\xff\x00garbage")
    elif case == "missing-npy":
        x = str(tmp_path / "absent.npy")
    elif case == "bad-shapes":
        y = tmp_npy("y.npy", np.ones((2, 3), np.float32))
    elif case == "int-input":
        x = tmp_npy("x.npy", np.ones((4, 3), np.int32))
    result = run_cli("run", str(model), "--input", x, "--target", y)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_info_lists_nodes(tmp_path):
    from test_function_parity import two_node_model

    path = tmp_path / "three.onnx"
    onnx.save(two_node_model(), path)
    result = run_cli("info", str(path))
    assert result.returncode == 0, result.stderr
    assert "3 SmoothL1Loss node(s)" in result.stdout
    assert "beta=0.25, reduction=none, function attached: yes" in result.stdout
    assert "beta=2.0, reduction=sum" in result.stdout
    stripped = onnx.load(path)
    del stripped.functions[:]
    onnx.save(stripped, path)
    assert "function attached: no" in run_cli("info", str(path)).stdout


def test_make_models_and_demo(tmp_path):
    result = run_cli("make-models", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert len(list(tmp_path.glob("*.onnx"))) >= 4
    demo = run_cli("demo", "--n", "2000")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "all paths match PyTorch" in demo.stdout
    assert demo.stdout.count("PASS") >= 5


def test_demo_rejects_negative_n():
    result = run_cli("demo", "--n", "-5")
    assert result.returncode == 2 and "n must be >= 0" in result.stderr
