"""``onnx-reference``: ``onnx.reference.ReferenceEvaluator`` on the function model (it
expands the model-local function itself)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..cases import Case
from ..models import has_loss_functions, with_function
from ..registry import ParityPath, register


@register
class ReferencePath(ParityPath):
    name = "onnx-reference"
    title = "onnx.reference.ReferenceEvaluator on the function model"
    executes = "function (expanded by onnx.reference)"

    def __init__(self) -> None:
        super().__init__()
        self._evals: dict[object, Any] = {}

    def run_model(self, model, feeds, key=None):
        from onnx.reference import ReferenceEvaluator

        cache_key = key.key if isinstance(key, Case) else id(model)
        if cache_key not in self._evals:
            model = with_function(model)
            self._evals[cache_key] = (ReferenceEvaluator(model), has_loss_functions(model))
        evaluator, expanded = self._evals[cache_key]
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            outs = evaluator.run(None, dict(feeds))
        if expanded:
            self.proved("function (expanded by onnx.reference)")
        return [np.asarray(o) for o in outs]
