"""Uplift: the effect of a campaign on each customer's retention and spend, from exposure logs.

Samples are cut at each eligible exposure of a randomised campaign
(:mod:`journeyformer.data.labels.exposure_samples`): features from the events before the exposure,
outcomes in the label horizon after it. The head has two arms sharing the encoder, each with
a retention logit and a zero-inflated log-normal spend (as the value head); the treated arm is
the control arm plus an effect, so the control part learns from every exposed sample and the
effect only from the contrast between the arms:

    raw (B, 7) = [retention logit control, retention effect,
                  ZILN control (any-spend logit, mu, sigma), effect on the any-spend logit, on mu]
    treated arm = control + effect (the spend's sigma is shared: an effect on it would move
                  the expected spend exp(mu + sigma^2 / 2) by a noisy, convex amount)

The loss is taken on the arm the customer was in only (the other arm's outcome is never
observed); randomisation makes each arm's fit an unbiased estimate of that arm's outcome given
the history, so their difference is the individual effect (a T-learner inside one network):

    uplift_retention = P(retained | treated) - P(retained | control)    (in [-1, 1])
    uplift_value     = E[spend | treated] - E[spend | control]          (currency units)

The label is (N, 3) float32: ``[arm, retained, spend]`` with arm 1 treatment, 0 control and
NaN for a sample that is no exposure (every ordinary sample): those count in no loss and no
metric. The head is off unless the training run has exposures (``data.exposures``); its
weight is ``model.tasks.uplift`` (null: 1.0 when exposures are given).

Metrics (held-out randomised samples only): Qini coefficient and AUUC of ``uplift_retention``
on retention (:mod:`journeyformer.metrics.uplift`); the headline is the Qini. Baseline: a
T-learner, LightGBM per arm on the aggregates (the one the uplift benchmark compares with).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from journeyformer.data.labels.lifecycle import LabelWindow
from journeyformer.metrics.uplift import auuc, qini_coefficient
from journeyformer.tasks.base import (
    AMOUNT,
    PROBABILITY,
    Baseline,
    BaselineContext,
    Metric,
    Sizes,
    Task,
)
from journeyformer.tasks.boosting import NATIVE_LOCK, Boosted, available
from journeyformer.tasks.value import ziln_expected, ziln_loss

if TYPE_CHECKING:
    from torch import Tensor

    from journeyformer.data.features.sequences import Sequences

log = logging.getLogger(__name__)

ARM, RETAINED, SPEND = range(3)  # columns of the (N, 3) label
VALUE_WEIGHT = 0.5  # the spend NLL beside the retention BCE, as the value head's default weight
EFFECT_L2 = 0.01  # weight of the squared effects in the loss (see Uplift.loss)
MIN_PER_ARM = 10  # fewer exposed training samples in an arm: nothing to learn


def no_exposure(n: int) -> np.ndarray:
    """(n, 3) labels of samples that are no exposure (arm NaN)."""
    return np.full((n, 3), np.nan, dtype=np.float32)


def _exposed(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    return np.isfinite(y[:, ARM]) if y.ndim == 2 and len(y) else np.zeros(len(y), dtype=bool)


def _effect(raw: Tensor) -> Tensor:
    """(B, 7) raw head output -> (B, 3) the treatment's effect on the ZILN parameters (any-spend
    logit, mu; none on sigma)."""
    import torch

    return torch.cat([raw[:, 5:7], torch.zeros_like(raw[:, :1])], dim=1)


def _on_exposed(metric: Callable[[np.ndarray, np.ndarray, np.ndarray], float]) -> Metric:
    """A metric of retention ``(y, t, score)`` -> one of ``(prediction, labels)`` on the exposed
    samples only (NaN without both arms)."""

    def score(prediction: np.ndarray, y: np.ndarray) -> float:
        y = np.asarray(y)
        exposed = _exposed(y)
        if not exposed.any() or len(np.unique(y[exposed, ARM])) < 2:
            return float("nan")
        p, y = np.asarray(prediction, float)[exposed], y[exposed]
        return metric(y[:, RETAINED], y[:, ARM].astype(int), p)

    return score


class Uplift(Task):
    """Two-arm retention and spend heads; outputs the treatment-minus-control difference."""

    name = "uplift"
    default_weight = 0.0  # off unless the run has exposures (the training job switches it on)
    needs_exposures = True  # learns from data.exposures only (jobs.train.exposure_weights)
    metrics = {"qini": _on_exposed(qini_coefficient), "auuc": _on_exposed(auuc)}  # held-out exposures
    headline = "qini"
    metric_output = "uplift_retention"
    scalars = {"uplift_retention": PROBABILITY, "uplift_value": AMOUNT}

    def label(self, window: LabelWindow) -> np.ndarray:
        # An ordinary sample is no exposure; exposure samples get their labels from the log.
        return no_exposure(len(window))

    def label_mask(self, y: np.ndarray) -> np.ndarray:
        return _exposed(y)

    def unlearnable_reason(self, y: np.ndarray) -> str | None:
        y = np.asarray(y)
        exposed = _exposed(y)
        if not exposed.any():
            return "no training sample is an exposure (set data.exposures to an exposure log)"
        arms = y[exposed, ARM]
        n_t, n_c = int((arms == 1).sum()), int((arms == 0).sum())
        if min(n_t, n_c) < MIN_PER_ARM:
            return f"the training exposures have {n_t} treated and {n_c} control samples (< {MIN_PER_ARM} in an arm)"
        if np.unique(y[exposed, RETAINED]).size < 2 and not (y[exposed, SPEND] > 0).any():
            return "every exposed training sample has the same outcome"
        return None

    # ---- model --------------------------------------------------------------------------
    def head_size(self, sizes: Sizes) -> int:
        return 7

    def loss(self, raw: Tensor, target: Tensor) -> Tensor:
        """Retention BCE plus ``VALUE_WEIGHT`` x the spend ZILN NLL, each on the arm the
        sample was in, plus ``EFFECT_L2`` x the squared effects; mean over the exposed samples
        of the batch (0 when there are none)."""
        import torch
        import torch.nn.functional as F

        target = target.to(raw.dtype)
        if target.ndim != 2:  # (B,) from a caller that has no exposure labels
            return raw.sum() * 0.0
        exposed = torch.isfinite(target[:, ARM])
        if not bool(exposed.any()):
            return raw.sum() * 0.0  # keeps the graph: a batch of ordinary samples adds nothing
        raw, target = raw[exposed], target[exposed]
        treated = (target[:, ARM] > 0.5).to(raw.dtype)
        logit = raw[:, 0] + treated * raw[:, 1]  # the effect enters for the treated only
        ziln = raw[:, 2:5] + treated[:, None] * _effect(raw)
        bce = F.binary_cross_entropy_with_logits(logit, target[:, RETAINED])
        # Shrink the effects towards none: only the treated customers' outcomes pin them (the
        # effect on mu only the treated spenders'), and unpinned they drift where the control
        # part is extrapolated, inflating E[spend | treated] far above the measured effect.
        shrink = raw[:, [1, 5, 6]].pow(2).sum(dim=1).mean()
        return bce + VALUE_WEIGHT * ziln_loss(ziln, target[:, SPEND].clamp(min=0)) + EFFECT_L2 * shrink

    def postprocess(self, raw: Tensor, temperature: Tensor | None) -> dict[str, Tensor]:
        control, effect = raw[:, 0], raw[:, 1]
        retention = (control + effect).sigmoid() - control.sigmoid()
        value = ziln_expected(raw[:, 2:5] + _effect(raw))[1] - ziln_expected(raw[:, 2:5])[1]
        return {"uplift_retention": retention, "uplift_value": value}

    def parity_scale(self, raw: Tensor) -> dict[str, Tensor]:
        """uplift_value is treated minus control expected spend: the larger of the two."""
        import torch

        treated, control = ziln_expected(raw[:, 2:5] + _effect(raw))[1], ziln_expected(raw[:, 2:5])[1]
        return {"uplift_value": torch.maximum(treated, control)}

    # ---- evaluation ---------------------------------------------------------------------
    def baselines(self) -> tuple[Baseline, ...]:
        return (TLearner(self),)


class TLearner(Boosted):
    """The uplift head's LightGBM baseline: one regressor per arm on the aggregates
    (retention), effect = treated minus control prediction (the uplift benchmark's T-learner,
    same settings). A :class:`Boosted` with its own fit, since two arms are no single
    objective. Left out without lightgbm."""

    name = "t_learner"
    PARAMS: Mapping[str, Any] = {
        "n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 40,
        "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "verbose": -1, "n_jobs": 1,
    }  # fmt: skip

    def fit(self, train: Sequences, ctx: BaselineContext) -> TLearner | None:  # type: ignore[override]
        if not available():
            log.warning("lightgbm is not installed: no T-learner baseline for the uplift head")
            return None
        import lightgbm as lgb
        assert train.labels is not None
        y = np.asarray(train.labels["uplift"])
        exposed = _exposed(y)
        arm = y[exposed, ARM]
        if min((arm == 1).sum(), (arm == 0).sum()) < MIN_PER_ARM:
            return None
        x = train.aggregates[exposed]
        params = {**self.PARAMS, "random_state": ctx.seed}
        with NATIVE_LOCK:
            self.models = [
                lgb.LGBMRegressor(**params).fit(x[arm == a], y[exposed, RETAINED][arm == a]) for a in (0, 1)
            ]
        return self

    def predict(self, seqs: Sequences) -> np.ndarray:
        with NATIVE_LOCK:
            control, treated = (m.predict(seqs.aggregates) for m in self.models)
        return (treated - control).astype(np.float32)
