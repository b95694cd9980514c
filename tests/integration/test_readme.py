"""The README's quick-start commands, run as a user would: subprocesses in an empty directory.

generate-data -> train (model=tiny) -> export -> predict -> evaluate, each as written in the
README (plus a smaller population and one epoch), then their outputs are checked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

BIN = Path(sys.executable).parent
N_CUSTOMERS = 400  # a few hundred: seconds per command
SMALL = [f"data.synthetic.n_customers={N_CUSTOMERS}"]


def journeyformer(args: list[str], cwd: Path) -> str:
    """Run ``journeyformer <args>`` in ``cwd``; its stdout (a failure shows both streams)."""
    proc = subprocess.run(
        [str(BIN / "journeyformer"), *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"journeyformer {' '.join(args)}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.mark.slow
def test_readme_quick_start_commands(tmp_path: Path) -> None:
    journeyformer(["generate-data", *SMALL], tmp_path)
    generated = tmp_path / f"data/generated/synthetic_n{N_CUSTOMERS}_s0/events.parquet"
    assert pl.scan_parquet(generated).select(pl.col("customer_id").n_unique()).collect().item() == N_CUSTOMERS
    shutil.copy(generated, tmp_path / "events.parquet")  # the README's input=events.parquet

    out = journeyformer(
        ["train", "model=tiny", "trainer.max_epochs=1", *SMALL, "labels.cutoffs.sparse=warn"], tmp_path
    )
    run = tmp_path / "checkpoints/tiny_h30_s42"
    manifest = json.loads((run / "run.json").read_text())
    assert (run / manifest["best_checkpoint"]).is_file() and manifest["best_checkpoint"] == "best.ckpt"
    assert "out-of-time test set: " in out and "baselines fitted on the train split" in out

    journeyformer(["export", "checkpoint=checkpoints/tiny_h30_s42/best.ckpt"], tmp_path)
    bundle = run / "bundle"
    spec = json.loads((bundle / "preprocessing.json").read_text())
    assert spec["temperatures"]["churn"] == pytest.approx(manifest["buffers"]["churn_temperature"], rel=1e-6)
    assert json.loads((bundle / "metrics.json").read_text())["verdicts"] == json.loads(
        (run / manifest["metrics"]).read_text()
    )["verdicts"]

    journeyformer(["predict", "bundle=checkpoints/tiny_h30_s42/bundle", "input=events.parquet"], tmp_path)
    predictions = pl.read_parquet(tmp_path / "predictions.parquet")
    assert predictions.height > 0 and predictions["churn_probability"].is_between(0, 1).all()

    out = journeyformer(["evaluate", "bundle=checkpoints/tiny_h30_s42/bundle", "input=events.parquet"], tmp_path)
    assert "evaluation input events.parquet: " in out and "baselines fitted on the same input" in out
    metrics = json.loads((bundle / "report/metrics.json").read_text())
    assert (bundle / "report/report.html").is_file() and metrics["n"] > 0
    assert set(metrics["model"]) == set(spec["tasks"]) - {t for t, w in spec["tasks"].items() if not w}
