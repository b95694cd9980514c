"""Segments in the evaluation report: who is in each, what the model said and what happened.

* :func:`segment_table`: per segment, its size and share and, for each task with a mean output
  (``Task.mean_output``), its mean against the label's: the predicted churn probability and
  the actual churn rate, the expected and the actual value (spend within the horizon) -- a
  segment whose predicted and actual columns disagree is mis-targeted;
* :func:`transition_matrix`: customers scored at two as_of dates, by segment at the first
  (rows) and at the second (columns), as shares of each row -- who moved where.

Needs only Polars and NumPy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from journeyformer.tasks import registry


def mean_pairs(
    outputs: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Task -> (its mean output, its label) for every task with both (registry order)."""
    return {
        task: (outputs[name], labels[task])
        for task, name in registry.mean_outputs().items()
        if task in labels and name in outputs
    }


def segment_table(
    segment: pl.Series | Sequence[str],
    order: Sequence[str],
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> pl.DataFrame:
    """One row per segment of ``order`` (empty ones included, size 0).

    ``pairs``: task -> (predicted, actual) arrays in the row order of ``segment`` (each
    task's mean output and its label, :func:`mean_pairs`). Columns: segment, customers,
    share, then predicted_<task>, actual_<task> (means over the segment's customers) per task.
    """
    frame = pl.DataFrame({"segment": pl.Series(list(segment), dtype=pl.String)})
    aggs: list[pl.Expr] = [pl.len().alias("customers")]
    for name, (predicted, actual) in (pairs or {}).items():
        frame = frame.with_columns(
            pl.Series(f"predicted_{name}", np.asarray(predicted, np.float64)),
            pl.Series(f"actual_{name}", np.asarray(actual, np.float64)),
        )
        aggs += [pl.col(f"predicted_{name}").mean(), pl.col(f"actual_{name}").mean()]
    n = max(frame.height, 1)
    table = frame.group_by("segment").agg(aggs)
    names = list(dict.fromkeys([*order, *table["segment"].to_list()]))
    return (
        pl.DataFrame({"segment": names})
        .join(table, on="segment", how="left")
        .with_columns(pl.col("customers").fill_null(0), (pl.col("customers").fill_null(0) / n).alias("share"))
        .select("segment", "customers", "share", *[c for c in table.columns if c not in ("segment", "customers")])
    )


def transition_matrix(
    before: pl.DataFrame, after: pl.DataFrame, order: Sequence[str]
) -> tuple[pl.DataFrame, int]:
    """Row-normalised segment transitions of the customers in both frames (customer_id,
    segment); returns (matrix with a ``from`` column then one column per segment of ``order``
    plus ``customers`` per row, number of customers in both)."""
    both = before.select("customer_id", pl.col("segment").alias("from")).join(
        after.select("customer_id", pl.col("segment").alias("to")), on="customer_id", how="inner"
    )
    names = list(dict.fromkeys([*order, *both["from"].to_list(), *both["to"].to_list()]))
    counts = both.group_by("from", "to").len()
    rows: list[dict[str, Any]] = []
    for a in names:
        sub = counts.filter(pl.col("from") == a)
        total = int(sub["len"].sum()) if sub.height else 0
        got = dict(zip(sub["to"].to_list(), sub["len"].to_list(), strict=True))
        rows.append({"from": a, **{b: (got.get(b, 0) / total if total else float("nan")) for b in names}, "customers": total})
    return pl.DataFrame(rows), both.height


def predicted_segments(
    bundle: Any, seqs: Any, outputs: dict[str, np.ndarray], as_of: Any, decisions: Any
) -> pl.DataFrame:
    """customer_id and segment (and cluster) of the customers of ``seqs`` scored ``outputs``,
    by ``decisions`` (:class:`journeyformer.inference.decisions.Decisions`)."""
    from journeyformer.inference.loop import prediction_frame

    frame = prediction_frame(seqs, outputs, bundle, as_of)
    frame = decisions.annotate(frame, seqs, outputs, [], lambda inputs: {})
    return frame.select("customer_id", *[c for c in ("segment", "cluster") if c in frame.columns])


def segment_report(bundle: Any, test: Any, outputs: dict[str, np.ndarray], as_of: Any, before: pl.DataFrame | None,
                   decisions: Any) -> dict[str, Any]:  # fmt: skip
    """metrics.json's ``segments`` (the table at as_of, with the rules as resolved) and
    ``segment_transitions`` (from ``before``: customer_id, segment at an earlier date)."""
    rules = decisions.segments
    seg = predicted_segments(bundle, test, outputs, as_of, decisions)
    labels = test.labels or {}
    table = segment_table(seg["segment"], rules.names, mean_pairs(outputs, labels))
    out: dict[str, Any] = {
        "segments": {"as_of": as_of.isoformat(), "rules": rules.describe(), "table": table.to_dicts()},
    }
    if before is not None:
        matrix, n = transition_matrix(before, seg, rules.names)
        out["segment_transitions"] = {"customers": n, "matrix": matrix.to_dicts()}
    return out
