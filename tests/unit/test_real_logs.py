"""The real-log adapters of benchmarks/real_logs.py on tiny samples of each raw format written
here: no network, no wheel download (a fake wheel is a zip made in the test)."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from journeyformer.config import plain
from journeyformer.data.events.load import load_events
from journeyformer.data.events.schema import EventSchema
from journeyformer.data.labels.lifecycle import LabelConfig

REPO = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    """benchmarks/ is not a package: load the adapter module from its file."""
    spec = importlib.util.spec_from_file_location("real_logs", REPO / "benchmarks" / "real_logs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


real_logs = _load()

# CDNOW_master.txt as the lifetimes wheel ships it: CRLF, leading blanks, ragged spacing, a
# same-day repeat purchase identical in every field (lines 5 and 6), a $0 row.
CDNOW = (
    b" customer_id  date number_of_cds  dollar_value\r\n"
    b" 00001 19970101  1   11.77\r\n"
    b" 00002 19970112  1   12.00\r\n"
    b" 00002 19970112  5   77.00\r\n"
    b" 00003 19970330  2   20.76\r\n"
    b" 00003 19970330  2   20.76\r\n"
    b" 00004 19980630  1    0.00\r\n"
)

# RecBole's ml-100k atomic files: tab-separated, typed headers, genres space-separated, a
# release year that is not a number, and a rating of a movie missing from the item file.
INTER = (
    b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    b"196\t242\t3\t881250949\n"
    b"186\t302\t5\t891717742\n"
    b"196\t51\t1\t881250949\n"
    b"196\t999\t4\t881251000\n"
    b"186\t51\t2\t891717800\n"
)
ITEM = (
    b"item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    b"242\tKolya\t1996\tComedy\n"
    b"302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n"
    b"51\tLand Before Time III: The Time of the Great Giving\tV\tAnimation Children's\n"
)


def test_cdnow_rows_become_purchases() -> None:
    events = real_logs.cdnow_events(CDNOW)
    assert events.columns == [*real_logs.EVENT_COLUMNS, "quantity", "line"]
    assert events.height == 6  # the header skipped, the identical pair kept
    assert events["customer_id"].to_list()[:2] == ["00001", "00002"]  # ids kept as written
    assert events.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert events["timestamp"][0] == datetime(1997, 1, 1, tzinfo=timezone.utc)
    assert set(events["action"]) == {"purchase"} and set(events["channel"]) == {"web"}
    assert events["amount"].to_list() == [11.77, 12.0, 77.0, 20.76, 20.76, 0.0]
    assert events["quantity"].to_list() == [1.0, 1.0, 5.0, 2.0, 2.0, 1.0]
    assert events["line"].to_list() == [2, 3, 4, 5, 6, 7]


def test_cdnow_refuses_a_malformed_row() -> None:
    with pytest.raises(ValueError, match="line 2"):
        real_logs.cdnow_events(b"customer_id date number_of_cds dollar_value\n00001 19970101 1\n")


def test_movielens_ratings_become_rate_events() -> None:
    events = real_logs.movielens_events(INTER, ITEM)
    assert events.columns == [*real_logs.EVENT_COLUMNS, "genre", "item_id"]
    assert events.height == 5
    # Sorted by customer, time, item: user 196's two ratings in the same second keep one order.
    assert events.select("customer_id", "item_id").rows() == [
        ("186", "302"), ("186", "51"), ("196", "242"), ("196", "51"), ("196", "999"),
    ]  # fmt: skip
    assert events["action"].to_list() == ["rate_5", "rate_2", "rate_3", "rate_1", "rate_4"]
    assert events["genre"].to_list() == ["Crime", "Animation", "Comedy", "Animation", "unknown"]
    assert events["amount"].to_list() == [1.0] * 5  # value = number of ratings
    assert events["timestamp"][0] == datetime.fromtimestamp(891717742, timezone.utc)


def test_movielens_refuses_a_rating_outside_one_to_five() -> None:
    inter = INTER + b"7\t242\t6\t881250949\n"
    with pytest.raises(ValueError, match="outside 1-5"):
        real_logs.movielens_events(inter, ITEM)


def _fake_wheel(folder: Path, members: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True)
    wheel = folder / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return wheel


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("cdnow", [CDNOW]),
        ("movielens100k", [INTER, ITEM]),
    ],
)
def test_events_from_a_cached_wheel_load_with_the_log_settings(
    tmp_path: Path, name: str, raw: list[bytes]
) -> None:
    """A wheel already in the cache is read without pip; the Parquet written from it loads
    through the product's reader with the log's overrides, and every action the labels name
    occurs in it."""
    log = real_logs.LOGS[name]
    _fake_wheel(tmp_path / "wheels" / log.requirement, dict(zip(log.members, raw, strict=True)))
    path = real_logs.events_path(name, tmp_path)
    assert path == tmp_path / name / "events.parquet" and path.exists()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=["data=events", f"data.path={path}", *log.overrides])
    data = plain(cfg.data)
    events = load_events(path, EventSchema.from_config(data))
    raw_events = pl.read_parquet(path)
    assert events.height == raw_events.height  # nothing dropped as a duplicate
    for column in [*data["extra_categorical"], *data["extra_numeric"]]:
        assert column in raw_events.columns
    labels = LabelConfig.from_config(plain(cfg.labels))
    assert labels.check_actions(raw_events["action"].unique().to_list(), name) == []
    assert real_logs.describe(raw_events)["events"] == raw_events.height


def test_a_missing_member_names_the_wheel(tmp_path: Path) -> None:
    wheel = _fake_wheel(tmp_path / "w", {"other.txt": b""})
    with pytest.raises(RuntimeError, match="fake-1.0-py3-none-any.whl"):
        real_logs.read_members(wheel, ("lifetimes/datasets/CDNOW_master.txt",))
