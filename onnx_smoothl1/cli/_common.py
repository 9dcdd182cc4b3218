"""What every command group shares: the user-mistake exception and file loading.

User mistakes (bad arguments, missing or corrupt files, wrong inputs) print one line on
stderr and exit with code 2, never a traceback (``cli.main``); argparse already behaves that
way for its own errors. ``UsageError`` is a ``ValueError`` so that the library's own
``ValueError``s naming an argument are reported the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx


class UsageError(ValueError):
    """A mistake by the user: reported on stderr with exit code 2."""


def split(values: list[str] | None) -> list[str] | None:
    """``--opt a,b c`` -> ``[a, b, c]`` (None stays None: the option was not given)."""
    if values is None:
        return None
    return [v for item in values for v in item.split(",") if v]


def load_model(path: str, arg: str = "MODEL") -> onnx.ModelProto:
    if not Path(path).is_file():
        raise UsageError(f"{arg}: no such file: {path}")
    try:
        return onnx.load(path)
    except Exception as exc:  # protobuf raises several types for corrupt bytes
        raise UsageError(f"{arg}: {path} is not a readable ONNX model ({exc})") from exc


def load_npy(path: str, arg: str) -> np.ndarray:
    if not Path(path).is_file():
        raise UsageError(f"{arg}: no such file: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise UsageError(f"{arg}: {path} is not a readable .npy file ({exc})") from exc


def save(model: onnx.ModelProto, out: str) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out)
