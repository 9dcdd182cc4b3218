"""Execution-provider parity paths: onnxruntime with the WebGPU plugin EP, and with the
OpenVINO EP, each in a worker subprocess, each proving where the nodes ran.

- ``ort-webgpu``: onnxruntime (this venv's) + ``onnxruntime-ep-webgpu``, registered with
  ``ort.register_execution_provider_library`` and selected with
  ``SessionOptions.add_provider_for_devices``. Without a GPU it runs on Mesa's lavapipe (a
  Vulkan driver on the CPU), which ``scripts/setup_runtimes.sh`` unpacks into
  ``third_party/mesa``; the worker gets ``third_party/runtimes/webgpu.env``
  (``VK_ICD_FILENAMES``, ``LD_LIBRARY_PATH``, ``ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER=1``).
- ``ort-openvino-ep``: ``onnxruntime-openvino`` (its own ``onnxruntime`` module, so it lives
  in ``.venv-ort-openvino``), ``OpenVINOExecutionProvider`` with ``device_type=CPU``,
  ``precision=FP32``. The EP rejects inputs of unknown rank, so every input gets its rank
  declared (dimensions symbolic), as the ``openvino`` path does.

Both take the model as given: the node plus the model-local function, which onnxruntime
inlines before it partitions the graph, so what is proven is that the *function body* runs
on the EP.

Placement proof. onnxruntime falls back to ``CPUExecutionProvider`` silently, for a whole
session (the EP could not be created) or per node (the EP has no kernel for that op/type).
So for every new session the worker records ``session.get_providers()``, the EP graph
assignment (``session.record_ep_graph_assignment_info`` =>
``get_provider_graph_assignment_info()``: every node of the partitioned graph and its EP)
and one profiled run (node events carry the provider and the input types). A case fails
(a plain ``PlacementError``, never ``Unsupported``) when the EP is not the session's first
provider, or when any *compute* node was placed on CPU. Allowed on CPU (shape bookkeeping,
which ORT deliberately keeps on CPU):

- ``Shape``, ``Size``, ``Constant`` (they read no tensor data), and
- nodes of ``SHAPE_ARITHMETIC_OPS`` (Cast, Mod, Sub, Add, Mul, Div, Reshape, ...) whose
  inputs are all integer tensors (int32/int64): the arithmetic on sizes and pads, e.g.
  ``Cast(Size(x))`` or ``Mod(Size(x), block)``. The project's data are floating point, so an
  integer-only node is shape bookkeeping; a float (or bool) input makes it a compute node.

Everything else on CPU is listed in the failure message. A path that cannot be set up at all
(not set up, ``third_party/runtimes/<name>.unavailable``, the plugin does not register, no
device) is reported as unsupported with the reason. A crash or hang of the worker (lavapipe
can do either) and an error raised by the runtime itself are reported as unsupported with
the runtime's message; wrong numbers and CPU placement fail.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import select
import struct
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from . import parity, spec

ROOT = Path(__file__).resolve().parent.parent
#: Where setup_runtimes.sh writes <name>.ok / <name>.unavailable / webgpu.env.
RUNTIMES_ENV = "ONNX_SMOOTHL1_RUNTIMES_DIR"
#: The interpreter of the onnxruntime-openvino venv (default ROOT/.venv-ort-openvino).
OPENVINO_PYTHON_ENV = "ONNX_SMOOTHL1_ORT_OPENVINO_PYTHON"
#: Seconds one worker request may take (session creation compiles shaders: first call slow).
TIMEOUT_ENV = "ONNX_SMOOTHL1_EP_TIMEOUT"

WEBGPU_EP = "WebGpuExecutionProvider"
OPENVINO_EP = "OpenVINOExecutionProvider"
CPU_EP = "CPUExecutionProvider"

#: Read no tensor data: allowed on CPU whatever their input types.
SHAPE_SOURCE_OPS = frozenset({"Shape", "Size", "Constant", "ConstantOfShape"})
#: Allowed on CPU when every input is an integer tensor (shape/size/pad arithmetic).
SHAPE_ARITHMETIC_OPS = frozenset({
    "Cast", "Mod", "Sub", "Add", "Mul", "Div", "Neg", "Max", "Min", "Reshape", "Unsqueeze",
    "Squeeze", "Concat", "Gather", "Slice", "Range", "Expand", "Identity",
})
_INTEGER_TYPES = frozenset({"int64", "int32", "uint64", "uint32"})

#: Installed by scripts/setup_runtimes.sh.
SETUP_HINT = "run scripts/setup_runtimes.sh"


def runtimes_dir() -> Path:
    return Path(os.environ.get(RUNTIMES_ENV) or ROOT / "third_party" / "runtimes")


def unavailable_reason(runtime: str) -> str | None:
    """The reason setup_runtimes.sh recorded for ``runtime`` (webgpu/openvino), or None."""
    path = runtimes_dir() / f"{runtime}.unavailable"
    if path.is_file():
        return " ".join(path.read_text().split()) or f"{path} exists"
    return None


class PlacementError(RuntimeError):
    """Compute nodes ran on CPU (or the EP was not used at all): a failure, not unsupported."""


# --------------------------------------------------------------------------------------
# Placement
# --------------------------------------------------------------------------------------


@dataclass
class Placement:
    """Where one session put its nodes (from the worker)."""

    providers: list[str]
    #: (ep, op_type, node name) for every node of the partitioned graph
    assigned: list[tuple[str, str, str]]
    #: node name -> (op_type, provider, input element types) from one profiled run
    events: dict[str, tuple[str, str, list[str]]] = field(default_factory=dict)
    ort_version: str = ""

    @property
    def nodes(self) -> list[tuple[str, str, str]]:
        """(ep, op_type, name) of every node: the assignment record, completed from the
        profile (the WebGPU plugin EP records only the CPU nodes in the assignment info in
        onnxruntime 1.30; a compiling EP's fused nodes appear in the profile under their
        own names)."""
        out = list(self.assigned)
        known = {name for _, _, name in out}
        for name, (op, provider, _) in self.events.items():
            if name not in known and provider:
                out.append((provider, op, name))
        return out

    def on(self, ep: str) -> list[tuple[str, str]]:
        return [(op, name) for e, op, name in self.nodes if e == ep]

    def cpu_compute_nodes(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """The CPU-placed nodes outside the allow-list: (op_type, name, input types)."""
        bad = []
        for ep, op, name in self.nodes:
            if ep != CPU_EP or op in SHAPE_SOURCE_OPS:
                continue
            types = self.events.get(name, ("", "", None))[2]
            if op in SHAPE_ARITHMETIC_OPS and types and set(types) <= _INTEGER_TYPES:
                continue
            bad.append((op, name, tuple(types or ())))
        return bad

    def check(self, ep: str) -> None:
        """Raise PlacementError unless ``ep`` ran every compute node."""
        if not self.providers or self.providers[0] != ep:
            raise PlacementError(
                f"{ep} is not the session's provider (onnxruntime {self.ort_version} chose "
                f"{', '.join(self.providers) or 'nothing'})"
            )
        others = sorted({e for e, _, _ in self.nodes} - {ep, CPU_EP})
        if others:
            raise PlacementError(f"nodes assigned to unexpected providers {', '.join(others)}")
        bad = self.cpu_compute_nodes()
        if bad:
            # Op(input types) with counts first (what a truncated grid line shows), then names.
            kinds: dict[str, int] = {}
            for op, _, types in bad:
                key = f"{op}({','.join(types) if types else 'not run'})"
                kinds[key] = kinds.get(key, 0) + 1
            summary = ", ".join(k + (f" x{n}" if n > 1 else "") for k, n in kinds.items())
            raise PlacementError(
                f"{len(bad)} compute node(s) ran on {CPU_EP}, not {ep}"
                f"{' (none on ' + ep + ')' if not self.on(ep) else ''}: {summary}; "
                f"nodes: {', '.join(name for _, name, _ in bad)}"
            )
        if not self.on(ep):
            raise PlacementError(f"no node was placed on {ep}")


# --------------------------------------------------------------------------------------
# The worker
# --------------------------------------------------------------------------------------

#: A standalone script (numpy + onnxruntime only: it also runs in .venv-ort-openvino).
#: argv[1]: "webgpu" or "openvino". Requests, length-prefixed pickles on stdin:
#: ("hello",) -> ("ok", info); ("run", model bytes, names, arrays) -> ("ok", outputs,
#: placement dict or None: only for a new session) or ("error", message).
_WORKER_SOURCE = r"""
import hashlib, json, os, pickle, struct, sys, tempfile, time
import numpy as np

def recv(stream):
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(n))

def send(stream, obj):
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()

MODE = sys.argv[1]
_devices = None

def to_ort(ort, a):
    a = np.asarray(a, order="C")
    if a.dtype.name == "bfloat16":  # ml_dtypes: numpy has no bfloat16 of its own
        return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(a, 16)
    return ort.OrtValue.ortvalue_from_numpy(a)

def to_numpy(value):
    if value.data_type() != "tensor(bfloat16)":
        return value.numpy()
    import ctypes, ml_dtypes
    out = np.empty(value.shape(), dtype=ml_dtypes.bfloat16)
    if out.size:
        ctypes.memmove(out.ctypes.data, value.data_ptr(), out.nbytes)
    return out

def run(sess, feeds):
    return [to_numpy(v) for v in sess.run_with_ort_values(None, feeds)]

def webgpu_devices(ort):
    global _devices
    if _devices is None:
        import onnxruntime_ep_webgpu as w
        ort.register_execution_provider_library("webgpu", w.get_library_path())
        _devices = [d for d in ort.get_ep_devices() if d.ep_name == w.get_ep_name()]
        if not _devices:
            raise RuntimeError("the WebGPU plugin lists no device (no Vulkan adapter? "
                               "ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER unset?)")
    return _devices

def session(ort, model_bytes, profile_dir):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    if profile_dir:
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(profile_dir, "ep")
    if MODE == "webgpu":
        so.add_provider_for_devices(webgpu_devices(ort), {})
        return ort.InferenceSession(model_bytes, so)
    return ort.InferenceSession(model_bytes, so, providers=[
        ("OpenVINOExecutionProvider", {"device_type": "CPU", "precision": "FP32"}),
        "CPUExecutionProvider"])

def placement(ort, sess, profile_file):
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
                events[e["name"][: -len("_kernel_time")]] = (a.get("op_name", ""), a.get("provider", ""), types)
    return {"providers": sess.get_providers(), "assigned": assigned, "events": events,
            "ort_version": ort.__version__}

def main():
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr
    import onnxruntime as ort
    sessions = {}
    while True:
        try:
            request = recv(stdin)
        except EOFError:
            return
        try:
            if request[0] == "hello":
                info = {"ort_version": ort.__version__, "available": ort.get_available_providers()}
                if MODE == "webgpu":
                    import importlib.metadata as md
                    info["plugin_version"] = md.version("onnxruntime-ep-webgpu")
                    info["devices"] = [(d.ep_name, str(d.device.type), d.device.vendor)
                                       for d in webgpu_devices(ort)]
                send(stdout, ("ok", info))
                continue
            _, model_bytes, names, arrays = request
            digest = hashlib.sha1(model_bytes).hexdigest()
            feeds = {n: to_ort(ort, a) for n, a in zip(names, arrays)}
            if digest in sessions:
                t = time.perf_counter()
                outs = run(sessions[digest], feeds)
                send(stdout, ("ok", outs, None, time.perf_counter() - t))
                continue
            with tempfile.TemporaryDirectory() as tmp:
                sess = session(ort, model_bytes, tmp)
                t = time.perf_counter()
                outs = run(sess, feeds)
                seconds = time.perf_counter() - t
                info = placement(ort, sess, sess.end_profiling())
            sessions[digest] = sess
            send(stdout, ("ok", outs, info, seconds))
        except Exception as exc:
            # ORT's messages start with a long C++ signature; keep the end, where the cause is.
            text = " ".join(str(exc).split())
            if len(text) > 400:
                text = text[:160] + " ... " + text[-240:]
            send(stdout, ("error", f"{type(exc).__name__}: " + text))

main()
"""


class _EpWorker:
    """A subprocess running one EP; a crash or hang there cannot take the runner down."""

    def __init__(self, python: str, mode: str, env: Mapping[str, str], timeout: float) -> None:
        self.timeout = timeout
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [python, "-c", _WORKER_SOURCE, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=dict(env),
            cwd=str(ROOT),
        )

    def call(self, request: tuple) -> tuple:
        """The reply, or ("crash", why) when the worker died or did not answer in time."""
        try:
            data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.write(struct.pack("<Q", len(data)) + data)
            self._proc.stdin.flush()
            ready, _, _ = select.select([self._proc.stdout], [], [], self.timeout)
            if not ready:
                self._kill()
                return ("crash", f"no answer within {self.timeout:.0f} s (killed)")
            head = self._proc.stdout.read(8)
            if len(head) < 8:
                raise EOFError
            (n,) = struct.unpack("<Q", head)
            body = self._proc.stdout.read(n)
            if len(body) < n:
                raise EOFError
            return pickle.loads(body)
        except (EOFError, BrokenPipeError, struct.error, pickle.UnpicklingError):
            code = self._proc.wait()
            return ("crash", f"exit code {code}: {self.stderr_tail()}")

    def stderr_tail(self, lines: int = 2) -> str:
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace").splitlines()
        err = [l for l in err if l.strip() and "Warning:" not in l and "[W:" not in l]
        return " ".join(err[-lines:]).strip()[:300]

    def _kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._proc.stdin.close()
            self._proc.wait(timeout=10)
        self._kill()
        self._stderr.close()


# --------------------------------------------------------------------------------------
# The paths
# --------------------------------------------------------------------------------------


class _EpPath(parity.ParityPath):
    """onnxruntime + one EP in a worker; every new session's placement is checked."""

    #: placement and numbers are ours to answer for: an error here is a failure
    third_party = False
    ep = ""
    runtime = ""  # setup_runtimes.sh's name: third_party/runtimes/<runtime>.unavailable
    #: Known limits of the EP, by grid-case dtype or shape label: such a case still runs,
    #: and if its nodes are not all placed on the EP (or the EP cannot build the session) it
    #: is reported unsupported with this reason and what was measured, instead of failing.
    #: Wrong numbers still fail. A user's model (``--model``) gets no such allowance.
    placement_limits: dict[str, str] = {}
    declare_ranks = False

    def __init__(self) -> None:
        super().__init__()
        self._worker: _EpWorker | None = None
        self._proved: dict[bytes, Placement] = {}
        self._ranked: dict[object, bytes] = {}
        #: per-run wall time inside the worker (seconds), for reports
        self.run_seconds: list[float] = []
        self.last_placement: Placement | None = None

    # -- set-up -------------------------------------------------------------------------
    def _python(self) -> str:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    @property
    def timeout(self) -> float:
        return float(os.environ.get(TIMEOUT_ENV) or 120.0)

    def _why_unavailable(self) -> str | None:
        reason = unavailable_reason(self.runtime)
        if reason:
            return reason
        reason = self._not_set_up()
        if reason:
            return reason
        status, *rest = self._call(("hello",), crash_is_unsupported=False)
        if status != "ok":
            return f"{self.name} worker: {rest[0]}"
        info = rest[0]
        if self.ep not in info.get("available", []) and self.ep != WEBGPU_EP:
            return f"onnxruntime {info['ort_version']} has no {self.ep} (has {', '.join(info['available'])})"
        self.notes.append(self._describe(info))
        return None

    def _not_set_up(self) -> str | None:
        return None

    def _describe(self, info: Mapping[str, Any]) -> str:
        return f"onnxruntime {info['ort_version']}"

    def _start(self) -> _EpWorker:
        if self._worker is None:
            self._worker = _EpWorker(self._python(), self.runtime, self._env(), self.timeout)
        return self._worker

    def _call(self, request: tuple, crash_is_unsupported: bool = True) -> tuple:
        reply = self._start().call(request)
        if reply[0] == "crash":
            self._worker.close()
            self._worker = None  # the next request starts a fresh one
            if crash_is_unsupported:
                raise parity.Unsupported(f"{self.name} worker crashed: {reply[1]}")
        return reply

    # -- running ------------------------------------------------------------------------
    def _model_for(self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> onnx.ModelProto:
        if not parity.has_smoothl1_function(model) and any(
            (n.domain, n.op_type) == (spec.DOMAIN, spec.OP_TYPE)
            for n in spec.walk_nodes(model.graph.node)
        ):
            from .function import attach_function

            work = onnx.ModelProto()
            work.CopyFrom(model)
            model = attach_function(work)
        model = name_nodes(model)
        if self.declare_ranks:
            unknown = {
                i.name: np.ndim(feeds[i.name])
                for i in model.graph.input
                if i.name in feeds and not i.type.tensor_type.HasField("shape")
            }
            if unknown:
                model = parity.with_ranks(model, unknown)
        return model

    def run_case(self, case, x, y):
        limit = self.placement_limits.get(case.dtype) or self.placement_limits.get(case.shape)
        if limit is None:
            return super().run_case(case, x, y)
        try:
            return super().run_case(case, x, y)
        except (PlacementError, parity.Unsupported) as exc:
            raise parity.Unsupported(f"{limit} [measured: {parity._first_line(exc, 160)}]") from exc

    def run_model(self, model, feeds, key=None):
        ck = None
        if isinstance(key, parity.Case):
            ck = (key.beta, key.reduction, key.dtype, tuple(np.ndim(v) for v in feeds.values()))
        data = self._ranked.get(ck) if ck is not None else None
        if data is None:
            data = self._model_for(model, feeds).SerializeToString()
            if ck is not None:
                self._ranked[ck] = data
        names = list(feeds)
        reply = self._call(("run", data, names, [np.asarray(feeds[n]) for n in names]))
        if reply[0] == "error":
            raise parity.Unsupported(f"{self.name}: {reply[1]}")
        _, outs, info, seconds = reply
        self.run_seconds.append(seconds)
        digest = hashlib.sha1(data).digest()
        if info is not None:
            placement = Placement(
                list(info["providers"]), [tuple(a) for a in info["assigned"]],
                {k: tuple(v) for k, v in info["events"].items()}, info.get("ort_version", ""),
            )
            self._proved[digest] = placement
        placement = self._proved.get(digest)
        if placement is None:  # the worker was restarted and answered from a new session
            raise RuntimeError(f"{self.name}: no placement recorded for this model")
        self.last_placement = placement
        try:
            placement.check(self.ep)
        except PlacementError as exc:
            # A user's model (not a grid case, which run_case classifies) in an element type
            # the EP has no arithmetic for: a known limit, reported with the placement.
            limits = [self.placement_limits.get(_dtype_name(v)) for v in feeds.values()]
            limit = next((x for x in limits if x), None)
            if limit is None or isinstance(key, parity.Case):
                raise
            raise parity.Unsupported(f"{limit} [measured: {parity._first_line(exc, 160)}]") from exc
        return [np.asarray(o) for o in outs]

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None


def _dtype_name(array: np.ndarray) -> str:
    """``spec.DTYPES`` name of an input's element type ('' for the rest)."""
    dtype = np.asarray(array).dtype
    from .oracle import NUMPY_DTYPES

    return next((k for k, v in NUMPY_DTYPES.items() if v == dtype), "")


def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose unnamed nodes (graph, subgraphs, model-local functions) get
    unique names: the placement record and the profile name nodes by their names, and the
    function body's nodes have none."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    taken: set[str] = set()
    counter = [0]

    def nodes(container, prefix):
        for node in container:
            if not node.name or node.name in taken:
                while True:
                    counter[0] += 1
                    name = f"{prefix}{node.op_type}_{counter[0]}"
                    if name not in taken:
                        break
                node.name = name
            taken.add(node.name)
            for attr in node.attribute:
                if attr.HasField("g"):
                    nodes(attr.g.node, prefix)
                for g in attr.graphs:
                    nodes(g.node, prefix)

    nodes(out.graph.node, "")
    for function in out.functions:
        nodes(function.node, f"{function.name}/")
    return out


def _read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


class OrtWebGpuPath(_EpPath):
    name = "ort-webgpu"
    title = "onnxruntime + WebGPU plugin EP (Mesa lavapipe without a GPU), model-local function, worker"
    ep = WEBGPU_EP
    runtime = "webgpu"
    placement_limits = {
        "float64": "WebGPU (WGSL) has no 64-bit floats: the WebGPU EP has no float64 kernels",
        "bfloat16": "WebGPU (WGSL) has no bfloat16: the WebGPU EP has no bfloat16 kernels",
    }

    def _not_set_up(self):
        import importlib.util

        if importlib.util.find_spec("onnxruntime_ep_webgpu") is None:
            return f"onnxruntime-ep-webgpu is not installed ({SETUP_HINT})"
        if not (runtimes_dir() / "webgpu.env").is_file():
            return f"{runtimes_dir() / 'webgpu.env'} does not exist ({SETUP_HINT})"
        icd = self._env().get("VK_ICD_FILENAMES", "")
        if icd and not Path(icd).is_file():
            return f"VK_ICD_FILENAMES={icd} does not exist ({SETUP_HINT})"
        return None

    def _python(self):
        import sys

        return sys.executable

    def _env(self):
        env = dict(os.environ)
        path = runtimes_dir() / "webgpu.env"
        if path.is_file():
            for k, v in _read_env_file(path).items():
                if k == "LD_LIBRARY_PATH" and env.get(k):
                    v = f"{v}:{env[k]}"
                env[k] = v
        return env

    def _describe(self, info):
        devices = "; ".join(f"{t} {v}" for _, t, v in info.get("devices", []))
        return (
            f"onnxruntime {info['ort_version']} + onnxruntime-ep-webgpu "
            f"{info.get('plugin_version', '?')}, device {devices or '?'}"
        )


class OrtOpenVinoEpPath(_EpPath):
    name = "ort-openvino-ep"
    title = "onnxruntime-openvino OpenVINOExecutionProvider (CPU, FP32), model-local function, worker"
    ep = OPENVINO_EP
    runtime = "openvino"
    declare_ranks = True
    placement_limits = {
        "float64": "OpenVINO's CPU plugin has no float64 arithmetic: the EP leaves float64 "
        "nodes to the CPU provider",
        "bfloat16": "onnxruntime-openvino 1.24 takes no bfloat16 Cast: the input and result "
        "casts run on the CPU provider",
        "rank0": "onnxruntime-openvino 1.24 leaves rank-0 Sub/Abs on the CPU provider, and "
        "its session initialisation fails on rank-0 reductions (SaveInitializedTensors: "
        "'!utils::HasExternalDataInMemory(tensor_proto) was false')",
    }

    def _python(self):
        return os.environ.get(OPENVINO_PYTHON_ENV) or str(ROOT / ".venv-ort-openvino" / "bin" / "python")

    def _not_set_up(self):
        if not Path(self._python()).is_file():
            return f"{self._python()} does not exist ({SETUP_HINT})"
        return None

    def _env(self):
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return env

    def _describe(self, info):
        return f"onnxruntime-openvino {info['ort_version']}, device_type CPU, precision FP32"


#: For parity.PATHS (see the module docstring of parity for the matrix order).
EP_PATHS: tuple[type[parity.ParityPath], ...] = (OrtWebGpuPath, OrtOpenVinoEpPath)

# parity.py adds EP_PATHS to PATHS at its end (it sets _EP_PATHS_PENDING, then imports this
# module). When this module is imported first, parity's import of it saw it half-built, so
# the paths are added here; nothing is registered unless parity asks for it.
if getattr(parity, "_EP_PATHS_PENDING", False):
    parity.PATHS.update((p.name, p) for p in EP_PATHS)
