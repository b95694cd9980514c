"""journeyformer search: an Optuna study over train on a validation metric, resumed from SQLite.

Two tiny trials in this process, then the command in a new process with n_trials=3 runs exactly
one more on the same storage; a third call has nothing to run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict
from support import CONFIG_DIR, compose_train, tiny_overrides

from journeyformer.errors import ConfigError

optuna = pytest.importorskip("optuna")

# The floor pyproject.toml declares for the [sweep] extra, and where `make venv` puts that
# release (pip install --no-deps --target <venv>/optuna-oldest optuna==4.0.0): the fast tests
# here run again on it in a subprocess. No network at test time, so without it the check skips.
OPTUNA_FLOOR = "4.0.0"
OPTUNA_OLDEST = Path(sys.prefix) / "optuna-oldest"
FEW_CUSTOMERS = 300
# The tiny model's own sizes (n_heads=2), without n_layers: seconds per trial on a CPU.
SMALL_SPACE = ["hparams_search.params.model.d_model.choices=[8,16]", "~hparams_search.params.model.n_layers"]
SEARCHED = {"model.d_model", "model.dropout", "model.optimizer.lr", "model.optimizer.weight_decay"}


@pytest.fixture(scope="module")
def few_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from journeyformer.synthetic.config import SyntheticConfig
    from journeyformer.synthetic.journeys import generate_journeys, write_journeys

    out = tmp_path_factory.mktemp("few")
    write_journeys(generate_journeys(SyntheticConfig(n_customers=FEW_CUSTOMERS, seed=5)), out)
    return out / "events.parquet"


def _one_epoch(events: Path) -> list[str]:
    # 300 customers give a 25-sample validation split: a smoke run, so the sample check only warns.
    return [o for o in tiny_overrides(events) if not o.startswith("trainer.max_epochs")] + [
        "trainer.max_epochs=1",
        "labels.cutoffs.sparse=warn",
    ]


def compose_search(overrides: list[str], run_dir: Path | None = None) -> DictConfig:
    """configs/search.yaml with ``overrides``, outside a Hydra run."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="search", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir or "/tmp/x")
        if run_dir is not None:
            cfg.run_dir = str(run_dir)
    return cfg


def test_search_composes_over_a_validation_metric():
    cfg = compose_search([])
    hs = cfg.hparams_search
    assert cfg.optimized_metric.startswith("val/") and hs.direction == "maximize"
    assert hs.storage == f"sqlite:///{cfg.run_dir}/optuna.db" and hs.load_if_exists
    from journeyformer.search import search_space

    space = search_space(OmegaConf.to_container(hs.params), cfg)  # every key is a train setting
    assert {p.name for p in space} == SEARCHED | {"model.n_layers"}
    assert {p.name: p.type for p in space}["model.d_model"] == "categorical"
    assert next(p for p in space if p.name == "model.optimizer.lr").log


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimized_metric=test/churn/auroc", "a search optimises a validation metric"),
        ("evaluate=false", "evaluate=false"),
        ("+hparams_search.params.model.d_modle={type:int,low:1,high:2}", "model.d_modle is not a setting"),
        ("hparams_search.params.model.dropout.type=normal", "one of"),
        ("hparams_search.params.model.optimizer.lr.low=0", "log=true needs low > 0"),
        ("hparams_search.direction=max", "maximize or minimize"),
        ("trainer=ddp", "one after another in one process"),
    ],
)
def test_bad_search_settings_fail_before_training(override, message, tmp_path):
    from journeyformer.search import search

    with pytest.raises(ConfigError, match=message):
        search(compose_search([override], tmp_path))
    assert not (tmp_path / "optuna.db").exists()


def test_train_refuses_a_search_space(tmp_path):
    from journeyformer.cli import train_job

    with pytest.raises(ConfigError, match="run: journeyformer search"):  # before any training
        train_job(compose_train(["hparams_search=optuna"], tmp_path))


def _fake_train(outcomes: list[str], seen: list[DictConfig]):
    """A stand-in for pipelines.train: each call takes the next outcome; "ok" is valued at the
    trial's learning rate on validation (and 1.0 on test, which the search must not read)."""
    todo = iter(outcomes)

    def train(cfg: DictConfig) -> SimpleNamespace:
        seen.append(cfg)
        what = next(todo)
        if what == "pruned":
            raise optuna.TrialPruned("val/churn/auroc=0.1 after epoch 1")
        if what == "fail":
            raise RuntimeError("loss is nan")
        if what == "config":
            raise ConfigError("data.path=missing.parquet: no such file")
        auroc = lambda v: {"model": {"churn": {"auroc": v}}}  # noqa: E731
        return SimpleNamespace(metrics={"val": auroc(float(cfg.model.optimizer.lr)), "test": auroc(1.0)})

    return train


def test_pruned_and_failed_trials_are_recorded_and_a_rerun_makes_up_the_failed(monkeypatch, tmp_path):
    import journeyformer.search as search_module

    seen: list[DictConfig] = []
    monkeypatch.setattr(search_module, "train", _fake_train(["ok", "pruned", "fail", "ok"], seen))
    result = search_module.search(compose_search(["hparams_search.n_trials=3"], tmp_path))
    trials = result.study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "FAIL"]
    assert result.summary["states"] == {"complete": 1, "pruned": 1, "fail": 1}
    assert trials[2].user_attrs["error"] == "RuntimeError: loss is nan"
    assert result.best_value == pytest.approx(float(seen[0].model.optimizer.lr))  # validation, not test
    # a trial's config: the sampled values, its own folder, the pruning callback, no search settings
    assert seen[0].run_dir == str(tmp_path / "trial_0") and "hparams_search" not in seen[0]
    assert seen[0].model.optimizer.lr == trials[0].params["model.optimizer.lr"]
    assert seen[0].callbacks.optuna_pruning.monitor == "val/churn/auroc"

    again = search_module.search(compose_search(["hparams_search.n_trials=3"], tmp_path))
    assert again.started == 1 and again.study.trials[-1].state.name == "COMPLETE"  # the failed one, made up
    with pytest.raises(ConfigError, match="optimises val/churn/auroc, not optimized_metric=val/stage/macro_f1"):
        search_module.search(compose_search(["hparams_search.n_trials=4", "optimized_metric=val/stage/macro_f1"], tmp_path))


def test_an_error_before_any_trial_completed_stops_the_search(monkeypatch, tmp_path):
    import journeyformer.search as search_module

    monkeypatch.setattr(search_module, "train", _fake_train(["config", "ok"], []))
    with pytest.raises(ConfigError, match="no such file"):
        search_module.search(compose_search(["hparams_search.n_trials=2"], tmp_path))
    study = optuna.load_study(study_name="journeyformer", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state.name for t in study.trials] == ["FAIL"]
    assert not (tmp_path / search_module.BEST_FILE).exists()


def test_pruning_callback_reports_to_the_running_trial(monkeypatch):
    import journeyformer.search as search_module

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.9))
    trial = study.ask()
    callback = search_module.PruneOnValidation("val/churn/auroc")
    trainer = SimpleNamespace(sanity_checking=False, current_epoch=0, callback_metrics={"val/churn/auroc": 0.5})
    callback.on_validation_end(trainer, None)  # no trial running: nothing happens
    monkeypatch.setattr(search_module, "_ACTIVE", trial)
    with pytest.raises(optuna.TrialPruned, match="val/churn/auroc=0.5000 after epoch 0"):
        callback.on_validation_end(trainer, None)
    assert study.trials[0].intermediate_values == {0: 0.5}


def test_the_declared_optuna_floor_is_the_tested_one():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert re.findall(r'"optuna>=([0-9.]+)"', pyproject) == [OPTUNA_FLOOR.removesuffix(".0")]


@pytest.mark.slow
def test_search_runs_on_the_oldest_declared_optuna(tmp_path):
    if not OPTUNA_OLDEST.is_dir():
        pytest.skip(f"{OPTUNA_OLDEST} is missing: make venv installs optuna=={OPTUNA_FLOOR} there")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(OPTUNA_OLDEST), os.environ.get("PYTHONPATH")]))}
    version = subprocess.run([sys.executable, "-c", "import optuna; print(optuna.__version__)"],
                             env=env, capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert version == OPTUNA_FLOOR
    # the fast tests cover every Optuna call of search.py: SQLite storage, resume, sampler, pruner
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-m", "not slow",
         "-k", "not oldest_declared", "-W", "error::optuna.exceptions.ExperimentalWarning"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]


@pytest.mark.slow
def test_two_trials_then_resume_runs_one_more(few_events, tmp_path):
    from journeyformer.search import BEST_FILE, search

    settings = [*_one_epoch(few_events), *SMALL_SPACE]
    result = search(compose_search([*settings, "hparams_search.n_trials=2"], tmp_path))
    study = result.study
    assert result.started == 2 and [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    db = tmp_path / "optuna.db"
    assert db.is_file()
    for t in study.trials:  # each trial is a training run in its own folder, valued on validation
        run = tmp_path / f"trial_{t.number}"
        assert t.user_attrs["run_dir"] == str(run) and (run / "best.ckpt").is_file()
        metrics = json.loads((run / "test_metrics.json").read_text())
        assert t.value == pytest.approx(metrics["val"]["model"]["churn"]["auroc"])
        assert set(t.params) == SEARCHED
        manifest = json.loads((run / "run.json").read_text())  # the trial's settings were used
        assert manifest["model"]["d_model"] == t.params["model.d_model"]
        assert manifest["config"]["model"]["optimizer"]["lr"] == pytest.approx(t.params["model.optimizer.lr"])
        assert "hparams_search" not in manifest["config"]
    first = {t.number: (t.params, t.value, t.datetime_complete) for t in study.trials}

    # The same command in a new process, n_trials=3: the stored study goes on with one trial.
    cmd = [sys.executable, "-m", "journeyformer", "search", *settings, "hparams_search.n_trials=3",
           f"run_dir={tmp_path}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming study 'journeyformer': 2 of 3 trials finished, 1 to run" in proc.stdout
    study = optuna.load_study(study_name="journeyformer", storage=f"sqlite:///{db}")
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert {t.number: (t.params, t.value, t.datetime_complete) for t in study.trials[:2]} == first
    assert study.trials[2].state == optuna.trial.TrialState.COMPLETE and (tmp_path / "trial_2/best.ckpt").is_file()
    # the seeded sampler does not replay trial 0's sample on the resume
    assert study.trials[2].params["model.optimizer.lr"] != study.trials[0].params["model.optimizer.lr"]

    best = json.loads((tmp_path / BEST_FILE).read_text())
    assert best["optimized_metric"] == "val/churn/auroc" and best["direction"] == "maximize"
    assert best["best_trial"] == study.best_trial.number and best["best_value"] == pytest.approx(study.best_value)
    assert best["best_params"] == study.best_params and best["states"] == {"complete": 3}
    assert best["best_run_dir"] == str(tmp_path / f"trial_{study.best_trial.number}")
    assert f"val/churn/auroc = {study.best_value:.4f}" in proc.stdout

    again = search(compose_search([*settings, "hparams_search.n_trials=3"], tmp_path))
    assert again.started == 0 and len(again.study.trials) == 3  # reached: nothing more to run
