"""The bar int8 must meet to be picked by itself (export/quantize.py Int8Report.agreement); the
int8 graphs of a real export are in tests/integration/test_int8.py."""

from __future__ import annotations

import math

import pytest

from journeyformer.export.quantize import AGREEMENT_BAR, Int8Report


def _report(top1: float, diff: float) -> Int8Report:
    return Int8Report(
        rows=1000,
        top1_agreement={"next_action_probs": 0.999, "stage_probs": top1},
        headline={"churn": {"metric": "auroc", "fp32": 0.9, "int8": 0.9 + diff, "diff": diff}},
        max_abs_diff={},
        size_bytes={"fp32": 2, "int8": 1},
    )


@pytest.mark.parametrize(
    ("top1", "diff", "passes"),
    [(0.996, -0.0005, True), (0.994, 0.0, False), (0.999, 0.0015, False), (0.999, math.nan, False)],
)
def test_agreement_bar(top1, diff, passes):
    got = _report(top1, diff).agreement()
    assert got["passes"] is passes
    assert got["top1_agreement_min"] == min(top1, 0.999)
    assert got["bar"] == AGREEMENT_BAR
