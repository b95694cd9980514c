"""The one fitted preprocessing object: fit, to_dict/from_dict, feature checks, sequences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from journeyformer.data.events.load import load_events
from journeyformer.data.events.schema import EventSchema
from journeyformer.data.features.sequences import build_sequences
from journeyformer.data.preprocessing import FEATURE_VERSION, Preprocessing, PreprocessingMismatch

DATA_CFG = {"extra_categorical": ["device"], "extra_numeric": ["items"], "max_len": 16}
LABELS_CFG = {"horizon_days": 30, "cutoffs": {"n_train": 2, "active_within_days": 120, "max_val_cutoffs": 1}}


@pytest.fixture(scope="module")
def fitted(events_path: Path):
    events = load_events(events_path, EventSchema.from_config(DATA_CFG))
    return events, Preprocessing.fit(events, DATA_CFG, LABELS_CFG, source="test")


def test_to_dict_is_plain_json_and_round_trips(fitted):
    _, pre = fitted
    d = pre.to_dict()
    assert json.loads(json.dumps(d)) == d
    again = Preprocessing.from_dict(d)
    assert again.to_dict() == d
    assert again.vocabs.to_dict() == pre.vocabs.to_dict()
    assert again.cutoffs == pre.cutoffs
    # derived values are properties, recorded only to be checked
    assert again.numeric_names == pre.numeric_names == tuple(d["feature_names"]["numeric"])
    assert again.categorical_sizes == tuple(len(pre.vocabs[c]) for c in ("action", "channel", "device"))


def test_vocabularies_see_training_customers_before_the_last_training_cutoff_only(fitted):
    events, pre = fitted
    train_ids = pre.split.customers(events)["train"]
    other = events.filter(~events["customer_id"].is_in(train_ids.implode()))
    assert len(other)  # the other splits' events exist, and are not what sized the vocabulary
    assert max(pre.cutoffs["train"]) < max(pre.cutoffs["val"]) < pre.cutoffs["test"][0]


def test_sequences_is_build_sequences_with_the_fitted_state(fitted):
    events, pre = fitted
    cut = max(pre.cutoffs["val"])
    a = pre.sequences(events, cut)
    b = build_sequences(
        events, cut, pre.vocabs, pre.features, pre.labels, active_within_days=pre.active_within_days
    )
    assert a.customer_id.to_list() == b.customer_id.to_list()
    assert (a.categorical == b.categorical).all() and (a.numeric == b.numeric).all()
    assert len(pre.sequences(events, cut, active_only=False)) >= len(a)


def test_other_feature_version_or_names_fail_saying_to_re_export(fitted):
    _, pre = fitted
    d = pre.to_dict()
    with pytest.raises(PreprocessingMismatch, match="re-export"):
        Preprocessing.from_dict({**d, "feature_version": FEATURE_VERSION + 1})
    renamed = {**d, "feature_names": {**d["feature_names"], "numeric": ["log_amount", "old_feature"]}}
    with pytest.raises(PreprocessingMismatch, match=r"numeric: trained \['log_amount', 'old_feature'\].*re-export"):
        Preprocessing.from_dict(renamed)


def test_training_on_all_customers_stays_out_of_time(fitted):
    """data.split.train_customers=all adds the validation and test customers at training
    cutoffs, only where their training label window ends before their own evaluation cutoff;
    with a schedule that validates at the last training cutoff they stay out of training there."""
    from dataclasses import replace

    from journeyformer.data.preprocessing import SplitConfig

    events, pre = fitted
    ids = pre.split.customers(events)
    every = replace(pre, split=SplitConfig(train_customers="all"))
    h = pre.labels.horizon
    for cut in pre.cutoffs["train"]:
        chosen = set(every.customers_at(ids, "train", cut).to_list())
        assert chosen == set().union(*(set(ids[s].to_list()) for s in ("train", "val", "test")))
        assert cut + h <= pre.cutoffs["val"][0]
    assert every.customers_at(ids, "val", pre.cutoffs["val"][0]).to_list() == ids["val"].to_list()
    # short history: the last training cutoff is the validation cutoff
    val = pre.cutoffs["val"][0]
    short = replace(every, cutoffs={**pre.cutoffs, "train": (val - h, val)})
    assert set(short.customers_at(ids, "train", val).to_list()) == set(ids["train"].to_list()) | set(
        ids["test"].to_list()
    )
    assert not set(short.customers_at(ids, "train", val).to_list()) & set(ids["val"].to_list())
    train, _ = every.split_sequences(events)
    assert len(train["train"]) > len(pre.split_sequences(events)[0]["train"])
    with pytest.raises(Exception, match="train_customers"):
        SplitConfig(train_customers="everyone")
