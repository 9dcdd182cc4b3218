"""One worker protocol for runtimes that can crash or hang: a time-limited subprocess.

tract 0.23 aborts the whole process with a Rust panic on some inputs, and Mesa's lavapipe
(the WebGPU EP without a GPU) can crash or hang; onnxruntime-openvino needs its own venv
(its wheel ships its own ``onnxruntime`` module); IREE's and TVM's runtimes load and run
native code generated for each model. Each runs in a worker: this file, run as a script by
the interpreter that has the runtime, serving requests on stdin.

Protocol: length-prefixed (8-byte little-endian) pickles.

- ``("hello",)`` -> ``("ok", info)``: versions (and devices), for the report's notes.
- ``("run", model bytes, input names, arrays)`` -> ``("ok", outputs, placement, seconds)``,
  ``placement`` being the ORT placement record for a new EP session (else None), or
  ``("error", message)`` when the runtime raised.
- The compiled-path modes (``path:iree``, ``path:tvm``, ``path:openvino``) also serve ``("prepare", group specs)`` ->
  ``("ok", errors)`` (compile each group model, one error text or None per spec) and
  ``("run_group", spec, arrays)`` -> ``("ok", outputs, info, seconds)``; their ``info`` says
  whether the module was compiled (else loaded from the cache). See ``runtimes._compiled``.
- The parent answers ``("crash", why)`` itself when the worker died (its exit code and the
  panic or last lines of its stderr) or did not answer within the time limit (killed).
  ``submit`` + ``collect`` split a call, so the parent can work while the worker compiles.

The tract and EP modes import only numpy, the standard library and the runtime (they also
run in ``.venv-ort-openvino``, which has neither onnx nor this package); the compiler modes
run in the package's own environment and use its path classes. Arrays of bfloat16 travel as
ml_dtypes arrays (numpy has no bfloat16 of its own).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import select
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

#: Seconds one request may take before the worker is killed (a hang is a crash too).
DEFAULT_TIMEOUT = 300.0
#: The modes the child serves: tract, or onnxruntime with one execution provider ...
MODES = ("tract", "webgpu", "openvino", "cuda")
#: ... or ``path:<name>``: the package's own ``CompiledPath`` of that name (IREE, TVM,
#: OpenVINO) compiles and runs there.
PATH_MODE = "path:"

#: Runs this file as the worker without putting its directory on sys.path (its sibling
#: modules are not meant to be importable by the runtime's own imports).
_BOOT = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__parity_worker__')"


def send(stream: IO[bytes], obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def recv(stream: IO[bytes]) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    (n,) = struct.unpack("<Q", head)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError
    return pickle.loads(data)


# --------------------------------------------------------------------------------------
# The parent side
# --------------------------------------------------------------------------------------


class Worker:
    """A worker subprocess for one runtime (``mode``); a crash or hang there cannot take
    the runner down. ``call`` returns the reply, or ``("crash", why)``."""

    def __init__(
        self,
        mode: str,
        *,
        python: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        if mode not in MODES and not (mode.startswith(PATH_MODE) and len(mode) > len(PATH_MODE)):
            raise ValueError(f"mode: unknown worker mode {mode!r}; choose from {', '.join(MODES)} or {PATH_MODE}<name>")
        self.mode = mode
        self.timeout = float(timeout)
        self._pending = False
        self._stderr = tempfile.TemporaryFile()
        environ = dict(os.environ if env is None else env)
        environ.setdefault("RUST_BACKTRACE", "0")
        self._proc = subprocess.Popen(
            [python or sys.executable, "-c", _BOOT, str(Path(__file__).resolve()), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=environ,
            cwd=None if cwd is None else str(cwd),
        )

    def call(self, request: tuple[Any, ...]) -> tuple[Any, ...]:
        """The worker's reply, or ("crash", why) when it died or did not answer in time."""
        crash = self.submit(request)
        return crash if crash is not None else self.collect()

    def submit(self, request: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """Send ``request`` without waiting for the reply (``collect`` reads it); None, or
        ("crash", why) when the worker is already gone. The child reads a whole request
        before working on it, so this returns as soon as the bytes are written."""
        if self._pending:
            raise RuntimeError("submit: the previous request's reply has not been collected")
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            send(stdin, request)
        except (BrokenPipeError, OSError):
            code = self._proc.wait()
            return ("crash", f"exit code {code}: {self.stderr_tail()}")
        self._pending = True
        return None

    def collect(self, timeout: float | None = None) -> tuple[Any, ...]:
        """The reply to the last ``submit``: waits at most ``timeout`` seconds (default: the
        worker's), else kills the worker and answers ("crash", why)."""
        if not self._pending:
            raise RuntimeError("collect: no request was submitted")
        self._pending = False
        limit = self.timeout if timeout is None else float(timeout)
        stdout = self._proc.stdout
        assert stdout is not None
        try:
            ready, _, _ = select.select([stdout], [], [], limit)
            if not ready:
                self._kill()
                return ("crash", f"no answer within {limit:g} s (killed)")
            reply = recv(stdout)
        except (EOFError, BrokenPipeError, struct.error, pickle.UnpicklingError):
            code = self._proc.wait()
            return ("crash", f"exit code {code}: {self.stderr_tail()}")
        return tuple(reply)

    def stderr_tail(self, lines: int = 2) -> str:
        """Why the worker died: a Rust panic's message, else the last lines of stderr."""
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace").splitlines()
        panic = [
            line for i, line in enumerate(err)
            if "panicked at" in line or (i and "panicked at" in err[i - 1])
        ]
        if panic:
            why = " ".join(panic[:2])
        else:
            kept = [e for e in err if e.strip() and "Warning:" not in e and "[W:" not in e]
            why = " ".join(kept[-lines:])
        return re.sub(r"thread '[^']*' \(\d+\) ", "", why).strip()[:300]

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def _kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            self._proc.wait(timeout=10)
        self._kill()
        for stream in (self._proc.stdout, self._stderr):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.close()


# --------------------------------------------------------------------------------------
# The child side (numpy, the standard library and the runtime only)
# --------------------------------------------------------------------------------------


def _error_text(exc: BaseException) -> str:
    """The runtime's own message, on one line: tract's without its backtrace, ORT's (which
    starts with a long C++ signature) with the end kept, where the cause is."""
    text = " ".join(str(exc).split("Stack backtrace:")[0].split())
    if len(text) > 400:
        text = text[:160] + " ... " + text[-240:]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _TractRunner:
    def __init__(self) -> None:
        import tract

        self._tract = tract
        self._runnables: dict[str, Any] = {}

    def hello(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {"tract_version": version("tract")}

    def run(
        self, model_bytes: bytes, names: Sequence[str], arrays: Sequence[np.ndarray]
    ) -> tuple[list[np.ndarray], None, float]:
        digest = hashlib.sha1(model_bytes).hexdigest()
        if digest not in self._runnables:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.onnx")
                with open(path, "wb") as f:
                    f.write(model_bytes)
                onnx_ = self._tract.onnx()
                if hasattr(onnx_, "load"):  # tract >= 0.22
                    model = onnx_.load(path).into_model()
                else:  # tract 0.21
                    model = onnx_.model_for_path(path).into_optimized()
                self._runnables[digest] = model.into_runnable()
        start = time.perf_counter()
        outs = self._runnables[digest].run([np.asarray(a) for a in arrays])
        result = [np.asarray(o.to_numpy()) for o in outs]
        return result, None, time.perf_counter() - start


class _OrtEpRunner:
    """onnxruntime with the WebGPU plugin EP, the OpenVINO EP or the CUDA EP (no custom-op
    library: the function path); every new session's node placement is recorded (EP graph
    assignment + one profiled run)."""

    def __init__(self, mode: str) -> None:
        import onnxruntime as ort

        if mode == "cuda" and hasattr(ort, "preload_dlls"):
            # the CUDA runtime, cuBLAS and cuDNN from the nvidia-* wheels (torch's)
            with contextlib.suppress(Exception):
                ort.preload_dlls()
        self._ort = ort
        self._mode = mode
        self._devices: list[Any] | None = None
        self._sessions: dict[str, Any] = {}

    def _webgpu_devices(self) -> list[Any]:
        if self._devices is None:
            import onnxruntime_ep_webgpu as w

            self._ort.register_execution_provider_library("webgpu", w.get_library_path())
            self._devices = [d for d in self._ort.get_ep_devices() if d.ep_name == w.get_ep_name()]
            if not self._devices:
                raise RuntimeError(
                    "the WebGPU plugin lists no device (no Vulkan adapter? "
                    "ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER unset?)"
                )
        return self._devices

    def hello(self) -> dict[str, Any]:
        ort = self._ort
        info: dict[str, Any] = {
            "ort_version": ort.__version__, "available": ort.get_available_providers()
        }
        if self._mode == "webgpu":
            import importlib.metadata as md

            info["plugin_version"] = md.version("onnxruntime-ep-webgpu")
            info["devices"] = [
                (d.ep_name, str(d.device.type), d.device.vendor) for d in self._webgpu_devices()
            ]
        return info

    def _session(self, model_bytes: bytes, profile_dir: str) -> Any:
        ort = self._ort
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(profile_dir, "ep")
        if self._mode == "webgpu":
            so.add_provider_for_devices(self._webgpu_devices(), {})
            return ort.InferenceSession(model_bytes, so)
        if self._mode == "cuda":
            return ort.InferenceSession(model_bytes, so, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
        return ort.InferenceSession(model_bytes, so, providers=[
            ("OpenVINOExecutionProvider", {"device_type": "CPU", "precision": "FP32", "num_of_threads": "1"}),
            "CPUExecutionProvider",
        ])

    def _to_ort(self, a: np.ndarray) -> Any:
        a = np.asarray(a, order="C")
        if a.dtype.name == "bfloat16":
            return self._ort.OrtValue.ortvalue_from_numpy_with_onnx_type(a, 16)
        return self._ort.OrtValue.ortvalue_from_numpy(a)

    @staticmethod
    def _to_numpy(value: Any) -> np.ndarray:
        if value.data_type() != "tensor(bfloat16)":
            return np.asarray(value.numpy())
        import ctypes

        import ml_dtypes

        out = np.empty(value.shape(), dtype=ml_dtypes.bfloat16)
        if out.size:
            ctypes.memmove(out.ctypes.data, value.data_ptr(), out.nbytes)
        return out

    def _placement(self, sess: Any, profile_file: str) -> dict[str, Any]:
        assigned = []
        for sub in sess.get_provider_graph_assignment_info():
            for node in sub.get_nodes():
                assigned.append((sub.ep_name, node.op_type, node.name))
        events = {}
        with open(profile_file) as f:
            for e in json.load(f):
                if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
                    a = e.get("args", {})
                    types = [next(iter(t)) for t in a.get("input_type_shape", []) if t]
                    name = e["name"][: -len("_kernel_time")]
                    events[name] = (a.get("op_name", ""), a.get("provider", ""), types)
        return {"providers": sess.get_providers(), "assigned": assigned, "events": events,
                "ort_version": self._ort.__version__}

    def run(
        self, model_bytes: bytes, names: Sequence[str], arrays: Sequence[np.ndarray]
    ) -> tuple[list[np.ndarray], dict[str, Any] | None, float]:
        digest = hashlib.sha1(model_bytes).hexdigest()
        feeds = {n: self._to_ort(a) for n, a in zip(names, arrays)}
        if digest in self._sessions:
            start = time.perf_counter()
            outs = self._sessions[digest].run_with_ort_values(None, feeds)
            return [self._to_numpy(v) for v in outs], None, time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            sess = self._session(model_bytes, tmp)
            start = time.perf_counter()
            outs = [self._to_numpy(v) for v in sess.run_with_ort_values(None, feeds)]
            seconds = time.perf_counter() - start
            info = self._placement(sess, sess.end_profiling())
        self._sessions[digest] = sess
        return outs, info, seconds


class _CompiledRunner:
    """IREE, TVM or OpenVINO: the package's own ``CompiledPath`` (``runtimes._compiled``)
    compiles and runs here, so a crash in generated code or in the runtime kills this process
    only."""

    def __init__(self, mode: str) -> None:
        from onnx_smoothl1.parity import runtimes  # noqa: F401  (registers the paths)
        from onnx_smoothl1.parity.registry import PATHS

        self._path: Any = PATHS[mode]()

    def hello(self) -> dict[str, Any]:
        return {"fingerprint": self._path.fingerprint()}

    def run(
        self, model_bytes: bytes, names: Sequence[str], arrays: Sequence[np.ndarray]
    ) -> tuple[list[np.ndarray], dict[str, Any], float]:
        start = time.perf_counter()
        outs, compiled = self._path.local_run(model_bytes, arrays)
        return outs, {"compiled": compiled}, time.perf_counter() - start

    def prepare(self, specs: Sequence[Any]) -> list[str | None]:
        return [self._path.local_prepare(s) for s in specs]

    def run_group(
        self, spec: Any, arrays: Sequence[np.ndarray]
    ) -> tuple[list[np.ndarray], dict[str, Any], float]:
        start = time.perf_counter()
        outs, compiled = self._path.local_run_group(spec, arrays)
        return outs, {"compiled": compiled}, time.perf_counter() - start


def _runner(mode: str) -> _TractRunner | _OrtEpRunner | _CompiledRunner:
    if mode == "tract":
        return _TractRunner()
    if mode.startswith(PATH_MODE):
        return _CompiledRunner(mode[len(PATH_MODE):])
    return _OrtEpRunner(mode)


def serve(mode: str) -> None:
    """The worker's loop: answer requests on stdin until it closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a runtime's prints must not corrupt the protocol
    runner: _TractRunner | _OrtEpRunner | _CompiledRunner | None = None
    while True:
        try:
            request = recv(stdin)
        except EOFError:
            return
        try:
            if runner is None:
                runner = _runner(mode)
            kind = request[0]
            if kind == "hello":
                send(stdout, ("ok", runner.hello()))
            elif kind == "run" and len(request) == 4:
                _, model_bytes, names, arrays = request
                outs, placement, seconds = runner.run(model_bytes, names, arrays)
                send(stdout, ("ok", outs, placement, seconds))
            elif isinstance(runner, _CompiledRunner) and kind == "prepare" and len(request) == 2:
                send(stdout, ("ok", runner.prepare(request[1])))
            elif isinstance(runner, _CompiledRunner) and kind == "run_group" and len(request) == 3:
                send(stdout, ("ok", *runner.run_group(request[1], request[2])))
            else:
                raise ValueError(f"unknown request {kind!r} for mode {mode!r}")
        except Exception as exc:
            send(stdout, ("error", _error_text(exc)))


if __name__ == "__parity_worker__":
    serve(sys.argv[2])
