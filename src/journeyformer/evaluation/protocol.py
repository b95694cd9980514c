"""One evaluation protocol, for the train job's table and the evaluate job's report.

Every evaluation compares the model with its baselines on a :class:`Population`: labelled
samples at one cutoff, chosen by the preprocessing's sample rule (customers with history at the
cutoff and, when ``active_within_days`` is set, active within that many days of it, as the
training samples were). The baselines are fitted (:func:`fit_baselines`) on labelled samples
whose label windows end at or before the population's cutoff, LightGBM early-stopped on
held-out customers of the same period (:class:`BaselineData`). The comparison is
:func:`journeyformer.evaluation.compare.compare` (paired bootstrap over customers against the
best baseline; no verdict when the label window runs past the data); the decisions
(:func:`decisions`) pick thresholds on a validation population, never on the one scored. Only
where the samples come from, and which runtime scores them, differ:

* :func:`split_protocol` (the train job): the out-of-time test split (customers by hash) at the
  test cutoff; baselines fitted on the train split's samples, LightGBM stopped on the
  validation split; decisions tuned on the validation split.
* :func:`input_protocol` (the evaluate job, any events): the input's customers at ``as_of``;
  baselines fitted on the same input one horizon earlier (cutoff ``as_of - horizon``, labels
  from (as_of - horizon, as_of]), LightGBM stopped on a fifth of those customers; decisions
  tuned on those samples.

Each population and baseline set carries a one-line description that every rendered table
prints (:mod:`journeyformer.evaluation.render`). Torch-free: the model's outputs come in as
arrays (torch at train time, onnxruntime for a bundle).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from journeyformer.data.features.sequences import Sequences
from journeyformer.data.labels.lifecycle import LabelConfig, as_utc
from journeyformer.data.labels.samples import split_of
from journeyformer.data.preprocessing import Preprocessing
from journeyformer.errors import JourneyformerError
from journeyformer.evaluation.compare import compare
from journeyformer.tasks import registry
from journeyformer.tasks.base import DecisionData, Task
from journeyformer.tasks.registry import Baselines


class EvaluationError(JourneyformerError):
    """The input cannot give meaningful labels or does not fit the bundle."""


@dataclass(frozen=True)
class Population:
    """Labelled samples a table is about, and how they were chosen.

    Attributes:
        seqs: the samples, with the labels of every registered task.
        name: what the population is, e.g. "out-of-time test set".
        rule: who is in it, e.g. "test split (15% of customers by hash), active within 180 days".
        label_window: status ("complete", "truncated" or "empty"), cutoff, ends, last_event (ISO
            strings): the labels are the truth only when the window lies inside the data.
    """

    seqs: Sequences
    name: str
    rule: str
    label_window: Mapping[str, Any]

    def describe(self) -> str:
        w = self.label_window
        return (
            f"{self.name}: {len(self.seqs)} customers with cutoff {w['cutoff'][:10]} ({self.rule}), "
            f"label window ({w['cutoff'][:10]}, {w['ends'][:10]}]"
        )


@dataclass(frozen=True)
class BaselineData:
    """Labelled samples the baselines are fitted on, and those LightGBM stops early on."""

    fit: Sequences
    stop: Sequences | None
    description: str


@dataclass(frozen=True)
class Protocol:
    """A population to score, one to tune decisions on, and the baselines' data."""

    test: Population
    val: Population
    baselines: BaselineData
    horizon_days: float
    n_actions: int
    stages: tuple[str, ...]
    labels: LabelConfig | None = None  # the label settings (the next-item baselines read them)

    @classmethod
    def of(cls, pre: Preprocessing, test: Population, val: Population, baselines: BaselineData) -> Protocol:
        """The protocol of ``pre``'s horizon, actions, stages and label settings."""
        return cls(test, val, baselines, pre.horizon_days, len(pre.actions), tuple(pre.stages), pre.labels)


def _rule(pre: Preprocessing, who: str) -> str:
    days = pre.active_within_days
    return who + (f", active within {days:g} days" if days is not None else ", with history")


def _window(cutoff: datetime, horizon: timedelta, last_event: datetime | None) -> dict[str, Any]:
    """The label window (cutoff, cutoff + horizon] against the data's last event."""
    cutoff = as_utc(cutoff)
    end = cutoff + horizon
    status = "complete"
    if last_event is not None and end > last_event:
        status = "empty" if cutoff >= last_event else "truncated"
    last = None if last_event is None else last_event.isoformat()
    return {"status": status, "cutoff": cutoff.isoformat(), "ends": end.isoformat(), "last_event": last}


def _dates(cutoffs: Iterable[datetime]) -> str:
    return ", ".join(f"{c:%Y-%m-%d}" for c in cutoffs)


def split_protocol(
    pre: Preprocessing, splits: Mapping[str, Sequences], last_event: datetime | None
) -> Protocol:
    """The train job's protocol over its train / val / test splits (see the module doc)."""
    frac = {"val": pre.split.val_fraction, "test": pre.split.test_fraction}

    def population(split: str, name: str) -> Population:
        who = f"{split} split ({frac[split]:.0%} of customers by hash)"
        window = _window(max(pre.cutoffs[split]), pre.labels.horizon, last_event)
        return Population(splits[split], name, _rule(pre, who), window)

    train_end = max(pre.cutoffs["train"]) + pre.labels.horizon
    description = (
        f"baselines fitted on the train split: {len(splits['train'])} samples at cutoffs "
        f"{_dates(pre.cutoffs['train'])}, labels up to {train_end:%Y-%m-%d}; LightGBM "
        f"early-stopped on the validation split ({len(splits['val'])} samples at "
        f"{_dates(pre.cutoffs['val'])})"
    )
    return Protocol.of(pre, population("test", "out-of-time test set"), population("val", "validation set"),
                       BaselineData(splits["train"], splits["val"], description))  # fmt: skip


def input_protocol(
    pre: Preprocessing, events: pl.DataFrame, as_of: datetime, last_event: datetime, tasks: Iterable[str], source: str
) -> tuple[Protocol, list[str]]:
    """The evaluate job's protocol on ``events`` at ``as_of`` (see the module doc), and the
    warnings to show. Raises :class:`EvaluationError` when ``as_of`` leaves no labels after it or
    no history one horizon before it."""
    labels = pre.labels
    if events.filter(pl.col("timestamp") > as_of).height == 0:
        raise EvaluationError(
            f"{source}: no events after as_of={as_of:%Y-%m-%d %H:%M} (the input ends at "
            f"{last_event:%Y-%m-%d %H:%M}), so there are no true labels to evaluate against. "
            f"Pass an earlier as_of, at most {labels.horizon_days:g} days (the horizon) before "
            "the end."
        )
    warnings = []
    if as_of + labels.horizon > last_event:
        warnings.append(
            f"the horizon ({labels.horizon_days:g} days) after as_of runs past the last event "
            f"({last_event:%Y-%m-%d}): customers look inactive there, so churn is over-stated"
        )
    val_cut = as_of - labels.horizon
    first = events.get_column("timestamp").min()
    if val_cut <= first:
        raise EvaluationError(
            f"{source}: as_of={as_of:%Y-%m-%d} leaves no history one horizon earlier "
            f"(events start {first:%Y-%m-%d}) to fit the baselines and the churn threshold on"
        )
    build = dict(labelers=registry.labelers(list(tasks)), active_only=True)
    test = pre.sequences(events, as_of, **build, source=f"{source} @ as_of")
    val = pre.sequences(events, val_cut, **build, source=f"{source} @ as_of - horizon")
    fit, stop = _boosting_split(val)
    stop_note = (
        f"LightGBM early-stopped on a fifth of those customers ({len(stop)} samples)"
        if stop is not None
        else "too few samples to hold some out: no LightGBM baseline"
    )
    description = (
        f"baselines fitted on the same input one horizon earlier: {len(fit)} samples at cutoff "
        f"{val_cut:%Y-%m-%d}, labels up to {as_of:%Y-%m-%d}; {stop_note}"
    )
    who = _rule(pre, "every customer of the input")
    protocol = Protocol.of(
        pre,
        Population(test, f"evaluation input {source}", who, _window(as_of, labels.horizon, last_event)),
        Population(val, "one horizon earlier", who, _window(val_cut, labels.horizon, last_event)),
        BaselineData(fit, stop, description),
    )
    return protocol, warnings


def _boosting_split(val: Sequences) -> tuple[Sequences, Sequences | None]:
    """The samples the baselines are fitted on, and a fifth of those customers held out for
    the boosting baseline's early stopping (None when too few samples: the boosting baseline
    is then left out)."""
    held_out = split_of(val.customer_id, 0.2, 0.0, "journeyformer-boosting") == "val"
    if held_out.sum() < 10 or (~held_out).sum() < 10:
        return val, None
    return val.take(np.flatnonzero(~held_out)), val.take(np.flatnonzero(held_out))


def fit_baselines(protocol: Protocol, tasks: Iterable[str], seed: int = 0) -> Baselines:
    """Every enabled task's baselines, fitted on ``protocol.baselines``."""
    data = protocol.baselines
    return Baselines.fit(
        data.fit, protocol.horizon_days, protocol.n_actions, list(tasks), val=data.stop, seed=seed,
        labels=protocol.labels,
    )


def score(population: Population, outputs: Mapping[str, np.ndarray], baselines: Baselines,
          baseline_data: BaselineData, tasks: Iterable[str], n_boot: int = 1000) -> dict[str, Any]:  # fmt: skip
    """:func:`compare` on ``population``, with the descriptions a rendered table prints."""
    tasks = list(tasks)
    result = compare(outputs, population.seqs, baselines, tasks, n_boot, label_window=population.label_window)
    result["population"] = population.describe()
    result["baselines_fitted_on"] = baseline_data.description
    result["headline"] = {t.name: t.headline for t in registry.enabled(tasks)}
    return result


def evaluate(protocol: Protocol, outputs: Mapping[str, np.ndarray], val_outputs: Mapping[str, np.ndarray],
             tasks: Iterable[str], temperatures: Mapping[str, float] | None = None, seed: int = 0,
             baselines: Baselines | None = None) -> tuple[dict[str, Any], Baselines]:  # fmt: skip
    """The test population's table and the decisions tuned on the validation population.

    ``outputs`` / ``val_outputs``: the model's named outputs on ``protocol.test.seqs`` /
    ``protocol.val.seqs``; ``temperatures``: task -> the temperature the model's calibrated
    probabilities were divided by (for the before/after calibration figures); ``baselines``:
    already fitted by :func:`fit_baselines` (else fitted here).
    Returns the metrics dict (see :func:`compare`, plus population, baselines_fitted_on,
    headline, horizon_days and the decisions) and the fitted baselines.
    """
    tasks = list(tasks)
    baselines = baselines if baselines is not None else fit_baselines(protocol, tasks, seed)
    metrics = score(protocol.test, outputs, baselines, protocol.baselines, tasks)
    metrics["horizon_days"] = protocol.horizon_days
    metrics["decisions_tuned_on"] = protocol.val.describe()
    metrics.update(decisions(protocol, outputs, val_outputs, baselines, tasks, temperatures or {}))
    return metrics, baselines


def decisions(protocol: Protocol, outputs: Mapping[str, np.ndarray], val_outputs: Mapping[str, np.ndarray],
              baselines: Baselines, tasks: Iterable[str], temperatures: Mapping[str, float]) -> dict[str, Any]:  # fmt: skip
    """Each enabled task's decision metrics (:meth:`~journeyformer.tasks.base.Task.decisions`:
    thresholds tuned on the validation population, calibration, recall per true class) on
    the test population."""
    test, val = protocol.test.seqs, protocol.val.seqs
    assert test.labels is not None and val.labels is not None
    out: dict[str, Any] = {}
    for task in registry.enabled(tasks):
        if type(task).decisions is Task.decisions:  # none: skip the baselines' predictions
            continue
        fitted = baselines.fitted.get(task.name, ())
        out |= task.decisions(
            DecisionData(
                test, val, outputs, val_outputs, {b.name: b.predict(test) for b in fitted},
                {b.name: b.predict(val) for b in fitted}, float(temperatures.get(task.name, 1.0)),
                tuple(protocol.stages),
            )
        )  # fmt: skip
    return out
