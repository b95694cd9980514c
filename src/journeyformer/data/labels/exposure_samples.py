"""Training samples cut at each eligible exposure of an exposure log (the uplift head's data).

For every eligible exposure (customer, time, arm) of :func:`journeyformer.data.events.exposures.load_exposures`
one sample is built like any other (:meth:`Preprocessing.sequences`), with the cutoff one
microsecond before the exposure: the features see the events strictly before it (a treatment
contact appended to the events as a model input, :func:`exposure_events`, sits at the exposure
time and would reveal the arm), and the labels are the outcomes in the label horizon after it
(churn: no event in the window; value: spend of ``labels.value_actions``) - the window
``journeyformer experiment`` and ``benchmarks/bench_uplift.py`` measure. Every task's label is
computed for these samples, so the other heads learn from them too; the uplift label
(:func:`exposure_labels`, the layout :mod:`journeyformer.tasks.uplift` documents) adds the arm.

Exposure samples go to the split of their customer (train / val; test stays the out-of-time
test at its own cutoff). A training or validation sample of the same customer at (nearly) the
same time is replaced by the exposure sample, which has the same features and labels plus the
arm. Exposures whose outcome window ends after the last event (the outcome is not observed
yet) and customers with no event before their exposure are left out, each with a warning and
the count; when nothing is left that is an error.

Only Polars and NumPy (the prep layer): the uplift labels are assembled here from the
``churn`` and ``value`` labels, in the layout the uplift task documents.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from journeyformer.data.features.sequences import Sequences
from journeyformer.data.labels.lifecycle import LabelWindow
from journeyformer.data.labels.samples import parse_time
from journeyformer.errors import EventDataError
from journeyformer.metrics.uplift import imbalance_threshold, standardized_difference

if TYPE_CHECKING:
    from journeyformer.data.preprocessing import Preprocessing

log = logging.getLogger(__name__)

UPLIFT = "uplift"  # the uplift task's label name
SPLITS_WITH_EXPOSURES = ("train", "val")
MANY_TIMES = 50  # distinct exposure times above which building the samples is said to be slow
BEFORE = timedelta(microseconds=1)  # exposure samples are cut this long before the exposure


def exposure_labels(arm: np.ndarray, churn: np.ndarray, value: np.ndarray) -> np.ndarray:
    """(N, 3) float32 ``[arm, retained, spend]``: arm 1 treatment / 0 control, retained =
    1 - churn label, spend = value label (the uplift task's label)."""
    return np.stack(
        [np.asarray(arm, np.float32), 1.0 - np.asarray(churn, np.float32), np.asarray(value, np.float32)], axis=1
    )


def exposure_sequences(
    pre: Preprocessing,
    events: pl.DataFrame,
    exposures: pl.DataFrame,
    labelers: Mapping[str, Callable[[LabelWindow], np.ndarray]],
    source: str = "exposures",
) -> dict[str, Sequences]:
    """split -> labelled samples at the eligible exposures of its customers (train and val).

    ``exposures``: a frame of :func:`load_exposures` (canonical columns); ``labelers`` must
    include ``churn`` and ``value`` (the outcomes) and ``uplift``.
    """
    missing = {"churn", "value", UPLIFT} - set(labelers)
    if missing:
        raise EventDataError(f"{source}: exposure samples need the labels {sorted(missing)}")
    eligible = exposures.filter(pl.col("eligible"))
    last = events.get_column("timestamp").max()
    horizon = pre.labels.horizon
    late = eligible.filter(pl.col("timestamp") + horizon > pl.lit(last))
    if late.height:
        log.warning(
            "%s: %d of %d eligible exposures have an outcome window (%g days) that ends after the "
            "last event (%s): their outcome is not observed yet, so they are left out of the "
            "uplift head's samples",
            source, late.height, eligible.height, pre.horizon_days, last,
        )  # fmt: skip
    usable = eligible.filter(pl.col("timestamp") + horizon <= pl.lit(last))
    if usable.height == 0:
        raise EventDataError(
            f"{source}: none of the {eligible.height} eligible exposures (of {exposures.height}) has "
            f"an observed outcome window of {pre.horizon_days:g} days before the last event ({last}); "
            "use a log whose exposures end at least labels.horizon_days before the events do"
        )
    split_ids = pre.split.customers(events)
    wanted = pl.concat([split_ids[s] for s in SPLITS_WITH_EXPOSURES])
    usable = usable.filter(pl.col("customer_id").is_in(wanted.implode()))
    times = usable.get_column("timestamp").n_unique()
    if times > MANY_TIMES:
        log.warning(
            "%s: the exposures fall at %d distinct times; each is one pass over the events "
            "(exposure samples are built per exposure time), so this takes a while. A campaign "
            "sent in one batch has one time",
            source, times,
        )  # fmt: skip
    parts = []
    for (at,), group in usable.group_by(["timestamp"], maintain_order=True):
        # one sample per customer and time: a customer in two campaigns at once keeps the first
        group = group.unique("customer_id", keep="first", maintain_order=True)
        seqs = pre.sequences(
            events, parse_time(at) - BEFORE, customers=group.get_column("customer_id"),
            labelers=labelers, active_only=False, source=f"{source} [exposures @ {at}]",
        )  # fmt: skip
        if not len(seqs):
            continue
        arm = (
            pl.DataFrame({"customer_id": seqs.customer_id})
            .join(group.select("customer_id", "arm"), on="customer_id", how="left")
            .get_column("arm")
        )
        assert seqs.labels is not None
        seqs.labels[UPLIFT] = exposure_labels(
            (arm == "treatment").to_numpy(), seqs.labels["churn"], seqs.labels["value"]
        )
        parts.append(seqs)
    kept = sum(len(p) for p in parts)
    if kept < usable.height:
        log.warning(
            "%s: %d of %d exposures of training/validation customers have no event before the "
            "exposure (nothing to predict from) and are left out of the uplift head's samples",
            source, usable.height - kept, usable.height,
        )  # fmt: skip
    if not parts:
        raise EventDataError(f"{source}: no exposed customer has an event before the exposure")
    every = Sequences.concat(parts)
    check_balance(every, source)
    out = {}
    for split in SPLITS_WITH_EXPOSURES:
        index = np.flatnonzero(every.customer_id.is_in(split_ids[split].implode()).to_numpy())
        if len(index):
            out[split] = every.take(index)
    arms = {s: q.labels[UPLIFT][:, 0] for s, q in out.items() if q.labels is not None}
    counts = {s: f"{int((arm == 1).sum())} / {int((arm == 0).sum())}" for s, arm in arms.items()}
    log.info("%s: exposure samples (treated / control) %s", source, counts)
    return out


BALANCE_FEATURES = ("recency_days", "n_events", "spend", "tenure_days")  # history at the exposure


def check_balance(seqs: Sequences, source: str) -> dict[str, float]:
    """Standardized difference treated vs control of the history at the exposure; a warning
    naming the features above :func:`imbalance_threshold` (the experiment's rule: 0.1, or
    what chance gives arms this small): the head assumes randomised exposures, and
    arms that differ before the exposure mean the assignment was not random (or the holdout
    is too small to compare), so its effects would mix in who was chosen."""
    assert seqs.labels is not None
    arm = seqs.labels[UPLIFT][:, 0]
    out = {
        name: standardized_difference(seqs.summary.get_column(name).cast(pl.Float64).to_numpy(), arm)
        for name in BALANCE_FEATURES
    }
    n_t, n_c = int((arm == 1).sum()), int((arm == 0).sum())
    limit = imbalance_threshold(n_t, n_c)
    off = {k: round(v, 3) for k, v in out.items() if abs(v) > limit}
    if off:
        log.warning(
            "%s: UNBALANCED ARMS: treated and control exposures differ before the exposure "
            "(standardized difference above %.2g: %s; %d treated, %d control). The uplift head "
            "assumes a randomised holdout; check the assignment (journeyformer experiment "
            "reports the balance per campaign)",
            source, limit, off, n_t, n_c,
        )  # fmt: skip
    return out


def with_exposures(splits: Mapping[str, Sequences], extra: Mapping[str, Sequences]) -> dict[str, Sequences]:
    """``splits`` with each split's exposure samples added; an ordinary sample of the same
    customer whose cutoff rounds to the same second as an exposure sample's is replaced."""
    out = dict(splits)
    for split, exposed in extra.items():
        base = splits[split]
        assert base.labels is not None and exposed.labels is not None
        keys = set(_keys(exposed))
        keep = np.array([k not in keys for k in _keys(base)], dtype=bool)
        if UPLIFT not in base.labels:
            base.labels[UPLIFT] = np.full((len(base), 3), np.nan, dtype=np.float32)
        missing = set(base.labels) ^ set(exposed.labels)
        if missing:
            raise EventDataError(f"{split}: exposure samples and ordinary samples differ in labels {sorted(missing)}")
        replaced = int((~keep).sum())
        if replaced:
            log.info("%s: %d samples at an exposure time replaced by their exposure samples", split, replaced)
        out[split] = Sequences.concat([base.take(np.flatnonzero(keep)), exposed])
    return out


def _keys(seqs: Sequences) -> zip:
    """(customer, cutoff rounded up to the second) per sample: an exposure sample's cutoff is
    a microsecond early."""
    us = seqs.cutoff.astype("datetime64[us]").astype(np.int64)
    return zip(seqs.customer_id.to_list(), -(-us // 1_000_000), strict=True)
