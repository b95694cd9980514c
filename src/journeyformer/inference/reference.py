"""What the model saw and said on its validation customers: ``reference.json`` in the bundle.

The export profiles (:mod:`journeyformer.metrics.drift`) every column :func:`measures` returns
for the validation customers (the checkpoint's validation split at its validation cutoff, active
as training samples were), and stores them in the bundle. Three readers use them:

* drift monitoring (:mod:`journeyformer.monitoring`) compares a new population with them;
* segment rules (:mod:`journeyformer.inference.segments`) read score quantiles from them
  (``expected_value >= q0.8``: the 80th percentile of the validation customers' values);
* explanations (:mod:`journeyformer.inference.explain`) reset a feature to its validation median.

Columns, by group (the part before ``/``):

==================  ===================================================  ==============
``context/<name>``  each per-customer model input (the ``context`` array)  continuous
``customer/...``    last_action, last_channel, stage_now (the current        categorical
                    lifecycle stage)
``sequence/...``    length (events the model reads), n_events (history)   continuous
``event/<col>``     share of each value of a categorical event column     categorical
                    (action, channel, extras), over the events the model
                    reads
``event/<name>``    each per-event numeric input (log_amount, log_gap, ...)  continuous
``score/<col>``     each numeric prediction column (churn_probability,     continuous
                    expected_value, ...)
``score/<col>``     next_action, stage, segment, cluster                   categorical
==================  ===================================================  ==============

Event columns are profiled per event, the others per customer. Needs only Polars and NumPy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from journeyformer.data.features.aggregates import CATEGORICAL_AGGREGATES
from journeyformer.data.features.sequences import Sequences
from journeyformer.data.preprocessing import Preprocessing
from journeyformer.errors import ConfigError
from journeyformer.metrics.drift import CATEGORICAL, CONTINUOUS, Profile, profile

REFERENCE = "reference.json"
# Prediction columns that are not scores of the population (identifiers, lists).
_NOT_SCORES = ("customer_id", "as_of", "n_events", "embedding")
# Categorical scores: every text column (a task's class: next_action, stage) and these.
_CATEGORICAL_SCORES = ("segment", "cluster")


def measures(
    seqs: Sequences, predictions: pl.DataFrame, pre: Preprocessing
) -> dict[str, tuple[str, np.ndarray | list[Any]]]:
    """Column name -> (kind, values) for every column of the module docstring.

    ``predictions``: the prediction frame of ``seqs`` (same rows, same order).
    """
    out: dict[str, tuple[str, np.ndarray | list[Any]]] = {}
    for j, name in enumerate(pre.context_names):
        out[f"context/{name}"] = (CONTINUOUS, seqs.context[:, j])
    agg_names = pre.aggregate_names
    for name in CATEGORICAL_AGGREGATES:
        ids = seqs.aggregates[:, agg_names.index(name)]
        if name == "stage_now":
            tokens = np.asarray(pre.stages, dtype=object)
        else:
            tokens = np.asarray(pre.vocabs[name.removeprefix("last_")].tokens, dtype=object)
        valid = ~np.isnan(ids)
        labels = np.full(len(ids), None, dtype=object)
        labels[valid] = tokens[ids[valid].astype(np.int64)]
        out[f"customer/{name}"] = (CATEGORICAL, list(labels))
    out["sequence/length"] = (CONTINUOUS, seqs.lengths.astype(np.float64))
    out["sequence/n_events"] = (CONTINUOUS, seqs.summary.get_column("n_events").to_numpy().astype(np.float64))
    kept = _kept_rows(seqs, pre.max_len)
    for j, col in enumerate(pre.features.categorical):
        tokens = np.asarray(pre.vocabs[col].tokens, dtype=object)
        out[f"event/{col}"] = (CATEGORICAL, list(tokens[seqs.categorical[kept, j]]))
    for j, name in enumerate(pre.numeric_names):
        out[f"event/{name}"] = (CONTINUOUS, seqs.numeric[kept, j].astype(np.float64))
    for col, dtype in predictions.schema.items():
        if col in _NOT_SCORES:
            continue
        values = predictions.get_column(col)
        if col in _CATEGORICAL_SCORES or dtype == pl.String:
            out[f"score/{col}"] = (CATEGORICAL, values.cast(pl.String).to_list())
        elif dtype.is_numeric():
            out[f"score/{col}"] = (CONTINUOUS, values.cast(pl.Float64).fill_null(np.nan).to_numpy())
    return out


def _kept_rows(seqs: Sequences, max_len: int) -> np.ndarray:
    """Flat event rows the model reads: the last ``max_len`` of each sample."""
    lengths = np.minimum(seqs.lengths, max_len)
    ends = seqs.offsets[1:]
    starts = ends - lengths
    within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + within


def build_reference(
    seqs: Sequences, predictions: pl.DataFrame, pre: Preprocessing, population: str
) -> dict[str, Any]:
    """The content of ``reference.json``: ``population`` (who was profiled, in words),
    ``n_customers`` and ``columns`` (name -> :meth:`Profile.to_dict`)."""
    return {
        "population": population,
        "n_customers": len(seqs),
        "columns": {
            name: profile(values, kind).to_dict()
            for name, (kind, values) in measures(seqs, predictions, pre).items()
        },
    }


@dataclass(frozen=True)
class Reference:
    """The profiles of ``reference.json``, read back.

    Example::

        ref = Reference.load(bundle.path / REFERENCE)
        ref.quantile("score/expected_value", 0.8)   # 80th percentile of validation values
    """

    population: str
    n_customers: int
    columns: Mapping[str, Mapping[str, Any]]
    path: str = REFERENCE

    @classmethod
    def load(cls, path: str | Path) -> Reference:
        d = json.loads(Path(path).read_text())
        return cls(str(d["population"]), int(d["n_customers"]), d["columns"], str(path))

    @cached_property
    def profiles(self) -> dict[str, Profile]:
        return {name: Profile.from_dict(p) for name, p in self.columns.items()}

    def quantile(self, name: str, q: float) -> float:
        """The ``q`` quantile (0..1) of continuous column ``name`` on the reference customers."""
        if name not in self.columns:
            known = sorted(self.columns)
            raise ConfigError(f"{self.path}: no reference profile of {name!r}; known: {known}")
        return self.profiles[name].quantile(q)


def reference_of(bundle: Any) -> Reference | None:
    """The bundle's :class:`Reference`, or None when it was exported without validation data."""
    name = bundle.spec.get("reference")
    return Reference.load(Path(bundle.path) / name) if name else None
