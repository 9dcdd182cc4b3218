"""The misuse corpus (issue 22): ordinary mistakes through the command line, as subprocesses.

Every case asserts: exit code 2, one line on stderr, no "Traceback", a message that names the
argument or the file, and that no output file appeared (or the old one is unchanged, byte for
byte). The file-system cases use real file systems: a read-only tmpfs, a tmpfs too small for
the output, and ``ulimit -f`` (root ignores file modes, so ``chmod`` would prove nothing).
Where this machine cannot mount, those cases fail under CI and skip elsewhere, saying why.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import hidden_env

import onnx_smoothl1 as sl1

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
        shell_prefix: str = "") -> subprocess.CompletedProcess:
    environ = {**os.environ, **(env or {})}
    cmd = [sys.executable, "-m", "onnx_smoothl1", *args]
    if shell_prefix:  # e.g. "ulimit -f 8": runs the command under bash with that limit
        cmd = ["bash", "-c", f'{shell_prefix}; exec "$@"', "bash", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd, env=environ)


def assert_misuse(proc: subprocess.CompletedProcess, *needles: str) -> None:
    detail = f"exit {proc.returncode}\nstdout: {proc.stdout[-1500:]}\nstderr: {proc.stderr[-3000:]}"
    assert proc.returncode == 2, detail
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, detail
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, detail
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in the message\n{detail}"


def _mount(target: Path, options: str) -> Path | None:
    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True,
                          text=True)
    return target if proc.returncode == 0 else None


@pytest.fixture
def mounted(tmp_path):
    """Factory: a tmpfs at a fresh directory with mount options; unmounted afterwards."""
    made = []

    def make(name: str, options: str, seed: dict[str, bytes] | None = None) -> Path:
        where = tmp_path / name
        if seed:  # files to hold before a read-only remount
            if _mount(where, "size=1m") is None:
                _cannot_mount(where)
            made.append(where)
            for fname, data in seed.items():
                (where / fname).write_bytes(data)
            proc = subprocess.run(["mount", "-o", f"remount,{options}", str(where)], capture_output=True, text=True)
            if proc.returncode != 0:
                _cannot_mount(where, proc.stderr)
            return where
        if _mount(where, options) is None:
            _cannot_mount(where)
        made.append(where)
        return where

    yield make
    for where in reversed(made):
        subprocess.run(["umount", str(where)], capture_output=True)


def _cannot_mount(where: Path, why: str = "") -> None:
    message = f"cannot mount a tmpfs at {where} (not root, or no mount permission) {why}".strip()
    if os.environ.get("CI") or os.environ.get("ONNX_SMOOTHL1_REQUIRE_RUNTIMES"):
        pytest.fail(message + ": CI must run the real file-system cases")
    pytest.skip(message)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("misuse-inputs")
    out = {}
    out["model"] = d / "m.onnx"
    onnx.save(sl1.make_model(reduction="mean"), str(out["model"]))
    out["rank0"] = d / "rank0.onnx"
    onnx.save(sl1.make_model(reduction="sum", rank=0), str(out["rank0"]))
    out["x"] = d / "x.npy"
    np.save(out["x"], np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4))
    out["y"] = d / "y.npy"
    np.save(out["y"], np.zeros((3, 4), np.float32))
    out["y_bad"] = d / "y_bad.npy"
    np.save(out["y_bad"], np.zeros((5, 7), np.float32))
    out["x64"] = d / "x64.npy"
    np.save(out["x64"], np.zeros((3, 4), np.float64))
    out["v3"] = d / "v3.npy"
    np.save(out["v3"], np.ones(3, np.float32))
    out["npz"] = d / "ab.npz"
    np.savez(out["npz"], a=np.ones(3, np.float32), b=np.zeros(3, np.float32))
    out["empty"] = d / "empty.onnx"
    out["empty"].write_bytes(b"")
    out["garbage"] = d / "garbage.onnx"
    out["garbage"].write_bytes(bytes(range(256)) * 8)
    out["junk_npy"] = d / "junk.npy"
    out["junk_npy"].write_bytes(b"\x93NUMPY nonsense")
    out["afile"] = d / "afile"
    out["afile"].write_bytes(b"not a directory")
    out["dir"] = d / "adir"
    out["dir"].mkdir()
    return out


# --- arguments: (argv, needles). Paths in {braces} come from the `files` fixture ---------------
ARG_CASES = {
    "make-model beta negative": (["make-model", "--beta", "-1", "-o", "{out}"], ["beta"]),
    "make-model beta nan": (["make-model", "--beta", "nan", "-o", "{out}"], ["beta"]),
    "make-model beta overflows float32": (["make-model", "--beta", "1e300", "-o", "{out}"], ["beta", "inf"]),
    "make-model beta underflows float32": (["make-model", "--beta", "1e-50", "-o", "{out}"], ["beta", "0"]),
    "make-model beta subnormal": (["make-model", "--beta", "1e-40", "-o", "{out}"], ["beta", "subnormal"]),
    "make-model delta zero": (["make-model", "--loss", "huber", "--delta", "0", "-o", "{out}"], ["delta"]),
    "make-model delta inf": (["make-model", "--loss", "huber", "--delta", "inf", "-o", "{out}"], ["delta"]),
    "make-model delta overflows": (["make-model", "--loss", "huber", "--delta", "1e39", "-o", "{out}"], ["delta"]),
    "make-model huber with beta": (["make-model", "--loss", "huber", "--beta", "1", "-o", "{out}"], ["--beta"]),
    "make-model smooth_l1 with delta": (["make-model", "--delta", "1", "-o", "{out}"], ["--delta"]),
    "make-model bad opset": (["make-model", "--opset", "5", "-o", "{out}"], ["opset"]),
    "make-model bad rank": (["make-model", "--rank", "-1", "-o", "{out}"], ["rank"]),
    "make-model bad reduction": (["make-model", "--reduction", "avg", "-o", "{out}"], ["--reduction"]),
    "make-model bad dtype": (["make-model", "--dtype", "int32", "-o", "{out}"], ["--dtype"]),
    "make-model no output": (["make-model"], ["-o/--output"]),
    "make-model output is a directory": (["make-model", "-o", "{dir}"], ["-o/--output", "is a directory"]),
    "make-model output under a file": (["make-model", "-o", "{afile}/m.onnx"], ["-o/--output", "is a file"]),
    "make-models into a file": (["make-models", "{afile}"], ["DIRECTORY"]),
    "run model missing": (["run", "{dir}/nope.onnx", "--input", "{x}", "--target", "{y}"], ["MODEL", "no such file"]),
    "run model is a directory": (["run", "{dir}", "--input", "{x}", "--target", "{y}"], ["MODEL", "directory"]),
    "run model empty": (["run", "{empty}", "--input", "{x}", "--target", "{y}"], ["MODEL", "empty"]),
    "run model garbage": (["run", "{garbage}", "--input", "{x}", "--target", "{y}"], ["MODEL"]),
    "run input missing": (["run", "{model}", "--input", "{dir}/nope.npy", "--target", "{y}"], ["--input"]),
    "run input is a directory": (["run", "{model}", "--input", "{dir}", "--target", "{y}"], ["--input", "directory"]),
    "run input npz": (["run", "{model}", "--input", "{npz}", "--target", "{y}"], ["--input", ".npz"]),
    "run target junk": (["run", "{model}", "--input", "{x}", "--target", "{junk_npy}"], ["--target"]),
    "run shapes do not broadcast": (["run", "{model}", "--input", "{x}", "--target", "{y_bad}"],
                                    ["--input", "--target"]),
    "run wrong dtype": (["run", "{model}", "--input", "{x64}", "--target", "{x64}"], ["input", "float32"]),
    "run rank 0 model fed rank 1": (["run", "{rank0}", "--input", "{v3}", "--target", "{v3}"], ["shape", "rank 0"]),
    "run rank 0 model fed rank 1 function": (["run", "{rank0}", "--input", "{v3}", "--target", "{v3}",
                                              "--no-custom-op"], ["shape", "rank 0"]),
    "run no input option": (["run", "{model}", "--target", "{y}"], ["--input"]),
    "info missing": (["info", "{dir}/nope.onnx"], ["MODEL"]),
    "info empty": (["info", "{empty}"], ["MODEL", "empty"]),
    "info garbage": (["info", "{garbage}"], ["MODEL"]),
    "fuse in missing": (["fuse", "{dir}/nope.onnx", "{out}"], ["IN"]),
    "fuse in empty": (["fuse", "{empty}", "{out}"], ["IN", "empty"]),
    "fuse in garbage": (["fuse", "{garbage}", "{out}"], ["IN"]),
    "fuse out is a directory": (["fuse", "{model}", "{dir}"], ["OUT", "directory"]),
    "fuse out under a file": (["fuse", "{model}", "{afile}/f.onnx"], ["OUT", "is a file"]),
    "inline in missing": (["inline", "{dir}/nope.onnx", "{out}"], ["IN"]),
    "inline out is a directory": (["inline", "{model}", "{dir}"], ["OUT", "directory"]),
    "inline bad input shape": (["inline", "{model}", "{out}", "--input-shape", "input=a,,b"], ["--input-shape"]),
    "inline unknown input": (["inline", "{model}", "{out}", "--input-shape", "nope=3"], ["--input-shape"]),
    "export missing module": (["export", "{dir}/nope.py:make", "-o", "{out}"], ["nope.py"]),
    "export bad shape": (["export", "{dir}/nope.py:make", "--args-shape", "a,b", "-o", "{out}"], []),
    "parity unknown path": (["parity", "--paths", "nope"], ["--paths", "nope"]),
    "parity unknown dtype": (["parity", "--dtypes", "int8"], ["--dtypes"]),
    "parity path not available here": (["parity", "--quick", "--paths", "ort-cuda"], ["--paths", "ort-cuda",
                                                                                     "--allow-missing"]),
    "parity unknown loss": (["parity", "--losses", "mse"], ["--losses"]),
    "parity report is a directory": (["parity", "--quick", "--report", "{dir}"], ["--report", "directory"]),
    "parity json under a file": (["parity", "--quick", "--json", "{afile}/p.json"], ["--json", "is a file"]),
    "parity model missing": (["parity", "--model", "{dir}/nope.onnx"], ["--model"]),
    "parity inputs without model": (["parity", "--inputs", "input={x}"], ["--inputs"]),
    "parity inputs bad format": (["parity", "--model", "{model}", "--inputs", "input"], ["--inputs"]),
    "parity write-cases with model": (["parity", "--model", "{model}", "--write-cases", "{dir}"], ["--write-cases"]),
    "demo negative n": (["demo", "--n", "-5"], ["n"]),
    "bench without benchmarks dir": (["bench", "--root", "{dir}"], ["benchmarks"]),
    "unknown command": (["frobnicate"], ["frobnicate"]),
    "no command": ([], ["COMMAND"]),
}


@pytest.mark.parametrize("case", list(ARG_CASES))
def test_argument_misuse(case, files, tmp_path):
    argv, needles = ARG_CASES[case]
    out = tmp_path / "out.onnx"
    names = {**{k: str(v) for k, v in files.items()}, "out": str(out)}
    args = [a.format(**names) for a in argv]
    before = {p.name for p in tmp_path.iterdir()}
    proc = cli(*args, cwd=tmp_path)
    assert_misuse(proc, *[n.format(**names) for n in needles])
    assert not out.exists(), "an output file was written"
    assert {p.name for p in tmp_path.iterdir()} == before, "a (temporary) file was left behind"


def test_misspelt_name_in_the_disable_variable(tmp_path):
    proc = cli("parity", "--quick", "--paths", "torch", cwd=tmp_path, env={"ONNX_SMOOTHL1_PARITY_DISABLE": "trac"})
    assert_misuse(proc, "ONNX_SMOOTHL1_PARITY_DISABLE", "trac")


def test_export_without_torch(files, tmp_path):
    env = hidden_env("torch")
    proc = cli("export", "torch.nn:SmoothL1Loss", "--args-shape", "3", "--args-shape", "3", "-o",
               str(tmp_path / "o.onnx"), cwd=tmp_path, env=env)
    assert_misuse(proc, "PyTorch", "pip install torch==2.13.0")
    assert not (tmp_path / "o.onnx").exists()


def test_python_op_without_extensions(files, tmp_path):
    """custom_op='python' without onnxruntime-extensions: the API names the extra."""
    code = (
        "import onnx_smoothl1 as sl1\n"
        "try:\n"
        "    sl1.inference_session(sl1.make_model(), custom_op='python')\n"
        "except sl1.CustomOpUnavailable as e:\n"
        "    print('OK', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=hidden_env("onnxruntime_extensions"))
    assert proc.stdout.startswith("OK") and "pip install 'onnx-smoothl1[pyop]'" in proc.stdout, proc


def test_custom_op_model_without_library_gets_a_hint(tmp_path):
    model = sl1.make_model()
    del model.functions[:]  # what export(mode='custom_op') writes
    path = tmp_path / "node_only.onnx"
    onnx.save(model, str(path))
    np.save(tmp_path / "x.npy", np.ones(3, np.float32))
    proc = cli("run", str(path), "--input", "x.npy", "--target", "x.npy", "--no-custom-op", cwd=tmp_path)
    assert_misuse(proc, "no function attached", "--custom-op", "mode='function'")


def test_run_without_loss_node_does_not_claim_a_path(tmp_path):
    x = onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [3])
    y = onnx.helper.make_tensor_value_info("target", onnx.TensorProto.FLOAT, [3])
    z = onnx.helper.make_tensor_value_info("loss", onnx.TensorProto.FLOAT, [3])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Sub", ["input", "target"], ["loss"])], "g", [x, y], [z])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)], ir_version=10)
    onnx.save(model, str(tmp_path / "sub.onnx"))
    np.save(tmp_path / "x.npy", np.ones(3, np.float32))
    proc = cli("run", "sub.onnx", "--input", "x.npy", "--target", "x.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no onnx_smoothl1 loss node" in proc.stdout and "ONNX function" not in proc.stdout, proc.stdout


def test_debug_shows_the_traceback(files, tmp_path):
    proc = cli("--debug", "run", str(files["empty"]), "--input", str(files["x"]), "--target", str(files["y"]),
               cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr, proc.stderr[-2000:]


# --- real file systems ---------------------------------------------------------------------------

MODEL_WRITERS = {
    "make-model": lambda f, out: ["make-model", "-o", out],
    "fuse": lambda f, out: ["fuse", str(f["model"]), out],
    "inline": lambda f, out: ["inline", str(f["model"]), out],
    "parity --report": lambda f, out: ["parity", "--quick", "--paths", "torch", "--report", out],
    "parity --json": lambda f, out: ["parity", "--quick", "--paths", "torch", "--json", out],
}
ARG_OF = {"make-model": "-o/--output", "fuse": "OUT", "inline": "OUT", "parity --report": "--report",
          "parity --json": "--json"}


@pytest.mark.parametrize("command", list(MODEL_WRITERS))
def test_read_only_file_system(command, files, mounted, tmp_path):
    old = b"the old file"
    ro = mounted("ro", "ro", seed={"out.onnx": old})
    proc = cli(*MODEL_WRITERS[command](files, str(ro / "out.onnx")), cwd=tmp_path)
    assert_misuse(proc, ARG_OF[command], "read-only")
    assert (ro / "out.onnx").read_bytes() == old
    if command.startswith("parity"):  # checked before the grid ran: no table was printed
        assert "parity grid" not in proc.stdout, proc.stdout


@pytest.mark.parametrize("command", ["make-model", "fuse", "inline"])
def test_full_file_system_leaves_no_partial_file(command, files, mounted, tmp_path):
    full = mounted("full", "size=16k")
    (full / "filler").write_bytes(b"\0" * (16 * 1024 - 512))  # what is left: less than any model
    proc = cli(*MODEL_WRITERS[command](files, str(full / "out.onnx")), cwd=tmp_path)
    assert_misuse(proc, ARG_OF[command], "no space left")
    assert sorted(p.name for p in full.iterdir()) == ["filler"], "a partial or temporary file was left"


def test_make_models_on_a_full_file_system(files, mounted, tmp_path):
    """Used to leave smooth_l1_sum.onnx truncated: every file written is now whole."""
    full = mounted("full-models", "size=12k")
    proc = cli("make-models", str(full), cwd=tmp_path)
    assert_misuse(proc, "DIRECTORY", "no space left")
    from onnx_smoothl1.cli import READY_MADE

    expected = {name: (sl1.make_huber_model if "delta" in kw else sl1.make_model)(**kw).SerializeToString()
                for name, kw in READY_MADE.items()}
    written = sorted(full.iterdir())
    assert len(written) < len(READY_MADE), "the file system was big enough: the case proves nothing"
    for path in written:
        assert path.name in expected, f"temporary or stray file {path.name} left behind"
        assert path.read_bytes() == expected[path.name], f"{path.name} is not the whole model"


def test_file_size_limit_keeps_the_old_file(files, tmp_path):
    """ulimit -f: the write fails with EFBIG (Python ignores SIGXFSZ); the old file stays."""
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old")
    proc = cli("make-model", "-o", str(out), cwd=tmp_path, shell_prefix="ulimit -f 4")
    assert_misuse(proc, "-o/--output", "ulimit -f")
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_ctrl_c_during_parity_writes_a_partial_report(tmp_path):
    """SIGINT while the grid runs: one line, exit 130, no traceback, and the --report/--json
    asked for hold the results done so far, marked partial."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "onnx_smoothl1", "parity", "--quick", "-v", "--paths",
                             "torch", "ort-function", "onnx-reference", "--report", "r.md", "--json", "r.json"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 300
    seen = 0
    while seen < 20 and time.monotonic() < deadline:  # the grid has started: -v prints each result
        line = proc.stderr.readline()
        if not line:
            break
        seen += line.startswith("  ")
    assert seen >= 20, "the grid never started"
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("parity did not stop after SIGINT")
    assert proc.returncode == 130, (proc.returncode, out[-2000:], err[-2000:])
    assert "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == "onnx-smoothl1 parity: interrupted", err[-2000:]
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["partial"] is True and report["ok"] is False
    markdown = (tmp_path / "r.md").read_text()
    assert "PARTIAL: interrupted (Ctrl-C) after" in markdown
    done = sum(c["passed"] + c["failed"] + c["unsupported"] for c in report["cells"].values())
    assert 0 < done < report["cases"] * 3, done


def test_every_command_has_help_with_description_defaults_and_example():
    from onnx_smoothl1 import cli as cli_module

    parser = cli_module.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    assert set(sub.choices) == set(cli_module.EXAMPLES), "a command without an example"
    for name, cmd in sub.choices.items():
        text = " ".join(cmd.format_help().split())
        assert cmd.description, name
        assert f"example: {cli_module.EXAMPLES[name]}" in text, name
        for action in cmd._actions:
            if action.default not in (None, False, "==SUPPRESS==", []) and action.dest != "help":
                assert "default" in (action.help or "") or f"(default: {action.default})" in text, (name, action.dest)


@pytest.mark.parametrize("custom_op", [True, False], ids=["kernel", "function"])
def test_api_refuses_feeds_that_contradict_the_declared_rank(custom_op):
    """A rank-0 model fed vectors: the same ValueError naming the input on both paths (the
    kernel used to return 1.375; the function failed inside its Reshape)."""
    from onnx_smoothl1.runtime import run

    session = sl1.inference_session(sl1.make_model(rank=0), custom_op=custom_op)
    with pytest.raises(ValueError, match=r"input 'input': the model declares shape \[\] \(rank 0\)"):
        run(session, {"input": np.ones(3, np.float32), "target": np.ones(3, np.float32)})
    ok = run(session, {"input": np.float32(2.0), "target": np.float32(0.0)})
    assert float(ok[0]) == 1.5


def test_written_files_have_a_plain_files_mode(tmp_path):
    """Atomic writes go through mkstemp (mode 0600): a new file must get what open() would
    give (0666 less the umask) and a replaced file keeps its mode; a model written by the CLI
    was unreadable to anyone else before this."""
    from onnx_smoothl1 import files

    old = os.umask(0o022)
    try:
        new = files.write_bytes(tmp_path / "new.bin", b"x")
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        kept = tmp_path / "kept.bin"
        kept.write_bytes(b"old")
        kept.chmod(0o640)
        files.write_text(kept, "new")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_text() == "new\n"
    finally:
        os.umask(old)
