"""Export torch models whose losses become ``onnx_smoothl1`` loss nodes.

``torch.onnx.export`` (torch 2.13) decomposes ``smooth_l1_loss`` / ``huber_loss`` into ~9
standard ops under ``dynamo=True`` and fails on them under ``dynamo=False``. ``export`` maps
the ATen ops to the custom nodes instead: ``smooth_l1_loss`` and ``l1_loss`` to
``SmoothL1Loss``, ``huber_loss`` to ``HuberLoss`` (torch's own formula, one node):

* dynamo (default): ``custom_translation_table`` maps ``aten.smooth_l1_loss.default``,
  ``aten.huber_loss.default`` and ``aten.l1_loss.default`` to onnxscript calls of the nodes.
  The function bodies are attached *after* export: torch's optimizer and version converter
  would otherwise inline or drop a model-local function.
* legacy (``dynamo=False``): ``torch.onnx.register_custom_op_symbolic`` for the same three
  ops, registered for the duration of the call only (any registration that existed before
  is put back afterwards).

Then :func:`onnx_smoothl1.simplify.simplify` removes what torch wrote around each loss and
the node does itself: the ``Expand`` of ``broadcast_tensors`` (with the legacy exporter's
shape computation) where that keeps the broadcast shape, and the float32 ``Cast`` pair of
torch's "op math" around a float16/bfloat16 loss. A bare ``nn.SmoothL1Loss`` /
``nn.HuberLoss`` exports as exactly one node, broadcast inputs included.

Mapping decisions (README, "Exporting from PyTorch"):

* ``beta == 0``: ``F.smooth_l1_loss`` itself calls ``l1_loss`` for beta 0, so the ATen graph
  cannot tell ``SmoothL1Loss(beta=0)`` from ``nn.L1Loss``. Every ``l1_loss`` therefore
  becomes ``SmoothL1Loss(beta=0)``, which SPEC defines as plain L1: same values, same NaN/inf
  behaviour, the reduction kept. A plain ``nn.L1Loss`` in the same model exports correctly.
* ``delta <= 0`` (and NaN): torch refuses it while tracing; ``export`` turns that into a
  ``ValueError`` naming ``delta`` (likewise a negative ``beta``). An infinite delta, which
  torch accepts, is refused by the node's contract (``spec.check_delta``).
* ``beta`` / ``delta`` are ONNX FLOAT attributes, so they are rounded to float32 (SPEC).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, Literal

import onnx
from onnx import TensorProto

from . import spec
from .function import attach_function
from .model import ir_version_for
from .simplify import simplify

Mode = Literal["function", "custom_op", "inline"]
MODES: Final = ("function", "custom_op", "inline")

#: torch.onnx's own default opset (``torch.onnx._constants.ONNX_DEFAULT_OPSET`` = 20 in
#: torch 2.13), used for both exporters so the same call gives the same opset either way.
DEFAULT_OPSET: Final = 20

#: ATen's reduction enum (``torch.nn._reduction``): 0 none, 1 mean, 2 sum.
_REDUCTION_BY_ENUM: Final = {0: "none", 1: "mean", 2: "sum"}

_FLOAT_TYPES: Final = {
    TensorProto.FLOAT16: "float16",
    TensorProto.BFLOAT16: "bfloat16",
    TensorProto.FLOAT: "float32",
    TensorProto.DOUBLE: "float64",
}


def _reduction_name(reduction: int) -> str:
    try:
        return _REDUCTION_BY_ENUM[int(reduction)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"unknown ATen reduction enum {reduction!r}") from None


# --- dynamo: onnxscript translations --------------------------------------------------------


def _onnxscript_node_op(op_type: str) -> Any:
    """A loss node as an onnxscript ``Op``, with a schema built locally (never registered).

    onnxscript resolves ``Opset.Foo`` through ``onnx.defs``; registering a schema there would
    be a process-wide side effect, so the Op gets an unregistered ``OpSchema`` instead.
    """
    from onnx.defs import OpSchema
    from onnxscript import values

    param = spec.LOSS_PARAMS[op_type]
    schema = OpSchema(
        op_type,
        spec.DOMAIN,
        spec.DOMAIN_VERSION,
        inputs=[OpSchema.FormalParameter("input", "T"), OpSchema.FormalParameter("target", "T")],
        outputs=[OpSchema.FormalParameter("loss", "T")],
        type_constraints=[
            ("T", [f"tensor({n})" for n in ("float16", "bfloat16", "float", "double")], "")
        ],
        attributes=[
            OpSchema.Attribute(param, OpSchema.AttrType.FLOAT,
                               "beta >= 0" if param == "beta" else "delta > 0, finite"),
            OpSchema.Attribute("reduction", OpSchema.AttrType.STRING, "none|mean|sum"),
        ],
    )
    return values.Op(values.Opset(spec.DOMAIN, spec.DOMAIN_VERSION), op_type, schema)


class _ParamError(ValueError):
    """A loss parameter refused by ``spec`` inside a translation or symbolic.

    torch.onnx wraps errors raised there in its own exception types; ``export`` finds this
    one in the chain and raises it as it is, so the message names the parameter."""


def _checked(op_type: str, value: object) -> float:
    try:
        return spec.check_loss_param(op_type, value)
    except ValueError as exc:
        raise _ParamError(f"{exc} ({op_type} from torch)") from None


def translation_table() -> dict[Callable, Callable]:
    """``custom_translation_table`` entries for ``torch.onnx.export(..., dynamo=True)``."""
    import torch

    smooth_l1 = _onnxscript_node_op(spec.OP_TYPE)
    huber = _onnxscript_node_op(spec.HUBER_OP_TYPE)

    def smooth_l1_loss(self, target, reduction: int = 1, beta: float = 1.0):
        return smooth_l1(self, target, beta=_checked(spec.OP_TYPE, beta),
                         reduction=_reduction_name(reduction))

    def l1_loss(self, target, reduction: int = 1):
        return smooth_l1(self, target, beta=0.0, reduction=_reduction_name(reduction))

    def huber_loss(self, target, reduction: int = 1, delta: float = 1.0):
        # torch's formula as one node; its function/kernels compute float16/bfloat16 in
        # float32 with one rounding, so no Cast is written around it here.
        return huber(self, target, delta=_checked(spec.HUBER_OP_TYPE, delta),
                     reduction=_reduction_name(reduction))

    aten = torch.ops.aten
    return {
        aten.smooth_l1_loss.default: smooth_l1_loss,
        aten.huber_loss.default: huber_loss,
        aten.l1_loss.default: l1_loss,
    }


# --- legacy: TorchScript symbolics ------------------------------------------------------------


def _legacy_symbolics() -> dict[str, Callable]:
    import torch
    from torch.onnx import symbolic_helper

    def _node(g, x, y, op_type: str, value: float, reduction: int):
        red = _reduction_name(reduction)
        out = g.op(
            f"{spec.DOMAIN}::{op_type}",
            x,
            y,
            reduction_s=red,
            **{f"{spec.LOSS_PARAMS[op_type]}_f": _checked(op_type, value)},
        )
        # The exporter cannot infer a custom node's type; declare it (rank 0 when reduced).
        # A reduced loss must have a known type, or the exporter's scalar type analysis
        # treats it as a Python scalar and casts it to float32 in a following Mul.
        if red != "none":
            out.setType(torch._C.TensorType.create_from_tensor(torch.zeros((), dtype=_torch_dtype(x))))
        elif x.type() is not None:
            out.setType(x.type())
        return out

    @symbolic_helper.parse_args("v", "v", "i", "f")
    def smooth_l1_loss(g, x, y, reduction, beta):
        return _node(g, x, y, spec.OP_TYPE, beta, reduction)

    @symbolic_helper.parse_args("v", "v", "i")
    def l1_loss(g, x, y, reduction):
        return _node(g, x, y, spec.OP_TYPE, 0.0, reduction)

    @symbolic_helper.parse_args("v", "v", "i", "f")
    def huber_loss(g, x, y, reduction, delta):
        return _node(g, x, y, spec.HUBER_OP_TYPE, delta, reduction)

    def _torch_dtype(x):
        from torch.onnx._internal.torchscript_exporter import _type_utils

        return _type_utils.JitScalarType.from_value(x).dtype()

    return {
        "aten::smooth_l1_loss": smooth_l1_loss,
        "aten::huber_loss": huber_loss,
        "aten::l1_loss": l1_loss,
    }


@contextlib.contextmanager
def legacy_symbolics(opset: int) -> Iterator[None]:
    """Register the legacy exporter's symbolics for ``opset`` while the block runs.

    Whatever was registered for those names at that opset before (say, a user's own
    symbolic) is restored afterwards, so no global state changes.
    """
    import torch
    from torch.onnx._internal.torchscript_exporter import registration

    saved: dict[str, Callable | None] = {}
    # Names torch had no entry for: registering creates one, and unregistering leaves it
    # behind empty, which later makes a plain legacy export fail with "min() arg is an empty
    # sequence" instead of torch's UnsupportedOperatorError. Those entries are removed again.
    table = getattr(registration.registry, "_registry", None)
    absent = {name for name in _legacy_symbolics() if isinstance(table, dict) and name not in table}
    for name in _legacy_symbolics():
        group = registration.registry.get_function_group(name)
        funcs = getattr(group, "_functions", None)
        previous = None
        if funcs is not None and funcs.overridden(opset):
            previous = funcs._overrides[opset]  # a custom symbolic someone registered
        saved[name] = previous
    try:
        for name, fn in _legacy_symbolics().items():
            torch.onnx.register_custom_op_symbolic(name, fn, opset)
        yield
    finally:
        for name, previous in saved.items():
            torch.onnx.unregister_custom_op_symbolic(name, opset)
            if previous is not None:
                torch.onnx.register_custom_op_symbolic(name, previous, opset)
            elif name in absent and isinstance(table, dict):
                table.pop(name, None)  # exactly as before: no entry at all


# --- export -----------------------------------------------------------------------------------


def _forward_names(module: Any, count: int) -> list[str] | None:
    try:
        target = module.forward if hasattr(module, "forward") else module
        params = [
            p.name
            for p in inspect.signature(target).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return None
    return params[:count] if len(params) >= count else None


def _dim_name(dim: Any, fallback: str) -> str:
    name = getattr(dim, "__name__", None)
    if isinstance(dim, str):
        return dim
    return name if isinstance(name, str) and name else fallback


def dynamic_axes_from_shapes(
    dynamic_shapes: Mapping[str, Any] | Sequence[Any], names: Sequence[str]
) -> dict[str, dict[int, str]]:
    """Translate dynamo's ``dynamic_shapes`` into the legacy exporter's ``dynamic_axes``.

    Accepts the per-input forms ``{axis: Dim | str}`` or ``[Dim | None, ...]``, given as a
    tuple/list aligned with the positional inputs or a dict keyed by parameter name.
    """
    if isinstance(dynamic_shapes, Mapping):
        items = [(str(k), v) for k, v in dynamic_shapes.items()]
    else:
        items = list(zip(names, dynamic_shapes))
    axes: dict[str, dict[int, str]] = {}
    for name, entry in items:
        if entry is None:
            continue
        if isinstance(entry, Mapping):
            pairs = [(int(a), d) for a, d in entry.items() if d is not None]
        elif isinstance(entry, (list, tuple)):
            pairs = [(a, d) for a, d in enumerate(entry) if d is not None]
        else:
            raise ValueError(f"dynamic_shapes[{name!r}]: expected a dict or list, got {entry!r}")
        if pairs:
            axes[name] = {a: _dim_name(d, f"{name}_dim{a}") for a, d in pairs}
    return axes


def _dynamo_shapes(shapes: Mapping[str, Any] | Sequence[Any] | None) -> dict[str, Any] | tuple[Any, ...] | None:
    """``dynamic_shapes`` in the container types torch.export takes (dict or tuple)."""
    if shapes is None:
        return None
    return dict(shapes) if isinstance(shapes, Mapping) else tuple(shapes)


def count_loss_nodes(model: onnx.ModelProto) -> int:
    """How many loss nodes (``SmoothL1Loss`` and ``HuberLoss``) ``model``'s graphs hold
    (subgraphs included)."""
    return sum(1 for n in spec.walk_nodes(model.graph.node) if spec.is_loss_node(n))


def _fix_output_types(model: onnx.ModelProto, program: Any) -> None:
    """Cast graph outputs back to the type torch computes, where torch.onnx lost that cast.

    torch.onnx's type-promotion pass runs ops it does not decompose (ours) in "op math": a
    float16/bfloat16 ``smooth_l1_loss``/``l1_loss`` gets float32 inputs and a cast of its
    result back to float16. When the loss is a graph output, the ExportedProgram's output
    signature still names the pre-cast value, so the ONNX graph returns float32 (torch
    2.13). This restores the cast: producer output renamed, ``Cast`` into the original
    name, so output names stay as they were.
    """
    import torch

    to_onnx = {
        torch.float16: TensorProto.FLOAT16,
        torch.bfloat16: TensorProto.BFLOAT16,
        torch.float32: TensorProto.FLOAT,
        torch.float64: TensorProto.DOUBLE,
    }
    try:
        from torch.export import graph_signature as gs

        ep = program.exported_program
        out_node = next(n for n in ep.graph.nodes if n.op == "output")
        specs = ep.graph_signature.output_specs
        fx_outs = list(out_node.args[0])
        expected = [
            getattr(arg.meta.get("val"), "dtype", None) if hasattr(arg, "meta") else None
            for spec_, arg in zip(specs, fx_outs)
            if spec_.kind == gs.OutputKind.USER_OUTPUT
        ]
    except Exception:  # pragma: no cover - a torch layout this code does not know
        return
    if len(expected) != len(model.graph.output):
        return
    graph = model.graph
    for value, want in zip(graph.output, expected):
        want_type = to_onnx.get(want) if want is not None else None
        have = value.type.tensor_type.elem_type
        if want_type is None or have == want_type or have not in _FLOAT_TYPES:
            continue
        name, inner = value.name, value.name + "__opmath"
        for node in graph.node:
            node.output[:] = [inner if o == name else o for o in node.output]
            node.input[:] = [inner if i == name else i for i in node.input]
        for info in graph.value_info:
            if info.name == name:
                info.name = inner
        graph.node.append(onnx.helper.make_node("Cast", [inner], [name], to=want_type,
                                                name=f"{name}__cast_back"))
        value.type.tensor_type.elem_type = want_type


def finish(model: onnx.ModelProto, mode: Mode = "function") -> onnx.ModelProto:
    """Turn a model with loss nodes into a ``mode`` model (in place); check it.

    ``function``: attach the model-local functions (one per loss op type present);
    ``custom_op``: the nodes only (domain
    imported); ``inline``: attach, then inline to standard ops and drop the domain. The IR
    version is set for the installed onnxruntime and ``check_model(full_check=True)`` runs.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}")
    has_nodes = count_loss_nodes(model) > 0
    if has_nodes and mode in ("function", "inline"):
        # The body is specialised to the loss inputs' types found by shape inference;
        # attach_function raises a ValueError for opset 13-14 when they are not known (no
        # CastLike there) or mixed.
        attach_function(model)
    if has_nodes and not any(o.domain == spec.DOMAIN for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(spec.DOMAIN, spec.DOMAIN_VERSION))
    model.ir_version = ir_version_for(model)
    if mode == "inline":
        from .inline import inline

        inline_model = inline(model)
        model.CopyFrom(inline_model)
    onnx.checker.check_model(model, full_check=True)
    return model


#: torch's own refusals of a loss parameter (the message of its ``TORCH_CHECK``) -> the name.
_TORCH_PARAM_CHECKS: Final = {
    "non-positive values for delta": "delta",
    "negative values for beta": "beta",
}


def _param_error(exc: BaseException) -> ValueError | None:
    """The parameter error behind ``exc`` (torch.onnx wraps it once or twice), if any."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, _ParamError):
            return ValueError(str(cause))
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        for needle, name in _TORCH_PARAM_CHECKS.items():
            if needle in first:
                bound = "> 0" if name == "delta" else ">= 0"
                return ValueError(f"{name} must be {bound}; torch refused the loss: {first}")
        cause = cause.__cause__ or cause.__context__
    return None


@contextlib.contextmanager
def _param_errors() -> Iterator[None]:
    """Re-raise a refused ``delta``/``beta`` from deep inside torch.onnx as a ``ValueError``
    that names it (torch's own error stays attached as the cause)."""
    try:
        yield
    except Exception as exc:
        clear = _param_error(exc)
        if clear is None:
            raise
        raise clear from exc


def export(
    module: Any,
    args: Any,
    f: str | os.PathLike | None = None,
    *,
    mode: Mode = "function",
    dynamo: bool = True,
    opset: int | None = None,
    dynamic_shapes: Mapping[str, Any] | Sequence[Any] | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    fuse: bool = True,
    **kwargs: Any,
) -> onnx.ModelProto:
    """Export ``module`` with its SmoothL1/L1 losses as ``SmoothL1Loss`` nodes and its Huber
    losses as ``HuberLoss`` nodes, without the Expand/Cast torch writes around them.

    ``fuse`` (default True): after torch's export, :func:`onnx_smoothl1.fuse` also turns the
    losses written by hand (not through ``F.smooth_l1_loss`` / ``F.huber_loss``) that it
    recognises into nodes. What was found is recorded in the model's metadata
    (:data:`FOUND_KEY`, read with :func:`found_losses`): each loss node's type, parameter,
    reduction and whether it was recognised from plain ops.

    ``mode``: ``"function"`` (node + model-local function: runs with or without the custom
    op), ``"custom_op"`` (node only: needs the compiled library or ``pyop``), ``"inline"``
    (standard ops only, no custom domain). ``dynamo`` picks torch's exporter; ``opset``
    defaults to torch.onnx's default (20). ``dynamic_shapes`` takes dynamo's form (for
    ``dynamo=False`` it is translated to ``dynamic_axes``; passing ``dynamic_axes`` directly
    works too). Other keyword arguments go to ``torch.onnx.export``. The model is returned
    and, when ``f`` is given, saved there. A loss parameter torch or the node refuses
    (``delta <= 0``, a negative ``beta``) raises ``ValueError`` naming it.
    """
    import torch

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}")
    opset = DEFAULT_OPSET if opset is None else spec.check_opset(opset)
    if not isinstance(args, tuple):
        args = tuple(args) if isinstance(args, list) else (args,)
    names = list(input_names) if input_names is not None else None

    if dynamo:
        table = translation_table()
        table.update(kwargs.pop("custom_translation_table", None) or {})
        kwargs.setdefault("verbose", False)
        with _param_errors():
            program = torch.onnx.export(
                module,
                args,
                None,
                dynamo=True,
                opset_version=opset,
                dynamic_shapes=_dynamo_shapes(dynamic_shapes),
                input_names=names,
                output_names=list(output_names) if output_names is not None else None,
                custom_translation_table=table,
                **kwargs,
            )
        if program is None:  # only with f given, which export never passes
            raise RuntimeError("torch.onnx.export(dynamo=True) returned no ONNXProgram")
        model = program.model_proto
        _fix_output_types(model, program)
    else:
        if names is None:
            names = _forward_names(module, len(args))
        if dynamic_shapes is not None:
            if "dynamic_axes" in kwargs:
                raise ValueError("give dynamic_shapes or dynamic_axes, not both")
            if names is None:
                raise ValueError("dynamic_shapes with dynamo=False needs input_names")
            kwargs["dynamic_axes"] = dynamic_axes_from_shapes(dynamic_shapes, names)
        buffer = io.BytesIO()
        with _param_errors(), legacy_symbolics(opset):
            torch.onnx.export(
                module,
                args,
                buffer,  # type: ignore[arg-type]  # a file object works; torch types a path
                dynamo=False,
                opset_version=opset,
                input_names=names,
                output_names=list(output_names) if output_names is not None else None,
                **kwargs,
            )
        model = onnx.load_from_string(buffer.getvalue())

    from_calls = _loss_node_keys(model)
    if fuse:
        from .fuse import fuse as fuse_model

        model = fuse_model(model).model
        # finish() below attaches (or, for custom_op, leaves out) the functions anew
        kept = [fn for fn in model.functions if fn.domain != spec.DOMAIN]
        del model.functions[:]
        model.functions.extend(kept)
    simplify(model)
    _record_found(model, from_calls)
    finish(model, mode)
    if f is not None:
        onnx.save(model, os.fspath(f))
    return model


#: The metadata key under which ``export`` records the loss nodes it wrote (JSON list).
FOUND_KEY = "onnx_smoothl1.found"


def _loss_node_keys(model: onnx.ModelProto) -> list[str]:
    return [n.output[0] for n in spec.walk_nodes(model.graph.node) if spec.is_loss_node(n) and n.output]


def loss_node_entry(node: onnx.NodeProto) -> dict[str, Any]:
    """A loss node as data: ``{"op_type", "beta" or "delta", "reduction"}``."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    param = spec.LOSS_PARAMS[node.op_type]
    default = spec.DEFAULT_DELTA if node.op_type == spec.HUBER_OP_TYPE else spec.DEFAULT_BETA
    reduction = attrs.get("reduction", spec.DEFAULT_REDUCTION.encode())
    return {
        "op_type": node.op_type,
        param: float(attrs.get(param, default)),
        "reduction": reduction.decode() if isinstance(reduction, bytes) else str(reduction),
    }


def _record_found(model: onnx.ModelProto, from_calls: Sequence[str]) -> None:
    found = []
    for node in spec.walk_nodes(model.graph.node):
        if spec.is_loss_node(node):
            recognised = bool(node.output) and node.output[0] not in from_calls
            found.append({**loss_node_entry(node), "recognised": recognised})
    entries = [p for p in model.metadata_props if p.key != FOUND_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(entries)
    model.metadata_props.add(key=FOUND_KEY, value=json.dumps(found))


def found_losses(model: onnx.ModelProto) -> list[dict[str, Any]]:
    """What ``export`` recorded: one dict per loss node (op_type, beta or delta, reduction,
    recognised: True when ``fuse`` found it in plain ops rather than a torch loss call)."""
    for prop in model.metadata_props:
        if prop.key == FOUND_KEY:
            return list(json.loads(prop.value))
    return []
