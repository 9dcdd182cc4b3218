"""``float64_free``: every place a model holds or computes float64, for the "no float64 unless
the model is float64" checks (SPEC, "Precision and portability") of export and fuse tests."""

from __future__ import annotations

import onnx
from onnx import AttributeProto, TensorProto

_DOUBLE = TensorProto.DOUBLE
#: int attributes that name an element type a node produces (Cast, RandomNormal, EyeLike, ...)
_TYPE_ATTRS = ("to", "dtype")


def _type_doubles(tp: onnx.TypeProto) -> bool:
    kind = tp.WhichOneof("value")
    if kind == "tensor_type":
        return tp.tensor_type.elem_type == _DOUBLE
    if kind == "sparse_tensor_type":
        return tp.sparse_tensor_type.elem_type == _DOUBLE
    if kind == "sequence_type":
        return _type_doubles(tp.sequence_type.elem_type)
    if kind == "optional_type":
        return _type_doubles(tp.optional_type.elem_type)
    if kind == "map_type":
        return _type_doubles(tp.map_type.value_type)
    return False


def _values(where: str, values, found: list[str]) -> None:
    for v in values:
        if v.HasField("type") and _type_doubles(v.type):
            found.append(f"{where}: value {v.name!r} is double")


def _nodes(where: str, nodes, found: list[str]) -> None:
    for i, node in enumerate(nodes):
        at = f"{where}/node {node.name or i!s} ({node.domain + '::' if node.domain else ''}{node.op_type})"
        for attr in node.attribute:
            if attr.type == AttributeProto.INT and attr.name in _TYPE_ATTRS and attr.i == _DOUBLE:
                found.append(f"{at}: {attr.name}=DOUBLE")
            elif attr.type == AttributeProto.TENSOR and attr.t.data_type == _DOUBLE:
                found.append(f"{at}: attribute {attr.name} is a DOUBLE tensor")
            elif attr.type == AttributeProto.TENSORS:
                if any(t.data_type == _DOUBLE for t in attr.tensors):
                    found.append(f"{at}: attribute {attr.name} holds a DOUBLE tensor")
            elif attr.type == AttributeProto.SPARSE_TENSOR and attr.sparse_tensor.values.data_type == _DOUBLE:
                found.append(f"{at}: attribute {attr.name} is a DOUBLE sparse tensor")
            elif attr.type == AttributeProto.TYPE_PROTO and _type_doubles(attr.tp):
                found.append(f"{at}: attribute {attr.name} is a double type")
            elif attr.type == AttributeProto.GRAPH:
                _graph(f"{at}.{attr.name}", attr.g, found)
            elif attr.type == AttributeProto.GRAPHS:
                for k, g in enumerate(attr.graphs):
                    _graph(f"{at}.{attr.name}[{k}]", g, found)


def _graph(where: str, graph: onnx.GraphProto, found: list[str]) -> None:
    where = f"{where}[{graph.name}]"
    for init in graph.initializer:
        if init.data_type == _DOUBLE:
            found.append(f"{where}: initializer {init.name!r} is DOUBLE")
    for init in graph.sparse_initializer:
        if init.values.data_type == _DOUBLE:
            found.append(f"{where}: sparse initializer {init.values.name!r} is DOUBLE")
    _values(where, [*graph.input, *graph.output, *graph.value_info], found)
    _nodes(where, graph.node, found)


def _declared(model: onnx.ModelProto, label: str, found: list[str]) -> None:
    _graph(f"{label}graph", model.graph, found)
    for fn in model.functions:
        where = f"{label}function {fn.domain}::{fn.name}"
        _nodes(where, fn.node, found)
        _values(where, getattr(fn, "value_info", ()), found)


def float64_free(model: onnx.ModelProto) -> list[str]:
    """Every float64 item in ``model`` (empty list: none), where it is.

    Looks at what the model declares - initializers, graph inputs/outputs/value_info, ``Cast``
    (or any ``to``/``dtype`` attribute) to DOUBLE, tensor attributes (``Constant`` values,
    ``ConstantOfShape``...) of type DOUBLE - in the main graph, every subgraph (``If``
    branches, nested) and every model-local function. Then at what it computes: the model
    with its local functions inlined, through shape inference, so a double value that no
    declaration names (a ``CastLike`` to a double, a function-internal value) is found too.
    """
    found: list[str] = []
    _declared(model, "", found)
    inlined = onnx.inliner.inline_local_functions(model)
    inferred = onnx.shape_inference.infer_shapes(inlined, strict_mode=False)
    seen = set(found)
    extra: list[str] = []
    _declared(inferred, "inferred ", extra)
    found.extend(e for e in extra if e.removeprefix("inferred ") not in seen)
    return found
