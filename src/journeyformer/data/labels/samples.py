"""Training samples at several cutoffs, out-of-time validation/test, and customer splits.

Timeline (H = horizon)::

    ... train_k ... train_1  train_0 |--H--| val |--H--| test |--H--| last event
                                  train_0 + H <= val,   val + H <= test

Every training label window ends at or before the validation cutoff, and the validation label
window ends at or before the test cutoff, so evaluation is out of time. Customers are split by
a stable hash (CRC32 of salt + id), so a customer is in one split only.

No training cutoff falls before the activity starts (:class:`ActivityStart`): the time by which
5% of the customers had their first activity event, so that a months-long prefix of another kind
(campaign mailings before the first purchase) holds no cutoff. Where the cutoffs went, and why,
is one log line of :meth:`CutoffSchedule.resolve`.

A schedule can be formally valid and still useless: when some event types start long before
the rest, early cutoffs precede almost all activity. :func:`check_sample_counts` refuses
(``labels.cutoffs.sparse: error``, the default) or warns loudly (``warn``) when the training
split has fewer than ``min_samples`` samples, or validation/test fewer than
``min_eval_samples`` samples or fewer than 5 churners or 5 stayers, naming every cutoff with
its counts; a training cutoff with under 10% of the samples of the busiest one is a WARNING.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from journeyformer.data.features.sequences import Sequences

from journeyformer.data.labels.lifecycle import LabelConfig, _is_in, as_utc
from journeyformer.errors import ConfigError, EventDataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_MIN_CLASS = 5


@dataclass(frozen=True)
class SampleCount:
    """Samples built at one cutoff."""

    cutoff: datetime
    samples: int
    customers: int
    churners: int | None  # None: no counted label (see positives)

    def describe(self) -> str:
        churners = "-" if self.churners is None else self.churners
        return f"{self.cutoff:%Y-%m-%d} {self.samples}/{self.customers}/{churners}"


def positives(seqs: Sequences, label: str | None) -> int | None:
    """The positives of the binary ``label`` among ``seqs``' samples, the churners of
    :class:`SampleCount` (``tasks.registry.counted_label()``); None without that label, and
    then the checks count no classes."""
    return int(seqs.labels[label].sum()) if label and seqs.labels and label in seqs.labels else None


# Share of the customers that must have begun before the first training cutoff: a prefix
# reaching fewer (a pilot mailing) holds no cutoff. A steadily growing log loses only cutoffs
# that held a few percent of its customers, which the sample check warns about anyway.
START_SHARE = 0.05


@dataclass(frozen=True)
class ActivityStart:
    """Where the customers' activity begins; no training cutoff is placed at or before ``at``.

    ``at`` is the time by which ``START_SHARE`` of the customers with an activity event had
    their first one. Activity is ``labels.activity_actions``; with that null (every action
    counts for churn), the label actions (``purchase_actions``, ``intent_actions``,
    ``value_actions``) that occur in the data, since mailings sent to everyone are events of
    every customer but no behaviour of theirs; when none of those occur, every action.

    Example::

        start = ActivityStart.of(events, LabelConfig(horizon_days=91))
        cutoffs = CutoffSchedule(horizon_days=91).resolve(start.first_event, last, start)
    """

    at: datetime
    first_event: datetime
    actions: tuple[str, ...] | None  # None: every action
    customers: int  # customers with one of ``actions``
    before: tuple[tuple[str, int], ...] = ()  # events before ``at`` per action, most first

    @classmethod
    def of(cls, events: pl.DataFrame | pl.LazyFrame, labels: LabelConfig) -> ActivityStart:
        """From canonical events (in memory or lazy: a few streaming aggregates)."""
        lf = events.lazy()
        per_action = (
            lf.group_by("action").agg(pl.len().alias("n"), pl.col("timestamp").min().alias("first"))
            .collect(engine="streaming")
        )  # fmt: skip
        if per_action.height == 0:
            raise EventDataError("no events: nothing to place the cutoffs on")
        seen = set(per_action.get_column("action").drop_nulls().to_list())
        wanted = labels.activity_actions
        if wanted is None:
            wanted = (*labels.purchase_actions, *labels.intent_actions, *labels.value_actions)
        actions = tuple(dict.fromkeys(a for a in wanted if a in seen)) or None
        active = lf if actions is None else lf.filter(_is_in("action", actions))
        firsts = (
            active.group_by("customer_id").agg(pl.col("timestamp").min())
            .collect(engine="streaming").get_column("timestamp").sort()
        )  # fmt: skip
        first_event = parse_time(per_action.get_column("first").min())
        at = parse_time(firsts[max(math.ceil(START_SHARE * len(firsts)) - 1, 0)])
        before: tuple[tuple[str, int], ...] = ()
        if at > first_event:
            rows = (
                lf.filter(pl.col("timestamp") < at).group_by("action").agg(pl.len().alias("n"))
                .collect(engine="streaming").sort(["n", "action"], descending=[True, False])
            )  # fmt: skip
            before = tuple((str(a), int(n)) for a, n in rows.iter_rows())
        return cls(at, first_event, actions, len(firsts), before)

    def describe(self, instead: list[datetime] | None = None) -> str:
        """Where the activity starts and why, for the schedule's log line; ``instead``: the
        training cutoffs the first event would have given, when the start moved them."""
        which = "an event" if self.actions is None else f"a {' / '.join(self.actions)} event"
        out = (
            f"the activity starts {self.at:%Y-%m-%d %H:%M}: {START_SHARE:.0%} of the "
            f"{self.customers} customers with {which} had their first by then"
        )
        if instead:
            n = sum(k for _, k in self.before)
            kinds = ", ".join(f"{a} {k}" for a, k in self.before[:4])
            days = ", ".join(f"{t:%Y-%m-%d}" for t in sorted(instead))
            out += (
                f"; the {n} events before it (from {self.first_event:%Y-%m-%d}: {kinds}) hold no "
                f"training cutoff (starting at the first event would have placed them at {days}); "
                "to start earlier, list the actions that are activity in labels.activity_actions"
            )
        return out


@dataclass(frozen=True)
class CutoffSchedule:
    """Where the cutoffs fall. ``test`` defaults to (last event - horizon).

    ``n_train`` training cutoffs go back from ``val - horizon`` every ``train_stride_days``.
    """

    horizon_days: float = 30.0
    test: datetime | None = None
    n_train: int = 4
    train_stride_days: float = 30.0
    min_samples: int = 200  # training samples, all cutoffs together
    min_eval_samples: int = 30  # validation / test samples each
    sparse: str = "error"  # error | warn: what too few samples do
    # Validation pooled over several cutoffs when a log is small: with fewer than
    # ``val_samples`` samples at the validation cutoff, earlier ones are added every
    # ``train_stride_days`` (up to ``max_val_cutoffs`` in all) until there are that many.
    val_samples: int = 2000
    max_val_cutoffs: int = 4

    def __post_init__(self) -> None:
        if self.test is not None:
            object.__setattr__(self, "test", parse_time(self.test))
        if self.horizon_days <= 0:
            raise ConfigError(f"labels.horizon_days must be > 0, got {self.horizon_days}")
        if self.n_train < 1:
            raise ConfigError(f"labels.cutoffs.n_train must be >= 1, got {self.n_train}")
        if self.train_stride_days <= 0:
            raise ConfigError("labels.cutoffs.train_stride_days must be > 0")
        if self.val_samples < 0 or self.max_val_cutoffs < 1:
            raise ConfigError(
                f"labels.cutoffs.val_samples={self.val_samples} must be >= 0 and "
                f"max_val_cutoffs={self.max_val_cutoffs} >= 1"
            )
        if self.sparse not in ("error", "warn"):
            raise ConfigError(f"labels.cutoffs.sparse={self.sparse!r} is not one of ['error', 'warn']")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], horizon_days: float) -> CutoffSchedule:
        keys = [k for k in cls.__dataclass_fields__ if k in cfg and k not in ("test", "horizon_days")]
        typed = {k: type(getattr(cls, k))(cfg[k]) for k in keys}  # as the default's type
        return cls(horizon_days=float(horizon_days), test=cfg.get("test") or None, **typed)

    def check_sample_counts(self, counts: Mapping[str, list[SampleCount]], source: str) -> None:
        """Refuse (or warn, ``sparse: warn``) splits too small for their metrics to mean
        anything; see the module docstring. ``counts``: split -> one entry per cutoff."""
        problems = []
        for split, per_cut in counts.items():
            n = sum(c.samples for c in per_cut)
            counted = [c.churners for c in per_cut if c.churners is not None]
            churn = sum(counted)
            need = self.min_samples if split == "train" else self.min_eval_samples
            if n < need:
                problems.append(f"{split} has {n} samples (< {need})")
            elif split != "train" and counted and min(churn, n - churn) < _MIN_CLASS:
                problems.append(f"{split} has {churn} churners and {n - churn} stayers (< {_MIN_CLASS})")
        train = counts.get("train", [])
        busiest = max((c.samples for c in train), default=0)
        early = [c for c in train if c.samples < 0.1 * busiest]
        table = "; ".join(
            f"{split} " + ", ".join(c.describe() for c in per_cut) for split, per_cut in counts.items()
        )
        if early:
            log.warning(
                "%s: training cutoff(s) %s precede almost all activity (%s samples vs %d at the "
                "busiest); events of some types may start long before the rest. Set "
                "labels.cutoffs.n_train or labels.cutoffs.train_stride_days to drop them.",
                source, [f"{c.cutoff:%Y-%m-%d}" for c in early], [c.samples for c in early], busiest,
            )  # fmt: skip
        if not problems:
            return
        what = (
            f"{source}: too few samples for the metrics to mean anything: {'; '.join(problems)}. "
            f"Cutoffs (samples / customers / churners): {table}."
        )
        if self.sparse == "warn":
            log.warning("%s Going on because labels.cutoffs.sparse=warn.", what)
            return
        raise EventDataError(
            f"{what} Use more customers or a longer history, move the cutoffs "
            "(labels.cutoffs.test, labels.horizon_days), lower labels.cutoffs.min_samples / "
            "min_eval_samples, or set labels.cutoffs.sparse=warn to train anyway."
        )


    def resolve(
        self, first_event: datetime, last_event: datetime, activity: ActivityStart | None = None
    ) -> dict[str, list[datetime]]:
        """Cutoffs per split; raises when the data span is too short for the schedule.

        Training cutoffs fall after ``activity.at`` (default: after ``first_event``); one log
        line says where the cutoffs went and why.
        """
        first_event, last_event = parse_time(first_event), parse_time(last_event)
        start = first_event if activity is None else max(first_event, parse_time(activity.at))
        h = timedelta(days=self.horizon_days)
        test = self.test or (last_event - h)
        if test + h > last_event:
            log.warning(
                "labels.cutoffs.test=%s: its label window ends after the last event (%s), so "
                "test labels see less than a full horizon and churn looks higher",
                test,
                last_event,
            )
        val = test - h
        span = (last_event - start).days
        train, anchor = self._training(val, start)
        if anchor == "validation":
            log.warning(
                "the %s %d days, too short for an out-of-time validation window "
                "with horizon %g days: validation uses the held-out customers at the last "
                "training cutoff %s (same time, other customers); test stays out of time",
                "events span" if start == first_event else "activity spans",
                span, self.horizon_days, f"{val:%Y-%m-%d}",
            )  # fmt: skip
        if not train:
            since = "" if start == first_event else " since the activity start (see the log)"
            raise ConfigError(
                f"the events span {span} days{since} ({start:%Y-%m-%d} .. {last_event:%Y-%m-%d}), "
                f"too short for horizon {self.horizon_days:g} days: the schedule needs at least "
                f"2 horizons plus some history. Lower labels.horizon_days or set "
                "labels.cutoffs.test."
            )
        cutoffs = {"train": sorted(train), "val": [val], "test": [test]}
        instead = self._training(val, first_event)[0] if start > first_event else train
        held_back = sorted(instead) != cutoffs["train"]
        days = ", ".join(f"{t:%Y-%m-%d}" for t in cutoffs["train"])
        log.log(
            logging.WARNING if held_back else logging.INFO,
            "cutoffs: test %s (%s), validation %s, training %s (every %g days back from %s)%s",
            f"{test:%Y-%m-%d}",
            "labels.cutoffs.test" if self.test else f"the last event minus {self.horizon_days:g} days",
            f"{val:%Y-%m-%d}", days, self.train_stride_days,
            "validation minus the horizon" if anchor == "out_of_time" else "validation",
            f"; {activity.describe(instead if held_back else None)}" if activity else "",
        )  # fmt: skip
        return cutoffs

    def widen_validation(
        self,
        cutoffs: Mapping[str, list[datetime]],
        start: datetime,
        count: Callable[[datetime], int],
    ) -> dict[str, list[datetime]]:
        """``cutoffs`` with earlier validation cutoffs added while the validation samples
        (``count(cutoff)``: the validation customers' samples there) number fewer than
        ``val_samples``: every ``train_stride_days`` back from the validation cutoff, after
        ``start``, at most ``max_val_cutoffs`` in all. Early stopping, calibration, the stage
        rule and the per-head blend are all decided on validation, and a small log gives them
        a few dozen customers at one cutoff. The validation customers' training samples then
        end one horizon before the earliest of them (``Preprocessing.customers_at``), so
        validation stays out of time for its own customers. One log line says what was done."""
        (val,) = cutoffs["val"]
        chosen, counts = [val], [count(val)]
        stride = timedelta(days=self.train_stride_days)
        while sum(counts) < self.val_samples and len(chosen) < self.max_val_cutoffs:
            earlier = chosen[-1] - stride
            if earlier <= start:
                break
            chosen.append(earlier)
            counts.append(count(earlier))
        if len(chosen) == 1:
            return dict(cutoffs)
        log.warning(
            "validation: %d samples at %s, fewer than labels.cutoffs.val_samples=%d, so it is "
            "pooled over %d cutoffs every %g days back (%s: %d samples) for early stopping, "
            "calibration and the per-head choice; labels.cutoffs.max_val_cutoffs=1 keeps one",
            counts[0], f"{val:%Y-%m-%d}", self.val_samples, len(chosen), self.train_stride_days,
            ", ".join(f"{t:%Y-%m-%d} {n}" for t, n in zip(chosen, counts, strict=True)), sum(counts),
        )  # fmt: skip
        return {**cutoffs, "val": sorted(chosen)}

    def _training(self, val: datetime, start: datetime) -> tuple[list[datetime], str]:
        """Training cutoffs after ``start`` and what they go back from: one horizon before
        validation ("out_of_time"), or, with no room for that (e.g. nine months of events with
        a 91-day horizon), validation itself ("validation": validation is then the customers
        the split holds out, at the last training cutoff)."""
        stride = timedelta(days=self.train_stride_days)
        back_from = {"out_of_time": val - timedelta(days=self.horizon_days), "validation": val}
        for anchor, last in back_from.items():
            train = [t for t in (last - stride * k for k in range(self.n_train)) if t > start]
            if train:
                return train, anchor
        return [], "none"


def parse_time(value: str | datetime) -> datetime:
    """ISO-8601 string or datetime -> aware UTC datetime (naive means UTC)."""
    try:
        t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(
            f"{value!r} is not an ISO-8601 time; write e.g. 2025-01-31 or 2025-01-31T12:00:00+01:00"
        ) from None
    return as_utc(t)


def split_of(
    customer_ids: pl.Series, val_fraction: float, test_fraction: float, salt: str
) -> np.ndarray:
    """(N,) array of "train" / "val" / "test", stable across runs, machines and versions."""
    in_range = 0 <= val_fraction < 1 and 0 <= test_fraction < 1
    if not in_range or val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"data.split fractions val={val_fraction}, test={test_fraction} must be in [0, 1) "
            "and sum to less than 1"
        )
    prefix = salt.encode()
    u = np.fromiter(
        (zlib.crc32(prefix + str(c).encode()) / 2**32 for c in customer_ids.to_list()),
        dtype=np.float64,
        count=len(customer_ids),
    )
    out = np.full(len(u), "train", dtype=object)
    out[u < val_fraction + test_fraction] = "val"
    out[u < test_fraction] = "test"
    return out


def customers_by_split(
    events: pl.DataFrame, val_fraction: float, test_fraction: float, salt: str
) -> dict[str, pl.Series]:
    ids = events.get_column("customer_id").unique(maintain_order=False).sort()
    split = split_of(ids, val_fraction, test_fraction, salt)
    return {name: ids.filter(pl.Series(split == name)) for name in SPLITS}
