"""Event embedding: categorical ids and numeric features of one event -> a d_model vector."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from journeyformer.model.config import ModelConfig


class EventEmbedding(nn.Module):
    """Sum of one embedding per categorical column, a projection of the numeric features and a
    learned embedding of the position counted back from the most recent event.

    Counting back from the end means "the last event" has the same position embedding for
    every customer, whatever their length, which is what a right-padded batch needs.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.categorical = nn.ModuleList(
            nn.Embedding(size, cfg.d_model, padding_idx=0) for size in cfg.categorical_sizes
        )
        self.numeric = nn.Linear(cfg.n_numeric, cfg.d_model)
        self.recency_position = nn.Embedding(cfg.max_len, cfg.d_model)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.max_len = cfg.max_len

    def forward(self, categorical: Tensor, numeric: Tensor, lengths: Tensor) -> Tensor:
        """categorical (B, T, C) int64, numeric (B, T, F), lengths (B,) -> (B, T, D)."""
        x = self.numeric(numeric)  # (B, T, D)
        for i, table in enumerate(self.categorical):
            x = x + table(categorical[..., i])
        t = categorical.shape[1]
        steps = torch.arange(t, device=lengths.device)
        back = (lengths[:, None] - 1 - steps[None, :]).clamp(0, self.max_len - 1)  # (B, T)
        x = x + self.recency_position(back)
        return self.dropout(self.norm(x))
