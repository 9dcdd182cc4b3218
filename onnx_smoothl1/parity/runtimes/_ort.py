"""The base of the onnxruntime paths in this process (function, kernel, CUDA, Python op):
one session per (loss, parameter, reduction, dtype), and a profiled run as the proof of what
ran (once per loss op type and dtype)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx

from ..cases import Case
from ..registry import ParityPath, Unsupported


def profile_providers(
    model: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    providers: Sequence[str],
    custom_op: object,
) -> list[tuple[str, str]]:
    """(op_type, execution provider) of every node event in one profiled run."""
    import onnxruntime as ort

    from ...runtime import inference_session, run

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.log_severity_level = 3
        options.profile_file_prefix = os.path.join(tmp, "parity")
        session = inference_session(
            model, providers=list(providers), custom_op=custom_op, options=options  # type: ignore[arg-type]
        )
        try:
            run(session, feeds)
        finally:
            profile = session.end_profiling()
        with open(profile) as f:
            events = json.load(f)
    return [
        (e["args"].get("op_name", ""), e["args"].get("provider", ""))
        for e in events
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")
    ]


class OrtPath(ParityPath):
    """onnxruntime in this process; subclasses choose the custom op and the providers and
    prove, once per dtype, from ORT's profile, what ran (``_prove``)."""

    custom_op: object = False
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

    def __init__(self) -> None:
        super().__init__()
        self._sessions: dict[object, Any] = {}
        #: dtype (or "model") -> what the profile proved ran
        self._proofs: dict[str, str] = {}
        self._refused: dict[str, str] = {}

    def _model_for(self, model: onnx.ModelProto) -> onnx.ModelProto:
        return model

    def _session(self, model: onnx.ModelProto, key: object) -> Any:
        from ...runtime import inference_session

        cache_key = key.key if isinstance(key, Case) else id(model)
        if cache_key not in self._sessions:
            self._sessions[cache_key] = inference_session(
                self._model_for(model), providers=list(self.providers), custom_op=self.custom_op  # type: ignore[arg-type]
            )
        return self._sessions[cache_key]

    def run_model(self, model, feeds, key=None):
        from ...runtime import run

        self._prove_once(model, feeds, key)
        return run(self._session(model, key), feeds)

    @staticmethod
    def _kind(model: onnx.ModelProto, key: object) -> str:
        """What one proof covers: a grid loss op type and dtype, or one user model."""
        return f"{key.op_type} {key.dtype}" if isinstance(key, Case) else f"model {id(model)}"

    def _prove_once(self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], key: object) -> None:
        kind = self._kind(model, key)
        if kind in self._refused:
            raise Unsupported(self._refused[kind])
        if kind not in self._proofs:
            self._proofs[kind] = self._prove(model, feeds, kind)
        self.proved(self._proofs[kind])

    def _prove(self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], kind: str) -> str:
        """Profile one run; return what ran (raise when it is not what this path claims)."""
        raise NotImplementedError
