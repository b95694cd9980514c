"""Test builders shared by the tests: Hydra configs composed outside a Hydra run, canonical
event frames from short tuples, random model input batches."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from journeyformer.data.events.order import ROW

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")
SMALL_CUSTOMERS = 1500


def compose_train(overrides: list[str], run_dir: Path) -> DictConfig:
    """The train config with ``overrides``, outside a Hydra run (no ${hydra:...} needed)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=False)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.run_dir = str(run_dir)
    return cfg


def tiny_overrides(events: Path) -> list[str]:
    """A seconds-long CPU run on ``events``."""
    return [
        "model=tiny",
        f"data.path={events}",
        "data.synthetic=null",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "logger=csv",
        "seed=7",
        # The network alone: tests compare the bundle with torch. The per-head choice has its
        # own fixtures (blended_run, blended_bundle) and tests (tests/integration/test_blend.py).
        "blend=false",
        # One validation cutoff, as the tests' numbers were set with: pooling earlier ones
        # (labels.cutoffs.val_samples) has its own tests (tests/unit/test_schedule.py).
        "labels.cutoffs.max_val_cutoffs=1",
    ]




# ---- builders: event frames and model inputs --------------------------------------------
EVENT_FIELDS = ("customer_id", "timestamp", "action", "channel", "amount")
EVENT_DEFAULTS = {"channel": "web", "amount": 0.0}


def event_frame(
    rows: Sequence[Sequence[Any]],
    fields: Sequence[str] = EVENT_FIELDS,
    with_row: bool = True,
) -> pl.DataFrame:
    """Canonical events (as ``load_events`` returns them) from short tuples.

    Each row holds the values of ``fields`` in order; trailing ones may be left out (channel
    "web", amount 0). Timestamps are datetimes or ISO strings ("2025-01-31", "2025-01-31
    12:00", ...), read as UTC. ``with_row`` adds ``_row``, the input position. Example::

        event_frame([(1, "2025-01-01", "view"), (1, "2025-01-02 10:00", "purchase", "app", 40.0)])
    """
    missing = [f for f in EVENT_FIELDS if f not in fields and f not in EVENT_DEFAULTS]
    assert not missing, f"rows need {missing}"
    columns: dict[str, list[Any]] = {f: [] for f in (*fields, *(f for f in EVENT_DEFAULTS if f not in fields))}
    for row in rows:
        values = dict(zip(fields, row, strict=False))
        for name in columns:
            value = values.get(name, EVENT_DEFAULTS.get(name))
            if name == "timestamp" and isinstance(value, str):
                value = datetime.fromisoformat(value)
            if name == "timestamp" and value.tzinfo is None:
                value = value.replace(tzinfo=timezone.utc)
            columns[name].append(float(value) if name == "amount" else value)
    frame = pl.DataFrame(
        {name: columns[name] for name in (*EVENT_FIELDS, *(c for c in columns if c not in EVENT_FIELDS))},
        schema_overrides={"timestamp": pl.Datetime("us", "UTC"), "amount": pl.Float64},
    )
    return frame.with_row_index(ROW) if with_row else frame


def model_inputs(cfg: Any, b: int = 4, t: int = 10, seed: int = 0) -> tuple[Any, ...]:
    """A valid right-padded random batch as torch tensors, in the model's input order
    (categorical (B, T, C), numeric (B, T, F), lengths (B,), stage_now (B,), context (B, S));
    the first sample is exactly ``t`` long. The same batches as the export's parity check."""
    import torch

    from journeyformer.data.features.batch import MODEL_INPUTS
    from journeyformer.export.onnx import random_inputs

    inputs = random_inputs(cfg, b, t, seed=seed)
    return tuple(torch.from_numpy(inputs[name]) for name in MODEL_INPUTS)


def assert_same_predictions(left: pl.DataFrame, right: pl.DataFrame, rel: float = 1e-5) -> None:
    """``left`` and ``right`` are the same predictions up to float rounding.

    Scores agree to ``rel``. A driver effect is a difference of two scores, so it agrees to
    ``rel`` times the largest score it was taken from (not times the effect itself: two paths
    that batch customers differently round a value of 500 by a few 1e-4, and an effect of -28
    inherits that). Driver names may differ only where the effects beside them tie to within
    that tolerance (a near tie ordered either way) or at the last place (the next driver, not
    shown, may tie with it)."""
    from polars.testing import assert_frame_equal

    assert left.columns == right.columns and left.height == right.height
    drivers = [c for c in left.columns if c.endswith("_drivers") or c.endswith("_driver_effects")]
    plain = [c for c in left.columns if c not in drivers]
    assert_frame_equal(left.select(plain), right.select(plain), check_exact=False, rel_tol=rel, abs_tol=rel)
    scores = {"churn": "churn_probability", "value": "expected_value"}
    for target in sorted({c.rsplit("_driver", 1)[0] for c in drivers}):
        score = scores.get(target)
        scale = max(1.0, float(left[score].abs().max())) if score in left.columns else 1.0
        tol = 2 * rel * scale
        names_a, names_b = left[f"{target}_drivers"].to_list(), right[f"{target}_drivers"].to_list()
        eff_a, eff_b = left[f"{target}_driver_effects"].to_list(), right[f"{target}_driver_effects"].to_list()
        for row, (na, nb, ea, eb) in enumerate(zip(names_a, names_b, eff_a, eff_b, strict=True)):
            if na is None or nb is None:
                assert na is None and nb is None and ea is None and eb is None, (target, row)
                continue
            assert len(na) == len(nb) == len(ea) == len(eb), (target, row, na, nb)
            gaps = [abs(x - y) for x, y in zip(ea, eb, strict=True)]
            assert max(gaps, default=0.0) <= tol, f"{target} driver effects, row {row}: {ea} vs {eb} (tolerance {tol:.2g})"
            for i, (x, y) in enumerate(zip(na, nb, strict=True)):
                tied = i == len(na) - 1 or any(abs(abs(ea[i]) - abs(ea[j])) <= tol for j in range(len(ea)) if j != i)
                assert x == y or tied, f"{target} drivers, row {row}: {na} vs {nb} (effects {ea})"


class SlowUnpickle:
    """Pickles to something that takes ``seconds`` to load in another process, then is
    ``blob`` unpickled: a side process stays busy long enough for a test to see whether it
    was stopped."""

    def __init__(self, blob: bytes, seconds: float) -> None:
        self.blob, self.seconds = blob, seconds

    def __reduce__(self) -> tuple[Any, ...]:
        return _slow_load, (self.blob, self.seconds)


def _slow_load(blob: bytes, seconds: float) -> Any:
    import pickle
    import time

    time.sleep(seconds)
    return pickle.loads(blob)
