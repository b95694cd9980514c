"""The synthetic journey generator: contract, determinism, latent truth and the churn mechanism."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from journeyformer.errors import OutputError
from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.journeys import (
    SyntheticJourneys,
    ensure_synthetic,
    generate_journeys,
    summarize,
    write_journeys,
)
from journeyformer.synthetic.params import ACTIONS, CHANNELS, LATENT_STAGES

N = 2000
UTC_US = pl.Datetime("us", "UTC")
ALLOWED_NEXT = {  # latent stage -> stages it may move to
    "acquisition": {"consideration", "first_purchase", "churned"},
    "consideration": {"first_purchase", "churned"},
    "first_purchase": {"retention", "churned"},
    "retention": {"loyalty", "churned"},
    "loyalty": {"retention", "churned"},
    "churned": set(),
}


@pytest.fixture(scope="module")
def journeys() -> SyntheticJourneys:
    return generate_journeys(SyntheticConfig(n_customers=N, seed=11))


def test_same_seed_same_frames_and_different_seed_differs() -> None:
    a = generate_journeys(SyntheticConfig(n_customers=300, days=120, seed=5))
    b = generate_journeys(SyntheticConfig(n_customers=300, days=120, seed=5))
    c = generate_journeys(SyntheticConfig(n_customers=300, days=120, seed=6))
    for name in ("events", "customers", "stages"):
        assert getattr(a, name).equals(getattr(b, name)), name
    assert not a.events.equals(c.events)
    assert not a.customers.equals(c.customers)


def test_columns_and_dtypes(journeys: SyntheticJourneys) -> None:
    assert journeys.events.schema == pl.Schema(
        {"customer_id": pl.Int64, "timestamp": UTC_US, "channel": pl.String, "action": pl.String,
         "amount": pl.Float64, "device": pl.String, "items": pl.Float64}
    )  # fmt: skip
    assert journeys.customers.schema == pl.Schema(
        {"customer_id": pl.Int64, "segment": pl.String, "acquired_at": UTC_US, "churned_at": UTC_US}
    )
    assert journeys.stages.schema == pl.Schema(
        {"customer_id": pl.Int64, "stage": pl.String, "start": UTC_US}
    )
    assert journeys.customers.height == N
    assert journeys.customers["segment"].n_unique() >= 4
    assert journeys.events.null_count().sum_horizontal().item() == 0


def test_events_sorted_by_customer_then_time(journeys: SyntheticJourneys) -> None:
    ev = journeys.events
    assert ev.equals(ev.sort(["customer_id", "timestamp"], maintain_order=True))


def test_no_events_before_acquisition_or_after_churn(journeys: SyntheticJourneys) -> None:
    ev = journeys.events.join(journeys.customers, on="customer_id", how="left")
    assert ev["acquired_at"].null_count() == 0
    assert (ev["timestamp"] >= ev["acquired_at"]).all()
    after_churn = ev.filter(pl.col("timestamp") > pl.col("churned_at"))
    assert after_churn.height == 0, after_churn.head()
    # the acquisition touchpoint is every customer's first event
    first = journeys.events.group_by("customer_id").agg(pl.col("timestamp").min())
    joined = journeys.customers.join(first, on="customer_id", how="left")
    assert (joined["timestamp"] == joined["acquired_at"]).all()


def test_acquisition_is_staggered_and_churn_is_meaningful(journeys: SyntheticJourneys) -> None:
    cu = journeys.customers
    start = cu["acquired_at"].min()
    late = cu.filter(pl.col("acquired_at") > start + timedelta(days=180)).height
    assert 0.3 * N < late < 0.6 * N
    assert 0.25 < cu["churned_at"].is_not_null().mean() < 0.55
    assert 25 < journeys.events.height / N < 80


def test_every_action_and_channel_appears(journeys: SyntheticJourneys) -> None:
    assert set(journeys.events["action"].unique()) == set(ACTIONS)
    assert set(journeys.events["channel"].unique()) == set(CHANNELS)
    assert set(journeys.events["device"].unique()) == {"desktop", "mobile", "tablet", "in_store"}


def test_amounts_exactly_on_purchases_and_items_on_carts(journeys: SyntheticJourneys) -> None:
    ev = journeys.events
    assert ((ev["amount"] > 0) == (ev["action"] == "purchase")).all()
    assert (ev["amount"] >= 0).all()
    assert ((ev["items"] > 0) == ev["action"].is_in(["add_to_cart", "purchase"])).all()
    store = ev.filter(pl.col("channel") == "store")
    assert set(store["action"].unique()) <= {"purchase", "support_ticket"}
    assert (store["device"] == "in_store").all()


def test_stage_paths_follow_the_lifecycle(journeys: SyntheticJourneys) -> None:
    st = journeys.stages
    assert set(st["stage"].unique()) == set(LATENT_STAGES)
    pairs = st.with_columns(nxt=pl.col("stage").shift(-1).over("customer_id")).drop_nulls("nxt")
    bad = [(a, b) for a, b in pairs.select("stage", "nxt").unique().iter_rows()
           if b not in ALLOWED_NEXT[a]]  # fmt: skip
    assert not bad, bad
    firsts = st.group_by("customer_id", maintain_order=True).first()
    assert (firsts["stage"] == "acquisition").all() and firsts.height == N
    cu = journeys.customers.join(firsts, on="customer_id")
    assert (cu["start"] == cu["acquired_at"]).all()
    churned = st.filter(pl.col("stage") == "churned").join(journeys.customers, on="customer_id")
    assert churned.height == journeys.customers["churned_at"].is_not_null().sum()
    assert (churned["start"] == churned["churned_at"]).all()


def test_first_purchase_stage_starts_at_the_first_purchase(journeys: SyntheticJourneys) -> None:
    first_buy = (
        journeys.events.filter(pl.col("action") == "purchase")
        .group_by("customer_id")
        .agg(pl.col("timestamp").min().alias("bought"))
    )
    entered = journeys.stages.filter(pl.col("stage") == "first_purchase")
    both = first_buy.join(entered, on="customer_id", how="full", coalesce=True)
    assert both.height == first_buy.height == entered.height
    assert (both["bought"] == both["start"]).all()


def test_quiet_customers_who_never_churn_exist(journeys: SyntheticJourneys) -> None:
    """Recency alone must be ambiguous: some survivors go 60+ days without an event."""
    gaps = journeys.events.group_by("customer_id").agg(
        pl.col("timestamp").diff().max().dt.total_days().alias("gap")
    )
    survivors = journeys.customers.filter(pl.col("churned_at").is_null()).join(
        gaps, on="customer_id"
    )
    assert (survivors["gap"] >= 60).sum() >= 0.03 * survivors.height


def unresolved_ticket_churn(journeys: SyntheticJourneys) -> dict[bool, tuple[int, float]]:
    """Churn rate within 30 days of monthly cutoffs, with and without an unresolved ticket.

    A customer counts at a cutoff when acquired and not churned before it and active in the 14
    days before it; "unresolved" = a support_ticket 3..30 days before the cutoff with no
    ticket_resolved after it. Returns {unresolved: (samples, churn rate)}.
    """
    ev, cu = journeys.events, journeys.customers
    start = cu["acquired_at"].min().replace(hour=0, minute=0, second=0, microsecond=0)
    rows = []
    for day in range(60, 330, 15):
        cut = start + timedelta(days=day)
        past = ev.filter(pl.col("timestamp") < cut).group_by("customer_id").agg(
            last=pl.col("timestamp").max(),
            ticket=pl.col("timestamp").filter(pl.col("action") == "support_ticket").max(),
            resolved=pl.col("timestamp").filter(pl.col("action") == "ticket_resolved").max(),
        )  # fmt: skip
        live = cu.filter(pl.col("churned_at").is_null() | (pl.col("churned_at") > cut))
        x = live.join(past, on="customer_id").filter(pl.col("last") >= cut - timedelta(days=14))
        unresolved = pl.col("ticket").is_between(
            cut - timedelta(days=30), cut - timedelta(days=3)
        ) & (pl.col("resolved").is_null() | (pl.col("resolved") < pl.col("ticket")))
        churn = pl.col("churned_at").is_not_null() & (pl.col("churned_at") <= cut + timedelta(30))
        rows.append(x.select(unresolved.fill_null(False).alias("unresolved"), churn.alias("churn")))
    rates = pl.concat(rows).group_by("unresolved").agg(pl.len(), pl.col("churn").mean())
    return {flag: (n, rate) for flag, n, rate in rates.iter_rows()}


def test_unresolved_ticket_raises_churn(journeys: SyntheticJourneys) -> None:
    rates = unresolved_ticket_churn(journeys)
    (n_with, with_ticket), (n_without, without) = rates[True], rates[False]
    print(f"churn within 30 days: unresolved ticket {with_ticket:.3f} (n={n_with}), "
          f"others {without:.3f} (n={n_without})")  # fmt: skip
    assert n_with >= 100
    assert with_ticket > 2.5 * without and with_ticket - without > 0.2


def test_ticket_effect_can_be_switched_off(journeys: SyntheticJourneys) -> None:
    off = generate_journeys(SyntheticConfig(n_customers=N, seed=11, ticket_hazard=0.0))
    with_ticket, without = (
        unresolved_ticket_churn(off)[True][1],
        unresolved_ticket_churn(off)[False][1],
    )
    assert with_ticket < 2.0 * without + 0.05


def test_intensity_scales_the_number_of_events() -> None:
    base = generate_journeys(SyntheticConfig(n_customers=500, seed=2)).events.height
    half = generate_journeys(SyntheticConfig(n_customers=500, seed=2, intensity=0.5)).events.height
    assert 0.35 * base < half < 0.7 * base


def test_write_journeys_writes_three_files_and_no_temp_files(
    journeys: SyntheticJourneys, tmp_path: Path
) -> None:
    paths = write_journeys(journeys, tmp_path / "out")
    assert set(paths) == {"events", "customers", "stages"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "events.parquet", "truth_customers.parquet", "truth_stages.parquet"
    ]  # fmt: skip
    assert pl.read_parquet(paths["events"]).equals(journeys.events)
    assert pl.read_parquet(paths["customers"]).equals(journeys.customers)
    assert pl.read_parquet(paths["stages"]).equals(journeys.stages)


def test_ensure_synthetic_generates_once(tmp_path: Path) -> None:
    path = tmp_path / "gen" / "events.parquet"
    config = SyntheticConfig(n_customers=200, days=60, seed=1)
    assert ensure_synthetic(path, config, generated_dir=tmp_path) == path
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "events.config.json", "events.parquet", "truth_customers.parquet", "truth_stages.parquet"
    ]  # fmt: skip
    stamp = path.stat().st_mtime_ns
    path.write_bytes(b"not regenerated")
    assert ensure_synthetic(path, config) == path
    assert path.read_bytes() == b"not regenerated"
    assert path.stat().st_mtime_ns >= stamp


def test_ensure_synthetic_regenerates_when_settings_change(tmp_path: Path) -> None:
    path = tmp_path / "gen" / "events.parquet"
    ensure_synthetic(path, SyntheticConfig(n_customers=200, days=60, seed=1), tmp_path)
    first = pl.read_parquet(path)
    ensure_synthetic(path, SyntheticConfig(n_customers=200, days=60, seed=2))
    assert not pl.read_parquet(path).equals(first)


def test_ensure_synthetic_rejects_non_parquet_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.parquet"):
        ensure_synthetic(tmp_path / "events.csv", SyntheticConfig(n_customers=10))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_customers": 0}, "n_customers"),
        ({"days": 0}, "days"),
        ({"start": "01/02/2025"}, "ISO date"),
        ({"intensity": -1.0}, "intensity"),
        ({"ticket_hazard": 2.0}, "ticket_hazard"),
        ({"acquisition_span": 0.0}, "acquisition_span"),
    ],
)
def test_config_errors_name_the_setting(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SyntheticConfig(**kwargs)


def test_config_from_dict_rejects_unknown_keys() -> None:
    assert SyntheticConfig.from_dict({"n_customers": 5, "seed": 2}).n_customers == 5
    with pytest.raises(ValueError, match="n_customer.*valid settings"):
        SyntheticConfig.from_dict({"n_customer": 5})


def test_summarize_reports_the_essentials(journeys: SyntheticJourneys) -> None:
    text = summarize(journeys)
    for needle in (f"customers: {N:,}", "events per customer", "median", "p95", "purchase",
                   "support", "churned within the window", "deal_seekers", "loyalty"):  # fmt: skip
        assert needle in text, needle


def test_generator_never_writes_over_data_it_did_not_make(tmp_path: Path) -> None:
    """Issue 9: `data.path=<your file>` without `data=events` used to regenerate over it."""
    mine = tmp_path / "mine" / "events.parquet"
    mine.parent.mkdir()
    mine.write_bytes(b"the user's events")
    config = SyntheticConfig(n_customers=20, days=30, seed=1)
    with pytest.raises(OutputError, match=r"use data=events data\.path="):
        ensure_synthetic(mine, config, generated_dir=tmp_path / "generated")
    with pytest.raises(OutputError, match="data=events"):
        ensure_synthetic(tmp_path / "new" / "events.parquet", config, generated_dir=None)
    assert mine.read_bytes() == b"the user's events"
    assert sorted(p.name for p in mine.parent.iterdir()) == ["events.parquet"]
    # Data it made before (its stamp is there) may be regenerated anywhere.
    made = tmp_path / "generated" / "x" / "events.parquet"
    ensure_synthetic(made, config, generated_dir=tmp_path / "generated")
    moved = tmp_path / "elsewhere"
    made.parent.rename(moved)
    ensure_synthetic(moved / "events.parquet", SyntheticConfig(n_customers=20, days=30, seed=2))


def test_pieces_cover_every_customer_once_with_the_process_of_one_piece(tmp_path):
    from journeyformer.synthetic.pieces import write_in_pieces

    config = SyntheticConfig(n_customers=250, seed=4, days=90)
    dirs = write_in_pieces(config, tmp_path / "big", piece_customers=100, generated_dir=tmp_path)
    parts = sorted(p.name for p in dirs["events"].iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    customers = pl.read_parquet(dirs["truth_customers"])
    assert customers["customer_id"].sort().to_list() == list(range(1, 251))
    events = pl.read_parquet(dirs["events"])
    assert events["customer_id"].is_between(1, 250).all()
    first = events.filter(pl.col("customer_id") <= 100)
    assert first.equals(pl.read_parquet(dirs["events"] / "part-00000.parquet"))
    # independent draws per piece, not one piece repeated
    second = events.filter(pl.col("customer_id").is_between(101, 200))
    assert first.height != second.height or not first["action"].equals(second["action"])
    assert (tmp_path / "big" / "events.config.json").exists()
    with pytest.raises(OutputError):  # never over a directory it did not make
        write_in_pieces(config, tmp_path / "elsewhere" / "x", generated_dir=tmp_path / "gen")
