"""Batch scoring end to end: events -> predictions.parquet + rejects, with onnxruntime only."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnxruntime as ort
import polars as pl
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from support import CONFIG_DIR

from journeyformer.data.events.load import load_events
from journeyformer.errors import EventDataError
from journeyformer.inference.bundle import load_bundle
from journeyformer.inference.job import predict_from_config
from journeyformer.inference.local import predict_events
from journeyformer.inference.result import REASON_NO_HISTORY, REASON_NO_VALID
from journeyformer.inference.scoring import ScoringJob
from journeyformer.model.run import load_run_network
from journeyformer.model.runner import predict_sequences

AS_OF = datetime(2025, 6, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def bundle_dir(tiny_bundle) -> Path:
    return tiny_bundle


@pytest.fixture(scope="module")
def events(events_path) -> pl.DataFrame:
    return pl.read_parquet(events_path)


def _customers(frame: pl.DataFrame) -> set:
    return set(frame.get_column("customer_id").to_list())


def test_every_customer_scored_or_rejected(bundle_dir, events_path, events, tmp_path):
    out = tmp_path / "predictions.parquet"
    result = predict_events(
        bundle_dir, events_path, out, as_of=AS_OF, chunk_customers=400, progress=False
    )
    pred, rej = pl.read_parquet(out), pl.read_parquet(result.rejects)
    assert result.rejects == tmp_path / "predictions.rejects.parquet"
    assert result.n_chunks > 1
    scored, rejected = _customers(pred), _customers(rej)
    assert pred.height == len(scored) and rej.height == len(rejected)  # one row per customer
    assert scored.isdisjoint(rejected)
    assert scored | rejected == _customers(events)
    # Rejected exactly when the first event is after as_of, and the file says so.
    first = events.group_by("customer_id").agg(pl.col("timestamp").min())
    late = set(first.filter(pl.col("timestamp") > AS_OF).get_column("customer_id").to_list())
    assert rejected == late and len(late) > 0
    assert set(rej.get_column("reason").to_list()) == {REASON_NO_HISTORY}
    assert (rej.get_column("first_event") > AS_OF).all()
    assert result.reject_reasons == {REASON_NO_HISTORY: len(late)}
    # The contract of the predictions table.
    assert (pred.get_column("as_of") == AS_OF).all()
    stages = load_bundle(bundle_dir).stages
    stage_cols = [f"stage_probability_{s}" for s in stages]
    np.testing.assert_allclose(
        pred.select(pl.sum_horizontal(stage_cols)).to_series(), 1.0, atol=1e-5
    )
    assert pred.get_column("top_actions").list.len().eq(3).all()
    assert (pred.get_column("top_actions").list.first() == pred.get_column("next_action")).all()
    probs = pred.get_column("top_action_probabilities").list
    assert (probs.first() == pred.get_column("next_action_probability")).all()
    assert (probs.first() >= probs.last()).all()
    assert pred.get_column("stage").is_in(list(stages)).all()
    assert pred.get_column("churn_probability").is_between(0, 1).all()
    assert (pred.get_column("expected_value") >= 0).all()
    assert "embedding" not in pred.columns


def test_predictions_match_torch_and_do_not_depend_on_chunking(
    bundle_dir, tiny_run, events_path, tmp_path
):
    one = predict_events(
        bundle_dir,
        events_path,
        tmp_path / "one.parquet",
        as_of=AS_OF,
        progress=False,
        with_embedding=True,
    )
    many = predict_events(
        bundle_dir,
        events_path,
        tmp_path / "many.parquet",
        as_of=AS_OF,
        progress=False,
        chunk_customers=250,
        batch_size=7,
        with_embedding=True,
    )
    a = pl.read_parquet(one.output).sort("customer_id")
    b = pl.read_parquet(many.output).sort("customer_id")
    assert many.n_chunks > one.n_chunks == 1
    assert a.columns == b.columns and a.height == b.height
    for col in ("churn_probability", "expected_value", "stage_probability_churned"):
        np.testing.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), atol=1e-5)
    # Same numbers as the torch model on the same sequences.
    bundle = load_bundle(bundle_dir)
    seqs = bundle.preprocessing.sequences(
        load_events(events_path, bundle.schema()), AS_OF, with_labels=False, active_only=False
    )
    ref = predict_sequences(load_run_network(tiny_run.run_dir)[0], seqs)
    assert seqs.customer_id.to_list() == a["customer_id"].to_list()
    np.testing.assert_allclose(
        a["churn_probability"].to_numpy(), ref["churn_probability"], atol=1e-4
    )
    np.testing.assert_allclose(
        a["expected_value"].to_numpy(), ref["expected_value"], atol=1e-4, rtol=1e-5
    )
    np.testing.assert_allclose(np.stack(a["embedding"].to_list()), ref["embedding"], atol=1e-4)
    assert a["n_events"].to_list() == seqs.summary["n_events"].to_list()


def test_as_of_defaults_to_latest_event_and_input_can_be_a_directory(bundle_dir, events, tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    ids = events.get_column("customer_id").unique().sort()
    for i, chunk in enumerate(np.array_split(ids.to_numpy(), 3)):
        events.filter(pl.col("customer_id").is_in(chunk.tolist())).write_parquet(
            parts / f"p{i}.parquet"
        )
    result = predict_events(bundle_dir, parts, tmp_path / "p.parquet", progress=False)
    assert result.as_of == events.get_column("timestamp").max()
    assert result.n_rejected == 0 and result.n_scored == ids.len()
    globbed = predict_events(
        bundle_dir, str(parts / "p*.parquet"), tmp_path / "g.parquet", progress=False
    )
    assert globbed.n_scored == ids.len()


def test_unseen_categories_map_to_unknown_and_are_counted(bundle_dir, events, tmp_path, caplog):
    odd = events.with_columns(
        pl.when(pl.col("customer_id") % 3 == 0)
        .then(pl.lit("carrier_pigeon"))
        .otherwise("channel")
        .alias("channel")
    )
    path = tmp_path / "odd.parquet"
    odd.write_parquet(path)
    with caplog.at_level("INFO"):
        result = predict_events(bundle_dir, path, tmp_path / "p.parquet", progress=False)
    assert result.unknown.get("channel", 0) > 0
    assert "action" not in result.unknown
    assert result.n_rejected == 0  # unseen values are scored, not rejected
    assert any("<unk>" in r.getMessage() for r in caplog.records)  # logged, with the counts


def test_customers_without_valid_events_are_rejected_with_reason(bundle_dir, events, tmp_path):
    """null_keys=drop: a customer whose every row has a null timestamp is rejected, not lost."""
    ghost = events.head(3).with_columns(
        pl.lit(-1, dtype=events.schema["customer_id"]).alias("customer_id"),
        pl.lit(None, dtype=events.schema["timestamp"]).alias("timestamp"),
    )
    path = tmp_path / "ghost.parquet"
    pl.concat([events, ghost]).write_parquet(path)
    with pytest.raises(EventDataError, match="null key"):  # the training policy: an error
        predict_events(bundle_dir, path, tmp_path / "p.parquet", progress=False)
    result = predict_events(
        bundle_dir,
        path,
        tmp_path / "p.parquet",
        progress=False,
        schema_overrides={"null_keys": "drop"},
    )
    rej = pl.read_parquet(result.rejects)
    assert rej.get_column("customer_id").to_list() == [-1]
    assert rej.get_column("reason").item() == REASON_NO_VALID
    assert result.n_scored == events.get_column("customer_id").n_unique()


def test_column_mapping_override_from_config(bundle_dir, events, tmp_path):
    path = tmp_path / "renamed.parquet"
    events.rename({"customer_id": "user_id", "timestamp": "ts"}).write_parquet(path)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="predict",
            overrides=[
                f"bundle={bundle_dir}",
                f"data.path={path}",
                f"output={tmp_path / 'p.parquet'}",
                "data.columns.customer_id=user_id",  # no "+": as in train (issue 9)
                "data.columns.timestamp=ts",
                "progress=false",
                "top_k=2",
            ],
        )
    result = predict_from_config(cfg)
    pred = pl.read_parquet(result.output)
    assert pred.height == events.get_column("customer_id").n_unique()
    assert pred.get_column("top_actions").list.len().eq(2).all()


def test_empty_input_is_a_clear_error(bundle_dir, events, tmp_path):
    path = tmp_path / "empty.parquet"
    events.head(0).write_parquet(path)
    with pytest.raises(EventDataError, match="no events"):
        predict_events(bundle_dir, path, tmp_path / "p.parquet", progress=False)
    assert not (tmp_path / "p.parquet").exists()


def test_failure_mid_run_leaves_no_output(bundle_dir, events_path, tmp_path, monkeypatch):
    out = tmp_path / "predictions.parquet"
    out.write_text("yesterday's predictions")  # an older complete file stays as it was
    real = ScoringJob.score
    calls = {"n": 0}

    def fail_after_first_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("onnxruntime died")
        return real(*args, **kwargs)

    monkeypatch.setattr(ScoringJob, "score", fail_after_first_chunk)
    with pytest.raises(RuntimeError, match="onnxruntime died"):
        predict_events(bundle_dir, events_path, out, chunk_customers=300, progress=False)
    assert calls["n"] == 2
    assert out.read_text() == "yesterday's predictions"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "predictions.parquet"
    ]  # no temp, no rejects


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available"
)
def test_cuda_without_gpu_runtime_names_what_to_install(bundle_dir, events_path, tmp_path):
    with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
        predict_events(
            bundle_dir, events_path, tmp_path / "p.parquet", device="cuda", progress=False
        )
    assert not (tmp_path / "p.parquet").exists()


def test_scoring_runs_without_torch(bundle_dir, events_path, tmp_path):
    """The nightly job has no PyTorch: make `import torch` fail and score anyway."""
    out = tmp_path / "p.parquet"
    code = textwrap.dedent(
        f"""
        import sys
        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch.") or name.startswith("lightning"):
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
        sys.meta_path.insert(0, NoTorch())
        from journeyformer.inference.local import predict_events
        r = predict_events({str(bundle_dir)!r}, {str(events_path)!r}, {str(out)!r}, progress=False)
        assert "torch" not in sys.modules
        print(r.n_scored)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip().splitlines()[-1]) == pl.read_parquet(out).height > 0
