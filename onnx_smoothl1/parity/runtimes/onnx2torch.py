"""``onnx2torch``: onnx2torch 1.5 converts the inlined model to a ``torch.fx`` module, which
runs in PyTorch eager (CPU).

onnx2torch declares a dependency on torchvision, but only its NonMaxSuppression and RoiAlign
converters use it. torchvision from PyPI does not import beside the CPU torch wheel the
project pins (``operator torchvision::nms does not exist``: its C++ ops are built for another
torch), so onnx2torch is installed with ``--no-deps`` (scripts/setup_runtimes.sh) and imported
with a stand-in ``torchvision`` module whose ``ops.nms``/``box_convert``/``roi_align`` raise
``NotImplementedError``. The stand-in exists only while ``import onnx2torch`` runs: it is
removed from ``sys.modules`` afterwards, so nothing else sees it, and a working torchvision,
when one imports, is used as it is. The loss models contain neither op.

Grid cases run through the static-shape group models the compiler paths use
(``parity.groups``; the inlined groups come from the same disk cache, so a grid inlines each
once): one conversion per dtype instead of one per (dtype, beta, reduction, ranks), whose
inlining was most of this path's time. A group that does not convert (bfloat16: onnx2torch
has no Cast to it) falls back to per-shape groups, then to the case's own model, whose
error is the case's message.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import onnx

from ..groups import GroupedPath, GroupSpec, group_model_bytes
from ..registry import import_reason, register
from ._compiled import cache_dir
from ._inlined import InlinedPath


def _missing_torchvision(*args: object, **kwargs: object) -> None:
    raise NotImplementedError("torchvision is not installed (onnx_smoothl1's stand-in for onnx2torch)")


@contextlib.contextmanager
def _torchvision_stand_in() -> Iterator[None]:
    """A working torchvision as it is, else a stand-in for the duration of the block."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # absent, or PyPI's build for another torch (RuntimeError at import)
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    else:
        yield
        return
    package = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    ops.nms = ops.box_convert = ops.roi_align = _missing_torchvision  # type: ignore[attr-defined]
    package.ops = ops  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": package, "torchvision.ops": ops})
    try:
        yield
    finally:
        for name in ("torchvision", "torchvision.ops"):
            sys.modules.pop(name, None)


def import_onnx2torch() -> Any:
    """The onnx2torch module, imported with the torchvision stand-in where needed."""
    if "onnx2torch" in sys.modules:
        return sys.modules["onnx2torch"]
    with _torchvision_stand_in():
        import onnx2torch
    return onnx2torch


@register
class Onnx2TorchPath(GroupedPath, InlinedPath):
    name = "onnx2torch"
    title = "onnx2torch: the inlined model converted to torch.fx, run by PyTorch (CPU)"

    def _why_unavailable(self) -> str | None:
        for module in ("torch", "onnx2torch"):
            reason = import_reason(module, "torch==2.13.0 onnx2torch" if module == "torch" else "onnx2torch")
            if reason:
                return reason
        from importlib.metadata import version

        import_onnx2torch()
        self.notes.append(f"onnx2torch {version('onnx2torch')} (torchvision: "
                          f"{'stand-in' if _stand_in_used() else 'installed'})")
        return None

    def run_group(self, group: GroupSpec, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        if group not in self._cache:
            model = onnx.ModelProto.FromString(group_model_bytes(group, cache_dir()))
            self.note_inliner("onnx_smoothl1.inline.inline")
            self.prove_inlined(model)
            self._cache[group] = import_onnx2torch().convert(model)
        else:
            self.proved("inlined model")  # the cached module was converted from a proven model
        with torch.no_grad():
            result = self._cache[group](*[_to_torch(a) for a in arrays])
        results = result if isinstance(result, (list, tuple)) else [result]
        return [_to_numpy(r) for r in results]

    def run_model(
        self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], key: object = None
    ) -> list[np.ndarray]:
        import torch

        cache_key = self._cache_key(feeds, key)
        converted = self._cache.get(cache_key) if cache_key is not None else None
        if converted is None:
            inlined = self._inlined(model, feeds, key)
            converted = import_onnx2torch().convert(inlined)
            if cache_key is not None:
                self._cache[cache_key] = converted
        else:
            self.proved("inlined model")  # the cached module was converted from a proven model
        names = [i.name for i in self._input_names(model)]
        with torch.no_grad():
            result = converted(*[_to_torch(feeds[n]) for n in names])
        results = result if isinstance(result, (list, tuple)) else [result]
        return [_to_numpy(r) for r in results]

    @staticmethod
    def _input_names(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
        initializers = {t.name for t in model.graph.initializer}
        return [i for i in model.graph.input if i.name not in initializers]


def _stand_in_used() -> bool:
    """Whether onnx2torch's NMS converter holds the stand-in rather than torchvision."""
    nms = sys.modules.get("onnx2torch.node_converters.nms")
    vision = getattr(nms, "torchvision", None)
    return getattr(getattr(vision, "ops", None), "nms", None) is _missing_torchvision


def _to_torch(array: np.ndarray) -> Any:
    import torch

    array = np.asarray(array)
    if array.dtype.name == "bfloat16":  # numpy has no bfloat16: through float32, exactly
        return torch.from_numpy(array.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(np.array(array, order="C"))  # a copy: ascontiguousarray makes 0-d 1-d


def _to_numpy(tensor: Any) -> np.ndarray:
    import torch

    if tensor.dtype == torch.bfloat16:
        import ml_dtypes

        return tensor.to(torch.float32).numpy().astype(ml_dtypes.bfloat16)
    return tensor.numpy()

