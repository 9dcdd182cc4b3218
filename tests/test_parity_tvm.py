"""The ``tvm`` parity path: Apache TVM relax (ONNX frontend, llvm) on the inlined model."""

from __future__ import annotations

import pytest
from _compiled_paths import (
    check_grid_subset,
    check_hang_is_contained,
    check_missing_package,
    check_user_model_and_cache,
)

pytest.importorskip("tvm")


def test_tvm_passes_a_grid_subset_in_every_dtype():
    check_grid_subset("tvm", ("float16", "bfloat16", "float32", "float64"))


def test_tvm_runs_a_user_model_in_float64_and_caches_it(monkeypatch, tmp_path):
    check_user_model_and_cache("tvm", monkeypatch, tmp_path)


def test_tvm_missing_is_unsupported_with_the_reason(monkeypatch):
    check_missing_package("tvm", "tvm", monkeypatch)



def test_tvm_hang_is_killed_and_reported(monkeypatch, tmp_path):
    check_hang_is_contained("tvm", monkeypatch, tmp_path)
