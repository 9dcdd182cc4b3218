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
