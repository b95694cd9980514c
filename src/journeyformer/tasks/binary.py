"""Binary tasks (a probability of an event in the horizon), and churn, the first of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from journeyformer.data.labels.lifecycle import LabelWindow
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
    Baseline,
    DecisionData,
    Output,
    Plot,
    Sizes,
    Table,
    Task,
    TaskContext,
)
from journeyformer.tasks.baselines import DaysSinceLastActivity, RfmLogisticRegression
from journeyformer.tasks.boosting import Boosted

if TYPE_CHECKING:
    from torch import Tensor


class BinaryTask(Task):
    """A yes/no label (float 0/1) -> ``<name>_probability``, temperature-calibrated on
    validation data after training. A subclass sets ``name`` and :meth:`label`; its baselines
    are a logistic regression on recency, frequency, monetary and tenure, and LightGBM."""

    headline = "auroc"
    calibrated = True
    boosting = {"objective": "binary", "metric": "binary_logloss"}

    @property
    def output_name(self) -> str:
        return f"{self.name}_probability"

    @property
    def metric_output(self) -> str:  # type: ignore[override]
        return self.output_name

    @property
    def mean_output(self) -> str:  # type: ignore[override]
        return self.output_name

    mean_unit = "probability / rate"

    def head_size(self, sizes: Sizes) -> int:
        return 1

    def loss(self, raw: Tensor, target: Tensor) -> Tensor:
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(raw[:, 0], target.to(raw.dtype))

    def outputs(self, sizes: Sizes) -> tuple[Output, ...]:
        return (Output(self.output_name, (), PROBABILITY),)

    def postprocess(self, raw: Tensor, temperature: Tensor | None) -> dict[str, Tensor]:
        logit = raw[:, 0] if temperature is None else raw[:, 0] / temperature
        return {self.output_name: logit.sigmoid()}

    def score(self, prediction: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """AUROC and AUPRC for any score; Brier and ECE when the scores are probabilities."""
        prediction = np.asarray(prediction)
        out = {"auroc": auroc(prediction, y), "auprc": auprc(prediction, y)}
        if len(prediction) and prediction.min() >= 0 and prediction.max() <= 1:
            out["brier"] = brier(prediction, y)
            out["ece"] = expected_calibration_error(prediction, y)
        return out

    def headline_score(self, prediction: np.ndarray, y: np.ndarray) -> float:
        return float(auroc(np.asarray(prediction), y))

    def baselines(self) -> tuple[Baseline, ...]:
        return (RfmLogisticRegression(self.name), Boosted(self))

    def columns(self, ctx: TaskContext) -> dict[str, pl.DataType]:
        return {self.output_name: pl.Float32}

    def column_values(self, outputs: Mapping[str, np.ndarray], ctx: TaskContext) -> dict[str, Any]:
        return {self.output_name: outputs[self.output_name]}

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

    def plots(
        self,
        y: np.ndarray,
        outputs: Mapping[str, np.ndarray],
        baselines: Mapping[str, np.ndarray],
        ctx: TaskContext,
    ) -> list[Plot]:
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

    def label(self, window: LabelWindow) -> np.ndarray:
        return window.facts["churn"]

    def baselines(self) -> tuple[Baseline, ...]:
        return (DaysSinceLastActivity(), *super().baselines())
