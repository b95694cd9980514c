"""Property tests: build_sequences equals a slow pure-Python reference on random event tables."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyformer.data.events.order import ROW
from journeyformer.data.features.definitions import EVENT_NUMERIC, FeatureConfig
from journeyformer.data.features.sequences import build_sequences
from journeyformer.data.features.vocab import PAD, UNK, Vocabularies
from journeyformer.data.labels.lifecycle import IGNORE_INDEX, STAGES, LabelConfig

UTC = timezone.utc
T0 = datetime(2025, 1, 1, tzinfo=UTC)
ACTIONS = ["view", "cart", "purchase", "email", "unseen"]  # "unseen" is not in the vocabulary
VOCABS = Vocabularies.from_dict(
    {"action": [PAD, UNK, "view", "cart", "purchase", "email"], "channel": [PAD, UNK, "web", "app"]}
)
CFG = LabelConfig(
    horizon_days=3,
    purchase_actions=("purchase",),
    intent_actions=("cart",),
    value_actions=("purchase", "cart"),
    churned_after_days=2,
    loyalty_min_purchases=2,
    loyalty_window_days=4,
)
GAP = EVENT_NUMERIC.index("log_gap")

event = st.tuples(
    st.integers(0, 5),  # customer
    st.integers(0, 240),  # hours after T0: few distinct values, so many ties
    st.sampled_from(ACTIONS),
    st.sampled_from(["web", "app", "kiosk"]),
    st.integers(-3, 20),  # amount
)


def reference(rows: list[tuple], cutoff: datetime, max_len: int, cfg: LabelConfig) -> dict:
    """The definitions, one customer at a time; rows are in input order (index = _row)."""
    ev = [
        {"c": c, "ts": T0 + timedelta(hours=h), "a": a, "ch": ch, "amt": float(m), "row": i}
        for i, (c, h, a, ch, m) in enumerate(rows)
    ]
    key = lambda e: (e["ts"], e["row"])  # noqa: E731
    act_id = VOCABS["action"].index
    ch_id = VOCABS["channel"].index

    def stage(history: list[dict], at: datetime) -> int:
        purchases = [e for e in history if e["a"] in cfg.purchase_actions]
        in_window = [e for e in purchases if e["ts"] > at - timedelta(days=cfg.loyalty_window_days)]
        active = [
            e for e in history if cfg.activity_actions is None or e["a"] in cfg.activity_actions
        ]
        since = max(e["ts"] for e in active) if active else min(e["ts"] for e in history)
        if (at - since).total_seconds() / 86_400 >= cfg.churned_after_days:
            return STAGES.index("churned")
        if len(in_window) >= cfg.loyalty_min_purchases:
            return STAGES.index("loyalty")
        if len(purchases) >= 2:
            return STAGES.index("retention")
        if len(purchases) == 1:
            return STAGES.index("first_purchase")
        if any(e["a"] in cfg.intent_actions for e in history):
            return STAGES.index("consideration")
        return STAGES.index("acquisition")

    out: dict = {"ids": [], "cat": [], "gap": [], "lengths": [], "stage_now": [], "labels": []}
    end = cutoff + cfg.horizon
    for c in sorted({e["c"] for e in ev}):
        mine = sorted((e for e in ev if e["c"] == c), key=key)
        history = [e for e in mine if e["ts"] <= cutoff]
        if not history:
            continue
        kept = history[-max_len:]
        out["ids"].append(c)
        out["lengths"].append(len(kept))
        first_kept = len(history) - len(kept)
        for j, e in enumerate(kept, start=first_kept):
            out["cat"].append([act_id.get(e["a"], 1), ch_id.get(e["ch"], 1)])
            gap = 0.0 if j == 0 else (e["ts"] - history[j - 1]["ts"]).total_seconds()
            out["gap"].append(math.log1p(gap) / 10)
        out["stage_now"].append(stage(history, cutoff))
        window = [e for e in mine if cutoff < e["ts"] <= end]
        active = [
            e for e in window if cfg.activity_actions is None or e["a"] in cfg.activity_actions
        ]
        out["labels"].append(
            (
                act_id.get(window[0]["a"], 1) if window else IGNORE_INDEX,
                0.0 if active else 1.0,
                stage([e for e in mine if e["ts"] <= end], end),
                sum(e["amt"] for e in window if e["a"] in cfg.value_actions),
            )
        )
    return out


def frame_of(rows: list[tuple], with_row: bool) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "timestamp": [T0 + timedelta(hours=r[1]) for r in rows],
            "channel": [r[3] for r in rows],
            "action": [r[2] for r in rows],
            "amount": [float(r[4]) for r in rows],
        },
        schema={
            "customer_id": pl.Int64,
            "timestamp": pl.Datetime("us", "UTC"),
            "channel": pl.String,
            "action": pl.String,
            "amount": pl.Float64,
        },
    )
    return frame.with_row_index(ROW) if with_row else frame


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(event, min_size=1, max_size=60),
    cutoff_hours=st.integers(0, 240),
    max_len=st.integers(1, 6),
    shuffle_seed=st.one_of(st.none(), st.integers(0, 2**16)),
    activity=st.sampled_from([None, ("purchase", "view")]),
)
def test_sequences_match_the_reference(
    rows: list[tuple], cutoff_hours: int, max_len: int, shuffle_seed: int | None, activity
) -> None:
    cfg = LabelConfig(**{**CFG.to_dict(), "activity_actions": activity})
    cutoff = T0 + timedelta(hours=cutoff_hours)
    frame = frame_of(rows, with_row=shuffle_seed is not None)
    if shuffle_seed is not None:  # row order must not matter when _row is there
        frame = frame.sample(fraction=1.0, shuffle=True, seed=shuffle_seed)
    seqs = build_sequences(frame, cutoff, VOCABS, FeatureConfig(max_len=max_len), cfg)
    want = reference(rows, cutoff, max_len, cfg)

    assert seqs.customer_id.to_list() == want["ids"]
    assert seqs.lengths.tolist() == want["lengths"]
    assert seqs.offsets[0] == 0 and seqs.offsets[-1] == len(seqs.categorical) == len(seqs.numeric)
    assert (np.diff(seqs.offsets) >= 1).all() and (np.diff(seqs.offsets) <= max_len).all()
    assert seqs.categorical.reshape(-1, 2).tolist() == want["cat"]
    np.testing.assert_allclose(seqs.numeric[:, GAP], want["gap"], rtol=1e-6, atol=1e-7)
    assert seqs.stage_now.tolist() == want["stage_now"]
    got = list(
        zip(
            seqs.labels["next_action"].tolist(),
            seqs.labels["churn"].tolist(),
            seqs.labels["stage"].tolist(),
            seqs.labels["value"].tolist(),
            strict=True,
        )
    )
    assert got == want["labels"]
    assert seqs.unknown_counts.get("action", 0) == sum(r[0] == 1 for r in want["cat"])
