"""Next items end to end on a small catalogue world: the head learns (beats global
popularity), exports with TopK in the graph (parity with torch, golden examples) and the
predictor returns the user's item ids with scores; the default run is unchanged."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from support import compose_train, tiny_overrides

from journeyformer.export.bundle import build_bundle
from journeyformer.inference.job import predict_from_config
from journeyformer.pipelines import train
from journeyformer.synthetic.catalogue import CatalogueWorld


@pytest.mark.slow
def test_next_item_learns_exports_and_predicts(tmp_path):
    world = CatalogueWorld(n_customers=1500, n_items=150, days=200, events_per_customer=20, seed=5)
    events = world.generate().with_columns(pl.col("item").str.slice(1).cast(pl.Int64))  # integer ids
    path = tmp_path / "events.parquet"
    events.write_parquet(path)
    overrides = [
        *tiny_overrides(path),
        "data.extra_categorical=[]",
        "data.extra_numeric=[]",
        "data.columns.item=item",
        "data.max_len=32",
        "labels.horizon_days=14",
        "labels.cutoffs.train_stride_days=14",
        "labels.cutoffs.min_samples=50",
        "labels.cutoffs.min_eval_samples=10",
        "model.keep_tasks=[next_item]",  # the checkpoint is chosen on its loss alone
        "model.d_model=32",
        "data.batch_size=64",  # steps, not epochs, teach the item embeddings
        "trainer.max_epochs=8",
    ]
    run = train(compose_train(overrides, tmp_path / "run"))
    test = run.metrics["test"]
    model = test["model"]["next_item"]
    base = test["baselines"]["next_item"]
    assert {"hr@10", "ndcg@10", "mrr", "recall@20"} <= set(model)
    assert {"item_popularity", "recent_popularity_7d", "item_transitions", "cooccurrence_knn"} <= set(base)
    assert model["ndcg@10"] > base["item_popularity"]["ndcg@10"] + 0.03  # it learns the catalogue
    assert test["intervals"]["next_item"]["verdict"] in ("beats", "ties", "loses")
    # The sampled-softmax proposal is the training items' frequency^0.75, in the run and in its
    # refit on all labelled data alike (never the uniform one the network starts with).
    log_q = run.module.net.item_log_q[2:].numpy()
    assert log_q.std() > 0.1
    refit = train(compose_train([*overrides, "refit=true"], tmp_path / "run"))
    refit_q = refit.module.net.item_log_q[2:].numpy()
    assert refit_q.std() > 0.1 and not np.array_equal(refit_q, log_q)  # refit's own (more) data

    bundle = build_bundle(run.best_checkpoint, tmp_path / "bundle")
    assert bundle.parity.ok, bundle.parity.table()
    outputs = {o["name"]: o for o in bundle.spec["onnx"]["outputs"]}
    assert outputs["next_item_ids"]["dtype"] == "int64" and outputs["next_item_ids"]["shape"] == ["batch", 20]
    golden = json.loads((bundle.path / "golden.json").read_text())
    assert "next_item_ids" in json.dumps(golden)

    out = tmp_path / "pred.parquet"
    predict_from_config({"bundle": str(bundle.path), "input": str(path), "output": str(out), "progress": False})
    pred = pl.read_parquet(out)
    assert pred.height == events["customer_id"].n_unique()  # nothing lost
    lists = pred["next_items"].to_list()
    assert all(len(r) == 20 for r in lists)
    known = set(events["item"].cast(pl.String).to_list())
    assert set(np.concatenate(lists)) <= known  # the user's own ids, never <pad> / <unk>
    scores = np.array(pred["next_item_scores"].to_list())
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings",
    [{"positions": "causal", "item_query": "state"}, {"positions": "causal"}, {"item_query_gap": True}],
)
def test_causal_positions_and_the_state_query_export_with_parity(tmp_path, settings):
    """The SASRec-style settings (model.positions=causal, model.item_query=state) export:
    onnxruntime gives the torch outputs, ranked items included."""
    from journeyformer.export.bundle import parity_batches
    from journeyformer.export.onnx import check_parity, export_onnx
    from journeyformer.model.config import ModelConfig
    from journeyformer.model.network import JourneyTransformer

    cfg = ModelConfig(
        categorical_sizes=(6, 4, 40), n_numeric=7, n_context=6, max_len=8, d_model=16, n_heads=2,
        d_ff=16, n_layers=2, n_items=40, item_exclude_seen=True, time_bins=True, **settings,
    )  # fmt: skip
    net = JourneyTransformer(cfg).eval()
    report = check_parity(net, export_onnx(net, tmp_path / "m.onnx"), parity_batches(cfg, [1, 5], [3, None], seed=0))
    assert report.ok, report.failures()
