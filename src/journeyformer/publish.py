"""Output safety for every job: refuse before work, publish as one unit, clean up after kills.

* **Refuse before any work** (:func:`check_file_output`, :func:`check_dir_output`,
  :func:`check_distinct`, :func:`check_inside`): an output that is an existing directory the
  job did not make, the input itself (or a file inside an input directory), a rejects path equal
  to the output, a run directory outside ``checkpoints/``. The error names the setting.
* **Publish as one unit.** A directory output (bundle, report) is built in a temp directory and
  swapped in with one rename (:func:`journeyformer.io.replace_dir`). Several files (predictions
  and rejects) are published by :func:`publish_files`: all are written to temps first; then the
  old manifest is removed, the files are renamed into place, and a manifest naming each file
  with its row count, size and SHA-256 is written last. The manifest is the commit record:
  :func:`verify_manifest` tells a complete result from a mix. SIGTERM/SIGINT arriving during
  those renames is held until they are done.
* **One plan per job** (:class:`OutputPlan`), the same for every job.
* **Signals and stale temps.** :func:`exit_cleanly_on_signals` turns SIGTERM into SystemExit
  (and leaves SIGINT as KeyboardInterrupt), so every temp file is removed on the way out; as a
  backstop the handler removes this process's registered temps itself. :func:`clean_stale`,
  run before a job writes an output, removes temps left by killed runs of that output (their
  pid is dead) and restores a directory left renamed aside.

Torch-free: standard library, Polars-free.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from journeyformer.errors import OutputError
from journeyformer.io import LIVE_TEMPS, atomic_dir, atomic_write_text, remove_path, temp_file

log = logging.getLogger(__name__)

MANIFEST_KIND = "journeyformer.outputs"
_LEGACY_TEMP_AGE_S = 3600.0  # temps without a pid (older versions): removed after an hour


# --- refuse before work --------------------------------------------------------------------


def _resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _input_files(inputs: Iterable[str | Path | None]) -> list[Path]:
    """Every input as resolved paths: a glob expanded, a directory kept as itself."""
    out: list[Path] = []
    for item in inputs:
        if item is None:
            continue
        text = str(item)
        out += [_resolved(p) for p in glob.glob(text)] if _is_glob(text) else [_resolved(text)]
    return out


def _read_later(out: Path, inputs: Iterable[str | Path | None]) -> str | None:
    """The input whose next read would take ``out`` for events (a directory's *.parquet, a
    glob's matches), or None."""
    for item in inputs:
        if item is None:
            continue
        text = str(item)
        if _is_glob(text):
            pattern = str(_resolved(Path(text).parent) / Path(text).name)
            if fnmatch.fnmatch(str(out), pattern):
                return text
        elif _resolved(text).is_dir() and out.parent == _resolved(text) and out.suffix == ".parquet":
            return text
    return None


def check_file_output(
    output: str | Path, setting: str, inputs: Iterable[str | Path | None] = ()
) -> Path:
    """Refuse a file output that is a directory, an input, or inside an input directory."""
    out = _resolved(output)
    if out.is_dir():
        raise OutputError(
            f"{setting}={output} is an existing directory; give a file path such as "
            f"{Path(output) / 'predictions.parquet'}"
        )
    inputs = list(inputs)
    for src in _input_files(inputs):
        if out == src:
            raise OutputError(
                f"{setting}={output} is the input itself; writing there would replace your "
                "events. Choose another path."
            )
    source = _read_later(out, inputs)
    if source is not None:
        raise OutputError(
            f"{setting}={output} would be read as events by the next run on input={source}. "
            "Choose a path outside the input directory (or not matching the glob)."
        )
    return Path(output)


def check_dir_output(
    output: str | Path, setting: str, marker: str, job: str, inputs: Iterable[str | Path | None] = ()
) -> Path:
    """Refuse a directory output that exists and was not made by ``job`` (it has no
    ``marker`` file), that is not a directory, or that holds (or is) an input."""
    out = _resolved(output)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{setting}={output} is an existing file; give a directory path")
    for src in _input_files(inputs):
        if src == out or src.is_relative_to(out):
            raise OutputError(
                f"{setting}={output} contains the input {src}; the {job} would replace the "
                "directory and delete it. Choose another output directory."
            )
    if out.is_dir() and any(out.iterdir()) and not (out / marker).exists():
        found = sorted(p.name for p in out.iterdir())[:5]
        raise OutputError(
            f"{setting}={output} is an existing directory not made by the {job} (it has "
            f"{found} and no {marker}); the {job} replaces its output directory as a whole. "
            "Choose a new or empty directory."
        )
    return Path(output)


def check_distinct(paths: Mapping[str, str | Path]) -> None:
    """Refuse two settings that name the same file (e.g. rejects= equal to output=)."""
    seen: dict[Path, str] = {}
    for setting, path in paths.items():
        key = _resolved(path)
        if key in seen:
            raise OutputError(
                f"{setting}={path} is the same file as {seen[key]}; one would overwrite the "
                "other. Give each its own path."
            )
        seen[key] = f"{setting}={path}"


def check_inside(path: str | Path, root: str | Path, setting: str) -> Path:
    """Refuse ``path`` unless it lies strictly inside ``root`` (e.g. run_name under
    checkpoints/)."""
    p, r = _resolved(path), _resolved(root)
    if p == r or not p.is_relative_to(r):
        raise OutputError(
            f"{setting} puts the run at {path}, outside {root}; use a plain name such as "
            "my_run (sub-folders like group/run are fine, '..' and absolute paths are not)"
        )
    return Path(path)


# --- stale temps ---------------------------------------------------------------------------

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)-[0-9a-f]{8}|[A-Za-z0-9_]{8})\.tmp$")
_OLD = re.compile(r"^\.(?P<name>.+)\.old-(?:(?P<pid>\d+)-)?[0-9a-f]{8}$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(outputs: Iterable[str | Path]) -> list[Path]:
    """Remove temps left beside ``outputs`` by killed runs (dead pid, or no pid and older than
    an hour); put back a directory a killed run had renamed aside. Returns what it removed."""
    removed: list[Path] = []
    for output in outputs:
        out = Path(output)
        if not out.parent.is_dir():
            continue
        for p in out.parent.iterdir():
            m = _TEMP.match(p.name) or _OLD.match(p.name)
            if not m or m.group("name") != out.name:
                continue
            pid = m.group("pid")
            if pid is not None and _alive(int(pid)):
                continue
            if pid is None and time.time() - p.lstat().st_mtime < _LEGACY_TEMP_AGE_S:
                continue
            if _OLD.match(p.name) and not out.exists():
                os.rename(p, out)  # the run was killed between its two renames
                log.warning("%s: restored from %s, left by a killed run", out, p.name)
                continue
            remove_path(p)
            removed.append(p)
        if removed:
            log.info("removed %d temp file(s) left by killed runs of %s", len(removed), out)
    return removed


# --- signals -------------------------------------------------------------------------------

_pending: list[int] = []
_critical = [0]


def _handler(signum: int, frame: Any) -> None:
    if _critical[0]:
        _pending.append(signum)  # raised when the renames are done
        return
    for tmp in list(LIVE_TEMPS):
        remove_path(tmp)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


@contextmanager
def exit_cleanly_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT remove this process's temps and end it through the normal
    exception path (so ``finally`` blocks run). No-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in previous:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGTERM/SIGINT (with our handler installed) until the block is done."""
    _critical[0] += 1
    try:
        yield
    finally:
        _critical[0] -= 1
        if not _critical[0] and _pending:
            signum = _pending.pop()
            _pending.clear()
            _handler(signum, None)


# --- publishing several files as one unit --------------------------------------------------


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _parquet_rows(path: Path) -> int | None:
    try:
        import pyarrow.parquet as pq

        return int(pq.read_metadata(path).num_rows)
    except Exception:  # noqa: BLE001 - not Parquet: no row count
        return None


def manifest_path(output: str | Path) -> Path:
    """``out/predictions.parquet`` -> ``out/predictions.manifest.json``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.manifest.json")


def _record(manifest: Path, files: Mapping[str, tuple[Path, Path]], extra: Mapping[str, Any] | None = None) -> str:
    """The manifest's JSON: each file (name -> (final path, the file to measure)) by its path
    relative to the manifest, rows, bytes and SHA-256, then ``extra``."""
    entries = {
        k: {"path": os.path.relpath(final, manifest.parent), "rows": _parquet_rows(tmp),
            "bytes": tmp.stat().st_size, "sha256": sha256(tmp)}
        for k, (final, tmp) in files.items()
    }  # fmt: skip
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return json.dumps({"kind": MANIFEST_KIND, "created_at": created, "files": entries, **dict(extra or {})}, indent=1)


@contextmanager
def publish_files(outputs: Mapping[str, str | Path], manifest: str | Path) -> Iterator[dict[str, Path]]:
    """Yield a temp path per named output; when the block succeeds, publish them as one unit.

    Example::

        with publish_files({"predictions": out, "rejects": rej}, manifest_path(out)) as tmp:
            write_predictions(tmp["predictions"]); write_rejects(tmp["rejects"])

    On failure (or a signal) every temp is removed and the previous outputs stay as they were.
    """
    finals = {k: Path(v) for k, v in outputs.items()}
    manifest = Path(manifest)
    with ExitStack() as stack:
        named = {k: stack.enter_context(temp_file(final)) for k, final in finals.items()}
        yield named
        record = _record(manifest, {k: (finals[k], named[k]) for k in finals})
        with _signals_held():
            manifest.unlink(missing_ok=True)  # the old files are no longer a certified unit
            for k, final in finals.items():
                os.replace(named[k], final)
            atomic_write_text(manifest, record)


def write_dir_manifest(
    directory: Path, files: Mapping[str, Path], name: str, extra: Mapping[str, Any] | None = None
) -> Path:
    """Write ``directory/name``: each file's path (relative), rows, bytes and SHA-256, plus
    ``extra`` (e.g. counts). For a directory output published as one unit by
    :func:`journeyformer.io.atomic_dir`; write it last, :func:`verify_manifest` reads it."""
    manifest = directory / name
    return atomic_write_text(manifest, _record(manifest, {k: (f, f) for k, f in files.items()}, extra))


def verify_manifest(manifest: str | Path) -> dict[str, Any]:
    """Check that every file the manifest names is there with its size and checksum; returns
    the manifest. Raises OutputError naming the first file that does not match."""
    manifest = Path(manifest)
    try:
        record = json.loads(manifest.read_text())
    except (OSError, ValueError) as err:
        raise OutputError(f"{manifest}: not a readable manifest ({err})") from None
    for name, entry in record.get("files", {}).items():
        path = manifest.parent / entry["path"]
        if not path.exists():
            raise OutputError(f"{manifest}: {name} file {path} is missing")
        if path.stat().st_size != entry["bytes"] or sha256(path) != entry["sha256"]:
            raise OutputError(
                f"{manifest}: {name} file {path} is not the one this manifest describes "
                "(another run's, or changed since)"
            )
    return record


# --- one plan per job ----------------------------------------------------------------------


@dataclass
class OutputPlan:
    """What a job writes, and how it is kept safe: :meth:`check` refuses it before any work,
    :meth:`clean` removes what killed runs left, :meth:`publish` writes it as one unit.

    Either ``files`` (setting -> (name in the manifest, path)) published together with
    ``manifest`` written last (:func:`publish_files`), or one ``directory`` made by ``job``
    (its ``marker`` file says so) swapped in whole (:func:`journeyformer.io.atomic_dir`).
    ``inputs``: what the outputs must not replace; ``scratch``: temporaries the job keeps
    beside its outputs (cleaned with them).

    Example::

        plan = OutputPlan.files_unit({"output": ("predictions", out), "rejects": ("rejects", rej)},
                                     manifest_path(out), inputs=[events])
        plan.check(); plan.clean()
        with plan.publish() as tmp:
            write(tmp["predictions"]); write(tmp["rejects"])
    """

    inputs: list[str | Path] = field(default_factory=list)
    files: dict[str, tuple[str, Path]] = field(default_factory=dict)
    manifest: Path | None = None
    directory: Path | None = None
    marker: str = ""
    job: str = ""
    scratch: list[Path] = field(default_factory=list)

    @classmethod
    def files_unit(cls, files: Mapping[str, tuple[str, str | Path]], manifest: str | Path,
                   inputs: Iterable[str | Path | None] = (), scratch: Iterable[str | Path] = ()) -> OutputPlan:  # fmt: skip
        return cls([i for i in inputs if i is not None], {k: (name, Path(p)) for k, (name, p) in files.items()},
                   Path(manifest), scratch=[Path(p) for p in scratch])  # fmt: skip

    @classmethod
    def dir_unit(cls, directory: str | Path, marker: str, job: str, inputs: Iterable[str | Path | None] = ()) -> OutputPlan:
        return cls([i for i in inputs if i is not None], directory=Path(directory), marker=marker, job=job)

    def check(self) -> None:
        """Refuse, before any work, outputs that would replace an input, each other, or a
        directory this job did not make."""
        if self.directory is not None:
            check_dir_output(self.directory, "output", self.marker, self.job, self.inputs)
            return
        paths = {**{setting: path for setting, (_, path) in self.files.items()}, "manifest": self.manifest}
        for setting, path in paths.items():
            check_file_output(path, setting, self.inputs)
        check_distinct(paths)

    def clean(self) -> list[Path]:
        """Remove temps left beside the outputs by killed runs (:func:`clean_stale`)."""
        if self.directory is not None:
            return clean_stale([self.directory])
        return clean_stale([*(path for _, path in self.files.values()), self.manifest, *self.scratch])

    @contextmanager
    def publish(self) -> Iterator[Any]:
        """Yield where to write (name -> temp path; or the temp directory); publish it all when
        the block succeeds, leave the previous outputs otherwise."""
        if self.directory is not None:
            with atomic_dir(self.directory) as tmp:
                yield tmp
            return
        assert self.manifest is not None
        with publish_files({name: path for name, path in self.files.values()}, self.manifest) as tmp:
            yield tmp
