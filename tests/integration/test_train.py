"""Training end to end: round trip, configs, resume, determinism, learning, odd data."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from omegaconf import OmegaConf
from support import compose_train, tiny_overrides

from journeyformer.errors import CheckpointError
from journeyformer.model.config import ModelConfig
from journeyformer.model.run import RunManifest, load_run_network, spec_hash
from journeyformer.model.runner import predict_sequences
from journeyformer.pipelines import train
from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.journeys import generate_journeys, write_journeys
from journeyformer.training.module import load_module

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def test_round_trip_train_checkpoint_reload_predict(tiny_run):
    ckpt = tiny_run.best_checkpoint
    assert ckpt is not None and ckpt.exists()
    raw = torch.load(ckpt, weights_only=True)  # plain values only
    spec = raw["hyper_parameters"]["preprocessing"]
    assert spec == tiny_run.data.preprocessing.to_dict()  # the one preprocessing dict
    assert spec["vocabs"]["action"][:2] == ["<pad>", "<unk>"]
    assert raw["hyper_parameters"]["model"]["categorical_sizes"][0] == len(spec["vocabs"]["action"])
    reloaded, manifest, read, pre = load_run_network(tiny_run.run_dir)  # calibrated as trained
    assert read == ckpt and manifest is not None and pre == spec
    test = tiny_run.data.splits["test"]
    a = predict_sequences(tiny_run.module.net, test)
    b = predict_sequences(reloaded, test)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=1e-6)
    assert a["churn_probability"].shape == (len(test),)
    np.testing.assert_allclose(a["next_action_probs"].sum(1), 1.0, atol=1e-5)
    metrics = json.loads((tiny_run.run_dir / "test_metrics.json").read_text())
    assert set(metrics["test"]["model"]) == {"next_action", "churn", "stage", "value"}
    # The printed table names its population and the window the baselines were fitted on.
    lines = tiny_run.table.splitlines()
    assert lines[0].startswith(f"out-of-time test set: {len(test)} customers with cutoff ")
    assert "label window (" in lines[0]
    assert lines[1].startswith("baselines fitted on the train split: ")
    assert metrics["test"]["baselines"]["churn"]["days_since_last_activity"]["auroc"] > 0.5


def test_run_manifest_names_the_run_artifacts(tiny_run, tmp_path):
    """run.json names the best checkpoint, its spec hash, the validation metrics and the
    calibration; the best checkpoint is left as Lightning wrote it (uncalibrated buffers) and
    loads with weights_only=True."""
    manifest = RunManifest.read(tiny_run.run_dir)
    run = tiny_run.run_dir
    assert run / manifest.best_checkpoint == tiny_run.best_checkpoint
    assert manifest.last_checkpoint is not None and (run / manifest.last_checkpoint).exists()
    raw = torch.load(tiny_run.best_checkpoint, weights_only=True)
    assert manifest.spec_sha256 == spec_hash(raw["hyper_parameters"]["preprocessing"])
    assert float(raw["state_dict"]["net.churn_temperature"]) == 1.0  # not rewritten post hoc
    assert manifest.buffers["churn_temperature"] == tiny_run.metrics["calibration"]["churn"]["temperature"]
    assert manifest.buffers["churn_temperature"] != 1.0
    assert manifest.calibration == tiny_run.metrics["calibration"]
    assert manifest.validation == tiny_run.metrics["val"]["model"]
    assert json.loads((run / manifest.metrics).read_text())["verdicts"] == tiny_run.metrics["verdicts"]
    assert manifest.model == raw["hyper_parameters"]["model"]
    assert manifest.config["model"]["d_model"] == manifest.model["d_model"]
    # A manifest that belongs to another preprocessing is refused, naming both files.
    other = tmp_path
    shutil.copy(tiny_run.best_checkpoint, other / manifest.best_checkpoint)
    replace(manifest, spec_sha256="0" * 64).write(other)
    with pytest.raises(CheckpointError, match="spec hash differs"):
        load_run_network(other)


@pytest.fixture(scope="module")
def churn_learner(tmp_path_factory: pytest.TempPathFactory):
    """The learning test's run (experiment=churn_only: the other heads switched off), trained
    once for the tests of this module that need a churn-only model."""
    tmp_path = tmp_path_factory.mktemp("churn_learner")
    out = tmp_path / "data"
    write_journeys(generate_journeys(SyntheticConfig(n_customers=3000, seed=3, ticket_hazard=0.1)), out)
    overrides = [
        *tiny_overrides(out / "events.parquet"),
        "experiment=churn_only",
        "model.d_model=32",
        "model.d_ff=64",
        "model.dropout=0.0",
        "model.optimizer.lr=5e-3",
        "trainer.max_epochs=8",
        "callbacks.early_stopping=null",
        "data.split.val_fraction=0.25",
        "data.split.test_fraction=0.25",
    ]
    return train(compose_train(overrides, tmp_path / "run"))


@pytest.mark.slow
def test_model_learns_beats_recency_churn_baseline(churn_learner):
    """The learning test: on a small synthetic set (3,000 customers, where unresolved support
    tickets raise the churn hazard), the trained model beats days-since-last-activity on churn
    AUROC, out of time, on both validation and test customers."""
    for split in ("val", "test"):
        scores = churn_learner.metrics[split]
        model = scores["model"]["churn"]["auroc"]
        recency = scores["baselines"]["churn"]["days_since_last_activity"]["auroc"]
        assert scores["n"] > 400
        assert model > recency, f"{split}: model {model:.4f} <= recency baseline {recency:.4f}"


@pytest.mark.slow
def test_heads_switched_off_are_neither_scored_nor_published(churn_learner, events_path, tmp_path):
    """A churn-only bundle (the learning test's run) evaluates and predicts churn alone."""
    from journeyformer.evaluation.evaluate import evaluate_bundle
    from journeyformer.export.bundle import build_bundle
    from journeyformer.inference.job import predict_from_config

    bundle = build_bundle(churn_learner.best_checkpoint, tmp_path / "bundle").path
    ev = evaluate_bundle(bundle, events_path, progress=False)
    assert set(ev.metrics["model"]) == {"churn"}
    out = tmp_path / "pred.parquet"
    predict_from_config(
        {
            "bundle": str(bundle),
            "data": {"path": str(events_path)},
            "output": str(out),
            "progress": False,
        }
    )
    pred = pl.read_parquet(out)
    assert pred.columns == ["customer_id", "as_of", "n_events", "churn_probability"]
    assert pred["churn_probability"].null_count() == 0


def _leaves(node, prefix: str = ""):
    """(dotted key, plain value) of every leaf of a config; lists are leaves."""
    for key, value in OmegaConf.to_container(node, resolve=False).items():
        if isinstance(value, dict):
            yield from _leaves(OmegaConf.create(value), f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.slow
@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")))
def test_every_experiment_composes_and_runs(experiment, events_path, tmp_path):
    """The run is the experiment: the heads, horizon, cutoffs and history length its config
    asks for, and one fast_dev_run step with finite losses and validation metrics for those
    heads alone, among them the metric its checkpoint and early stopping monitor."""
    overrides = [*tiny_overrides(events_path), f"experiment={experiment}", "debug=fast_dev_run"]
    cfg = compose_train(overrides, tmp_path)
    # Every value the experiment file sets is in the composed config (the test's own overrides
    # and the file's interpolations aside).
    ours = [o.split("=")[0] for o in overrides]
    for key, value in _leaves(OmegaConf.load(CONFIG_DIR / "experiment" / f"{experiment}.yaml")):
        if key == "defaults" or "${" in str(value) or any(key == k or key.startswith(f"{k}.") for k in ours):
            continue
        composed = OmegaConf.select(cfg, key)
        assert (OmegaConf.to_container(composed) if OmegaConf.is_config(composed) else composed) == value, key
    result = train(cfg)
    assert result.data is not None and len(result.data.splits["train"]) > 0
    heads = {t for t, w in ModelConfig.task_weights(OmegaConf.to_container(cfg.model, resolve=True)).items() if w}
    if not result.data.preprocessing.features.has_item:
        heads.discard("next_item")  # no item column in the events: the head is off
    assert heads >= {"churn"}
    assert result.module is not None
    assert {t.name for t in result.module.net.tasks} == heads
    pre = result.data.preprocessing
    assert pre.horizon_days == cfg.labels.horizon_days
    assert len(pre.cutoffs["train"]) == cfg.labels.cutoffs.n_train
    assert pre.max_len == cfg.data.max_len
    trainer = result.module.trainer
    assert trainer.global_step == 1  # fast_dev_run: one training batch
    logged = {name: float(value) for name, value in trainer.callback_metrics.items()}
    assert all(np.isfinite(v) for v in logged.values()), logged
    assert {"train/loss", "val/loss"} <= set(logged)
    scored = {name.split("/")[1] for name in logged if name.startswith("val/") and not name.endswith("/loss")}
    assert scored == heads
    for callback in ("model_checkpoint", "early_stopping"):
        assert cfg.callbacks[callback].monitor in logged, callback


def test_same_seed_same_metrics(tiny_run, events_path, tmp_path):
    """The session's tiny run, trained again with its settings in this process (after every
    test before this one), gives the same test metrics."""
    again = train(compose_train(tiny_overrides(events_path), tmp_path / "again"))
    assert again.metrics["test"] == tiny_run.metrics["test"]


def test_resume_from_checkpoint(tiny_run, events_path, tmp_path):
    """The session's tiny run (two epochs) resumed from its last.ckpt for a third epoch."""
    ran = torch.load(tiny_run.run_dir / "last.ckpt", weights_only=True)
    per_epoch = ran["global_step"] // 2
    assert ran["epoch"] == 1 and ran["global_step"] == 2 * per_epoch  # two epochs, no early stop
    last = tmp_path / "from" / "last.ckpt"  # a copy: the session's run is only read
    last.parent.mkdir()
    shutil.copy(tiny_run.run_dir / "last.ckpt", last)
    overrides = [*tiny_overrides(events_path), "evaluate=false"]
    resumed = train(
        compose_train([*overrides, "trainer.max_epochs=3", f"resume_from={last}"], tmp_path)
    )
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 3 * per_epoch
    assert tiny_run.best_checkpoint is not None and resumed.best_checkpoint is not None


def _odd_events(path: Path) -> Path:
    """One channel, one action type, single-event customers, one very long journey."""
    rng = np.random.default_rng(0)
    users, days = [], []
    for c in range(300):
        n = 1 if c % 3 == 0 else (400 if c == 1 else int(rng.integers(2, 30)))
        users += [f"u{c}"] * n
        days.append(np.sort(rng.uniform(0, 300, n)))
    ts = np.datetime64("2025-01-01T00:00:00", "us") + (np.concatenate(days) * 86400e6).astype("timedelta64[us]")
    frame = pl.DataFrame(
        {"user": users, "ts": ts, "kind": "purchase", "spend": rng.lognormal(3, 1, len(users))}
    )
    frame.write_csv(path)
    return path


@pytest.mark.slow
def test_bring_your_own_data_one_channel_one_action(tmp_path):
    events = _odd_events(tmp_path / "odd.csv")
    overrides = [
        "model=tiny",
        "data=events",
        f"data.path={events}",
        "data.columns.customer_id=user",
        "data.columns.timestamp=ts",
        "data.columns.channel=user",  # any string column works as a (here: per-customer) channel
        "data.columns.action=kind",
        "data.columns.amount=spend",
        "labels.horizon_days=20",
        "labels.intent_actions=[purchase]",
        "labels.cutoffs.train_stride_days=20",
        "labels.cutoffs.active_within_days=null",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
    ]
    result = train(compose_train(overrides, tmp_path / "run"))
    assert result.data is not None
    assert result.data.preprocessing.vocabs["action"].tokens == ("<pad>", "<unk>", "purchase")
    lengths = np.concatenate([s.lengths for s in result.data.splits.values()])
    assert lengths.max() == result.data.preprocessing.max_len  # the 400-event journey, truncated
    assert lengths.min() == 1
    assert np.isfinite(result.metrics["test"]["model"]["churn"]["auroc"])


def test_load_module_rejects_files_that_are_not_checkpoints(tmp_path):
    bogus = tmp_path / "model.ckpt"
    torch.save({"weights": torch.zeros(2)}, bogus)
    with pytest.raises(ValueError, match="not a journeyformer checkpoint"):
        load_module(bogus)


def test_resume_refuses_data_with_other_vocabularies(tiny_run):
    from dataclasses import replace

    from journeyformer.data.features.vocab import Vocab
    from journeyformer.jobs.train import _check_resumable

    pre = tiny_run.data.preprocessing
    _check_resumable(tiny_run.best_checkpoint, pre)  # same data: fine
    vocabs = type(pre.vocabs)(pre.vocabs)
    vocabs["channel"] = Vocab((*pre.vocabs["channel"].tokens, "kiosk"))
    with pytest.raises(ValueError, match=r"changed: \['channel'\]"):
        _check_resumable(tiny_run.best_checkpoint, replace(pre, vocabs=vocabs))


@pytest.mark.slow
@pytest.mark.parametrize("failing", ["fit", "calibration"])
def test_a_failed_run_leaves_no_side_process_running(events_path, tmp_path, monkeypatch, failing):
    """The LightGBM side fits (jobs/train.SideFits) start with training; a run that fails,
    in the fit or after it, ends them instead of leaving them to finish after it."""
    import multiprocessing
    import pickle

    import lightning as L
    from support import SlowUnpickle

    from journeyformer.jobs import train as train_job
    from journeyformer.jobs.train import SideFits

    def fail(*args, **kwargs):
        raise RuntimeError(f"the {failing} failed")

    started: list[int] = []
    close = SideFits.close

    def watched_close(self, stop=False):
        started.extend(p.pid for p in multiprocessing.active_children() if p not in before)
        close(self, stop)

    if failing == "fit":
        monkeypatch.setattr(L.Trainer, "fit", fail)
    else:
        monkeypatch.setattr(train_job, "calibrate", fail)
    monkeypatch.setattr(SideFits, "close", watched_close)
    # the side processes stay a minute in their start-up: only a stop ends them in time
    blob = train_job._registry_blob()
    monkeypatch.setattr(train_job, "_registry_blob", lambda: pickle.dumps(SlowUnpickle(blob, 60)))
    overrides = [o for o in tiny_overrides(events_path) if o != "blend=false"] + ["blend=true"]
    before = set(multiprocessing.active_children())
    with pytest.raises(RuntimeError, match=f"the {failing} failed"):
        train(compose_train(overrides, tmp_path / "run"))
    assert started  # the side fits had started: the test checks something
    # Ask the OS, not Process.is_alive(): the pool's own thread reaps its workers, and a
    # Process whose exit another thread collected can report itself alive.
    deadline = time.monotonic() + 10
    while [pid for pid in started if _running(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in started if _running(pid)]


def _running(pid: int) -> bool:
    """Whether process ``pid`` still runs (gone or a zombie: it has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
