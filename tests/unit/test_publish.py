"""Output safety (issue 9): refuse before work, publish as one unit, clean up after kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from journeyformer import io as jio
from journeyformer.errors import OutputError
from journeyformer.publish import (
    check_dir_output,
    check_distinct,
    check_file_output,
    check_inside,
    clean_stale,
    manifest_path,
    publish_files,
    verify_manifest,
)


def test_file_output_guards(tmp_path: Path) -> None:
    events = tmp_path / "e.parquet"
    events.write_text("events")
    with pytest.raises(OutputError, match="is the input itself"):
        check_file_output(events, "output", [events])
    with pytest.raises(OutputError, match="existing directory"):
        check_file_output(tmp_path, "output", [events])
    d = tmp_path / "parts"
    d.mkdir()
    with pytest.raises(OutputError, match="would be read as events by the next run"):
        check_file_output(d / "p.parquet", "output", [d])
    with pytest.raises(OutputError, match="would be read as events by the next run"):
        check_file_output(d / "p.parquet", "output", [str(d / "*.parquet")])
    check_file_output(d / "p.parquet", "output", [str(d / "*.csv")])  # not read: fine
    check_file_output(d / "p.manifest.json", "manifest", [d])
    check_file_output(tmp_path / "p.parquet", "output", [events])  # fine
    with pytest.raises(OutputError, match=r"rejects=.* is the same file as output="):
        check_distinct({"output": tmp_path / "p.parquet", "rejects": tmp_path / "x/../p.parquet"})


def test_dir_output_guards(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.ckpt").write_text("weights")
    with pytest.raises(OutputError, match=r"not made by the export .*\['best.ckpt'\]"):
        check_dir_output(run, "output", "preprocessing.json", "export")
    with pytest.raises(OutputError, match="contains the input"):
        check_dir_output(run, "output", "preprocessing.json", "export", [run / "best.ckpt"])
    (run / "bundle").mkdir()
    (run / "bundle" / "preprocessing.json").write_text("{}")
    check_dir_output(run / "bundle", "output", "preprocessing.json", "export")  # ours: replaced
    check_dir_output(tmp_path / "new", "output", "preprocessing.json", "export")
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputError, match="existing file"):
        check_dir_output(tmp_path / "f", "output", "preprocessing.json", "export")


def test_run_name_cannot_escape_checkpoints(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    check_inside(root / "group/run", root, "run_name=group/run")
    for bad in ("../../x", "..", "/etc/x", "."):
        with pytest.raises(OutputError, match="outside"):
            check_inside(root / bad, root, f"run_name={bad}")


def _publish(out: Path, text: str) -> None:
    with publish_files({"predictions": out, "rejects": out.with_suffix(".rej")}, manifest_path(out)) as t:
        t["predictions"].write_text(text)
        t["rejects"].write_text(text + " rejects")


def test_publish_files_writes_both_and_a_manifest_last(tmp_path: Path) -> None:
    out = tmp_path / "p.parquet"
    _publish(out, "run 1")
    record = verify_manifest(manifest_path(out))
    assert set(record["files"]) == {"predictions", "rejects"}
    assert record["files"]["predictions"]["path"] == "p.parquet"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.manifest.json", "p.parquet", "p.rej"]
    # A failure in the middle leaves the previous unit exactly as it was, and no temp.
    with pytest.raises(RuntimeError), publish_files(
        {"predictions": out, "rejects": out.with_suffix(".rej")}, manifest_path(out)
    ) as t:
        t["predictions"].write_text("run 2")
        raise RuntimeError("killed")
    assert out.read_text() == "run 1" and verify_manifest(manifest_path(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.manifest.json", "p.parquet", "p.rej"]
    # Files of two runs are told apart by the manifest.
    out.with_suffix(".rej").write_text("another run's rejects")
    with pytest.raises(OutputError, match="rejects file .* is not the one"):
        verify_manifest(manifest_path(out))


def test_stale_temps_of_killed_runs_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "p.parquet"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".p.parquet.{pid}-0123abcd.tmp"
    stale.write_text("partial")
    mine = jio.temp_path(out)  # this process is alive: its temp stays
    mine.write_text("in progress")
    other = tmp_path / f".q.parquet.{pid}-0123abcd.tmp"  # another output's temp stays
    other.write_text("x")
    assert clean_stale([out]) == [stale]
    assert mine.exists() and other.exists()


def test_directory_swap_without_exchange_recovers_after_a_kill(tmp_path: Path, monkeypatch) -> None:
    """A kill between the two renames of the fallback used to leave no bundle at all."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.onnx").write_text("old")
    monkeypatch.setattr(jio, "exchange", lambda a, b: False)
    real_rename = os.rename
    calls = []

    def killed_after_first(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if killed between the renames
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", killed_after_first)
    with pytest.raises(KeyboardInterrupt), jio.atomic_dir(bundle) as tmp:
        (tmp / "model.onnx").write_text("new")
    monkeypatch.setattr(os, "rename", real_rename)
    # The rollback in replace_dir put it back; simulate a hard kill by moving it aside again.
    assert (bundle / "model.onnx").read_text() == "old"
    aside = tmp_path / ".bundle.old-99999999-0123abcd"
    real_rename(bundle, aside)
    clean_stale([bundle])
    assert (bundle / "model.onnx").read_text() == "old" and not aside.exists()


def test_atomic_dir_swaps_in_one_step(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    for text in ("v1", "v2"):
        with jio.atomic_dir(bundle) as tmp:
            (tmp / "model.onnx").write_text(text)
    assert (bundle / "model.onnx").read_text() == "v2"
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_sigterm_removes_temps_and_exits_through_finally(tmp_path: Path) -> None:
    out = tmp_path / "p.parquet"
    code = f"""
import os, signal, sys
from pathlib import Path
from journeyformer.publish import exit_cleanly_on_signals
from journeyformer.io import atomic_path
with exit_cleanly_on_signals():
    with atomic_path({str(out)!r}) as tmp:
        tmp.write_text("partial")
        os.kill(os.getpid(), signal.SIGTERM)
        import time; time.sleep(5)
print("not reached")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert "not reached" not in proc.stdout
    assert list(tmp_path.iterdir()) == []
