"""Inline the SmoothL1Loss function: standard ops only, for runtimes without local functions.

OpenVINO, tract and tinygrad reject the custom node (they do not expand model-local
functions); they run the inlined copy. ``onnx.inliner`` substitutes each node's ``beta`` and
``reduction`` into its own copy of the body, so several losses with different attributes
stay distinct. Other model-local functions are left as they are.
"""

from __future__ import annotations

import onnx
import onnx.inliner

from . import spec
from .function import attach_function
from .model import ir_version_for


def _domains_used(graph: onnx.GraphProto, into: set[str]) -> set[str]:
    for node in graph.node:
        into.add(node.domain)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _domains_used(attr.g, into)
            for sub in attr.graphs:
                _domains_used(sub, into)
    return into


def inline(model: onnx.ModelProto, *, check: bool = True) -> onnx.ModelProto:
    """A copy of ``model`` with every ``SmoothL1Loss`` node replaced by standard ops.

    A model without the function (``mode="custom_op"``) gets it attached first. The
    ``onnx_smoothl1`` domain import and function are dropped once nothing uses them. With
    ``check`` the result passes ``onnx.checker.check_model(full_check=True)``.
    """
    if not isinstance(model, onnx.ModelProto):
        raise ValueError(f"model must be an onnx.ModelProto; got {type(model).__name__}")
    work = onnx.ModelProto()
    work.CopyFrom(model)
    key = (spec.DOMAIN, spec.OP_TYPE)
    used = spec.DOMAIN in _domains_used(work.graph, set())
    if used and key not in {(f.domain, f.name) for f in work.functions}:
        attach_function(work)
    out = onnx.inliner.inline_selected_functions(work, [key], exclude=False)
    kept = [f for f in out.functions if (f.domain, f.name) != key]
    del out.functions[:]
    out.functions.extend(kept)
    in_use = _domains_used(out.graph, set())
    for f in out.functions:
        for node in f.node:
            in_use.add(node.domain)
    if spec.DOMAIN in in_use:  # pragma: no cover - the inliner expands every call
        raise ValueError("inlining left onnx_smoothl1 nodes behind")
    imports = [o for o in out.opset_import if o.domain != spec.DOMAIN]
    del out.opset_import[:]
    out.opset_import.extend(imports)
    out.ir_version = ir_version_for(out)
    if check:
        onnx.checker.check_model(out, full_check=True)
    return out
