"""From the ``data`` and ``labels`` configs to train/val/test Sequences and DataLoaders."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import polars as pl
from torch.utils.data import DataLoader, Sampler

from journeyformer.data.batch import Collate
from journeyformer.data.as_of import data_end
from journeyformer.data.labels import LabelConfig
from journeyformer.data.samples import CutoffSchedule, SampleCount, customers_by_split
from journeyformer.data.schema import EventDataError, EventSchema, load_events
from journeyformer.data.sequences import FeatureConfig, Sequences, build_sequences
from journeyformer.data.vocab import Vocabularies
from journeyformer.tasks import registry

log = logging.getLogger(__name__)


@dataclass
class JourneyData:
    """Everything the model and the baselines need, as plain objects."""

    schema: EventSchema
    features: FeatureConfig
    labels: LabelConfig
    vocabs: Vocabularies
    cutoffs: dict[str, list[datetime]]
    splits: dict[str, Sequences]
    source: str

    def describe(self) -> str:
        lines = [f"events: {self.source}"]
        for name, seqs in self.splits.items():
            cut = ", ".join(f"{c:%Y-%m-%d}" for c in self.cutoffs[name])
            churn = float(seqs.labels["churn"].mean()) if seqs.labels is not None else float("nan")
            lines.append(
                f"  {name:<5} {len(seqs):>7} samples {seqs.n_events:>9} events  "
                f"churn rate {churn:.3f}  cutoffs {cut}"
            )
        lines.append(f"  vocab sizes: {self.vocabs.sizes()}")
        return "\n".join(lines)


def resolve_events_path(data_cfg: Mapping[str, Any]) -> Path:
    """``data.path``; generated first when the config asks for synthetic data."""
    path = Path(str(data_cfg["path"]))
    synthetic = data_cfg.get("synthetic")
    if synthetic:
        from journeyformer.data.synthetic import SyntheticConfig, ensure_synthetic

        ensure_synthetic(
            path, SyntheticConfig.from_dict(dict(synthetic)), data_cfg.get("generated_dir")
        )
    return path


def prepare_data(data_cfg: Mapping[str, Any], labels_cfg: Mapping[str, Any]) -> JourneyData:
    """Read events, fix the cutoff schedule and splits, build vocabularies and samples.

    Vocabularies come from training customers' events at or before the last training cutoff
    only. Validation and test samples use their own split's customers at later cutoffs.
    """
    schema = EventSchema.from_config(data_cfg)
    features = FeatureConfig.from_config(data_cfg)
    labels = LabelConfig.from_config(labels_cfg)
    path = resolve_events_path(data_cfg)
    events = load_events(path, schema)
    for warning in labels.check_actions(events.get_column("action").unique().to_list(), str(path)):
        log.warning(warning)
    end = data_end(events)
    log.info("%s", end.describe(str(path)))
    schedule = CutoffSchedule.from_config(labels_cfg.get("cutoffs") or {}, labels.horizon_days)
    cutoffs = schedule.resolve(events.get_column("timestamp").min(), end.end)
    split_cfg = data_cfg.get("split") or {}
    customers = customers_by_split(
        events,
        float(split_cfg.get("val_fraction", 0.15)),
        float(split_cfg.get("test_fraction", 0.15)),
        str(split_cfg.get("salt", "journeyformer")),
    )
    train_events = events.filter(
        pl.col("customer_id").is_in(customers["train"].implode())
        & (pl.col("timestamp") <= max(cutoffs["train"]))
    )
    if train_events.height == 0:
        raise EventDataError(f"{path}: no training events before {max(cutoffs['train'])}")
    vocabs = Vocabularies.build(train_events, features.categorical)
    active = (labels_cfg.get("cutoffs") or {}).get("active_within_days")
    splits, counts = {}, {}
    for name, cuts in cutoffs.items():
        parts = [
            build_sequences(
                events,
                cut,
                vocabs,
                features,
                labels,
                customers=customers[name],
                active_within_days=None if active is None else float(active),
                labelers=registry.labelers(),
                source=f"{path} [{name} @ {cut:%Y-%m-%d}]",
            )
            for cut in cuts
        ]
        counts[name] = [
            SampleCount(
                cut,
                len(p),
                p.customer_id.n_unique(),
                int(p.labels["churn"].sum()) if p.labels is not None else 0,
            )
            for cut, p in zip(cuts, parts, strict=True)
        ]
        splits[name] = Sequences.concat([p for p in parts if len(p)] or parts[:1])
        if len(splits[name]) == 0:
            raise EventDataError(
                f"{path}: the {name} split has no samples (cutoffs {cuts}); use more customers, "
                "lower data.split fractions, or labels.cutoffs.active_within_days=null"
            )
    schedule.check_sample_counts(counts, str(path))
    return JourneyData(schema, features, labels, vocabs, cutoffs, splits, str(path))


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar sequence length, so little compute goes to padding.

    Shuffled: a random permutation is cut into pools of ``pool_batches`` batches, each pool is
    sorted by length and cut into batches, and the batch order is shuffled. Not shuffled: all
    samples sorted by length (deterministic; predictions map back through ``batch.index``).
    Under DDP each of ``world_size`` ranks takes every ``world_size``-th batch (the same number
    on every rank, so no rank waits on a collective that never comes).
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        pool_batches: int = 50,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.rank, self.world_size = rank, world_size
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.pool = batch_size * pool_batches
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size) // self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches()
        per_rank = len(batches) // self.world_size
        for b in batches[self.rank :: self.world_size][:per_rank] if self.world_size > 1 else batches:
            yield b.tolist()

    def _batches(self) -> list[np.ndarray]:
        n = len(self.lengths)
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        rng = np.random.default_rng((self.seed, self.epoch))
        self.epoch += 1
        perm = rng.permutation(n)
        batches = []
        for start in range(0, n, self.pool):
            pool = perm[start : start + self.pool]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches += [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]


class JourneyDataModule(L.LightningDataModule):
    """Wraps :func:`prepare_data`; ``data`` is available after ``setup()``."""

    def __init__(
        self,
        data_cfg: Mapping[str, Any],
        labels_cfg: Mapping[str, Any],
        batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.data_cfg = data_cfg
        self.labels_cfg = labels_cfg
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.data: JourneyData | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.data is None:
            self.data = prepare_data(self.data_cfg, self.labels_cfg)
            log.info("\n%s", self.data.describe())

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        assert self.data is not None, "call setup() first"
        seqs = self.data.splits[split]
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = LengthBucketSampler(seqs.lengths, self.batch_size, shuffle, self.seed, rank=rank, world_size=world)
        if trainer is not None:
            sampler.epoch = trainer.current_epoch  # a resumed run shuffles as an uninterrupted one
        return DataLoader(
            range(len(seqs)),
            batch_sampler=sampler,
            collate_fn=Collate(seqs),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        # debug=overfit repeats the same batches, which a shuffling sampler would change.
        overfit = self.trainer is not None and bool(self.trainer.overfit_batches)
        return self._loader("train", shuffle=not overfit)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

