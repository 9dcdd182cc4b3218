"""Cross-runtime parity runner: every available path against PyTorch, on one grid of cases.

``run_grid()`` builds a grid of cases (shape x dtype x reduction x SmoothL1Loss's beta or
HuberLoss's delta), runs each case
through every execution path that is available here, and compares each output with PyTorch
in float64 through :func:`onnx_smoothl1.oracle.compare` (SPEC tolerances; nothing here
defines a tolerance of its own). The result is a path x dtype matrix: pass / fail with the
worst absolute and relative errors, or "unsupported: <reason>", and for every path what
really executed ("kernel", "function (inlined by ORT)", "inlined model", "<EP> ran the
compute nodes"). ``run_model_file()`` runs a user's model through every path instead.

Modules: ``cases`` (the grid), ``report`` (results, text/Markdown/JSON, environment),
``models`` (model helpers), ``worker`` (the subprocess for runtimes that can crash),
``placement`` (the EP placement proof), ``registry`` (``ParityPath``, ``register``,
``PATHS``), ``run`` (``run_grid``), ``model_file`` (``run_model_file``), ``write_cases``
(the ONNX backend-test layout), and ``runtimes/`` (one module per runtime; its
``__init__`` imports them in report order).
"""

from __future__ import annotations

from .cases import (
    BETAS,
    DELTAS,
    DTYPES,
    LOSSES,
    QUICK_BETAS,
    QUICK_DELTAS,
    QUICK_HUBER_SHAPES,
    QUICK_SHAPES,
    SHAPES,
    Case,
    dtype_name,
    grid,
    make_inputs,
)
from .limits import KnownLimit
from .model_file import AGREEMENT_RTOL, SYMBOLIC_DIM, ModelReport, random_feeds, run_model_file
from .models import (
    function_model,
    has_loss_functions,
    has_smoothl1_function,
    inline_model,
    name_nodes,
    node_only,
    specialise,
    with_ranks,
    with_static_shapes,
)
from .placement import CPU_EP, OPENVINO_EP, WEBGPU_EP, Placement, PlacementError
from .registry import DISABLE_ENV, PATHS, ParityPath, Unsupported, register, select_paths
from .report import (
    FAIL,
    PASS,
    UNSUPPORTED,
    CaseResult,
    Cell,
    Report,
    cpu_name,
    environment,
    isa_level,
)
from .run import evaluate, run_grid
from .runtimes import (  # noqa: F401  (importing registers every path, in report order)
    onnx_reference,
    openvino,
    ort_cuda,
    ort_cuda_function,
    ort_function,
    ort_kernel,
    ort_openvino_ep,
    ort_webgpu,
    pyop,
    torch,
    tract,
)
from .runtimes._ep import RUNTIMES_ENV, TIMEOUT_ENV, EpPath, unavailable_reason
from .runtimes._inlined import InlinedPath
from .runtimes._ort import OrtPath
from .runtimes.onnx_reference import ReferencePath
from .runtimes.openvino import OpenVinoPath
from .runtimes.ort_cuda import OrtCudaPath
from .runtimes.ort_cuda_function import OrtCudaFunctionPath
from .runtimes.ort_function import OrtFunctionPath
from .runtimes.ort_kernel import OrtKernelPath
from .runtimes.ort_openvino_ep import OPENVINO_PYTHON_ENV, OrtOpenVinoEpPath
from .runtimes.ort_webgpu import OrtWebGpuPath
from .runtimes.pyop import PythonOpPath
from .runtimes.torch import TorchPath
from .runtimes.tract import TractPath
from .worker import Worker

#: The execution-provider paths (each proves its placement).
EP_PATHS: tuple[type[EpPath], ...] = (OrtWebGpuPath, OrtOpenVinoEpPath)

__all__ = [
    "AGREEMENT_RTOL", "BETAS", "DELTAS", "LOSSES", "QUICK_DELTAS", "QUICK_HUBER_SHAPES",
    "CPU_EP", "DISABLE_ENV", "DTYPES", "EP_PATHS", "FAIL",
    "OPENVINO_EP", "OPENVINO_PYTHON_ENV", "PASS", "PATHS", "QUICK_BETAS", "QUICK_SHAPES",
    "RUNTIMES_ENV", "SHAPES", "SYMBOLIC_DIM", "TIMEOUT_ENV", "UNSUPPORTED", "WEBGPU_EP", "Case",
    "CaseResult", "Cell", "EpPath", "InlinedPath", "ModelReport", "OpenVinoPath",
    "OrtCudaFunctionPath", "OrtCudaPath", "OrtFunctionPath", "OrtKernelPath", "OrtOpenVinoEpPath", "OrtPath",
    "OrtWebGpuPath", "ParityPath", "Placement", "PlacementError", "PythonOpPath",
    "ReferencePath", "Report", "TorchPath", "TractPath", "Unsupported", "Worker", "cpu_name",
    "dtype_name", "environment", "evaluate", "function_model", "grid", "has_loss_functions", "has_smoothl1_function",
    "inline_model", "isa_level", "make_inputs", "name_nodes", "node_only", "random_feeds",
    "register", "run_grid", "run_model_file", "select_paths", "specialise", "unavailable_reason",
    "with_ranks", "with_static_shapes", "KnownLimit",
]
