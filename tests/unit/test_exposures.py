"""The exposure log contract: read like events, with errors that name file, column, value, count."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from journeyformer.data.events.exposures import ExposureSchema, exposure_events, load_exposures
from journeyformer.errors import ConfigError, EventDataError

HEADER = "customer_id,timestamp,campaign,arm,eligible\n"


def _write(tmp_path: Path, rows: str, name: str = "exposures.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + rows)
    return path


def test_reads_the_documented_example(tmp_path: Path) -> None:
    path = _write(tmp_path, (
        "17,2025-10-02T09:00:00,winback_oct,treatment,true\n"
        "18,2025-10-02T09:00:00,winback_oct,control,true\n"
        "19,2025-10-02T09:00:00,winback_oct,Treatment,false\n"
    ))  # fmt: skip
    df = load_exposures(path)
    assert df.columns == ["customer_id", "timestamp", "campaign", "arm", "eligible"]
    assert df["arm"].to_list() == ["treatment", "control", "treatment"]
    assert df["eligible"].to_list() == [True, True, False]
    assert df.schema["timestamp"] == pl.Datetime("us", "UTC")
    events = exposure_events(df)
    assert events["customer_id"].to_list() == [17, 19]
    assert set(events["action"]) == {"campaign_treatment"}


def test_mapped_columns_and_arm_values(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user;ts;promo;group\na;2025-10-02;p1;offer\nb;2025-10-02;p1;holdout\n")
    schema = ExposureSchema(
        columns={"customer_id": "user", "timestamp": "ts", "campaign": "promo", "arm": "group", "eligible": None},
        arms={"treatment": "offer", "control": "holdout"},
    )
    df = load_exposures(path, schema)
    assert df["arm"].to_list() == ["treatment", "control"] and df["eligible"].all()


def test_unknown_arm_names_file_column_value_and_count(tmp_path: Path) -> None:
    path = _write(tmp_path, (
        "1,2025-10-02,c,treatment,true\n2,2025-10-02,c,control,true\n"
        "3,2025-10-02,c,variant_b,true\n4,2025-10-02,c,variant_b,true\n"
    ))  # fmt: skip
    with pytest.raises(EventDataError) as err:
        load_exposures(path)
    msg = str(err.value)
    assert str(path) in msg and "'arm'" in msg and "variant_b" in msg and "2 of 4 rows" in msg
    assert "exposures.arms" in msg


def test_customer_in_both_arms_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, (
        "1,2025-10-02,c,treatment,true\n1,2025-10-03,c,control,true\n2,2025-10-02,c,control,true\n"
    ))  # fmt: skip
    with pytest.raises(EventDataError, match=r"1 customers are in both arms.*c/1"):
        load_exposures(path)


def test_repeated_exposure_keeps_the_first(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path, (
        "1,2025-10-05,c,treatment,true\n1,2025-10-02,c,treatment,true\n2,2025-10-02,c,control,true\n"
    ))  # fmt: skip
    df = load_exposures(path)
    assert df.height == 2
    assert df.filter(pl.col("customer_id") == 1)["timestamp"].dt.day().item() == 2
    assert "1 of 3 exposures repeat" in caplog.text


def test_zero_holdout_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, (
        "1,2025-10-02,c,treatment,true\n2,2025-10-02,c,treatment,true\n3,2025-10-02,c,control,false\n"
    ))  # fmt: skip
    with pytest.raises(EventDataError, match=r"campaign 'c' has a holdout of zero customers"):
        load_exposures(path)


def test_bad_eligibility_and_timestamp_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, "1,2025-10-02,c,treatment,maybe\n2,2025-10-02,c,control,true\n")
    with pytest.raises(EventDataError, match=r"'eligible' \(eligible\): 1 of 2 values.*maybe"):
        load_exposures(path)
    path = _write(tmp_path, "1,not a time,c,treatment,1\n2,2025-10-02,c,control,0\n", "t.csv")
    with pytest.raises(EventDataError, match=r"t.csv: column 'timestamp'.*not a time"):
        load_exposures(path)


def test_missing_column_speaks_of_exposures(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("customer_id,timestamp,arm\n1,2025-10-02,treatment\n")
    with pytest.raises(EventDataError, match=r"'campaign' \(for campaign\).*exposures\.columns"):
        load_exposures(path)


def test_schema_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown keys"):
        ExposureSchema(columns={"variant": "v"})
    with pytest.raises(ConfigError, match="exactly"):
        ExposureSchema(arms={"treatment": "a"})
