"""The per-head choice (training/blend.py, export/blend.py): picked on validation, shipped in
every graph, and what the bundle returns is the network blended with LightGBM as training
scored it."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import torch

from journeyformer.data.features.batch import pad
from journeyformer.inference.bundle import load_bundle
from journeyformer.inference.runner import OnnxRunner
from journeyformer.model.run import RunManifest
from journeyformer.training.blend import BLEND_GRID, Blend, fit_boosters


def test_each_head_is_the_best_of_the_grid_on_validation(blended_run):
    report = blended_run.metrics["blend"]
    assert set(report["weights"]) == set(blended_run.module.cfg.tasks) - {
        t for t, w in blended_run.module.cfg.tasks.items() if not w
    }
    for task, scores in report["validation_headline"].items():
        chosen = report["weights"][task]
        assert set(scores) == {f"{w:g}" for w in BLEND_GRID}
        assert scores[f"{chosen:g}"] == max(scores.values())
        # never below the network alone on the data it was chosen on
        assert scores[f"{chosen:g}"] >= scores["1"]
    # the test table says what each part scored: the Transformer alone beside the shipped row
    components = blended_run.metrics["test"]["components"]
    assert components["weights"] == report["weights"]
    assert set(components["transformer"]) == set(report["weights"])


def test_the_bundle_returns_the_blend_training_scored(blended_run, blended_bundle, events_path):
    bundle = load_bundle(blended_bundle)
    run_dir = blended_run.run_dir
    manifest = RunManifest.read(run_dir)
    assert manifest.blend and bundle.spec["blend"]["weights"] == manifest.blend["weights"]
    blend = Blend.load(run_dir, manifest.blend)
    assert blend.blended, "the tiny run should blend at least one head"
    pre = bundle.preprocessing
    as_of = pre.cutoffs["test"][0]
    seqs = pre.sequences(pl.read_parquet(events_path), as_of, with_labels=False, active_only=False)
    seqs = seqs.take(np.arange(min(len(seqs), 300)))
    inputs = pad(seqs, np.arange(len(seqs)))
    net = blended_run.module.net.eval()
    with torch.inference_mode():
        torch_out = net.predict(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    expected = blend.apply({k: v.numpy() for k, v in torch_out.items()}, seqs)
    for graph in ("plain", "fused"):
        got = OnnxRunner(bundle, precision="fp32", graph=graph, threads=1).run(inputs)
        for task in blend.blended:
            name = bundle.spec["blend"]["outputs"][task]
            scale = np.maximum(1.0, np.abs(expected[name]))
            assert np.max(np.abs(got[name] - expected[name]) / scale) < 1e-4, (graph, name)
    report = json.loads((blended_bundle / "export_report.json").read_text())["blend"]
    assert set(report["parity"]) == {p.name for p in blended_bundle.glob("*.onnx")}


def test_boosters_fitted_beside_training_are_the_ones_a_fit_here_gives(blended_run):
    """The run fits its boosters in a process of its own while the network trains
    (jobs/train.SideFits); one thread per fit, so fitting them here gives the same boosters."""
    net = blended_run.module.net
    widths = {t.name: t.head_size(net.cfg) for t in net.tasks if t.boosting}
    train, val = blended_run.data.splits["train"], blended_run.data.splits["val"]
    here = fit_boosters(train, val, list(widths), widths, seed=7)  # tiny_overrides' seed
    report = blended_run.metrics["blend"]
    assert here.rounds == report["rounds"]
    shipped = Blend.load(blended_run.run_dir, RunManifest.read(blended_run.run_dir).blend)
    assert shipped.blended
    got, want = shipped.booster_outputs(val), Blend(here, shipped.weights).booster_outputs(val)
    for name in got:
        assert np.array_equal(got[name], want[name]), name
