"""The embedded default data set: synthetic cross-channel customer journeys.

Customers of five segments are acquired at staggered times, move through latent lifecycle stages
(acquisition -> consideration -> first_purchase -> retention <-> loyalty -> churned) and emit web,
app, e-mail, store, social and support events whose mix and intensity depend on the stage. The
churn hazard depends on the order and timing of events (an unresolved support ticket, fading e-mail
engagement, carts without a purchase, a recent purchase), so a sequence model has something to
find that recency / frequency / monetary totals miss. The process itself lives in
:mod:`journeyformer.synthetic.process`; this module turns it into Polars frames and files.

Example::

    journeys = generate_journeys(SyntheticConfig(n_customers=2_000, seed=1))
    print(summarize(journeys))
    write_journeys(journeys, "data/generated/demo")  # events.parquet + truth_*.parquet
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from journeyformer.data.events.timestamps import UTC_US
from journeyformer.errors import ConfigError, OutputError
from journeyformer.io import atomic_write_parquet, atomic_write_text
from journeyformer.synthetic import campaigns as C
from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.params import (
    ACTIONS,
    CHANNELS,
    DEVICES,
    LATENT_STAGES,
    SEGMENTS,
)
from journeyformer.synthetic.process import RawJourneys, simulate
from journeyformer.synthetic.purchases import simulate_purchases

# Bump when the simulation changes, so cached generated data is made anew.
GENERATOR_VERSION = 1

__all__ = [
    "ACTIONS", "CHANNELS", "DEVICES", "LATENT_STAGES", "SEGMENTS",
    "SyntheticJourneys", "ensure_synthetic", "generate_dataset", "generate_journeys", "summarize",
    "write_journeys",
]  # fmt: skip

log = logging.getLogger(__name__)

CUSTOMER_SCHEMA = pl.Schema(
    {"customer_id": pl.Int64, "segment": pl.String, "acquired_at": UTC_US, "churned_at": UTC_US}
)
STAGE_SCHEMA = pl.Schema({"customer_id": pl.Int64, "stage": pl.String, "start": UTC_US})
FILENAMES = {
    "exposures": "exposures.parquet",  # the campaigns world only
    "effects": "truth_effects.parquet",  # the campaigns world only
    "customers": "truth_customers.parquet",
    "stages": "truth_stages.parquet",
    "events": "events.parquet",  # written last: its presence means the set is complete
}
_MS_PER_DAY = 86_400_000


@dataclass
class SyntheticJourneys:
    """Generated events plus the latent truth behind them.

    Customer ids are 1..n_customers in order of acquisition.
    ``events``: customer_id, timestamp (UTC), channel, action, amount, device, items (the purchases
    world: no device or items), sorted by (customer_id, timestamp);
    timestamps have millisecond resolution, ``amount`` is the spend of purchases (0.0 otherwise),
    ``items`` the item count of add_to_cart / purchase events (0.0 otherwise).
    ``customers``: customer_id, segment, acquired_at, churned_at (null = not churned in the window).
    ``stages``: customer_id, stage, start -- one row per stage a customer entered, in time order.
    ``exposures`` and ``effects`` (the campaigns world only): the exposure log
    (:mod:`journeyformer.data.events.exposures`) and the true individual effects of each eligible
    customer (:mod:`journeyformer.synthetic.campaigns`).
    """

    events: pl.DataFrame
    customers: pl.DataFrame
    stages: pl.DataFrame
    exposures: pl.DataFrame | None = None
    effects: pl.DataFrame | None = None


def generate_journeys(
    config: SyntheticConfig,
    treated_share: float | None = None,
    follow_up: C.FollowUp | None = None,
) -> SyntheticJourneys:
    """Simulate ``config.n_customers`` journeys over ``config.days`` days (same seed, same data).

    ``treated_share`` (the campaigns world): the share of eligible customers treated, default
    one half; 1.0 and 0.0 give the two counterfactual worlds (same customers, same days before
    the exposure), whose difference is the campaign's true average effect. ``follow_up`` (the
    campaigns world): a second campaign to chosen customers in chosen arms
    (:class:`journeyformer.synthetic.campaigns.FollowUp`); the world before its day is the
    world without it, and its rows follow the first campaign's in ``exposures`` and ``effects``.
    """
    if config.world == "purchases":
        return _purchase_log(config)
    share = C.TREATED_SHARE if treated_share is None else treated_share
    campaigns = [C.Campaign(C.exposure_day(config.days), config.seed, share)] if config.world == "campaigns" else []
    if follow_up is not None:
        first = campaigns[0].day if campaigns else None
        if first is None or not first < follow_up.day < config.days:
            raise ConfigError(
                f"follow_up: day {follow_up.day} must come after the first campaign "
                f"({first}) and before the end "
                f"({config.days}), in the campaigns world (world={config.world!r})"
            )
        campaigns.append(C.Campaign(follow_up.day, config.seed, name=follow_up.name,
                                    treat=np.asarray(follow_up.treatment, np.int64) - 1,
                                    hold=np.asarray(follow_up.control, np.int64) - 1))  # fmt: skip
    raw = simulate(config, *campaigns)
    start_us = int(config.start_datetime.timestamp()) * 1_000_000
    journeys = SyntheticJourneys(
        events=_events_frame(raw, config.days, start_us),
        customers=_customers_frame(raw, start_us),
        stages=_stages_frame(raw, start_us),
    )
    if campaigns:  # the follow-up's rows after the first campaign's
        frames = [_campaign_frames(c, start_us) for c in campaigns]
        journeys.exposures = pl.concat([exposures for exposures, _ in frames])
        journeys.effects = pl.concat([effects for _, effects in frames])
    return journeys


def _campaign_frames(campaign: C.Campaign, start_us: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The exposure log (the contacted customers) and the true effects of the campaign (every
    eligible customer; ``arm`` null for those a follow-up did not contact)."""
    r = campaign.records
    n = r["customer"].size
    ids = pl.Series("customer_id", r["customer"] + 1, pl.Int64)
    at = _timestamps(np.full(n, float(campaign.day)), start_us)
    arm = pl.Series(np.where(r["treated"], "treatment", "control")).set(
        pl.Series(~r["contacted"]), None
    )
    name = pl.Series([campaign.name] * n, dtype=pl.String)
    exposures = pl.DataFrame(
        {"customer_id": ids, "timestamp": at, "campaign": name,
         "arm": arm, "eligible": pl.Series(np.ones(n, bool))}
    ).filter(pl.Series(r["contacted"])).sort("customer_id")  # fmt: skip
    effects = pl.DataFrame(
        {"customer_id": ids, "campaign": name, "arm": arm,
         "type": pl.Series(C.TYPES).gather(r["kind"]), "hazard": r["hazard"],
         "hazard_mult": r["hazard_mult"], "session_mult": r["session_mult"],
         "window_days": np.full(n, float(C.WINDOW_DAYS)), "tau_churn": r["tau_churn"],
         "tau_value": r["tau_value"]}
    ).sort("customer_id")  # fmt: skip
    return exposures, effects


def _purchase_log(config: SyntheticConfig) -> SyntheticJourneys:
    """The purchase-log world (:mod:`journeyformer.synthetic.purchases`) as frames of the
    same schemas (no device or items columns: a purchase log has none)."""
    events, customers, stages = simulate_purchases(config)
    start_us = int(config.start_datetime.timestamp()) * 1_000_000

    def at(days: pl.Expr, name: str) -> pl.Expr:
        return _timestamps((days * _MS_PER_DAY).floor().cast(pl.Int64), start_us).alias(name)

    cid = pl.col("customer_id").cast(pl.Int64)
    return SyntheticJourneys(
        events=events.select(cid, at(pl.col("day"), "timestamp"), "channel", "action", pl.col("amount").cast(pl.Float64)),
        customers=customers.select(cid, "segment", at(pl.col("acquired_day"), "acquired_at"),
                                   at(pl.col("churned_day").fill_nan(None), "churned_at")),  # fmt: skip
        stages=stages.select(cid, "stage", at(pl.col("day"), "start")),
    )


def _timestamps(days: np.ndarray | pl.Expr, start_us: int) -> pl.Series | pl.Expr:
    """Days since start (float) or milliseconds since start (int expression) -> UTC datetimes."""
    if isinstance(days, np.ndarray):
        ms = np.floor(days * _MS_PER_DAY).astype(np.int64)
        return pl.Series(ms * 1000 + start_us).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return (days * 1000 + start_us).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _names(names: tuple[str, ...], codes: str) -> pl.Expr:
    return pl.lit(pl.Series(names, dtype=pl.String)).gather(pl.col(codes))


def _events_frame(raw: RawJourneys, days: int, start_us: int) -> pl.DataFrame:
    customer_id = raw.event_customer + 1  # ids are 1..n in order of acquisition
    ms = np.floor(raw.event_time * _MS_PER_DAY).astype(np.int64)
    codes = {"action": raw.event_action, "channel": raw.event_channel, "device": raw.event_device,
             "amount": raw.event_amount, "items": raw.event_items}  # fmt: skip
    time_bits = (days * _MS_PER_DAY).bit_length()
    if (len(raw.segment) + 1).bit_length() + time_bits <= 62:
        # one int64 key (customer_id, ms) sorts about twice as fast as two columns
        key = (customer_id << time_bits) | ms
        frame = pl.DataFrame({"key": key, **codes}).sort("key")
        customer, msec = pl.col("key") // (1 << time_bits), pl.col("key") % (1 << time_bits)
    else:  # pragma: no cover - needs > 2**26 customers over a year
        frame = pl.DataFrame({"cid": customer_id, "ms": ms, **codes}).sort(["cid", "ms"])
        customer, msec = pl.col("cid"), pl.col("ms")
    return frame.select(
        customer.cast(pl.Int64).alias("customer_id"),
        _timestamps(msec, start_us).alias("timestamp"),
        _names(CHANNELS, "channel").alias("channel"),
        _names(ACTIONS, "action").alias("action"),
        pl.col("amount"),
        _names(DEVICES, "device").alias("device"),
        pl.col("items"),
    )


def _customers_frame(raw: RawJourneys, start_us: int) -> pl.DataFrame:
    churned = _timestamps(np.where(np.isfinite(raw.churned), raw.churned, 0.0), start_us)
    return pl.DataFrame(
        {
            "customer_id": np.arange(1, len(raw.segment) + 1, dtype=np.int64),
            "segment": pl.Series(SEGMENTS).gather(raw.segment),
            "acquired_at": _timestamps(raw.acquired, start_us),
            "churned_at": churned.set(pl.Series(~np.isfinite(raw.churned)), None),
        },
        schema=CUSTOMER_SCHEMA,
    )


def _stages_frame(raw: RawJourneys, start_us: int) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "customer_id": raw.stage_customer + 1,
            "stage": pl.Series(LATENT_STAGES).gather(raw.stage_code),
            "start": _timestamps(raw.stage_time, start_us),
        },
        schema=STAGE_SCHEMA,
    )
    return frame.sort(["customer_id", "start"], maintain_order=True)


def write_journeys(
    journeys: SyntheticJourneys, out_dir: str | Path, *, events_filename: str = FILENAMES["events"]
) -> dict[str, Path]:
    """Write the frames (:data:`FILENAMES`; the campaigns world's too) into ``out_dir``, each
    atomically and the events file last; returns the paths by name (``"events"``, ...)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = {**FILENAMES, "events": events_filename}
    paths: dict[str, Path] = {}
    for name in FILENAMES:  # the events last
        if (frame := getattr(journeys, name)) is not None:
            paths[name] = atomic_write_parquet(out / names[name], frame)
    return paths


def stamp_path(events_path: str | Path) -> Path:
    """The generator's stamp beside ``events_path``: the settings and the generator version."""
    path = Path(events_path)
    return path.with_name(path.stem + ".config.json")


def check_owned(events_path: str | Path, generated_dir: str | Path | None) -> None:
    """Raise unless the generator may write at ``events_path``: its stamp is there, or the
    path lies under ``generated_dir`` (``data.generated_dir``). The generator never writes
    over a file it did not make."""
    path = Path(events_path)
    if stamp_path(path).exists():
        return
    if generated_dir is not None:
        root = Path(generated_dir).resolve()
        if path.resolve().is_relative_to(root):
            return
    where = f"under {Path(generated_dir)} (data.generated_dir) or " if generated_dir else ""
    exists = "exists and was not made by the generator" if path.exists() else "is not a generated-data path"
    raise OutputError(
        f"data.path={path} {exists}: synthetic data is only written {where}over data the "
        f"generator made before (stamp file {stamp_path(path).name}). To train on your own "
        f"events use data=events data.path={path}."
    )


def generate_dataset(
    events_path: str | Path, config: SyntheticConfig, generated_dir: str | Path | None = None
) -> tuple[SyntheticJourneys, dict[str, Path]]:
    """Generate journeys for ``config`` and write them next to ``events_path``, replacing data
    the generator made before; refuses other paths (:func:`check_owned`)."""
    path = Path(events_path)
    if path.suffix != ".parquet":
        raise OutputError(
            f"synthetic data is written as Parquet, but data.path is {str(path)!r}; "
            "use a path ending in .parquet"
        )
    check_owned(path, generated_dir)
    journeys = generate_journeys(config)
    paths = write_journeys(journeys, path.parent, events_filename=path.name)
    stamp = {"config": asdict(config), "generator": GENERATOR_VERSION}
    atomic_write_text(stamp_path(path), json.dumps(stamp, sort_keys=True))
    log.info("wrote %d synthetic events to %s", journeys.events.height, path)
    return journeys, paths


def ensure_synthetic(
    events_path: str | Path, config: SyntheticConfig, generated_dir: str | Path | None = None
) -> Path:
    """Return ``events_path``, generating the synthetic data set there first if it is missing
    or was made with other settings or another generator version (a ``.config.json`` stamp
    beside it records both). Only writes where :func:`check_owned` allows."""
    path = Path(events_path)
    stamp = stamp_path(path)
    wanted = json.dumps({"config": asdict(config), "generator": GENERATOR_VERSION}, sort_keys=True)
    if path.exists() and stamp.exists() and stamp.read_text() == wanted:
        return path
    log.info("generating synthetic data at %s with %s", path, config)
    journeys, _ = generate_dataset(path, config, generated_dir)
    log.info("synthetic data summary:\n%s", summarize(journeys))
    return path


def summarize(journeys: SyntheticJourneys) -> str:
    """A human-readable multi-line summary of the events and the latent truth."""
    ev, cu = journeys.events, journeys.customers
    n_customers = cu.height
    per = ev.group_by("customer_id").len()["len"].cast(pl.Float64)
    counts = per.extend(pl.Series(np.zeros(max(n_customers - per.len(), 0))))  # silent customers

    def mix(column: str) -> str:
        shares = ev[column].value_counts(sort=True, normalize=True)
        return ", ".join(f"{k} {v:.1%}" for k, v in shares.iter_rows())

    purchases = ev.filter(pl.col("action") == "purchase")["amount"]
    segments = cu["segment"].value_counts(sort=True)
    stages = journeys.stages.group_by("stage").agg(pl.col("customer_id").n_unique())
    reached = dict(stages.iter_rows())
    lines = [
        f"customers: {n_customers:,}   events: {ev.height:,}",
        f"time range: {ev['timestamp'].min():%Y-%m-%d %H:%M} .. "
        f"{ev['timestamp'].max():%Y-%m-%d %H:%M} UTC"
        if ev.height
        else "time range: no events",
        f"events per customer: mean {counts.mean():.1f}, median {counts.median():.0f}, "
        f"p95 {counts.quantile(0.95, 'nearest'):.0f}",
        f"actions: {mix('action')}",
        f"channels: {mix('channel')}",
        f"devices: {mix('device')}" if "device" in ev.columns else "devices: none",
        f"purchases: {purchases.len():,}, mean amount {purchases.mean() or 0.0:.2f}",
        f"churned within the window: {cu['churned_at'].is_not_null().mean():.1%} of customers",
        "segments: " + ", ".join(f"{k} {v:,}" for k, v in segments.iter_rows()),
        "customers who reached each stage: "
        + ", ".join(f"{s} {reached.get(s, 0):,}" for s in LATENT_STAGES),
    ]
    return "\n".join(lines)
