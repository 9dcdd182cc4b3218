"""The graph commands: ``export``, ``fuse`` and ``inline``.

``export MODULE:FACTORY`` imports the user's code: ``MODULE`` is a dotted module name
(importable from the current directory) or a path to a ``.py`` file; ``FACTORY`` names a
callable taking no arguments that returns either an ``nn.Module`` (example inputs then come
from ``--args-shape``) or a tuple ``(module, example_args)``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from .. import spec
from ._common import UsageError, save
from ._common import load_model as _load_model


def _root_cause(exc: BaseException) -> str:
    """The innermost exception's type and first line (torch wraps errors several times)."""
    chain = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 20:
        chain.append(chain[-1].__cause__)
    for inner in reversed(chain):
        text = str(inner).strip()
        if text:
            return f"{type(inner).__name__}: {text.splitlines()[0]}"
    return type(exc).__name__


def _parse_shape(text: str) -> tuple[int, ...]:
    text = text.strip()
    if text in ("", "scalar", "()"):
        return ()
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip() != "")
    except ValueError:
        raise UsageError(f"--args-shape: {text!r} is not a shape like 8,3 (or 'scalar')") from None
    if any(d < 0 for d in dims):
        raise UsageError(f"--args-shape: {text!r} has a negative dimension")
    return dims


def _import_user_module(name: str):
    if name.endswith(".py") or "/" in name or "\\" in name:
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"MODULE: no such file: {name}")
        spec_ = importlib.util.spec_from_file_location(path.stem, path)
        if spec_ is None or spec_.loader is None:
            raise UsageError(f"MODULE: cannot import {name}")
        module = importlib.util.module_from_spec(spec_)
        sys.modules.setdefault(path.stem, module)
        try:
            spec_.loader.exec_module(module)
        except Exception as exc:
            raise UsageError(f"MODULE: importing {name} failed: {type(exc).__name__}: {exc}") from exc
        return module
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise UsageError(f"MODULE: cannot import {name!r} ({exc})") from exc
    except Exception as exc:
        raise UsageError(f"MODULE: importing {name} failed: {type(exc).__name__}: {exc}") from exc


def load_factory(target: str) -> tuple[Any, tuple | None]:
    """Resolve ``MODULE:FACTORY`` and call the factory: ``(module, example_args or None)``."""
    import torch

    if target.count(":") != 1 or not all(target.split(":")):
        raise UsageError(f"MODULE:FACTORY expected (e.g. mypkg.models:make_model), got {target!r}")
    mod_name, attr = target.rsplit(":", 1)
    module = _import_user_module(mod_name)
    factory = getattr(module, attr, None)
    if factory is None:
        raise UsageError(f"{mod_name} has no attribute {attr!r}")
    if isinstance(factory, torch.nn.Module):
        made: Any = factory
    elif callable(factory):
        try:
            made = factory()
        except Exception as exc:
            raise UsageError(f"{target}() failed: {type(exc).__name__}: {exc}") from exc
    else:
        raise UsageError(f"{target} is neither a callable nor an nn.Module")
    example = None
    if isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], torch.nn.Module):
        made, example = made
        example = example if isinstance(example, tuple) else (example,)
    if not isinstance(made, torch.nn.Module):
        raise UsageError(
            f"{target} must give an nn.Module or (module, example_args); got {type(made).__name__}"
        )
    return made, example


def _cmd_export(args: argparse.Namespace) -> None:
    try:
        import torch
    except ImportError as exc:  # torch is an optional extra
        raise UsageError(f"export needs PyTorch, which is not installed ({exc}): pip install torch==2.13.0 "
                         "(any torch >= 2.4 works; an unpinned `pip install torch` pulls a CUDA build)") from exc

    from ..exporter import export

    module, example = load_factory(args.target)
    dtype = getattr(torch, spec.check_dtype(args.dtype))
    if args.args_shape:
        example = tuple(torch.randn(_parse_shape(s)).to(dtype) for s in args.args_shape)
        # --dtype is the model's element type: the module's parameters follow the inputs
        # (else torch.onnx meets float32 weights and float64 inputs: "inconsistent type").
        module = module.to(dtype)
    if example is None:
        raise UsageError("give --args-shape for each input (or let FACTORY return (module, args))")
    dynamic_shapes = None
    if args.dynamic_batch:
        if any(getattr(a, "dim", lambda: 0)() == 0 for a in example):
            raise UsageError("--dynamic-batch needs every input to have rank >= 1")
        if any(a.shape[0] < 2 for a in example):
            raise UsageError("--dynamic-batch needs an example batch size >= 2 (torch.export "
                             "specialises a dimension of size 0 or 1)")
        batch = torch.export.Dim("batch")
        dynamic_shapes = tuple({0: batch} for _ in example)
    names = [n.strip() for n in args.input_names.split(",")] if args.input_names else None
    module.eval()
    try:
        model = export(
            module,
            example,
            mode=args.mode,
            dynamo=not args.legacy,
            opset=args.opset,
            dynamic_shapes=dynamic_shapes,
            input_names=names,
            fuse=not args.no_fuse,
        )
    except ValueError:
        raise
    except Exception as exc:  # torch reports model problems as many exception types
        raise UsageError(f"torch.onnx.export failed: {_root_cause(exc)}") from exc
    save(model, args.output)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    counts = {op: 0 for op in spec.LOSS_OP_TYPES}
    for node in spec.walk_nodes(model.graph.node):
        if spec.is_loss_node(node):
            counts[node.op_type] += 1
    found = ", ".join(f"{n} {op} node(s)" for op, n in counts.items() if n) or "no loss nodes"
    from ..exporter import found_losses

    recognised = [_describe(d) for d in found_losses(model) if d.get("recognised")]
    if recognised:
        found += f" ({len(recognised)} recognised in plain ops: {'; '.join(recognised)})"
    print(f"wrote {args.output}: {found}, mode {args.mode}, opset {opset}, {len(model.graph.node)} nodes")


def _cmd_fuse(args: argparse.Namespace) -> None:
    from ..fuse import fuse

    model = _load_model(args.input, arg="IN")
    before = len(model.graph.node)
    try:
        fused, count = fuse(model, l1=args.l1)
    except Exception as exc:  # a malformed model trips onnx_ir / the rewriter / the checker
        raise UsageError(f"IN: cannot fuse {args.input}: {_root_cause(exc)}") from exc
    save(fused, args.output, arg="OUT")
    from ..exporter import loss_node_entry

    had = {n.output[0] for n in model.graph.node if spec.is_loss_node(n) and n.output}
    new = [_describe(loss_node_entry(n)) for n in fused.graph.node if spec.is_loss_node(n) and n.output[0] not in had]
    what = f": {'; '.join(new)}" if new else ""
    print(f"fused {count} loss(es){what}; {before} -> {len(fused.graph.node)} nodes; wrote {args.output}")


def _describe(entry: dict) -> str:
    """``SmoothL1Loss(beta=0.5, reduction=mean)``: one loss for the one-line reports."""
    params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in entry.items() if k not in ("op_type", "recognised"))
    return f"{entry['op_type']}({params})"


def _cmd_inline(args: argparse.Namespace) -> None:
    from ..inline import declare_input_shapes, inline, parse_input_shapes

    model = _load_model(args.input, arg="IN")
    shapes = None
    if args.input_shape:
        try:
            shapes = parse_input_shapes(args.input_shape)
            declare_input_shapes(model, shapes, arg="--input-shape")
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    try:
        out = inline(model, fold=not args.no_fold, input_shapes=shapes)
    except Exception as exc:  # a malformed model trips the inliner / optimizer / checker
        raise UsageError(f"IN: cannot inline {args.input}: {_root_cause(exc)}") from exc
    save(out, args.output, arg="OUT")
    print(f"inlined: {len(model.graph.node)} -> {len(out.graph.node)} nodes, no {spec.DOMAIN} "
          f"domain; wrote {args.output}")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export``, ``fuse`` and ``inline`` to the ``onnx-smoothl1`` parser."""
    from ..exporter import MODES

    p = subparsers.add_parser(
        "export",
        help="export a torch module (its losses become SmoothL1Loss nodes)",
        description="Import MODULE, call FACTORY() and export the nn.Module it returns (or the "
        "(module, example_args) pair) with SmoothL1/Huber/L1 losses as SmoothL1Loss nodes.",
    )
    p.add_argument("target", metavar="MODULE:FACTORY",
                   help="dotted module or path/to/file.py, then a factory (or module) name")
    p.add_argument("--args-shape", action="append", default=[], metavar="SHAPE",
                   help="shape of one example input, e.g. 8,3 ('scalar' for rank 0); repeat "
                   "once per input, in forward()'s order")
    p.add_argument("--dtype", choices=list(spec.DTYPES), default="float32",
                   help="element type of the --args-shape inputs (default float32)")
    p.add_argument("--mode", choices=MODES, default="function",
                   help="function (node + function, default), custom_op (node only), inline "
                   "(standard ops only)")
    p.add_argument("--legacy", action="store_true",
                   help="use the TorchScript exporter (dynamo=False) instead of torch.export")
    p.add_argument("--opset", type=int, default=None, help="default-domain opset (default 20)")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="make dimension 0 of every input dynamic")
    p.add_argument("--input-names", default=None, help="comma-separated input names")
    p.add_argument("--no-fuse", action="store_true",
                   help="do not turn hand-written losses into nodes (only torch's loss calls become nodes)")
    p.add_argument("-o", "--output", required=True, help="path of the .onnx file to write")
    p.set_defaults(func=_cmd_export)

    p = subparsers.add_parser(
        "fuse", help="replace smooth_l1/huber/L1 losses written as plain ops (torch.onnx's "
        "decomposition or hand-written, proven equal on probe values) by SmoothL1Loss/HuberLoss nodes"
    )
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    p.add_argument("--l1", choices=("reduced", "all", "off"), default="reduced",
                   help="plain L1 (|x-y|): fuse only when mean/sum-reduced (default), also "
                   "bare |x-y| (all), or never (off)")
    p.set_defaults(func=_cmd_fuse)

    p = subparsers.add_parser(
        "inline", help="inline the SmoothL1Loss function (standard ops, e.g. for OpenVINO)"
    )
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    p.add_argument("--no-fold", action="store_true",
                   help="do not constant-fold after inlining (keep the body's If/probe nodes)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="declare an input's shape first (sizes or symbolic names; NAME= for rank "
                   "0), so the result has static shapes (IREE, TVM, onnxsim); repeatable")
    p.set_defaults(func=_cmd_inline)
