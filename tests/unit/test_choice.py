"""The predictor's choice of graph (inference/choice.py): the fastest callable by median; the
choice among a real bundle's graphs is in tests/integration/test_fuse.py."""

from __future__ import annotations

from journeyformer.inference import choice


def test_fastest_takes_the_lowest_median():
    slow_calls = []

    def slow(inputs):
        slow_calls.append(1)
        sum(range(20000))

    best, ms = choice.fastest({"slow": slow, "fast": lambda inputs: None}, {}, rounds=3)
    assert best == "fast" and ms["fast"] < ms["slow"] and len(slow_calls) == 4
