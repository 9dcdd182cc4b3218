"""The base of the execution-provider paths: onnxruntime with one EP in a worker
subprocess (``parity.worker``, modes webgpu / openvino), every new session's placement
checked (``parity.placement``).

Both take the model as given: the node plus the model-local function, which onnxruntime
inlines before it partitions the graph, so what is proven is that the *function body* runs
on the EP. A path that cannot be set up at all (not set up,
``third_party/runtimes/<name>.unavailable``, the plugin does not register, no device) is
reported as unsupported with the reason. A crash or hang of the worker (lavapipe can do
either) and an error raised by the runtime itself are reported as unsupported with the
runtime's message; wrong numbers and CPU placement fail.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..cases import Case, dtype_name
from ..models import name_nodes, with_function, with_ranks
from ..placement import WEBGPU_EP, Placement, PlacementError, placement_from
from ..registry import ParityPath, Unsupported, first_line
from ..worker import Worker

ROOT = Path(__file__).resolve().parents[3]
#: Where setup_runtimes.sh writes <name>.ok / <name>.unavailable / webgpu.env.
RUNTIMES_ENV = "ONNX_SMOOTHL1_RUNTIMES_DIR"
#: Seconds one worker request may take (session creation compiles shaders: first call slow).
TIMEOUT_ENV = "ONNX_SMOOTHL1_EP_TIMEOUT"
#: How to set the EP runtimes up, where the user is: a source checkout has the script; a
#: wheel install does not (docs/parity.md, "Execution-provider paths", says what it does).
SETUP_HINT = (
    "run scripts/setup_runtimes.sh"
    if (ROOT / "scripts" / "setup_runtimes.sh").is_file()
    else "see docs/parity.md in the onnx-smoothl1 sources: scripts/setup_runtimes.sh sets it up"
)


def runtimes_dir() -> Path:
    return Path(os.environ.get(RUNTIMES_ENV) or ROOT / "third_party" / "runtimes")


def unavailable_reason(runtime: str) -> str | None:
    """The reason setup_runtimes.sh recorded for ``runtime`` (webgpu/openvino), or None."""
    path = runtimes_dir() / f"{runtime}.unavailable"
    if path.is_file():
        return " ".join(path.read_text().split()) or f"{path} exists"
    return None


class EpPath(ParityPath):
    """onnxruntime + one EP in a worker; every new session's placement is checked."""
    in_worker = True

    #: placement and numbers are ours to answer for: an error here is a failure
    third_party = False
    ep = ""
    runtime = ""  # the worker mode and setup_runtimes.sh's name (<runtime>.unavailable)
    #: Known limits of the EP, by grid-case dtype or shape label: such a case still runs,
    #: and if its nodes are not all placed on the EP (or the EP cannot build the session) it
    #: is reported unsupported with this reason and what was measured, instead of failing.
    #: Wrong numbers still fail. A user's model (``--model``) gets no such allowance.
    placement_limits: Mapping[str, str] = {}
    declare_ranks = False

    def __init__(self) -> None:
        super().__init__()
        self._worker: Worker | None = None
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

    def _start(self) -> Worker:
        if self._worker is None:
            self._worker = Worker(
                self.runtime, python=self._python(), env=self._env(), timeout=self.timeout, cwd=ROOT
            )
        return self._worker

    def _call(self, request: tuple[Any, ...], crash_is_unsupported: bool = True) -> tuple[Any, ...]:
        reply = self._start().call(request)
        if reply[0] == "crash":
            self.close()  # the next request starts a fresh worker
            if crash_is_unsupported:
                raise Unsupported(f"{self.name} worker crashed: {reply[1]}")
        return reply

    # -- running ------------------------------------------------------------------------
    def _model_for(self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> onnx.ModelProto:
        model = name_nodes(with_function(model))
        if self.declare_ranks:
            unknown = {
                i.name: np.ndim(feeds[i.name])
                for i in model.graph.input
                if i.name in feeds and not i.type.tensor_type.HasField("shape")
            }
            if unknown:
                model = with_ranks(model, unknown)
        return model

    def run_case(self, case: Case, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        limit = self.placement_limits.get(case.dtype) or self.placement_limits.get(case.shape)
        if limit is None:
            return super().run_case(case, x, y)
        try:
            return super().run_case(case, x, y)
        except (PlacementError, Unsupported) as exc:
            raise Unsupported(f"{limit} [measured: {first_line(exc, 160)}]") from exc

    def run_model(self, model, feeds, key=None):
        ck = None
        if isinstance(key, Case):
            ck = (*key.key, tuple(np.ndim(v) for v in feeds.values()))
        data = self._ranked.get(ck) if ck is not None else None
        if data is None:
            data = self._model_for(model, feeds).SerializeToString()
            if ck is not None:
                self._ranked[ck] = data
        names = list(feeds)
        reply = self._call(("run", data, names, [np.asarray(feeds[n]) for n in names]))
        if reply[0] == "error":
            raise Unsupported(f"{self.name}: {reply[1]}")
        _, outs, info, seconds = reply
        self.run_seconds.append(seconds)
        digest = hashlib.sha1(data).digest()
        if info is not None:
            self._proved[digest] = placement_from(info)
        placement = self._proved.get(digest)
        if placement is None:  # the worker was restarted and answered from a new session
            raise RuntimeError(f"{self.name}: no placement recorded for this model")
        self.last_placement = placement
        try:
            placement.check(self.ep)
        except PlacementError as exc:
            # A user's model (not a grid case, which run_case classifies) in an element type
            # the EP has no arithmetic for: a known limit, reported with the placement.
            limits = [self.placement_limits.get(dtype_name(v)) for v in feeds.values()]
            limit = next((x for x in limits if x), None)
            if limit is None or isinstance(key, Case):
                raise
            raise Unsupported(f"{limit} [measured: {first_line(exc, 160)}]") from exc
        self.proved(placement.what_ran(self.ep))
        return [np.asarray(o) for o in outs]

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (``#`` comments) of setup_runtimes.sh's env files."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out
