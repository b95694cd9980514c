"""The evaluation report's decision sections: backtest, segment table, segment transitions.

:func:`run_evaluations` evaluates one as_of, or every as_of of a backtest
(:mod:`journeyformer.evaluation.backtest`), and returns the last evaluation with, in its
metrics, ``backtest`` (headline metrics over time, model and baselines), ``segments`` (the
table at as_of) and ``segment_transitions`` (from one horizon before as_of to as_of).
:func:`decision_plots` draws ``backtest.png``, ``segments.png`` and ``segment_transitions.png``;
:func:`decision_html` renders the tables.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import polars as pl

from journeyformer.evaluation.backtest import backtest_dates, backtest_series
from journeyformer.evaluation.evaluate import EvaluationInput
from journeyformer.evaluation.render import html_table
from journeyformer.evaluation.segments import predicted_segments, segment_report
from journeyformer.inference.decisions import Decisions
from journeyformer.inference.loop import BULK_BATCH_SIZE, score_sequences

log = logging.getLogger(__name__)


def run_evaluations(cfg: Mapping[str, Any], evaluate_one: Callable[[Any], Any], source: EvaluationInput) -> Any:
    """``evaluate_one(as_of)`` at the configured date(s), every date on ``source`` (the bundle
    and the events, loaded once); the last Evaluation, its metrics extended with the backtest
    and segment sections."""
    bt = cfg.get("backtest") or {}
    dates = None
    if isinstance(cfg.get("as_of"), (list, tuple)) or bt.get("every_days"):
        end = source.end.end - source.bundle.preprocessing.labels.horizon
        dates = backtest_dates(cfg.get("as_of"), bt, end)
    if dates is None:
        ev = evaluate_one(cfg.get("as_of"))
    else:
        runs = []
        for i, when in enumerate(dates):
            log.info("backtest %d/%d: as_of %s", i + 1, len(dates), when.isoformat())
            ev = evaluate_one(when)
            runs.append((when, ev.metrics))
        ev.metrics["backtest"] = backtest_series(runs, ev.metrics["headline"])
    segments = cfg.get("segments")  # absent (~segments): no segment sections
    if segments is not None:
        decisions = Decisions.for_bundle(ev.bundle, segments)
        if decisions.segments is not None:
            before = _segments_at(ev, source, decisions)
            ev.metrics.update(segment_report(ev.bundle, ev.test, ev.outputs, ev.as_of, before, decisions))
    return ev


def _segments_at(ev: Any, source: EvaluationInput, decisions: Decisions) -> pl.DataFrame:
    """Segments of the customers with history one horizon before the evaluation's as_of."""
    bundle = ev.bundle
    when = ev.as_of - bundle.preprocessing.labels.horizon
    seqs = bundle.preprocessing.sequences(
        source.events, when, with_labels=False, active_only=False, source=f"{source.name} @ as_of - horizon"
    )
    outputs = score_sequences(seqs, source.job.runner, batch_size=BULK_BATCH_SIZE).outputs
    return predicted_segments(bundle, seqs, outputs, when, decisions)


def decision_plots(metrics: Mapping[str, Any]) -> dict[str, tuple[str, bytes]]:
    """File -> (caption, PNG) for the backtest, the segment table and the segment transitions,
    where present."""
    from journeyformer.evaluation import plots

    out = {}
    if "backtest" in metrics:
        out["backtest.png"] = (
            "Backtest: each task's headline metric at every as_of, model and baselines",
            plots.backtest_plot(metrics["backtest"]),
        )
    if "segments" in metrics and metrics["segments"]["table"]:
        seg = metrics["segments"]
        title = f"Segments at as_of {seg['as_of'][:10]}: predicted against actual, per segment (customers)"
        out["segments.png"] = (title, plots.segment_plot(seg["table"], title))
    if "segment_transitions" in metrics:
        rows = metrics["segment_transitions"]["matrix"]
        names = [r["from"] for r in rows]
        shares = np.asarray([[r[n] for n in names] for r in rows], dtype=np.float64)
        title = f"Segments one horizon before as_of (rows) -> at as_of ({metrics['segment_transitions']['customers']} customers)"
        out["segment_transitions.png"] = (title, plots.transition_plot(names, shares, [r["customers"] for r in rows], "segment transitions"))
    return out


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "&ndash;" if math.isnan(v) else f"{v:.3f}"
    return "&ndash;" if v is None else html.escape(str(v))


def decision_html(metrics: Mapping[str, Any]) -> str:
    """The backtest numbers and the segment table as HTML (the plots come with the others)."""
    parts = []
    if "backtest" in metrics:
        bt = metrics["backtest"]
        dates = [d[:10] for d in bt["as_of"]]
        rows = [[t, e["metric"], name, *values] for t, e in bt["tasks"].items() for name, values in e["values"].items()]
        table = html_table(["task", "metric", "scores", *dates], rows, _cell)
        parts.append(f"<h2>Backtest ({len(dates)} as_of dates)</h2>{table}")
    if "segments" in metrics:
        seg = metrics["segments"]
        cols = [c for c in seg["table"][0]] if seg["table"] else []
        table = html_table(cols, [[r[c] for c in cols] for r in seg["table"]], _cell)
        rules = "".join(f"<li><b>{html.escape(r['segment'])}</b>: {html.escape(r['rule'])}</li>" for r in seg["rules"])
        parts.append(
            f"<h2>Segments at as_of</h2>{table}<p>Predicted: mean score; actual: churn rate and "
            f"mean spend in the horizon after as_of. First matching rule wins:</p><ul>{rules}</ul>"
        )
    return "".join(parts)
