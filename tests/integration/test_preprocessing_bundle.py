"""A bundle whose preprocessing names other features does not load (the preprocessing object
itself: tests/unit/test_preprocessing.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from journeyformer.inference.bundle import PREPROCESSING, BundleError, load_bundle


def test_a_bundle_with_other_features_does_not_load(tiny_bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    spec = json.loads((copy / PREPROCESSING).read_text())
    spec["preprocessing"]["feature_names"]["context"] = ["log_n_events"]
    (copy / PREPROCESSING).write_text(json.dumps(spec))
    with pytest.raises(BundleError, match="re-export"):
        load_bundle(copy)
