"""``onnx-smoothl1``: the command line, one module per command group.

- :mod:`.models`: make-model, make-models, run, info, demo;
- :mod:`.export`: export, fuse, inline;
- :mod:`.parity`: parity, bench;
- :mod:`.doctor`: doctor.

Each group has ``add_commands(subparsers)``; adding a group is one module and one entry in
``GROUPS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..runtime import OnnxRuntimeUnavailable
from . import doctor, export, models, parity
from ._common import UsageError
from .models import READY_MADE, write_ready_made

__all__ = ["GROUPS", "READY_MADE", "UsageError", "build_parser", "main", "write_ready_made"]

GROUPS = (models, export, parity, doctor)


def _version() -> str:
    """The installed distribution's version (wheel or editable install); the package's own
    ``__version__`` in a plain checkout that has no distribution metadata."""
    from importlib import metadata

    try:
        return metadata.version("onnx-smoothl1")
    except metadata.PackageNotFoundError:
        from .. import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onnx-smoothl1",
        description="PyTorch's SmoothL1Loss and HuberLoss as the ONNX nodes onnx_smoothl1::SmoothL1Loss "
        "and onnx_smoothl1::HuberLoss.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OnnxRuntimeUnavailable) as exc:
        # UsageError, the library's errors naming an argument, and a missing/too old runtime
        print(f"onnx-smoothl1 {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0
