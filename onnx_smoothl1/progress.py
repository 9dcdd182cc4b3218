"""Progress on stderr for the long commands (``parity``, ``bench``), via tqdm.

Why a module: the parity grid (about a minute) and the benchmarks (minutes) used to print
nothing until they finished. A bar shows cases done of total and what is running now, but
only for a person watching: it stays silent when stderr is not a terminal (CI logs, pipes,
``subprocess.run(capture_output=True)``) or when the user passes ``-q``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from tqdm import tqdm


def enabled(stream: TextIO | None = None, *, quiet: bool = False) -> bool:
    """True when progress should be drawn: not ``quiet`` and ``stream`` is a terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not quiet and bool(isatty and isatty())


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):  # not a real file descriptor
        return 80


class Bar:
    """Units done of ``total`` (parity: (case, path) results); ``now(label)`` names what is
    running (a path, a case)."""

    def __init__(self, bar: tqdm | None) -> None:
        self._bar = bar

    def now(self, label: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(label, refresh=True)

    def done(self, label: str | None = None, count: int = 1) -> None:
        if self._bar is not None:
            if label is not None:
                self._bar.set_postfix_str(label, refresh=False)
            self._bar.update(count)


@contextmanager
def bar(total: int, desc: str, *, quiet: bool = False, stream: TextIO | None = None,
        mininterval: float = 0.1, unit: str = "it") -> Iterator[Bar]:
    """A progress bar on ``stream`` (stderr), or a silent stand-in when not :func:`enabled`.

    ``mininterval`` is tqdm's redraw limit (seconds)."""
    stream = sys.stderr if stream is None else stream
    if not enabled(stream, quiet=quiet):
        yield Bar(None)
        return
    # A terminal that reports a 0 x 0 size (a bare pty) would get no bar: draw 100 x 24.
    wide = _columns(stream) > 0
    with tqdm(total=total, desc=desc, file=stream, unit=unit, leave=False, dynamic_ncols=wide,
              ncols=None if wide else 100, nrows=None if wide else 24, mininterval=mininterval) as t:
        yield Bar(t)
