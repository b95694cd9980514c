"""refit=true: the selected recipe retrained on all labelled data for the selected epochs."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from support import compose_train, tiny_overrides

from journeyformer.errors import ConfigError
from journeyformer.model.run import RunManifest, spec_hash
from journeyformer.model.runner import predict_sequences
from journeyformer.pipelines import train
from journeyformer.training.module import load_module


def _digests(root):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def test_refit_sees_every_labelled_cutoff_and_customer_for_the_selected_epochs(tiny_run, events_path):
    run_dir = tiny_run.run_dir
    before = _digests(run_dir)
    selected = torch.load(run_dir / "best.ckpt", weights_only=True)
    # A larger max_epochs than the selected run's: the refit must still train the selected count.
    cfg = compose_train([*tiny_overrides(events_path), "refit=true", "trainer.max_epochs=5"], run_dir)
    result = train(cfg)
    report = result.metrics["refit"]

    assert result.run_dir == run_dir.with_name(run_dir.name + "_refit")
    assert report["epochs"] == report["selected_epochs"] == selected["epoch"] + 1
    refit_ckpt = torch.load(result.run_dir / "last.ckpt", weights_only=True)  # plain values
    pre = tiny_run.data.preprocessing
    cutoffs = refit_ckpt["hyper_parameters"]["preprocessing"]["cutoffs"]["train"]
    # The latest labelled cutoff (the normal run's test cutoff) and the validation one are
    # training cutoffs now, besides the normal run's own.
    expected = sorted({c.isoformat() for s in ("train", "val", "test") for c in pre.cutoffs[s]})
    assert sorted(cutoffs) == expected
    assert max(cutoffs) == max(pre.cutoffs["test"]).isoformat() > max(pre.cutoffs["train"]).isoformat()
    splits = tiny_run.data.splits
    assert report["samples"] > sum(len(splits[s]) for s in ("train", "val", "test"))
    every = set().union(*(set(splits[s].customer_id.to_list()) for s in ("train", "val", "test")))
    assert set(result.data.splits["train"].customer_id.to_list()) >= every
    # Calibration is the selected run's, from its manifest (nothing is held out to fit it on);
    # the refit's own manifest names its checkpoint and carries the same calibration.
    manifest, refit_manifest = RunManifest.read(run_dir), RunManifest.read(result.run_dir)
    for name in ("churn_temperature", "value_scale"):
        assert float(refit_ckpt["state_dict"][f"net.{name}"]) == pytest.approx(manifest.buffers[name])
    assert manifest.buffers["churn_temperature"] != 1.0
    assert refit_manifest.best_checkpoint == "last.ckpt"
    assert refit_manifest.buffers == manifest.buffers
    assert refit_manifest.spec_sha256 == spec_hash(refit_ckpt["hyper_parameters"]["preprocessing"])
    # The selected run's files are only read; the refit checkpoint scores new samples.
    assert _digests(run_dir) == before
    out = predict_sequences(load_module(result.run_dir / "last.ckpt").net, splits["test"])
    assert np.isfinite(out["churn_probability"]).all()


def test_refit_refuses_other_model_settings_or_a_missing_run(tiny_run, events_path, tmp_path):
    cfg = compose_train([*tiny_overrides(events_path), "refit=true", "model.d_model=8"], tiny_run.run_dir)
    with pytest.raises(ConfigError, match="model settings differ"):
        train(cfg)
    cfg = compose_train([*tiny_overrides(events_path), "refit=true"], tmp_path / "never_trained")
    with pytest.raises(ConfigError, match="no best.ckpt"):
        train(cfg)
