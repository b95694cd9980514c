"""The stage decision rule (metrics/decision.py); the network's copy of its arithmetic is in
tests/integration/test_decision_rule_network.py."""

from __future__ import annotations

import numpy as np

from journeyformer.metrics.decision import fit_decision_rule
from journeyformer.metrics.scores import macro_f1


def _persistent_world(n: int, seed: int):
    """Stages that mostly stay as they are (80%), a head that sees the stage now only weakly
    and under-predicts the rare stages: the plain argmax loses to carry-over."""
    rng = np.random.default_rng(seed)
    k = 4
    now = rng.choice(k, size=n, p=[0.55, 0.25, 0.15, 0.05])
    y = np.where(rng.random(n) < 0.8, now, rng.choice(k, size=n))
    logits = rng.normal(0, 1, (n, k)) + np.log([0.55, 0.25, 0.15, 0.05]) * 2
    logits[np.arange(n), y] += 0.8  # some signal about the future stage
    return logits, now, y


def test_the_rule_beats_the_plain_argmax_and_carry_over_on_fresh_data():
    logits, now, y = _persistent_world(3000, 0)
    rule = fit_decision_rule(logits, now, y, macro_f1)
    assert rule.heldout_gain > 0.05 and rule.carry > 0
    test_logits, test_now, test_y = _persistent_world(3000, 1)
    plain = macro_f1(test_logits.argmax(1), test_y)
    carry = macro_f1(test_now, test_y)
    ruled = macro_f1(rule.decide(test_logits, test_now), test_y)
    assert ruled > plain + 0.1
    assert ruled >= carry - 0.01  # at least as good as carrying the stage over


def test_no_signal_to_gain_keeps_the_plain_argmax():
    rng = np.random.default_rng(3)
    n, k = 400, 3
    y = rng.integers(0, k, n)
    logits = np.log(np.full((n, k), 1 / k)) + rng.normal(0, 1e-3, (n, k))
    logits[np.arange(n), y] += 5.0  # the head is already right: nothing to shift
    now = rng.integers(0, k, n)  # and the stage now says nothing
    rule = fit_decision_rule(logits, now, y, macro_f1)
    assert rule.carry == 0.0 and not rule.offset.any()
    assert rule.val_after == rule.val_before == 1.0


def test_heldout_logits_score_what_the_rule_gains_on_data_it_was_not_fitted_on():
    """What a later choice on the same validation samples compares: each half under the rule
    fitted on the other half, never the rule refitted on all of them (which saw their labels)."""
    logits, now, y = _persistent_world(1500, 4)
    rule = fit_decision_rule(logits, now, y, macro_f1, seed=2)
    assert rule.heldout_logits.shape == logits.shape and rule.heldout_gain > 0
    order = np.random.default_rng(2).permutation(len(y))
    halves = (order[: len(y) // 2], order[len(y) // 2 :])
    gains = [macro_f1(rule.heldout_logits[h].argmax(1), y[h]) - macro_f1(logits[h].argmax(1), y[h]) for h in halves]
    assert np.isclose(np.mean(gains), rule.heldout_gain)
    in_sample = rule.val_after - rule.val_before
    assert in_sample > macro_f1(rule.heldout_logits.argmax(1), y) - rule.val_before  # the refit is optimistic
    # without a kept rule the held-out logits are the plain ones
    flat = np.log(np.full((300, 3), 1 / 3)) + np.random.default_rng(5).normal(0, 1e-3, (300, 3))
    none = fit_decision_rule(flat, np.zeros(300, np.int64), np.random.default_rng(6).integers(0, 3, 300), macro_f1)
    assert none.carry == 0 and np.array_equal(none.heldout_logits, flat)
