"""The CUDA kernel (CUDAExecutionProvider) against PyTorch, itself, and the CPU kernel.

Every test here is marked ``cuda`` and skipped unless onnxruntime offers the
CUDAExecutionProvider, PyTorch sees a GPU and the custom-op library is available (on the GPU
machine: ``custom_op/gpu_check.sh`` builds it with CUDA and points ONNX_SMOOTHL1_LIBRARY at
it). Sessions disable the CPU fallback (``session.disable_cpu_ep_fallback``), so a library
built without the CUDA kernel fails loudly instead of quietly testing the CPU kernel.

Small shapes go through ``run_host`` (host arrays, ORT copies them); large ones stay on
the GPU: torch tensors bound with IOBinding, the float64 reference computed by torch on the
GPU, compared with SPEC's tolerances (``oracle.compare`` for scalars, the same rule on the
GPU for 'none').
"""

from __future__ import annotations

import ctypes
import functools
import os

import numpy as np
import onnx
import pytest
from conftest import make_inputs, stable_seed

import onnx_smoothl1 as sl1
from onnx_smoothl1 import oracle, runtime

ort = pytest.importorskip("onnxruntime")

#: Set by custom_op/gpu_check.sh: on the GPU machine a missing CUDA EP or GPU is a failure,
#: not a reason to skip.
REQUIRED = bool(os.environ.get("ONNX_SMOOTHL1_REQUIRE_CUDA"))
HAS_CUDA_EP = "CUDAExecutionProvider" in ort.get_available_providers()

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not HAS_CUDA_EP and not REQUIRED,
        reason="onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu; see custom_op/gpu_check.sh)",
    ),
]

DTYPES = ["float32", "float64", "float16", "bfloat16"]
BETAS = [0.0, 0.5, 1.0]
SMALL_SHAPES = {
    "rank0": ((), ()),
    "empty": ((0,), (0,)),
    "odd": ((2**20 + 3,), (2**20 + 3,)),
    "3x5x7": ((3, 5, 7), (3, 5, 7)),
    "broadcast": ((4, 1, 3), (5, 3)),
    "broadcast-scalar": ((33, 65), ()),
}
ONNX_TYPES = {
    "float16": onnx.TensorProto.FLOAT16,
    "bfloat16": onnx.TensorProto.BFLOAT16,
    "float32": onnx.TensorProto.FLOAT,
    "float64": onnx.TensorProto.DOUBLE,
}


@pytest.fixture(scope="module")
def torch_cuda():
    """torch with a usable GPU; the CUDA runtime libraries loaded for onnxruntime."""
    missing = pytest.fail if REQUIRED else pytest.skip
    if not HAS_CUDA_EP:
        missing(f"onnxruntime {ort.__version__} ({ort.__file__}) has no CUDAExecutionProvider")
    try:
        import torch
    except ImportError:
        missing("torch is not installed")
    if not torch.cuda.is_available():
        missing("torch sees no CUDA device")
    if hasattr(ort, "preload_dlls"):
        try:  # cuDNN/cuBLAS/CUDA runtime from the nvidia-* wheels torch brings
            ort.preload_dlls()
        except Exception as e:  # torch has loaded most of them already; sessions will tell
            print(f"onnxruntime.preload_dlls() failed: {e}")
    if not sl1.has_custom_op():
        pytest.fail("CUDAExecutionProvider present but the custom-op library is not available")
    return torch


def torch_dtype(torch, dtype: str):
    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
            "float64": torch.float64}[dtype]


def cuda_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # Fail session creation if the node is not taken by the CUDA EP (library without CUDA
    # kernels): every test here must exercise the CUDA kernel.
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return options


@functools.cache
def model_bytes(beta: float, reduction: str, dtype: str) -> bytes:
    return sl1.make_model(beta=beta, reduction=reduction, dtype=dtype).SerializeToString()


@functools.cache
def cuda_session(beta: float, reduction: str, dtype: str):
    return sl1.inference_session(
        model_bytes(beta, reduction, dtype),
        providers=["CUDAExecutionProvider"],
        custom_op=True,
        options=cuda_options(),
    )


@functools.cache
def cpu_session(beta: float, reduction: str, dtype: str):
    return sl1.inference_session(model_bytes(beta, reduction, dtype), providers=["CPUExecutionProvider"],
                                 custom_op=True)


def torch_on_cuda(torch, x: np.ndarray, y: np.ndarray, *, beta: float, reduction: str) -> np.ndarray:
    """PyTorch's own result on the GPU, in the inputs' dtype (what users compare against)."""
    def to_dev(a):
        a = np.asarray(a)
        if a.dtype == oracle.NUMPY_DTYPES["bfloat16"]:
            return torch.from_numpy(a.astype(np.float32)).to("cuda", torch.bfloat16)
        return torch.from_numpy(a.copy()).to("cuda")

    out = torch.nn.functional.smooth_l1_loss(to_dev(x), to_dev(y), reduction=reduction, beta=oracle.as_beta(beta))
    if out.dtype == torch.bfloat16:
        return out.float().cpu().numpy().astype(oracle.NUMPY_DTYPES["bfloat16"])
    return out.cpu().numpy()


def _host_value(a) -> ort.OrtValue:
    a = np.asarray(a, order="C")
    if a.dtype == oracle.NUMPY_DTYPES["bfloat16"]:  # numpy has no bfloat16: spell it out
        return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(a, onnx.TensorProto.BFLOAT16)
    return ort.OrtValue.ortvalue_from_numpy(a)


def run_host(session, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """One Run with host arrays (ORT copies them to the GPU and the output back)."""
    (value,) = session.run_with_ort_values(["loss"], {"input": _host_value(x), "target": _host_value(y)})
    assert value.device_name().lower() == "cpu", f"output left on {value.device_name()}"
    if value.data_type() != "tensor(bfloat16)":
        return value.numpy()
    out = np.empty(value.shape(), dtype=oracle.NUMPY_DTYPES["bfloat16"])
    if out.size:
        ctypes.memmove(out.ctypes.data, value.data_ptr(), out.nbytes)
    return out


def check(out, x, y, *, beta, reduction, dtype, torch_own=None) -> None:
    ref = oracle.reference(x, y, beta=beta, reduction=reduction)
    verdict = oracle.compare(out, ref, dtype=dtype, reduction=reduction, torch_own=torch_own)
    assert verdict.ok, f"{dtype} beta={beta} {reduction}: {verdict.detail} (out={out!r}, ref={ref!r})"


# --- parity with PyTorch, small and odd shapes (host arrays) ----------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", list(SMALL_SHAPES))
@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("reduction", sl1.REDUCTIONS)
def test_parity_with_torch(torch_cuda, dtype, shape, beta, reduction):
    x, y = make_inputs(*SMALL_SHAPES[shape], dtype, seed=stable_seed(shape, beta, dtype))
    out = run_host(cuda_session(beta, reduction, dtype), x, y)
    own = torch_on_cuda(torch_cuda, x, y, beta=beta, reduction=reduction) if dtype == "float32" else None
    check(out, x, y, beta=beta, reduction=reduction, dtype=dtype, torch_own=own)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_inf_like_torch(torch_cuda, dtype):
    npdt = oracle.NUMPY_DTYPES[dtype]
    x = np.array([np.nan, 1.0, np.inf, np.inf, -np.inf, 0.5, 3.0, -0.0, 2.0], dtype=npdt)
    y = np.array([0.0, np.nan, np.inf, 1.0, 2.0, -np.inf, 3.0, 0.0, 2.5], dtype=npdt)
    for beta in BETAS:
        for reduction in sl1.REDUCTIONS:
            out = run_host(cuda_session(beta, reduction, dtype), x, y)
            check(out, x, y, beta=beta, reduction=reduction, dtype=dtype)
            finite = slice(3, None)  # inf only (no NaN): the reductions give +inf
            out = run_host(cuda_session(beta, reduction, dtype), x[finite], y[finite])
            check(out, x[finite], y[finite], beta=beta, reduction=reduction, dtype=dtype)


def test_bad_shapes_fail_at_run(torch_cuda):
    session = cuda_session(1.0, "mean", "float32")
    x = np.ones((2, 3), np.float32)
    y = np.ones((3, 2), np.float32)
    with pytest.raises(Exception, match="broadcast"):
        run_host(session, x, y)


# --- large inputs, on the GPU end to end ------------------------------------------------
def _ulp_gpu(torch, ref64, dtype: str):
    """oracle._ulp on the GPU: spacing of ``dtype`` at each value (float64 tensor)."""
    finfo = {"float16": (10, -14, 2.0**-24), "bfloat16": (7, -126, 2.0**-133),
             "float32": (23, -126, 2.0**-149), "float64": (52, -1022, 2.0**-1074)}[dtype]
    nmant, min_exp, smallest = finfo
    mag = ref64.to(torch_dtype(torch, dtype)).double().abs()
    exp = torch.floor(torch.log2(torch.where(mag > 0, mag, torch.full_like(mag, 2.0**min_exp))))
    exp = torch.clamp(exp, min=min_exp)
    return torch.clamp(torch.exp2(exp - nmant), min=smallest)


def _assert_none_close_gpu(torch, out, ref64, dtype: str, torch_own=None) -> None:
    """oracle.compare's 'none' rule, evaluated on the GPU (2^28 elements stay there): within
    one rounding of the float64 reference, or (float32, with ``torch_own``) no worse than
    PyTorch's own float32 result, element by element."""
    a = out.double()
    assert torch.equal(torch.isnan(a), torch.isnan(ref64)), "NaN positions differ"
    rounded = ref64.to(out.dtype).double()
    inf_a, inf_r = torch.isinf(a), torch.isinf(rounded)
    assert torch.equal(inf_a, inf_r) and torch.equal(a[inf_a], rounded[inf_r]), "infinities differ"
    fin = ~(torch.isnan(a) | inf_a)
    err = (a[fin] - ref64[fin]).abs()
    if dtype == "float64":
        bound = 1e-12 * ref64[fin].abs() + 2.2250738585072014e-308
    else:
        bound = _ulp_gpu(torch, ref64[fin], dtype)
    over = err > bound
    if torch_own is not None and dtype == "float32":
        over &= err > (torch_own.double()[fin] - ref64[fin]).abs()
    bad = int(over.sum())
    assert bad == 0, f"{bad} elements off by more than SPEC allows (max abs err {float(err.max()):.3g})"


def _bind_and_run(session, x, y, out):
    """One Run on device buffers (torch tensors) through IOBinding; no host copies."""
    import torch

    torch.cuda.synchronize()  # torch wrote x, y on its stream; ORT reads them on its own
    binding = session.io_binding()
    for name, t in (("input", x), ("target", y)):
        binding.bind_input(name, "cuda", t.device.index or 0, ONNX_TYPES[str(t.dtype).removeprefix("torch.")],
                           tuple(t.shape), t.data_ptr())
    binding.bind_output("loss", "cuda", out.device.index or 0, ONNX_TYPES[str(out.dtype).removeprefix("torch.")],
                        tuple(out.shape), out.data_ptr())
    session.run_with_iobinding(binding)
    torch.cuda.synchronize()  # the whole device, ORT's stream included


def _gpu_inputs(torch, n: int, dtype: str, seed: int):
    g = torch.Generator(device="cuda").manual_seed(seed)
    scale = torch.exp(torch.empty(n, device="cuda", dtype=torch.float64).uniform_(np.log(1e-4), np.log(10.0),
                                                                                   generator=g))
    x = (torch.randn(n, device="cuda", dtype=torch.float64, generator=g) * scale).to(torch_dtype(torch, dtype))
    y = (torch.randn(n, device="cuda", dtype=torch.float64, generator=g) * 2.0).to(torch_dtype(torch, dtype))
    return x, y


def _torch_loss(torch, loss: str, x, y, *, reduction: str, value: float):
    """torch's own functional for ``loss`` (beta for SmoothL1Loss, delta for HuberLoss)."""
    if loss == "huber":
        return torch.nn.functional.huber_loss(x, y, reduction=reduction, delta=value)
    return torch.nn.functional.smooth_l1_loss(x, y, reduction=reduction, beta=oracle.as_beta(value))


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["smooth_l1", "huber"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_parity_2_28(torch_cuda, dtype, loss):
    """2^28 elements (+3, so the vector loop has a tail): every reduction and beta / delta,
    against torch's float64 result on the GPU."""
    torch = torch_cuda
    n = 2**28 + 3
    x, y = _gpu_inputs(torch, n, dtype, seed=28)
    x64, y64 = x.double(), y.double()
    torch.cuda.synchronize()
    for value in (BETAS if loss == "smooth_l1" else DELTAS):
        for reduction in sl1.REDUCTIONS:
            if loss == "huber":
                session = huber_session(value, reduction, dtype)
            else:
                session = cuda_session(value, reduction, dtype)
            out = torch.empty(n if reduction == "none" else (), device="cuda", dtype=x.dtype)
            _bind_and_run(session, x, y, out)
            ref = _torch_loss(torch, loss, x64, y64, reduction=reduction, value=value)
            if reduction == "none":
                own = _torch_loss(torch, loss, x, y, reduction=reduction, value=value) if dtype == "float32" else None
                _assert_none_close_gpu(torch, out, ref, dtype, torch_own=own)
                del out, ref, own
                continue
            got = out.float().cpu().numpy() if dtype == "bfloat16" else out.cpu().numpy()
            if dtype == "bfloat16":
                got = got.astype(oracle.NUMPY_DTYPES["bfloat16"])
            own = None
            if dtype == "float32":
                own = np.asarray(_torch_loss(torch, loss, x, y, reduction=reduction, value=value).cpu().numpy())
            verdict = oracle.compare(np.asarray(got), ref.cpu().numpy(), dtype=dtype, reduction=reduction,
                                     torch_own=own)
            assert verdict.ok, f"{loss} {dtype} 2^28+3 value={value} {reduction}: {verdict.detail}"
            if dtype == "float32":  # the bar: <= 1e-7 relative to float64
                rel = abs(float(got) - float(ref)) / abs(float(ref))
                assert rel <= 1e-7, f"{loss} float32 {reduction} relative error {rel:.3g} > 1e-7"


@pytest.mark.parametrize("loss", ["smooth_l1", "huber"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bitwise_deterministic(torch_cuda, dtype, reduction, loss):
    """Ten runs on the same device data give the same bits (no float atomics)."""
    torch = torch_cuda
    n = 2**24 + 7
    x, y = _gpu_inputs(torch, n, dtype, seed=7)
    session = huber_session(0.5, reduction, dtype) if loss == "huber" else cuda_session(0.5, reduction, dtype)
    outs = []
    for _ in range(10):
        out = torch.empty(n if reduction == "none" else (), device="cuda", dtype=x.dtype)
        _bind_and_run(session, x, y, out)
        bits = {2: torch.int16, 4: torch.int32}.get(out.element_size(), torch.int64)
        outs.append(out.view(bits))
    for other in outs[1:]:
        assert torch.equal(outs[0], other), f"{dtype} {reduction}: results differ between runs"


# --- CPU kernel vs CUDA kernel ----------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("reduction", sl1.REDUCTIONS)
def test_cpu_kernel_matches_cuda_kernel(torch_cuda, dtype, beta, reduction):
    """Same data through both kernels: both within SPEC of the reference; float32/float64
    'none' bitwise equal (both evaluate d*d*(0.5/beta) in double and round once)."""
    x, y = make_inputs((1000, 37), (1000, 37), dtype, seed=11)
    feeds = {"input": x, "target": y}
    on_cpu = runtime.run(cpu_session(beta, reduction, dtype), feeds)[0]
    on_gpu = run_host(cuda_session(beta, reduction, dtype), x, y)
    check(on_cpu, x, y, beta=beta, reduction=reduction, dtype=dtype)
    check(on_gpu, x, y, beta=beta, reduction=reduction, dtype=dtype)
    if reduction == "none" and dtype in ("float32", "float64"):
        assert on_cpu.tobytes() == on_gpu.tobytes(), "CPU and CUDA 'none' outputs differ"
    elif reduction == "none":
        # float16/bfloat16: CUDA computes in float, CPU in double: at most one unit apart.
        a = on_cpu.astype(np.float64)
        b = on_gpu.astype(np.float64)
        ulp = oracle._ulp(np.maximum(np.abs(a), np.abs(b)), oracle.NUMPY_DTYPES[dtype])
        assert np.all(np.abs(a - b) <= ulp)


# --- attribute validation at session creation --------------------------------------------
def _raw_model(beta, reduction) -> bytes:
    """A model whose node carries whatever attributes (make_model would refuse bad ones)."""
    model = sl1.make_model(dtype="float32")
    node = model.graph.node[0]
    for attr in node.attribute:
        if attr.name == "beta":
            attr.f = beta
        elif attr.name == "reduction":
            attr.s = reduction.encode()
    return model.SerializeToString()


@pytest.mark.parametrize(
    "beta,reduction,needle",
    [(-1.0, "mean", "beta"), (float("nan"), "sum", "beta"), (1.0, "avg", "reduction"), (0.5, "", "reduction")],
)
def test_bad_attributes_fail_at_session_creation(torch_cuda, beta, reduction, needle):
    options = cuda_options()
    options.register_custom_ops_library(sl1.get_library_path())
    with pytest.raises(Exception) as info:
        ort.InferenceSession(_raw_model(beta, reduction), sess_options=options, providers=["CUDAExecutionProvider"])
    message = str(info.value)
    assert needle in message and "smooth_l1" in message, message


# --- HuberLoss on the CUDA kernel (issue 12: same kernel code, the Huber formula) ---------
DELTAS = [0.5, 1.0, 2.0]


@functools.cache
def huber_bytes(delta: float, reduction: str, dtype: str) -> bytes:
    from onnx_smoothl1.model import make_huber_model

    return make_huber_model(delta=delta, reduction=reduction, dtype=dtype).SerializeToString()


@functools.cache
def huber_session(delta: float, reduction: str, dtype: str, provider: str = "CUDAExecutionProvider"):
    options = cuda_options() if provider == "CUDAExecutionProvider" else None
    return sl1.inference_session(huber_bytes(delta, reduction, dtype), providers=[provider], custom_op=True,
                                 options=options)


def check_huber(out, x, y, *, delta, reduction, dtype) -> None:
    ref = oracle.reference(x, y, loss="huber", delta=delta, reduction=reduction)
    own = oracle.torch_same_dtype(x, y, loss="huber", delta=delta, reduction=reduction)
    verdict = oracle.compare(out, ref, dtype=dtype, reduction=reduction, torch_own=own)
    assert verdict.ok, f"huber {dtype} delta={delta} {reduction}: {verdict.detail}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", list(SMALL_SHAPES))
@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("reduction", sl1.REDUCTIONS)
def test_huber_parity_with_torch(torch_cuda, dtype, shape, delta, reduction):
    x, y = make_inputs(*SMALL_SHAPES[shape], dtype, seed=stable_seed("huber", shape, delta, dtype))
    out = run_host(huber_session(delta, reduction, dtype), x, y)
    check_huber(out, x, y, delta=delta, reduction=reduction, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", sl1.REDUCTIONS)
def test_huber_cpu_kernel_matches_cuda_kernel(torch_cuda, dtype, reduction):
    x, y = make_inputs((1000, 37), (1000, 37), dtype, seed=12)
    on_cpu = runtime.run(huber_session(0.35, reduction, dtype, "CPUExecutionProvider"),
                         {"input": x, "target": y})[0]
    on_gpu = run_host(huber_session(0.35, reduction, dtype), x, y)
    check_huber(on_cpu, x, y, delta=0.35, reduction=reduction, dtype=dtype)
    check_huber(on_gpu, x, y, delta=0.35, reduction=reduction, dtype=dtype)


@pytest.mark.parametrize("delta", [0.0, -1.0, float("nan"), float("inf")])
def test_huber_bad_delta_fails_at_session_creation(torch_cuda, delta):
    from onnx_smoothl1.model import make_huber_model

    model = make_huber_model(delta=0.5)
    for attr in model.graph.node[0].attribute:
        if attr.name == "delta":
            attr.f = delta
    options = cuda_options()
    options.register_custom_ops_library(sl1.get_library_path())
    with pytest.raises(Exception, match="delta"):
        ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CUDAExecutionProvider"])


# --- the function path (no library) on the CUDA EP: node placement -----------------------
@pytest.fixture(scope="module")
def cuda_function_path(torch_cuda):
    from onnx_smoothl1.parity import OrtCudaFunctionPath

    path = OrtCudaFunctionPath()
    reason = path.unavailable
    if reason is not None:
        pytest.fail(f"ort-cuda-function is not available: {reason}")
    yield path
    path.close()


@pytest.mark.parametrize("loss", ["smooth_l1", "huber"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", sl1.REDUCTIONS)
def test_function_path_runs_wholly_on_cuda_ep(cuda_function_path, loss, dtype, reduction):
    """Without the library ORT inlines the function; every compute node must be placed on
    the CUDA EP (only integer shape bookkeeping may stay on CPU), and the result must be
    torch's within SPEC. The placement is printed (``-s`` / the log) for the report."""
    from onnx_smoothl1.model import make_huber_model

    if loss == "huber":
        model = make_huber_model(delta=0.5, reduction=reduction, dtype=dtype)
    else:
        model = sl1.make_model(beta=0.5, reduction=reduction, dtype=dtype)
    x, y = make_inputs((2**20 + 3,), (2**20 + 3,), dtype, seed=stable_seed("fn", loss, dtype, reduction))
    (out,) = cuda_function_path.run_model(model, {"input": x, "target": y})  # PlacementError on CPU compute
    placement = cuda_function_path.last_placement
    on_cuda = placement.on("CUDAExecutionProvider")
    on_cpu = placement.on("CPUExecutionProvider")
    print(f"\nplacement {loss} {dtype} {reduction}: {len(on_cuda)} node(s) on CUDA, {len(on_cpu)} on CPU "
          f"({', '.join(sorted({op for op, _ in on_cpu})) or 'none'}); providers {placement.providers}")
    assert on_cuda and not placement.cpu_compute_nodes()
    param = {"delta": 0.5} if loss == "huber" else {"beta": 0.5}
    ref = oracle.reference(x, y, loss=loss, reduction=reduction, **param)
    own = oracle.torch_same_dtype(x, y, loss=loss, reduction=reduction, **param)
    verdict = oracle.compare(out, ref, dtype=dtype, reduction=reduction, torch_own=own)
    assert verdict.ok, f"function path {loss} {dtype} {reduction}: {verdict.detail}"
