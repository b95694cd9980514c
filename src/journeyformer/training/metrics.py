"""Logged validation metrics: each task's own NumPy ``score``, accumulated over an epoch.

The ``val/<task>/<metric>`` values are computed by the same function as the reported test
metrics and the baselines' (:meth:`journeyformer.tasks.base.Task.score`): one definition.
Predictions and labels are gathered across DDP ranks ("cat" states) before scoring.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from journeyformer.tasks.base import Task


class TaskScore(Metric):
    """Collects a task's metric output and labels; :meth:`compute` -> metric name -> value."""

    full_state_update = False

    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task = task
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, preds: Tensor, target: Tensor) -> None:
        self.preds.append(preds.detach().float())
        self.target.append(target.detach())

    def compute(self) -> dict[str, Tensor]:
        preds = dim_zero_cat(self.preds).cpu().numpy()
        target = dim_zero_cat(self.target).cpu().numpy()
        scores = self.task.score(preds, target)
        return {name: torch.tensor(value, dtype=torch.float32) for name, value in scores.items()}
