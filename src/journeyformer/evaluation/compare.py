"""The model against its baselines on the same samples: metrics and the printed table."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from journeyformer.data.sequences import Sequences
from journeyformer.tasks import registry
from journeyformer.tasks.registry import Baselines


def compare(
    outputs: Mapping[str, np.ndarray], seqs: Sequences, baselines: Baselines, tasks: Iterable[str]
) -> dict[str, Any]:
    """``{"model": {task: {metric: v}}, "baselines": {task: {name: {metric: v}}}, "n": N}``."""
    assert seqs.labels is not None, "comparison needs labelled samples"
    base = baselines.predict(seqs)
    result: dict[str, Any] = {"model": {}, "baselines": {}, "n": len(seqs)}
    for task in registry.enabled(tasks):
        y = seqs.labels[task.name]
        result["model"][task.name] = task.score(outputs[task.metric_output], y)
        result["baselines"][task.name] = {
            name: task.score(pred, y) for name, pred in base[task.name].items()
        }
    return result


def beats_baselines(result: Mapping[str, Any]) -> dict[str, bool]:
    """task -> whether the model beats every baseline on the task's headline metric."""
    out = {}
    for task, metrics in result["model"].items():
        key = registry.get(task).headline
        best = max((b[key] for b in result["baselines"][task].values()), default=float("-inf"))
        out[task] = bool(metrics[key] > best)
    return out


def format_table(result: Mapping[str, Any]) -> str:
    """A plain-text table: one row per task metric, the model then each baseline."""

    def fmt(v: float | None) -> str:
        return "    -" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:8.4f}"

    lines = [f"out-of-time test set: {result['n']} customers", ""]
    lines.append(f"{'task':<12} {'metric':<9} {'model':>8}   baselines")
    lines.append("-" * 78)
    wins = beats_baselines(result)
    for task, metrics in result["model"].items():
        for metric, value in metrics.items():
            headline = metric == registry.get(task).headline
            base = "  ".join(
                f"{name}={fmt(b.get(metric)).strip()}" for name, b in result["baselines"][task].items()
            )
            mark = (" <- beats all" if wins[task] else " <- does NOT beat all") if headline else ""
            lines.append(f"{task:<12} {metric + ('*' if headline else ''):<9} {fmt(value)}   {base}{mark}")
    lines.append("-" * 78)
    lines.append("* headline metric per task")
    return "\n".join(lines)
