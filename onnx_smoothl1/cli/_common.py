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

from ..files import write_bytes


class UsageError(ValueError):
    """A mistake by the user: reported on stderr with exit code 2."""


def split(values: list[str] | None) -> list[str] | None:
    """``--opt a,b c`` -> ``[a, b, c]`` (None stays None: the option was not given)."""
    if values is None:
        return None
    return [v for item in values for v in item.split(",") if v]


def load_model(path: str, arg: str = "MODEL") -> onnx.ModelProto:
    if Path(path).is_dir():
        raise UsageError(f"{arg}: {path} is a directory; give an .onnx file")
    if not Path(path).is_file():
        raise UsageError(f"{arg}: no such file: {path}")
    if Path(path).stat().st_size == 0:
        raise UsageError(f"{arg}: {path} is empty (0 bytes), not an ONNX model")
    try:
        model = onnx.load(path)
    except Exception as exc:  # protobuf raises several types for corrupt bytes
        raise UsageError(f"{arg}: {path} is not a readable ONNX model ({exc})") from exc
    if not model.graph.node and not model.graph.input and not model.graph.output:
        raise UsageError(f"{arg}: {path} is not an ONNX model (it parses to an empty graph)")
    return model


def load_npy(path: str, arg: str) -> np.ndarray:
    if Path(path).is_dir():
        raise UsageError(f"{arg}: {path} is a directory; give a .npy file")
    if not Path(path).is_file():
        raise UsageError(f"{arg}: no such file: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise UsageError(f"{arg}: {path} is not a readable .npy file ({exc})") from exc
    if isinstance(loaded, np.lib.npyio.NpzFile):
        names = ", ".join(loaded.files) or "no arrays"
        loaded.close()
        # Decided: one array per file, as the option names say; an .npz holds several.
        raise UsageError(f"{arg}: {path} is an .npz archive ({names}); give one array per .npy "
                         "file (numpy.save), e.g. --input x.npy --target y.npy")
    return loaded


def save(model: onnx.ModelProto, out: str, arg: str = "-o/--output") -> None:
    """Write ``model`` atomically (files.write_bytes): a failure leaves no partial file."""
    write_bytes(out, model.SerializeToString(), arg=arg)
