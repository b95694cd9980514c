"""Event embedding: categorical ids and numeric features of one event -> a d_model vector."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from journeyformer.data.features.definitions import EVENT_NUMERIC
from journeyformer.model.config import ModelConfig
from journeyformer.model.dropout import Dropout

# Bins of log_age and log_gap (log1p(seconds) / 10, see
# data.features.definitions.numeric_event_features): width 0.2 in log1p(seconds) (about 22% per
# bin), from 1 minute up; 48 bins reach about 1.7 years.
_TIME_BINS = 48
_TIME_BIN_FROM = 0.4  # log1p(60 s) / 10 ~ 0.41
_TIME_BIN_WIDTH = 0.02


class EventEmbedding(nn.Module):
    """Sum of one embedding per categorical column, a projection of the numeric features and a
    learned position embedding.

    ``positions="recency"`` (default): the position counted back from the most recent event,
    so "the last event" has the same position embedding for every customer, whatever their
    length, which is what a right-padded batch needs. ``"causal"``: the position from the
    first kept event, and the event's age before the cutoff (``log_age``) left out of the
    numeric input, so an event's embedding does not depend on what follows it.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.categorical = nn.ModuleList(
            nn.Embedding(size, cfg.d_model, padding_idx=0) for size in cfg.categorical_sizes
        )
        self.numeric = nn.Linear(cfg.n_numeric, cfg.d_model)
        self.recency_position = nn.Embedding(cfg.max_len, cfg.d_model)
        self.causal = cfg.positions == "causal"
        if self.causal:  # a buffer only here: the default's checkpoints and graphs stay as they were
            keep = torch.ones(cfg.n_numeric)
            keep[_AGE] = 0.0
            self.register_buffer("numeric_keep", keep)
        # Time-aware input: a learned vector per log-binned age (time before the cutoff) and
        # gap (time since the previous event), so attention can tell "last week" from "last
        # quarter" without reading it off one linear feature.
        self.time_bins = cfg.time_bins
        if cfg.time_bins:
            self.age_bin = nn.Embedding(_TIME_BINS, cfg.d_model)
            self.gap_bin = nn.Embedding(_TIME_BINS, cfg.d_model)
        if cfg.item_query_gap:  # model.item_query_gap (model/config.py)
            self.query_gap_bin = nn.Embedding(_TIME_BINS, cfg.d_model)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.dropout = Dropout(cfg.dropout)
        self.max_len = cfg.max_len

    def forward(self, categorical: Tensor, numeric: Tensor, lengths: Tensor) -> Tensor:
        """categorical (B, T, C) int64, numeric (B, T, F), lengths (B,) -> (B, T, D)."""
        x = self.numeric(numeric * self.numeric_keep if self.causal else numeric)  # (B, T, D)
        for i, table in enumerate(self.categorical):
            x = x + table(categorical[..., i])
        t = categorical.shape[1]
        steps = torch.arange(t, device=lengths.device)
        if self.causal:
            x = x + self.recency_position(steps.clamp(max=self.max_len - 1))[None]
        else:
            back = (lengths[:, None] - 1 - steps[None, :]).clamp(0, self.max_len - 1)  # (B, T)
            x = x + self.recency_position(back)
        if self.time_bins:
            x = x + self.gap_bin(_bin(numeric[..., _GAP]))
            if not self.causal:
                x = x + self.age_bin(_bin(numeric[..., _AGE]))
        return self.dropout(self.norm(x))

    def query_gap(self, numeric: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The gap vectors of the next-item queries (``model.item_query_gap``): numeric
        (B, T, F) -> (B, T - 1, D), position i's from the gap of event i + 1; with ``lengths``
        (B,): (B, D), the cutoff's, from the age of each row's last event."""
        if lengths is None:
            return self.query_gap_bin(_bin(numeric[:, 1:, _GAP]))
        last = (lengths - 1).clamp(min=0)[:, None]  # (B, 1)
        return self.query_gap_bin(_bin(numeric[..., _AGE].gather(1, last).squeeze(1)))


_AGE, _GAP = EVENT_NUMERIC.index("log_age"), EVENT_NUMERIC.index("log_gap")


def _bin(log_seconds: Tensor) -> Tensor:
    """(B, T) log1p(seconds) / 10 -> (B, T) int64 bin in [0, _TIME_BINS)."""
    b = torch.floor((log_seconds - _TIME_BIN_FROM) / _TIME_BIN_WIDTH)
    return b.clamp(0, _TIME_BINS - 1).to(torch.int64)
