"""Shared fixtures: small synthetic data made in the test session, a tiny trained model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import SMALL_CUSTOMERS, compose_train, tiny_overrides


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """events.parquet + truth files for a small synthetic population (made once a session)."""
    from journeyformer.data.synthetic import SyntheticConfig, generate_journeys, write_journeys

    out = tmp_path_factory.mktemp("synthetic")
    write_journeys(generate_journeys(SyntheticConfig(n_customers=SMALL_CUSTOMERS, seed=3)), out)
    return out


@pytest.fixture(scope="session")
def events_path(synthetic_dir: Path) -> Path:
    return synthetic_dir / "events.parquet"


@pytest.fixture(scope="session")
def tiny_run(events_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A tiny model trained once per session: TrainResult with best_checkpoint and metrics."""
    from journeyformer.pipelines import train

    run_dir = tmp_path_factory.mktemp("tiny_run")
    yield train(compose_train(tiny_overrides(events_path), run_dir))


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported once per session (fp32 bundle directory)."""
    from journeyformer.export.bundle import build_bundle

    out = tmp_path_factory.mktemp("bundle") / "bundle"
    build_bundle(tiny_run.best_checkpoint, out)
    return out
