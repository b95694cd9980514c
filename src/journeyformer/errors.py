"""The errors a user can cause, and how the scripts show them: one line, no traceback.

Every error the project raises for bad input, settings or artefacts derives from
:class:`JourneyformerError` (and from ValueError, so ``except ValueError`` keeps working).
:func:`journeyformer.cli.entry_point` wraps a script's main function: such errors, and
operating-system errors (permission denied, disk full, file too large, ...), print one line
``error: <message>`` on stderr and exit with status 2; set ``JOURNEYFORMER_DEBUG=1`` to get the
traceback instead.

Torch-free: imports only the standard library.
"""

from __future__ import annotations

import errno
import os

DEBUG_ENV = "JOURNEYFORMER_DEBUG"
EXIT_USER_ERROR = 2


class JourneyformerError(ValueError):
    """Base of every error whose message tells the user what to change."""


class EventDataError(JourneyformerError):
    """The input events break the event contract; the message says where and what to change."""


class ConfigError(JourneyformerError):
    """A setting has a value that cannot work; the message names the setting."""


class OutputError(JourneyformerError):
    """An output path would overwrite or delete something the job did not create."""


class RuntimeSetupError(JourneyformerError, RuntimeError):
    """The machine lacks what a setting needs (e.g. device=cuda without onnxruntime-gpu)."""


class CheckpointError(JourneyformerError):
    """A checkpoint file is missing, damaged, foreign or does not fit the run."""


_OS_HINTS = {
    errno.EACCES: "check the permissions, or choose another path",
    errno.EPERM: "check the permissions, or choose another path",
    errno.ENOSPC: "free disk space, or write somewhere else",
    errno.EDQUOT: "free space in your quota, or write somewhere else",
    errno.EFBIG: "the file size limit (ulimit -f) is too low for this output",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.EEXIST: "remove it or choose another path",
    errno.ENOENT: "check the path",
    errno.EISDIR: "a directory is in the way; choose a file path",
    errno.ENOTDIR: "a file is in the way where a directory is needed",
}


def describe(err: BaseException) -> str:
    """The message shown for ``err``: ours as written, an OS error as path, reason and hint."""
    if isinstance(err, OSError):
        where = " -> ".join(str(p) for p in (err.filename, err.filename2) if p)
        what = err.strerror or str(err) or type(err).__name__
        hint = _OS_HINTS.get(err.errno or -1)
        return f"{where + ': ' if where else ''}{what}" + (f" ({hint})" if hint else "")
    return str(err)


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types shown as one line (the project's own errors and OS errors)."""
    return (JourneyformerError, OSError)


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")
