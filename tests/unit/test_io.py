"""Atomic directory writes (io.py atomic_dir), as the exporter writes a bundle
(tests/integration/test_export.py)."""

from __future__ import annotations

import pytest

from journeyformer.io import atomic_dir


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "bundle"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("one")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("two")
            raise RuntimeError("boom")
    assert (target / "a.txt").read_text() == "one"
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("three")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
