"""The exposure log: who was put in which arm of which campaign, and when.

One row per exposure. After :func:`load_exposures` every frame has the canonical columns

=============  ==============================  ==========================================
column         dtype                           meaning
=============  ==============================  ==========================================
customer_id    Int64 or String (as in events)  who
timestamp      Datetime("us", "UTC")           when the customer was assigned (exposed)
campaign       String                          which campaign
arm            String                          ``treatment`` or ``control`` (the holdout)
eligible       Boolean                         in the randomised population; true if absent
=============  ==============================  ==========================================

sorted by (campaign, customer_id, timestamp). An exposure log is read exactly like events
(:mod:`journeyformer.data.events.load`): the same formats (Parquet, CSV, directories, globs), the
same timestamp parsing and time zones, the same null-key, duplicate and future-event policies,
with the campaign read as the event's channel and the arm as its action. On top of that:

* an arm value that is not one of ``arms.treatment`` / ``arms.control`` is an error
  (count and examples); so is an eligibility value that is not true/false/1/0/yes/no;
* a customer in both arms of one campaign is an error (an overlap makes the holdout
  meaningless); a customer exposed several times in the same arm keeps the first exposure,
  with a warning and the count;
* a campaign whose eligible customers are all in one arm (a holdout of zero customers, or no
  one treated) is an error: nothing can be measured against it.

Example (CSV)::

    customer_id,timestamp,campaign,arm,eligible
    17,2025-10-02T09:00:00,winback_oct,treatment,true
    18,2025-10-02T09:00:00,winback_oct,control,true
    19,2025-10-02T09:00:00,winback_oct,treatment,false

    exposures = load_exposures("exposures.csv", ExposureSchema())

Treatment contacts can also be model inputs: :func:`exposure_events` turns the treated
exposures into events (channel ``campaign``, action ``campaign_treatment``) to append to the
event log; the control arm gets no event, because a held-out customer saw nothing.

Errors are :class:`journeyformer.errors.EventDataError` and name the file, the column, the
problem, how many rows, a few example values and the setting to change.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from journeyformer.data.events.load import load_events
from journeyformer.data.events.schema import SETTINGS, EventSchema
from journeyformer.errors import ConfigError, EventDataError

log = logging.getLogger(__name__)

COLUMNS = ("customer_id", "timestamp", "campaign", "arm", "eligible")
ARMS = ("treatment", "control")
TRUE = ("true", "1", "yes", "y", "t")
FALSE = ("false", "0", "no", "n", "f")
EXPOSURE_CHANNEL = "campaign"
_EXAMPLES = 5


@dataclass(frozen=True)
class ExposureSchema:
    """How to read an exposure log.

    ``columns`` maps the canonical names (customer_id, timestamp, campaign, arm, eligible) to
    the user's columns; ``eligible: null`` (or an absent column left unmapped) means every
    row is eligible. ``arms`` maps ``treatment`` / ``control`` to the values the file uses
    (compared case-insensitively). The other settings mean what they mean for events
    (:class:`journeyformer.data.events.schema.EventSchema`).

    Example::

        ExposureSchema(columns={"arm": "group"}, arms={"treatment": "offer", "control": "holdout"})
    """

    columns: Mapping[str, str | None] = field(default_factory=dict)
    arms: Mapping[str, str] = field(default_factory=lambda: {"treatment": "treatment", "control": "control"})
    timestamp_unit: str = "auto"
    time_zone: str = "UTC"
    null_keys: str = "error"
    duplicates: str = "drop"
    format: str = "auto"
    separator: str = "auto"
    future_events: str = "error"

    def __post_init__(self) -> None:
        unknown = set(self.columns) - set(COLUMNS)
        if unknown:
            raise ConfigError(
                f"exposures.columns has unknown keys {sorted(unknown)}; allowed: {list(COLUMNS)}"
            )
        if set(self.arms) != set(ARMS):
            raise ConfigError(
                f"exposures.arms must map exactly {list(ARMS)} to your values, got {dict(self.arms)}"
            )
        values = [str(v).lower() for v in self.arms.values()]
        if len(set(values)) != len(values):
            raise ConfigError(f"exposures.arms gives both arms the same value: {dict(self.arms)}")
        self.event_schema(eligible_present=False)  # checks the shared settings now

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> ExposureSchema:
        """Build from the ``exposures`` config group (unused keys such as ``path`` ignored)."""
        cfg = cfg or {}
        kwargs: dict[str, Any] = {"columns": dict(cfg.get("columns") or {})}
        if cfg.get("arms"):
            kwargs["arms"] = {k: str(v) for k, v in dict(cfg["arms"]).items()}
        kwargs |= {k: str(cfg[k]) for k in SETTINGS if cfg.get(k) is not None}
        return cls(**kwargs)

    def source(self, name: str) -> str | None:
        """The user's column for canonical ``name`` (identity unless mapped)."""
        return self.columns[name] if name in self.columns else name

    def event_schema(self, eligible_present: bool) -> EventSchema:
        """The events reader's schema for this log: campaign as channel, arm as action."""
        eligible = self.source("eligible")
        return EventSchema(
            columns={
                "customer_id": self.source("customer_id"),
                "timestamp": self.source("timestamp"),
                "channel": self.source("campaign"),
                "action": self.source("arm"),
                "amount": None,
            },
            extra_categorical=(eligible,) if eligible and eligible_present else (),
            **{k: getattr(self, k) for k in SETTINGS},
        )


def _speak(message: str) -> str:
    """An events-reader message in the words of the exposure log."""
    for old, new in (("channel)", "campaign)"), ("action)", "arm)"), ("data.", "exposures."),
                     ("no events", "no exposures"), ("events", "exposures")):  # fmt: skip
        message = message.replace(old, new)
    return message


def _has_column(path: str | Path, schema: ExposureSchema, name: str) -> bool:
    from journeyformer.data.events.readers import scan_raw

    lf, _ = scan_raw(path, schema.event_schema(eligible_present=False))
    return name in lf.collect_schema()


def load_exposures(path: str | Path, schema: ExposureSchema | None = None) -> pl.DataFrame:
    """Read, normalize and validate an exposure log (canonical columns, see module doc)."""
    schema = schema or ExposureSchema()
    eligible = schema.source("eligible")
    try:
        present = bool(eligible) and _has_column(path, schema, str(eligible))
        if eligible and "eligible" in schema.columns and not present:
            raise EventDataError(
                f"{path}: missing column '{eligible}' (for eligible); map another column with "
                "exposures.columns.eligible=<your column>, or set it to null (all eligible)"
            )
        df = load_events(path, schema.event_schema(eligible_present=present))
    except EventDataError as err:
        raise EventDataError(_speak(str(err))) from None
    df = df.rename({"channel": "campaign", "action": "arm"})
    df = df.with_columns(_arms(df, schema, str(path)))
    df = df.with_columns(
        _eligible(df, str(eligible), schema, str(path)) if present else pl.lit(True).alias("eligible")
    )
    df = df.select(COLUMNS)
    df = _one_exposure_each(df, schema, str(path))
    check_holdouts(df, str(path))
    return df.sort(["campaign", "customer_id", "timestamp"])


def _arms(df: pl.DataFrame, schema: ExposureSchema, name: str) -> pl.Expr:
    lower = {str(v).lower(): k for k, v in schema.arms.items()}
    arm = pl.col("arm").str.to_lowercase()
    bad = df.filter(~arm.is_in(list(lower)))
    if bad.height:
        examples = bad.get_column("arm").unique(maintain_order=True).head(_EXAMPLES).to_list()
        raise EventDataError(
            f"{name}: column '{schema.source('arm')}' (arm): {bad.height} of {df.height} rows "
            f"have an unknown arm, e.g. {examples}; the arms are {dict(schema.arms)}. Map your "
            "values with exposures.arms.treatment=<value> and exposures.arms.control=<value>, "
            "or fix the rows."
        )
    return arm.replace_strict(lower, return_dtype=pl.String).alias("arm")


def _eligible(df: pl.DataFrame, column: str, schema: ExposureSchema, name: str) -> pl.Expr:
    value = pl.col(column).str.strip_chars().str.to_lowercase()
    bad = df.filter(~value.is_in([*TRUE, *FALSE]))
    if bad.height:
        examples = bad.get_column(column).unique(maintain_order=True).head(_EXAMPLES).to_list()
        raise EventDataError(
            f"{name}: column '{column}' (eligible): {bad.height} of {df.height} values are not "
            f"true/false, e.g. {examples}; write true/false (or 1/0, yes/no), or set "
            "exposures.columns.eligible=null to treat every row as eligible."
        )
    return value.is_in(TRUE).alias("eligible")


def _one_exposure_each(df: pl.DataFrame, schema: ExposureSchema, name: str) -> pl.DataFrame:
    """One exposure per (campaign, customer): both arms is an error, repeats keep the first."""
    arms = df.group_by(["campaign", "customer_id"]).agg(pl.col("arm").n_unique().alias("n"))
    both = arms.filter(pl.col("n") > 1)
    if both.height:
        examples = [f"{c}/{k}" for c, k in both.head(_EXAMPLES).select("campaign", "customer_id").iter_rows()]
        raise EventDataError(
            f"{name}: column '{schema.source('arm')}' (arm): {both.height} customers are in both "
            f"arms of one campaign (campaign/customer e.g. {examples}). Each customer belongs to "
            "one arm per campaign; fix the assignment or split the campaign."
        )
    first = df.sort(["campaign", "customer_id", "timestamp"]).unique(
        ["campaign", "customer_id"], keep="first", maintain_order=True
    )
    if first.height < df.height:
        log.warning(
            "%s: %d of %d exposures repeat a customer already exposed in the same arm of the "
            "same campaign; the first exposure of each is kept",
            name, df.height - first.height, df.height,
        )  # fmt: skip
    return first


def check_holdouts(df: pl.DataFrame, name: str) -> None:
    """Every campaign has eligible customers in both arms, else an error naming the campaign."""
    counts = (
        df.filter(pl.col("eligible"))
        .group_by("campaign")
        .agg((pl.col("arm") == a).sum().alias(a) for a in ARMS)
    )
    campaigns = df.get_column("campaign").unique().sort().to_list()
    have = {r["campaign"]: r for r in counts.iter_rows(named=True)}
    for campaign in campaigns:
        row = have.get(campaign, {"treatment": 0, "control": 0})
        for arm in ARMS:
            if row[arm] == 0:
                what = "a holdout of zero customers" if arm == "control" else "no treated customer"
                raise EventDataError(
                    f"{name}: campaign {campaign!r} has {what} (eligible: {row['treatment']} "
                    f"treatment, {row['control']} control); an effect needs both arms. Add the "
                    "randomised holdout to the log, or drop the campaign."
                )


def exposure_events(exposures: pl.DataFrame, customer_dtype: pl.DataType | None = None) -> pl.DataFrame:
    """Treated exposures as events (channel ``campaign``, action ``campaign_treatment``,
    amount 0), in the canonical event columns, to append to an event log as model inputs."""
    treated = exposures.filter(pl.col("arm") == "treatment")
    cid = pl.col("customer_id")
    return treated.select(
        cid.cast(customer_dtype) if customer_dtype is not None else cid,
        "timestamp",
        pl.lit(EXPOSURE_CHANNEL).alias("channel"),
        pl.lit("campaign_treatment").alias("action"),
        pl.lit(0.0).alias("amount"),
    )
