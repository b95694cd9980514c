"""The Transformer encoder: pre-LayerNorm blocks with causal attention over a customer's events.

Causal attention lets every position be trained to predict the next event (many training
signals per sequence) and means a prefix of a journey is encoded the same way whatever follows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from journeyformer.model.config import ModelConfig


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, T, D), mask (B, 1, T, T) additive (0 = may attend) -> (B, T, D)."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        # (B, T, D) -> (B, H, T, D/H)
        q, k, v = (z.reshape(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask.to(q.dtype), dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-LN: x + attn(LN(x)), then x + mlp(LN(x)); stable without warm-up tricks."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.d_ff),
            nn.GELU(),
            nn.Linear(cfg.d_ff, cfg.d_model),
            nn.Dropout(cfg.dropout),
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.ln1(x), mask))
        return x + self.mlp(self.ln2(x))


def attention_mask(lengths: Tensor, t: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """(B, 1, T, T) additive mask: 0 where a query may attend (causal AND the key is a real
    event), a large negative number elsewhere. Built once per forward and added inside
    attention, which exports to one Add per layer instead of a boolean Where per layer. Key 0
    is always real, so no row is fully masked."""
    pos = torch.arange(t, device=lengths.device)
    causal = pos[None, :] <= pos[:, None]  # (T, T): query i sees keys j <= i
    key_real = pos[None, :] < lengths[:, None]  # (B, T)
    allowed = (causal[None, :, :] & key_real[:, None, :])[:, None]
    return torch.zeros(allowed.shape, dtype=dtype, device=lengths.device).masked_fill(
        ~allowed, torch.finfo(dtype).min
    )


class JourneyEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x (B, T, D) embedded events, lengths (B,) -> hidden states (B, T, D)."""
        mask = attention_mask(lengths, x.shape[1], x.dtype)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x)
