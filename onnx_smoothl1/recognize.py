"""Find hand-written smooth-L1 / Huber / L1 losses by what they compute, and prove it.

Detection, RL and Keras-port code rarely calls ``F.smooth_l1_loss``; it writes the formula
by hand, in many shapes: ``0.5 * d * d / beta``, ``n ** 2 / (2 * beta)``, a ``Min``/``Clip``
Huber (``q = min(|d|, δ); 0.5 q² + δ (|d| - q)``), Keras 3's ``LessOrEqual`` with the
signed difference squared, the σ-form selected by a float mask ``Cast(Less)``... One op
pattern per spelling cannot keep up (``fuse`` had 88 rewrite rules for torch's own
decompositions and found none of these), so this module recognises the loss by meaning, and
torch's decompositions are just more spellings:

1. **Regions.** Every ``Sub(a, b)`` of two non-constant float tensors is a candidate
   difference ``d``. The region is the set of element-wise nodes (``ELEMENTWISE``) that
   read only ``d`` (or ``Sub(b, a)`` = ``-d``), values already in the region and scalar
   constants; so every value in it is a function of ``d`` alone, element by element.
   Growing it is linear in its size, and a region with nothing that can make a kink
   (``Abs``, ``Sqrt``, a comparison, ``Min``/``Max``/``Clip``/``Relu``) is dropped before
   anything is evaluated: a 10,000-node network without losses is not probed node by node.
2. **Candidates** for the threshold β are read from the region's constants (``β``,
   ``1/σ²``, ``δ``; also their square roots, for thresholds on ``d²``) and the scale ``c``
   is 1, β (Huber = β·SmoothL1(β)) or the one the probes imply.
3. **Proof.** The region is evaluated in numpy on probe values of ``d``: zero, both signs,
   both sides of and exactly at each candidate threshold (and one ulp either side), tiny,
   huge, random magnitudes, ``±inf`` and NaN; twice: exactly (long double, constants as
   stored, no rounding between ops) and in the model's element type. A value is
   ``c·SmoothL1(β)`` (``c·L1`` for β = 0) when on every ordinary probe the exact value is
   within ``EXACT_ROUNDOFFS`` (1.5) unit roundoffs of the formula, relatively: what rounding
   one constant to the type can do (``0.5/β``, ``0.5·σ²``), less than a constant one ulp off
   (2u). A correct formula its own arithmetic computes poorly (chainer's Huber
   ``0.5(d² − [d² > δ²](|d| − δ)²)`` cancels at large d) is that loss: the node computes it
   correctly rounded, torch's value. At huge or infinite ``d`` the model's own arithmetic
   decides: a hand-written form may overflow (``0 · inf`` of a float mask, ``sqrt(d·d)``)
   and give inf/NaN, but never a different finite number; a NaN in must give NaN.
   Equality on the probes, together with the structure (element-wise, one difference,
   scalar constants), is the proof; only then is anything replaced.

What is replaced, and what stays:

* The matched value becomes one ``SmoothL1Loss(beta)`` (c = 1) or ``HuberLoss(delta)``
  (c = β) node on ``a``, ``b``; any other ``c`` stays as a ``Mul`` by ``c`` after the node.
  When both an inner value (c = 1) and an outer one (``loss_weight * loss``) match, the
  inner one is taken and the user's ``Mul`` stays as written.
* A ``ReduceMean``/``ReduceSum`` over all axes that reads the value (and nothing else
  does) folds into the node's reduction; one over some axes stays after a 'none' node.
  A data-dependent weight (a quantile Huber's ``|τ - 1(u < 0)|``) is outside the region's
  match and stays; the Huber core under it becomes a 'none' node.
* L1 (``|d|``) is taken only under ``fuse``'s ``l1`` setting ("reduced": a full reduction
  must read it directly), since ``|a - b|`` is common outside losses.
* β must be exactly representable in float32 (the node's FLOAT attribute): for float32 and
  half models the graph's own constant always is; a float64 model's ``1/9`` is not, and
  that loss is left as it is.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np

from . import spec

#: The ops a region may contain (main ONNX domain): element-wise, one output.
ELEMENTWISE = frozenset({
    "Sub", "Add", "Mul", "Div", "Pow", "Abs", "Neg", "Min", "Max", "Clip", "Relu", "Sqrt",
    "Reciprocal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Equal", "Not", "And",
    "Or", "Where", "Cast", "Identity", "Sign",
})
#: A region without one of these is smooth or linear in d everywhere: no loss can be in it.
_KINKS = frozenset({"Abs", "Sqrt", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Min",
                    "Max", "Clip", "Relu"})
_FLOATS = ("FLOAT16", "BFLOAT16", "FLOAT", "DOUBLE")
#: On the extreme probes (huge, infinite d), where the model's own arithmetic decides: a
#: finite result must be within this many units in the last place of its type.
ULPS = 4
#: Agreement required of the exact (unrounded) evaluation, relative, in unit roundoffs u of
#: the model's type: a constant rounded to the type (``0.5/β``, ``0.5·σ²``) moves the function
#: by at most u; a constant one ulp off (2u) or a slope 1 + 1e-7 (1.7u) is another function.
EXACT_ROUNDOFFS = 1.5


@dataclass(frozen=True)
class Found:
    """One recognised loss: the value it replaces, and the node that replaces it."""

    value: Any  # ir.Value: the matched per-element loss (before any folded reduction)
    x: Any  # ir.Value: the two loss inputs, a and b of the difference
    y: Any
    op_type: str  # spec.OP_TYPE or spec.HUBER_OP_TYPE
    param: float  # beta or delta
    scale: float  # c: 1.0 when the node alone is the value
    reduction: str  # "none", "mean" or "sum"
    replaces: Any  # ir.Value: what the node's (scaled) output takes the place of


# --- constants ---------------------------------------------------------------------------


@dataclass
class _Constants:
    """The numpy value of every constant value, computed once per model (memoised)."""

    cache: dict[int, np.ndarray | None] = field(default_factory=dict)

    def get(self, value: Any) -> np.ndarray | None:
        if value is None:
            return None
        # Depth-first with an explicit stack: a constant may be computed through thousands
        # of nodes, deeper than Python's recursion limit.
        stack = [value]
        while stack:
            top = stack[-1]
            if id(top) in self.cache:
                stack.pop()
                continue
            pending = [v for v in self._foldable_inputs(top) if id(v) not in self.cache]
            if pending:
                stack.extend(pending)
                continue
            self.cache[id(top)] = self._compute(top)
            stack.pop()
        return self.cache[id(value)]

    @staticmethod
    def _foldable_inputs(value: Any) -> list[Any]:
        producer = value.producer()
        if value.is_graph_input() or producer is None or producer.op_type == "Constant":
            return []
        if producer.domain not in ("", "ai.onnx") or producer.op_type not in ELEMENTWISE:
            return []
        return [v for v in producer.inputs if v is not None]

    def _compute(self, value: Any) -> np.ndarray | None:
        """``value``'s array, its producer's inputs already in the cache."""
        from onnx_ir import convenience

        if value.is_graph_input():
            return None
        producer = value.producer()
        if producer is None or producer.op_type == "Constant":
            tensor = convenience.get_const_tensor(value)
            if tensor is None:
                return None
            try:
                return np.asarray(tensor.numpy())
            except Exception:  # noqa: BLE001 - external data not at hand: not a constant here
                return None
        if producer.domain not in ("", "ai.onnx") or producer.op_type not in ELEMENTWISE:
            return None
        if len(producer.outputs) != 1:
            return None
        args = [self.cache[id(v)] if v is not None else None for v in producer.inputs]
        if any(a is None and v is not None for a, v in zip(args, producer.inputs)):
            return None
        if any(a is not None and a.size > 16 for a in args):
            return None  # only small constants are folded here
        try:
            return _evaluate(producer, args)
        except Exception:  # noqa: BLE001 - anything numpy refuses is simply not a constant
            return None


# --- numpy semantics of the element-wise ops ---------------------------------------------


def _np_type(onnx_type: int) -> Any:
    from onnx_ir import DataType

    return DataType(onnx_type).numpy()


def _arith(fn: Callable[[Any, Any], Any]) -> Callable[[Any, list[Any]], Any]:
    def run(node: Any, args: list[Any]) -> Any:
        a, b = args
        return np.asarray(fn(a, b)).astype(a.dtype, copy=False)

    return run


def _pow(node: Any, args: list[Any]) -> Any:
    a, b = args
    # Correctly rounded like the runtimes' pow for the exponents seen here (2, 0.5, ...).
    return np.power(_wide(a), _wide(b)).astype(a.dtype)


def _wide(a: np.ndarray) -> np.ndarray:
    """``a`` in long double (exact for every float type here; bfloat16 goes via float64)."""
    return np.asarray(a).astype(np.float64).astype(np.longdouble) if a.dtype != np.longdouble else a


def _clip(node: Any, args: list[Any]) -> Any:
    out = args[0]
    if len(args) > 1 and args[1] is not None:
        out = np.maximum(out, args[1].astype(out.dtype))
    if len(args) > 2 and args[2] is not None:
        out = np.minimum(out, args[2].astype(out.dtype))
    return np.asarray(out).astype(args[0].dtype, copy=False)


def _variadic(fn: Callable[[Any, Any], Any]) -> Callable[[Any, list[Any]], Any]:
    def run(node: Any, args: list[Any]) -> Any:
        out = args[0]
        for other in args[1:]:
            out = fn(out, other)
        return np.asarray(out).astype(args[0].dtype, copy=False)

    return run


def _cast(node: Any, args: list[Any]) -> Any:
    to = node.attributes.get_int("to", 0)
    if node.attributes.get_int("saturate", 1) != 1:
        raise ValueError("Cast with saturate=0")
    return np.asarray(args[0]).astype(_np_type(to))


def _where(node: Any, args: list[Any]) -> Any:
    c, a, b = args
    return np.where(c.astype(bool), a, b).astype(a.dtype, copy=False)


_OPS: dict[str, Callable[[Any, list[Any]], Any]] = {
    "Sub": _arith(np.subtract),
    "Add": _arith(np.add),
    "Mul": _arith(np.multiply),
    "Div": _arith(np.divide),
    "Pow": _pow,
    "Abs": lambda n, a: np.abs(a[0]),
    "Neg": lambda n, a: np.negative(a[0]),
    "Sqrt": lambda n, a: np.sqrt(a[0]),
    "Reciprocal": lambda n, a: (np.asarray(1, a[0].dtype) / a[0]).astype(a[0].dtype),
    "Relu": lambda n, a: np.maximum(a[0], np.asarray(0, a[0].dtype)),
    "Sign": lambda n, a: np.sign(a[0]),
    "Min": _variadic(np.minimum),
    "Max": _variadic(np.maximum),
    "Clip": _clip,
    "Less": lambda n, a: np.less(*a),
    "LessOrEqual": lambda n, a: np.less_equal(*a),
    "Greater": lambda n, a: np.greater(*a),
    "GreaterOrEqual": lambda n, a: np.greater_equal(*a),
    "Equal": lambda n, a: np.equal(*a),
    "Not": lambda n, a: np.logical_not(a[0]),
    "And": lambda n, a: np.logical_and(*a),
    "Or": lambda n, a: np.logical_or(*a),
    "Where": _where,
    "Cast": _cast,
    "Identity": lambda n, a: a[0],
}


def _evaluate(node: Any, args: list[Any]) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(_OPS[node.op_type](node, args))


# --- regions ------------------------------------------------------------------------------


@dataclass
class _Region:
    """The element-wise nodes that compute from one difference ``a - b`` alone."""

    a: Any
    b: Any
    signs: dict[Any, int]  # each Sub output of the pair -> +1 (a - b) or -1 (b - a)
    nodes: list[Any]  # in graph order
    scalars: dict[int, np.ndarray]  # id(value) -> the scalar constant read by a region node


def _float_type(value: Any) -> str | None:
    dtype = value.dtype if value is not None else None
    return dtype.name if dtype is not None and dtype.name in _FLOATS else None


def _is_scalar(array: np.ndarray | None) -> bool:
    return array is not None and array.size == 1 and array.ndim <= 1


def _anchors(graph: Any, consts: _Constants) -> list[tuple[Any, Any, list[Any]]]:
    """``(a, b, [Sub nodes])`` for each unordered pair of non-constant float tensors that
    some ``Sub`` subtracts (torch's legacy exporter may write ``a - b`` twice)."""
    pairs: dict[tuple[int, int], tuple[Any, Any, list[Any]]] = {}
    for node in graph:
        if node.op_type != "Sub" or node.domain not in ("", "ai.onnx") or len(node.inputs) != 2:
            continue
        a, b = node.inputs
        if a is None or b is None or a is b or _float_type(a) is None or a.dtype != b.dtype:
            continue
        if consts.get(a) is not None or consts.get(b) is not None:
            continue
        key = (id(a), id(b)) if id(a) < id(b) else (id(b), id(a))
        pairs.setdefault(key, (a, b, []))[2].append(node)
    return list(pairs.values())


def _region(a: Any, b: Any, subs: list[Any], order: dict[int, int], consts: _Constants) -> _Region:
    signs = {sub.outputs[0]: (1 if sub.inputs[0] is a else -1) for sub in subs}
    inside: set[int] = {id(v) for v in signs}
    first = next(iter(signs))
    rank = len(first.shape) if first.shape is not None else None
    scalars: dict[int, np.ndarray] = {}
    nodes: list[Any] = []
    heap: list[tuple[int, int, Any]] = []
    seen: set[int] = set()

    def push_consumers(value: Any) -> None:
        for use in value.uses():
            node = use.node
            if id(node) in seen or node.op_type not in ELEMENTWISE or node.domain not in ("", "ai.onnx"):
                continue
            if id(node) not in order or len(node.outputs) != 1:
                continue  # a subgraph's node, or a multi-output one
            seen.add(id(node))
            heapq.heappush(heap, (order[id(node)], id(node), node))

    for value in signs:
        push_consumers(value)
    while heap:
        _, _, node = heapq.heappop(heap)
        ok, reads_region = True, False
        for value in node.inputs:
            if value is None:
                continue
            if id(value) in inside:
                reads_region = True
                continue
            const = consts.get(value)
            if not _is_scalar(const):
                ok = False
                break
            assert const is not None
            if const.ndim > 0 and (rank is None or rank < const.ndim):
                ok = False  # a [1] constant would broadcast a rank-0 difference up
                break
            scalars[id(value)] = const
        if ok and reads_region:
            nodes.append(node)
            inside.add(id(node.outputs[0]))
            push_consumers(node.outputs[0])
        else:
            seen.discard(id(node))  # may be reached again once its other input is inside
    return _Region(a, b, signs, nodes, scalars)


# --- probes -------------------------------------------------------------------------------


def _thresholds(region: _Region) -> list[float]:
    """Candidate β (δ) values from the region's constants: each positive finite one and its
    square root (a threshold on ``d²``), kept when float32 holds it exactly."""
    found: set[float] = set()
    for array in region.scalars.values():
        if not _is_float(array.dtype):
            continue
        v = abs(float(array.reshape(-1)[0]))
        if not math.isfinite(v) or v == 0.0:
            continue
        for cand in (v, math.sqrt(v)):
            if float(np.float32(cand)) == cand:
                found.add(cand)
    return sorted(found)


@functools.lru_cache(maxsize=256)
def _probes(thresholds: tuple[float, ...], dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """(ordinary, extreme) probe values of ``d`` in ``dtype``, both signs (cached: the
    layers of one network repeat the same constants)."""
    info = ml_dtypes.finfo(dtype)
    base = [0.0, float(info.tiny), float(info.tiny) * 3, 1e-8, 1e-4, 1e-3, 0.01, 0.1, 0.25, 0.3, 0.5,
            0.7, 1.0, 1.5, 2.0, 3.0, 7.0, 10.0, 33.0, 100.0, 1000.0]
    for t in thresholds:
        tt = np.asarray(t, dtype)
        base += [t, float(np.nextafter(tt, np.asarray(0, dtype))), float(np.nextafter(tt, np.asarray(np.inf, dtype)))]
        base += [t * k for k in (0.01, 0.1, 0.25, 0.5, 0.75, 0.999, 1.001, 1.25, 1.5, 2.0, 3.0, 4.0, 10.0, 100.0)]
    rng = np.random.default_rng(20261204)
    base += list(10.0 ** rng.uniform(-4, 4, 48))
    limit = float(info.max) ** 0.5 / 4  # a square times a small constant stays finite below this
    ordinary = np.asarray([v for v in base if abs(v) <= limit], dtype=np.float64)
    ordinary = np.concatenate([ordinary, -ordinary]).astype(dtype)
    extreme = np.asarray([limit * 8, float(info.max) ** 0.75, float(info.max), np.inf], np.float64)
    extreme = np.concatenate([extreme, -extreme, [np.nan]]).astype(dtype)
    return ordinary, extreme


def _run_region(region: _Region, d: np.ndarray) -> dict[int, np.ndarray]:
    """Every region value at the probes ``d``: in the model's type (its own arithmetic), or,
    for a long-double ``d``, exactly as written (constants as stored, no rounding between ops,
    Casts to float types skipped)."""
    exact = d.dtype == np.longdouble
    values: dict[int, np.ndarray] = {id(v): (d if s > 0 else -d) for v, s in region.signs.items()}
    for node in region.nodes:
        args: list[np.ndarray | None] = []
        for value in node.inputs:
            if value is None:
                args.append(None)
            elif id(value) in values:
                args.append(values[id(value)])
            else:
                const = region.scalars[id(value)].reshape(())
                args.append(_wide(const) if exact and _is_float(const.dtype) else const)
        if exact and node.op_type == "Cast" and _is_float(_np_type(node.attributes.get_int("to", 0))):
            values[id(node.outputs[0])] = _wide(np.asarray(args[0]))  # exact: no rounding
            continue
        values[id(node.outputs[0])] = _evaluate(node, args)
    return values


def _is_float(dtype: Any) -> bool:
    return np.dtype(dtype).kind == "f" or np.dtype(dtype) == ml_dtypes.bfloat16


def _formula(d: np.ndarray, beta: float) -> np.ndarray:
    """SmoothL1(β)(d) in long double (L1 for β = 0)."""
    n = np.abs(_wide(d))
    if beta == 0.0:
        return n
    with np.errstate(all="ignore"):
        return np.where(n < beta, 0.5 * n * n / beta, n - 0.5 * beta)


def _agrees(got: np.ndarray, want64: np.ndarray, dtype: Any) -> np.ndarray:
    """Element-wise: ``got`` (in dtype) is within ULPS of ``want64`` rounded to dtype."""
    info = ml_dtypes.finfo(dtype)
    with np.errstate(all="ignore"):
        want = want64.astype(dtype)
        g, w = got.astype(np.float64), want.astype(np.float64)
        exponent = np.floor(np.log2(np.abs(w)))
        ulp = np.maximum(2.0 ** (exponent - info.nmant), float(info.smallest_subnormal))
        close = np.abs(g - w) <= ULPS * ulp
    same_special = (np.isnan(g) & np.isnan(w)) | (np.isinf(g) & (g == w))
    return close | same_special


def _fits(got: np.ndarray, exact: np.ndarray, scale: float, base: np.ndarray, n: int, dtype: Any) -> bool:
    """Whether the region value is ``scale``·SmoothL1(``beta``) (``base`` = SmoothL1(β) at
    the probes, the first ``n`` ordinary).

    On the ordinary probes the test is on ``exact``, the same ops without rounding and the
    constants as stored: within EXACT_ROUNDOFFS unit roundoffs of the formula, relatively.
    That tells a formula from one whose constant is an ulp off (the model's own arithmetic
    may round both to nearly the same numbers), and it accepts a correct formula that its
    own arithmetic computes poorly (chainer's Huber ``0.5(d² − [d² > δ²](|d| − δ)²)``
    cancels at large d; the node computes it correctly rounded: torch's value).
    On the extreme probes ``got``, the model's own arithmetic, decides: overflow (``0·inf``
    of a float mask, ``sqrt(d·d)``) is tolerated, a different finite number is not, and NaN
    in must give NaN out."""
    with np.errstate(all="ignore"):
        want = scale * base
        u = 2.0 ** -(ml_dtypes.finfo(dtype).nmant + 1)
        err = np.abs(exact[:n] - want[:n])
        if not (err <= EXACT_ROUNDOFFS * u * np.abs(want[:n])).all():
            return False
    ok = _agrees(got[n:], want[n:], dtype)
    g = got[n:].astype(np.float64)
    return bool((ok | ~np.isfinite(g)).all() and np.isnan(g[-1]))


def _scales(got: np.ndarray, beta: float, base: np.ndarray, dtype: Any) -> list[float]:
    """c to try: 1, β (Huber), and the ratio the largest ordinary probe implies (``got``:
    the exact evaluation there)."""
    out = [1.0]
    if beta > 0:
        out.append(beta)
    k = int(np.argmax(np.where(np.isfinite(base), base, -1)))
    if base[k] > 0 and np.isfinite(got[k]):
        implied = float(np.asarray(float(got[k]) / float(base[k]), dtype))
        # An implied c next to 1 or β is not a scale someone wrote: it would only stretch the
        # tolerance (a coefficient 2u off matched as c = 1 - u).
        u = 2.0 ** -(ml_dtypes.finfo(dtype).nmant + 1)
        if implied > 0 and all(abs(implied - c) > 8 * u * c for c in out):
            out.append(implied)
    return out


def _match(got: np.ndarray, exact: np.ndarray, bases: dict[float, np.ndarray], n: int, dtype: Any,
           allow_l1: bool) -> tuple[float, float] | None:
    """``(β, c)`` when the value (``got`` in the model's arithmetic, ``exact`` unrounded) is
    c·SmoothL1(β) on the probes (β = 0: c·L1), else None.
    ``bases``: SmoothL1(β) at the probes for each candidate β; the first ``n`` are ordinary."""
    # Necessary for any c > 0: zero at d = 0 (the first probe), non-negative and even.
    # Cheap, and it turns away nearly every value that is not a loss before any fitting.
    with np.errstate(all="ignore"):
        g = exact[:n].astype(np.float64)
        half = n // 2
        if g[0] != 0 or not (g >= 0).all() or not np.allclose(g[:half], g[half:], rtol=1e-2, atol=0):
            return None
    for beta, base in bases.items():
        if beta == 0.0 and not allow_l1:
            continue
        for scale in _scales(exact[:n], beta, base[:n], dtype):
            if _fits(got, exact, scale, base, n, dtype):
                return beta, scale
    return None


# --- reductions ---------------------------------------------------------------------------


def _covers_all(axes_value: Any, rank: int | None, consts: _Constants) -> bool:
    """Whether an ``axes`` input names every axis of a rank-``rank`` tensor."""
    axes = consts.get(axes_value)
    if axes is None or rank is None:
        return False
    return sorted({int(a) % max(rank, 1) for a in axes.reshape(-1)}) == list(range(rank))


def _sole_reader(value: Any, op_type: str) -> Any:
    """The one node reading ``value`` when it is a main-domain ``op_type`` and ``value`` is
    not also a graph output, else None."""
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output():
        return None
    node = uses[0].node
    return node if node.op_type == op_type and node.domain in ("", "ai.onnx") else None


def _full_reduction(value: Any, consts: _Constants, *, sole: bool) -> tuple[str, Any] | None:
    """``(reduction, the scalar value it produces)`` for a reader of ``value`` that is a
    ReduceMean/ReduceSum over all its axes giving a rank-0 result (keepdims=0, or keepdims=1
    then a Squeeze of every axis), else None. ``sole``: it must be the only reader.

    A float16/bfloat16 ``value`` may be reduced in float32 between two Casts (torch's
    op math for half-type reductions): the node does that itself (computes in float32,
    accumulates at least as wide, rounds once), so the whole chain folds."""
    uses = list(value.uses())
    if sole and (len(uses) != 1 or value.is_graph_output()):
        return None
    rank = len(value.shape) if value.shape is not None else None
    half = value.dtype is not None and value.dtype.name in ("FLOAT16", "BFLOAT16")
    for use in uses:
        node, widened = use.node, False
        if half and node.op_type == "Cast" and node.domain in ("", "ai.onnx") \
                and node.attributes.get_int("to", 0) == 1:  # FLOAT
            node = _sole_reader(node.outputs[0], "ReduceSum") or _sole_reader(node.outputs[0], "ReduceMean")
            widened = True
            if node is None:
                continue
        if node.domain not in ("", "ai.onnx") or node.op_type not in ("ReduceMean", "ReduceSum"):
            continue
        if node.attributes.get_int("noop_with_empty_axes", 0) != 0 or "axes" in node.attributes:
            continue
        if len(node.inputs) > 1 and node.inputs[1] is not None and not _covers_all(node.inputs[1], rank, consts):
            continue
        reduction = "mean" if node.op_type == "ReduceMean" else "sum"
        out = node.outputs[0]
        if node.attributes.get_int("keepdims", 1) != 0:
            squeeze = _sole_reader(out, "Squeeze")
            if squeeze is None:
                continue
            axes = squeeze.inputs[1] if len(squeeze.inputs) > 1 else None
            if axes is not None and not _covers_all(axes, rank, consts):
                continue
            out = squeeze.outputs[0]
        if widened:
            back = _sole_reader(out, "Cast")
            if back is None or back.outputs[0].dtype != value.dtype:
                continue
            out = back.outputs[0]
        return reduction, out
    return None


# --- the search ---------------------------------------------------------------------------


def _cone(value: Any, region_ids: set[int]) -> set[int]:
    """The region values ``value`` is computed from (itself included)."""
    out: set[int] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if id(v) in out or id(v) not in region_ids:
            continue
        out.add(id(v))
        node = v.producer()
        if node is not None:
            stack.extend(i for i in node.inputs if i is not None)
    return out


def find(graph: Any, *, l1: str = "reduced") -> list[Found]:
    """The losses in ``graph``'s (an onnx_ir Graph) main node list, proven by probes; the
    graph is not changed. ``l1``: as for :func:`onnx_smoothl1.fuse`."""
    consts = _Constants()
    order = {id(node): k for k, node in enumerate(graph)}
    found: list[Found] = []
    for a, b, subs in _anchors(graph, consts):
        region = _region(a, b, subs, order, consts)
        if not any(n.op_type in _KINKS for n in region.nodes):
            continue
        found.extend(_search_region(region, consts, l1))
    return found


def _search_region(region: _Region, consts: _Constants, l1: str) -> Iterable[Found]:
    dtype = region.a.dtype.numpy()
    thresholds = _thresholds(region)
    probes = _probes(tuple(thresholds), dtype)
    d = np.concatenate(probes)
    try:
        values = _run_region(region, d)
        exact = _run_region(region, _wide(d))
    except Exception:  # noqa: BLE001 - an op numpy cannot evaluate as written: no proof, no match
        return []
    region_ids = {id(v) for v in region.signs} | {id(n.outputs[0]) for n in region.nodes}
    with np.errstate(all="ignore"):
        bases = {beta: _formula(d, beta) for beta in [*thresholds, 0.0]}
    candidates = []
    for position, node in enumerate(region.nodes):
        value = node.outputs[0]
        got = values[id(value)]
        if value.dtype != region.a.dtype or got.dtype != dtype or got.shape != d.shape:
            continue
        allow_l1 = l1 == "all" or (l1 == "reduced" and _full_reduction(value, consts, sole=False) is not None)
        fit = _match(got, exact[id(value)], bases, len(probes[0]), dtype, allow_l1=allow_l1)
        if fit is None:
            continue
        beta, scale = fit
        # Prefer a smooth loss over L1, the node alone (c = 1, or Huber's c = β) over a
        # scaled one, then the outer value.
        candidates.append(((beta > 0, scale in (1.0, beta), position), value, beta, scale))
    taken: list[Found] = []
    cones: list[tuple[Any, set[int]]] = []
    for _, value, beta, scale in sorted(candidates, key=lambda c: c[0], reverse=True):
        cone = _cone(value, region_ids)
        if beta == 0.0:
            # L1 (|d|, also the first step of every smooth loss): its full reduction, or in
            # l1="all" the value itself unless only a taken loss reads it (then it goes).
            reduced = _full_reduction(value, consts, sole=False)
            if reduced is None and all(any(id(o) in c for o in u.node.outputs for _, c in cones)
                                       for u in value.uses()) and not value.is_graph_output():
                continue
        else:
            # A match inside a taken one, or containing one, is not taken as well.
            if any(id(value) in other or id(other_value) in cone for other_value, other in cones):
                continue
            reduced = _full_reduction(value, consts, sole=True)
        op_type = spec.OP_TYPE
        if beta > 0 and scale == beta and (scale != 1.0 or _huber_shaped(cone, region)):
            op_type, scale = spec.HUBER_OP_TYPE, 1.0
        red, replaces = reduced if reduced is not None else ("none", value)
        taken.append(Found(value, region.a, region.b, op_type, beta, scale, red, replaces))
        cones.append((value, cone))
    return taken


def _huber_shaped(cone: set[int], region: _Region) -> bool:
    """For β = δ = 1, where SmoothL1Loss and HuberLoss are one function: whether the formula
    is written as torch's huber (``(d * 0.5) * d``, no ``Pow``, no division by β), so
    ``F.huber_loss(delta=1)`` comes back as the HuberLoss it was."""
    ops = {n.op_type for n in region.nodes if id(n.outputs[0]) in cone}
    return not ops & {"Pow", "Div", "Reciprocal"}


def foldable(graph: Any) -> list[Found]:
    """Loss nodes already in ``graph`` with reduction 'none' whose only reader is a full
    mean/sum (``F.l1_loss(reduction='none').sum()``): the node's own reduction does that
    (and sums accurately), so :func:`replace` can put a reducing node in their place."""
    consts = _Constants()
    out = []
    for node in graph:
        if node.domain != spec.DOMAIN or node.op_type not in spec.LOSS_PARAMS or len(node.inputs) != 2:
            continue
        reduction = node.attributes.get_string("reduction", spec.DEFAULT_REDUCTION)
        if reduction != "none":
            continue
        folded = _full_reduction(node.outputs[0], consts, sole=True)
        if folded is None:
            continue
        param = node.attributes.get_float(spec.LOSS_PARAMS[node.op_type], 1.0)
        out.append(Found(node.outputs[0], node.inputs[0], node.inputs[1], node.op_type, param, 1.0, *folded))
    return out


# --- the rewrite --------------------------------------------------------------------------


def replace(graph: Any, found: Sequence[Found]) -> int:
    """Put one loss node (and a ``Mul`` by c where c is not 1) in place of each found loss.

    The nodes the loss made redundant are left for a dead-node pass to remove. Returns how
    many were replaced."""
    import onnx_ir as ir
    from onnx_ir import Value, convenience, tensor

    for item in found:
        anchor = item.replaces.producer()
        attrs = {spec.LOSS_PARAMS[item.op_type]: float(item.param), "reduction": item.reduction}
        node = _ir_node(item.op_type, [item.x, item.y], attrs)
        new_nodes = [node]
        out: Value = node.outputs[0]
        if item.scale != 1.0:
            c = tensor(np.asarray(item.scale, dtype=item.x.dtype.numpy()), name=f"{out.name or 'loss'}_scale")
            const = _ir_node("Constant", [], {"value": c})
            mul = _ir_node("Mul", [out, const.outputs[0]], {})
            new_nodes += [const, mul]
            out = mul.outputs[0]
        out.dtype = item.replaces.dtype
        # A reduced loss is rank 0 whatever the graph declared (an undeclared shape would
        # fail the checker's function inference once the node is there).
        out.shape = ir.Shape([]) if item.reduction != "none" else item.replaces.shape
        anchor.graph.insert_after(anchor, new_nodes)
        name = item.replaces.name
        was_output = item.replaces.is_graph_output()
        convenience.replace_all_uses_with(item.replaces, out, replace_graph_outputs=True)
        if was_output:
            item.replaces.name = f"{name}__unfused"
        out.name = name
    return len(found)


def _ir_node(op_type: str, inputs: list[Any], attrs: dict[str, Any]) -> Any:
    import onnx_ir as ir

    domain = spec.DOMAIN if op_type in spec.LOSS_PARAMS else ""
    return ir.node(op_type, inputs, attrs, domain=domain)
