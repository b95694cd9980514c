"""Atomic file output: write to a temp file beside the target, then rename, so a reader never
sees a partial file and a failure mid-write leaves nothing behind.

Temp names carry the pid (``.<target name>.<pid>-<random>.tmp``), so a later run removes those
of killed runs (:func:`journeyformer.publish.clean_stale`); this process's live temps are in
:data:`LIVE_TEMPS` for a signal handler. Policy (what may be overwritten) lives in
:mod:`journeyformer.publish`; this module holds the mechanisms. Torch-free.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

# Temp files and directories of this process that exist right now.
LIVE_TEMPS: set[Path] = set()


# Finished files and directories get the usual permissions (reading the umask means setting it).
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
_DIR_MODE = 0o777 & ~_UMASK


def temp_path(path: str | Path) -> Path:
    """A fresh temp name beside ``path``: ``.<name>.<pid>-<random>.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def remove_path(path: Path) -> None:
    """Remove a file or directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def temp_file(path: str | Path) -> Iterator[Path]:
    """A registered temp path beside ``path`` (not created); removed on exit if still there."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    LIVE_TEMPS.add(tmp)
    try:
        yield tmp
    finally:
        remove_path(tmp)
        LIVE_TEMPS.discard(tmp)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path in ``path``'s directory; on success rename it to ``path``.

    Example::

        with atomic_path("out/predictions.parquet") as tmp:
            frame.write_parquet(tmp)
    """
    path = Path(path)
    with temp_file(path) as tmp:
        yield tmp
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result into place."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_parquet(path: str | Path, frame: pl.DataFrame) -> Path:
    return atomic_write(path, frame.write_parquet)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux renameat2 RENAME_EXCHANGE).

    Returns False when the system or file system cannot (the caller falls back).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def replace_dir(tmp: Path, path: Path) -> None:
    """Put directory ``tmp`` at ``path``; a reader sees the old or the new one, never neither.

    With an existing ``path`` the two are swapped in one step and the old one (now at ``tmp``)
    is removed. Where that is not supported, ``path`` is first renamed aside to
    ``.<name>.old-<pid>-<random>`` (restored if the second rename fails, and by
    :func:`journeyformer.publish.clean_stale` after a kill between the two).
    """
    if not path.exists():
        os.rename(tmp, path)
        return
    if exchange(tmp, path):
        remove_path(tmp)
        return
    old = path.with_name(f".{path.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    remove_path(old)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temp directory beside ``path``; on success it replaces ``path``.

    On failure the temp directory is removed and an existing ``path`` is left untouched
    (:func:`replace_dir` for the swap).
    """
    path = Path(path)
    with temp_file(path) as tmp:
        tmp.mkdir(parents=True)
        os.chmod(tmp, _DIR_MODE)
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                os.chmod(f, _FILE_MODE)
        replace_dir(tmp, path)
