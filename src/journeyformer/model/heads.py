"""Task heads on the customer representation, and the zero-inflated log-normal value head."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from journeyformer.model.config import ModelConfig

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def mlp_head(d_model: int, out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_model, out))


def build_heads(cfg: ModelConfig) -> nn.ModuleDict:
    """One head per enabled task, keyed by task name; outputs are logits/raw parameters."""
    sizes = {"next_action": cfg.n_actions, "churn": 1, "stage": cfg.n_stages, "value": 3}
    return nn.ModuleDict({task: mlp_head(cfg.d_model, sizes[task], cfg.dropout) for task in cfg.tasks})


def ziln_parts(raw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(B, 3) raw value-head output -> logit of any spend, mu and sigma of log(spend)."""
    logit, mu, sigma_raw = raw.unbind(-1)
    sigma = F.softplus(sigma_raw) + 1e-3
    return logit, mu, sigma


def ziln_expected(raw: Tensor) -> tuple[Tensor, Tensor]:
    """Probability of any spend (B,) and expected spend (B,) in currency units.

    E[spend] = p * exp(mu + sigma^2 / 2), the mean of the zero-inflated log-normal.
    """
    logit, mu, sigma = ziln_parts(raw)
    p = torch.sigmoid(logit)
    # Clamp the exponent so an untrained head cannot overflow float32.
    return p, p * torch.exp((mu + 0.5 * sigma**2).clamp(max=30.0))


def ziln_loss(raw: Tensor, value: Tensor) -> Tensor:
    """Negative log-likelihood of the zero-inflated log-normal (Wang et al., 2019), mean over B.

    value (B,) >= 0 in currency units: BCE for "any spend" plus the log-normal NLL of the
    amount where it is positive.
    """
    logit, mu, sigma = ziln_parts(raw)
    positive = (value > 0).to(raw.dtype)
    bce = F.binary_cross_entropy_with_logits(logit, positive, reduction="none")
    log_v = torch.log(value.clamp(min=1e-6))
    nll = log_v + torch.log(sigma) + _LOG_SQRT_2PI + 0.5 * ((log_v - mu) / sigma) ** 2
    return (bce + positive * nll).mean()
