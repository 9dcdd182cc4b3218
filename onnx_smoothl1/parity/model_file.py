"""The model-file mode (``onnx-smoothl1 parity --model``): a user's model containing the
node, run through every path that can run it, each path compared with the first and every
pair with each other; a one-node model is also checked against PyTorch float64.

Inputs not given are random from the declared shapes and types (``random_feeds``). Two
paths disagreeing beyond a few roundings of the output type fail the run, unless one of them
has a declared known limit for that type (then it is a note, with the measured difference).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx

from .. import oracle, spec
from .registry import PATHS, Unsupported, first_line, select_paths

#: Relative difference between two paths on a user's model above which the run fails:
#: a few roundings of the output type (float16/bfloat16 results may round differently).
AGREEMENT_RTOL = {"float64": 1e-9, "float32": 1e-5, "float16": 4e-3, "bfloat16": 3e-2}
SYMBOLIC_DIM = 3


def random_feeds(
    model: onnx.ModelProto, given: Mapping[str, np.ndarray] | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Inputs for ``model``: ``given`` ones, the rest random from declared shapes and types.

    Symbolic or missing dimensions become ``SYMBOLIC_DIM``; an input of unknown rank becomes
    1-D. Float inputs are standard normal; integers 0..2; booleans random.
    """
    given = dict(given or {})
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    unknown = set(given) - {i.name for i in inputs}
    if unknown:
        raise ValueError(
            f"--inputs names {', '.join(sorted(unknown))} are not model inputs "
            f"({', '.join(i.name for i in inputs)})"
        )
    rng = np.random.default_rng(seed)
    # A symbolic dimension takes its size from a given input that has it, so shared names
    # ("batch") agree across inputs.
    bound: dict[str, int] = {}
    for value in inputs:
        if value.name in given and value.type.tensor_type.HasField("shape"):
            dims = value.type.tensor_type.shape.dim
            shape = np.shape(given[value.name])
            if len(dims) == len(shape):
                for d, n in zip(dims, shape):
                    if d.dim_param:
                        bound.setdefault(d.dim_param, int(n))
    feeds: dict[str, np.ndarray] = {}
    for value in inputs:
        elem = value.type.tensor_type.elem_type
        if not value.type.HasField("tensor_type") or not elem:
            raise ValueError(f"input {value.name!r} is not a tensor; pass it with --inputs")
        npdt = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))
        if value.name in given:
            array = np.asarray(given[value.name])
            if npdt == oracle.NUMPY_DTYPES["bfloat16"] and array.dtype == np.dtype("V2"):
                array = array.view(npdt)
            if array.dtype != npdt:
                raise ValueError(f"input {value.name!r} must be {npdt}, got {array.dtype}")
            feeds[value.name] = array
            continue
        shape_proto = value.type.tensor_type
        if shape_proto.HasField("shape"):
            dims = shape_proto.shape.dim
            # An unbound symbolic dimension borrows the size at the same position of a given
            # input of the same rank (a prediction and its target usually match).
            peer = next((np.shape(a) for a in given.values() if np.ndim(a) == len(dims)), None)
            shape = tuple(
                d.dim_value if d.HasField("dim_value")
                else bound.get(d.dim_param, peer[i] if peer is not None else SYMBOLIC_DIM)
                for i, d in enumerate(dims)
            )
        else:
            shape = (SYMBOLIC_DIM,)
        if npdt.kind == "f" or npdt == oracle.NUMPY_DTYPES["bfloat16"]:
            feeds[value.name] = np.asarray(rng.standard_normal(shape) * 2.0).astype(npdt)
        elif npdt.kind in "iu":
            feeds[value.name] = rng.integers(0, 3, size=shape).astype(npdt)
        elif npdt.kind == "b":
            feeds[value.name] = rng.random(shape) < 0.5
        else:
            raise ValueError(f"input {value.name!r} has type {npdt}; pass it with --inputs")
    return feeds


@dataclass
class ModelReport:
    outputs: list[str]
    results: dict[str, list[np.ndarray] | str]  # path -> outputs, or why it did not run
    largest: tuple[float, float, str, str, str] | None  # abs, rel, path a, path b, output
    ok: bool
    vs_first: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: for a single-node model: each path's verdict against PyTorch float64 (SPEC tolerance)
    vs_torch: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: path -> what really executed, as the path proved it (see ``ParityPath.what_ran``)
    ran: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        lines = []
        for path, res in self.results.items():
            if isinstance(res, str):
                lines.append(f"  {path:15s} {res}")
            else:
                shapes = ", ".join(f"{o.dtype}{list(o.shape)}" for o in res)
                a, r = self.vs_first.get(path, (0.0, 0.0))
                first = next(iter(self.vs_first), path)
                vs = "" if path == first else f"; vs {first}: abs {a:.3g}, rel {r:.3g}"
                if path in self.vs_torch:
                    vs += f"; vs torch float64: {self.vs_torch[path]}"
                what = f" ({self.ran[path]})" if self.ran.get(path) else ""
                lines.append(f"  {path:15s} ran{what}: {shapes}{vs}")
        if self.largest is None:
            lines.append("fewer than two paths ran: nothing to compare")
        else:
            a, r, p1, p2, out = self.largest
            lines.append(
                f"largest difference between paths: abs {a:.3g}, rel {r:.3g} "
                f"({p1} vs {p2}, output {out!r})"
            )
        lines += [f"  note: {n}" for n in self.notes]
        lines.append("OK: the paths agree" if self.ok else "FAILED: the paths disagree")
        return "\n".join(lines)

    def markdown(self) -> str:
        out = ["# SmoothL1Loss parity: user model", "", "| path | result |", "|---|---|"]
        for path, res in self.results.items():
            text = res if isinstance(res, str) else "ran: " + ", ".join(
                f"{o.dtype}{list(o.shape)}" for o in res
            ) + (f"; max diff vs {next(iter(self.vs_first))}: abs {self.vs_first[path][0]:.3g}, "
                 f"rel {self.vs_first[path][1]:.3g}" if path in self.vs_first else "") + (
                f"; vs torch float64: {self.vs_torch[path]}" if path in self.vs_torch else "") + (
                f"; what ran: {self.ran[path]}" if self.ran.get(path) else "")
            out.append(f"| {path} | {text.replace('|', '/')} |")
        tail = [line for line in self.text().splitlines() if not line.startswith("  ")]
        out += [""] + [f"{line}\n" for line in tail]
        out += [f"- {n}" for n in self.notes]
        return "\n".join(out)


def _diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    if a.shape != b.shape:
        return np.inf, np.inf
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
    if same.all():
        return 0.0, 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(same, 0.0, np.abs(a64 - b64))
        scale = np.maximum(np.abs(a64), np.abs(b64))
        rel = np.where(same, 0.0, np.where(scale > 0, d / scale, np.inf))
    d = np.nan_to_num(d, nan=np.inf)
    return float(d.max()), float(np.nan_to_num(rel, nan=np.inf).max())


def run_model_file(
    model: onnx.ModelProto | str | os.PathLike,
    inputs: Mapping[str, np.ndarray] | None = None,
    *,
    paths: Iterable[str] | None = None,
    seed: int = 0,
) -> ModelReport:
    """Run a user's model (containing the node) through every path that can run it."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    if not any(spec.is_loss_node(n) for n in spec.walk_nodes(model.graph.node)):
        raise ValueError(
            f"the model has no {spec.DOMAIN}::{spec.OP_TYPE} or {spec.DOMAIN}::{spec.HUBER_OP_TYPE} node"
        )
    feeds = random_feeds(model, inputs, seed)
    outputs = [o.name for o in model.graph.output]
    results: dict[str, list[np.ndarray] | str] = {}
    ran_by: dict[str, str] = {}
    selected = select_paths(paths)
    try:
        for path in selected:
            if not path.runs_models:
                results[path.name] = (
                    "reference: every path is compared with PyTorch float64 below"
                    if _single_node(model) is not None
                    else "unsupported: only a model that is one SmoothL1Loss or HuberLoss node "
                    "has a torch equivalent here"
                )
                continue
            if path.unavailable is not None:
                results[path.name] = f"unsupported: {path.unavailable}"
                continue
            if path.name == "python-op" and isinstance(results.get("ort-function"), str):
                # onnxruntime-extensions aborts the process when a Python op raises, so the
                # Python op only gets inputs the function path accepted.
                results[path.name] = "skipped: the function path failed on these inputs"
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    results[path.name] = [np.asarray(o) for o in path.run_model(model, feeds)]
                ran_by[path.name] = path.what_ran()
            except Unsupported as exc:
                results[path.name] = f"unsupported: {exc}"
            except Exception as exc:
                results[path.name] = f"error: {first_line(exc)}"
    finally:
        for path in selected:
            path.close()
    ran = {p: r for p, r in results.items() if not isinstance(r, str)}
    largest = None
    ok = not any(isinstance(r, str) and r.startswith("error") for r in results.values())
    notes: list[str] = []
    vs_torch: dict[str, str] = {}
    single = _single_node(model)
    if single is not None and ran:
        # The whole model is one loss node: compare every path with PyTorch too.
        loss, beta, reduction, (xi, yi) = single
        x, y = feeds[xi], feeds[yi]
        dtype = next((n for n, dt in oracle.NUMPY_DTYPES.items() if dt == np.asarray(x).dtype), None)
        if dtype is not None:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                ref = oracle.reference(x, y, beta=beta, reduction=reduction, loss=loss)
                own = oracle.torch_same_dtype(x, y, beta=beta, reduction=reduction, loss=loss)
                for p, outs in ran.items():
                    v = oracle.compare(outs[0], ref, dtype=dtype, reduction=reduction, torch_own=own)
                    known = PATHS[p].dtype_limit(dtype) if p in PATHS else None
                    if v.ok:
                        vs_torch[p] = f"pass (abs {v.max_abs:.3g}, rel {v.max_rel:.3g})"
                    elif known is not None:
                        vs_torch[p] = f"outside SPEC, known limit ({v.detail})"
                    else:
                        vs_torch[p] = f"FAIL ({v.detail})"
                        ok = False
    names = list(ran)
    vs_first: dict[str, tuple[float, float]] = {}
    for p in names:
        diffs = [_diff(a, b) for a, b in zip(ran[names[0]], ran[p])]
        vs_first[p] = (max((d[0] for d in diffs), default=0.0), max((d[1] for d in diffs), default=0.0))
    for i, p1 in enumerate(names):
        for p2 in names[i + 1 :]:
            for k, (a, b) in enumerate(zip(ran[p1], ran[p2])):
                d_abs, d_rel = _diff(a, b)
                if largest is None or (d_rel, d_abs) > (largest[1], largest[0]):
                    largest = (d_abs, d_rel, p1, p2, outputs[k] if k < len(outputs) else str(k))
                key = next((n for n, dt in oracle.NUMPY_DTYPES.items() if dt == a.dtype), None)
                if key is not None and d_rel > AGREEMENT_RTOL[key] and d_abs > 0:
                    limited = [q for q in (p1, p2) if q in PATHS and PATHS[q].dtype_limit(key)]
                    if limited:
                        notes.append(
                            f"{', '.join(limited)} differs by rel {d_rel:.3g} on {key} output "
                            f"{outputs[k] if k < len(outputs) else k!r}: known limit: "
                            f"{_limit_reason(limited[0], key)}"
                        )
                    else:
                        ok = False
    return ModelReport(
        outputs, results, largest, ok, vs_first, vs_torch, list(dict.fromkeys(notes)), ran_by
    )


def _single_node(model: onnx.ModelProto) -> tuple[str, float, str, tuple[str, str]] | None:
    """(loss, beta or delta, reduction, (input, target)) when the graph is exactly one
    SmoothL1Loss or HuberLoss node fed by graph inputs and producing the only graph output,
    else None."""
    nodes = list(model.graph.node)
    if len(nodes) != 1 or not spec.is_loss_node(nodes[0]):
        return None
    op_type = nodes[0].op_type
    loss = next(k for k, v in spec.LOSSES.items() if v == op_type)
    param = spec.LOSS_PARAMS[op_type]
    default = spec.DEFAULT_BETA if op_type == spec.OP_TYPE else spec.DEFAULT_DELTA
    node = nodes[0]
    inputs = {i.name for i in model.graph.input}
    if len(node.input) != 2 or not set(node.input) <= inputs or len(model.graph.output) != 1:
        return None
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    reduction = attrs.get("reduction", spec.DEFAULT_REDUCTION)
    if isinstance(reduction, bytes):
        reduction = reduction.decode()
    try:
        value = spec.check_loss_param(op_type, attrs.get(param, default))
        return loss, value, spec.check_reduction(reduction), (node.input[0], node.input[1])
    except ValueError:
        return None


def _limit_reason(path: str, dtype: str) -> str:
    limit = PATHS[path].dtype_limit(dtype)
    return limit.reason if limit is not None else ""
