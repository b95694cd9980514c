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
from torch.utils.data import DataLoader, Sampler

from journeyformer.data.events.exposures import ExposureSchema, load_exposures
from journeyformer.data.events.load import load_events
from journeyformer.data.events.schema import EventSchema
from journeyformer.data.features.sequences import Sequences
from journeyformer.data.labels.exposure_samples import exposure_sequences, with_exposures
from journeyformer.data.labels.samples import CutoffSchedule, positives
from journeyformer.data.preprocessing import Preprocessing
from journeyformer.errors import ConfigError
from journeyformer.tasks import registry
from journeyformer.training.batch import Collate

log = logging.getLogger(__name__)


@dataclass
class JourneyData:
    """The fitted preprocessing and the labelled samples of each split."""

    preprocessing: Preprocessing
    splits: dict[str, Sequences]
    source: str
    last_event: datetime | None = None  # the latest event in the data (UTC)

    def describe(self) -> str:
        lines = [f"events: {self.source}"]
        for name, seqs in self.splits.items():
            cut = ", ".join(f"{c:%Y-%m-%d}" for c in self.preprocessing.cutoffs[name])
            counted = registry.counted_label()
            rate = f"  {counted} rate {positives(seqs, counted) / max(len(seqs), 1):.3f}" if counted else ""
            lines.append(f"  {name:<5} {len(seqs):>7} samples {seqs.n_events:>9} events{rate}  cutoffs {cut}")
        lines.append(f"  vocab sizes: {self.preprocessing.vocabs.sizes()}")
        return "\n".join(lines)


def resolve_events_path(data_cfg: Mapping[str, Any]) -> Path:
    """``data.path``; generated first when the config asks for synthetic data."""
    path = Path(str(data_cfg["path"]))
    synthetic = data_cfg.get("synthetic")
    if synthetic:
        from journeyformer.synthetic.config import SyntheticConfig
        from journeyformer.synthetic.journeys import ensure_synthetic

        ensure_synthetic(
            path, SyntheticConfig.from_dict(dict(synthetic)), data_cfg.get("generated_dir")
        )
    return path


def exposures_config(data_cfg: Mapping[str, Any]) -> tuple[str, ExposureSchema] | None:
    """``data.exposures``: the exposure log's path, or a mapping with ``path`` and the
    exposure schema's settings (``columns``, ``arms``, ...; :class:`ExposureSchema`); None when
    the run has no exposures (the uplift head is off)."""
    cfg = data_cfg.get("exposures")
    if not cfg:
        return None
    if isinstance(cfg, str):
        return cfg, ExposureSchema()
    cfg = dict(cfg)
    if not cfg.get("path"):
        raise ConfigError(f"data.exposures needs a path (data.exposures.path=<exposure log>), got {cfg}")
    return str(cfg["path"]), ExposureSchema.from_config(cfg)


def prepare_data(data_cfg: Mapping[str, Any], labels_cfg: Mapping[str, Any]) -> JourneyData:
    """Read events, fit the preprocessing (cutoffs, split, vocabularies from training
    customers' events before the last training cutoff) and build every split's samples with
    the labels of every registered task. Validation and test samples use their own split's
    customers at later cutoffs."""
    path = resolve_events_path(data_cfg)
    events = load_events(path, EventSchema.from_config(data_cfg))
    pre = Preprocessing.fit(events, data_cfg, labels_cfg, source=str(path))
    for warning in pre.labels.check_actions(events.get_column("action").unique().to_list(), str(path)):
        log.warning(warning)
    splits, counts = pre.split_sequences(
        events, labelers=registry.labelers(), source=str(path), counted=registry.counted_label()
    )
    exposures = exposures_config(data_cfg)
    if exposures is not None:  # samples at each eligible exposure: the uplift head's data
        log_path, schema = exposures
        exposed = exposure_sequences(
            pre, events, load_exposures(log_path, schema), registry.labelers(), source=log_path
        )
        splits = with_exposures(splits, exposed)
    schedule = CutoffSchedule.from_config(labels_cfg.get("cutoffs") or {}, pre.horizon_days)
    schedule.check_sample_counts(counts, str(path))
    return JourneyData(pre, splits, str(path), events.get_column("timestamp").max())


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar sequence length, so little compute goes to padding.

    Shuffled: a random permutation is cut into pools of ``pool_batches`` batches, each pool is
    sorted by length and cut into batches, and the batch order is shuffled. Not shuffled: all
    samples sorted by length (deterministic; predictions map back through ``batch.index``).
    Under DDP each of ``world_size`` ranks takes every ``world_size``-th batch (the same number
    on every rank, so no rank waits on a collective that never comes).
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0,
                 pool_batches: int = 50, rank: int = 0, world_size: int = 1) -> None:  # fmt: skip
        self.lengths = np.asarray(lengths)
        self.batch_size, self.shuffle, self.seed, self.rank, self.world_size = batch_size, shuffle, seed, rank, world_size
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

    def __init__(self, data_cfg: Mapping[str, Any], labels_cfg: Mapping[str, Any], batch_size: int = 256,
                 num_workers: int = 0, seed: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.data_cfg, self.labels_cfg = data_cfg, labels_cfg
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.data: JourneyData | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.data is None:
            self.data = prepare_data(self.data_cfg, self.labels_cfg)
            log.info("\n%s", self.data.describe())

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        assert self.data is not None, "call setup() first"
        seqs = self.data.splits[split]
        rank, world, epoch = self.placement()
        sampler = LengthBucketSampler(seqs.lengths, self.batch_size, shuffle, self.seed, rank=rank, world_size=world)
        sampler.epoch = epoch  # a resumed run shuffles as an uninterrupted one
        return DataLoader(range(len(seqs)), batch_sampler=sampler, collate_fn=Collate(seqs),
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)  # fmt: skip

    def placement(self) -> tuple[int, int, int]:
        """(rank, world size, epoch) of the trainer; (0, 1, 0) without one."""
        t = self.trainer
        return (t.global_rank, t.world_size, t.current_epoch) if t is not None else (0, 1, 0)

    def train_dataloader(self) -> DataLoader:
        # debug=overfit repeats the same batches, which a shuffling sampler would change.
        overfit = self.trainer is not None and bool(self.trainer.overfit_batches)
        return self._loader("train", shuffle=not overfit)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

