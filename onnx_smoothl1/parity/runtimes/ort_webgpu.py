"""``ort-webgpu``: onnxruntime (this venv's) + ``onnxruntime-ep-webgpu``, registered with
``ort.register_execution_provider_library`` and selected with
``SessionOptions.add_provider_for_devices``, in a worker. Without a GPU it runs on Mesa's
lavapipe (a Vulkan driver on the CPU), which ``scripts/setup_runtimes.sh`` unpacks into
``third_party/mesa``; the worker gets ``third_party/runtimes/webgpu.env``
(``VK_ICD_FILENAMES``, ``LD_LIBRARY_PATH``, ``ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER=1``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from ..placement import WEBGPU_EP
from ..registry import register
from ._ep import SETUP_HINT, EpPath, read_env_file, runtimes_dir


@register
class OrtWebGpuPath(EpPath):
    name = "ort-webgpu"
    title = "onnxruntime + WebGPU plugin EP (Mesa lavapipe without a GPU), model-local function, worker"
    ep = WEBGPU_EP
    runtime = "webgpu"
    placement_limits = {
        "float64": "WebGPU (WGSL) has no 64-bit floats: the WebGPU EP has no float64 kernels",
        "bfloat16": "WebGPU (WGSL) has no bfloat16: the WebGPU EP has no bfloat16 kernels",
    }

    def _not_set_up(self):
        if importlib.util.find_spec("onnxruntime_ep_webgpu") is None:
            return f"onnxruntime-ep-webgpu is not installed ({SETUP_HINT})"
        if not (runtimes_dir() / "webgpu.env").is_file():
            return f"{runtimes_dir() / 'webgpu.env'} does not exist ({SETUP_HINT})"
        icd = self._env().get("VK_ICD_FILENAMES", "")
        if icd and not Path(icd).is_file():
            return f"VK_ICD_FILENAMES={icd} does not exist ({SETUP_HINT})"
        return None

    def _python(self):
        return sys.executable

    def _env(self):
        env = dict(os.environ)
        path = runtimes_dir() / "webgpu.env"
        if path.is_file():
            for k, v in read_env_file(path).items():
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
