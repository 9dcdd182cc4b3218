"""One module per runtime adapter; importing a module registers its path. The import order
is the report's row order. Adding a runtime: one new module here and one line below."""

# ruff: noqa: I001  (the import order is the report's row order, not alphabetical)
from . import torch  # noqa: F401  (each import registers that module's path)
from . import ort_function  # noqa: F401
from . import ort_kernel  # noqa: F401
from . import ort_cuda  # noqa: F401
from . import ort_cuda_function  # noqa: F401
from . import pyop  # noqa: F401
from . import onnx_reference  # noqa: F401
from . import openvino  # noqa: F401
from . import tract  # noqa: F401
from . import ort_webgpu  # noqa: F401
from . import ort_openvino_ep  # noqa: F401
from . import iree  # noqa: F401
from . import tvm  # noqa: F401
from . import onnx2torch  # noqa: F401
