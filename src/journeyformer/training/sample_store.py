"""The sample store: training samples written once, as Parquet shards plus the spec, so
training streams them instead of holding every event in memory::

    store/spec.json                  # the fitted preprocessing, shards, counts, widths
    store/train/shard-00000.parquet  # the samples of the customers of hash shard 0, ...

A shard holds every sample (all cutoffs) of its customers, one row per sample: customer_id,
cutoff, length, stage_now, the events' categorical ids and numeric features flattened
(length x C, length x F), context (S), aggregates (K), ``summary.<name>`` and ``label.<task>``
columns; :meth:`SampleStore.read` turns it back into the
:class:`~journeyformer.data.features.sequences.Sequences` the in-memory path builds. Torch-free.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from journeyformer.data.features.sequences import Sequences
from journeyformer.data.preprocessing import Preprocessing
from journeyformer.errors import ConfigError

STORE_KIND = "journeyformer.sample_store"
STORE_VERSION = 1
SPEC = "spec.json"
_SUMMARY, _LABEL = "summary.", "label."


def _fixed(a: np.ndarray) -> pa.Array:
    """(N, W) -> a fixed-size list column of W values per row; (N,) -> a plain column."""
    if a.ndim == 1:
        return pa.array(a)
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(a).ravel()), a.shape[1])


def _ragged(flat: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """(E, W) rows owned by samples through ``offsets`` -> one list of E_i x W values per sample."""
    width = flat.shape[1]
    return pa.LargeListArray.from_arrays(pa.array(offsets * width), pa.array(np.ascontiguousarray(flat).ravel()))


def sequences_to_table(seqs: Sequences) -> pa.Table:
    """One row per sample (see the module docstring)."""
    cols: dict[str, pa.Array] = {
        "customer_id": seqs.customer_id.to_arrow(),
        "cutoff": pa.array(seqs.cutoff.astype("datetime64[us]"), pa.timestamp("us", "UTC")),
        "length": pa.array(seqs.lengths.astype(np.int32)),
        "stage_now": pa.array(seqs.stage_now),
        "categorical": _ragged(seqs.categorical, seqs.offsets),
        "numeric": _ragged(seqs.numeric, seqs.offsets),
        "context": _fixed(seqs.context),
        "aggregates": _fixed(seqs.aggregates),
    }
    for name in seqs.summary.columns:
        cols[_SUMMARY + name] = seqs.summary.get_column(name).to_arrow()
    for name, values in (seqs.labels or {}).items():
        cols[_LABEL + name] = _fixed(values)
    return pa.table(cols)


def _numpy(table: pa.Table, name: str, widths: Mapping[str, Any]) -> np.ndarray:
    """Column ``name`` as (N,) or, for a list column, (rows, width) of the spec's dtype."""
    width, dtype = widths[name]
    arr = table.column(name).combine_chunks()
    if width is None:
        return arr.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    return arr.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(-1, width)


def table_to_sequences(table: pa.Table, widths: Mapping[str, Any], unknown: Mapping[str, int] | None = None) -> Sequences:
    """A shard's table -> Sequences; ``widths``: the spec's column widths and dtypes."""
    lengths = table.column("length").to_numpy().astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    summary = pl.from_arrow(table.select([c for c in table.column_names if c.startswith(_SUMMARY)]))
    labels = {c[len(_LABEL):]: _numpy(table, c, widths) for c in table.column_names if c.startswith(_LABEL)}
    return Sequences(
        customer_id=pl.from_arrow(table.column("customer_id")).alias("customer_id"),
        cutoff=table.column("cutoff").to_numpy().astype("datetime64[us]"),
        offsets=offsets,
        categorical=_numpy(table, "categorical", widths),
        numeric=_numpy(table, "numeric", widths),
        stage_now=_numpy(table, "stage_now", widths),
        context=_numpy(table, "context", widths),
        summary=summary.rename({c: c[len(_SUMMARY):] for c in summary.columns}),
        aggregates=_numpy(table, "aggregates", widths),
        labels=labels or None,
        unknown_counts=dict(unknown or {}),
    )


def widths_of(seqs: Sequences) -> dict[str, list]:
    """Column -> [width or None, numpy dtype] for :func:`table_to_sequences`."""

    def w(a: np.ndarray) -> list:
        return [a.shape[1] if a.ndim == 2 else None, a.dtype.str]

    out = {"categorical": w(seqs.categorical), "numeric": w(seqs.numeric), "context": w(seqs.context),
           "aggregates": w(seqs.aggregates), "stage_now": w(seqs.stage_now)}  # fmt: skip
    out |= {_LABEL + k: w(v) for k, v in (seqs.labels or {}).items()}
    return out


@dataclass
class SampleStore:
    """An opened store: the spec, and shards read one at a time.

    ``spec["shards"][split]``: one entry per shard with samples, events and unknown counts.
    """

    path: Path
    spec: dict[str, Any]

    @classmethod
    def open(cls, path: str | Path) -> SampleStore:
        path = Path(path)
        try:
            spec = json.loads((path / SPEC).read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"data.store={path}: not a sample store ({err}); build one with "
                "`python scripts/build_store.py` (data.store=<dir>)"
            ) from None
        if spec.get("kind") != STORE_KIND or spec.get("version") != STORE_VERSION:
            raise ConfigError(f"data.store={path}: a store of another kind or version; build it again")
        return cls(path, spec)

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.spec["preprocessing"], str(self.path / SPEC))

    def n_shards(self, split: str) -> int:
        return len(self.spec["shards"][split])

    def samples(self, split: str) -> list[int]:
        """Samples in each shard of ``split``."""
        return [s["samples"] for s in self.spec["shards"][split]]

    def read(self, split: str, shard: int) -> Sequences:
        """The samples of shard ``shard`` of ``split``."""
        entry = self.spec["shards"][split][shard]
        table = pq.read_table(self.path / entry["file"])
        return table_to_sequences(table, self.spec["widths"], entry.get("unknown"))

    def read_all(self, split: str, max_samples: int | None = None) -> Sequences:
        """Every shard of ``split`` in memory (val and test: one cutoff each), or the first
        samples of every shard in proportion, ``max_samples`` in all."""
        total = sum(self.samples(split))
        parts = []
        for i, n in enumerate(self.samples(split)):
            if n == 0:
                continue
            seqs = self.read(split, i)
            if max_samples is not None and total > max_samples:
                seqs = seqs.take(np.arange(max(1, n * max_samples // total)))
            parts.append(seqs)
        return Sequences.concat(parts)
