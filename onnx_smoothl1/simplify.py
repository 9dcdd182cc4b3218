"""Remove what torch writes around a loss node that the node already does itself.

The ``SmoothL1Loss`` / ``HuberLoss`` nodes broadcast their two inputs (numpy rules) and
compute float16/bfloat16 in float32 with one rounding at the end (SPEC, "Shapes and types").
torch writes both of those out as extra ops in front of and behind the loss:

* ``Expand`` of the inputs to their broadcast shape: ``F.smooth_l1_loss`` / ``F.huber_loss``
  call ``torch.broadcast_tensors`` first, and the legacy exporter also computes the shape
  with ``Shape -> ConstantOfShape -> Add -> Add -> Shape``. Those Expands materialise a
  broadcast copy of each input that the node does not need.
* ``Cast`` of both half-precision inputs to float32 and of the result back: torch.onnx's
  "op math" for ops it does not decompose, and its own half-precision decomposition (which
  ``fuse`` turns into a float32 node between the two Casts).

:func:`simplify` rewires the loss node past them and deletes them with the nodes that only
fed them. It only does what cannot change a result:

* An ``Expand`` goes only when its output feeds nothing but that loss node (not a graph
  output, no other consumer) and the broadcast of the loss's inputs keeps exactly the shape
  it had, by ONNX shape inference with data propagation (symbolic dimensions included).
  An Expand to a larger shape than the broadcast (a user's own ``x.expand``) changes what
  'mean'/'sum' add up and stays, and so does one whose shapes inference cannot tell.
* The ``Cast`` pair goes only when both inputs are ``Cast(to=FLOAT)`` of the same half type
  and the loss result's only consumer is a ``Cast`` back to that type: the half-type node
  computes in float32 and rounds once, which is what the pair did.

Only the main graph is rewritten (losses inside ``If``/``Loop`` bodies keep what they have).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

import onnx
from onnx import TensorProto, helper

from . import spec

_HALF = frozenset({TensorProto.FLOAT16, TensorProto.BFLOAT16})
#: A dimension as shape inference gives it: its size, its symbol, or None (unknown).
Dim = int | str | None


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph below it."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def _uses(graph: onnx.GraphProto) -> Counter[str]:
    """How often each name is read: node inputs and outputs of ``graph`` and its subgraphs
    (a subgraph may read or return an outer value by name)."""
    uses: Counter[str] = Counter()
    for g in _graphs(graph):
        for node in g.node:
            uses.update(i for i in node.input if i)
        uses.update(o.name for o in g.output)
    return uses


def _producers(graph: onnx.GraphProto) -> dict[str, int]:
    return {o: k for k, node in enumerate(graph.node) for o in node.output if o}


def _is_plain(node: onnx.NodeProto, op_type: str) -> bool:
    return node.op_type == op_type and node.domain in ("", "ai.onnx")


def _int_attr(node: onnx.NodeProto, name: str) -> int | None:
    for attr in node.attribute:
        if attr.name == name and attr.type == onnx.AttributeProto.INT:
            return int(attr.i)
    return None


def _inferred(model: onnx.ModelProto) -> onnx.GraphProto | None:
    """``model``'s main graph after shape inference with data propagation, or None.

    The loss domain is imported on the copy (inference refuses an unknown domain); the loss
    nodes themselves have no schema there, which only leaves their outputs untyped.
    """
    work = onnx.ModelProto()
    work.CopyFrom(model)
    if not any(o.domain == spec.DOMAIN for o in work.opset_import):
        work.opset_import.append(helper.make_opsetid(spec.DOMAIN, spec.DOMAIN_VERSION))
    try:
        return onnx.shape_inference.infer_shapes(work, data_prop=True).graph
    except Exception:  # a model inference cannot handle: nothing is rewritten
        return None


def _types(graph: onnx.GraphProto) -> dict[str, int]:
    known = {init.name: init.data_type for init in graph.initializer}
    for v in [*graph.input, *graph.value_info, *graph.output]:
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type:
            known[v.name] = v.type.tensor_type.elem_type
    return known


def _shapes(graph: onnx.GraphProto) -> dict[str, list[Dim]]:
    known: dict[str, list[Dim]] = {init.name: [int(d) for d in init.dims] for init in graph.initializer}
    for v in [*graph.input, *graph.value_info, *graph.output]:
        tt = v.type.tensor_type
        if v.type.HasField("tensor_type") and tt.HasField("shape"):
            known[v.name] = [
                d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim
            ]
    return known


def broadcast_shape(a: Sequence[Dim] | None, b: Sequence[Dim] | None) -> list[Dim] | None:
    """The numpy broadcast of two shapes with symbolic dimensions, or None when unknown.

    Equal dimensions stay, a 1 gives way to the other; a size against a symbol is the size
    (in a model that runs, the symbol is then 1 or that size). Two different symbols, two
    different sizes > 1, or any unknown dimension give None: nothing is decided on those.
    """
    if a is None or b is None:
        return None
    n = max(len(a), len(b))
    out: list[Dim] = []
    for da, db in zip([1] * (n - len(a)) + list(a), [1] * (n - len(b)) + list(b)):
        if da is None or db is None:
            return None
        if da == db or db == 1:
            out.append(da)
        elif da == 1:
            out.append(db)
        elif isinstance(da, int) and isinstance(db, str):
            out.append(da)
        elif isinstance(da, str) and isinstance(db, int):
            out.append(db)
        else:
            return None
    return out


def _prune(graph: onnx.GraphProto, seeds: Iterable[int]) -> None:
    """Delete the nodes ``seeds`` (indices) once nothing reads them, then whatever only fed
    them (producers, initializers); value_info of names that are gone goes too."""
    uses = _uses(graph)
    producer = _producers(graph)
    dead: set[int] = set()
    work = list(seeds)
    while work:
        k = work.pop()
        node = graph.node[k]
        if k in dead or any(uses[o] for o in node.output if o):
            continue
        dead.add(k)
        for name in node.input:
            if name:
                uses[name] -= 1
                if name in producer:
                    work.append(producer[name])
    if not dead:
        return
    kept = [node for k, node in enumerate(graph.node) if k not in dead]
    del graph.node[:]
    graph.node.extend(kept)
    inputs = {v.name for v in graph.input}
    inits = [i for i in graph.initializer if uses[i.name] > 0 or i.name in inputs]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    present = inputs | {i.name for i in inits} | {o for n in kept for o in n.output}
    infos = [v for v in graph.value_info if v.name in present]
    del graph.value_info[:]
    graph.value_info.extend(infos)


def drop_half_casts(model: onnx.ModelProto) -> int:
    """Run loss nodes on their float16/bfloat16 inputs directly instead of between a Cast to
    float32 and a Cast back (in place, main graph). Returns how many nodes changed."""
    graph = model.graph
    producer = _producers(graph)
    uses = _uses(graph)
    consumers: dict[str, list[int]] = {}
    for k, node in enumerate(graph.node):
        for name in node.input:
            consumers.setdefault(name, []).append(k)
    outputs = {o.name for o in graph.output}

    def pattern(node: onnx.NodeProto) -> tuple[list[int], int] | None:
        casts = [producer.get(i) for i in node.input]
        if len(casts) != 2 or any(
            c is None or not _is_plain(graph.node[c], "Cast") or _int_attr(graph.node[c], "to") != TensorProto.FLOAT
            for c in casts
        ):
            return None
        out = node.output[0]
        users = consumers.get(out, [])
        if out in outputs or uses[out] != 1 or len(users) != 1:
            return None
        back = graph.node[users[0]]
        if not _is_plain(back, "Cast") or _int_attr(back, "to") not in _HALF:
            return None
        return [c for c in casts if c is not None], users[0]

    candidates = [(k, got) for k, node in enumerate(graph.node)
                  if spec.is_loss_node(node) and (got := pattern(node)) is not None]
    if not candidates:
        return 0
    inferred = _inferred(model)
    if inferred is None:
        return 0
    types = _types(inferred)
    changed, seeds = 0, []
    for k, (casts, back_k) in candidates:
        node, back = graph.node[k], graph.node[back_k]
        sources = [graph.node[c].input[0] for c in casts]
        half = _int_attr(back, "to")
        if any(types.get(s) != half for s in sources):
            continue
        node.input[:] = sources
        node.output[0] = back.output[0]
        back.output[0] = ""  # the Cast back now computes nothing anyone reads
        seeds.extend([*casts, back_k])
        changed += 1
    _prune(graph, seeds)
    return changed


def drop_expands(model: onnx.ModelProto) -> int:
    """Feed loss nodes the un-expanded inputs where that keeps the broadcast shape (in place,
    main graph; see the module docstring). Returns how many Expand nodes were bypassed.

    An Expand may feed several loss nodes (the legacy exporter merges the identical Expands
    of two losses of the same inputs); it goes when every one of them keeps its shape.
    """
    graph = model.graph
    uses = _uses(graph)
    outputs = {o.name for o in graph.output}
    readers: dict[str, list[int]] = {}
    for k, node in enumerate(graph.node):
        for name in dict.fromkeys(node.input):
            readers.setdefault(name, []).append(k)

    def only_losses(name: str) -> list[int] | None:
        """The loss nodes reading ``name``, if nothing else (graph output, other node,
        subgraph) reads it."""
        ks = readers.get(name, [])
        if name in outputs or not ks or not all(spec.is_loss_node(graph.node[k]) for k in ks):
            return None
        if uses[name] != sum(list(graph.node[k].input).count(name) for k in ks):
            return None
        return ks

    expands = [(k, ks) for k, node in enumerate(graph.node)
               if _is_plain(node, "Expand") and (ks := only_losses(node.output[0])) is not None]
    if not expands:
        return 0
    inferred = _inferred(model)
    if inferred is None:
        return 0
    shapes = _shapes(inferred)
    current = {k: list(graph.node[k].input) for _, ks in expands for k in ks}
    before = {k: broadcast_shape(*(shapes.get(i) for i in ins)) if len(ins) == 2 else None
              for k, ins in current.items()}
    seeds = []
    for e, ks in expands:
        name, source = graph.node[e].output[0], graph.node[e].input[0]
        trials = {k: [source if i == name else i for i in current[k]] for k in ks}
        if all(before[k] is not None and broadcast_shape(*(shapes.get(i) for i in trials[k])) == before[k]
               for k in ks):
            current.update(trials)
            seeds.append(e)
    for k, ins in current.items():
        graph.node[k].input[:] = ins
    _prune(graph, seeds)
    return len(seeds)


def simplify(model: onnx.ModelProto) -> dict[str, int]:
    """Both clean-ups, repeated until neither finds anything (a Cast may sit in front of or
    behind an Expand). In place; returns what was removed: ``{"casts": n, "expands": m}``."""
    done = {"casts": 0, "expands": 0}
    while True:
        casts = drop_half_casts(model)
        expands = drop_expands(model)
        done["casts"] += casts
        done["expands"] += expands
        if not casts and not expands:
            return done
