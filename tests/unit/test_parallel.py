"""Batches run at once (data/features/batch.py map_batches, run_in_batches) and how the onnxruntime
runner shares its threads (inference/runner.py parallel_plan, parallel=)."""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest

from journeyformer.data.features.batch import Batch, map_batches, run_in_batches
from journeyformer.errors import ConfigError
from journeyformer.inference.runner import parallel_plan


def _batches(sizes: list[int]) -> list[Batch]:
    """Batches whose rows sit at shuffled positions; input ``x`` is the row's position."""
    order = np.random.default_rng(0).permutation(sum(sizes))
    cut = np.cumsum([0, *sizes])
    return [
        Batch(order[a:b], {"x": order[a:b].astype(np.float32)}, None) for a, b in zip(cut[:-1], cut[1:], strict=True)
    ]


def _slow_double(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    time.sleep(random.random() * 0.01)  # later batches may finish first
    return {"y": inputs["x"] * 2, "thread": np.full(len(inputs["x"]), threading.get_ident())}


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_run_in_batches_puts_rows_back_in_place_whatever_finishes_first(workers):
    batches = _batches([5, 3, 7, 1, 4, 6])
    seen = []
    out = run_in_batches(26, batches, _slow_double, seen.append, workers=workers)
    np.testing.assert_array_equal(out["y"], np.arange(26, dtype=np.float32) * 2)
    assert seen == [5, 3, 7, 1, 4, 6]  # progress in batch order
    assert (len(set(out["thread"])) > 1) == (workers > 1)  # more than one thread did work


def test_map_batches_runs_at_once_and_raises_what_a_batch_raised():
    running, peak, lock = [0], [0], threading.Lock()

    def wait(i: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        if i == 5:
            raise ValueError("batch 5 failed")
        return i

    assert list(map_batches(wait, range(4), workers=3)) == [0, 1, 2, 3] and peak[0] == 3
    peak[0] = 0
    assert list(map_batches(wait, range(4), workers=1)) == [0, 1, 2, 3] and peak[0] == 1
    started = []

    def fail_at_5(i: int) -> int:
        started.append(i)
        return wait(i)

    with pytest.raises(ValueError, match="batch 5 failed"):
        list(map_batches(fail_at_5, range(40), workers=2))
    assert len(started) < 40  # the batches after the failure were not all run


def test_parallel_plan():
    assert parallel_plan("auto", "cpu", 2) == ("batches", 2, 1)
    assert parallel_plan("auto", "cpu", 1) == ("operators", 1, 1)
    assert parallel_plan("auto", "cuda", 4) == ("operators", 1, 4)
    assert parallel_plan("operators", "cpu", 3) == ("operators", 1, 3)
    assert parallel_plan("batches", "cpu", 3) == ("batches", 3, 1)
    with pytest.raises(ConfigError, match="device=cuda use parallel=operators"):
        parallel_plan("batches", "cuda", 2)
    with pytest.raises(ConfigError, match="parallel='threads' is not one of"):
        parallel_plan("threads", "cpu", 2)
