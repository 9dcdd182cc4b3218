"""The base of the ahead-of-time compiler paths (IREE, TVM): ``inline(model, input_shapes=...)``
with the feeds' concrete shapes, compiled once per model and cached by the inlined model's
bytes (which hold the declared shapes).

Both compilers need static shapes: IREE's importer requires declared shapes, TVM's relax
frontend cannot take the body's padding arithmetic (``Mod`` of a ``Shape``) on symbolic
dimensions, and IREE compiles dynamic shapes 2-3x slower. A compile costs about 1-2 s on a
2-core machine while a run costs milliseconds, and the grid has 756 (loss, dtype, shape,
parameter, reduction) cases. So a grid case is compiled as part of a *group model*: one graph
holding a ``SmoothL1Loss`` node for every beta x reduction of the grid and a ``HuberLoss``
node for every delta x reduction (12 + 9 nodes, each with its own attributes, sharing
``input`` and ``target``), inlined with the case's shapes. One compile then serves the 21
cases of a (dtype, shape) pair; the case's answer is its own node's output. The
inliner gives each node its own copy of the body, so what runs is still each node's inlined
function, next to the others.

Compiled modules are also kept on disk (``COMPILE_CACHE_ENV``, default
``~/.cache/onnx-smoothl1/compiled``), keyed by the SHA-256 of the inlined model's bytes, the
runtime's version and flags, and the host CPU (code is generated for it): a second run of the
grid loads instead of compiling. Set the variable to ``off`` to compile every time.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import platform
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from ... import spec
from ...function import attach_function, make_huber_node, make_node
from ...inline import inline
from ...model import ir_version_for
from ..cases import BETAS, DELTAS, Case
from ._inlined import InlinedPath

#: Where compiled modules are kept between runs ("off": not at all).
COMPILE_CACHE_ENV = "ONNX_SMOOTHL1_COMPILE_CACHE"


def cache_dir() -> Path | None:
    """The compiled-module cache directory, or None when the cache is off."""
    value = os.environ.get(COMPILE_CACHE_ENV, "").strip()
    if value.lower() in ("off", "0", "no", "false"):
        return None
    return Path(value).expanduser() if value else Path.home() / ".cache" / "onnx-smoothl1" / "compiled"


@functools.lru_cache(maxsize=1)
def host_cpu() -> str:
    """The CPU model and its feature flags (code generated for the host runs only there)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return f"{fields.get('model name', platform.machine())} {fields.get('flags', '')}"


def _output_name(beta: float, reduction: str, loss: str = "smooth_l1") -> str:
    """The group model's output of one (loss, parameter, reduction) node."""
    if loss == "huber":
        return f"huber_d{DELTAS.index(beta)}_{reduction}"
    return f"loss_b{BETAS.index(beta)}_{reduction}"


def in_group(case: Case) -> bool:
    """Whether the group model holds ``case``'s node (its parameter is one of the grid's)."""
    return case.beta in (DELTAS if case.loss == "huber" else BETAS)


@functools.lru_cache(maxsize=64)
def group_model_bytes(dtype: str, shapes: tuple[tuple[int, ...], tuple[int, ...]]) -> bytes:
    """The inlined group model of one (dtype, shape pair): a SmoothL1Loss node per BETAS x
    REDUCTIONS and a HuberLoss node per DELTAS x REDUCTIONS, inputs declared with ``shapes``.
    Cached (the inlining and folding take about as long as a compile), so the IREE and TVM
    paths share it."""
    elem = spec.DTYPES[dtype]
    nodes = [
        make_node("input", "target", _output_name(b, r), beta=b, reduction=r, name=_output_name(b, r))
        for b in BETAS
        for r in spec.REDUCTIONS
    ] + [
        make_huber_node(
            "input", "target", _output_name(d, r, "huber"), delta=d, reduction=r,
            name=_output_name(d, r, "huber"),
        )
        for d in DELTAS
        for r in spec.REDUCTIONS
    ]
    graph = helper.make_graph(
        nodes,
        f"smooth_l1_group_{dtype}",
        [helper.make_tensor_value_info(n, elem, None) for n in ("input", "target")],
        [helper.make_tensor_value_info(n.output[0], elem, None) for n in nodes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="onnx-smoothl1")
    attach_function(model, dtype)
    model.ir_version = ir_version_for(model)
    # On disk too, keyed by what the result depends on: the model (its function body
    # included), the shapes, the inliner's source and the onnx / onnxscript versions.
    from importlib.metadata import version

    source = Path(inspect.getfile(inline)).read_bytes()
    tools = f"{shapes} onnx {version('onnx')} onnxscript {version('onnxscript')}".encode()
    key = hashlib.sha256(model.SerializeToString() + tools + source).hexdigest()
    where = cache_dir()
    path = None if where is None else where / "inlined" / f"{key}.onnx"
    if path is not None and path.is_file():
        return path.read_bytes()
    data = inline(model, input_shapes={"input": shapes[0], "target": shapes[1]}).SerializeToString()
    if path is not None:
        _write_atomically(path, data)
    return data


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)  # a concurrent run sees a whole file or none
    finally:
        tmp.unlink(missing_ok=True)


class CompiledPath(InlinedPath):
    """Subclasses implement ``compile_to`` (inlined model -> a file), ``load`` (that file ->
    an executable), ``execute`` and ``fingerprint`` (runtime version and flags)."""

    #: the compiled file's suffix in the cache
    suffix = ""

    def __init__(self) -> None:
        super().__init__()
        self._compiled: dict[str, Any] = {}

    def fingerprint(self) -> str:
        raise NotImplementedError

    def compile_to(self, model: onnx.ModelProto, path: Path) -> None:
        raise NotImplementedError

    def load(self, path: Path) -> Any:
        raise NotImplementedError

    def compile(self, model: onnx.ModelProto, model_bytes: bytes | None = None) -> Any:
        """The executable for ``model``: from the disk cache, else compiled (and stored)."""
        data = model.SerializeToString() if model_bytes is None else model_bytes
        key = hashlib.sha256(data + f"\n{self.name}\n{self.fingerprint()}\n{host_cpu()}".encode()).hexdigest()
        where = cache_dir()
        if where is None:
            with tempfile.TemporaryDirectory() as scratch:
                path = Path(scratch) / f"module{self.suffix}"
                self.compile_to(model, path)
                return self.load(path)
        path = where / self.name / f"{key}{self.suffix}"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{self.suffix}")
            try:
                self.compile_to(model, tmp)
                os.replace(tmp, path)  # atomic: a concurrent run sees a whole file or none
            finally:
                tmp.unlink(missing_ok=True)
        return self.load(path)

    def execute(self, compiled: Any, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def _run(self, model_bytes: bytes, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        model = onnx.ModelProto.FromString(model_bytes)
        self.prove_inlined(model)
        key = hashlib.sha256(model_bytes).hexdigest()
        if key not in self._compiled:
            self._compiled[key] = self.compile(model, model_bytes)
        initializers = {t.name for t in model.graph.initializer}
        names = [i.name for i in model.graph.input if i.name not in initializers]
        missing = [n for n in names if n not in feeds]
        if missing:
            raise ValueError(f"feeds: no value for model input(s) {', '.join(missing)}")
        return self.execute(self._compiled[key], [np.asarray(feeds[n]) for n in names])

    def run_case(self, case: Case, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if not in_group(case):  # a parameter outside the grid's: a model of its own
            return super().run_case(case, x, y)
        group = group_model_bytes(case.dtype, (np.shape(x), np.shape(y)))
        outputs = self._run(group, {"input": x, "target": y})
        names = [o.name for o in onnx.ModelProto.FromString(group).graph.output]
        return outputs[names.index(_output_name(case.beta, case.reduction, case.loss))]

    def run_model(
        self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], key: object = None
    ) -> list[np.ndarray]:
        shapes = {k: tuple(np.shape(v)) for k, v in feeds.items() if k in {i.name for i in model.graph.input}}
        inlined = inline(model, input_shapes=shapes, check=False)
        return self._run(inlined.SerializeToString(), feeds)
