"""Issue 24's corpus table: for each hand-written loss (tests/fuse_corpus.py) and exporter,
the loss nodes `fuse` and `export` find against those expected, the main-graph node counts
before/after `fuse`, whether the fused outputs pass the test's check; the totals; and the time
of `fuse` on a generated 10,000-node model that holds no loss. Markdown to stdout (the section
"Hand-written losses: the corpus" of docs/export.md is a copy).

    python benchmarks/fuse_corpus.py            # 4-6 min on 2 busy cores (torch's dynamo export dominates)
    python benchmarks/fuse_corpus.py --no-export  # without the export() column: about half
    python benchmarks/fuse_corpus.py --big-only # the 10,000-node timing alone

Why the big model looks as it does: a recognizer that tries every `Sub`/`Abs`/`Where` as a loss
candidate is slow exactly on transformer-like graphs, which are full of them (LayerNorm's
centring `Sub`, GELU's `Mul`s, residual `Add`s), so the model stacks such blocks and adds, per
block, the shapes a loss starts from without being one: a clipped residual
`Where(Less(|d|, 1), 0.5*d, d)`, a partial `ReduceMean(|a - b|)` over the last axis, and every
tenth block a smooth-L1 with the wrong offset (`d - beta`) under a full mean.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import test_fuse_corpus as tc  # noqa: E402  (the export/fuse/check helpers live with the tests)

# tests/fuse_corpus.py, the data: this script shares its file name, so it is neither imported by
# name here nor visible to mypy as that module when this file is checked (hence Any).
fc: Any = tc.fc

import onnx_smoothl1 as sl1  # noqa: E402


def esc(text: str) -> str:
    """A Markdown table cell: a literal | (|a - b|, none|sum) would end the cell."""
    return text.replace("|", "\\|")


def cell(expected, found) -> str:
    hit = fc.matched(expected, found)
    extra = len(found) - hit
    text = f"{hit}/{len(expected)}"
    if extra:
        text += f" +{extra} " + tc.describe(found)
    elif hit < len(expected) and found:
        text += " " + tc.describe(found)
    return text


def ulp_note(case, original: bytes, model: bytes) -> str:
    """The largest |fused - original| in ulps of the original over the random and edge batches
    (finite elements), when fuse changed anything: how close "one rounding" is in practice."""
    if original == model:
        return ""
    worst = 0.0
    for batch in ("random", "edge"):
        x, t = fc.inputs(case, batch, seed=3)
        want, got = tc._run(original, x, t, None), tc._run(model, x, t, False)
        o, g = want.astype(np.float64), got.astype(np.float64)
        fin = np.isfinite(o) & np.isfinite(g)
        if fin.any():
            worst = max(worst, float((np.abs(g[fin] - o[fin]) / tc._ulp(o[fin], case.dtype)).max()))
    return f" ({worst:.0f} ulp)"


def corpus_rows(with_export: bool = True) -> tuple[list[str], dict]:
    totals: dict = {e: {"fuse": [0, 0], "export": [0, 0], "wrong_outputs": 0} for e in tc.EXPORTERS}
    rows = []
    for case in fc.CASES:
        cols = []
        for exporter in tc.EXPORTERS:
            original = tc.plain_export(case.name, exporter)
            exported = tc.exported(case.name, exporter) if with_export else "not run (--no-export)"
            expected = list(case.expected_for(exporter))
            if isinstance(original, bytes):
                model_bytes, _ = tc.fused(case.name, exporter)
                model = onnx.load_from_string(model_bytes)
                found = tc.loss_nodes(model)
                before = len(onnx.load_from_string(original).graph.node)
                try:
                    problems = tc.check_outputs(case, original, model_bytes, batches=("random", "edge"),
                                                paths=[False])
                    outputs = ("ok" if not problems else "**WRONG**") + ulp_note(case, original, model_bytes)
                except Exception as exc:  # a runtime that cannot run the model: say so, keep going
                    problems, outputs = [str(exc)], f"not run ({type(exc).__name__})"
                fuse_cell = cell(expected, found)
                nodes = f"{before} → {len(model.graph.node)}"
                totals[exporter]["fuse"][0] += fc.matched(expected, found)
                totals[exporter]["fuse"][1] += len(expected)
                totals[exporter]["wrong_outputs"] += bool(problems)
            else:
                fuse_cell, nodes, outputs = "torch cannot export", "-", "-"
            if isinstance(exported, bytes):
                efound = tc.found_from_export(onnx.load_from_string(exported))
                export_cell = cell(expected, efound)
                totals[exporter]["export"][0] += fc.matched(expected, efound)
                totals[exporter]["export"][1] += len(expected)
            else:
                export_cell = "not run" if not with_export else "export failed"
            cols.append(f"{fuse_cell} | {export_cell} | {nodes} | {outputs}")
        expected_text = ", ".join(map(str, case.expected)) or "none"
        for exporter, other in case.per_exporter:
            expected_text += f" ({exporter}: {', '.join(map(str, other)) or 'none'})"
        flag = " (inexact param)" if case.inexact else ("" if case.real else " (issue form)")
        rows.append(f"| {case.name}{flag} | {case.library} | {esc(expected_text)} | " + " | ".join(cols) + " |")
    return rows, totals


def near_rows(with_export: bool = True) -> tuple[list[str], dict]:
    fused_count = {e: {"fuse": 0, "export": 0} for e in tc.EXPORTERS}
    rows = []
    for near in fc.NEAR_MISSES:
        cols = []
        for exporter in tc.EXPORTERS:
            if exporter in dict(near.not_for):  # torch writes another graph (the reason says what)
                cols.append(f"n/a: {esc(dict(near.not_for)[exporter])} | n/a")
                continue
            original = tc.plain_export(near.name, exporter)
            if isinstance(original, bytes):
                model_bytes, count = tc.fused(near.name, exporter)
                fused_count[exporter]["fuse"] += bool(count)
                fcell = "0" if not count else f"**{count} fused**{ulp_note(near, original, model_bytes)}"
            else:
                fcell = "torch cannot export"
            exported = tc.exported(near.name, exporter) if with_export else "not run (--no-export)"
            if isinstance(exported, bytes):
                recorded = tc.found_from_export(onnx.load_from_string(exported))
                fused_count[exporter]["export"] += bool(recorded)
                ecell = "0" if not recorded else f"**{tc.describe(recorded)}**"
            else:
                ecell = "not run" if not with_export else "export failed"
            cols.append(f"{fcell} | {ecell}")
        rows.append(f"| {near.name} | {esc(near.reason)} | " + " | ".join(cols) + " |")
    return rows, fused_count


# --- the 10,000-node model without losses ----------------------------------------------------


def big_model(target_nodes: int = 10_000, hidden: int = 16, seed: int = 0) -> onnx.ModelProto:
    """Stacked LayerNorm -> Linear -> GELU -> residual blocks with loss-like distractors."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind: str, inputs: list[str], **attrs) -> str:
        out = f"n{len(nodes)}"
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    last = const("axes_last", np.array([-1], np.int64))
    eps, half, one = const("eps", np.float32(1e-5)), const("half", np.float32(0.5)), const("one", np.float32(1.0))
    sqrt2, beta = const("sqrt2", np.float32(np.sqrt(2.0))), const("beta", np.float32(0.5))
    h = "input"
    block = 0
    while len(nodes) < target_nodes:
        p = f"b{block}_"
        gamma = const(p + "gamma", rng.standard_normal(hidden).astype(np.float32))
        shift = const(p + "shift", rng.standard_normal(hidden).astype(np.float32))
        weight = const(p + "W", (rng.standard_normal((hidden, hidden)) / 4).astype(np.float32))
        bias = const(p + "b", rng.standard_normal(hidden).astype(np.float32))
        # LayerNorm, decomposed as exporters write it
        mean = op("ReduceMean", [h, last], keepdims=1)
        centred = op("Sub", [h, mean])
        var = op("ReduceMean", [op("Mul", [centred, centred]), last], keepdims=1)
        normed = op("Div", [centred, op("Sqrt", [op("Add", [var, eps])])])
        ln = op("Add", [op("Mul", [normed, gamma]), shift])
        lin = op("Add", [op("MatMul", [ln, weight]), bias])
        gelu = op("Mul", [op("Mul", [lin, op("Add", [op("Erf", [op("Div", [lin, sqrt2])]), one])]), half])
        # distractors: a clipped residual and a partial mean of |a - b|
        d = op("Sub", [gelu, h])
        a = op("Abs", [d])
        clipped = op("Where", [op("Less", [a, one]), op("Mul", [d, half]), d])
        partial = op("ReduceMean", [a, last], keepdims=1)
        h = op("Add", [h, op("Sub", [clipped, partial])])
        if block % 10 == 9:  # a smooth-L1 with the wrong offset (d - beta) under a full mean
            wrong = op("Where", [op("Less", [a, beta]), op("Div", [op("Mul", [op("Mul", [a, a]), half]), beta]),
                                 op("Sub", [a, beta])])
            h = op("Add", [h, op("ReduceMean", [wrong], keepdims=0)])
        block += 1
    graph = helper.make_graph(nodes, "big_no_loss",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", hidden])],
                              [helper.make_tensor_value_info(h, TensorProto.FLOAT, ["batch", hidden])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    onnx.checker.check_model(model)
    return model


def time_big(repeats: int = 3) -> tuple[int, float, int]:
    model = big_model()
    best, count = float("inf"), -1
    for _ in range(repeats):
        start = time.perf_counter()
        count = sl1.fuse(model).count
        best = min(best, time.perf_counter() - start)
    return len(model.graph.node), best, count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-only", action="store_true", help="only time fuse on the 10,000-node model")
    parser.add_argument("--no-export", action="store_true",
                        help="skip the export() column (half of the dynamo exports, most of the time)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if not args.big_only:
        start = time.perf_counter()
        # torch's legacy exporter writes the TorchScript graph of a failed export to file
        # descriptor 1 from C++; the table goes to stdout, so fd 1 points at stderr meanwhile.
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)
        try:
            rows, totals = corpus_rows(not args.no_export)
            nrows, near = near_rows(not args.no_export)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        counts = fc.summary()
        print(f"{counts['real_cases']} real-library cases ({counts['libraries']} libraries) + "
              f"{counts['cases'] - counts['real_cases']} forms the issue names, {counts['expected_nodes']} expected "
              f"loss nodes; {counts['near_misses']} near-misses. found/expected = expected nodes matched "
              f"(+k: nodes found that were not expected). outputs: the test's check on the random and "
              f"edge batches (function path), with the largest |fused - original| in ulps.\n")
        print("| case | library | expected | dynamo fuse | dynamo export | dynamo nodes | dynamo outputs "
              "| legacy fuse | legacy export | legacy nodes | legacy outputs |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        print("\n".join(rows))
        print()
        print("| near-miss | why it is not a loss | dynamo fuse | dynamo export | legacy fuse | legacy export |")
        print("|---|---|---|---|---|---|")
        print("\n".join(nrows))
        print()
        print("| exporter | fuse found/expected | export found/expected | near-misses fused (fuse / export) "
              "| cases with wrong fused outputs |")
        print("|---|---|---|---|---|")
        for exporter, tot in totals.items():
            fh, fe = tot["fuse"]
            eh, ee = tot["export"]
            print(f"| {exporter} | {fh}/{fe} ({100 * fh / max(fe, 1):.0f}%) | {eh}/{ee} ({100 * eh / max(ee, 1):.0f}%) "
                  f"| {near[exporter]['fuse']} / {near[exporter]['export']} | {tot['wrong_outputs']} |")
        print(f"\n(corpus: {time.perf_counter() - start:.0f} s)")
    nodes, seconds, count = time_big()
    print(f"\nfuse on a {nodes}-node model without losses (LayerNorm/GELU/residual blocks with loss-like "
          f"distractors): best of 3 {seconds:.2f} s, {count} loss(es) fused")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
