"""Value: spend within the horizon, with a zero-inflated log-normal head (Wang et al., 2019)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from journeyformer.data.features.sequences import Sequences
from journeyformer.metrics.scores import normalized_gini, spearman
from journeyformer.tasks.base import (
    AMOUNT,
    PROBABILITY,
    Arrays,
    Baseline,
    Plot,
    Sizes,
    Task,
    TaskContext,
)
from journeyformer.tasks.boosting import Boosted

if TYPE_CHECKING:
    from torch import Tensor

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def ziln_parts(raw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(B, 3) raw value-head output -> logit of any spend, mu and sigma of log(spend)."""
    import torch.nn.functional as F

    logit, mu, sigma_raw = raw.unbind(-1)
    sigma = F.softplus(sigma_raw) + 1e-3
    return logit, mu, sigma


def ziln_expected(raw: Tensor) -> tuple[Tensor, Tensor]:
    """Probability of any spend (B,) and expected spend (B,) in currency units.

    E[spend] = p * exp(mu + sigma^2 / 2), the mean of the zero-inflated log-normal.
    """
    logit, mu, sigma = ziln_parts(raw)
    p = logit.sigmoid()
    # Clamp the exponent so an untrained head cannot overflow float32.
    return p, p * (mu + 0.5 * sigma**2).clamp(max=30.0).exp()


def ziln_loss(raw: Tensor, value: Tensor) -> Tensor:
    """Negative log-likelihood of the zero-inflated log-normal, mean over B.

    value (B,) >= 0 in currency units: BCE for "any spend" plus the log-normal NLL of the
    amount where it is positive.
    """
    import torch
    import torch.nn.functional as F

    logit, mu, sigma = ziln_parts(raw)
    positive = (value > 0).to(raw.dtype)
    bce = F.binary_cross_entropy_with_logits(logit, positive, reduction="none")
    log_v = torch.log(value.clamp(min=1e-6))
    nll = log_v + torch.log(sigma) + _LOG_SQRT_2PI + 0.5 * ((log_v - mu) / sigma) ** 2
    return (bce + positive * nll).mean()


class Value(Task):
    """Label: value-action amount within the horizon (currency units, >= 0)."""

    name = "value"
    default_weight = 0.5
    metrics = {
        "spearman": spearman,
        "gini": normalized_gini,
        "mae": lambda p, y: np.mean(np.abs(p - y)),
    }
    headline = "spearman"
    metric_output = "expected_value"
    scalars = {"spend_probability": PROBABILITY, "expected_value": AMOUNT}
    scaled_output = "expected_value"
    mean_output = "expected_value"
    mean_unit = "spend in the horizon"
    # Tweedie with variance power 1.5: many zeros and a long tail of spend.
    boosting = {"objective": "tweedie", "tweedie_variance_power": 1.5, "metric": "tweedie"}

    def unlearnable_reason(self, y: np.ndarray) -> str | None:
        """Nothing to learn when no training sample spends (any spend at all is something)."""
        if not (np.asarray(y) > 0).any():
            return "the value target is zero for every training sample"
        return None

    def head_size(self, sizes: Sizes) -> int:
        return 3

    def loss(self, raw: Tensor, target: Tensor) -> Tensor:
        return ziln_loss(raw, target.to(raw.dtype))

    def postprocess(self, raw: Tensor, temperature: Tensor | None) -> dict[str, Tensor]:
        p, expected = ziln_expected(raw)
        return {"spend_probability": p, "expected_value": expected}

    def baselines(self) -> tuple[Baseline, ...]:
        return (SpendRate(), Boosted(self))

    def plots(self, y: np.ndarray, outputs: Arrays, baselines: Arrays, ctx: TaskContext) -> list[Plot]:
        return [
            Plot(
                "value.png",
                "Value: by decile of predicted value, and cumulative gain",
                "value_plots",
                {"y": y, "model": outputs["expected_value"], "baselines": dict(baselines)},
            )
        ]


class SpendRate(Baseline):
    """Expected spend: past spend per day of tenure x horizon."""

    name = "spend_rate"

    def predict(self, seqs: Sequences) -> np.ndarray:
        s = seqs.summary
        spend = s["spend"].cast(float).to_numpy()
        tenure = s["tenure_days"].cast(float).to_numpy()
        return spend / np.maximum(tenure, 1.0) * self.ctx.horizon_days
