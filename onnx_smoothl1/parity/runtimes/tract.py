"""``tract``: tract on the inlined model with concrete shapes, in a worker subprocess
(tract 0.23 aborts the whole process with a Rust panic on some inputs, e.g. reducing an
empty 1-D tensor)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from ... import oracle
from ..cases import Case
from ..limits import reciprocal_limit
from ..models import op_types, specialise, with_static_shapes
from ..registry import Unsupported, import_reason, register
from ..worker import Worker
from ._inlined import InlinedPath


@register
class TractPath(InlinedPath):
    name = "tract"
    in_worker = True
    title = "tract on the inlined model, in a worker subprocess"
    limits = (reciprocal_limit("tract"),)

    def __init__(self) -> None:
        super().__init__()
        self._worker: Worker | None = None
        self._as_is_checked = False

    def _why_unavailable(self):
        reason = import_reason("tract", "'onnx-smoothl1[runtimes]'")
        if reason:
            return reason
        from importlib.metadata import version

        self.notes.append(f"tract {version('tract')}")
        return None

    def _check_as_is(self, model, feeds, key) -> None:
        """Record (once) whether tract runs the plain inlined function without folding."""
        self._as_is_checked = True
        try:
            self._call(self._inlined(model, feeds, key), feeds)
            self.notes.append("tract runs the inlined function as-is")
        except Unsupported as exc:
            self.notes.append(
                "tract cannot run the inlined function as-is (" + str(exc) + "); the runner "
                "folds each node's reduction probe and If nodes first (parity.specialise)"
            )

    def _folded(self, inlined: onnx.ModelProto) -> onnx.ModelProto:
        if {"NegativeLogLikelihoodLoss", "If"} & op_types(inlined):
            inlined = specialise(inlined)
            self.prove_inlined(inlined)
        return inlined

    def run_model(self, model, feeds, key=None):
        if not self._as_is_checked:
            self._check_as_is(model, feeds, key)
        if not isinstance(key, Case):
            return self._call(self._folded(self._inlined(model, feeds, key)), feeds)
        # Grid cases: inline and specialise once per node (the slow part), then declare shapes.
        ck = key.key
        if ck not in self._cache:
            self._cache[ck] = self._folded(self._inlined(model, {}, key))
        # Concrete shapes: tract then folds the sum's padding arithmetic to constants.
        shaped = with_static_shapes(self._cache[ck], {k: np.shape(v) for k, v in feeds.items()})
        return self._call(shaped, feeds)

    def _call(self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        for array in feeds.values():
            if np.asarray(array).dtype == oracle.NUMPY_DTYPES["bfloat16"]:
                raise Unsupported("tract has no bfloat16 tensors ('Unknown DatumType Bfloat16')")
        if self._worker is None:
            self._worker = Worker("tract")
        names = [i.name for i in model.graph.input if i.name in feeds]
        reply = self._worker.call(("run", model.SerializeToString(), names, [feeds[n] for n in names]))
        if reply[0] == "crash":
            self._worker.close()
            self._worker = Worker("tract")  # start the replacement now: it imports while we work
            raise Unsupported(f"tract aborts the process: {reply[1]}")
        if reply[0] == "error":
            raise Unsupported(f"tract: {reply[1]}")
        return list(reply[1])

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
