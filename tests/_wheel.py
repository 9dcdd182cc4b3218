"""The built wheel and the fresh venvs it is installed into, shared by the tests that install it
(test_wheel, test_readme_examples, test_install_matrix): dist/'s manylinux wheel, rebuilt by
scripts/build_wheel.sh when any file that goes into it is newer (a file lock serialises the
build, so two pytest workers never run the build script at the same time: they share
build/wheel), and ``make_venv`` / ``pip`` / ``venv_env`` for installing and running it as a user
would, with nothing from the checkout leaking in."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
BUILD_SCRIPT = ROOT / "scripts" / "build_wheel.sh"
#: What the wheel is built from (a newer file here makes the dist/ wheel stale).
WHEEL_INPUTS = ("onnx_smoothl1", "custom_op", "CMakeLists.txt", "pyproject.toml", "README.md")
WHEEL_RE = re.compile(r"onnx_smoothl1-(?P<version>[^-]+)-py3-none-(?P<plat>manylinux_\d+_\d+_\w+)\.whl")


def _newest_input_mtime() -> float:
    newest = 0.0
    for name in WHEEL_INPUTS:
        path = ROOT / name
        files = [path] if path.is_file() else path.rglob("*")
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts and not f.is_relative_to(ROOT / "onnx_smoothl1" / "lib"):
                newest = max(newest, f.stat().st_mtime)
    return newest


def fresh_wheel() -> Path | None:
    wheels = sorted(DIST.glob("onnx_smoothl1-*-py3-none-manylinux*.whl")) if DIST.is_dir() else []
    if len(wheels) == 1 and wheels[0].stat().st_mtime > _newest_input_mtime():
        return wheels[0]
    return None


def built_wheel() -> Path:
    """dist/'s wheel, (re)built when stale; skipped without a C++ compiler (failed under CI)."""
    (ROOT / "build").mkdir(exist_ok=True)
    with open(ROOT / "build" / ".wheel.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = fresh_wheel()
        if found is not None:
            return found
        if shutil.which(os.environ.get("CXX", "c++")) is None and not os.environ.get("CI"):
            pytest.skip("no C++ compiler: the wheel needs the custom-op library (under CI this fails)")
        proc = subprocess.run(["bash", str(BUILD_SCRIPT), sys.executable], capture_output=True, text=True,
                              timeout=1800, cwd=ROOT)
        assert proc.returncode == 0, f"scripts/build_wheel.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        built = Path(proc.stdout.strip().splitlines()[-1])
        built = built if built.is_absolute() else ROOT / built
        assert built.is_file() and WHEEL_RE.fullmatch(built.name), proc.stdout[-2000:]
        return built


def wheel_copy(tmp: Path) -> Path:
    """A private copy of the built wheel (another worker may rebuild dist/ meanwhile)."""
    wheel = built_wheel()
    return Path(shutil.copy2(wheel, tmp / wheel.name))


# --- fresh venvs the wheel is installed into, as a user would ------------------------------------


def make_venv(path: Path) -> Path:
    """A fresh venv without pip of its own (:func:`pip` installs into it from this process)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=300,
                   capture_output=True)
    return path


def venv_env(venv: Path) -> dict[str, str]:
    """The environment of an activated ``venv``: its bin first on PATH, and nothing that
    points back into the checkout (PYTHONPATH, a library override), so only what is installed
    there can be imported."""
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("ONNX_SMOOTHL1_")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


def pip(venv: Path, *args: str | Path, cwd: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    """``pip <args>`` into ``venv``: this process's pip (``--python``), PyPI and pip's cache, as
    a user's pip would; ``--no-compile`` is the caller's (it skips a third of the install)."""
    cmd = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=venv_env(venv))
