"""Shared fixtures: small synthetic data made in the test session, a tiny trained model.

Tests that train a model or export one are ``slow`` and live in tests/integration/, so that
``make test-fast`` (``-m "not slow"``) stays an inner loop. Requesting one of
``TRAINING_FIXTURES`` (directly or through another fixture) marks a test slow; a test that
trains or exports inline carries ``@pytest.mark.slow`` itself. A test that is not marked and
still calls ``Trainer.fit`` or ``torch.onnx.export`` fails, saying so, as does a test under
tests/unit/ that is marked slow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import SMALL_CUSTOMERS, compose_train, tiny_overrides

# The session fixtures below that train or export (each takes seconds to minutes on a CPU).
TRAINING_FIXTURES = frozenset(
    {
        "tiny_run",
        "tiny_bundle",
        "quantized_bundle",
        "blended_run",
        "blended_bundle",
        "default_net",
        "onnx_graphs",
    }
)
UNIT_DIR = Path(__file__).resolve().parent / "unit"
_running_unmarked: list[str] = []  # the node id of the test being set up or run, when not slow


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if TRAINING_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _refused_unless_slow(what: str, real: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(real)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if _running_unmarked:
            pytest.fail(
                f"{_running_unmarked[0]} {what} but is not marked slow: mark it "
                "@pytest.mark.slow (or use a fixture of tests/conftest.py TRAINING_FIXTURES) "
                "and keep it under tests/integration/",
                pytrace=False,
            )
        return real(*args, **kwargs)

    return guarded


def pytest_configure(config: pytest.Config) -> None:
    import lightning.pytorch as lp
    import torch.onnx

    if not hasattr(lp.Trainer.fit, "__wrapped__"):
        lp.Trainer.fit = _refused_unless_slow("trains a model (Trainer.fit)", lp.Trainer.fit)
    if not hasattr(torch.onnx.export, "__wrapped__"):
        torch.onnx.export = _refused_unless_slow("exports a model (torch.onnx.export)", torch.onnx.export)


def _guarded(item: pytest.Item) -> Iterator[None]:
    slow = item.get_closest_marker("slow") is not None
    if slow and UNIT_DIR in Path(str(item.path)).parents:
        pytest.fail(f"{item.nodeid} is marked slow (it trains or exports): move it to tests/integration/", pytrace=False)
    if not slow:
        _running_unmarked.append(item.nodeid)
    try:
        return (yield)
    finally:
        if not slow:
            _running_unmarked.pop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from _guarded(item))


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """events.parquet + truth files for a small synthetic population (made once a session)."""
    from journeyformer.synthetic.config import SyntheticConfig
    from journeyformer.synthetic.journeys import generate_journeys, write_journeys

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


@pytest.fixture(scope="session")
def quantized_bundle(tiny_run, events_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported once per session with every graph: plain and fused, fp32 and
    int8 (read-only: tests that change a bundle copy it first)."""
    from journeyformer.export.bundle import ValidationData, build_bundle

    out = tmp_path_factory.mktemp("quantized") / "bundle"
    build_bundle(tiny_run.best_checkpoint, out, quantize=True, validation=ValidationData(str(events_path)))
    return out


@pytest.fixture(scope="session")
def blended_run(events_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The tiny run with the per-head choice on (training/blend.py), as train.yaml ships it."""
    from journeyformer.pipelines import train

    run_dir = tmp_path_factory.mktemp("blended_run")
    overrides = [o for o in tiny_overrides(events_path) if o != "blend=false"] + ["blend=true"]
    yield train(compose_train(overrides, run_dir))


@pytest.fixture(scope="session")
def blended_bundle(blended_run, events_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The blended run exported with every graph (plain and fused, fp32 and int8)."""
    from journeyformer.export.bundle import ValidationData, build_bundle

    out = tmp_path_factory.mktemp("blended") / "bundle"
    build_bundle(blended_run.best_checkpoint, out, quantize=True, validation=ValidationData(str(events_path)))
    return out


@pytest.fixture(scope="session")
def default_net(tiny_run, tmp_path_factory: pytest.TempPathFactory):
    """The default model config (train.yaml's ``model``, no override) sized by the tiny run's
    preprocessing, seeded random weights: the block count and head layout users export."""
    import torch
    from omegaconf import OmegaConf

    from journeyformer.data.preprocessing import Preprocessing
    from journeyformer.model.checkpoint import read_checkpoint
    from journeyformer.model.config import ModelConfig
    from journeyformer.model.network import JourneyTransformer

    cfg = compose_train([], tmp_path_factory.mktemp("default_cfg"))
    hp = read_checkpoint(tiny_run.best_checkpoint)["hyper_parameters"]
    pre = Preprocessing.from_dict(hp["preprocessing"], str(tiny_run.best_checkpoint))
    torch.manual_seed(0)
    sizes = OmegaConf.to_container(cfg.model, resolve=True)
    net = JourneyTransformer(ModelConfig.from_data(sizes, pre)).eval()
    assert net.cfg.n_layers >= 2, "the fusion controls need a block after the first"
    return net


@pytest.fixture(scope="session")
def onnx_graphs(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., tuple]:
    """``onnx_graphs(net, last_position_only)``: the net's plain ONNX graph, its fused-attention
    graph and the fusion's count (export/fuse.py), exported once per net and setting in the
    session (default_net's serve the fusion and int8 tests). Read-only: a test that changes a
    graph saves a copy."""
    from journeyformer.export.fuse import fuse_attention
    from journeyformer.export.onnx import export_onnx

    made: dict[tuple[int, bool], tuple] = {}

    def export(net: Any, last_position_only: bool) -> tuple:
        key = (id(net), last_position_only)
        if key not in made:
            out = tmp_path_factory.mktemp("graphs")
            plain = export_onnx(net, out / "model.onnx", last_position_only=last_position_only)
            fused = out / "fused.onnx"
            count = fuse_attention(plain, fused, net.cfg.n_heads, net.cfg.n_layers)
            made[key] = (net, plain, fused, count)  # the net kept alive: its id stays its own
        return made[key][1:]

    return export
