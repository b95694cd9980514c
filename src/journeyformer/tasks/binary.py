"""Binary tasks (a probability of an event in the horizon), and churn, the first of them, with
their simple baselines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from journeyformer.data.features.sequences import Sequences
from journeyformer.metrics.calibration import apply_temperature
from journeyformer.metrics.scores import (
    auprc,
    auroc,
    best_f1_threshold,
    brier,
    expected_calibration_error,
    threshold_metrics,
)
from journeyformer.tasks.base import (
    PROBABILITY,
    Arrays,
    Baseline,
    BaselineContext,
    DecisionData,
    Plot,
    Sizes,
    Table,
    Task,
    TaskContext,
)
from journeyformer.tasks.boosting import Boosted

if TYPE_CHECKING:
    from torch import Tensor


class BinaryTask(Task):
    """A yes/no label (float 0/1) -> ``<name>_probability``, temperature-calibrated on
    validation data after training. A subclass sets ``name`` and :meth:`label`; its baselines
    are a logistic regression on recency, frequency, monetary and tenure, and LightGBM."""

    metrics = {"auroc": auroc, "auprc": auprc}
    headline = "auroc"
    calibrated = True
    boosting = {"objective": "binary", "metric": "binary_logloss"}
    mean_unit = "probability / rate"
    output_name: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's one output, ``<name>_probability``, is its metric and mean output."""
        super().__init_subclass__(**kwargs)
        cls.output_name = cls.metric_output = cls.mean_output = f"{cls.name}_probability"
        cls.scalars = {cls.output_name: PROBABILITY}

    def head_size(self, sizes: Sizes) -> int:
        return 1

    def loss(self, raw: Tensor, target: Tensor) -> Tensor:
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(raw[:, 0], target.to(raw.dtype))

    def postprocess(self, raw: Tensor, temperature: Tensor | None) -> dict[str, Tensor]:
        logit = raw[:, 0] if temperature is None else raw[:, 0] / temperature
        return {self.output_name: logit.sigmoid()}

    def score(self, prediction: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """AUROC and AUPRC for any score; Brier and ECE when the scores are probabilities."""
        prediction = np.asarray(prediction)
        out = super().score(prediction, y)
        if len(prediction) and prediction.min() >= 0 and prediction.max() <= 1:
            out["brier"] = brier(prediction, y)
            out["ece"] = expected_calibration_error(prediction, y)
        return out

    def baselines(self) -> tuple[Baseline, ...]:
        return (RfmLogisticRegression(self.name), Boosted(self))

    def decisions(self, d: DecisionData) -> dict[str, Any]:
        """``<name>_thresholds``: precision, recall and F1 at 0.5 and at the F1-best threshold
        chosen on validation data, for the model and the RFM logistic regression;
        ``calibration``: ECE and Brier before and after temperature scaling."""
        p, y = d.outputs[self.output_name], d.test.labels[self.name]  # type: ignore[index]
        p_val, y_val = d.val_outputs[self.output_name], d.val.labels[self.name]  # type: ignore[index]
        rules = {"model": (p, p_val)}
        lr = RfmLogisticRegression.name
        if lr in d.baselines:
            rules[lr] = (d.baselines[lr], d.val_baselines[lr])
        thresholds = {}
        for who, (test_p, val_p) in rules.items():
            best = best_f1_threshold(val_p, y_val)
            thresholds[who] = {"at_0.5": threshold_metrics(test_p, y, 0.5), "at_val_best_f1": threshold_metrics(test_p, y, best)}
        before = apply_temperature(p, 1.0 / d.temperature)
        calibration = {
            "temperature": d.temperature,
            "ece_before": expected_calibration_error(before, y),
            "ece_after": expected_calibration_error(p, y),
            "brier_before": float(np.mean((before - y) ** 2)),
            "brier_after": float(np.mean((p - y) ** 2)),
        }
        return {f"{self.name}_thresholds": thresholds, "calibration": {self.name: calibration}}

    def decision_tables(self, metrics: Mapping[str, Any]) -> list[Table]:
        title = self.name.replace("_", " ").capitalize()
        out = []
        c = metrics.get("calibration", {}).get(self.name)
        if c:
            rows = [["before", c["ece_before"], c["brier_before"]], [f"after (T = {c['temperature']:.3f})", c["ece_after"], c["brier_after"]]]
            out.append(Table(f"{title} calibration (temperature scaling fitted on validation data)", ["", "ECE", "Brier"], rows))
        if f"{self.name}_thresholds" in metrics:
            rows = [
                [who, key, v["threshold"], v["precision"], v["recall"], v["f1"]]
                for who, by in metrics[f"{self.name}_thresholds"].items()
                for key, v in by.items()
            ]
            out.append(Table(f"{title} decisions", ["model", "threshold rule", "threshold", "precision", "recall", "F1"], rows))
        return out

    def plots(self, y: np.ndarray, outputs: Arrays, baselines: Arrays, ctx: TaskContext) -> list[Plot]:
        title = self.name.replace("_", " ").capitalize()
        p = outputs[self.output_name]
        # Scores that are not probabilities are scaled to [0, 1] for the curves (same ranking).
        scaled = {n: s if s.min() >= 0 and s.max() <= 1 else s / max(s.max(), 1e-12) for n, s in baselines.items()}
        t = float(ctx.temperatures.get(self.name, 1.0))
        curves = {"model (calibrated)": p}
        if t != 1.0:
            curves["model before temperature scaling"] = apply_temperature(p, 1.0 / t)
        curves |= {n: s for n, s in baselines.items() if s.min() >= 0 and s.max() <= 1}
        return [
            Plot(
                f"{self.name}_curves.png",
                f"{title}: ROC and precision-recall, model and baselines",
                "binary_curves",
                {"y": y, "model": p, "baselines": scaled, "title": title},
            ),
            Plot(
                f"{self.name}_reliability.png",
                f"{title}: reliability diagram",
                "reliability_diagram",
                {"y": y, "probs": curves, "title": title},
            ),
        ]


class Churn(BinaryTask):
    """Label: 1 when the customer has no activity within the horizon."""

    name = "churn"
    default_weight = 1.0
    counted = True

    def baselines(self) -> tuple[Baseline, ...]:
        return (DaysSinceLastActivity(), *super().baselines())


def rfm_features(seqs: Sequences) -> np.ndarray:
    """(N, 4) log1p of recency (days), frequency (events), monetary (spend), tenure (days)."""
    s = seqs.summary
    cols = [s["recency_days"], s["n_events"], s["spend"], s["tenure_days"]]
    return np.log1p(np.stack([c.cast(float).to_numpy() for c in cols], axis=1).clip(0))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iters: int = 50) -> np.ndarray:
    """Newton-Raphson logistic regression with an intercept; returns weights (F + 1,)."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = np.hstack([np.ones((len(x), 1)), (x - mu) / sd])
    w = np.zeros(z.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-z @ w))
        grad = z.T @ (p - y) + l2 * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    # Fold the standardisation into the weights so predict needs only x.
    return np.concatenate([[w[0] - np.sum(w[1:] * mu / sd)], w[1:] / sd])


class DaysSinceLastActivity(Baseline):
    """Churn score: days since the last activity (the longer, the likelier)."""

    name = "days_since_last_activity"

    def predict(self, seqs: Sequences) -> np.ndarray:
        return seqs.summary["recency_days"].cast(float).to_numpy()


class RfmLogisticRegression(Baseline):
    """Probability of the binary ``label``: logistic regression on log recency, frequency,
    monetary, tenure."""

    name = "rfm_logistic_regression"

    def __init__(self, label: str = "churn") -> None:
        self.label = label
        self.weights = np.zeros(5)

    def fit(self, train: Sequences, ctx: BaselineContext) -> RfmLogisticRegression:
        assert train.labels is not None, "baselines are fitted on labelled training samples"
        self.weights = fit_logistic(rfm_features(train), train.labels[self.label].astype(np.float64))
        return self

    def predict(self, seqs: Sequences) -> np.ndarray:
        w = self.weights
        return 1 / (1 + np.exp(-(w[0] + rfm_features(seqs) @ w[1:])))
