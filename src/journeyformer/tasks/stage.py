"""Lifecycle stage at the end of the horizon (the rules live in journeyformer.data.labels.lifecycle)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from journeyformer.data.features.sequences import Sequences
from journeyformer.metrics.scores import macro_f1, per_class_recall
from journeyformer.tasks.base import (
    DISTRIBUTION,
    Arrays,
    Baseline,
    DecisionData,
    Output,
    Plot,
    Sizes,
    Table,
    Task,
    TaskContext,
)
from journeyformer.tasks.boosting import Boosted

if TYPE_CHECKING:
    from torch import Tensor


def _ids(prediction: np.ndarray) -> np.ndarray:
    """(N, S) scores or (N,) stage ids -> (N,) stage ids."""
    return prediction.argmax(axis=1) if prediction.ndim == 2 else prediction


class Stage(Task):
    """Label: index into STAGES of the customer's stage at cutoff + horizon."""

    name = "stage"
    default_weight = 1.0
    metrics = {
        "accuracy": lambda p, y: np.mean(_ids(p) == y),
        "macro_f1": lambda p, y: macro_f1(_ids(p), y),
    }
    headline = "macro_f1"
    metric_output = "stage_probs"
    # Stages persist and macro-F1 rewards the rare ones: the argmax is shifted per stage and
    # towards the stage now where that gains on held-out validation samples.
    decision_rule = True
    boosting = {"objective": "multiclass", "metric": "multi_logloss"}

    def head_size(self, sizes: Sizes) -> int:
        return sizes.n_stages

    def loss(self, raw: Tensor, target: Tensor) -> Tensor:
        import torch.nn.functional as F

        return F.cross_entropy(raw, target)

    def outputs(self, sizes: Sizes) -> tuple[Output, ...]:
        return (Output("stage_probs", (sizes.n_stages,), DISTRIBUTION),)

    def postprocess(self, raw: Tensor, temperature: Tensor | None) -> dict[str, Tensor]:
        return {"stage_probs": raw.softmax(-1)}

    def baselines(self) -> tuple[Baseline, ...]:
        return (CurrentStage(), Boosted(self))

    def columns(self, ctx: TaskContext) -> dict[str, pl.DataType]:
        return {"stage": pl.String, **{f"stage_probability_{s}": pl.Float32 for s in ctx.stages}}

    def column_values(self, outputs: Arrays, ctx: TaskContext) -> dict[str, Any]:
        probs = outputs["stage_probs"]
        stages = np.asarray(ctx.stages, dtype=object)
        return {
            "stage": stages[probs.argmax(axis=1)],
            **{f"stage_probability_{s}": probs[:, i] for i, s in enumerate(ctx.stages)},
        }

    def decisions(self, d: DecisionData) -> dict[str, Any]:
        """``stage_recall``: recall per true stage of the model and of the stage now."""
        y, n = d.test.labels[self.name], len(d.stages)  # type: ignore[index]
        model = per_class_recall(d.outputs["stage_probs"].argmax(1), y, n)
        current = per_class_recall(d.test.stage_now, y, n)
        return {
            "stage_recall": {
                "model": dict(zip(d.stages, model, strict=True)),
                "current_stage": dict(zip(d.stages, current, strict=True)),
            }
        }

    def decision_tables(self, metrics: Mapping[str, Any]) -> list[Table]:
        if "stage_recall" not in metrics:
            return []
        names = list(next(iter(metrics["stage_recall"].values())))
        rows = [[who, *[by[s] for s in names]] for who, by in metrics["stage_recall"].items()]
        return [Table("Recall per true stage", ["", *names], rows)]

    def plots(self, y: np.ndarray, outputs: Arrays, baselines: Arrays, ctx: TaskContext) -> list[Plot]:
        pred = outputs["stage_probs"].argmax(1)
        return [
            Plot(
                "stage_confusion.png",
                "Stage: confusion matrix, normalised by true stage",
                "stage_confusion",
                {"y": y, "pred": pred, "names": list(ctx.stages)},
            )
        ]


class CurrentStage(Baseline):
    """The current stage carries over."""

    name = "current_stage"

    def predict(self, seqs: Sequences) -> np.ndarray:
        return seqs.stage_now.copy()
