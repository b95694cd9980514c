"""Readers (issue 9): CSV separators, header-only files, Parquet directories whose files differ
in harmless ways, and real conflicts named per file."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from journeyformer.data.events.load import load_events
from journeyformer.data.events.readers import READERS, SUFFIXES
from journeyformer.data.events.schema import EventSchema
from journeyformer.errors import EventDataError

ROWS = [
    ("1", "2025-01-01T10:00:00", "web", "view", "1.5"),
    ("1", "2025-01-02T10:00:00", "app", "purchase", "20"),
    ("2", "2025-01-03T10:00:00", "web", "view", "0"),
]
HEADER = ("customer_id", "timestamp", "channel", "action", "amount")


def write_csv(path: Path, sep: str, rows=ROWS) -> Path:
    path.write_text("\n".join(sep.join(r) for r in [HEADER, *rows]) + "\n")
    return path


@pytest.mark.parametrize("sep", [";", "\t", "|", ","])
def test_csv_separator_is_sniffed(tmp_path: Path, sep: str) -> None:
    """A semicolon CSV used to fail with 'missing columns'; now it is read."""
    events = load_events(write_csv(tmp_path / "e.csv", sep), EventSchema())
    assert events.height == 3
    assert events["amount"].to_list() == [1.5, 20.0, 0.0]


def test_csv_separator_setting(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "e.csv", ";")
    assert load_events(path, EventSchema(separator=";")).height == 3
    # A wrong explicit separator: the columns are not found, and the message shows why.
    with pytest.raises(EventDataError, match="missing column"):
        load_events(path, EventSchema(separator=","))
    with pytest.raises(ValueError, match="data.separator"):
        EventSchema(separator=";;")


def test_header_only_csv_says_no_events(tmp_path: Path) -> None:
    """It used to say a column had the wrong type."""
    path = write_csv(tmp_path / "h.csv", ",", rows=[])
    with pytest.raises(EventDataError, match=r"h\.csv: no events: the file has a header line"):
        load_events(path, EventSchema())
    # A header-only file among others is skipped.
    write_csv(tmp_path / "full.csv", ",")
    assert load_events(str(tmp_path / "*.csv"), EventSchema()).height == 3


def _parquet(path: Path, **columns) -> Path:
    base = {
        "customer_id": [1, 1, 2],
        "timestamp": ["2025-01-01T10:00:00", "2025-01-02T10:00:00", "2025-01-03T10:00:00"],
        "channel": ["web", "app", "web"],
        "action": ["view", "purchase", "view"],
    }
    pl.DataFrame({**base, **columns}).write_parquet(path)
    return path


def test_parquet_directory_extra_columns_dropped_and_numbers_widened(tmp_path: Path) -> None:
    """Both used to be refused with Polars API hints."""
    d = tmp_path / "events"
    d.mkdir()
    _parquet(d / "a.parquet", amount=pl.Series([1, 2, 3], dtype=pl.Int64))
    _parquet(d / "b.parquet", amount=pl.Series([1.5, 2.5, 0.0]), coupon=["x", "y", "z"])
    events = load_events(d, EventSchema(duplicates="keep"))
    assert events.height == 6
    assert events.schema["amount"] == pl.Float64
    assert sorted(events["amount"].to_list()) == [0.0, 1.0, 1.5, 2.0, 2.5, 3.0]


def test_parquet_directory_real_conflicts_named_per_file(tmp_path: Path) -> None:
    d = tmp_path / "events"
    d.mkdir()
    _parquet(d / "a.parquet", amount=[1.0, 2.0, 3.0])
    _parquet(d / "b.parquet", amount=["1", "2", "x"])
    pl.DataFrame({"customer_id": [3], "timestamp": ["2025-01-01"], "action": ["v"]}).write_parquet(
        d / "c.parquet"
    )
    with pytest.raises(EventDataError) as info:
        load_events(d, EventSchema())
    message = str(info.value)
    assert "column 'amount' has conflicting types (a.parquet: Float64, b.parquet: String" in message
    assert "column 'channel' is missing in 1 file(s), e.g. ['c.parquet']" in message
    assert "Polars" not in message and "missing_columns" not in message


def test_every_format_has_a_reader_and_suffixes() -> None:
    """The registry is the one place to add a data source."""
    assert set(READERS) == set(SUFFIXES)
