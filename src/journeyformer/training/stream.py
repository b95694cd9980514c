"""Training from the sample store (:mod:`journeyformer.training.sample_store`; ``data.store=<dir>``
in ``train``, :func:`make_datamodule`): memory holds one training shard plus validation and test.

Per epoch the training shards are shuffled (seed, epoch) and dealt out to the DDP ranks (rank
``r`` takes shards ``r, r + world, ...``), each shard is cut into length-bucketed batches, and
every rank yields the same number of batches (the fewest any rank has), so no rank waits on a
collective that never comes. ``data.splits["train"]`` is a bounded subset of the training
samples (``store_stats_samples``) for what needs them at hand: the tasks the labels can teach,
the context standardisation and the baselines.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, IterableDataset

from journeyformer.data.features.batch import Batch
from journeyformer.errors import ConfigError
from journeyformer.training.batch import Collate
from journeyformer.training.datamodule import JourneyData, JourneyDataModule, LengthBucketSampler
from journeyformer.training.sample_store import SampleStore

log = logging.getLogger(__name__)

STATS_SAMPLES = 200_000


class ShardStream(IterableDataset):
    """Batches of one rank, shard after shard (see the module docstring)."""

    def __init__(self, store: SampleStore, split: str, batch_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, epoch: int = 0) -> None:  # fmt: skip
        self.store, self.split, self.batch_size, self.seed = store, split, batch_size, seed
        self.rank, self.world_size, self.epoch = rank, world_size, epoch
        self.sizes = store.samples(split)

    def shards(self, epoch: int) -> list[list[int]]:
        """Shard indices of every rank for ``epoch`` (the same on every rank)."""
        order = np.random.default_rng((self.seed, epoch)).permutation(len(self.sizes))
        return [order[r :: self.world_size].tolist() for r in range(self.world_size)]

    def batches_per_rank(self, epoch: int) -> int:
        per_rank = [sum(-(-self.sizes[s] // self.batch_size) for s in mine) for mine in self.shards(epoch)]
        return min(per_rank)

    def __len__(self) -> int:
        return self.batches_per_rank(self.epoch)

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch
        self.epoch += 1
        budget = self.batches_per_rank(epoch)
        for shard in self.shards(epoch)[self.rank]:
            if budget <= 0:
                return
            seqs = self.store.read(self.split, shard)
            sampler = LengthBucketSampler(seqs.lengths, self.batch_size, True, seed=self.seed * 100_003 + shard)
            sampler.epoch = epoch
            collate = Collate(seqs)
            for index in sampler:
                if budget <= 0:
                    return
                budget -= 1
                yield collate(index)


class StoreDataModule(JourneyDataModule):
    """:class:`JourneyDataModule` whose training batches stream from a sample store."""

    def __init__(self, data_cfg: Mapping[str, Any], labels_cfg: Mapping[str, Any], batch_size: int = 256,
                 num_workers: int = 0, seed: int = 0) -> None:  # fmt: skip
        super().__init__(data_cfg, labels_cfg, batch_size, num_workers, seed)
        self.store = SampleStore.open(str(data_cfg["store"]))

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        store = self.store
        check_settings(store, self.data_cfg, self.labels_cfg)
        n_stats = int(self.data_cfg.get("store_stats_samples") or STATS_SAMPLES)
        splits = {s: store.read_all(s, max_samples=n_stats if s == "train" else None) for s in ("train", "val", "test")}
        last = datetime.fromisoformat(store.spec["last_event"])
        self.data = JourneyData(store.preprocessing, splits, store.spec["source"], last)
        log.info("sample store %s: train %s samples in %d shards (streamed)\n%s", store.path,
                 f"{sum(store.samples('train')):,}", store.n_shards("train"), self.data.describe())  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        stream = ShardStream(self.store, "train", self.batch_size, self.seed, *self.placement())
        return DataLoader(stream, batch_size=None, num_workers=0)


def check_settings(store: SampleStore, data_cfg: Mapping[str, Any], labels_cfg: Mapping[str, Any]) -> None:
    """Refuse training settings the store's samples were not built with."""
    from journeyformer.data.preprocessing import SplitConfig
    from journeyformer.training.store_build import fit_settings

    built, wanted = dict(store.spec.get("settings", {})), fit_settings(data_cfg, labels_cfg)
    built["data.split"] = SplitConfig.from_config(built.get("data.split")).to_dict()  # older stores
    differ = sorted(k for k in set(built) | set(wanted) if built.get(k) != wanted.get(k))
    if differ:
        k = differ[0]
        raise ConfigError(
            f"data.store={store.path} was built with {k}={built.get(k)!r}, but this run sets "
            f"{k}={wanted.get(k)!r} ({len(differ)} setting(s) differ: {differ[:5]}); build the store "
            "again with these settings (scripts/build_store.py) or drop the overrides"
        )


def make_datamodule(data_cfg: Mapping[str, Any], labels_cfg: Mapping[str, Any], batch_size: int = 256,
                    num_workers: int = 0, seed: int = 0) -> JourneyDataModule:  # fmt: skip
    """The store-backed datamodule when ``data.store`` is set, else the in-memory one."""
    if data_cfg.get("store") and data_cfg.get("exposures"):
        raise ConfigError(
            "data.exposures (the uplift head's samples) is not supported with data.store: "
            "train from the events (data.store=null) to use an exposure log"
        )
    cls = StoreDataModule if data_cfg.get("store") else JourneyDataModule
    return cls(data_cfg, labels_cfg, batch_size=batch_size, num_workers=num_workers, seed=seed)
