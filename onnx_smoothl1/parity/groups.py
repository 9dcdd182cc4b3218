"""Group models: one graph per dtype that holds a loss node for every (shape, loss,
parameter, reduction) of a grid's cases of that dtype, for the paths whose cost is a compile
per model (IREE, TVM, OpenVINO) rather than a run.

A grid of C cases of one dtype then costs one compile instead of C. The group has an
``input_<i>``/``target_<i>`` pair per shape and one output per node, in the cases' order;
each node (``SmoothL1Loss`` or ``HuberLoss`` with its own attributes) reads its shape's pair.
A case's answer is its own node's output; the run feeds zeros to the other shapes' inputs,
and the cases of one shape share their inputs, so one run answers all of them. The inliner
gives each node its own copy of the body, so what runs is still each node's inlined
function, next to the others.

Shapes are static (IREE and TVM need them). The inlined groups are kept in the disk cache of
``runtimes._compiled``, so the paths that use them (IREE, TVM, OpenVINO, onnx2torch) inline
each group once between them, whichever process gets there first (a file lock).

A group that fails falls back to one group per shape, then to the case's own one-node model
(``GroupedPath``), so an error stays with the cases it concerns.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from .. import spec
from ..function import attach_function, make_huber_node, make_node
from ..inline import inline
from ..model import ir_version_for
from .cases import Case
from .registry import ParityPath, Unsupported

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock (two workers may build a group)
    fcntl = None  # type: ignore[assignment]

#: One shape pair: (input shape, target shape).
ShapePair = tuple[tuple[int, ...], tuple[int, ...]]
#: One node of a group model: (shape index, loss, parameter, reduction).
GroupNode = tuple[int, str, float, str]
#: A group model: (dtype, its shape pairs, its nodes). Plain tuples: it travels to a worker.
GroupSpec = tuple[str, tuple[ShapePair, ...], tuple[GroupNode, ...]]


def group_specs(cases: Sequence[Case]) -> dict[Case, tuple[GroupSpec, int]]:
    """Each case's group model (one per dtype: every shape and (loss, parameter, reduction)
    of that dtype's cases, in the cases' order) and its node's index there."""
    shapes: dict[str, dict[ShapePair, int]] = {}
    nodes: dict[str, dict[GroupNode, int]] = {}
    where: dict[Case, tuple[str, GroupNode]] = {}
    for case in cases:
        index = shapes.setdefault(case.dtype, {}).setdefault(case.shapes, len(shapes[case.dtype]))
        node = (index, case.loss, float(case.beta), case.reduction)
        nodes.setdefault(case.dtype, {}).setdefault(node, len(nodes[case.dtype]))
        where[case] = (case.dtype, node)
    specs = {d: (d, tuple(shapes[d]), tuple(nodes[d])) for d in shapes}
    return {case: (specs[d], nodes[d][node]) for case, (d, node) in where.items()}


def shape_spec(group: GroupSpec, index: int) -> tuple[GroupSpec, dict[int, int]]:
    """The group of one of ``group``'s shapes alone (the fallback when the dtype's group
    fails), and the node index map from ``group`` to it."""
    dtype, shapes, nodes = group
    kept = [(i, n) for i, n in enumerate(nodes) if n[0] == index]
    return (dtype, (shapes[index],), tuple((0, *n[1:]) for _, n in kept)), {
        i: j for j, (i, _) in enumerate(kept)
    }


def _node_name(node: GroupNode, position: int) -> str:
    shape, loss, _, reduction = node
    return f"{loss}_{position}_s{shape}_{reduction}"


def group_model(group: GroupSpec) -> onnx.ModelProto:
    """The group's model before inlining: the nodes and the model-local function."""
    dtype, shapes, group_nodes = group
    elem = spec.DTYPES[dtype]
    nodes = []
    for position, node in enumerate(group_nodes):
        shape, loss, param, reduction = node
        name = _node_name(node, position)
        ins = (f"input_{shape}", f"target_{shape}", name)
        if loss == "huber":
            nodes.append(make_huber_node(*ins, delta=param, reduction=reduction, name=name))
        else:
            nodes.append(make_node(*ins, beta=param, reduction=reduction, name=name))
    inputs = [f"{kind}_{i}" for i in range(len(shapes)) for kind in ("input", "target")]
    graph = helper.make_graph(
        nodes,
        f"smooth_l1_group_{dtype}",
        [helper.make_tensor_value_info(n, elem, None) for n in inputs],
        [helper.make_tensor_value_info(n.output[0], elem, None) for n in nodes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="onnx-smoothl1")
    attach_function(model, dtype)
    model.ir_version = ir_version_for(model)
    return model


def declared_shapes(group: GroupSpec) -> dict[str, tuple[int, ...]]:
    """``inline``'s ``input_shapes`` for the group."""
    return {f"{kind}_{i}": dims for i, pair in enumerate(group[1]) for kind, dims in zip(("input", "target"), pair)}


@functools.lru_cache(maxsize=64)
def group_model_bytes(group: GroupSpec, cache: Path | None = None) -> bytes:
    """The inlined group model of ``group``, inputs declared with its shapes. Kept in memory,
    and in ``cache/inlined`` when given (the inlining and folding of a large group take
    about as long as a compile), keyed by what the result depends on: the model (its function
    body included), the shapes, the inliner's source and the onnx / onnxscript versions."""
    model = group_model(group)
    declared = declared_shapes(group)
    if cache is None:
        return inline(model, input_shapes=declared).SerializeToString()
    from importlib.metadata import version

    source = Path(inspect.getfile(inline)).read_bytes()
    tools = f"{declared} onnx {version('onnx')} onnxscript {version('onnxscript')}".encode()
    key = hashlib.sha256(model.SerializeToString() + tools + source).hexdigest()
    path = cache / "inlined" / f"{key}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Both compiler workers need the same groups: one builds, the other waits for it.
    with open(path.with_suffix(".lock"), "a") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file():
            return path.read_bytes()
        data = inline(model, input_shapes=declared).SerializeToString()
        write_atomically(path, data)
    return data


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)  # a concurrent run sees a whole file or none
    finally:
        tmp.unlink(missing_ok=True)


def group_inputs(group: GroupSpec, index: int, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The feeds of ``group``'s model for a case of shape ``index``: its inputs there, zeros
    of the declared shapes elsewhere (those outputs are not read)."""
    arrays: list[np.ndarray] = []
    dtype = np.asarray(x).dtype
    for i, pair in enumerate(group[1]):
        if i == index:
            arrays += [np.asarray(x), np.asarray(y)]
        else:
            arrays += [np.zeros(dims, dtype=dtype) for dims in pair]
    return arrays


class GroupedPath(ParityPath):
    """The runner's side of a path that runs grid cases through group models. ``plan`` (from
    ``prepare``) assigns the cases to groups; subclasses implement ``run_group`` (a group and
    its feeds -> its outputs). A case not planned gets a group of its own."""

    def __init__(self) -> None:
        super().__init__()
        self._slots: dict[Case, tuple[GroupSpec, int]] = {}
        self._failed: dict[GroupSpec, Exception] = {}
        self._kept_group: GroupSpec | None = None
        self._kept: dict[int, tuple[object, list[np.ndarray]]] = {}

    def plan(self, cases: Sequence[Case]) -> list[GroupSpec]:
        """Assign ``cases`` to groups; the groups, in order."""
        slots = group_specs(cases)
        self._slots.update(slots)
        return list(dict.fromkeys(g for g, _ in slots.values()))

    def prepare(self, cases: Sequence[Case]) -> None:
        self.plan(cases)

    def run_group(self, group: GroupSpec, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def settle(self) -> None:
        """Called before each group run (a background compile's results, for example)."""

    def mark_failed(self, group: GroupSpec, error: Exception) -> None:
        self._failed[group] = error

    def _outputs(self, group: GroupSpec, index: int, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        """The group's outputs for shape ``index`` fed ``x``, ``y``. The outputs of the last
        group's runs are kept, one per shape (the cases of one shape share their inputs, and
        the grid goes through a dtype's shapes once per loss)."""
        key = (np.asarray(x).dtype.str, np.shape(x), np.shape(y),
               hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest(),
               hashlib.sha1(np.ascontiguousarray(y).tobytes()).hexdigest())
        if self._kept_group != group:
            self._kept_group, self._kept = group, {}
        if index in self._kept and self._kept[index][0] == key:
            return self._kept[index][1]
        try:
            outputs = self.run_group(group, group_inputs(group, index, x, y))
        except Exception as exc:
            self._failed[group] = exc
            raise
        self._kept[index] = (key, outputs)
        return outputs

    def run_case(self, case: Case, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The case's node output from its dtype's group; when that group fails, from its
        shape's group alone; when that fails too, from the case's own model. A crash or hang
        (``Unsupported``) does not fall back: it would only repeat, once per case."""
        if case not in self._slots:
            self.plan([case])
        self.settle()
        group, position = self._slots[case]
        index = group[2][position][0]

        def candidates() -> Iterator[tuple[GroupSpec, int, int]]:
            yield group, index, position
            if len(group[1]) > 1:  # built only when the dtype's group failed
                alone, positions = shape_spec(group, index)
                yield alone, 0, positions[position]

        for model, at, slot in candidates():
            known = self._failed.get(model)
            if isinstance(known, Unsupported):
                raise Unsupported(str(known), known.max_abs, known.max_rel)
            if known is not None:
                continue
            try:
                return self._outputs(model, at, x, y)[slot]
            except Unsupported:
                raise
            except Exception:  # recorded by _outputs; the next, smaller model
                continue
        return super().run_case(case, x, y)
