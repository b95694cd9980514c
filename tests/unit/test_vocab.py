"""Vocabularies: reserved ids, deterministic order, unknown values, JSON round trip."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import polars as pl
import pytest

from journeyformer.data.features.vocab import (
    PAD,
    PAD_ID,
    UNK,
    UNK_ID,
    Vocab,
    Vocabularies,
    count_unknown,
)


def test_reserved_ids_then_most_frequent_first() -> None:
    values = pl.Series(["b", "a", "c", "a", "b", "a", None, "d"])
    vocab = Vocab.build(values)
    # a x3, b x2, then c and d once each, ties by value; nulls never become a token
    assert vocab.tokens == (PAD, UNK, "a", "b", "c", "d")
    assert (PAD_ID, UNK_ID) == (0, 1)
    assert vocab.index["a"] == 2 and len(vocab) == 6


def test_min_count_and_reserved_strings_in_data() -> None:
    vocab = Vocab.build(pl.Series(["a", "a", "b", PAD, UNK, UNK]), min_count=2)
    assert vocab.tokens == (PAD, UNK, "a")


def test_build_from_a_column_named_n() -> None:
    assert Vocab.build(pl.Series("n", ["x", "x", "y"])).tokens == (PAD, UNK, "x", "y")


def test_encode_unknown_null_and_reserved_strings_map_to_unknown() -> None:
    vocab = Vocab((PAD, UNK, "a", "b"))
    frame = pl.DataFrame({"v": ["b", "a", "zzz", None, PAD, UNK]})
    assert frame.select(vocab.encode("v")).to_series().to_list() == [3, 2, 1, 1, 1, 1]
    assert frame.select(vocab.encode(pl.col("v"), pl.Int32)).to_series().dtype == pl.Int32
    assert vocab.ids(["a", "zzz"]) == [2, 1]


def test_encode_with_nothing_known() -> None:
    vocab = Vocab((PAD, UNK))
    assert pl.DataFrame({"v": ["a", None]}).select(vocab.encode("v")).to_series().to_list() == [
        1,
        1,
    ]


def test_vocab_checks_itself() -> None:
    assert Vocab([PAD, UNK, "a"]).tokens == (PAD, UNK, "a")  # lists are fine
    with pytest.raises(ValueError, match="starts with"):
        Vocab(("a", PAD, UNK))
    with pytest.raises(ValueError, match="unique"):
        Vocab((PAD, UNK, "a", "a"))


def test_json_round_trip(tmp_path: Path) -> None:
    events = pl.DataFrame({"action": ["buy", "view", "view"], "channel": ["web", "app", "web"]})
    vocabs = Vocabularies.build(events, ["action", "channel"])
    path = vocabs.save(tmp_path / "sub" / "vocab.json")
    assert json.loads(path.read_text())["action"] == [PAD, UNK, "view", "buy"]
    loaded = Vocabularies.load(path)
    assert loaded == vocabs and list(loaded) == ["action", "channel"]
    assert loaded.sizes() == {"action": 4, "channel": 4}
    new = pl.DataFrame({"action": ["view", "return"]})
    assert new.select(loaded["action"].encode("action")).to_series().to_list() == [2, 1]
    assert not list(tmp_path.joinpath("sub").glob(".*tmp"))  # atomic write left nothing behind
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert path.stat().st_mode == plain.stat().st_mode  # usual permissions, not mkstemp's 0600


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "vocab.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"vocab\.json: cannot read vocabularies"):
        Vocabularies.load(bad)


def test_count_unknown_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    vocabs = Vocabularies.from_dict({"action": [PAD, UNK, "a"], "channel": [PAD, UNK, "web"]})
    frame = pl.DataFrame({"action": ["a", "b", "c"], "channel": ["web"] * 3})
    with caplog.at_level(logging.INFO, logger="journeyformer.data.features.vocab"):
        counts = count_unknown(frame, vocabs, source="new.parquet")
    assert counts == {"action": 2}
    assert "new.parquet: values unseen in training mapped to <unk>: {'action': 2}" in caplog.text
