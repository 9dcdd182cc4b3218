"""Put on PYTHONPATH to make ``import torch`` fail as on a plain ``pip install onnx-smoothl1``
(torch is an optional extra): tests run the CLI this way (tests/test_no_torch.py)."""

import importlib.abc
import sys


class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by tests/_no_torch)")
        return None


sys.meta_path.insert(0, _NoTorch())
