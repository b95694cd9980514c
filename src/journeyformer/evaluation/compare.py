"""The model against its baselines on the same samples: metrics and bootstrap verdicts
(rendered by :mod:`journeyformer.evaluation.render`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from journeyformer.data.features.sequences import Sequences
from journeyformer.metrics.bootstrap import NO_VERDICT, paired_bootstrap
from journeyformer.tasks import registry
from journeyformer.tasks.boosting import NAME as BOOSTING
from journeyformer.tasks.registry import Baselines


def compare(outputs: Mapping[str, np.ndarray], seqs: Sequences, baselines: Baselines, tasks: Iterable[str],
            n_boot: int = 1000, label_window: Mapping[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Metrics of the model and every baseline on ``seqs``, and a paired bootstrap over
    customers of the model minus the best baseline (by the headline point estimate) per task.

    Returns ``{"model": {task: {metric: v}}, "baselines": {task: {name: {metric: v}}},
    "intervals": {task: {baseline, metric, delta, low, high, n_boot, verdict}}, "n": N,
    "label_window": {...}}``. ``label_window`` (see ``JourneyData.label_window``): unless its
    status is "complete" the labels are not the truth (customers look inactive after the last
    event), so every verdict is "no verdict" and the table says why.
    """
    assert seqs.labels is not None, "comparison needs labelled samples"
    base = baselines.predict(seqs)
    window = dict(label_window or {"status": "complete"})
    result: dict[str, Any] = {
        "model": {}, "baselines": {}, "intervals": {}, "intervals_without_boosting": {},
        "n": len(seqs), "label_window": window,
    }  # fmt: skip
    groups = seqs.customer_id.to_numpy()
    for task in registry.enabled(tasks):
        y = seqs.labels[task.name]
        pred = outputs[task.metric_output]
        result["model"][task.name] = task.score(pred, y)
        scores = {name: task.score(p, y) for name, p in base.get(task.name, {}).items()}
        result["baselines"][task.name] = scores
        finite = {n: m[task.headline] for n, m in scores.items() if not math.isnan(m[task.headline])}
        if not finite:
            continue

        def interval(name: str, task: Any = task, pred: np.ndarray = pred, y: np.ndarray = y) -> dict[str, Any]:
            """The paired bootstrap of the model minus baseline ``name`` on the headline metric."""
            iv = paired_bootstrap(task.headline_score, pred, base[task.name][name], y, groups, n_boot=n_boot)
            if window["status"] != "complete":
                iv["verdict"] = NO_VERDICT
            return {"baseline": name, "metric": task.headline, **iv}

        best = max(finite, key=finite.__getitem__)
        result["intervals"][task.name] = interval(best)
        simple = {n: v for n, v in finite.items() if n != BOOSTING}
        if best == BOOSTING and simple:  # also against the best of the simple baselines
            result["intervals_without_boosting"][task.name] = interval(max(simple, key=simple.__getitem__))
    return result


def beats_baselines(result: Mapping[str, Any]) -> dict[str, str]:
    """task -> verdict of the model against the best baseline on the task's headline metric:
    "beats" only when the 95% bootstrap interval of the difference is above zero."""
    return {task: iv["verdict"] for task, iv in result.get("intervals", {}).items()}
