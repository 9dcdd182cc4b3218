"""``torch``: PyTorch eager ``F.smooth_l1_loss`` / ``F.huber_loss`` in the inputs' own dtype (the reference
row: what users compare against; never a failure)."""

from __future__ import annotations

from ... import oracle
from ..registry import ParityPath, register


@register
class TorchPath(ParityPath):
    name = "torch"
    title = "PyTorch eager F.smooth_l1_loss / F.huber_loss in the inputs' dtype"
    executes = "torch eager (reference row)"
    runs_models = False
    baseline = True

    def _why_unavailable(self) -> str | None:
        if not oracle.has_torch():
            return "torch is not installed (pip install 'onnx-smoothl1[torch]'); the oracle is numpy float64"
        return None

    def run_case(self, case, x, y):
        return oracle.torch_same_dtype(x, y, beta=case.beta, reduction=case.reduction, loss=case.loss)
