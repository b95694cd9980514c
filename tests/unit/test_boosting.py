"""The gradient-boosting baseline learns: on small synthetic data it beats trivial baselines.
Its objective, label mask and learnability rule come from the task (the registry)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("lightgbm", reason="the boosting baseline needs the [baseline] extra")

from journeyformer.data.labels.lifecycle import STAGES  # noqa: E402
from journeyformer.metrics.scores import accuracy_at_k, auroc, spearman  # noqa: E402
from journeyformer.tasks import registry  # noqa: E402
from journeyformer.tasks.boosting import BoostingBaseline  # noqa: E402
from journeyformer.training.datamodule import prepare_data  # noqa: E402


@pytest.fixture(scope="module")
def data(events_path):
    return prepare_data({"path": str(events_path), "max_len": 16}, {"horizon_days": 30})


def test_boosting_learns_every_task(data):
    train, val, test = (data.splits[s] for s in ("train", "val", "test"))
    n_actions = len(data.preprocessing.vocabs["action"])
    tasks = ["churn", "next_action", "stage", "value"]
    fitted = BoostingBaseline.fit(train, val, [registry.get(t) for t in tasks], {"next_action": n_actions, "stage": len(STAGES)})
    assert set(fitted.rounds) == set(tasks) and min(fitted.rounds.values()) >= 1
    pred = fitted.predict(test)
    y = test.labels
    assert pred["next_action"].shape == (len(test), n_actions)
    assert pred["stage"].shape == (len(test), len(STAGES))
    np.testing.assert_allclose(pred["stage"].sum(1), 1.0, atol=1e-6)
    # churn: better than chance by a margin; next action: better than always the most common
    assert auroc(pred["churn"], y["churn"]) > 0.75
    labelled = y["next_action"][y["next_action"] >= 0]
    majority = np.bincount(labelled).max() / len(labelled)
    assert accuracy_at_k(pred["next_action"], y["next_action"], 1) > majority + 0.02
    # value: ranks spend better than a constant could (Spearman > 0), expected spend >= 0
    assert spearman(pred["value"], y["value"]) > 0.3
    assert (pred["value"] >= 0).all()


def test_same_seed_same_predictions(data):
    train, val, test = (data.splits[s] for s in ("train", "val", "test"))
    a = BoostingBaseline.fit(train, val, [registry.get("churn")], {}, seed=3).predict(test)["churn"]
    b = BoostingBaseline.fit(train, val, [registry.get("churn")], {}, seed=3).predict(test)["churn"]
    np.testing.assert_array_equal(a, b)


def test_a_task_its_rule_finds_unlearnable_gets_no_booster(data):
    train, val = data.splits["train"], data.splits["val"]
    no_spend = replace(train, labels={**train.labels, "value": np.zeros(len(train), np.float32)})
    assert registry.get("value").unlearnable_reason(no_spend.labels["value"])
    fitted = BoostingBaseline.fit(no_spend, val, [registry.get("value"), registry.get("churn")], {})
    assert set(fitted.boosters) == {"churn"}


def test_the_label_mask_leaves_samples_out(data):
    """next_action is fitted on the samples its mask keeps: the classes are the labelled ones."""
    train, val = data.splits["train"], data.splits["val"]
    task = registry.get("next_action")
    y = train.labels["next_action"]
    n_actions = len(data.preprocessing.vocabs["action"])
    fitted = BoostingBaseline.fit(train, val, [task], {"next_action": n_actions}, max_rounds=5)
    assert (~task.label_mask(y)).any()  # some samples have no next action
    np.testing.assert_array_equal(fitted.classes["next_action"], np.unique(y[task.label_mask(y)]))


def test_every_fit_and_prediction_holds_the_native_lock(data, monkeypatch):
    """LightGBM is not safe for two fits at once in one process, and the train job fits the
    per-head choice's boosters in a thread beside the test table's: each call into LightGBM
    holds ``NATIVE_LOCK`` (a test run died with a segmentation fault before it did)."""
    import lightgbm as lgb

    from journeyformer.tasks import boosting

    held = []
    train_fn, predict_fn = lgb.train, lgb.Booster.predict

    def train(*args, **kwargs):
        held.append(("train", boosting.NATIVE_LOCK._is_owned()))
        return train_fn(*args, **kwargs)

    def predict(self, *args, **kwargs):
        held.append(("predict", boosting.NATIVE_LOCK._is_owned()))
        return predict_fn(self, *args, **kwargs)

    monkeypatch.setattr(lgb, "train", train)
    monkeypatch.setattr(lgb.Booster, "predict", predict)
    train_split, val = data.splits["train"], data.splits["val"]
    fitted = BoostingBaseline.fit(train_split, val, [registry.get("churn")], {}, max_rounds=5)
    fitted.predict(val)
    assert [k for k, _ in held] == ["train", "predict"]
    assert all(owned for _, owned in held)
