"""Put on PYTHONPATH (``conftest.hidden_env``) to make the packages named in
``ONNX_SMOOTHL1_TEST_HIDE`` (comma-separated top-level names) fail to import, as where they are
not installed: torch (an optional extra), onnxruntime (no hard dependency: the cpu/gpu extras
bring one), onnxruntime_extensions. Tests run the CLI and the API this way in a subprocess."""

import importlib.abc
import os
import sys

_HIDDEN = {n.strip() for n in os.environ.get("ONNX_SMOOTHL1_TEST_HIDE", "").split(",") if n.strip()}


class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by tests/_hide)")
        return None


if _HIDDEN:
    sys.meta_path.insert(0, _Hide())
