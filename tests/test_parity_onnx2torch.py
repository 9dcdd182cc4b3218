"""The ``onnx2torch`` parity path: the inlined model converted to torch.fx and run by PyTorch,
with a torchvision stand-in (PyPI's torchvision does not import beside the CPU torch wheel)."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from _compiled_paths import SHAPES, check_missing_package, two_loss_model

from onnx_smoothl1 import oracle, parity
from onnx_smoothl1.parity.registry import PATHS

pytest.importorskip("torch")
# Not importorskip: a plain `import onnx2torch` fails without torchvision, which the path's
# stand-in is for.
if importlib.util.find_spec("onnx2torch") is None:
    pytest.skip("onnx2torch is not installed (scripts/setup_runtimes.sh)", allow_module_level=True)


def test_onnx2torch_passes_a_grid_subset_and_refuses_bfloat16_with_its_message():
    report = parity.run_grid(paths=["onnx2torch"], shapes=SHAPES, betas=(0.0, 0.3, 7.5), deltas=(0.35, 2.5))
    assert report.ok, report.text()
    for dtype in ("float16", "float32", "float64"):
        cell = report.cells["onnx2torch", dtype]
        assert cell.status == parity.PASS and cell.count(parity.PASS) == len(cell.results), cell.summary()
    # onnx2torch 1.5 has no converter for a Cast to bfloat16 (TensorProto 16): its own message.
    cell = report.cells["onnx2torch", "bfloat16"]
    assert cell.status == parity.UNSUPPORTED
    assert all('Conversion to "16" is not implemented' in reason for reason in cell.reasons()), cell.reasons()
    assert report.ran["onnx2torch"].startswith("inlined model")


def test_onnx2torch_runs_a_user_model():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((2, 3, 7)) * 3
    path = PATHS["onnx2torch"]()
    assert path.unavailable is None, path.unavailable
    s, n, h = path.run_model(two_loss_model(), {"x": x, "y": y})
    assert oracle.compare(h, oracle.reference(x, y, loss="huber", delta=0.35, reduction="mean"),
                          dtype="float64", reduction="mean").ok
    assert oracle.compare(s, oracle.reference(x, y, beta=0.25, reduction="sum"), dtype="float64", reduction="sum").ok
    assert oracle.compare(n, oracle.reference(x, y, beta=2.0, reduction="none"), dtype="float64",
                          reduction="none").ok
    assert path.what_ran() == "inlined model"


def test_torchvision_stand_in_is_scoped_to_onnx2torch():
    from onnx_smoothl1.parity.runtimes import onnx2torch as adapter

    adapter.import_onnx2torch()
    nms = sys.modules["onnx2torch.node_converters.nms"]
    try:
        import torchvision  # noqa: F401
    except Exception:  # absent or broken here: onnx2torch got the stand-in, nobody else sees it
        assert adapter._stand_in_used()
        assert "torchvision" not in sys.modules
        with pytest.raises(NotImplementedError, match="torchvision is not installed"):
            nms.torchvision.ops.nms(None, None, 0.5)
    else:  # a working torchvision is used as it is
        assert not adapter._stand_in_used()


def test_onnx2torch_missing_is_unsupported_with_the_reason(monkeypatch):
    check_missing_package("onnx2torch", "onnx2torch", monkeypatch)
