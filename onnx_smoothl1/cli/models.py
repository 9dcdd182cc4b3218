"""The model commands: ``make-model``, ``make-models``, ``run``, ``info``, ``demo``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from .. import spec
from ._common import UsageError, load_model, load_npy, save

#: The checked-in ready-made models (``make models``): file name -> make_model arguments
#: (``make_huber_model``'s where ``delta`` is given).
READY_MADE: dict[str, dict[str, object]] = {
    "smooth_l1_mean.onnx": {"reduction": "mean"},
    "smooth_l1_sum.onnx": {"reduction": "sum"},
    "smooth_l1_none.onnx": {"reduction": "none"},
    "smooth_l1_mean_f16.onnx": {"reduction": "mean", "dtype": "float16"},
    "huber_mean.onnx": {"delta": 1.0, "reduction": "mean"},
}


def _cmd_make_model(args: argparse.Namespace) -> None:
    from ..model import make_huber_model, make_model

    common = {"reduction": args.reduction, "dtype": args.dtype, "opset": args.opset,
              "rank": args.rank}
    # Each loss takes its own parameter; the other one given is a mistake, not ignored.
    if args.loss == "huber":
        if args.beta is not None:
            raise UsageError("--beta is SmoothL1Loss's parameter; --loss huber takes --delta")
        delta = spec.DEFAULT_DELTA if args.delta is None else args.delta
        model = make_huber_model(delta=delta, **common)
    else:
        if args.delta is not None:
            raise UsageError("--delta is HuberLoss's parameter: add --loss huber (or use --beta)")
        beta = spec.DEFAULT_BETA if args.beta is None else args.beta
        model = make_model(beta=beta, **common)
    save(model, args.output)
    print(f"wrote {args.output}")


def write_ready_made(directory: str | Path) -> list[Path]:
    """Write the ready-made models of ``READY_MADE`` into ``directory`` (deterministic bytes)."""
    from ..files import check_writable
    from ..model import make_huber_model, make_model

    check_writable(Path(directory) / next(iter(READY_MADE)), arg="DIRECTORY")
    written = []
    for name, kwargs in READY_MADE.items():
        path = Path(directory) / name
        maker = make_huber_model if "delta" in kwargs else make_model
        save(maker(**kwargs), str(path), arg="DIRECTORY")  # type: ignore[arg-type]
        written.append(path)
    return written


def _cmd_make_models(args: argparse.Namespace) -> None:
    for path in write_ready_made(args.directory):
        print(f"wrote {path}")


def _feed(model: onnx.ModelProto, arrays: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Name the arrays after the model's inputs, checking each has the declared type."""
    from ..oracle import NUMPY_DTYPES

    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != len(arrays):
        raise UsageError(f"model takes {len(inputs)} inputs, got {len(arrays)}")
    feeds: dict[str, np.ndarray] = {}
    for value, array in zip(inputs, arrays):
        elem = value.type.tensor_type.elem_type
        try:
            expected = onnx.helper.tensor_dtype_to_np_dtype(elem)
        except KeyError:
            raise UsageError(
                f"input {value.name!r} has element type {elem}, which is not an ONNX tensor type"
            ) from None
        if expected == NUMPY_DTYPES["bfloat16"] and array.dtype == np.dtype("V2"):
            array = array.view(expected)  # .npy stores ml_dtypes' bfloat16 as raw 2-byte items
        if array.dtype != expected:
            raise UsageError(
                f"input {value.name!r} must be {expected} (the model's type), got {array.dtype}"
            )
        if value.type.tensor_type.HasField("shape"):
            dims = value.type.tensor_type.shape.dim
            if len(dims) != array.ndim or any(
                d.HasField("dim_value") and d.dim_value != n for d, n in zip(dims, array.shape)
            ):
                declared = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
                raise UsageError(
                    f"input {value.name!r}: the model declares shape {declared} (rank {len(dims)}), "
                    f"got an array of shape {list(array.shape)}"
                )
        feeds[value.name] = array
    return feeds


def _cmd_run(args: argparse.Namespace) -> None:
    from ..runtime import CustomOpUnavailable, profile_node_ops, ran_fused_kernel

    model = load_model(args.model)
    x = load_npy(args.input, "--input")
    y = load_npy(args.target, "--target")
    try:
        np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        raise UsageError(
            f"--input shape {x.shape} and --target shape {y.shape} cannot be broadcast together"
        ) from None
    custom_op: object = {None: "auto", True: True, False: False}[args.custom_op]
    feeds = _feed(model, [x, y])
    try:
        outputs, ops = profile_node_ops(model, feeds, custom_op=custom_op)  # type: ignore[arg-type]
    except CustomOpUnavailable as exc:
        raise UsageError(str(exc)) from exc
    except Exception as exc:  # onnxruntime reports bad inputs as its own exception types
        raise UsageError(f"onnxruntime failed: {exc}") from exc
    if not any(spec.is_loss_node(n) for n in spec.walk_nodes(model.graph.node)):
        path = f"no {spec.DOMAIN} loss node in this model (ran as a plain ONNX graph)"
    elif ran_fused_kernel(ops):
        path = "fused kernel (custom op library)"
    else:
        path = "ONNX function (standard ops)"
    for out in outputs:
        print(np.array2string(np.asarray(out), threshold=20))
    print(f"path: {path}")


def _cmd_info(args: argparse.Namespace) -> None:
    model = load_model(args.model)
    functions = {(f.domain, f.name) for f in model.functions}
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    print(f"{args.model}: ir_version {model.ir_version}, opsets {opsets}")
    found = dict.fromkeys(spec.LOSS_OP_TYPES, 0)
    for node in spec.walk_nodes(model.graph.node):
        if not spec.is_loss_node(node):
            continue
        found[node.op_type] += 1
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        param = spec.LOSS_PARAMS[node.op_type]  # beta (SmoothL1Loss) or delta (HuberLoss)
        default = spec.DEFAULT_DELTA if node.op_type == spec.HUBER_OP_TYPE else spec.DEFAULT_BETA
        value = attrs.get(param, f"{default} (default)")
        red = attrs.get("reduction", f"{spec.DEFAULT_REDUCTION} (default)")
        if isinstance(red, bytes):
            red = red.decode("utf-8", "replace")
        has_fn = (spec.DOMAIN, node.op_type) in functions
        # protobuf hands out strings that are not valid UTF-8 (corrupt files) as bytes
        text = lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v  # noqa: E731
        print(
            f"  node {text(node.name) or '<unnamed>'}: {spec.DOMAIN}::{node.op_type}"
            f"({', '.join(map(text, node.input))}) -> {', '.join(map(text, node.output))}; {param}={value}, "
            f"reduction={red}, function attached: {'yes' if has_fn else 'no'}"
        )
    print(f"{found[spec.OP_TYPE]} SmoothL1Loss node(s)")
    if found[spec.HUBER_OP_TYPE]:
        print(f"{found[spec.HUBER_OP_TYPE]} HuberLoss node(s)")


def _cmd_demo(args: argparse.Namespace) -> None:
    from ..demo import run_demo

    if not run_demo(n=args.n, seed=args.seed):
        raise SystemExit(1)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this group's subcommands."""

    p = sub.add_parser("make-model", help="write a one-node SmoothL1Loss (or HuberLoss) model")
    p.add_argument("--loss", choices=list(spec.LOSSES), default="smooth_l1",
                   help="smooth_l1 (SmoothL1Loss, default) or huber (HuberLoss)")
    p.add_argument("--beta", type=float, default=None,
                   help="SmoothL1Loss's beta >= 0 (default 1.0)")
    p.add_argument("--delta", type=float, default=None,
                   help="HuberLoss's delta > 0, finite (default 1.0; with --loss huber)")
    p.add_argument("--reduction", choices=spec.REDUCTIONS, default=spec.DEFAULT_REDUCTION)
    p.add_argument("--dtype", choices=list(spec.DTYPES), default="float32")
    p.add_argument("--opset", type=int, default=18, help=f"{spec.MIN_OPSET}..{spec.max_opset()}")
    p.add_argument("--rank", type=int, default=None, help="fixed input rank (default: any rank)")
    p.add_argument("-o", "--output", required=True, help="path of the .onnx file to write")
    p.set_defaults(func=_cmd_make_model)

    p = sub.add_parser("make-models", help="write the ready-made models (see models/)")
    p.add_argument("directory", nargs="?", default="models")
    p.set_defaults(func=_cmd_make_models)

    p = sub.add_parser("run", help="run a model on two .npy files and print the loss")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--input", required=True, help=".npy file for the first input")
    p.add_argument("--target", required=True, help=".npy file for the second input")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--custom-op", dest="custom_op", action="store_true", default=None,
                   help="require the fused kernel (compiled library)")
    g.add_argument("--no-custom-op", dest="custom_op", action="store_false",
                   help="never register the library: run the ONNX function")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("info", help="list the SmoothL1Loss nodes of a model")
    p.add_argument("model", metavar="MODEL")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("demo", help="build a model, run it in onnxruntime, compare with torch")
    p.add_argument("--n", type=int, default=100_000, help="elements per input (default 100000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)
