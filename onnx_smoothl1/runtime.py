"""Running SmoothL1Loss models in onnxruntime: with the fused kernel, or through the function.

The same model file runs both ways: when the compiled custom-op library is registered in the
session, ORT resolves ``onnx_smoothl1::SmoothL1Loss`` to the fused kernel; when it is not,
ORT inlines the model-local function. ``custom_op`` chooses which.

onnxruntime is not a hard dependency of the package (docs/install.md): any one distribution
of it (onnxruntime, onnxruntime-gpu, -openvino, -directml, -qnn, ...) provides the
``onnxruntime`` module, and pip cannot express "any of these". So it is imported here, on
first use, by :func:`onnxruntime_module`, which names the fix when it is missing or too old.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

import ml_dtypes
import numpy as np
import onnx

from . import spec

if TYPE_CHECKING:
    import onnxruntime as ort

ModelLike = onnx.ModelProto | bytes | str | os.PathLike
CustomOp = bool | Literal["auto", "python"]

#: Set to a path to use a library built elsewhere (e.g. the ASan or CUDA build).
LIBRARY_ENV = "ONNX_SMOOTHL1_LIBRARY"
LIBRARY_NAME = "libonnx_smoothl1_ops.so"
_LIB_DIR = Path(__file__).resolve().parent / "lib"
#: Written by the build when it skipped the library, saying why (compiler/headers missing).
_SKIP_REASON_FILE = _LIB_DIR / "BUILD_SKIPPED.txt"


class CustomOpUnavailable(RuntimeError):
    """The compiled custom-op library was required but is not built or not found."""


#: The onnxruntime releases this package supports: the library is built on ORT API 21
#: (onnxruntime 1.21); 1.32 is the newest tested. The ``cpu``/``gpu`` extras pin this range.
ORT_MIN = (1, 21)
ORT_MAX_TESTED = (1, 32)
ORT_INSTALL_HINT = (
    "pip install 'onnx-smoothl1[cpu]' (CPU) or 'onnx-smoothl1[gpu]' (NVIDIA GPU); an existing "
    "onnxruntime-gpu, -openvino, -directml or -qnn install serves as well"
)


class OnnxRuntimeUnavailable(ImportError):
    """No onnxruntime distribution is installed, or one older than :data:`ORT_MIN`."""


def ort_version_tuple(version: str) -> tuple[int, int]:
    """(major, minor) of an onnxruntime version string ("1.30.0" -> (1, 30))."""
    parts = re.findall(r"\d+", version)[:2]
    return (int(parts[0]), int(parts[1])) if len(parts) == 2 else (0, 0)


_QUIET_LOGS = False
#: The checked module, once found (``onnxruntime_module`` is on every ``run``'s path).
_ORT: ModuleType | None = None


def quiet_onnxruntime_logs() -> None:
    """Keep onnxruntime's own (ANSI-coloured) log lines off stderr: errors still reach the
    caller as exceptions. The command line calls this unless ``--debug``."""
    global _QUIET_LOGS
    _QUIET_LOGS = True
    if _ORT is not None:
        _ORT.set_default_logger_severity(4)


def onnxruntime_module() -> ModuleType:
    """The ``onnxruntime`` module; ``OnnxRuntimeUnavailable`` naming the fix when no
    distribution provides it or it is older than 1.21 (the library's ORT API 21). Checked
    once, then cached."""
    global _ORT
    if _ORT is not None:
        return _ORT
    try:
        import onnxruntime
    except ImportError as exc:
        raise OnnxRuntimeUnavailable(f"onnxruntime is not installed ({exc}): {ORT_INSTALL_HINT}") from exc
    version = getattr(onnxruntime, "__version__", "0")
    if ort_version_tuple(version) < ORT_MIN:
        raise OnnxRuntimeUnavailable(
            f"onnxruntime {version} is older than {ORT_MIN[0]}.{ORT_MIN[1]}, the oldest onnx-smoothl1 "
            f"supports (ORT API {ORT_MIN[1]}): pip install -U 'onnxruntime>={ORT_MIN[0]}.{ORT_MIN[1]}' "
            "(or the -gpu/-openvino distribution you use)"
        )
    if _QUIET_LOGS:
        onnxruntime.set_default_logger_severity(4)
    _ORT = onnxruntime
    return onnxruntime


def _library_candidate() -> tuple[Path | None, str]:
    override = os.environ.get(LIBRARY_ENV)
    if override:
        path = Path(override)
        if path.is_file():
            return path, ""
        return None, f"{LIBRARY_ENV}={override!r} does not name an existing file"
    path = _LIB_DIR / LIBRARY_NAME
    if path.is_file():
        return path, ""
    if _SKIP_REASON_FILE.is_file():
        return None, "the build skipped it: " + _SKIP_REASON_FILE.read_text().strip()
    return None, f"{path} does not exist (reinstall with `pip install .` or run `make build`)"


def get_library_path() -> str:
    """Path of the compiled custom-op library; ``CustomOpUnavailable`` saying why if absent."""
    path, why = _library_candidate()
    if path is None:
        raise CustomOpUnavailable(f"the onnx_smoothl1 custom-op library is not available: {why}")
    return str(path)


def has_custom_op() -> bool:
    """Whether the compiled library is available (warns with the reason when it is not)."""
    path, why = _library_candidate()
    if path is None:
        warnings.warn(f"onnx_smoothl1 custom op unavailable: {why}", RuntimeWarning, stacklevel=2)
    return path is not None


def _model_bytes(model: ModelLike) -> bytes:
    if isinstance(model, onnx.ModelProto):
        return model.SerializeToString()
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise ValueError(f"model: no such file {str(path)!r}")
        return path.read_bytes()
    raise ValueError(
        f"model must be an onnx.ModelProto, bytes or a path; got {type(model).__name__}"
    )


def _register(options: ort.SessionOptions, custom_op: CustomOp) -> str:
    """Register the chosen implementation; return the path name the session will use."""
    if custom_op not in (True, False, "auto", "python"):
        raise ValueError(f"custom_op must be True, False, 'auto' or 'python'; got {custom_op!r}")
    if custom_op == "python":
        from . import pyop  # optional dependency: onnxruntime-extensions

        options.register_custom_ops_library(pyop.library_path())
        return "python-op"
    if custom_op is False:
        return "function"
    path, why = _library_candidate()
    if path is None:
        if custom_op is True:
            raise CustomOpUnavailable(
                f"custom_op=True but the onnx_smoothl1 custom-op library is not available: {why}"
            )
        return "function"
    options.register_custom_ops_library(str(path))
    return "kernel"


def inference_session(
    model: ModelLike,
    *,
    providers: Sequence[str] | None = None,
    custom_op: CustomOp = "auto",
    options: ort.SessionOptions | None = None,
) -> ort.InferenceSession:
    """An ``onnxruntime.InferenceSession`` for ``model`` (ModelProto, bytes or path).

    ``custom_op``: ``"auto"`` registers the compiled library when it is available, ``True``
    requires it, ``False`` never registers it (ORT then runs the function), ``"python"``
    registers the onnxruntime-extensions Python op instead. The chosen path is recorded as
    the session attribute ``smoothl1_path`` ("kernel", "function" or "python-op"); it says
    what was registered, ``profile_node_ops`` shows what actually ran.
    """
    ort = onnxruntime_module()
    options = options if options is not None else ort.SessionOptions()
    if _QUIET_LOGS:  # the command line: errors come back as exceptions, not ORT log lines
        options.log_severity_level = max(options.log_severity_level, 4)
    data = _model_bytes(model)
    parsed = model if isinstance(model, onnx.ModelProto) else _parse_or_none(data)
    check_nodes(parsed)
    if custom_op == "python" and parsed is not None:
        from . import pyop

        pyop.check_model(parsed)
    chosen = _register(options, custom_op)
    try:
        session = ort.InferenceSession(
            data, sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
        )
    except Exception as exc:
        text = str(exc)
        if "is not a registered function/op" in text and spec.DOMAIN in text and chosen != "kernel":
            # a custom_op-mode export (node, no function) without the library registered
            raise CustomOpUnavailable(
                f"the model's {spec.DOMAIN} node has no function attached (exported with "
                "mode='custom_op'), so it needs the custom-op library: register it "
                "(custom_op=True, `onnx-smoothl1 run --custom-op`) or re-export with mode='function' "
                f"[onnxruntime: {' '.join(text.split())[:300]}]"
            ) from exc
        if isinstance(exc, UnicodeDecodeError):  # onnxruntime quoting corrupt names from the model
            raise ValueError(
                f"onnxruntime rejected the model with a message that is not valid UTF-8 (corrupt "
                f"model bytes?): {exc.object[:300].decode('utf-8', 'replace')}"
            ) from exc
        raise
    session.smoothl1_path = chosen
    if chosen == "python-op" and parsed is not None:
        # The Python op cannot raise (onnxruntime-extensions aborts the process on any
        # exception from a Python op), so ``run`` checks the shapes it can see beforehand.
        session.smoothl1_input_pairs = [
            (n.op_type, n.input[0], n.input[1]) for n in parsed.graph.node
            if spec.is_loss_node(n) and len(n.input) == 2
        ]
    if parsed is not None:  # for run(): the declared input shapes (None: no shape declared)
        session.smoothl1_declared_shapes = {
            i.name: [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
            for i in parsed.graph.input
            if i.type.HasField("tensor_type") and i.type.tensor_type.HasField("shape")
        }
    return session


def _parse_or_none(data: bytes) -> onnx.ModelProto | None:
    try:
        return onnx.ModelProto.FromString(data)
    except Exception:  # corrupt bytes: onnxruntime reports them in its own words
        return None


def _all_nodes(model: onnx.ModelProto):
    """Nodes of the main graph, its subgraphs and the model's local functions."""
    yield from spec.walk_nodes(model.graph.node)
    for f in model.functions:
        yield from spec.walk_nodes(f.node)


def _non_utf8_field(message, path: str = "model") -> str | None:
    """Path of the first string field holding invalid UTF-8 (protobuf returns it as bytes)."""
    for field, value in message.ListFields():
        if field.type not in (field.TYPE_STRING, field.TYPE_MESSAGE):
            continue
        repeated = getattr(field, "is_repeated", None)  # protobuf >= 6; older: label
        if repeated is None:
            repeated = field.label == field.LABEL_REPEATED
        items = list(enumerate(value)) if repeated else [(None, value)]
        for i, item in items:
            where = f"{path}.{field.name}" + ("" if i is None else f"[{i}]")
            if field.type == field.TYPE_STRING:
                if isinstance(item, bytes):
                    return where
            else:
                found = _non_utf8_field(item, where)
                if found is not None:
                    return found
    return None


def check_nodes(model: onnx.ModelProto | None) -> None:
    """Reject what neither path may run silently: ``ValueError`` naming node, attribute, value.

    The function path cannot check attributes itself (onnxruntime's NegativeLogLikelihoodLoss
    treats an unknown reduction as 'mean', and Where-based arithmetic happily takes a negative
    or NaN beta), so the attributes of every loss node (``SmoothL1Loss``: beta, ``HuberLoss``:
    delta) are validated here, as the
    fused kernel validates them at kernel creation; a model importing the domain at a version
    this package does not implement is refused too.
    """
    if model is None:
        return
    bad = _non_utf8_field(model)
    if bad is not None:
        # onnxruntime quotes names in its errors, and pybind11 cannot turn a non-UTF-8 message
        # into a Python string: depending on where, that aborts the process. Refuse up front.
        raise ValueError(f"model field {bad} is not valid UTF-8 (corrupt model file?)")
    for o in model.opset_import:
        if o.domain == spec.DOMAIN and o.version != spec.DOMAIN_VERSION:
            raise ValueError(
                f"model imports domain {spec.DOMAIN!r} at version {o.version}; this package "
                f"implements version {spec.DOMAIN_VERSION} only"
            )
    _check_input_types(model)
    for node in _all_nodes(model):
        if not spec.is_loss_node(node):
            continue
        param = spec.LOSS_PARAMS[node.op_type]
        kinds = {param: onnx.AttributeProto.FLOAT, "reduction": onnx.AttributeProto.STRING}
        where = f"{node.op_type} node {node.name or '<unnamed>'!r}"
        for attr in node.attribute:
            if attr.ref_attr_name or attr.name not in kinds:
                continue
            if attr.type != kinds[attr.name]:
                kind = onnx.AttributeProto.AttributeType.Name(attr.type)
                want = onnx.AttributeProto.AttributeType.Name(kinds[attr.name])
                raise ValueError(f"{where}: attribute {attr.name} must be {want}, got {kind}")
            if attr.name == param:
                spec.check_loss_param(node.op_type, attr.f, name=f"{where}: attribute {param}")
            else:
                value = attr.s.decode("utf-8", "replace")
                spec.check_reduction(value, name=f"{where}: attribute reduction")


def _elem_types(graph: onnx.GraphProto) -> dict[str, int]:
    types = {t.name: t.data_type for t in graph.initializer}
    for v in [*graph.input, *graph.output, *graph.value_info]:
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type:
            types[v.name] = v.type.tensor_type.elem_type
    return types


def _type_name(elem: int) -> str:
    try:
        return onnx.TensorProto.DataType.Name(elem).lower()
    except ValueError:
        return f"element type {elem} (not an ONNX type)"


def _check_input_types(model: onnx.ModelProto) -> None:
    """SPEC: integer, bool (and string) tensors are an error. The function would cast them to
    float64 and back and return truncated numbers, so main-graph SmoothL1Loss inputs of a known
    type other than float16/bfloat16/float32/float64 are refused here."""
    nodes = [n for n in model.graph.node if spec.is_loss_node(n)]
    if not nodes:
        return
    types = _elem_types(model.graph)
    if any(i and i not in types for n in nodes for i in n.input):
        try:  # intermediate tensors: let onnx infer their types (best effort)
            types.update(_elem_types(onnx.shape_inference.infer_shapes(model).graph))
        except Exception:
            pass
    allowed = set(spec.DTYPES.values())
    for node in nodes:
        known = [types[i] for i in node.input[:2] if i in types]
        if len(known) == 2 and known[0] != known[1] and set(known) <= allowed:
            raise ValueError(
                f"{node.op_type} node {node.name or '<unnamed>'!r}: input {node.input[0]!r} is "
                f"{_type_name(known[0])} but target {node.input[1]!r} is {_type_name(known[1])}; "
                "both must have the same type (the fused kernel and the Python op require it)"
            )
        for name in node.input:
            elem = types.get(name)
            if elem is not None and elem not in allowed:
                raise ValueError(
                    f"{node.op_type} node {node.name or '<unnamed>'!r}: input {name!r} is "
                    f"{_type_name(elem)}; the loss takes "
                    f"{', '.join(spec.DTYPES)} only"
                )


def profile_node_ops(
    model: ModelLike,
    feeds: Mapping[str, object],
    *,
    providers: Sequence[str] | None = None,
    custom_op: CustomOp = "auto",
) -> tuple[list[np.ndarray], list[str]]:
    """Run ``model`` once with ORT profiling; return the outputs and the op types that ran.

    This is the proof of which path executed: with the kernel, the profile holds one
    ``SmoothL1Loss`` node event; with the function, it holds the inlined standard ops.
    """
    ort = onnxruntime_module()
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.log_severity_level = 3  # errors reach the caller as exceptions; no log spam
        options.profile_file_prefix = os.path.join(tmp, "smoothl1")
        session = inference_session(
            model, providers=providers, custom_op=custom_op, options=options
        )
        try:
            outputs = run(session, feeds)
        finally:
            # Always close the profile while its folder exists: a session dropped later (held by
            # a traceback) would otherwise try to write it into a deleted folder on destruction.
            profile = session.end_profiling()
            del session
        with open(profile) as f:
            events = json.load(f)
    ops = [
        e["args"]["op_name"]
        for e in events
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")
    ]
    return outputs, ops


def _to_ort_value(array: object) -> ort.OrtValue:
    ort = onnxruntime_module()
    if isinstance(array, ort.OrtValue):
        return array
    array = np.asarray(array, order="C")  # (ascontiguousarray would make rank 0 rank 1)
    if array.dtype == ml_dtypes.bfloat16:
        # numpy has no bfloat16 of its own, so ORT needs the element type spelled out.
        return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(array, onnx.TensorProto.BFLOAT16)
    return ort.OrtValue.ortvalue_from_numpy(array)


def _to_numpy(value: ort.OrtValue) -> np.ndarray:
    if value.data_type() != "tensor(bfloat16)":
        return value.numpy()
    # ORT cannot hand a bfloat16 tensor to numpy; copy its bytes into an ml_dtypes array.
    out = np.empty(value.shape(), dtype=ml_dtypes.bfloat16)
    if out.size:
        ctypes.memmove(out.ctypes.data, value.data_ptr(), out.nbytes)
    return out


def run(
    session: ort.InferenceSession, feeds: Mapping[str, object], outputs: Sequence[str] | None = None
) -> list[np.ndarray]:
    """``session.run`` that also takes and returns bfloat16 (ml_dtypes) arrays.

    Inputs may be numpy arrays or OrtValues; outputs are numpy arrays of the model's types.
    Only CPU-resident outputs are supported (copy device outputs yourself).
    """
    names = list(outputs) if outputs is not None else [o.name for o in session.get_outputs()]
    for op_type, a, b in getattr(session, "smoothl1_input_pairs", ()):
        if a in feeds and b in feeds:
            shape_a, shape_b = np.shape(feeds[a]), np.shape(feeds[b])  # type: ignore[call-overload]
            try:
                np.broadcast_shapes(shape_a, shape_b)
            except ValueError:
                raise ValueError(
                    f"{op_type} inputs {a!r} {shape_a} and {b!r} {shape_b} cannot be broadcast "
                    "together"
                ) from None
    _check_declared_shapes(session, feeds)
    values = session.run_with_ort_values(names, {k: _to_ort_value(v) for k, v in feeds.items()})
    return [_to_numpy(v) for v in values]


def _check_declared_shapes(session: ort.InferenceSession, feeds: Mapping[str, object]) -> None:
    """A feed whose rank or fixed sizes contradict the model's declared input shape is a
    ``ValueError`` naming the input, on every path (onnxruntime let a rank-0 model's fused
    kernel take a vector, and failed inside the function's Reshape on the same feed)."""
    for name, declared in getattr(session, "smoothl1_declared_shapes", {}).items():
        if name not in feeds:
            continue
        shape = tuple(np.shape(feeds[name]))  # type: ignore[call-overload]
        if len(declared) != len(shape) or any(d is not None and d != n for d, n in zip(declared, shape)):
            shown = ["?" if d is None else d for d in declared]
            raise ValueError(f"input {name!r}: the model declares shape {shown} (rank {len(declared)}), "
                             f"got shape {list(shape)}")


def ran_fused_kernel(ops: Sequence[str]) -> bool:
    """True when a profile's op list shows a fused loss node rather than the inlined function."""
    return any(op in ops for op in spec.LOSS_OP_TYPES)
