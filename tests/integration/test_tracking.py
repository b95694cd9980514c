"""logger=mlflow records a tiny run; the sweep objective reads validation only.

The Optuna search itself (journeyformer search) is tested in test_search.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import compose_train, tiny_overrides

from journeyformer.pipelines import optimized_value

FEW_CUSTOMERS = 300


@pytest.fixture(scope="module")
def few_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from journeyformer.synthetic.config import SyntheticConfig
    from journeyformer.synthetic.journeys import generate_journeys, write_journeys

    out = tmp_path_factory.mktemp("few")
    write_journeys(generate_journeys(SyntheticConfig(n_customers=FEW_CUSTOMERS, seed=5)), out)
    return out / "events.parquet"


def _one_epoch(events: Path) -> list[str]:
    # 300 customers give a 25-sample validation split: fine for a smoke run, too few for
    # metrics that mean anything, so the sample check only warns here.
    return [o for o in tiny_overrides(events) if not o.startswith("trainer.max_epochs")] + [
        "trainer.max_epochs=1",
        "labels.cutoffs.sparse=warn",
    ]


def test_optimized_value_reads_validation_only():
    metrics = {"val": {"model": {"churn": {"auroc": 0.7}}}, "test": {"model": {"churn": {"auroc": 0.9}}}}
    assert optimized_value(metrics, "val/churn/auroc") == 0.7
    with pytest.raises(ValueError, match="never selects on test"):
        optimized_value(metrics, "test/churn/auroc")
    with pytest.raises(ValueError, match=r"available: \['val/churn/auroc'\]"):
        optimized_value(metrics, "val/stage/macro_f1")


@pytest.mark.slow
def test_mlflow_logger_records_a_tiny_run(few_events, tmp_path):
    from mlflow.tracking import MlflowClient

    from journeyformer.pipelines import train

    result = train(compose_train([*_one_epoch(few_events), "logger=mlflow"], tmp_path))
    db = tmp_path / "mlflow.db"
    assert db.exists()  # the default store: a SQLite file in the run directory
    client = MlflowClient(f"sqlite:///{db}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "journeyformer"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["model/d_model"] == "16"  # the module's hyperparameters
    logged = run.data.metrics
    assert "val/loss" in logged and "val/churn/auroc" in logged
    history = client.get_metric_history(run.info.run_id, "val/churn/auroc")
    assert len(history) == 1  # one epoch, one validation
    assert result.best_checkpoint is not None and result.best_checkpoint.parent == tmp_path
