"""Where the function path's time goes at small N, and what a size switch on N would buy.

Issue 9 asks the function path to take at most 1.05x the time of ``torch.onnx.export``'s own
graph at N = 16 for 'mean' and 'sum'. benchmarks/cpu.py measures ~1.8x. This script says why,
by stage, and measures the one design that changes the node count at small N.

The float32 beta-1 body is taken as onnxruntime runs it: ``onnx_smoothl1.inline`` of
``make_model`` (the constant ``If`` nodes folded away; onnxruntime folds the same ones at
session creation). Each *stage* model is that node list cut after one tensor, with a single
``ReduceSum`` of the tensor as the output. These are the real nodes of the body, not a
re-creation of it, so the differences between rows are the cost of the stages:

- ``elements``: Sub, Abs and the four-op halved Huber element, then one plain ReduceSum: the
  floor of any body with these elements (and, as a sum, not accurate: a plain float32
  ReduceSum is off by ~1e-3 at 2^24);
- ``padded``: + the padding to a multiple of 4096 (Reshape, Shape, Mod, Sub,
  ConstantOfShape, Concat);
- ``blocked``: + the [1024, K, 4] view and its two ReduceSums (the 1024 partial sums);
- ``function``: the whole body: + the exact top (10 nodes), the doubling and the mean;
- ``elements + If``: ``elements`` with its ReduceSum inside an ``If`` on ``Size < T`` (both
  branches that one ReduceSum): what the switch's machinery alone costs, the floor of any
  body that switches on N with these elements;
- ``size switch``: the body with an ``If`` on ``Size(elements) < T``: below T one plain
  ReduceSum (times 2, divided by the count for 'mean': ReduceMean would give 0, not NaN, for an
  empty input in onnxruntime), otherwise the rest of the body. It is not in the function (see
  docs/benchmarks.md, "Small N"); this row measures what it would buy;
- ``pooled (not portable)``: the body with its padding and blocks replaced by one
  ``AveragePool`` (``auto_pad=SAME_UPPER``) feeding the same exact top: the fewest-node
  accurate body found without control flow, and what it would buy.

Each row runs round-robin with the plain torch.onnx graph, one pair at a time (one call each
per round), as benchmarks/cpu.py times the function path; the ratio is the median of
per-round ratios. "nodes" counts the nodes that run (Constant nodes
become initializers): the main graph, plus the taken branch for the switch.

``--eps`` runs the size-switch model on the parity runner's execution-provider paths instead
(ort-webgpu, ort-openvino-ep, placement checked as in ``onnx-smoothl1 parity``).

    python benchmarks/small_n.py [--log2 4 10] [--threshold 256] [--threads 2] [--budget 7]
    python benchmarks/small_n.py --eps
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from benchmarks.cpu import _paired_ratio, _plain_export_session, _round_robin  # noqa: E402

#: (row label, the body's tensor the stage ends with); None: the whole body.
STAGES = (("elements", "red_h_half_elem"), ("padded", "red_l1_padded"),
          ("blocked", "red_parts"), ("function", None))
#: The reduced branch's scale (the halved element is doubled after the sum).
SCALE = "red_elem_1"


def _base(name: str) -> str:
    """A value's name in the body, without the inliner's ``__<k>`` suffix."""
    return name.split("__")[0]


@functools.cache
def _body(reduction: str) -> onnx.ModelProto:
    """The inlined body (built once per reduction; callers copy it, never change it)."""
    import onnx_smoothl1 as sl1

    return sl1.inline(sl1.make_model(reduction=reduction, dtype="float32", beta=1.0))


def _find(model: onnx.ModelProto, tensor: str) -> tuple[int | None, str]:
    """(index of the node that makes ``tensor``, or None for an initializer; its full name)."""
    for i, node in enumerate(model.graph.node):
        for out in node.output:
            if _base(out) == tensor:
                return i, out
    for init in model.graph.initializer:
        if _base(init.name) == tensor:
            return None, init.name
    raise ValueError(f"the inlined body has no tensor {tensor!r}")


def _cut(reduction: str, tensor: str) -> tuple[onnx.ModelProto, list[onnx.NodeProto],
                                               list[onnx.NodeProto], str]:
    """The body, its nodes up to the one that makes ``tensor`` and those after, and the
    tensor's full name."""
    model = _body(reduction)
    index, name = _find(model, tensor)
    if index is None:
        raise ValueError(f"{tensor!r} is an initializer, not a stage of the body")
    nodes = list(model.graph.node)
    return model, nodes[: index + 1], nodes[index + 1:], name


def _with_nodes(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> onnx.ModelProto:
    """A copy of ``model`` with ``nodes`` as its graph and only the initializers they read (a
    cut body no longer reads the scale; onnxruntime warns about an unused initializer)."""
    import onnx_smoothl1 as sl1

    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    read = {name for node in sl1.spec.walk_nodes(out.graph.node) for name in node.input}
    kept = [init for init in out.graph.initializer if init.name in read]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    return out


def _running(nodes: list[onnx.NodeProto]) -> int:
    return sum(node.op_type != "Constant" for node in nodes)


def _loss(model: onnx.ModelProto) -> str:
    return model.graph.output[0].name


def _constant(name: str, dtype: int, dims: list[int], values: list) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name],
                            value=helper.make_tensor(name, dtype, dims, values))


def stage_model(reduction: str, tensor: str | None) -> tuple[onnx.ModelProto, int]:
    """The body cut after ``tensor`` plus one ReduceSum of it (the whole body for None), and
    the number of nodes that run."""
    if tensor is None:
        model = _body(reduction)
        return _with_nodes(model, list(model.graph.node)), _running(list(model.graph.node))
    model, nodes, _, name = _cut(reduction, tensor)
    nodes = [*nodes, helper.make_node("ReduceSum", [name], [_loss(model)], keepdims=0)]
    return _with_nodes(model, nodes), _running(nodes)


def _switched(model: onnx.ModelProto, outer: list[onnx.NodeProto], elem: str, threshold: int,
              small: list[onnx.NodeProto], large: list[onnx.NodeProto]) -> onnx.ModelProto:
    """``outer``, then ``If (Size(elem) < threshold)`` with the ``small`` / ``large`` branches
    (each ends in ``small_out`` / ``large_out``) giving the model's loss. ``small`` may read
    the size as ``switch_n``."""
    value = helper.make_tensor_value_info
    then_g = helper.make_graph(small, "small", [], [value("small_out", TensorProto.FLOAT, None)])
    else_g = helper.make_graph(large, "large", [], [value("large_out", TensorProto.FLOAT, None)])
    return _with_nodes(model, [
        *outer,
        helper.make_node("Size", [elem], ["switch_n"]),
        _constant("switch_t", TensorProto.INT64, [], [threshold]),
        helper.make_node("Less", ["switch_n", "switch_t"], ["switch_small"]),
        helper.make_node("If", ["switch_small"], [_loss(model)], then_branch=then_g,
                         else_branch=else_g),
    ])


#: The nodes the switch adds to the main graph (Size, Less, If; its Constant is folded).
SWITCH_NODES = 3


def switch_model(reduction: str, threshold: int) -> tuple[onnx.ModelProto, int, int]:
    """The body with an If on ``Size(elements) < threshold`` (see the module docstring), and
    the number of nodes that run below the threshold and from it on."""
    model, outer, rest, elem = _cut(reduction, STAGES[0][1])
    scale = _find(model, SCALE)[1]
    small = [helper.make_node("ReduceSum", [elem], ["small_sum"], keepdims=0)]
    if reduction == "mean":
        small += [helper.make_node("Mul", ["small_sum", scale], ["small_total"]),
                  helper.make_node("Cast", ["switch_n"], ["small_count"], to=TensorProto.FLOAT),
                  helper.make_node("Div", ["small_total", "small_count"], ["small_out"])]
    else:
        small.append(helper.make_node("Mul", ["small_sum", scale], ["small_out"]))
    large = [onnx.NodeProto.FromString(node.SerializeToString()) for node in rest]
    for node in large:
        node.output[:] = ["large_out" if out == _loss(model) else out for out in node.output]
    shared = _running(outer) + SWITCH_NODES
    return (_switched(model, outer, elem, threshold, small, large),
            shared + _running(small), shared + _running(large))


def if_floor_model(reduction: str, threshold: int) -> tuple[onnx.ModelProto, int]:
    """``elements`` with its one ReduceSum inside an If on ``Size < threshold`` whose two
    branches are that ReduceSum (the cost of the switch itself), and the nodes that run."""
    model, outer, _, elem = _cut(reduction, STAGES[0][1])
    small, large = ([helper.make_node("ReduceSum", [elem], [f"{tag}_out"], keepdims=0)]
                    for tag in ("small", "large"))
    return (_switched(model, outer, elem, threshold, small, large),
            _running(outer) + SWITCH_NODES + 1)


#: The pooled row's window: AveragePool's sums of this many neighbours feed the exact top.
POOL_WINDOW = 4
POOLED = "pooled (not portable)"


def pooled_model(reduction: str, window: int = POOL_WINDOW) -> tuple[onnx.ModelProto, int]:
    """The body with its padding and [1024, K, 4] blocks replaced by one ``AveragePool``
    (``auto_pad=SAME_UPPER``, ``count_include_pad=1``: the sums of each ``window``
    neighbours, the tail padded by the op itself, times the window again), whose N / window
    partial sums go to the body's own exact top; and the nodes that run.

    The fewest-node accurate body found so far: no Concat copy, no axis reductions. It is
    not in the function: onnx2torch does not convert ``SAME_UPPER``, onnxruntime's
    AveragePool rejects an empty input, and one level of it leaves the exact top more parts
    than it adds exactly at 2^26 (docs/benchmarks.md, "Small N").
    """
    # Up to the flat view's Shape ('mean' divides by it), then from the exact top on.
    model, head, _, _ = _cut(reduction, "red_l1_size")
    _, _, top, parts = _cut(reduction, "red_parts")
    flat = _find(model, "red_flat")[1]
    pool = [
        _constant("pool_shape", TensorProto.INT64, [3], [1, 1, -1]),
        helper.make_node("Reshape", [flat, "pool_shape"], ["pool_in"]),
        helper.make_node("AveragePool", ["pool_in"], ["pool_avg"], kernel_shape=[window],
                         strides=[window], auto_pad="SAME_UPPER", count_include_pad=1),
        _constant("pool_flat", TensorProto.INT64, [1], [-1]),
        helper.make_node("Reshape", ["pool_avg", "pool_flat"], ["pool_parts"]),
        _constant("pool_window", TensorProto.FLOAT, [], [float(window)]),
        helper.make_node("Mul", ["pool_parts", "pool_window"], [parts]),
    ]
    body = [*head, *pool, *top]
    return _with_nodes(model, body), _running(body)


def check_eps(threshold: int) -> None:
    """Run the size-switch model on the parity runner's execution-provider paths (ort-webgpu,
    ort-openvino-ep: placement proven as in ``parity``) below and above the threshold, and
    print what happened: the switch must not cost the function its EPs."""
    from onnx_smoothl1 import parity

    rng = np.random.default_rng(1)
    for path_type in parity.EP_PATHS:
        path = path_type()
        try:
            for reduction in ("mean", "sum"):
                model = switch_model(reduction, threshold)[0]
                for n in (16, 2 * threshold):
                    x = rng.standard_normal(n).astype(np.float32)
                    y = rng.standard_normal(n).astype(np.float32)
                    try:
                        out = path.run_model(model, {"input": x, "target": y})
                        what = f"ran, {float(out[0]):.6g}"
                    except Exception as exc:  # noqa: BLE001 - reported, that is the point
                        text = " ".join(str(exc).split())
                        if len(text) > 400:  # the cause is at the end of onnxruntime's text
                            text = f"{text[:150]} ... {text[-250:]}"
                        what = f"{type(exc).__name__}: {text}"
                    print(f"  {path.name} '{reduction}' N={n}: {what}")
        finally:
            path.close()


def _session(model: onnx.ModelProto, threads: int):
    """The function path's session, as benchmarks/cpu.py makes it (no custom-op library)."""
    import onnxruntime as ort

    import onnx_smoothl1 as sl1

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return sl1.inference_session(model, custom_op=False, options=options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2", type=int, nargs="+", default=[4, 10], help="sizes N = 2^k")
    parser.add_argument("--threshold", type=int, default=256,
                        help="the size switch's T (the small branch runs below it)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=7.0, help="seconds per (N, reduction)")
    parser.add_argument("--eps", action="store_true",
                        help="only run the size-switch model on the parity runner's EP paths")
    args = parser.parse_args(argv)
    if args.threshold < 1:
        parser.error(f"--threshold must be >= 1; got {args.threshold}")
    if any(k < 0 or k > 20 for k in args.log2):
        parser.error(f"--log2 takes sizes 2^0 .. 2^20; got {args.log2}")

    if args.eps:
        print(f"size switch (T={args.threshold}) on the execution-provider paths:")
        check_eps(args.threshold)
        return 0
    rng = np.random.default_rng(0)
    print(f"float32, beta 1, ORT CPU, {args.threads} threads; ratios: median per-round time / "
          f"the plain torch.onnx graph's in the same round (each row paired with it alone)")
    for reduction in ("mean", "sum"):
        plain, plain_names = _plain_export_session(reduction, args.threads)
        rows = [(label, *stage_model(reduction, tensor)) for label, tensor in STAGES]
        rows.insert(1, ("elements + If", *if_floor_model(reduction, args.threshold)))
        rows.append((POOLED, *pooled_model(reduction)))
        switch, below, from_t = switch_model(reduction, args.threshold)
        switch_label = f"size switch (T={args.threshold})"
        sessions = {label: _session(model, args.threads) for label, model, _ in rows}
        sessions[switch_label] = _session(switch, args.threads)
        for log2n in args.log2:
            n = 2**log2n
            x = rng.standard_normal(n).astype(np.float32)
            y = rng.standard_normal(n).astype(np.float32)
            feeds = {"input": x, "target": y}
            plain_feeds = dict(zip(plain_names, (x, y)))
            plain_call = {"plain": lambda p=plain, f=plain_feeds: p.run(None, f)}
            counts = {label: nodes for label, _, nodes in rows}
            counts[switch_label] = below if n < args.threshold else from_t
            reference = float(sessions["function"].run(None, feeds)[0])
            switched = float(sessions[switch_label].run(None, feeds)[0])
            pooled = float(sessions[POOLED].run(None, feeds)[0])
            print(f"\nN=2^{log2n} '{reduction}':")
            print(f"  {'body':<24} {'nodes':>5} {'us/call':>8} {'plain us':>8} {'/ plain':>8}")
            for label, session in sessions.items():
                # One pair at a time, as benchmarks/cpu.py times function and plain: in a
                # round of all rows, the call after the function's runs ~10% slower.
                calls = {label: lambda s=session, f=feeds: s.run(None, f), **plain_call}
                samples: dict = {}
                medians = _round_robin(calls, min_reps=200, max_reps=100_000,
                                       budget=args.budget / len(sessions), samples=samples)
                print(f"  {label:<24} {counts[label]:>5} {medians[label] * 1e6:>8.1f} "
                      f"{medians['plain'] * 1e6:>8.1f} {_paired_ratio(samples, label, 'plain'):>7.2f}x")
            for label, value in (("size switch", switched), ("pooled body", pooled)):
                print(f"  {label}'s loss vs the function's: relative difference "
                      f"{abs(value - reference) / abs(reference):.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
