"""Writing files the way a user can trust: atomically, with one-line errors that name the file.

Every model, report and JSON the package writes goes through :func:`write_bytes` /
:func:`write_text`: the data goes to a temporary file in the target's directory, is flushed
to disk, and replaces the target with ``os.replace`` only when complete. A full disk, a
read-only file system or an interrupt therefore leaves the old file (if any) and no partial
one. File-system errors become :class:`FileError` (a ``ValueError``, so the command line
reports it in one line with exit 2) naming the argument, the path and what to do.
:func:`check_writable` lets long commands (``parity --report``) fail before the work.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

#: What to do, by errno, after "ARG: cannot write PATH: <strerror>".
_ADVICE = {
    errno.EROFS: "the file system is read-only; choose a writable location",
    errno.EACCES: "permission denied; choose a writable location",
    errno.EPERM: "permission denied; choose a writable location",
    errno.ENOSPC: "no space left on the device; free some space (nothing was written)",
    errno.EDQUOT: "disk quota exceeded; free some space (nothing was written)",
    errno.EFBIG: "the file is larger than this process may write (ulimit -f); nothing was written",
    errno.EISDIR: "it is a directory; give a file path",
    errno.ENOTDIR: "a parent of it is a file, not a directory",
    errno.EEXIST: "a parent of it is a file, not a directory",
    errno.ENAMETOOLONG: "the name is too long",
}


class FileError(ValueError):
    """A file could not be written or read; the message names the argument and the path."""


def _fail(arg: str, path: Path, exc: OSError) -> FileError:
    advice = _ADVICE.get(exc.errno or 0, exc.strerror or str(exc))
    return FileError(f"{arg}: cannot write {path}: {advice}")


def _target(path: str | os.PathLike[str], arg: str) -> Path:
    target = Path(path)
    if target.is_dir():
        raise FileError(f"{arg}: {target} is a directory; give a file path")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise FileError(f"{arg}: cannot write {target}: {parent} is a file, not a directory")
            break
    return target


def _mode_for(target: Path) -> int:
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_bytes(path: str | os.PathLike[str], data: bytes, *, arg: str = "output") -> Path:
    """Write ``data`` to ``path`` atomically (parents created); ``FileError`` on failure."""
    target = _target(path, arg)
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        # mkstemp makes the file 0600; the result must have the mode a plain open() gives
        # (0666 less the umask), or the mode of the file it replaces.
        os.fchmod(fd, _mode_for(target))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise _fail(arg, target, exc) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return target


def write_text(path: str | os.PathLike[str], text: str, *, arg: str = "output") -> Path:
    """:func:`write_bytes` of ``text`` (UTF-8, a final newline added when missing)."""
    if not text.endswith("\n"):
        text += "\n"
    return write_bytes(path, text.encode("utf-8"), arg=arg)


def check_writable(path: str | os.PathLike[str], *, arg: str = "output") -> Path:
    """Fail now, with :class:`FileError`, if ``path`` could not be written later (directory,
    parent that is a file, read-only or full file system); creates missing parents."""
    target = _target(path, arg)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=target.parent)
        try:
            os.write(fd, b"\0")
        finally:
            os.close(fd)
            os.unlink(tmp)
    except OSError as exc:
        raise _fail(arg, target, exc) from exc
    return target
