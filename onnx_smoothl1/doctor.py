"""``onnx-smoothl1 doctor``: what this install can run, and what to do about what it cannot.

Users install the package next to the onnxruntime they already have (CPU, -gpu, -openvino,
...), so "does the kernel run here?" has several moving parts: which distribution provides
the ``onnxruntime`` module (and whether two fight over it), whether the compiled library
loads and registers in that onnxruntime, whether its CUDA kernels are compiled in and this
host can run them, and which optional packages are present. :func:`doctor` checks each by
doing it (loading the library, registering it, running a tiny model and reading ORT's
profile), returns the findings as data and, with ``print_report``, prints them.
"""

from __future__ import annotations

import ctypes
import importlib.metadata as md
import importlib.util
import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import runtime, spec

#: Optional packages and what each one adds.
OPTIONAL = {
    "torch": "the exporters and the torch parity row (pip install torch)",
    "onnxruntime-extensions": "custom_op='python' (pip install 'onnx-smoothl1[pyop]')",
    "openvino": "the openvino parity path (pip install 'onnx-smoothl1[runtimes]')",
    "tract": "the tract parity path (pip install 'onnx-smoothl1[runtimes]')",
    "iree-base-runtime": "the iree parity path (pip install iree-base-compiler iree-base-runtime)",
    "apache-tvm": "the tvm parity path (pip install apache-tvm)",
}


@dataclass
class Problem:
    what: str
    fix: str


@dataclass
class Report:
    """What :func:`doctor` found. ``ok``: the fused kernel ran in this onnxruntime, and only one
    distribution provides the onnxruntime module."""

    ok: bool = False
    package: dict[str, Any] = field(default_factory=dict)
    onnxruntime: dict[str, Any] = field(default_factory=dict)
    library: dict[str, Any] = field(default_factory=dict)
    cuda: dict[str, Any] = field(default_factory=dict)
    optional: dict[str, str | None] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ort_distributions() -> dict[str, str]:
    """Installed distributions that provide the ``onnxruntime`` module: name -> version."""
    found = {}
    for dist in md.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if not name.startswith("onnxruntime") and not name.startswith("ort-"):
            continue
        files = dist.files or []
        if any(str(f).replace("\\", "/").startswith("onnxruntime/") for f in files):
            found[name] = dist.version
    return found


def _check_onnxruntime(report: Report) -> Any:
    dists = _ort_distributions()
    report.onnxruntime["distributions"] = dists
    if len(dists) > 1:
        names = ", ".join(f"{n} {v}" for n, v in sorted(dists.items()))
        report.problems.append(Problem(
            f"{len(dists)} distributions install the same onnxruntime module ({names}); the last "
            "installed overwrote the others' files",
            f"pip uninstall -y {' '.join(sorted(dists))}, then pip install the one you want",
        ))
    try:
        ort = runtime.onnxruntime_module()
    except runtime.OnnxRuntimeUnavailable as exc:
        report.onnxruntime["error"] = str(exc)
        report.problems.append(Problem(str(exc).split(":")[0], runtime.ORT_INSTALL_HINT))
        return None
    major, minor = runtime.ort_version_tuple(ort.__version__)
    report.onnxruntime.update(
        version=ort.__version__, module=ort.__file__, providers=list(ort.get_available_providers()),
        api_version=minor if major == 1 else None,
    )
    if (major, minor) > runtime.ORT_MAX_TESTED:
        report.problems.append(Problem(
            f"onnxruntime {ort.__version__} is newer than the newest tested "
            f"({runtime.ORT_MAX_TESTED[0]}.{runtime.ORT_MAX_TESTED[1]}); it should work (ORT's API is stable)",
            "report a failure at the project's issue tracker",
        ))
    return ort


def _check_library(report: Report, ort: Any) -> None:
    path, why = runtime._library_candidate()
    report.library["path"] = None if path is None else str(path)
    if path is None:
        report.library["error"] = why
        report.problems.append(Problem(f"the custom-op library is not available: {why}",
                                       "reinstall the wheel (pip install --force-reinstall onnx-smoothl1)"))
        return
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        report.library["error"] = f"cannot be loaded: {exc}"
        report.problems.append(Problem(f"the custom-op library {path} cannot be loaded ({exc})",
                                       "reinstall the wheel; with ONNX_SMOOTHL1_LIBRARY set, point it at a "
                                       "library built for this platform"))
        return
    report.library["loads"] = True
    info: dict[str, Any] = {}
    if hasattr(lib, "OnnxSmoothL1BuildInfo"):
        lib.OnnxSmoothL1BuildInfo.restype = ctypes.c_char_p
        info = json.loads(lib.OnnxSmoothL1BuildInfo())
    report.library["build"] = info
    if info and info.get("version") != report.package["version"]:
        report.problems.append(Problem(
            f"the library is version {info.get('version')} but the package is {report.package['version']}",
            "reinstall the wheel so both come from the same build",
        ))
    report.cuda["compiled"] = bool(info.get("cuda", {}).get("compiled"))
    report.cuda["archs"] = info.get("cuda", {}).get("archs")
    if hasattr(lib, "OnnxSmoothL1CudaStatus"):
        buf = ctypes.create_string_buffer(512)
        rc = lib.OnnxSmoothL1CudaStatus(buf, ctypes.c_size_t(len(buf)))
        report.cuda["host"] = buf.value.decode(errors="replace")
        report.cuda["host_ok"] = rc == 0
    if ort is None:
        return
    needed = info.get("ort_api_version", runtime.ORT_MIN[1])
    present = report.onnxruntime.get("api_version")
    report.library["ort_api_needed"] = needed
    if present is not None and present < needed:
        report.problems.append(Problem(
            f"the library needs ORT API {needed}; onnxruntime {report.onnxruntime['version']} has API {present}",
            f"pip install -U 'onnxruntime>=1.{needed}'",
        ))
    _run_kernels(report, path)


#: SmoothL1Loss(beta 1, 'mean') of the tiny feeds: d = 0, 0.25, 2.
_TINY_MEAN = (0.5 * 0.25**2 + (2.0 - 0.5)) / 3


def _tiny_feeds() -> dict[str, np.ndarray]:
    return {"input": np.array([0.0, 0.25, 2.0], np.float32), "target": np.zeros(3, np.float32)}


def _run_kernels(report: Report, path: Any) -> None:
    """Register the library and run a 3-element model: on CPU (the kernel must run), and on
    CUDA where the build, the host and onnxruntime all offer it."""
    from .model import make_huber_model, make_model

    try:
        outs, ops = runtime.profile_node_ops(make_model(reduction="mean"), _tiny_feeds(), custom_op=True)
        ran = sorted(set(ops) & set(spec.LOSS_OP_TYPES))
        report.library["registers"] = True
        report.library["cpu_kernel_ran"] = bool(ran) and abs(float(outs[0]) - _TINY_MEAN) < 1e-6
        huber_outs, huber_ops = runtime.profile_node_ops(make_huber_model(reduction="mean"), _tiny_feeds(),
                                                         custom_op=True)
        report.library["op_types"] = sorted(set(ran) | (set(huber_ops) & set(spec.LOSS_OP_TYPES)))
    except Exception as exc:  # registration or the run failed: the message is the finding
        text = " ".join(str(exc).split())[:400]
        report.library["registers"] = False
        report.library["error"] = text
        report.problems.append(Problem(f"the library does not run in this onnxruntime: {text}",
                                       "check the onnxruntime version above (>= 1.21); reinstall the wheel"))
        return
    if not report.library["cpu_kernel_ran"]:
        report.problems.append(Problem("the fused CPU kernel did not run (ORT's profile shows no loss node)",
                                       "reinstall the wheel"))
    ort = runtime.onnxruntime_module()
    has_ep = "CUDAExecutionProvider" in ort.get_available_providers()
    report.cuda["ort_cuda_ep"] = has_ep
    report.cuda["usable"] = False
    if not report.cuda.get("compiled"):
        report.cuda["why_not"] = "the library was built without CUDA kernels"
        return
    if not has_ep:
        report.cuda["why_not"] = "this onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu has)"
        return
    if not report.cuda.get("host_ok"):
        report.cuda["why_not"] = report.cuda.get("host", "no usable GPU")
        report.problems.append(Problem(f"CUDA kernels cannot run here: {report.cuda['why_not']}",
                                       "the CPU kernel still serves CPUExecutionProvider sessions"))
        return
    if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from the nvidia-* pip wheels, as ORT documents
        try:
            ort.preload_dlls()
        except Exception as exc:  # the session below says what is missing
            report.cuda["preload_dlls"] = str(exc)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    try:
        session = runtime.inference_session(make_model(reduction="mean"), providers=["CUDAExecutionProvider"],
                                            custom_op=True, options=options)
        out = float(runtime.run(session, _tiny_feeds())[0])
        report.cuda["usable"] = abs(out - _TINY_MEAN) < 1e-6
    except Exception as exc:  # the CUDA EP or the kernel refused: say so
        report.cuda["why_not"] = " ".join(str(exc).split())[:400]
        report.problems.append(Problem(f"the CUDA kernel did not run: {report.cuda['why_not']}",
                                       "check the NVIDIA driver (CUDA 13) and onnxruntime-gpu >= 1.27"))


def doctor(*, print_report: bool = False) -> Report:
    """Check this install (see the module docstring); print the findings when asked."""
    from . import __version__

    report = Report()
    report.package = {"version": __version__, "python": sys.version.split()[0],
                      "platform": f"{platform.system()} {platform.machine()}"}
    ort = _check_onnxruntime(report)
    _check_library(report, ort)
    for name in OPTIONAL:
        try:
            report.optional[name] = md.version(name)
        except md.PackageNotFoundError:
            module = name.replace("-", "_")
            report.optional[name] = "present" if importlib.util.find_spec(module) else None
    # Two distributions writing one onnxruntime module is a broken install even when the CPU
    # kernel happens to run (the GPU provider of one of them is typically gone).
    report.ok = bool(report.library.get("cpu_kernel_ran")) and len(report.onnxruntime.get("distributions", {})) <= 1
    if print_report:
        print(format_report(report))
    return report


def format_report(report: Report) -> str:
    """The text ``onnx-smoothl1 doctor`` prints."""
    o, lib, cuda = report.onnxruntime, report.library, report.cuda
    dists = ", ".join(f"{n} {v}" for n, v in sorted(o.get("distributions", {}).items())) or "none"
    build = lib.get("build") or {}
    api = build.get("ort_api_version", runtime.ORT_MIN[1])

    def yes(flag: object) -> str:
        return "yes" if flag else "no"

    lines = [
        f"onnx-smoothl1 {report.package['version']} (Python {report.package['python']}, "
        f"{report.package['platform']})",
        f"onnxruntime:     {o.get('version', 'not importable')} from {dists}"
        + (f"; API {o['api_version']}" if o.get("api_version") is not None else ""),
        f"  providers:     {', '.join(o.get('providers', [])) or '-'}",
        f"library:         {lib.get('path') or 'not found'}",
        f"  loads:         {yes(lib.get('loads'))}" + (f"; version {build['version']}" if build.get("version") else ""),
        f"  needs:         ORT API {api} (onnxruntime >= 1.{api})",
        f"  registers:     {yes(lib.get('registers'))}; ops {', '.join(lib.get('op_types', [])) or '-'} "
        f"in domain {spec.DOMAIN}; EPs {', '.join(build.get('eps', [])) or '-'}",
        f"  CPU kernel:    {'ran' if lib.get('cpu_kernel_ran') else 'did not run'}",
        f"CUDA kernels:    compiled in: {yes(cuda.get('compiled'))}"
        + (f" ({cuda['archs']})" if cuda.get("archs") else ""),
        f"  this host:     {cuda.get('host', '-')}",
        f"  usable here:   {yes(cuda.get('usable'))}" + (f" ({cuda['why_not']})" if cuda.get("why_not") else ""),
        "optional:        " + ", ".join(f"{n} {v or 'no'}" for n, v in report.optional.items()),
    ]
    if report.problems:
        lines.append("problems:")
        for p in report.problems:
            lines.append(f"  - {p.what}")
            lines.append(f"    fix: {p.fix}")
    lines.append("OK: the fused kernel runs in this onnxruntime" if report.ok
                 else "NOT OK: see the problems above")
    return "\n".join(lines)
