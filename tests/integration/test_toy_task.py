"""A fifth task added as one class trains, exports and predicts with no other change."""

from __future__ import annotations

import polars as pl
import pytest
from support import compose_train, tiny_overrides
from support_tasks import PurchaseInHorizon

from journeyformer.export.bundle import build_bundle
from journeyformer.inference.job import predict_from_config
from journeyformer.pipelines import train
from journeyformer.tasks import registry


@pytest.mark.slow
def test_toy_task_trains_exports_and_predicts(events_path, tmp_path):
    with registry.registered(PurchaseInHorizon()):
        overrides = [*tiny_overrides(events_path), "+model.tasks.purchase=1.0", "trainer.max_epochs=1"]
        run = train(compose_train(overrides, tmp_path / "run"))
        test = run.metrics["test"]
        assert set(test["model"]["purchase"]) >= {"auroc", "auprc", "brier", "ece"}
        assert 0.5 < test["model"]["purchase"]["auroc"] <= 1.0  # it learns something
        assert "purchase" in run.metrics["calibration"]
        bundle = build_bundle(run.best_checkpoint, tmp_path / "bundle")
        assert "purchase_probability" in [o["name"] for o in bundle.spec["onnx"]["outputs"]]
        assert bundle.parity.ok
        out = tmp_path / "pred.parquet"
        predict_from_config(
            {"bundle": str(bundle.path), "data": {"path": str(events_path)}, "output": str(out), "progress": False}
        )
        pred = pl.read_parquet(out)
        p = pred["purchase_probability"]
        assert p.null_count() == 0 and p.min() >= 0 and p.max() <= 1
        assert {"churn_probability", "next_action", "stage", "expected_value"} <= set(pred.columns)
    assert "purchase" not in registry.TASKS
