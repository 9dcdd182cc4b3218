"""The base of the paths that compile each model they run (IREE, TVM ahead of time; OpenVINO's
CPU plugin): ``inline(model, input_shapes=...)``, compiled and run in a time-limited worker
process (``parity.worker``, mode ``path:<name>``: a crash in generated code or a hang in a
compiler costs that worker, not the runner), cached by the inlined model's bytes (which hold
the declared shapes).

Both compilers need static shapes: IREE's importer requires declared shapes, TVM's relax
frontend cannot take the body's padding arithmetic (``Mod`` of a ``Shape``) on symbolic
dimensions, and IREE compiles dynamic shapes 2-3x slower. A compile costs about 1 s plus 4 ms
per node on a 2-core machine, while a run costs milliseconds. So the grid is compiled as
group models (``parity.groups``): one per dtype, static shapes.

``prepare`` (called by ``run_grid`` before the grid runs) sends the group models to the
worker, which compiles them while the runner works through the other paths.

Compiled modules are also kept on disk (``COMPILE_CACHE_ENV``, default
``~/.cache/onnx-smoothl1/compiled``), keyed by the SHA-256 of the inlined model's bytes, the
runtime's version and flags, and the host CPU (code is generated for it): a second run of the
grid loads instead of compiling. Set the variable to ``off`` to compile every time.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ...inline import inline
from ..cases import Case
from ..groups import GroupedPath, GroupSpec, group_model_bytes
from ..registry import Unsupported
from ..worker import DEFAULT_TIMEOUT, Worker
from ._inlined import InlinedPath

#: Where compiled modules are kept between runs ("off": not at all).
COMPILE_CACHE_ENV = "ONNX_SMOOTHL1_COMPILE_CACHE"
#: Seconds the worker may take per request (per group model when compiling the grid's).
COMPILE_TIMEOUT_ENV = "ONNX_SMOOTHL1_COMPILE_TIMEOUT"


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


class CompiledPath(GroupedPath, InlinedPath):
    """Subclasses implement ``compile_to`` (inlined model -> a file), ``load`` (that file ->
    an executable), ``execute`` and ``fingerprint`` (runtime version and flags): the
    ``local_*`` side, which runs in the worker. The runner's side (``prepare``,
    ``run_case``, ``run_model``) only builds requests and reads replies."""

    #: the compiled file's suffix in the cache
    suffix = ""
    in_worker = True

    def __init__(self) -> None:
        super().__init__()
        self._compiled: dict[str, Any] = {}  # in the worker: executables by model digest
        self._worker: Worker | None = None
        self._prepared: tuple[GroupSpec, ...] = ()  # submitted, reply not read yet
        #: whether the last run compiled its module (False: loaded from a cache)
        self.last_compiled = False

    # ---- the worker's side --------------------------------------------------------

    def fingerprint(self) -> str:
        raise NotImplementedError

    def compile_to(self, model: onnx.ModelProto, path: Path) -> None:
        raise NotImplementedError

    def load(self, path: Path) -> Any:
        raise NotImplementedError

    def execute(self, compiled: Any, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def compile(self, model: onnx.ModelProto, model_bytes: bytes | None = None) -> Any:
        """The executable for ``model``: from the disk cache, else compiled (and stored)."""
        data = model.SerializeToString() if model_bytes is None else model_bytes
        key = hashlib.sha256(data + f"\n{self.name}\n{self.fingerprint()}\n{host_cpu()}".encode()).hexdigest()
        where = cache_dir()
        self.last_compiled = True
        if where is None:
            with tempfile.TemporaryDirectory() as scratch:
                path = Path(scratch) / f"module{self.suffix}"
                self.compile_to(model, path)
                return self.load(path)
        path = where / self.name / f"{key}{self.suffix}"
        if path.is_file():
            self.last_compiled = False
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{self.suffix}")
            try:
                self.compile_to(model, tmp)
                os.replace(tmp, path)  # atomic: a concurrent run sees a whole file or none
            finally:
                tmp.unlink(missing_ok=True)
        return self.load(path)

    def _executable(self, model_bytes: bytes) -> tuple[Any, bool]:
        key = hashlib.sha256(model_bytes).hexdigest()
        if key in self._compiled:
            return self._compiled[key], False
        model = onnx.ModelProto.FromString(model_bytes)
        self.prove_inlined(model)
        self._compiled[key] = self.compile(model, model_bytes)
        return self._compiled[key], self.last_compiled

    def local_run(self, model_bytes: bytes, arrays: Sequence[np.ndarray]) -> tuple[list[np.ndarray], bool]:
        """Run an inlined model here (compiled or loaded first); and whether it compiled."""
        executable, compiled = self._executable(model_bytes)
        return self.execute(executable, [np.asarray(a) for a in arrays]), compiled

    def local_prepare(self, group: GroupSpec) -> str | None:
        """Compile ``group``'s model here (or load it from the cache); None, or why not."""
        try:
            self._executable(group_model_bytes(group, cache_dir()))
        except Exception as exc:
            return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        return None

    def local_run_group(self, group: GroupSpec, arrays: Sequence[np.ndarray]) -> tuple[list[np.ndarray], bool]:
        return self.local_run(group_model_bytes(group, cache_dir()), arrays)

    # ---- the runner's side --------------------------------------------------------

    @property
    def timeout(self) -> float:
        return float(os.environ.get(COMPILE_TIMEOUT_ENV) or DEFAULT_TIMEOUT)

    def _new_worker(self) -> Worker:
        return Worker(f"path:{self.name}", timeout=self.timeout)

    def _start(self) -> Worker:
        if self._worker is None:
            self._worker = self._new_worker()
        return self._worker

    def _call(self, request: tuple[Any, ...]) -> tuple[Any, ...]:
        reply = self._start().call(request)
        if reply[0] == "crash":
            self._restart()
            raise Unsupported(f"{self.name} crashed: {reply[1]}")
        if reply[0] == "error":
            message = str(reply[1])
            raise RuntimeError(message.removeprefix("RuntimeError: "))
        return reply

    def _restart(self) -> None:
        if self._worker is not None:
            self._worker.close()
        self._worker = self._new_worker()  # the replacement imports while the runner works

    def prepare(self, cases: Sequence[Case]) -> None:
        """Send the grid's group models to the worker to compile while the runner runs the
        other paths."""
        self._prepared = tuple(self.plan(cases))
        crash = self._start().submit(("prepare", list(self._prepared)))
        if crash is not None:
            self.settle(crash)

    def settle(self, reply: tuple[Any, ...] | None = None) -> None:
        """Read the prepare reply (a compile may take a while: a limit per group model).
        A group that did not compile, or a worker that died compiling, leaves its cases to
        the smaller models (``GroupedPath.run_case``)."""
        if not self._prepared:
            return
        groups, self._prepared = self._prepared, ()
        if reply is None:
            assert self._worker is not None
            reply = self._worker.collect(self._worker.timeout * len(groups))
        if reply[0] == "ok":
            errors = list(reply[1])
        else:
            if reply[0] == "crash":
                self._restart()
            errors = [f"{self.name} {reply[0]} while compiling: {reply[1]}"] * len(groups)
        for group, error in zip(groups, errors):
            if error is not None:
                self.mark_failed(group, RuntimeError(error))

    def run_group(self, group: GroupSpec, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        reply = self._call(("run_group", group, list(arrays)))
        self.note_inliner("onnx_smoothl1.inline.inline")  # the group models are inline()'s
        self.proved("inlined model")  # the worker checked that the model has no custom node
        self.last_compiled = bool(reply[2]["compiled"])
        return list(reply[1])

    def run_model(
        self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], key: object = None
    ) -> list[np.ndarray]:
        shapes = {k: tuple(np.shape(v)) for k, v in feeds.items() if k in {i.name for i in model.graph.input}}
        inlined = inline(model, input_shapes=shapes, check=False)
        self.note_inliner("onnx_smoothl1.inline.inline")
        self.prove_inlined(inlined)
        initializers = {t.name for t in inlined.graph.initializer}
        names = [i.name for i in inlined.graph.input if i.name not in initializers]
        missing = [n for n in names if n not in feeds]
        if missing:
            raise ValueError(f"feeds: no value for model input(s) {', '.join(missing)}")
        self.settle()
        reply = self._call(("run", inlined.SerializeToString(), names, [np.asarray(feeds[n]) for n in names]))
        self.last_compiled = bool(reply[2]["compiled"])
        return list(reply[1])

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
