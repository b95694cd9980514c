"""Vocabularies for categorical event columns: built on training data, frozen afterwards.

Id 0 is padding and id 1 is unknown in every vocabulary; known values follow in order of
decreasing frequency (ties by value), so ids are deterministic for the same data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from journeyformer.errors import ConfigError
from journeyformer.io import atomic_write_text

log = logging.getLogger(__name__)

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


@dataclass(frozen=True)
class Vocab:
    """Value <-> id for one column. ``tokens[i]`` is the value with id ``i``."""

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", tuple(str(t) for t in self.tokens))
        if self.tokens[:2] != (PAD, UNK):
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {self.tokens[:2]}")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")

    @classmethod
    def build(cls, values: pl.Series, min_count: int = 1) -> Vocab:
        """Most frequent first; values seen fewer than ``min_count`` times map to unknown."""
        return cls.from_counts(values.drop_nulls().cast(pl.String).rename("value").value_counts(name="n"), min_count)

    @classmethod
    def from_counts(cls, counts: pl.DataFrame, min_count: int = 1) -> Vocab:
        """:meth:`build` from value counts (columns ``value``: String, ``n``), e.g. counted by a
        streaming pass over data larger than memory."""
        counts = counts.filter(pl.col("n") >= min_count).sort(
            ["n", "value"], descending=[True, False]
        )
        known = [v for v in counts["value"].to_list() if v not in (PAD, UNK)]
        return cls((PAD, UNK, *known))

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def index(self) -> dict[str, int]:
        return {tok: i for i, tok in enumerate(self.tokens)}

    def encode(self, column: str | pl.Expr, dtype: pl.DataType = pl.Int64) -> pl.Expr:
        """A Polars expression mapping a String column to ids of ``dtype`` (unknown, null -> 1)."""
        expr = pl.col(column) if isinstance(column, str) else column
        if len(self.tokens) == 2:  # nothing known: everything is unknown
            return (expr.is_null() | expr.is_not_null()).cast(dtype) * UNK_ID
        # An Enum of the known tokens numbers them 0, 1, ...; anything else casts to null.
        codes = expr.cast(pl.String).cast(pl.Enum(self.tokens[2:]), strict=False).to_physical()
        return (codes.cast(dtype) + 2).fill_null(UNK_ID)

    def ids(self, values: Iterable[str]) -> list[int]:
        index = self.index
        return [index.get(v, UNK_ID) for v in values]


class Vocabularies(dict[str, Vocab]):
    """Vocabularies by column name, in model input order (action first, then channel, extras)."""

    @classmethod
    def build(
        cls, events: pl.DataFrame, columns: Iterable[str], min_count: int = 1
    ) -> Vocabularies:
        return cls({c: Vocab.build(events.get_column(c), min_count) for c in columns})

    def to_dict(self) -> dict[str, list[str]]:
        return {name: list(v.tokens) for name, v in self.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Iterable[str]]) -> Vocabularies:
        return cls({name: Vocab(tuple(tokens)) for name, tokens in data.items()})

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically (temp file in the same directory, then rename)."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Vocabularies:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path}: cannot read vocabularies ({err}); re-run training") from None
        return cls.from_dict(data)

    def sizes(self) -> dict[str, int]:
        return {name: len(v) for name, v in self.items()}


def count_unknown(
    frame: pl.DataFrame, vocabs: Vocabularies, source: str = "input"
) -> dict[str, int]:
    """Count values that are not in the vocabularies and log one line if any; returns the counts."""
    counts = {}
    for name, vocab in vocabs.items():
        known = pl.Series(vocab.tokens[2:], dtype=pl.String)
        n = frame.select((~pl.col(name).is_in(known.implode())).sum()).item()
        if n:
            counts[name] = int(n)
    if counts:
        log.info("%s: values unseen in training mapped to <unk>: %s", source, counts)
    return counts
