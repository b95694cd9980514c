"""One head per enabled task, on the customer representation; each task sizes its own."""

from __future__ import annotations

from torch import nn

from journeyformer.model.config import ModelConfig
from journeyformer.model.dropout import Dropout
from journeyformer.tasks import registry


def mlp_head(d_model: int, out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), Dropout(dropout), nn.Linear(d_model, out))


def build_heads(cfg: ModelConfig) -> nn.ModuleDict:
    """task name -> head (B, D) -> (B, task.head_size) raw logits/parameters."""
    return nn.ModuleDict(
        {t.name: mlp_head(cfg.d_model, t.head_size(cfg), cfg.dropout) for t in registry.enabled(cfg.tasks)}
    )
