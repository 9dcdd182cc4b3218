"""Group models (``parity.groups``) and the runner's side of the paths that use them: a
failing group falls back to its shape's group, then to the case's own model; a crash or hang
does not fall back (it would repeat per case); the worker's split submit/collect."""

from __future__ import annotations

import numpy as np
import pytest
from _compiled_paths import check_hang_is_contained

from onnx_smoothl1 import oracle, parity
from onnx_smoothl1.parity.groups import GroupedPath, GroupSpec
from onnx_smoothl1.parity.registry import Unsupported


class FakeGroups(GroupedPath):
    """Answers a group with the oracle (float64, per node), unless told to fail it."""

    name = "fake-groups"

    def __init__(self, fail=lambda group: None) -> None:
        super().__init__()
        self.fail = fail
        self.groups: list[GroupSpec] = []
        self.alone: list[tuple] = []

    def run_group(self, group, arrays):
        self.groups.append(group)
        error = self.fail(group)
        if error is not None:
            raise error
        out = []
        for shape, loss, param, reduction in group[2]:
            x, y = arrays[2 * shape], arrays[2 * shape + 1]
            out.append(oracle.reference(x, y, beta=param, reduction=reduction, loss=loss))
        return out

    def run_model(self, model, feeds, key=None):
        self.alone.append(key.key)
        x, y = feeds["input"], feeds["target"]
        return [oracle.reference(x, y, **key.oracle_args)]


CASES = parity.grid(("float64",), shapes=("one", "broadcast", "odd"), betas=(0.0, 1.0), deltas=(0.35,))


def _run(path: FakeGroups) -> list[np.ndarray]:
    path.prepare(CASES)
    return [path.run_case(c, *parity.make_inputs(c)) for c in CASES]


def _expected() -> list[np.ndarray]:
    return [oracle.reference(*parity.make_inputs(c), **c.oracle_args) for c in CASES]


def test_one_group_answers_every_case_with_one_run_per_shape():
    path = FakeGroups()
    got = _run(path)
    for a, b in zip(got, _expected()):
        np.testing.assert_array_equal(a, b)
    assert len({g for g in path.groups}) == 1  # one dtype: one group model
    assert len(path.groups) == 3  # one run per shape: the cases of a shape share inputs
    assert path.alone == []


def test_a_failing_group_falls_back_to_its_shapes_then_to_the_case():
    # The dtype's group fails; of the shape groups, 'odd' fails too: its cases run alone.
    odd = parity.SHAPES["odd"]
    path = FakeGroups(lambda g: RuntimeError("no") if len(g[1]) > 1 or g[1][0] == odd else None)
    got = _run(path)
    for a, b in zip(got, _expected()):
        np.testing.assert_array_equal(a, b)
    assert sorted(path.alone) == sorted(c.key for c in CASES if c.shape == "odd")
    failed_tries = [g for g in path.groups if len(g[1]) > 1 or g[1][0] == odd]
    assert len(failed_tries) == 2  # each failing group was tried once, not once per case


def test_a_crash_does_not_fall_back_and_is_not_retried():
    path = FakeGroups(lambda g: Unsupported("fake crashed: exit code -9"))
    path.plan(CASES)
    for case in CASES:
        with pytest.raises(Unsupported, match="fake crashed"):
            path.run_case(case, *parity.make_inputs(case))
    assert len(path.groups) == 1 and path.alone == []


def test_worker_submit_then_collect():
    pytest.importorskip("tract")
    worker = parity.Worker("tract")
    try:
        assert worker.submit(("hello",)) is None
        with pytest.raises(RuntimeError, match="not been collected"):
            worker.submit(("hello",))
        status, info = worker.collect()
        assert status == "ok" and "tract_version" in info
        with pytest.raises(RuntimeError, match="no request"):
            worker.collect()
    finally:
        worker.close()


def test_openvino_hang_is_killed_and_reported(monkeypatch, tmp_path):
    """OpenVINO's plugin runs in the compiled-path worker too: a hang there is contained."""
    pytest.importorskip("openvino")
    check_hang_is_contained("openvino", monkeypatch, tmp_path)
