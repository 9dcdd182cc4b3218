"""The ``iree`` parity path: IREE llvm-cpu on the inlined model, float64 kept (issue 10)."""

from __future__ import annotations

import pytest
from _compiled_paths import (
    check_grid_subset,
    check_hang_is_contained,
    check_missing_package,
    check_user_model_and_cache,
)

pytest.importorskip("iree.compiler")
pytest.importorskip("iree.runtime")


def test_iree_passes_a_grid_subset_in_every_dtype():
    check_grid_subset("iree", ("float16", "bfloat16", "float32", "float64"))


def test_iree_runs_a_user_model_in_float64_and_caches_it(monkeypatch, tmp_path):
    check_user_model_and_cache("iree", monkeypatch, tmp_path)


def test_iree_missing_is_unsupported_with_the_reason(monkeypatch):
    check_missing_package("iree", "iree.runtime", monkeypatch)



def test_iree_hang_is_killed_and_reported(monkeypatch, tmp_path):
    check_hang_is_contained("iree", monkeypatch, tmp_path)
