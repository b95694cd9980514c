"""The report's figures (matplotlib, Agg backend), each returned as PNG bytes.

Every function takes labels and predictions as NumPy arrays; ``baselines`` maps a baseline's
name to its predictions for the same customers, drawn on the same axes as the model.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from journeyformer.data.labels.lifecycle import IGNORE_INDEX  # noqa: E402
from journeyformer.metrics.scores import accuracy_at_k  # noqa: E402
from journeyformer.tasks import registry  # noqa: E402


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _ranked(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The labels ordered by descending score, and the last index of each distinct score."""
    order = np.argsort(-scores, kind="mergesort")
    s, yy = scores[order], y[order].astype(bool)
    return yy, np.append(np.flatnonzero(np.diff(s)), len(s) - 1)


def _style(name: str) -> dict[str, Any]:  # the model's line bold, the others dashed
    return {"lw": 2.2} if name == "model" else {"lw": 1.2, "ls": "--"}


def roc_points(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    yy, last = _ranked(scores, y)
    tp, fp = np.cumsum(yy)[last], (last + 1) - np.cumsum(yy)[last]
    return np.concatenate([[0], fp / max(fp[-1], 1)]), np.concatenate([[0], tp / max(tp[-1], 1)])


def pr_points(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision at every distinct threshold."""
    yy, last = _ranked(scores, y)
    tp = np.cumsum(yy)[last]
    return tp / max(yy.sum(), 1), tp / (last + 1)


def _annotate(ax: Any, shares: np.ndarray, fmt: str, fontsize: int) -> None:
    """Write each share of at least 0.5% in its cell (white on dark cells)."""
    for i, j in np.ndindex(shares.shape):
        if not np.isnan(shares[i, j]) and shares[i, j] >= 0.005:
            ax.text(j, i, format(shares[i, j], fmt), ha="center", va="center", fontsize=fontsize,
                    color="white" if shares[i, j] > 0.6 else "black")  # fmt: skip


def binary_curves(
    y: np.ndarray, model: np.ndarray, baselines: Mapping[str, np.ndarray], title: str = "Churn"
) -> bytes:
    """ROC and precision-recall curves of a binary task, model and baselines on the same axes."""
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(10, 4.2))
    for name, scores in {"model": model, **baselines}.items():
        roc.plot(*roc_points(scores, y), label=name, **_style(name))
        pr.plot(*pr_points(scores, y), label=name, **_style(name))
    roc.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{title} ROC")
    pr.axhline(y.mean(), color="grey", lw=0.8, ls=":", label=f"base rate {y.mean():.2f}")
    pr.set(xlabel="recall", ylabel="precision", title=f"{title} precision-recall", ylim=(0, 1.02))
    roc.legend(loc="lower right", fontsize=8)
    pr.legend(loc="lower left", fontsize=8)
    return _png(fig)


def reliability_diagram(
    y: np.ndarray, probs: Mapping[str, np.ndarray], n_bins: int = 10, title: str = "Churn"
) -> bytes:
    """Observed rate against mean predicted probability per bin (calibrated/uncalibrated)."""
    fig, ax = plt.subplots(figsize=(5, 4.6))
    edges = np.linspace(0, 1, n_bins + 1)
    for name, p in probs.items():
        bins = np.clip(np.digitize(p, edges) - 1, 0, n_bins - 1)
        keep = [b for b in range(n_bins) if np.any(bins == b)]
        ax.plot(
            [p[bins == b].mean() for b in keep],
            [y[bins == b].mean() for b in keep],
            marker="o",
            label=name,
        )
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8, label="perfect calibration")
    what = title.lower()
    ax.set(xlabel=f"mean predicted {what} probability", ylabel=f"observed {what} rate", title="Reliability")
    ax.legend(fontsize=8)
    return _png(fig)


def confusion_matrix(y: np.ndarray, pred: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """(K, K) counts, rows = true class, columns = predicted class."""
    k = len(names)
    cm = np.zeros((k, k))
    np.add.at(cm, (y, pred), 1)
    return cm


def stage_confusion(y: np.ndarray, pred: np.ndarray, names: Sequence[str]) -> bytes:
    """Confusion matrix normalised by true stage (each row sums to 1)."""
    cm = confusion_matrix(y, pred, names)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_yticks(range(len(names)), [f"{n} (n={int(r)})" for n, r in zip(names, rows[:, 0], strict=True)])
    _annotate(ax, norm, ".2f", 8)
    ax.set(xlabel="predicted stage", ylabel="true stage", title="Stage at horizon end (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _png(fig)


def accuracy_at_k_curve(y: np.ndarray, scores: Mapping[str, np.ndarray], max_k: int = 10) -> bytes:
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ks = np.arange(1, max_k + 1)
    for name, s in scores.items():
        ax.plot(ks, [accuracy_at_k(s, y, int(k)) for k in ks], marker="o", label=name, **_style(name))
    n = int(np.sum(y != IGNORE_INDEX))
    ax.set(xlabel="k", ylabel="accuracy@k", title=f"Next action accuracy@k (n={n})", ylim=(0, 1.02))
    ax.set_xticks(ks)
    ax.legend(fontsize=8)
    return _png(fig)


def value_deciles(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean predicted and mean actual spend per decile of predicted spend (1 = lowest)."""
    order = np.argsort(pred, kind="mergesort")
    groups = np.array_split(order, 10)
    return np.array([pred[g].mean() for g in groups]), np.array([y[g].mean() for g in groups])


def cumulative_gain(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of customers targeted (by predicted spend, highest first) vs share of spend won."""
    order = np.argsort(-pred, kind="mergesort")
    gain = np.cumsum(y[order]) / max(y.sum(), 1e-12)
    return np.arange(1, len(y) + 1) / len(y), gain


def value_plots(y: np.ndarray, model: np.ndarray, baselines: Mapping[str, np.ndarray]) -> bytes:
    fig, (dec, gain) = plt.subplots(1, 2, figsize=(10, 4.2))
    predicted, actual = value_deciles(y, model)
    x = np.arange(1, 11)
    dec.bar(x - 0.2, predicted, width=0.4, label="predicted mean")
    dec.bar(x + 0.2, actual, width=0.4, label="actual mean")
    dec.set(xlabel="decile of predicted value (10 = highest)", ylabel="spend in horizon", title="Value by decile")
    dec.set_xticks(x)
    dec.legend(fontsize=8)
    for name, p in {"model": model, **baselines, "perfect": y}.items():
        gain.plot(*cumulative_gain(y, p), label=name, **_style(name))
    gain.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8, label="random")
    gain.set(xlabel="share of customers targeted", ylabel="share of spend captured", title="Cumulative gain")
    gain.legend(fontsize=8)
    return _png(fig)


def backtest_plot(series: Mapping) -> bytes:
    """Each task's headline metric over the backtest's as_of dates, model and baselines
    (``series``: :func:`journeyformer.evaluation.backtest.backtest_series`)."""
    from datetime import datetime

    dates = [datetime.fromisoformat(d) for d in series["as_of"]]
    tasks = series["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, (task, entry) in zip(axes[0], tasks.items(), strict=True):
        for name, values in entry["values"].items():
            y = [np.nan if v is None else v for v in values]
            style = {"lw": 2.2, "marker": "o"} if name == "model" else {"lw": 1.1, "ls": "--", "marker": "."}
            ax.plot(dates, y, label=name, **style)
        ax.set_title(f"{task}: {entry['metric']}")
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return _png(fig)


def transition_plot(names: Sequence[str], shares: np.ndarray, counts: Sequence[int], title: str) -> bytes:
    """Heat map of a row-normalised segment transition matrix (rows: before, columns: after)."""
    fig, ax = plt.subplots(figsize=(1.0 * len(names) + 2.5, 0.7 * len(names) + 1.8))
    ax.imshow(np.nan_to_num(shares), cmap="Blues", vmin=0, vmax=1)
    _annotate(ax, shares, ".0%", 7)
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), [f"{n} ({c})" for n, c in zip(names, counts, strict=True)], fontsize=7)
    ax.set(xlabel="segment after", ylabel="segment before (customers)", title=title)
    return _png(fig)


def segment_plot(table: Sequence[Mapping], title: str) -> bytes:
    """The segment table as bars: per segment (with its size), mean predicted against actual
    churn and mean predicted against actual value (``table``: metrics.json's segment rows)."""
    rows = [r for r in table if r.get("customers")]
    names = [f"{r['segment']} ({r['customers']:,})" for r in rows]
    tasks = [k.removeprefix("predicted_") for k in (rows[0] if rows else {}) if k.startswith("predicted_")]
    pairs = [(k, f"predicted_{k}", f"actual_{k}") for k in tasks]
    fig, axes = plt.subplots(1, max(len(pairs), 1), figsize=(5.2 * max(len(pairs), 1), 0.45 * len(rows) + 1.8), squeeze=False)
    y = np.arange(len(rows))
    for ax, (what, predicted, actual) in zip(axes[0], pairs, strict=False):
        ax.barh(y - 0.2, [r[predicted] for r in rows], 0.4, label="predicted (mean)")
        ax.barh(y + 0.2, [r[actual] for r in rows], 0.4, label="actual (mean)")
        ax.set_yticks(y, names, fontsize=8)
        ax.invert_yaxis()
        unit = registry.TASKS[what].mean_unit if what in registry.TASKS else "mean"
        ax.set(xlabel=unit, title=what)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _png(fig)
