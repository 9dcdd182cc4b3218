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
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from ..runtime import OnnxRuntimeUnavailable, quiet_onnxruntime_logs
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


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (usage is one --help away), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


#: One example per command, shown at the end of its --help.
EXAMPLES = {
    "make-model": "onnx-smoothl1 make-model --beta 0.5 --reduction sum -o sum.onnx",
    "make-models": "onnx-smoothl1 make-models models",
    "run": "onnx-smoothl1 run sum.onnx --input a.npy --target b.npy",
    "info": "onnx-smoothl1 info sum.onnx",
    "demo": "onnx-smoothl1 demo --n 20000",
    "export": "onnx-smoothl1 export mymodels.py:make --args-shape 8,3 --args-shape 8,1 -o model.onnx",
    "fuse": "onnx-smoothl1 fuse plain.onnx fused.onnx",
    "inline": "onnx-smoothl1 inline fused.onnx flat.onnx --input-shape x=8,3 --input-shape y=8,1",
    "parity": "onnx-smoothl1 parity --quick --report PARITY.md",
    "bench": "onnx-smoothl1 bench --from-results --output report/",
    "doctor": "onnx-smoothl1 doctor --json",
}


class _HelpWithDefaults(argparse.HelpFormatter):
    """Adds "(default: X)" to an option's help where it has a real default and does not
    already say it (argparse's ArgumentDefaultsHelpFormatter also prints "default: None")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS, []) or "default" in text:
            return text or None
        return f"{text} (default: %(default)s)".strip()


def _describe(sub: argparse._SubParsersAction) -> None:
    """Every command's --help: a description (its one-line help where it has no longer one),
    each option's default, and an example."""
    helps = {a.dest: a.help for a in sub._choices_actions}
    for name, cmd in sub.choices.items():
        cmd.formatter_class = _HelpWithDefaults
        for action in cmd._actions:  # an option with no help text still shows its default
            if action.help is None and action.default not in (None, False, argparse.SUPPRESS, []):
                action.help = "(default: %(default)s)"
        if not cmd.description:
            cmd.description = helps.get(name)
        if name in EXAMPLES:
            cmd.epilog = f"example: {EXAMPLES[name]}"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="onnx-smoothl1",
        description="PyTorch's SmoothL1Loss and HuberLoss as the ONNX nodes onnx_smoothl1::SmoothL1Loss "
        "and onnx_smoothl1::HuberLoss.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("-v", "--verbose", dest="verbose_global", action="store_true",
                        help="show tracebacks and onnxruntime's log (also: --debug anywhere)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(sub)
    _describe(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A user's mistake (bad argument, unreadable or unwritable file, missing
    runtime) is one line on stderr and exit 2; Ctrl-C is one line and exit 130; anything else
    is an internal error, one line and exit 1. ``--debug`` (anywhere) or ``-v`` before the
    command shows the traceback and onnxruntime's own log instead."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list or bool(os.environ.get("ONNX_SMOOTHL1_DEBUG"))
    args_list = [a for a in args_list if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(args_list)
    debug = debug or args.verbose_global
    if not debug:
        quiet_onnxruntime_logs()
    command = getattr(args, "command", "")
    try:
        args.func(args)
    except (ValueError, OnnxRuntimeUnavailable) as exc:
        # UsageError, FileError, the library's errors naming an argument, a missing runtime
        if debug:
            raise
        print(f"onnx-smoothl1 {command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file-system problem not caught closer to its cause
        if debug:
            raise
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"onnx-smoothl1 {command}: error:{where} {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"onnx-smoothl1 {command}: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as exc:  # a bug: say so in one line, the traceback with --debug
        if debug:
            raise
        print(f"onnx-smoothl1 {command}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(run again with --debug for the traceback)", file=sys.stderr)
        return 1
    return 0


def _one_line(exc: BaseException, limit: int = 600) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
