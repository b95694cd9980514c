"""Labels and lifecycle stages on small hand-made journeys with answers worked out by hand.

Cutoff 2025-03-01 00:00 UTC, horizon 30 days: the label window is (03-01, 03-31 00:00].
Stage rules (first that holds): churned (no activity for 60 days), loyalty (4 purchases in
90 days), retention (2+ purchases), first_purchase (1), consideration (intent, no purchase),
acquisition.
"""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest
from support import event_frame

from journeyformer.data.features.definitions import FeatureConfig
from journeyformer.data.features.sequences import build_sequences
from journeyformer.data.features.vocab import PAD, UNK, Vocabularies
from journeyformer.data.labels.lifecycle import IGNORE_INDEX, STAGES, LabelConfig
from journeyformer.data.labels.reference import compute_labels, history_summary

UTC = timezone.utc
CUTOFF = datetime(2025, 3, 1, tzinfo=UTC)
VOCABS = Vocabularies.from_dict(
    {"action": [PAD, UNK, "view", "cart", "purchase", "email"], "channel": [PAD, UNK, "web"]}
)
ID = {tok: i for i, tok in enumerate(VOCABS["action"].tokens)}
CFG = LabelConfig(
    horizon_days=30,
    purchase_actions=("purchase",),
    intent_actions=("cart",),
    value_actions=("purchase",),
    activity_actions=None,
)
S = {name: i for i, name in enumerate(STAGES)}

JOURNEYS = [
    # 1: one purchase before; cart, purchase 20 in the window; a purchase after the window
    (1, "2025-01-10T00:00", "view", 0),
    (1, "2025-02-20T00:00", "purchase", 50),
    (1, "2025-03-05T00:00", "cart", 0),
    (1, "2025-03-10T00:00", "purchase", 20),
    (1, "2025-04-15T00:00", "purchase", 99),
    # 2: silent for 120 days at the cutoff
    (2, "2024-11-01T00:00", "view", 0),
    # 3: four purchases within 90 days; an e-mail exactly at the end of the window
    (3, "2025-01-05T00:00", "purchase", 10),
    (3, "2025-01-20T00:00", "purchase", 10),
    (3, "2025-02-01T00:00", "purchase", 10),
    (3, "2025-02-25T00:00", "purchase", 10),
    (3, "2025-03-31T00:00", "email", 0),
    # 4: intent, and an event exactly at the cutoff (history, not label)
    (4, "2025-02-28T00:00", "cart", 0),
    (4, "2025-03-01T00:00", "view", 0),
    # 5: browsing only; next event one microsecond after the window
    (5, "2025-02-27T00:00", "view", 0),
    (5, "2025-03-31T00:00:00.000001", "view", 0),
    # 6: first event after the cutoff: not a sample
    (6, "2025-03-05T00:00", "purchase", 30),
    # 7: two window events at the same instant: input order decides the next action
    (7, "2025-02-01T00:00", "view", 0),
    (7, "2025-03-02T12:00", "purchase", 5),
    (7, "2025-03-02T12:00", "cart", 0),
    # 8: churned (151 days silent), comes back in the window
    (8, "2024-10-01T00:00", "purchase", 40),
    (8, "2025-03-15T00:00", "view", 0),
    # 9: four purchases, but only one in the 90-day window
    (9, "2024-09-01T00:00", "purchase", 1),
    (9, "2024-10-01T00:00", "purchase", 1),
    (9, "2024-11-01T00:00", "purchase", 1),
    (9, "2025-02-15T00:00", "purchase", 1),
    # 10: four purchases, the first exactly 90 days before the cutoff (outside the window)
    (10, "2024-12-01T00:00", "purchase", 1),
    (10, "2025-01-10T00:00", "purchase", 1),
    (10, "2025-02-01T00:00", "purchase", 1),
    (10, "2025-02-20T00:00", "purchase", 1),
    # 11: silent for exactly 60 days
    (11, "2024-12-31T00:00", "view", 0),
]

# customer: (stage at cutoff, next action, churn, value, stage at cutoff + horizon)
EXPECTED = {
    1: ("first_purchase", "cart", 0, 20.0, "retention"),
    2: ("churned", None, 1, 0.0, "churned"),
    3: ("loyalty", "email", 0, 0.0, "loyalty"),
    4: ("consideration", None, 1, 0.0, "consideration"),
    5: ("acquisition", None, 1, 0.0, "acquisition"),
    7: ("acquisition", "purchase", 0, 5.0, "first_purchase"),
    8: ("churned", "view", 0, 0.0, "first_purchase"),
    9: ("retention", None, 1, 0.0, "retention"),
    10: ("retention", None, 1, 0.0, "retention"),
    11: ("churned", None, 1, 0.0, "churned"),
}


def events(rows: list[tuple] = JOURNEYS) -> pl.DataFrame:
    """Canonical events from (customer_id, ISO time, action, amount), channel web."""
    return event_frame(rows, ("customer_id", "timestamp", "action", "amount"))


def reference_labels(cfg: LabelConfig = CFG) -> pl.DataFrame:
    customers = pl.DataFrame({"customer_id": sorted(EXPECTED)}).lazy()
    return compute_labels(events().lazy(), CUTOFF, cfg, VOCABS["action"], customers).collect()


def test_history_summary_by_hand() -> None:
    summary = history_summary(events().lazy(), CUTOFF, CFG).sort("customer_id").collect()
    assert summary["customer_id"].to_list() == sorted(EXPECTED)  # 6 has no history
    one = summary.row(0, named=True)
    assert one["n_events"] == 2 and one["spend"] == 50.0
    assert (one["n_purchases"], one["n_purchases_window"], one["has_intent"]) == (1, 1, False)
    assert one["first_ts"] == datetime(2025, 1, 10, tzinfo=UTC)
    assert one["last_activity_ts"] == datetime(2025, 2, 20, tzinfo=UTC)
    assert (one["tenure_days"], one["recency_days"]) == (50.0, 9.0)
    four = summary.filter(pl.col("customer_id") == 4).row(0, named=True)
    assert four["n_events"] == 2 and four["has_intent"] and four["recency_days"] == 0.0
    nine = summary.filter(pl.col("customer_id") == 9).row(0, named=True)
    assert (nine["n_purchases"], nine["n_purchases_window"]) == (4, 1)
    ten = summary.filter(pl.col("customer_id") == 10).row(0, named=True)
    assert (ten["n_purchases"], ten["n_purchases_window"]) == (4, 3)
    eleven = summary.filter(pl.col("customer_id") == 11).row(0, named=True)
    assert eleven["recency_days"] == 60.0
    stages = dict(zip(summary["customer_id"], summary["stage"], strict=True))
    assert stages == {c: S[e[0]] for c, e in EXPECTED.items()}


@pytest.mark.parametrize("how", ["compute_labels", "build_sequences"])
def test_labels_by_hand(how: str) -> None:
    if how == "compute_labels":
        frame = reference_labels()
        got = {
            row["customer_id"]: (row["next_action"], row["churn"], row["value"], row["stage"])
            for row in frame.iter_rows(named=True)
        }
    else:
        seqs = build_sequences(events(), CUTOFF, VOCABS, FeatureConfig(), CFG)
        assert seqs.customer_id.to_list() == sorted(EXPECTED)
        assert seqs.stage_now.tolist() == [S[EXPECTED[c][0]] for c in sorted(EXPECTED)]
        lab = seqs.labels
        got = {
            c: (
                None if lab["next_action"][i] == IGNORE_INDEX else int(lab["next_action"][i]),
                int(lab["churn"][i]),
                float(lab["value"][i]),
                int(lab["stage"][i]),
            )
            for i, c in enumerate(seqs.customer_id.to_list())
        }
    want = {
        c: (None if e[1] is None else ID[e[1]], e[2], e[3], S[e[4]]) for c, e in EXPECTED.items()
    }
    assert got == want


def test_activity_actions_decide_churn() -> None:
    cfg = LabelConfig(**{**CFG.to_dict(), "activity_actions": ["purchase"]})
    labels = reference_labels(cfg)
    churn = dict(zip(labels["customer_id"], labels["churn"], strict=True))
    # only purchases count: 3 (e-mail) and 8 (view) now churn, 1 and 7 bought
    assert churn == {1: 0, 2: 1, 3: 1, 4: 1, 5: 1, 7: 0, 8: 1, 9: 1, 10: 1, 11: 1}
    seqs = build_sequences(events(), CUTOFF, VOCABS, FeatureConfig(), cfg)
    assert seqs.labels["churn"].tolist() == [churn[c] for c in seqs.customer_id.to_list()]
    # recency is measured from the last purchase: 4 (no purchase) falls back to its first event
    summary = dict(zip(seqs.summary["customer_id"], seqs.summary["recency_days"], strict=True))
    assert summary[1] == 9.0 and summary[4] == 1.0 and summary[3] == 4.0


def test_horizon_is_configurable() -> None:
    cfg = LabelConfig(**{**CFG.to_dict(), "horizon_days": 5})
    labels = reference_labels(cfg)
    one = labels.filter(pl.col("customer_id") == 1).row(0, named=True)
    # window (03-01, 03-06]: the cart on 03-05 is in, the purchase on 03-10 is not
    assert (one["next_action"], one["churn"], one["value"]) == (ID["cart"], 0, 0.0)
    three = labels.filter(pl.col("customer_id") == 3).row(0, named=True)
    assert (three["next_action"], three["churn"]) == (None, 1)
    seqs = build_sequences(events(), CUTOFF, VOCABS, FeatureConfig(), cfg)
    assert seqs.labels["churn"].tolist() == labels["churn"].to_list()


def test_value_sums_value_actions_with_refunds() -> None:
    rows = [
        (1, "2025-02-01T00:00", "purchase", 10),
        (1, "2025-03-02T00:00", "purchase", 30),
        (1, "2025-03-03T00:00", "refund", -12.5),
        (1, "2025-03-04T00:00", "view", 999),  # amount on a non-value action is ignored
    ]
    cfg = LabelConfig(**{**CFG.to_dict(), "value_actions": ["purchase", "refund"]})
    seqs = build_sequences(events(rows), CUTOFF, VOCABS, FeatureConfig(), cfg)
    assert seqs.labels["value"].tolist() == [17.5]
    assert seqs.labels["next_action"].tolist() == [ID["purchase"]]
    assert seqs.summary["spend"].to_list() == [10.0]


def test_unknown_next_action_is_unknown_id() -> None:
    rows = [(1, "2025-02-01T00:00", "view", 0), (1, "2025-03-02T00:00", "chat", 0)]
    seqs = build_sequences(events(rows), CUTOFF, VOCABS, FeatureConfig(), CFG)
    assert seqs.labels["next_action"].tolist() == [1]


def test_label_config_checks_itself() -> None:
    with pytest.raises(ValueError, match="horizon_days must be > 0"):
        LabelConfig(horizon_days=0)
    with pytest.raises(ValueError, match="at least 2"):
        LabelConfig(loyalty_min_purchases=1)
    with pytest.raises(ValueError, match="must be > 0"):
        LabelConfig(churned_after_days=0)
    assert LabelConfig(purchase_actions="order").purchase_actions == ("order",)
    cfg = LabelConfig.from_config({"horizon_days": 14, "activity_actions": None, "cutoffs": {}})
    assert cfg.horizon_days == 14 and cfg.activity_actions is None
    assert LabelConfig.from_config(cfg.to_dict()) == cfg


def test_check_actions_warns_about_names_not_in_the_data() -> None:
    warnings = LabelConfig().check_actions(["view", "purchase"], "events.parquet")
    assert any(
        "labels.intent_actions ['product_view', 'add_to_cart'] never occur" in w for w in warnings
    )
    assert not any("purchase_actions" in w for w in warnings)
