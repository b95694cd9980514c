"""The sample store gives the samples the in-memory path builds: the same fitted
preprocessing, and shard by shard the same samples, features and labels."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from journeyformer.data.features.sequences import Sequences
from journeyformer.errors import ConfigError
from journeyformer.tasks import registry
from journeyformer.training.datamodule import prepare_data
from journeyformer.training.store_build import build_sample_store


def _key(seqs: Sequences) -> np.ndarray:
    frame = pl.DataFrame({"c": seqs.customer_id, "t": seqs.cutoff}).with_row_index()
    return frame.sort("c", "t")["index"].to_numpy()


@pytest.fixture(scope="module")
def built(events_path, tmp_path_factory):
    from support import compose_train, tiny_overrides

    from journeyformer.config import plain

    cfg = compose_train(tiny_overrides(events_path), tmp_path_factory.mktemp("cfg"))
    data_cfg, labels_cfg = plain(cfg.data), plain(cfg.labels)
    out = tmp_path_factory.mktemp("store") / "store"
    store = build_sample_store(events_path, data_cfg, labels_cfg, out, shard_customers=400,
                               labelers=registry.labelers(), counted=registry.counted_label())  # fmt: skip
    return store, prepare_data(data_cfg, labels_cfg)


def test_store_holds_the_in_memory_samples(built):
    store, memory = built
    assert store.preprocessing.to_dict() == memory.preprocessing.to_dict()
    assert store.n_shards("train") >= 3
    for split in ("train", "val", "test"):
        want = memory.splits[split]
        got = store.read_all(split)
        assert len(got) == len(want) == sum(store.samples(split))
        got, want = got.take(_key(got)), want.take(_key(want))
        assert got.customer_id.equals(want.customer_id)
        np.testing.assert_array_equal(got.cutoff, want.cutoff)
        np.testing.assert_array_equal(got.offsets, want.offsets)
        np.testing.assert_array_equal(got.categorical, want.categorical)
        np.testing.assert_array_equal(got.numeric, want.numeric)
        np.testing.assert_array_equal(got.context, want.context)
        np.testing.assert_array_equal(got.aggregates, want.aggregates)
        assert got.summary.equals(want.summary)
        assert got.labels.keys() == want.labels.keys()
        for task in want.labels:
            np.testing.assert_array_equal(got.labels[task], want.labels[task], err_msg=task)


def test_each_customer_lives_in_one_shard(built):
    store, _ = built
    owners = pl.concat(
        [store.read("train", i).customer_id.unique().to_frame().with_columns(pl.lit(i).alias("s"))
         for i in range(store.n_shards("train"))]
    )  # fmt: skip
    assert owners["customer_id"].is_unique().all()


def test_ranks_stream_disjoint_shards_and_the_same_number_of_batches(built):
    from journeyformer.training.stream import ShardStream

    store, _ = built
    streams = [ShardStream(store, "train", 32, seed=1, rank=r, world_size=2) for r in (0, 1)]
    mine = streams[0].shards(0)
    assert not set(mine[0]) & set(mine[1]) and sorted(mine[0] + mine[1]) == list(range(store.n_shards("train")))
    assert streams[0].shards(0) != streams[0].shards(1) or store.n_shards("train") < 3  # reshuffled
    batches = [list(s) for s in streams]
    assert len(batches[0]) == len(batches[1]) == streams[0].batches_per_rank(0) > 0
    one = ShardStream(store, "train", 32, seed=1)
    assert sum(b.index.numel() for b in one) == sum(store.samples("train"))  # one rank: every sample once


@pytest.mark.slow
def test_training_from_the_store_learns(built, events_path, tmp_path):
    from support import compose_train, tiny_overrides

    from journeyformer.pipelines import train

    store, _ = built
    cfg = compose_train([*tiny_overrides(events_path), f"data.store={store.path}"], tmp_path / "run")
    result = train(cfg)
    test = result.metrics["test"]
    auroc = test["model"]["churn"]["auroc"]
    assert auroc > 0.6, test["model"]["churn"]
    assert result.data.preprocessing.to_dict() == store.preprocessing.to_dict()
    with pytest.raises(ConfigError, match="labels.horizon_days"):  # settings the store was not built with
        train(compose_train([*tiny_overrides(events_path), f"data.store={store.path}",
                             "labels.horizon_days=14"], tmp_path / "run2"))  # fmt: skip
