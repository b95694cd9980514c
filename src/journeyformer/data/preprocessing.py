"""The one fitted preprocessing object: schema, features, labels, vocabularies, split, samples.

It is fitted once on the training data (:meth:`Preprocessing.fit`), sizes the model, travels in
the checkpoint and in the bundle's ``preprocessing.json`` as the same dict
(:meth:`Preprocessing.to_dict`), and re-applies itself to new events
(:meth:`Preprocessing.sequences`), like pytorch-forecasting's ``TimeSeriesDataSet.from_dataset``.

Derived values (feature names, stage names, action names, the horizon) are properties. The dict
records ``feature_version`` and the feature names it was fitted with only to check them:
:meth:`from_dict` fails, saying to re-export (or retrain), when this package computes other
features than the ones the model was trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from journeyformer.data.events.as_of import data_end
from journeyformer.data.events.schema import EventSchema
from journeyformer.data.features.definitions import FeatureConfig
from journeyformer.data.features.sequences import Sequences, build_sequences
from journeyformer.data.features.vocab import Vocab, Vocabularies
from journeyformer.data.labels.lifecycle import STAGES, LabelConfig, LabelWindow, samples_at
from journeyformer.data.labels.samples import (
    SPLITS,
    ActivityStart,
    CutoffSchedule,
    SampleCount,
    customers_by_split,
    parse_time,
    positives,
)
from journeyformer.errors import ConfigError, EventDataError

log = logging.getLogger(__name__)

# Bump when a feature changes meaning (not only its name): a model trained on version N
# cannot read features computed by version N + 1.
FEATURE_VERSION = 1


class PreprocessingMismatch(ConfigError):
    """A stored preprocessing dict does not match the features this package computes."""


# Keys of configs/data/*.yaml: the event schema's, the features', the split's and the loader's.
DATA_KEYS = (
    *EventSchema.__dataclass_fields__,
    "path", "synthetic", "generated_dir", "max_len", "context", "batch_size", "num_workers", "split",
    "store", "store_stats_samples",  # training from a sample store (training/stream.py)
    "item_min_count",  # items seen fewer times in training are <unk> (data.columns.item)
    "exposures",  # an exposure log: samples at its exposures train the uplift head (data/labels/exposure_samples.py)
)  # fmt: skip
LABEL_KEYS = (*LabelConfig.__dataclass_fields__, "cutoffs")
CUTOFF_KEYS = (
    *(k for k in CutoffSchedule.__dataclass_fields__ if k != "horizon_days"),
    "active_within_days",
)


def _collect(frame: pl.LazyFrame) -> pl.DataFrame:
    return frame.collect(engine="streaming")


def item_vocab(train_events: pl.DataFrame, min_count: int, schema: EventSchema, source: str) -> Vocab:
    """The item vocabulary: items seen at least ``min_count`` times in the training events
    (data.item_min_count), most frequent first; the rest, and items first seen later, are
    ``<unk>`` (an input, never a recommendation). Errors when no item is left."""
    if min_count < 1:
        raise ConfigError(f"data.item_min_count must be >= 1, got {min_count}")
    items = train_events.get_column("item")
    vocab = Vocab.build(items, min_count)
    col = schema.source("item")
    if len(vocab) <= 2:
        n = items.drop_nulls().n_unique()
        raise EventDataError(
            f"{source}: column '{col}' (item) has no item seen {min_count}+ times in the "
            f"training events ({items.null_count()} of {len(items)} null, {n} distinct); "
            "map the item column with data.columns.item=<your column>, lower "
            "data.item_min_count, or set data.columns.item=null to switch the next-item task off"
        )
    if len(vocab) == 3:
        log.warning(
            "%s: the item catalogue has one item (%r) after data.item_min_count=%d: every "
            "next-item ranking is that item", source, vocab.tokens[2], min_count,
        )
    dropped = items.drop_nulls().n_unique() - (len(vocab) - 2)
    if dropped:
        log.info(
            "%s: %d items seen fewer than data.item_min_count=%d times in training are <unk>; "
            "catalogue of %d items", source, dropped, min_count, len(vocab) - 2,
        )
    return vocab


def check_keys(cfg: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    """A key that is no setting is an error naming it and the known ones (a typo would
    otherwise be ignored and the default used without a word)."""
    unknown = sorted(set(cfg) - set(known))
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {unknown}; known: {sorted(known)}")


def check_data_keys(data_cfg: Mapping[str, Any]) -> None:
    check_keys(data_cfg, DATA_KEYS, "data config")
    check_keys(data_cfg.get("split") or {}, tuple(SplitConfig.__dataclass_fields__), "data.split")


def check_label_keys(labels_cfg: Mapping[str, Any]) -> None:
    check_keys(labels_cfg, LABEL_KEYS, "labels config")
    check_keys(labels_cfg.get("cutoffs") or {}, CUTOFF_KEYS, "labels.cutoffs")


@dataclass(frozen=True)
class SplitConfig:
    """Stable customer hash split (see :func:`journeyformer.data.labels.samples.split_of`)."""

    val_fraction: float = 0.15
    test_fraction: float = 0.15
    salt: str = "journeyformer"
    # "split": training samples are the training customers only; "all": every customer at
    # each training cutoff whose label window ends before that customer's own evaluation
    # cutoff (so validation and test stay out of time; see ``Preprocessing.split_sequences``).
    train_customers: str = "split"

    def __post_init__(self) -> None:
        if self.train_customers not in ("split", "all"):
            raise ConfigError(
                f"data.split.train_customers={self.train_customers!r} is not one of ['split', 'all']"
            )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> SplitConfig:
        cfg = cfg or {}
        return cls(**{k: type(getattr(cls, k))(cfg[k]) for k in cls.__dataclass_fields__ if k in cfg})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def customers(self, events: pl.DataFrame) -> dict[str, pl.Series]:
        """split name -> sorted customer ids of ``events`` in it."""
        return customers_by_split(events, self.val_fraction, self.test_fraction, self.salt)


@dataclass(frozen=True)
class Preprocessing:
    """Everything between raw events and model inputs, fitted on the training data.

    Attributes:
        schema: how to read the user's events.
        features: which columns become features, ``max_len``.
        labels: what the labels mean (horizon, action names, stage rules' settings).
        vocabs: column -> vocabulary, from training customers' events before the last
            training cutoff.
        split: the customer hash split.
        cutoffs: split -> the cutoffs its samples were built at (UTC).
        active_within_days: samples are customers active within this many days before a
            cutoff (None: all customers with history).
        feature_version: FEATURE_VERSION of the package that fitted it.
    """

    schema: EventSchema
    features: FeatureConfig
    labels: LabelConfig
    vocabs: Vocabularies
    split: SplitConfig = field(default_factory=SplitConfig)
    cutoffs: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)
    active_within_days: float | None = None
    feature_version: int = FEATURE_VERSION

    # ---- derived values ------------------------------------------------------------------
    @property
    def numeric_names(self) -> tuple[str, ...]:
        return self.features.numeric_names

    @property
    def context_names(self) -> tuple[str, ...]:
        return self.features.context_names(self.vocabs)

    @property
    def aggregate_names(self) -> tuple[str, ...]:
        """Columns of ``Sequences.aggregates`` (the boosting baseline's features)."""
        return self.features.aggregate_names(self.vocabs)

    @property
    def stages(self) -> tuple[str, ...]:
        return STAGES

    @property
    def actions(self) -> tuple[str, ...]:
        """Action name of each next-action class (index = vocabulary id)."""
        return self.vocabs["action"].tokens

    @property
    def max_len(self) -> int:
        return self.features.max_len

    @property
    def horizon_days(self) -> float:
        return self.labels.horizon_days

    @property
    def items(self) -> tuple[str, ...]:
        """Item id of each next-item class (index = vocabulary id); () without items."""
        return self.vocabs["item"].tokens if self.features.has_item else ()

    @property
    def categorical_sizes(self) -> tuple[int, ...]:
        """Vocabulary size of each categorical feature, action first (sizes the embeddings)."""
        return tuple(len(self.vocabs[c]) for c in self.features.categorical)

    # ---- fitting and applying ------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        events: pl.DataFrame | pl.LazyFrame,
        data_cfg: Mapping[str, Any],
        labels_cfg: Mapping[str, Any],
        source: str = "events",
    ) -> Preprocessing:
        """Fix the cutoff schedule and the split, and build vocabularies from the training
        customers' events at or before the last training cutoff (nothing later is seen).

        ``events``: canonical (validated) events read with ``EventSchema.from_config(data_cfg)``,
        in memory or lazy: a lazy frame is read in streaming passes (data end, activity start,
        customer ids, vocabulary counts), so the sample store fits on events larger than
        memory with this same function.
        """
        check_data_keys(data_cfg)
        check_label_keys(labels_cfg)
        schema = EventSchema.from_config(data_cfg)
        features = FeatureConfig.from_config(data_cfg)
        labels = LabelConfig.from_config(labels_cfg)
        cutoffs_cfg = dict(labels_cfg.get("cutoffs") or {})
        lazy = events.lazy()
        end = data_end(lazy)
        log.info("%s", end.describe(source))
        schedule = CutoffSchedule.from_config(cutoffs_cfg, labels.horizon_days)
        start = ActivityStart.of(lazy, labels)
        cutoffs = schedule.resolve(start.first_event, end.end, start)
        split = SplitConfig.from_config(data_cfg.get("split"))
        by_split = split.customers(_collect(lazy.select(pl.col("customer_id").unique())))
        active = cutoffs_cfg.get("active_within_days")
        active = None if active is None else float(active)
        val_events = lazy.filter(pl.col("customer_id").is_in(by_split["val"].implode()))
        cutoffs = schedule.widen_validation(
            cutoffs, start.at, lambda cut: samples_at(val_events, cut, labels, active)
        )
        last_train = pl.col("timestamp") <= max(cutoffs["train"])
        train = lazy.filter(pl.col("customer_id").is_in(by_split["train"].implode()) & last_train)
        if _collect(train.select(pl.len())).item() == 0:
            raise EventDataError(f"{source}: no training events before {max(cutoffs['train'])}")
        vocabs = Vocabularies({
            col: Vocab.from_counts(_collect(
                train.select(pl.col(col).drop_nulls().cast(pl.String).alias("value"))
                .group_by("value").agg(pl.len().cast(pl.UInt32).alias("n"))
            ))
            for col in features.aggregate_categorical
        })  # fmt: skip
        if features.has_item:
            # The catalogue: items of the training events; with train_customers "all" (every
            # customer's history before the last training cutoff is training data), theirs too.
            seen = lazy.filter(last_train) if split.train_customers == "all" else train
            items = _collect(seen.select("item"))
            vocabs["item"] = item_vocab(items, int(data_cfg.get("item_min_count") or 1), schema, source)
        cutoffs = {k: tuple(v) for k, v in cutoffs.items()}
        return cls(schema, features, labels, vocabs, split, cutoffs, active_within_days=active)

    def sequences(
        self,
        events: pl.DataFrame | pl.LazyFrame,
        cutoff: datetime,
        *,
        customers: pl.Series | None = None,
        with_labels: bool = True,
        labelers: Mapping[str, Callable[[LabelWindow], np.ndarray]] | None = None,
        active_only: bool = True,
        source: str = "events",
    ) -> Sequences:
        """Sequences (and labels) of ``events`` at ``cutoff`` with these vocabularies and
        features; see :func:`journeyformer.data.features.sequences.build_sequences`.

        ``active_only``: keep only customers active within ``active_within_days`` (as the
        training samples were); False scores everyone with history (predict).
        """
        active = self.active_within_days if active_only else None
        return build_sequences(
            events, cutoff, self.vocabs, self.features, self.labels, customers=customers,
            active_within_days=active, with_labels=with_labels, labelers=labelers, source=source,
        )  # fmt: skip

    def split_sequences(
        self,
        events: pl.DataFrame,
        labelers: Mapping[str, Callable[[LabelWindow], np.ndarray]] | None = None,
        source: str = "events",
        counted: str | None = None,
    ) -> tuple[dict[str, Sequences], dict[str, list[SampleCount]]]:
        """split -> labelled samples of its customers at each of its cutoffs, and split -> the
        samples counted per cutoff (for ``CutoffSchedule.check_sample_counts``; ``counted``:
        the binary label whose positives are counted, ``tasks.registry.counted_label()``)."""
        customers = self.split.customers(events)
        out, counts = {}, {}
        for name in SPLITS:
            parts = [
                self.sequences(
                    events, cut, customers=self.customers_at(customers, name, cut), labelers=labelers,
                    source=f"{source} [{name} @ {cut:%Y-%m-%d}]",
                )  # fmt: skip
                for cut in self.cutoffs[name]
            ]
            counts[name] = [
                SampleCount(cut, len(p), p.customer_id.n_unique(), positives(p, counted))
                for cut, p in zip(self.cutoffs[name], parts, strict=True)
            ]
            out[name] = Sequences.concat([p for p in parts if len(p)] or parts[:1])
            if len(out[name]) == 0:
                raise EventDataError(
                    f"{source}: the {name} split has no samples (cutoffs "
                    f"{[f'{c:%Y-%m-%d}' for c in self.cutoffs[name]]}); use more customers, lower "
                    "data.split fractions, or labels.cutoffs.active_within_days=null"
                )
        return out, counts

    def customers_at(self, customers: Mapping[str, pl.Series], split: str, cut: datetime) -> pl.Series:
        """The customers of ``split``'s samples at ``cut``. With ``train_customers: all`` a
        training cutoff also takes the validation and test customers whose own evaluation
        cutoff is at least one horizon later: their training labels end before their
        evaluation starts (out of time), and a schedule that validates at the last training
        cutoff (short histories) keeps its validation customers out of training there."""
        if split != "train" or self.split.train_customers == "split":
            return customers[split]
        later = [
            customers[other]
            for other in ("val", "test")
            if self.cutoffs.get(other) and cut + self.labels.horizon <= min(self.cutoffs[other])
        ]
        return pl.concat([customers["train"], *later]).sort()

    # ---- the dict that travels -----------------------------------------------------------
    def _feature_names(self) -> dict[str, list[str]]:
        return {"numeric": list(self.numeric_names), "context": list(self.context_names), "stages": list(self.stages)}

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (JSON and ``torch.load(weights_only=True)`` safe)."""
        return {
            "feature_version": self.feature_version,
            "schema": self.schema.to_dict(),
            "features": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.features).items()},
            "feature_names": self._feature_names(),  # checked on load (from_dict), never read
            "labels": self.labels.to_dict(),
            "vocabs": self.vocabs.to_dict(),
            "split": self.split.to_dict(),
            "cutoffs": {k: [c.isoformat() for c in v] for k, v in self.cutoffs.items()},
            "active_within_days": self.active_within_days,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "preprocessing") -> Preprocessing:
        """Rebuild from :meth:`to_dict`; raises :class:`PreprocessingMismatch` when the features
        this package computes differ from the recorded ones."""
        version = d.get("feature_version")
        if version != FEATURE_VERSION:
            raise PreprocessingMismatch(
                f"{source}: features of version {version}, this package computes version "
                f"{FEATURE_VERSION}; re-export the bundle from a checkpoint trained with this "
                "version of journeyformer (or retrain)"
            )
        pre = cls(
            schema=EventSchema.from_config(d["schema"]),
            features=FeatureConfig(**d["features"]),  # older dicts lack context: the summary
            labels=LabelConfig.from_config(d["labels"]),
            vocabs=Vocabularies.from_dict(d["vocabs"]),
            split=SplitConfig.from_config(d.get("split")),
            cutoffs={k: tuple(parse_time(c) for c in v) for k, v in (d.get("cutoffs") or {}).items()},
            active_within_days=d.get("active_within_days"),
            feature_version=int(version),
        )
        recorded = d.get("feature_names") or {}
        changed = {k: (recorded.get(k), v) for k, v in pre._feature_names().items() if recorded.get(k) != v}
        if changed:
            detail = "; ".join(f"{k}: trained {old}, now {new}" for k, (old, new) in changed.items())
            raise PreprocessingMismatch(
                f"{source}: this package computes other features than the model was trained on "
                f"({detail}); re-export the bundle with this version of journeyformer (or retrain)"
            )
        return pre
