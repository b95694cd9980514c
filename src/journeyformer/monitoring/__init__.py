"""Drift monitoring of a bundle: a population against its validation reference (no torch)."""
