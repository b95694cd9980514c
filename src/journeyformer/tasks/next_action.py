"""Next action: which action the customer takes first within the horizon."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from journeyformer.data.features.sequences import Sequences
from journeyformer.data.features.vocab import PAD_ID, UNK_ID
from journeyformer.data.labels.lifecycle import IGNORE_INDEX
from journeyformer.metrics.scores import accuracy_at_k, mean_reciprocal_rank
from journeyformer.tasks.base import (
    DISTRIBUTION,
    Arrays,
    Baseline,
    BaselineContext,
    Output,
    Plot,
    Sizes,
    Task,
    TaskContext,
    lists,
)
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
    metrics = {
        "acc@1": lambda p, y: accuracy_at_k(p, y, 1),
        "acc@5": lambda p, y: accuracy_at_k(p, y, 5),
        "mrr": mean_reciprocal_rank,
    }
    headline = "acc@1"
    metric_output = "next_action_probs"
    boosting = {"objective": "multiclass", "metric": "multi_logloss"}
    next_event = True

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

    def baselines(self) -> tuple[Baseline, ...]:
        return (MostFrequentAction(), MarkovChain(), Boosted(self))

    def columns(self, ctx: TaskContext) -> dict[str, pl.DataType]:
        return {
            "next_action": pl.String,
            "next_action_probability": pl.Float32,
            "top_actions": pl.List(pl.String),
            "top_action_probabilities": pl.List(pl.Float32),
        }

    def column_values(self, outputs: Arrays, ctx: TaskContext) -> dict[str, Any]:
        actions = np.asarray(ctx.actions, dtype=object)
        ids, probs = top_actions(outputs["next_action_probs"], ctx.top_k)
        return {
            "next_action": actions[ids[:, 0]],
            "next_action_probability": probs[:, 0],
            "top_actions": lists(actions[ids].astype(str), pl.String),
            "top_action_probabilities": lists(probs, pl.Float32),
        }

    def plots(self, y: np.ndarray, outputs: Arrays, baselines: Arrays, ctx: TaskContext) -> list[Plot]:
        scores = {"model": outputs["next_action_probs"], **baselines}
        return [
            Plot(
                "next_action_accuracy_at_k.png",
                "Next action: accuracy at k = 1..10",
                "accuracy_at_k_curve",
                {"y": y, "scores": scores},
            )
        ]


def last_actions(seqs: Sequences) -> np.ndarray:
    """(N,) the action id of each sample's last kept event."""
    return seqs.categorical[seqs.offsets[1:] - 1, 0].astype(np.int64)


def action_counts(seqs: Sequences, n_actions: int) -> np.ndarray:
    """(N, A) how often each action occurs among the kept events, plus a tiny recency bonus so
    ties go to the most recent action."""
    rows = np.repeat(np.arange(len(seqs)), seqs.lengths)
    counts = np.zeros((len(seqs), n_actions))
    np.add.at(counts, (rows, seqs.categorical[:, 0]), 1.0)
    counts[np.arange(len(seqs)), last_actions(seqs)] += 0.5
    counts[:, [PAD_ID, UNK_ID]] = -1.0  # never predict padding/unknown
    return counts


class MostFrequentAction(Baseline):
    """The customer's most frequent past action."""

    name = "most_frequent_action"

    def predict(self, seqs: Sequences) -> np.ndarray:
        return action_counts(seqs, self.ctx.n_actions)


class MarkovChain(Baseline):
    """P(next action | last action), from consecutive pairs in the training sequences and
    from each training sample's last event to its label (add-one smoothing)."""

    name = "markov_chain"

    def fit(self, train: Sequences, ctx: BaselineContext) -> MarkovChain:
        assert train.labels is not None, "baselines are fitted on labelled training samples"
        y = train.labels["next_action"]
        n = ctx.n_actions
        counts = np.ones((n, n))
        same = np.repeat(np.arange(len(train)), train.lengths)
        a = train.categorical[:, 0].astype(np.int64)
        pair = same[1:] == same[:-1]
        np.add.at(counts, (a[:-1][pair], a[1:][pair]), 1.0)
        has = y >= 0
        np.add.at(counts, (last_actions(train)[has], y[has]), 1.0)
        counts[:, [PAD_ID, UNK_ID]] = 0.0
        self.transitions = counts / counts.sum(1, keepdims=True)  # (A, A) row-normalised
        return self

    def predict(self, seqs: Sequences) -> np.ndarray:
        return self.transitions[last_actions(seqs)]
