"""The base of the paths that run ``inline(model)`` (runtimes without model-local
functions: OpenVINO, tract, and the IREE/TVM/onnx2torch paths). What ran is the inlined
model: proven by checking that the model handed over has no custom-domain node left."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx

from ..cases import Case
from ..models import custom_nodes, inline_model, with_ranks, with_static_shapes
from ..registry import ParityPath


class InlinedPath(ParityPath):
    third_party = True
    executes = "inlined model"

    def __init__(self) -> None:
        super().__init__()
        self._inliner = ""
        self._cache: dict[object, Any] = {}

    def _inlined(
        self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], key: object = None
    ) -> onnx.ModelProto:
        """The inlined model: for grid cases with each input's rank declared (dimensions
        symbolic, so one model serves every case of that rank); for a user's model with the
        feeds' concrete shapes."""
        if isinstance(key, Case):
            shaped = with_ranks(model, {k: np.ndim(v) for k, v in feeds.items()})
        else:
            shaped = with_static_shapes(model, {k: np.shape(v) for k, v in feeds.items()})
        out, how = inline_model(shaped)
        self.note_inliner(how)
        self.prove_inlined(out)
        return out

    def note_inliner(self, how: str) -> None:
        """Say (once per change) which tool inlined what the runtime got."""
        if how != self._inliner:
            self._inliner = how
            self.notes.append(f"inlined with {how}")

    def prove_inlined(self, model: onnx.ModelProto) -> None:
        """Record "inlined model" after checking that ``model`` (what the runtime gets) has no
        custom-domain node: a runtime that ran it ran standard ops only."""
        left = custom_nodes(model)
        if left:
            raise RuntimeError(f"the inlined model still holds {', '.join(left)}")
        self.proved("inlined model")

    def _cache_key(self, feeds: Mapping[str, np.ndarray], key: object) -> object:
        if not isinstance(key, Case):
            return None
        return (*key.key, tuple(np.ndim(v) for v in feeds.values()))
