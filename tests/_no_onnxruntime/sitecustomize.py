"""Put on PYTHONPATH to make ``import onnxruntime`` fail, as in an environment where no
onnxruntime distribution is installed (onnxruntime is not a hard dependency: the package's
cpu/gpu extras bring one). tests/test_doctor.py runs the CLI this way."""

import importlib.abc
import sys


class _NoOnnxRuntime(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by tests/_no_onnxruntime)")
        return None


sys.meta_path.insert(0, _NoOnnxRuntime())
