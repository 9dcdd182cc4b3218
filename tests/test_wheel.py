"""The manylinux wheel of ``make wheel`` (scripts/build_wheel.sh), installed as a user would.

tests/test_no_torch.py runs the CLI from the source tree with torch hidden. Here the built
wheel itself is installed with plain pip into a fresh venv that has no torch (onnxruntime,
onnx, numpy come from PyPI), and from outside the source tree that venv runs the fused kernel
and ``onnx-smoothl1 --version``, ``demo``, ``run`` and ``parity --quick``. That is what a
published wheel has to do: the library must be inside it, found at its installed path, and
loadable by the onnxruntime from PyPI.

The wheel in dist/ is reused while it is newer than every file that goes into it; otherwise
the script rebuilds it (CMake's build tree in build/wheel/cmake makes that incremental).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from _wheel import ROOT, WHEEL_RE, built_wheel, make_venv, pip, venv_env

import onnx_smoothl1 as sl1
from onnx_smoothl1 import cli, oracle

LIB_IN_WHEEL = "onnx_smoothl1/lib/libonnx_smoothl1_ops.so"


@pytest.fixture(scope="module")
def wheel() -> Path:
    """dist/'s manylinux wheel, rebuilt by scripts/build_wheel.sh when a source is newer."""
    return built_wheel()


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the wheel and its PyPI dependencies (no torch, no pip),
    installed as docs/install.md tells a user with no onnxruntime: ``<wheel>[cpu]``.

    The test suite's own pip installs into it (``pip --python``), pinned by constraints.txt;
    ``--no-compile`` skips byte-compiling onnx/numpy/sympy, a third of the install time.
    """
    tmp = tmp_path_factory.mktemp("wheel")
    env_dir = make_venv(tmp / "venv")
    proc = pip(env_dir, "install", "-q", "--no-compile", "--disable-pip-version-check", "-c",
               ROOT / "constraints.txt", f"{wheel}[cpu]", cwd=tmp, timeout=600)
    assert proc.returncode == 0, f"pip install {wheel.name} failed:\n{proc.stderr[-3000:]}"
    return env_dir


def test_wheel_carries_the_cuda_kernels_and_stays_small(wheel: Path, tmp_path: Path):
    """`make wheel` builds the CUDA kernels in (every sm from 75 + PTX) unless told not to
    (ONNX_SMOOTHL1_WHEEL_CUDA=OFF, for machines without nvcc); the wheel stays under 10 MB."""
    import ctypes
    import json

    assert wheel.stat().st_size < 10 * 2**20, f"{wheel.name}: {wheel.stat().st_size} bytes"
    with zipfile.ZipFile(wheel) as zf:
        lib = tmp_path / "lib.so"
        lib.write_bytes(zf.read(LIB_IN_WHEEL))
    handle = ctypes.CDLL(str(lib))
    handle.OnnxSmoothL1BuildInfo.restype = ctypes.c_char_p
    info = json.loads(handle.OnnxSmoothL1BuildInfo())
    if os.environ.get("ONNX_SMOOTHL1_WHEEL_CUDA", "ON") == "OFF":
        pytest.skip("wheel built with ONNX_SMOOTHL1_WHEEL_CUDA=OFF")
    assert info["cuda"]["compiled"], info
    archs = info["cuda"]["archs"].split()
    assert archs[0] == "75-real" and archs[-1] == "121-virtual" and "90-real" in archs, archs


def _in_venv(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run a command of the venv outside the source tree (``venv_env``: only the installed
    wheel can be imported)."""
    return subprocess.run(list(args), capture_output=True, text=True, timeout=600, cwd=cwd, env=venv_env(venv))


def test_wheel_is_manylinux_py3_none_and_vendors_nothing(wheel: Path):
    """py3-none (the library is no Python extension), a manylinux platform tag that
    ``auditwheel show`` confirms, the library inside, nothing vendored (libonnxruntime above
    all: onnxruntime itself loads the library)."""
    m = WHEEL_RE.fullmatch(wheel.name)
    assert m, wheel.name
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = zf.read(f"onnx_smoothl1-{m['version']}.dist-info/WHEEL").decode()
    assert LIB_IN_WHEEL in names
    assert not [n for n in names if ".libs/" in n or "onnxruntime" in n.lower()], names
    assert f"Tag: py3-none-{m['plat']}" in meta and "Root-Is-Purelib: false" in meta, meta
    auditwheel = Path(sys.executable).parent / "auditwheel"
    assert auditwheel.is_file(), "auditwheel is not installed (pip install -e '.[test]')"
    proc = subprocess.run([str(auditwheel), "show", str(wheel)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f'platform tag: "{m["plat"]}"' in " ".join(proc.stdout.split()), proc.stdout


#: Runs in the clean venv: the fused kernel on a few cases; writes inputs, outputs and the
#: op types the profile saw, for the checks against torch in this process.
KERNEL_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import onnx_smoothl1 as sl1
    from onnx_smoothl1 import runtime
    try:
        import torch  # noqa: F401
        has_torch = True
    except ImportError:
        has_torch = False
    out_dir = sys.argv[1]
    cases = [("float32", 1.0, "mean"), ("float32", 0.25, "sum"), ("float64", 2.0, "none"), ("float16", 0.5, "mean")]
    rng = np.random.default_rng(7)
    arrays, runs = {}, []
    for i, (dtype, beta, reduction) in enumerate(cases):
        npdt = np.dtype(dtype)
        x = (rng.standard_normal(4099) * 3).astype(npdt)
        y = rng.standard_normal(4099).astype(npdt)
        model = sl1.make_model(beta=beta, reduction=reduction, dtype=dtype)
        (out,), ops = sl1.profile_node_ops(model, {"input": x, "target": y}, custom_op=True)
        arrays.update({f"x{i}": x, f"y{i}": y, f"out{i}": out})
        runs.append({"dtype": dtype, "beta": beta, "reduction": reduction, "ops": ops})
    np.savez(out_dir + "/kernel.npz", **arrays)
    info = {"package": sl1.__file__, "library": sl1.get_library_path(), "has_torch": has_torch,
            "fused": [runtime.ran_fused_kernel(r["ops"]) for r in runs], "runs": runs}
    with open(out_dir + "/kernel.json", "w") as f:
        json.dump(info, f)
""")


def test_kernel_runs_from_the_installed_wheel(venv: Path, tmp_path: Path):
    """The library shipped in the wheel registers in PyPI's onnxruntime, the profile shows the
    fused SmoothL1Loss node (not the function's standard ops), and its results meet SPEC
    against PyTorch (computed here, where torch is installed)."""
    proc = _in_venv(venv, str(venv / "bin" / "python"), "-c", KERNEL_SCRIPT, str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((tmp_path / "kernel.json").read_text())
    site = venv.resolve()
    assert Path(info["package"]).resolve().is_relative_to(site), info["package"]
    assert Path(info["library"]).resolve().is_relative_to(site), info["library"]
    assert info["has_torch"] is False
    assert all(info["fused"]), info["runs"]
    arrays = np.load(tmp_path / "kernel.npz")
    for i, run in enumerate(info["runs"]):
        x, y, out = arrays[f"x{i}"], arrays[f"y{i}"], arrays[f"out{i}"]
        kw = {"beta": run["beta"], "reduction": run["reduction"]}
        verdict = oracle.compare(out, oracle.reference(x, y, **kw), dtype=run["dtype"],
                                 reduction=run["reduction"], torch_own=oracle.torch_same_dtype(x, y, **kw))
        assert verdict.ok, (run, verdict)


def test_cli_runs_from_the_installed_wheel(venv: Path, wheel: Path, tmp_path: Path):
    """The issue's bar for a plain ``pip install`` of the wheel, no torch: --version, demo,
    run (through the kernel) and parity --quick all succeed."""
    exe = str(venv / "bin" / "onnx-smoothl1")
    version = WHEEL_RE.fullmatch(wheel.name)["version"]  # type: ignore[index]
    proc = _in_venv(venv, exe, "--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"onnx-smoothl1 {version}", proc

    proc = _in_venv(venv, exe, "demo", "--n", "20000", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "paths: kernel, function" in proc.stdout and "FAIL" not in proc.stdout, proc.stdout
    assert "torch is not installed" in proc.stdout, proc.stdout

    x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(4, 6)
    y = np.zeros((4, 6), np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    onnx.save(sl1.make_model(beta=0.5, reduction="sum"), str(tmp_path / "m.onnx"))
    proc = _in_venv(venv, exe, "run", "m.onnx", "--input", "x.npy", "--target", "y.npy", "--custom-op", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[-1] == "path: fused kernel (custom op library)", proc.stdout
    want = float(oracle.reference(x, y, beta=0.5, reduction="sum"))
    assert abs(float(lines[0]) - want) <= 1e-6 * abs(want), (want, proc.stdout)

    proc = _in_venv(venv, exe, "parity", "--quick", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "FAIL" not in proc.stdout, proc.stdout
    kernel_row = next(line for line in proc.stdout.splitlines() if line.startswith("ort-kernel "))
    assert "PASS" in kernel_row and "unsupported" not in kernel_row, kernel_row

    # doctor: the installed wheel's library, its CUDA kernels compiled in but not usable here
    proc = _in_venv(venv, exe, "doctor", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["library"]["path"].startswith(str(venv)), report["library"]
    assert report["library"]["cpu_kernel_ran"] and report["onnxruntime"]["distributions"] == {
        "onnxruntime": report["onnxruntime"]["version"]}, report
    if os.environ.get("ONNX_SMOOTHL1_WHEEL_CUDA", "ON") != "OFF":
        assert report["cuda"]["compiled"] and not report["cuda"]["usable"], report["cuda"]


def test_version_flag_falls_back_to_dunder_version(monkeypatch, capsys):
    """Without distribution metadata (a plain checkout on sys.path), --version still prints
    the package's own __version__."""
    from importlib import metadata

    import onnx_smoothl1

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"onnx-smoothl1 {onnx_smoothl1.__version__}"


def test_version_flag_reports_the_installed_metadata(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"onnx-smoothl1 {metadata.version('onnx-smoothl1')}"
