"""Segments on a real bundle without reference.json (the rules themselves:
tests/unit/test_segments.py)."""

from __future__ import annotations


def test_a_bundle_without_reference_warns_once_per_process(tiny_bundle, caplog, monkeypatch):
    """Without reference.json the default rules' quantiles cannot be placed: no segment column
    and a warning, said once per bundle (a service or a loop scoring the bundle again is not
    told on every call), and still the first time for another bundle."""
    from journeyformer.inference import decisions
    from journeyformer.inference.bundle import load_bundle

    monkeypatch.setattr(decisions, "_WARNED", set())
    bundle = load_bundle(tiny_bundle)
    with caplog.at_level("WARNING", logger="journeyformer.inference.decisions"):
        first = decisions.Decisions.for_bundle(bundle)
        again = decisions.Decisions.for_bundle(bundle)
    assert first.segments is None and again.segments is None
    assert caplog.text.count("no segment column") == 1 and "re-export with data.path" in caplog.text
    decisions._warn_once("another bundle", "no segment column: x")
    assert caplog.text.count("no segment column") == 2
