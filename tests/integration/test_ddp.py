"""trainer=ddp as far as a CPU machine allows: two processes (gloo) train one model, each
rank on its own share of the batches, and the run leaves one loadable checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from journeyformer.training.datamodule import LengthBucketSampler

ROOT = Path(__file__).resolve().parents[2]


def test_ranks_take_disjoint_batches_of_equal_count():
    lengths = np.random.default_rng(0).integers(1, 64, 1001)
    ranks = [list(LengthBucketSampler(lengths, 16, True, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) > 0  # no rank waits on a collective that never comes
    seen = [{i for b in batches for i in b} for batches in ranks]
    assert not seen[0] & seen[1]


@pytest.mark.slow
def test_trainer_ddp_runs_two_gloo_processes_on_cpu(events_path, tmp_path):
    args = [
        sys.executable, str(ROOT / "scripts" / "train.py"), "model=tiny", f"data.path={events_path}",
        "data.synthetic=null", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
        "trainer.precision=32", "trainer.deterministic=true", "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "logger=csv",
        "data.batch_size=32", "evaluate=false", f"paths.checkpoint_dir={tmp_path / 'checkpoints'}", "run_name=ddp", "seed=7",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "distributed_backend=gloo" in log and "All distributed processes registered" in log
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log  # the second process joined
    # validation losses and metrics are reduced over both ranks (what checkpointing watches)
    assert "It is recommended to use `self.log('val/" not in log
    best = tmp_path / "checkpoints" / "ddp" / "best.ckpt"
    state = torch.load(best, map_location="cpu", weights_only=True)
    assert state["global_step"] > 0
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
