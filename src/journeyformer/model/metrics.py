"""torchmetrics objects, one collection per stage and task, named ``stage/task/metric``."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, MeanSquaredError, Metric, MetricCollection, SpearmanCorrCoef
from torchmetrics.classification import (
    BinaryAUROC,
    BinaryAveragePrecision,
    MulticlassAccuracy,
    MulticlassF1Score,
)
from torchmetrics.utilities import dim_zero_cat

from journeyformer.data.sequences import IGNORE_INDEX
from journeyformer.evaluation.metrics import normalized_gini


class NormalizedGini(Metric):
    """Normalized Gini of the target ordered by the prediction (see evaluation.metrics)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, preds: Tensor, target: Tensor) -> None:
        self.preds.append(preds.detach().float())
        self.target.append(target.detach().float())

    def compute(self) -> Tensor:
        g = normalized_gini(dim_zero_cat(self.preds).cpu().numpy(), dim_zero_cat(self.target).cpu().numpy())
        return torch.tensor(g, dtype=torch.float32)


def reciprocal_rank(logits: Tensor, target: Tensor) -> Tensor:
    """(B, A), (B,) -> (B,) 1 / rank of the true class (ties count against the model)."""
    true = logits.gather(1, target[:, None])
    return 1.0 / (logits >= true).sum(1).float()


def task_metrics(tasks: list[str], n_actions: int, n_stages: int) -> nn.ModuleDict:
    """task -> MetricCollection for one stage (train, val or test)."""
    make = {
        "next_action": lambda: MetricCollection(
            {
                "acc@1": MulticlassAccuracy(n_actions, top_k=1, average="micro", ignore_index=IGNORE_INDEX),
                "acc@5": MulticlassAccuracy(
                    n_actions, top_k=min(5, n_actions), average="micro", ignore_index=IGNORE_INDEX
                ),
            }
        ),
        "churn": lambda: MetricCollection(
            {"auroc": BinaryAUROC(), "auprc": BinaryAveragePrecision(), "brier": MeanSquaredError()}
        ),
        "stage": lambda: MetricCollection(
            {
                "accuracy": MulticlassAccuracy(n_stages, average="micro"),
                "macro_f1": MulticlassF1Score(n_stages, average="macro"),
            }
        ),
        "value": lambda: MetricCollection({"spearman": SpearmanCorrCoef(), "gini": NormalizedGini()}),
    }
    out = nn.ModuleDict({task: make[task]() for task in tasks})
    if "next_action" in tasks:
        out["next_action_mrr"] = MeanMetric()
    return out
