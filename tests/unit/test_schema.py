"""The event contract: reading a user's file as it is, and every error message it can give."""

from __future__ import annotations

import logging
import math
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from journeyformer.data.events.load import load_events, scan_events
from journeyformer.data.events.order import ROW
from journeyformer.data.events.schema import EventSchema
from journeyformer.data.events.validate import validate
from journeyformer.data.features.definitions import FeatureConfig
from journeyformer.data.features.sequences import build_sequences
from journeyformer.data.features.vocab import Vocabularies
from journeyformer.data.labels.lifecycle import LabelConfig
from journeyformer.errors import EventDataError

UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def frame(**overrides: list) -> pl.DataFrame:
    """Three events of two customers in the user's own layout; columns can be replaced."""
    data = {
        "customer_id": [1, 1, 2],
        "timestamp": ["2025-01-01T10:00:00", "2025-01-02T11:30:00", "2025-01-03T12:00:00"],
        "channel": ["web", "app", "web"],
        "action": ["page_view", "purchase", "page_view"],
        "amount": [0.0, 25.5, 0.0],
    }
    data.update(overrides)
    return pl.DataFrame(data)


def write(df: pl.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        df.write_csv(path)
    else:
        df.write_parquet(path)
    return path


def load(
    df: pl.DataFrame, tmp_path: Path, schema: EventSchema | None = None, name: str = "e.parquet"
):
    return load_events(write(df, tmp_path / name), schema or EventSchema())


def error(
    df: pl.DataFrame, tmp_path: Path, schema: EventSchema | None = None, name: str = "e.parquet"
) -> str:
    with pytest.raises(EventDataError) as info:
        load(df, tmp_path, schema, name)
    # The user sees our message, not a library traceback behind it.
    assert info.value.__cause__ is None
    return str(info.value)


# --- canonical output -----------------------------------------------------------------------


def test_canonical_columns_types_and_order(tmp_path: Path) -> None:
    shuffled = frame().reverse()
    events = load(shuffled, tmp_path)
    assert events.columns == [ROW, "customer_id", "timestamp", "channel", "action", "amount"]
    assert events.schema["customer_id"] == pl.Int64
    assert events.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert events.schema["amount"] == pl.Float64
    # sorted by (customer_id, timestamp); _row keeps the input position
    assert events["customer_id"].to_list() == [1, 1, 2]
    assert events[ROW].to_list() == [2, 1, 0]


def test_column_mapping_and_missing_amount_is_zero(tmp_path: Path) -> None:
    df = (
        frame().rename({"customer_id": "user", "timestamp": "ts", "action": "event"}).drop("amount")
    )
    schema = EventSchema(columns={"customer_id": "user", "timestamp": "ts", "action": "event"})
    events = load(df, tmp_path, schema)
    assert events["action"].to_list() == ["page_view", "purchase", "page_view"]
    assert events["amount"].to_list() == [0.0, 0.0, 0.0]


def test_string_customer_ids_and_integer_codes(tmp_path: Path) -> None:
    events = load(frame(customer_id=["b", "a", "b"], channel=[3, 1, 3]), tmp_path)
    assert events.schema["customer_id"] == pl.String
    assert events["customer_id"].to_list() == ["a", "b", "b"]
    assert events["channel"].to_list() == ["1", "3", "3"]


def test_extra_columns_are_cast_and_null_filled(tmp_path: Path) -> None:
    df = frame(device=["mobile", None, "desktop"], items=[1, None, 3])
    events = load(
        df, tmp_path, EventSchema(extra_categorical=("device",), extra_numeric=("items",))
    )
    assert events["device"].to_list() == ["mobile", "<null>", "desktop"]
    assert events["items"].to_list() == [1.0, 0.0, 3.0]


def test_null_and_nan_amount_is_zero(tmp_path: Path) -> None:
    events = load(frame(amount=[None, float("nan"), 2.0]), tmp_path)
    assert events["amount"].to_list() == [0.0, 0.0, 2.0]


def test_numeric_strings_in_amount_are_read(tmp_path: Path) -> None:
    events = load(frame(amount=["1.5", " 2 ", ""]), tmp_path)
    assert events["amount"].to_list() == [1.5, 2.0, 0.0]


# --- file layouts -----------------------------------------------------------------------------


def test_csv_parquet_directory_and_glob_read_the_same(tmp_path: Path) -> None:
    df = frame()
    from_parquet = load_events(write(df, tmp_path / "one.parquet"), EventSchema())
    from_csv = load_events(write(df, tmp_path / "one.csv"), EventSchema())
    parts = tmp_path / "parts"
    parts.mkdir()
    write(df.head(2), parts / "a.parquet")
    write(df.tail(1), parts / "b.parquet")
    from_dir = load_events(parts, EventSchema())
    from_glob = load_events(str(parts / "*.parquet"), EventSchema())
    for other in (from_csv, from_dir, from_glob):
        assert other.equals(from_parquet)


def test_csv_epoch_seconds_as_digits(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text(
        "customer_id,timestamp,channel,action\n1,1735725600,web,a\n1,1735725601,web,b\n"
    )
    events = load_events(path, EventSchema())
    assert events["timestamp"].to_list() == [utc(2025, 1, 1, 10), utc(2025, 1, 1, 10, 0, 1)]
    path.write_text(
        "customer_id,timestamp,channel,action\n1,1735725600000,web,a\n1,1735725600500,web,b\n"
    )
    events = load_events(path, EventSchema())
    assert events["timestamp"].to_list() == [
        utc(2025, 1, 1, 10),
        utc(2025, 1, 1, 10, 0, 0, 500_000),
    ]


def test_csv_type_inferred_from_the_whole_file(tmp_path: Path) -> None:
    # A non-number after the first 10,000 rows is reported as a bad value, not a parser crash.
    rows = "".join(f"1,2025-01-01T00:00:{i % 60:02d},web,a,{i}\n" for i in range(10_050))
    path = tmp_path / "e.csv"
    path.write_text(
        "customer_id,timestamp,channel,action,amount\n" + rows + "1,2025-01-02,web,a,12,5\n"
    )
    with pytest.raises(EventDataError, match="cannot read"):
        load_events(path, EventSchema())
    path.write_text(
        "customer_id,timestamp,channel,action,amount\n" + rows + "1,2025-01-02,web,a,n/a\n"
    )
    with pytest.raises(EventDataError) as info:
        load_events(path, EventSchema())
    assert "'amount' (amount): 1 of 10051 values are not numbers" in str(info.value)
    assert "n/a" in str(info.value)


# --- timestamps -------------------------------------------------------------------------------


def test_iso_strings_with_and_without_offsets(tmp_path: Path) -> None:
    stamps = [
        "2025-03-01T10:00:00+02:00",
        "2025-03-01 10:00:00.250Z",
        "2025-03-01T10:00",
        "2025-03-01",
        "2025-03-01T10:00:00-0530",
        " 2025-03-01 10:00:00 +01:00 ",
    ]
    df = pl.DataFrame(
        {
            "customer_id": list(range(6)),
            "timestamp": stamps,
            "channel": ["web"] * 6,
            "action": ["a"] * 6,
        }
    )
    got = load(df, tmp_path).sort(ROW)["timestamp"].to_list()
    assert got == [
        utc(2025, 3, 1, 8),
        utc(2025, 3, 1, 10, 0, 0, 250_000),
        utc(2025, 3, 1, 10),
        utc(2025, 3, 1),
        utc(2025, 3, 1, 15, 30),
        utc(2025, 3, 1, 9),
    ]


@pytest.mark.parametrize(
    ("values", "unit", "expected"),
    [
        (
            [1735725600000, 1735725600123],
            "auto",
            [utc(2025, 1, 1, 10), utc(2025, 1, 1, 10, 0, 0, 123_000)],
        ),
        # Milliseconds before 1973-03-03 (below 1e11) are still milliseconds: the column decides.
        ([1735725600000, 86_400_000_000], "auto", [utc(2025, 1, 1, 10), utc(1972, 9, 27)]),
        ([1735725600.25, 0.0], "auto", [utc(2025, 1, 1, 10, 0, 0, 250_000), utc(1970, 1, 1)]),
        ([1735725600, 1000], "s", [utc(2025, 1, 1, 10), utc(1970, 1, 1, 0, 16, 40)]),
        ([1735725600000, 1000], "ms", [utc(2025, 1, 1, 10), utc(1970, 1, 1, 0, 0, 1)]),
    ],
)
def test_epoch_seconds_and_milliseconds(
    tmp_path: Path, values: list, unit: str, expected: list
) -> None:
    df = pl.DataFrame(
        {"customer_id": [1, 2], "timestamp": values, "channel": ["w"] * 2, "action": ["a"] * 2}
    )
    events = load(df, tmp_path, EventSchema(timestamp_unit=unit))
    assert events.sort(ROW)["timestamp"].to_list() == expected


def test_datetime_and_date_columns(tmp_path: Path) -> None:
    aware = pl.Series([datetime(2025, 1, 1, 12)] * 3).dt.replace_time_zone("Asia/Tokyo")
    assert load(frame(timestamp=aware), tmp_path)["timestamp"][0] == utc(2025, 1, 1, 3)
    naive_ns = pl.Series([datetime(2025, 1, 1, 12)] * 3).cast(pl.Datetime("ns"))
    assert load(frame(timestamp=naive_ns), tmp_path)["timestamp"][0] == utc(2025, 1, 1, 12)
    dates = [date(2025, 1, 1)] * 3
    assert load(frame(timestamp=dates), tmp_path)["timestamp"][0] == utc(2025, 1, 1)


def test_naive_timestamps_in_a_non_utc_time_zone(tmp_path: Path) -> None:
    """Naive times are Paris wall clock: UTC+1 in winter, UTC+2 in summer; hour-of-day
    features are Paris hours again."""
    df = frame(timestamp=["2025-01-15T10:00:00", "2025-07-15T10:00:00", "2025-07-16T23:30:00"])
    schema = EventSchema(time_zone="Europe/Paris")
    events = load(df, tmp_path, schema)
    assert events["timestamp"].to_list() == [
        utc(2025, 1, 15, 9),
        utc(2025, 7, 15, 8),
        utc(2025, 7, 16, 21, 30),
    ]
    vocabs = Vocabularies.build(events, ["action", "channel"])
    features = FeatureConfig(time_zone="Europe/Paris")
    seqs = build_sequences(
        events, utc(2025, 8, 1), vocabs, features, LabelConfig(), with_labels=False
    )
    hour_sin = seqs.numeric[:, features.numeric_names.index("hour_sin")]
    hour_cos = seqs.numeric[:, features.numeric_names.index("hour_cos")]
    for got_sin, got_cos, hour in zip(hour_sin, hour_cos, [10.0, 10.0, 23.5], strict=True):
        assert got_sin == pytest.approx(math.sin(hour / 24 * 2 * math.pi), abs=1e-6)
        assert got_cos == pytest.approx(math.cos(hour / 24 * 2 * math.pi), abs=1e-6)
    # the same instants read in UTC have UTC hours
    utc_seqs = build_sequences(
        events, utc(2025, 8, 1), vocabs, FeatureConfig(), LabelConfig(), with_labels=False
    )
    assert utc_seqs.numeric[0, 3] == pytest.approx(math.sin(9 / 24 * 2 * math.pi), abs=1e-6)


def test_daylight_saving_repeated_hour_takes_the_earlier_instant(tmp_path: Path) -> None:
    df = frame(timestamp=["2025-10-26T02:30:00", "2025-10-26T03:30:00", "2025-10-27T00:00:00"])
    events = load(df, tmp_path, EventSchema(time_zone="Europe/Paris"))
    assert events["timestamp"][0] == utc(2025, 10, 26, 0, 30)  # still CEST (+02:00)


def test_daylight_saving_skipped_hour_is_an_error(tmp_path: Path) -> None:
    df = frame(timestamp=["2025-03-30T02:30:00", "2025-03-30T01:00:00", "2025-03-31T00:00:00"])
    message = error(df, tmp_path, EventSchema(time_zone="Europe/Paris"))
    assert "1 of 3 values cannot be parsed" in message
    assert "2025-03-30T02:30:00" in message
    assert "data.time_zone='Europe/Paris'" in message


# --- error messages ---------------------------------------------------------------------------


def test_missing_column(tmp_path: Path) -> None:
    message = error(frame().drop("action"), tmp_path)
    assert str(tmp_path / "e.parquet") in message
    assert "missing column(s) 'action' (for action)" in message
    assert "Available columns: ['customer_id', 'timestamp', 'channel', 'amount']" in message
    assert "data.columns.<name>=<your column>" in message


def test_missing_mapped_amount_and_extra_columns(tmp_path: Path) -> None:
    schema = EventSchema(columns={"amount": "revenue"}, extra_numeric=("items",))
    message = error(frame(), tmp_path, schema)
    assert "'revenue' (for amount)" in message and "'items' (for items)" in message


def test_unparseable_timestamps_give_count_and_examples(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {
            "customer_id": [1, 2, 3, 4, 5, 6, 7, 8],
            "timestamp": [
                "2025-01-01",
                "yesterday",
                "2025-13-01",
                "31/01/2025",
                "x1",
                "x2",
                "x3",
                "x4",
            ],
            "channel": ["web"] * 8,
            "action": ["a"] * 8,
        }
    )
    message = error(df, tmp_path)
    assert "column 'timestamp' (timestamp): 7 of 8 values cannot be parsed" in message
    assert "['yesterday', '2025-13-01', '31/01/2025', 'x1', 'x2']" in message  # five examples
    assert "x3" not in message
    assert "data.timestamp_unit" in message


def test_out_of_range_epoch_is_unparseable(tmp_path: Path) -> None:
    message = error(frame(timestamp=[1735725600000, 10**17, 10**18]), tmp_path)
    assert "2 of 3 values cannot be parsed" in message and "100000000000000000" in message


@pytest.mark.parametrize(
    ("column", "values", "expected"),
    [
        ("customer_id", [1.0, 2.0, 3.0], "column 'customer_id' (customer_id) has type Float64"),
        ("timestamp", [True, False, True], "column 'timestamp' (timestamp) has type Boolean"),
        ("channel", [[1], [2], [3]], "column 'channel' (channel) has type List(Int64)"),
        ("action", [0.5, 1.5, 2.5], "column 'action' (action) has type Float64"),
        ("amount", [True, False, True], "column 'amount' (amount) has type Boolean"),
    ],
)
def test_wrong_types(tmp_path: Path, column: str, values: list, expected: str) -> None:
    message = error(frame(**{column: values}), tmp_path)
    assert expected in message
    assert str(tmp_path / "e.parquet") in message


def test_wrong_types_of_extra_columns(tmp_path: Path) -> None:
    message = error(frame(note=["a", "b", "c"]), tmp_path, EventSchema(extra_numeric=("note",)))
    assert "'note' is listed in data.extra_numeric but has type String" in message
    message = error(
        frame(score=[0.1, 0.2, 0.3]), tmp_path, EventSchema(extra_categorical=("score",))
    )
    assert "'score' is listed in data.extra_categorical but has type Float64" in message


def test_amount_text_and_infinity_are_errors(tmp_path: Path) -> None:
    message = error(frame(amount=["1.5", "abc", "1,5"]), tmp_path)
    assert "column 'amount' (amount): 2 of 3 values are not numbers, e.g. ['abc', '1,5']" in message
    message = error(frame(amount=[1.0, float("inf"), 2.0]), tmp_path)
    assert "column 'amount' (amount): 1 of 3 values are infinite" in message


def test_empty_inputs(tmp_path: Path) -> None:
    assert "no events (the input is empty)" in error(frame().head(0), tmp_path)
    header_only = tmp_path / "h.csv"
    header_only.write_text("customer_id,timestamp,channel,action\n")
    with pytest.raises(EventDataError, match="no events"):
        load_events(header_only, EventSchema())
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(EventDataError, match=r"empty\.csv: no events"):
        load_events(empty, EventSchema())


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(EventDataError, match=r"broken\.parquet: cannot read the events") as info:
        load_events(broken, EventSchema())
    assert info.value.__cause__ is None
    with pytest.raises(EventDataError, match="no such file"):
        load_events(tmp_path / "nope.parquet", EventSchema())
    with pytest.raises(EventDataError, match="glob matches no files"):
        load_events(str(tmp_path / "none-*.parquet"), EventSchema())
    (tmp_path / "e.json").write_text("{}")
    with pytest.raises(EventDataError, match=r"cannot tell the format .*data.format=parquet"):
        load_events(tmp_path / "e.json", EventSchema())


def test_directory_without_parquet_files(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x")
    with pytest.raises(EventDataError, match=r"no \*\.parquet files \(found \['a.csv'\]\)"):
        load_events(tmp_path, EventSchema())


def test_files_with_different_columns(tmp_path: Path) -> None:
    write(frame(), tmp_path / "a.parquet")
    write(frame(amount=["x", "y", "z"]), tmp_path / "b.parquet")
    with pytest.raises(EventDataError) as info:
        load_events(tmp_path, EventSchema())
    assert info.value.__cause__ is None
    assert "column 'amount' has conflicting types (a.parquet: Float64, b.parquet: String)" in str(
        info.value
    )


# --- null keys and duplicates ---------------------------------------------------------------


def test_null_keys_are_an_error_by_default(tmp_path: Path) -> None:
    df = frame(customer_id=[1, None, 2], timestamp=["2025-01-01", "2025-01-02", None])
    message = error(df, tmp_path)
    assert (
        "2 of 3 rows have a null key (1 null customer_id ('customer_id'), 1 null timestamp"
        in message
    )
    assert "data.null_keys=drop" in message


def test_null_keys_dropped_with_a_logged_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    df = frame(customer_id=[1, None, 2], timestamp=["2025-01-01", "2025-01-02", None])
    with caplog.at_level(logging.WARNING, logger="journeyformer.data.events.validate"):
        events = load(df, tmp_path, EventSchema(null_keys="drop"))
    assert events["customer_id"].to_list() == [1]
    assert "dropped 2 of 3 rows with a null key" in caplog.text


def test_all_null_keys_dropped_is_an_error(tmp_path: Path) -> None:
    df = frame(customer_id=[None, None, None])  # a column of type Null
    assert "every row has a null customer_id or timestamp" in error(
        df, tmp_path, EventSchema(null_keys="drop")
    )
    message = error(frame(timestamp=[None, None, None]), tmp_path)
    assert (
        "3 of 3 rows have a null key (0 null customer_id ('customer_id'), 3 null timestamp"
        in message
    )


def test_exact_duplicates_dropped_keeping_the_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    df = pl.DataFrame(
        {
            "customer_id": [1, 1, 1, 1, 2],
            "timestamp": ["2025-01-01T10:00"] * 5,
            "channel": ["web", "web", "web", "web", "web"],
            "action": ["a", "b", "a", "a", "a"],
            "amount": [1.0, 1.0, 1.0, 2.0, 1.0],
        }
    )
    with caplog.at_level(logging.INFO, logger="journeyformer.data.events.validate"):
        events = load(df, tmp_path)
    # row 2 repeats row 0 exactly (A, B, A: not adjacent); row 3 differs in amount
    assert events[ROW].to_list() == [0, 1, 3, 4]
    assert "dropped 1 of 5 events as exact duplicates" in caplog.text
    assert "['1 @ 2025-01-01 10:00:00 a']" in caplog.text
    assert all(r.levelname == "WARNING" for r in caplog.records if "duplicates" in r.message)
    kept = load(df, tmp_path, EventSchema(duplicates="keep"))
    assert kept.height == 5


# --- settings ---------------------------------------------------------------------------------


def test_schema_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        EventSchema(columns={"user": "id"})
    with pytest.raises(ValueError, match="data.columns.channel is empty"):
        EventSchema(columns={"channel": None})
    with pytest.raises(ValueError, match="data.time_zone='Mars/Olympus' is not a known time zone"):
        EventSchema(time_zone="Mars/Olympus")
    with pytest.raises(ValueError, match="reserved name"):
        EventSchema(extra_categorical=("channel",))
    with pytest.raises(ValueError, match="twice"):
        EventSchema(extra_categorical=("x",), extra_numeric=("x",))
    for name in ("timestamp_unit", "null_keys", "duplicates", "format"):
        with pytest.raises(ValueError, match=f"data.{name}="):
            EventSchema(**{name: "bogus"})
    cfg = {"columns": {"customer_id": "user"}, "null_keys": "drop", "extra_numeric": ["n"]}
    schema = EventSchema.from_config(cfg)
    assert schema.source("customer_id") == "user" and schema.source("action") == "action"
    assert schema.to_dict()["null_keys"] == "drop"


def test_scan_events_and_validate_per_chunk(tmp_path: Path) -> None:
    path = write(frame(timestamp=["2025-01-01", "never", "2025-01-03"]), tmp_path / "e.parquet")
    lf, name = scan_events(path, EventSchema())
    good = validate(lf.filter(pl.col("customer_id") == 2).collect(), EventSchema(), name)
    assert good["timestamp"].to_list() == [utc(2025, 1, 3)]
    with pytest.raises(EventDataError, match=r"\['never'\]"):
        validate(lf.filter(pl.col("customer_id") == 1).collect(), EventSchema(), name)


def test_numpy_ints_and_unsigned_ids(tmp_path: Path) -> None:
    ids = pl.Series(np.array([7, 7, 9], dtype=np.uint32))
    events = load(frame(customer_id=ids), tmp_path)
    assert events.schema["customer_id"] == pl.Int64 and events["customer_id"].to_list() == [7, 7, 9]


def test_csv_keeps_ids_and_codes_as_text(tmp_path):
    """"007" and "7" are two customers; channel code "01" is not "1"."""
    path = tmp_path / "codes.csv"
    pl.DataFrame(
        {"cid": ["007", "7"], "timestamp": ["2025-01-01", "2025-01-02"], "channel": ["01", "1"], "action": ["a", "b"]}
    ).write_csv(path)
    events = load_events(path, EventSchema(columns={"customer_id": "cid"}))
    assert events["customer_id"].to_list() == ["007", "7"]
    assert events["channel"].to_list() == ["01", "1"]


# --- issue 9: units per column, duplicates on every column, events after the wall clock -------


def test_epoch_unit_is_decided_per_column_and_mixing_is_an_error(tmp_path: Path) -> None:
    # Milliseconds before 1973-03-03 are below 1e11: they used to be read as seconds (year 5006).
    ms = [86_400_000_000, 1_735_725_600_000, 1_735_725_601_000]
    events = load(frame(timestamp=ms), tmp_path)
    assert events["timestamp"].max() == utc(2025, 1, 1, 10, 0, 1)
    assert events["timestamp"].min() == utc(1972, 9, 27)
    message = error(frame(timestamp=[1_735_725_600, 1_735_725_600_000, 1_735_725_601]), tmp_path)
    assert "mixes epoch units: 2 values look like seconds" in message
    assert "['1735725600', '1735725601']" in message and "['1735725600000']" in message
    assert "data.timestamp_unit=s" in message


def test_duplicates_are_judged_on_every_column_of_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows equal in the mapped columns but not in an unused one (a coupon id) are real events."""
    df = frame(
        customer_id=[1, 1, 1],
        timestamp=["2025-01-01T10:00:00"] * 3,
        channel=["store"] * 3,
        action=["redeem"] * 3,
        amount=[5.0] * 3,
    ).with_columns(pl.Series("coupon", ["A", "B", "A"]))
    with caplog.at_level(logging.WARNING, logger="journeyformer.data.events.validate"):
        events = load(df, tmp_path)
    assert events[ROW].to_list() == [0, 1]  # row 2 repeats row 0 in every column
    assert "dropped 1 of 3 events as exact duplicates" in caplog.text
    assert "1 @ 2025-01-01 10:00:00 redeem" in caplog.text


@pytest.mark.parametrize("policy", ["error", "drop", "keep"])
def test_events_after_the_wall_clock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, policy: str
) -> None:
    df = frame(timestamp=["2025-01-01T10:00:00", "2200-01-01T00:00:00", "2025-01-03T12:00:00"])
    schema = EventSchema(future_events=policy)
    if policy == "error":
        message = error(df, tmp_path, schema)
        assert "1 of 3 events are dated after the wall clock" in message
        assert "['1 @ 2200-01-01 00:00:00 purchase']" in message
        assert "data.future_events=drop" in message
        return
    with caplog.at_level(logging.WARNING, logger="journeyformer.data.events.validate"):
        events = load(df, tmp_path, schema)
    assert events.height == (2 if policy == "drop" else 3)
    assert "1 of 3 events are dated after the wall clock" in caplog.text
    assert f"data.future_events={policy}" in caplog.text
