"""The built wheel installed next to each onnxruntime distribution, as a user would install it.

onnxruntime, onnxruntime-gpu, -openvino, -directml and -qnn all install the same ``onnxruntime``
module, so the package depends on none of them (extras ``[cpu]`` / ``[gpu]`` bring one). Here
fresh venvs get the real wheels from PyPI and the wheel from dist/ with plain pip, and every
command runs from outside the source tree (cwd a temp dir, no PYTHONPATH):

1. onnxruntime-gpu first, then the wheel: pip adds no CPU ``onnxruntime`` over it, the CUDA EP
   stays listed, ``doctor`` is happy and the fused CPU kernel gives the right numbers;
2. onnxruntime-openvino first, then the wheel: kept as is, OpenVINO EP still listed;
3. ``wheel[cpu]`` in an empty venv brings a supported onnxruntime; the bare wheel has none and
   the CLI says in one line how to get one (the package itself still imports);
4. ``wheel[cpu]`` with an onnxruntime below the supported range does not resolve;
5. an onnxruntime older than 1.21 installed first: the CLI and ``doctor`` name the version.

It downloads about 0.5 GB of wheels (pip's cache keeps them), so it only runs with
``ONNX_SMOOTHL1_INSTALL_MATRIX=1`` (``make test-install``); then a missing wheel or a failed pip
is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from _wheel import make_venv, pip, venv_env, wheel_copy

pytestmark = pytest.mark.skipif(
    os.environ.get("ONNX_SMOOTHL1_INSTALL_MATRIX") != "1",
    reason="downloads ~0.5 GB of wheels: run `make test-install`",
)

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
WHEEL_GLOB = "onnx_smoothl1-*-py3-none-manylinux_*_x86_64.whl"

#: The distributions installed first (pinned: the newest openvino release with a cp311
#: manylinux wheel when this was written).
ORT_GPU = ("onnxruntime-gpu", "1.30.0")
ORT_OPENVINO = ("onnxruntime-openvino", "1.24.1")
ORT_OLD = ("onnxruntime", "1.20.1")
#: pyproject.toml's [cpu] range (runtime.ORT_MIN, ORT_MAX_TESTED + 1).
CPU_RANGE = ((1, 21), (1, 33))
#: Distributions named onnxruntime* that do not install the onnxruntime module.
NOT_ORT = {"onnxruntime-extensions", "onnxruntime-genai"}

PIP_TIMEOUT = 1800  # onnxruntime-gpu alone is a ~235 MB download
RUN_TIMEOUT = 300


def _tail(proc: subprocess.CompletedProcess | subprocess.TimeoutExpired, n: int = 3000) -> str:
    def text(s: str | bytes | None) -> str:
        return (s.decode(errors="replace") if isinstance(s, bytes) else s or "")[-n:]

    status = f"exit {proc.returncode}" if isinstance(proc, subprocess.CompletedProcess) else "TIMED OUT"
    cmd = " ".join(map(str, proc.args)) if isinstance(proc.args, list) else str(proc.args)
    return f"\n$ {cmd}\n({status})\n--- stdout ---\n{text(proc.stdout)}\n--- stderr ---\n{text(proc.stderr)}"


class Venv:
    """A venv and the way to run its commands with nothing from the checkout leaking in."""

    def __init__(self, path: Path, cwd: Path):
        self.path, self.cwd = path, cwd
        self.python = path / "bin" / "python"

    def run(self, *args: str | Path, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
        cmd = [str(a) for a in args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.cwd,
                                  env=venv_env(self.path))
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"timed out after {timeout} s:{_tail(exc)}")

    def pip(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
        """``pip install`` etc. into this venv (``_wheel.pip``), as a user's pip would."""
        try:
            proc = pip(self.path, *args, cwd=self.cwd, timeout=PIP_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"timed out after {PIP_TIMEOUT} s:{_tail(exc)}")
        if check:
            assert proc.returncode == 0, f"pip failed (network?):{_tail(proc)}"
        return proc

    def install(self, *reqs: str | Path) -> subprocess.CompletedProcess:
        return self.pip("install", "--no-compile", "--progress-bar", "off", *reqs)

    def ort_distributions(self) -> dict[str, str]:
        """``pip list``'s onnxruntime distributions (those that install the onnxruntime module)."""
        proc = self.pip("list", "--format=json")
        found = {}
        for d in json.loads(proc.stdout):
            name = d["name"].lower().replace("_", "-")
            if name.startswith("onnxruntime") and name not in NOT_ORT:
                found[name] = d["version"]
        return found

    def providers(self) -> list[str]:
        code = "import json, onnxruntime; print(json.dumps(onnxruntime.get_available_providers()))"
        proc = self.run(self.python, "-c", code)
        assert proc.returncode == 0, _tail(proc)
        return json.loads(proc.stdout.splitlines()[-1])

    def doctor(self) -> tuple[subprocess.CompletedProcess, dict]:
        proc = self.run(self.path / "bin" / "onnx-smoothl1", "doctor", "--json")
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"doctor --json printed no JSON:{_tail(proc)}")
        return proc, report


def _version(v: str) -> tuple[int, int]:
    major, minor = v.split(".")[:2]
    return int(major), int(minor)


def _assert_no_ort_replaced(install: subprocess.CompletedProcess) -> None:
    """pip's own account of the wheel's install: nothing onnxruntime uninstalled or installed."""
    out = install.stdout
    assert "Uninstalling onnxruntime" not in out, f"pip replaced an onnxruntime distribution:{_tail(install)}"
    installed = [ln for ln in out.splitlines() if ln.startswith("Successfully installed")]
    assert installed and "onnxruntime" not in installed[0], f"pip installed an onnxruntime:{_tail(install)}"


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, _tail(proc)
    assert "Traceback" not in proc.stderr + proc.stdout, _tail(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line:{_tail(proc)}"
    return lines[0]


# --- fixtures: one tmp dir for the wheel and every venv ---------------------------------------


@pytest.fixture(scope="module")
def matrix_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("install_matrix")


@pytest.fixture(scope="module")
def wheel(matrix_dir: Path) -> Path:
    """A copy of dist/'s wheel, rebuilt first when stale (tests/_wheel.py)."""
    dest = matrix_dir / "wheel"
    dest.mkdir()
    return wheel_copy(dest)


@pytest.fixture(scope="module")
def new_venv(matrix_dir: Path):
    """Factory: an empty venv (no pip of its own: the test venv's pip installs into it)."""
    work = matrix_dir / "work"
    work.mkdir(exist_ok=True)
    return lambda name: Venv(make_venv(matrix_dir / name), work)


def _runtime_then_wheel(venv: Venv, runtime: tuple[str, str], wheel: Path) -> tuple[Venv, subprocess.CompletedProcess]:
    """``runtime`` (distribution, version) installed first, as a user has it; then the wheel."""
    venv.install("==".join(runtime))
    assert venv.ort_distributions() == dict([runtime])
    return venv, venv.install(wheel)


@pytest.fixture(scope="module")
def gpu_venv(new_venv, wheel: Path) -> tuple[Venv, subprocess.CompletedProcess]:
    return _runtime_then_wheel(new_venv("ort-gpu"), ORT_GPU, wheel)


@pytest.fixture(scope="module")
def openvino_venv(new_venv, wheel: Path) -> tuple[Venv, subprocess.CompletedProcess]:
    return _runtime_then_wheel(new_venv("ort-openvino"), ORT_OPENVINO, wheel)


@pytest.fixture(scope="module")
def old_venv(new_venv, wheel: Path) -> tuple[Venv, subprocess.CompletedProcess]:
    return _runtime_then_wheel(new_venv("ort-old"), ORT_OLD, wheel)


# --- 1. onnxruntime-gpu ------------------------------------------------------------------------

#: Runs in the venv: the fused kernel on CPU through the public API; writes inputs and outputs
#: for the numpy formula here.
KERNEL_SCRIPT = textwrap.dedent("""
    import importlib.util, json, sys
    import numpy as np
    import onnx_smoothl1 as sl1
    from onnx_smoothl1 import runtime
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(1037) * 3).astype(np.float32)
    y = rng.standard_normal(1037).astype(np.float32)
    feeds = {"input": x, "target": y}
    arrays, providers, fused = {"x": x, "y": y}, [], []
    for i, (beta, reduction) in enumerate(json.loads(sys.argv[2])):
        model = sl1.make_model(beta=beta, reduction=reduction)
        session = sl1.inference_session(model, custom_op=True, providers=["CPUExecutionProvider"])
        arrays[f"out{i}"] = runtime.run(session, feeds)[0]
        providers.append(session.get_providers())
        fused.append(runtime.ran_fused_kernel(sl1.profile_node_ops(model, feeds, custom_op=True)[1]))
    np.savez(sys.argv[1], **arrays)
    print(json.dumps({"package": sl1.__file__, "torch": importlib.util.find_spec("torch") is not None,
                      "providers": providers, "fused": fused}))
""")
KERNEL_CASES = [(1.0, "mean"), (0.5, "sum"), (2.0, "none"), (0.0, "mean")]


def _smooth_l1(x: np.ndarray, y: np.ndarray, beta: float, reduction: str) -> np.ndarray:
    d = np.abs(x.astype(np.float64) - y.astype(np.float64))
    loss = d if beta == 0 else np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    return {"mean": loss.mean, "sum": loss.sum}.get(reduction, lambda: loss)()


def test_gpu_runtime_kept_and_kernel_runs(gpu_venv, matrix_dir: Path):
    venv, install = gpu_venv
    _assert_no_ort_replaced(install)
    assert venv.ort_distributions() == dict([ORT_GPU])
    assert "CUDAExecutionProvider" in venv.providers()

    proc, report = venv.doctor()
    assert proc.returncode == 0, _tail(proc)
    assert report["ok"] is True, report
    assert report["onnxruntime"]["distributions"] == dict([ORT_GPU]), report["onnxruntime"]
    assert report["onnxruntime"]["version"] == ORT_GPU[1]
    assert report["library"]["cpu_kernel_ran"] is True, report["library"]
    assert report["library"]["build"]["cuda"]["compiled"] is True, report["library"]
    assert report["cuda"]["compiled"] is True, report["cuda"]
    if not Path("/dev/nvidiactl").exists():  # no GPU here: doctor must say CUDA is not usable
        assert report["cuda"]["usable"] is False and report["cuda"]["why_not"], report["cuda"]

    out = matrix_dir / "gpu-kernel.npz"
    proc = venv.run(venv.python, "-c", KERNEL_SCRIPT, out, json.dumps(KERNEL_CASES))
    assert proc.returncode == 0, _tail(proc)
    info = json.loads(proc.stdout.splitlines()[-1])
    assert Path(info["package"]).resolve().is_relative_to(venv.path.resolve()), info
    assert info["torch"] is False, info
    assert all(p == ["CPUExecutionProvider"] for p in info["providers"]), info
    assert all(info["fused"]), info
    arrays = np.load(out)
    for i, (beta, reduction) in enumerate(KERNEL_CASES):
        got, want = arrays[f"out{i}"], _smooth_l1(arrays["x"], arrays["y"], beta, reduction)
        assert got.dtype == np.float32 and got.shape == want.shape, (beta, reduction, got.shape)
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6, err_msg=f"beta={beta} {reduction}")


# --- 2. onnxruntime-openvino -------------------------------------------------------------------


def test_openvino_runtime_kept(openvino_venv):
    venv, install = openvino_venv
    _assert_no_ort_replaced(install)
    assert venv.ort_distributions() == dict([ORT_OPENVINO])
    assert "OpenVINOExecutionProvider" in venv.providers()
    proc, report = venv.doctor()
    assert proc.returncode == 0, _tail(proc)
    assert report["onnxruntime"]["distributions"] == dict([ORT_OPENVINO]), report["onnxruntime"]
    assert report["library"]["cpu_kernel_ran"] is True, report["library"]


# --- 3. extras [cpu], and no runtime at all -----------------------------------------------------


def test_cpu_extra_brings_supported_runtime(new_venv, wheel: Path):
    venv = new_venv("cpu-extra")
    venv.install(f"{wheel}[cpu]")
    dists = venv.ort_distributions()
    assert list(dists) == ["onnxruntime"], dists
    lo, hi = CPU_RANGE
    assert lo <= _version(dists["onnxruntime"]) < hi, dists
    proc, report = venv.doctor()
    assert proc.returncode == 0, _tail(proc)
    assert report["ok"] is True and report["onnxruntime"]["distributions"] == dists, report
    print(f"[cpu] resolved to onnxruntime {dists['onnxruntime']}")


def test_bare_wheel_without_runtime(new_venv, wheel: Path):
    venv = new_venv("no-runtime")
    _assert_no_ort_replaced(venv.install(wheel))
    assert venv.ort_distributions() == {}

    proc = venv.run(venv.python, "-c", "import onnx_smoothl1; print(onnx_smoothl1.__version__)")
    assert proc.returncode == 0 and proc.stdout.strip(), _tail(proc)

    proc = venv.run(venv.path / "bin" / "onnx-smoothl1", "demo")
    line = _one_line_error(proc)
    assert "onnxruntime is not installed" in line and "pip install 'onnx-smoothl1[cpu]'" in line, _tail(proc)

    proc, report = venv.doctor()
    assert proc.returncode == 1 and report["ok"] is False, _tail(proc)
    assert any("onnxruntime is not installed" in p["what"] for p in report["problems"]), report["problems"]


# --- 4. the [cpu] range is enforced ------------------------------------------------------------


def test_cpu_extra_rejects_old_runtime(new_venv, wheel: Path):
    venv = new_venv("cpu-extra-old")
    proc = venv.pip("install", "--no-compile", f"{wheel}[cpu]", "==".join(ORT_OLD), check=False)
    assert proc.returncode != 0, f"pip accepted onnxruntime {ORT_OLD[1]} with [cpu]:{_tail(proc)}"
    err = proc.stderr
    assert "ResolutionImpossible" in err or "conflicting dependencies" in err, _tail(proc)
    assert "onnxruntime" in err, _tail(proc)
    assert venv.ort_distributions() == {}


# --- 5. an onnxruntime older than 1.21 ---------------------------------------------------------


def test_old_runtime_named(old_venv):
    venv, install = old_venv
    _assert_no_ort_replaced(install)
    assert venv.ort_distributions() == dict([ORT_OLD])

    proc = venv.run(venv.path / "bin" / "onnx-smoothl1", "demo")
    line = _one_line_error(proc)
    assert f"onnxruntime {ORT_OLD[1]} is older than 1.21" in line, _tail(proc)

    proc, report = venv.doctor()
    assert proc.returncode == 1 and report["ok"] is False, _tail(proc)
    assert any(ORT_OLD[1] in p["what"] and "older than 1.21" in p["what"] for p in report["problems"]), report


# --- 6. the mistake docs/install.md warns about: [cpu] over an installed onnxruntime-gpu --------


def test_cpu_extra_over_gpu_runtime_is_reported_by_doctor(gpu_venv, wheel: Path):
    """`pip install 'onnx-smoothl1[cpu]'` where onnxruntime-gpu is installed adds CPU onnxruntime
    on top (pip cannot know they clash): CUDAExecutionProvider disappears. doctor must say so
    and exit 1. Runs last: it spoils the shared onnxruntime-gpu venv."""
    venv, _ = gpu_venv
    venv.install(f"{wheel}[cpu]")
    assert set(venv.ort_distributions()) == {"onnxruntime", "onnxruntime-gpu"}
    proc, report = venv.doctor()
    assert proc.returncode == 1, _tail(proc)
    assert report["ok"] is False
    assert any("2 distributions install the same onnxruntime module" in p["what"] for p in report["problems"]), report
    assert any("pip uninstall -y onnxruntime onnxruntime-gpu" in p["fix"] for p in report["problems"]), report
