"""logger=mlflow and hparams_search=optuna: each composes, and runs one tiny trial."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from support import CONFIG_DIR, compose_train, tiny_overrides

from journeyformer.pipelines import optimized_value

FEW_CUSTOMERS = 300


@pytest.fixture(scope="module")
def few_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from journeyformer.data.synthetic import SyntheticConfig, generate_journeys, write_journeys

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


def test_optuna_search_composes_over_a_validation_metric():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["hparams_search=optuna"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("optuna_sweeper.OptunaSweeper")
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.optimized_metric.startswith("val/") and sweeper.direction == "maximize"
    for key in sweeper.params:  # every searched setting exists in the train config
        assert OmegaConf.select(cfg, key, default="<missing>") != "<missing>", key


def test_optimized_value_reads_validation_only():
    metrics = {"val": {"model": {"churn": {"auroc": 0.7}}}, "test": {"model": {"churn": {"auroc": 0.9}}}}
    assert optimized_value(metrics, "val/churn/auroc") == 0.7
    with pytest.raises(ValueError, match="never selects on test"):
        optimized_value(metrics, "test/churn/auroc")
    with pytest.raises(ValueError, match=r"available: \['val/churn/auroc'\]"):
        optimized_value(metrics, "val/stage/macro_f1")


@pytest.mark.slow
def test_optuna_sweep_runs_one_trial(few_events, tmp_path):
    """One real trial through the command: the sweep's best value is the trial's validation
    AUROC of its best checkpoint (not the test one)."""
    sweep = tmp_path / "multirun"
    cmd = [sys.executable, "-m", "journeyformer", "train", "hparams_search=optuna",
           "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={sweep}", *_one_epoch(few_events)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trial = json.loads((sweep / "0" / "test_metrics.json").read_text())
    assert best["best_value"] == pytest.approx(trial["val"]["model"]["churn"]["auroc"])
    assert set(best["best_params"]) == {
        "model.optimizer.lr", "model.d_model", "model.n_layers", "model.dropout",
        "model.optimizer.weight_decay",
    }  # fmt: skip
    assert (sweep / "0" / "best.ckpt").exists()  # each trial in its own folder


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
