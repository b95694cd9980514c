"""Next action: which action the customer takes first within the horizon."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from journeyformer.data.features.vocab import PAD_ID, UNK_ID
from journeyformer.data.labels.lifecycle import IGNORE_INDEX, LabelWindow
from journeyformer.metrics.scores import accuracy_at_k, mean_reciprocal_rank
from journeyformer.tasks.base import (
    DISTRIBUTION,
    Baseline,
    Output,
    Plot,
    Sizes,
    Task,
    TaskContext,
    lists,
)
from journeyformer.tasks.baselines import MarkovChain, MostFrequentAction
from journeyformer.tasks.boosting import Boosted

if TYPE_CHECKING:
    from torch import Tensor


def top_actions(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, A) next-action probabilities -> ids (N, k) and probabilities (N, k), best first.

    ``<pad>`` and ``<unk>`` are never proposed (their probability is left as it is, not spread
    over the others, so the columns stay the model's own probabilities).
    """
    scores = probs.copy()
    scores[:, [PAD_ID, UNK_ID]] = -1.0
    k = max(1, min(k, scores.shape[1] - 2))
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    picked = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1)
    return ids, np.take_along_axis(probs, ids, axis=1)


class NextAction(Task):
    """Label: vocabulary id of the first action in the horizon (IGNORE_INDEX when none; such
    samples are left out of the loss and the metrics)."""

    name = "next_action"
    default_weight = 1.0
    headline = "acc@1"
    metric_output = "next_action_probs"
    boosting = {"objective": "multiclass", "metric": "multi_logloss"}
    next_event = True

    def label(self, window: LabelWindow) -> np.ndarray:
        return window.facts["next_action"]

    def label_mask(self, y: np.ndarray) -> np.ndarray:
        """Samples with no action in the horizon (IGNORE_INDEX) have no label."""
        return np.asarray(y) != IGNORE_INDEX

    def head_size(self, sizes: Sizes) -> int:
        return sizes.n_actions

    def loss(self, raw: Tensor, target: Tensor) -> Tensor:
        import torch.nn.functional as F

        labelled = target != IGNORE_INDEX
        if not labelled.any():
            return raw.sum() * 0.0
        return F.cross_entropy(raw[labelled], target[labelled])

    def outputs(self, sizes: Sizes) -> tuple[Output, ...]:
        return (Output("next_action_probs", (sizes.n_actions,), DISTRIBUTION),)

    def postprocess(self, raw: Tensor, temperature: Tensor | None) -> dict[str, Tensor]:
        return {"next_action_probs": raw.softmax(-1)}

    def score(self, prediction: np.ndarray, y: np.ndarray) -> dict[str, float]:
        return {
            "acc@1": accuracy_at_k(prediction, y, 1),
            "acc@5": accuracy_at_k(prediction, y, 5),
            "mrr": mean_reciprocal_rank(prediction, y),
        }

    def headline_score(self, prediction: np.ndarray, y: np.ndarray) -> float:
        return float(accuracy_at_k(prediction, y, 1))

    def baselines(self) -> tuple[Baseline, ...]:
        return (MostFrequentAction(), MarkovChain(), Boosted(self))

    def columns(self, ctx: TaskContext) -> dict[str, pl.DataType]:
        return {
            "next_action": pl.String,
            "next_action_probability": pl.Float32,
            "top_actions": pl.List(pl.String),
            "top_action_probabilities": pl.List(pl.Float32),
        }

    def column_values(self, outputs: Mapping[str, np.ndarray], ctx: TaskContext) -> dict[str, Any]:
        actions = np.asarray(ctx.actions, dtype=object)
        ids, probs = top_actions(outputs["next_action_probs"], ctx.top_k)
        return {
            "next_action": actions[ids[:, 0]],
            "next_action_probability": probs[:, 0],
            "top_actions": lists(actions[ids].astype(str), pl.String),
            "top_action_probabilities": lists(probs, pl.Float32),
        }

    def plots(
        self,
        y: np.ndarray,
        outputs: Mapping[str, np.ndarray],
        baselines: Mapping[str, np.ndarray],
        ctx: TaskContext,
    ) -> list[Plot]:
        scores = {"model": outputs["next_action_probs"], **baselines}
        return [
            Plot(
                "next_action_accuracy_at_k.png",
                "Next action: accuracy at k = 1..10",
                "accuracy_at_k_curve",
                {"y": y, "scores": scores},
            )
        ]
