"""One line per user error at the entry points, the traceback only with JOURNEYFORMER_DEBUG."""

from __future__ import annotations

import errno

import pytest

from journeyformer.cli import entry_point
from journeyformer.errors import DEBUG_ENV, EventDataError


def _fails_with(err: BaseException):
    @entry_point
    def main() -> None:
        raise err

    return main


@pytest.mark.parametrize(
    ("err", "line"),
    [
        (EventDataError("e.csv: 3 of 10 values cannot be parsed"), "error: e.csv: 3 of 10 values cannot be parsed"),
        (PermissionError(errno.EACCES, "Permission denied", "out/p.parquet"),
         "error: out/p.parquet: Permission denied (check the permissions, or choose another path)"),
        (OSError(errno.ENOSPC, "No space left on device", "out/p.parquet"),
         "error: out/p.parquet: No space left on device (free disk space, or write somewhere else)"),
        (FileExistsError(errno.EEXIST, "File exists", "out"), "error: out: File exists (remove it or choose another path)"),
    ],
)  # fmt: skip
def test_user_errors_are_one_line_and_exit_2(err, line, capsys, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(SystemExit) as info:
        _fails_with(err)()
    assert info.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.splitlines()[0] == line
    assert "Traceback" not in stderr


def test_debug_switch_and_bugs_keep_the_traceback(monkeypatch):
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(EventDataError):
        _fails_with(EventDataError("x"))()
    monkeypatch.delenv(DEBUG_ENV)
    with pytest.raises(KeyError):  # a bug, not a user error: the traceback stays
        _fails_with(KeyError("vocabs"))()
