"""Inline the SmoothL1Loss function: standard ops only, for runtimes without local functions.

OpenVINO, tract and tinygrad reject the custom node (they do not expand model-local
functions); they run the inlined copy. ``onnx.inliner`` substitutes each node's ``beta`` and
``reduction`` into its own copy of the body, so several losses with different attributes
stay distinct. Other model-local functions are left as they are.

IREE, TVM and onnxsim also need static shapes: ``input_shapes`` declares them on the graph
inputs before inlining, so constant folding turns the body's shape arithmetic (``Shape``,
``Mod``, the padding's ``ConstantOfShape``) into constants and shape inference gives every
value, the outputs included, a static shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import onnx
import onnx.inliner

from . import spec
from .function import attach_function
from .model import ir_version_for, ranked_twin


def _domains_used(graph: onnx.GraphProto) -> set[str]:
    return {node.domain for node in spec.walk_nodes(graph.node)}


def _drop_dead_nodes(graph: onnx.GraphProto) -> None:
    """Drop main-graph nodes whose outputs nothing reads (a graph output, a later node, or a
    subgraph that names it). onnx_ir's RemoveUnusedNodesPass keeps the body's ``beta_f``
    Constant: the folded-away ``If`` branches still count as its users. TVM's ONNX frontend
    then fails on that dead ``Constant(value_float)`` ("no value in Constant")."""
    needed = {o.name for o in graph.output}
    kept: list[onnx.NodeProto] = []
    for node in reversed(graph.node):
        if not any(name in needed for name in node.output if name):
            continue
        kept.append(node)
        needed.update(node.input)
        needed.update(name for sub in spec.walk_nodes([node]) for name in sub.input)
    if len(kept) != len(graph.node):
        del graph.node[:]
        graph.node.extend(reversed(kept))


_SCALAR_CONSTANTS = {
    "value_float": (onnx.TensorProto.FLOAT, False),
    "value_floats": (onnx.TensorProto.FLOAT, True),
    "value_int": (onnx.TensorProto.INT64, False),
    "value_ints": (onnx.TensorProto.INT64, True),
}


def _constants_as_tensors(graph: onnx.GraphProto) -> None:
    """Rewrite ``Constant(value_float=...)`` (and value_floats/value_int/value_ints) as the
    equivalent ``Constant(value=tensor)``: TVM's relax ONNX frontend reads only ``value``
    ("no value in Constant"); the body's float32 ``beta_f`` is such a constant."""
    for node in spec.walk_nodes(graph.node):
        if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or len(node.attribute) != 1:
            continue
        attr = node.attribute[0]
        if attr.name not in _SCALAR_CONSTANTS:
            continue
        elem, is_list = _SCALAR_CONSTANTS[attr.name]
        values = list(attr.floats if elem == onnx.TensorProto.FLOAT else attr.ints) if is_list else \
            [attr.f if elem == onnx.TensorProto.FLOAT else attr.i]
        tensor = onnx.helper.make_tensor(node.output[0], elem, [len(values)] if is_list else [], values)
        del node.attribute[:]
        node.attribute.append(onnx.helper.make_attribute("value", tensor))


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in spec.walk_nodes(graph.node) for name in node.input}
    used |= {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name in used]
    if len(kept) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(kept)
        names = {t.name for t in kept}
        inputs = {i.name for i in graph.input}
        vi = [v for v in graph.value_info if v.name in used or v.name in names or v.name in inputs]
        del graph.value_info[:]
        graph.value_info.extend(vi)


#: One dimension of ``input_shapes``: a size (int >= 0) or a symbolic name (non-empty str).
Dim = int | str


def _checked_dims(name: str, dims: object, arg: str) -> list[Dim]:
    label = f"{arg}[{name!r}]"
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence):
        raise ValueError(f"{label} must be a sequence of dimensions (int >= 0 or a name); got {dims!r}")
    out: list[Dim] = []
    for i, dim in enumerate(dims):
        if isinstance(dim, bool) or not isinstance(dim, (int, str)) or (isinstance(dim, int) and dim < 0) \
                or (isinstance(dim, str) and not dim.strip()):
            raise ValueError(f"{label}: dimension {i} must be an int >= 0 or a non-empty name; got {dim!r}")
        out.append(dim)
    return out


def _shape_text(shape: onnx.TensorShapeProto) -> str:
    def one(dim: onnx.TensorShapeProto.Dimension) -> str:
        if dim.HasField("dim_value"):
            return str(dim.dim_value)
        return dim.dim_param or "?"

    return "[" + ", ".join(one(d) for d in shape.dim) + "]"


def declare_input_shapes(
    model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[Dim]], *, arg: str = "input_shapes"
) -> None:
    """Set the declared shape of the named graph inputs of ``model`` (in place).

    A model input without a shape (``make_model``'s "any rank") takes the given one; an input
    that declares a shape must keep its rank and its static sizes (a symbolic dimension may
    become a size or another name). Raises ``ValueError`` naming the input for an unknown
    name, a non-tensor input, a bad dimension or a rank / size that contradicts the model;
    ``arg`` is the argument's name in those messages (the CLI passes ``--input-shape``).
    """
    if not isinstance(input_shapes, Mapping):
        raise ValueError(f"{arg} must be a mapping of input name -> dimensions; got "
                         f"{type(input_shapes).__name__}")
    inputs = {value.name: value for value in model.graph.input}
    for name, given in input_shapes.items():
        if not isinstance(name, str) or name not in inputs:
            raise ValueError(f"{arg}: {name!r} is not an input of the model (inputs: "
                             f"{', '.join(inputs) or 'none'})")
        dims = _checked_dims(name, given, arg)
        value = inputs[name]
        if not value.type.HasField("tensor_type"):
            raise ValueError(f"{arg}[{name!r}]: input {name!r} is not a tensor")
        tensor = value.type.tensor_type
        if tensor.HasField("shape"):
            old = tensor.shape
            if len(old.dim) != len(dims):
                raise ValueError(f"{arg}[{name!r}]: rank {len(dims)} given, but input {name!r} "
                                 f"declares rank {len(old.dim)} {_shape_text(old)}")
            for i, (was, new) in enumerate(zip(old.dim, dims)):
                if was.HasField("dim_value") and new != was.dim_value:
                    raise ValueError(f"{arg}[{name!r}]: dimension {i} is {was.dim_value} in input "
                                     f"{name!r} {_shape_text(old)}; got {new!r}")
        tensor.ClearField("shape")
        tensor.shape.SetInParent()  # rank 0: a present, empty shape (not "unknown rank")
        for dim in dims:
            if isinstance(dim, int):
                tensor.shape.dim.add().dim_value = dim
            else:
                tensor.shape.dim.add().dim_param = dim


def parse_input_shapes(specs: Sequence[str], *, arg: str = "--input-shape") -> dict[str, list[Dim]]:
    """``["input=4,5", "target=n,5", "s="]`` -> ``{"input": [4, 5], "target": ["n", 5], "s": []}``.

    The CLI's ``--input-shape NAME=D0,D1,...`` form: each dimension an integer or a symbolic
    name, an empty value for rank 0. Raises ``ValueError`` naming ``arg`` and the input for a
    missing ``=``, an empty name, an empty or negative dimension, or a name given twice.
    """
    shapes: dict[str, list[Dim]] = {}
    for text in specs:
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{arg}: {text!r} is not NAME=D0,D1,... (e.g. input=4,5; input= for rank 0)")
        if name in shapes:
            raise ValueError(f"{arg}: input {name!r} is given twice")
        dims: list[Dim] = []
        for i, part in enumerate(value.split(",") if value.strip() else []):
            part = part.strip()
            if not part:
                raise ValueError(f"{arg}[{name!r}]: dimension {i} is empty in {text!r}")
            try:
                number = int(part)
            except ValueError:
                dims.append(part)  # a symbolic dimension
                continue
            if number < 0:
                raise ValueError(f"{arg}[{name!r}]: dimension {i} is negative ({number})")
            dims.append(number)
        shapes[name] = dims
    return shapes


def _infer_static_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with inferred value_info and output shapes (declared inputs -> outputs)."""
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    found = {v.name: v for v in inferred.graph.output}
    for value in model.graph.output:
        better = found.get(value.name)
        if better is not None and better.type.tensor_type.HasField("shape"):
            value.type.tensor_type.shape.CopyFrom(better.type.tensor_type.shape)
    del model.graph.value_info[:]
    model.graph.value_info.extend(inferred.graph.value_info)
    return model


def inline(
    model: onnx.ModelProto,
    *,
    fold: bool = True,
    check: bool = True,
    input_shapes: Mapping[str, Sequence[Dim]] | None = None,
) -> onnx.ModelProto:
    """A copy of ``model`` with every ``SmoothL1Loss`` node replaced by standard ops.

    A model without the function (``mode="custom_op"``) gets it attached first. The
    ``onnx_smoothl1`` domain import and function are dropped once nothing uses them.

    ``fold`` (default) then runs onnxscript's optimizer (constant folding, no function
    inlining): with each node's attributes now constants, the body's reduction probe
    (``NegativeLogLikelihoodLoss`` + two ``If``) folds away and each loss becomes 11-15 plain
    ops (Cast, Sub, Abs, Less, Mul, Div, Where, ReduceSum, ...), which runtimes with weak
    ``If``/NLL support handle too. The optimizer folds constants in the rest of the graph as
    well, drops nodes nothing reads and writes ``Constant(value_float=...)``-style constants
    as ``Constant(value=tensor)`` (TVM's frontend reads only that form); pass ``fold=False``
    to keep everything else byte-for-byte. With ``check`` the
    result passes ``onnx.checker.check_model(full_check=True)``.

    ``input_shapes`` (``{"input": (4, 5), "target": ("n", 5)}``; ``()`` for rank 0) declares
    input shapes first (see ``declare_input_shapes``, which raises ``ValueError`` naming a bad
    input). With static sizes the folded body has no shape arithmetic left, and the result's
    value_info and outputs carry the inferred static shapes, as IREE and TVM require.
    """
    if not isinstance(model, onnx.ModelProto):
        raise ValueError(f"model must be an onnx.ModelProto; got {type(model).__name__}")
    work = onnx.ModelProto()
    work.CopyFrom(model)
    if input_shapes is not None:
        declare_input_shapes(work, input_shapes)
    # Every op type of the domain (SmoothL1Loss, HuberLoss) that the graph or a function uses.
    used = {node.op_type for node in spec.walk_nodes(work.graph.node) if node.domain == spec.DOMAIN}
    if used - {f.name for f in work.functions if f.domain == spec.DOMAIN}:
        attach_function(work)
    keys = {(f.domain, f.name) for f in work.functions if f.domain == spec.DOMAIN}
    out = onnx.inliner.inline_selected_functions(work, sorted(keys), exclude=False)
    kept = [f for f in out.functions if (f.domain, f.name) not in keys]
    del out.functions[:]
    out.functions.extend(kept)
    in_use = _domains_used(out.graph)
    for f in out.functions:
        for node in f.node:
            in_use.add(node.domain)
    if spec.DOMAIN in in_use:  # pragma: no cover - the inliner expands every call
        raise ValueError("inlining left onnx_smoothl1 nodes behind")
    imports = [o for o in out.opset_import if o.domain != spec.DOMAIN]
    del out.opset_import[:]
    out.opset_import.extend(imports)
    if fold:
        import onnxscript.optimizer
        from onnx_ir.passes.common import RemoveUnusedNodesPass
        from onnxscript import ir

        folded = ir.serde.deserialize_model(out)
        # Constant folding only, not optimize(): optimize() also runs the rewriter's no-op
        # rules, which match constants approximately (math.isclose: abs_tol 1e-8, rel_tol
        # 1e-5) and so dropped Div by beta=1.000005 and Sub of 0.5*beta=5e-10 as if they were
        # Div by 1 / Sub of 0 - wrong losses (found by tests/test_property.py).
        # With declared shapes, per-node shape inference lets Shape/Mod/ConstantOfShape fold.
        onnxscript.optimizer.fold_constants(folded, onnx_shape_inference=input_shapes is not None)
        RemoveUnusedNodesPass()(folded)
        out = ir.serde.serialize_model(folded)
        _drop_dead_nodes(out.graph)
        _constants_as_tensors(out.graph)
        _drop_unused_initializers(out.graph)  # conditions of the If nodes folded away
    if input_shapes is not None:
        out = _infer_static_shapes(out)
    out.ir_version = ir_version_for(out)
    if check:
        # The checker rejects main-graph inputs of unknown rank (make_model's "any rank"
        # models, models/*.onnx); check their rank-1 twin, as make_model does.
        onnx.checker.check_model(ranked_twin(out), full_check=True)
    return out
