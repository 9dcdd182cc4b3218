"""Progress output (issue 13): drawn on a terminal, silent otherwise or with quiet."""

from __future__ import annotations

import io
import os
import pty

from onnx_smoothl1 import progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with progress.bar(3, "parity", stream=stream) as b:
        for i in range(3):
            b.now(f"path {i}")
            b.done(f"case {i}")
    assert stream.getvalue() == ""


def test_silent_with_quiet_on_a_terminal() -> None:
    stream = _Tty()
    with progress.bar(3, "parity", stream=stream, quiet=True) as b:
        b.done("x", 3)
    assert stream.getvalue() == ""


def test_drawn_on_a_terminal() -> None:
    stream = _Tty()
    with progress.bar(4, "parity", stream=stream, mininterval=0) as b:
        b.now("ort-function")
        b.done("case a")
        b.done("case b", 3)
    out = stream.getvalue()
    assert "parity" in out and "4/4" in out and "case b" in out


def test_enabled_on_a_real_pty() -> None:
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            assert progress.enabled(tty)
            assert not progress.enabled(tty, quiet=True)
    finally:
        os.close(master)
        os.close(slave)


def _stderr_on_a_pty(args: list[str]) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout piped); return (rc, stderr text)."""
    import subprocess
    import sys

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "onnx_smoothl1.cli", *args],
                                stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        proc.communicate(timeout=300)
        return proc.returncode, b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(master)


PARITY = ["parity", "--quick", "--paths", "ort-function", "--dtypes", "float32"]


def test_parity_cli_draws_progress_on_a_terminal() -> None:
    from onnx_smoothl1 import parity

    total = len(parity.grid(["float32"], quick=True))
    rc, err = _stderr_on_a_pty(PARITY)
    assert rc == 0, err
    import re

    counts = {int(n) for n in re.findall(rf"(\d+)/{total}\b", err)}
    assert "parity:" in err and ": ort-function" in err, err[-2000:]
    assert 0 in counts and len(counts) >= 2 and max(counts) <= total, sorted(counts)


def test_parity_cli_quiet_on_a_terminal_and_off_one() -> None:
    import subprocess
    import sys

    rc, err = _stderr_on_a_pty([*PARITY, "-q"])
    assert rc == 0 and "parity:" not in err, err[-2000:]
    proc = subprocess.run([sys.executable, "-m", "onnx_smoothl1.cli", *PARITY], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "parity:" not in proc.stderr, proc.stderr[-2000:]
