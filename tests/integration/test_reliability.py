"""Issue 9, end to end: tampered bundles, refused outputs, kills, one-line errors, overrides."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from support import CONFIG_DIR, compose_train, tiny_overrides

from journeyformer.errors import CheckpointError, EventDataError, OutputError
from journeyformer.inference.bundle import PREPROCESSING, BundleError
from journeyformer.inference.local import predict_events
from journeyformer.publish import manifest_path, verify_manifest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bundle(tiny_bundle, tmp_path) -> Path:
    """A private copy of the session bundle, free to damage."""
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def _edit_spec(bundle: Path, change) -> None:
    path = bundle / PREPROCESSING
    spec = json.loads(path.read_text())
    change(spec)
    path.write_text(json.dumps(spec, indent=1))


def _flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


TAMPERING = {
    "flipped weight bit": (lambda b: _flip_bit(b / "model.onnx"), "model.onnx: checksum mismatch"),
    "truncated model": (
        lambda b: (b / "model.onnx").write_bytes((b / "model.onnx").read_bytes()[:1000]),
        "model.onnx: size check failed",
    ),
    "missing model": (lambda b: (b / "model.onnx").unlink(), "model.onnx: missing from the bundle"),
    "swapped vocabulary entries": (
        lambda b: _edit_spec(b, lambda s: s["preprocessing"]["vocabs"]["action"].insert(2, s["preprocessing"]["vocabs"]["action"].pop(3))),
        "preprocessing.json: checksum mismatch: the file was edited",
    ),
    "edited max_len": (
        lambda b: _edit_spec(b, lambda s: s["preprocessing"]["features"].update(max_len=8)),
        "preprocessing.json: checksum mismatch",
    ),
    "missing key": (lambda b: _edit_spec(b, lambda s: s["preprocessing"].pop("vocabs")), "required key 'preprocessing.vocabs' is missing"),
    "damaged JSON": (
        lambda b: (b / PREPROCESSING).write_text((b / PREPROCESSING).read_text()[:200]),
        "preprocessing.json: not valid JSON",
    ),
    "older format": (
        lambda b: _edit_spec(b, lambda s: s.update(format_version=1)),
        "bundle format 1, this package reads format 4; re-export",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampered_bundle_fails_before_scoring(bundle, events_path, tmp_path, case):
    tamper, expected = TAMPERING[case]
    tamper(bundle)
    out = tmp_path / "p.parquet"
    with pytest.raises(BundleError) as info:
        predict_events(bundle, events_path, out, progress=False)
    assert expected in str(info.value)
    assert info.value.__cause__ is None
    assert not out.exists()


def test_predict_refuses_before_any_work(tiny_bundle, events_path, tmp_path):
    events = tmp_path / "e.parquet"
    shutil.copy(events_path, events)
    before = events.read_bytes()
    with pytest.raises(OutputError, match="is the input itself"):
        predict_events(tiny_bundle, events, events, progress=False)
    assert events.read_bytes() == before
    out = tmp_path / "p.parquet"
    with pytest.raises(OutputError, match="is the same file as"):
        predict_events(tiny_bundle, events, out, rejects=out, progress=False)
    (tmp_path / "outdir").mkdir()
    with pytest.raises(OutputError, match="existing directory"):
        predict_events(tiny_bundle, events, tmp_path / "outdir", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.parquet", "outdir"]  # no rejects


def test_predictions_and_rejects_published_with_a_manifest(tiny_bundle, events_path, tmp_path):
    out = tmp_path / "p.parquet"
    result = predict_events(tiny_bundle, events_path, out, progress=False)
    record = verify_manifest(manifest_path(out))
    assert record["files"]["predictions"]["rows"] == result.n_scored
    assert record["files"]["rejects"]["rows"] == result.n_rejected


def test_a_stray_future_event_neither_moves_as_of_nor_passes_silently(
    tiny_bundle, events_path, tmp_path
):
    events = pl.read_parquet(events_path)
    stray = events.head(1).with_columns(pl.lit("2200-01-01T00:00:00").str.to_datetime(time_zone="UTC").dt.cast_time_unit(events.schema["timestamp"].time_unit).alias("timestamp"))
    path = tmp_path / "e.parquet"
    pl.concat([events, stray]).write_parquet(path)
    out = tmp_path / "p.parquet"
    with pytest.raises(EventDataError, match="after the wall clock"):
        predict_events(tiny_bundle, path, out, progress=False)
    assert not out.exists()
    result = predict_events(
        tiny_bundle, path, out, schema_overrides={"future_events": "keep"}, progress=False
    )
    assert result.as_of == events["timestamp"].max()
    out.unlink()
    dropped = predict_events(tiny_bundle, path, out, schema_overrides={"future_events": "drop"}, progress=False)
    assert dropped.as_of == events["timestamp"].max() and dropped.n_scored == result.n_scored

    from journeyformer.evaluation.evaluate import evaluate_bundle

    ev = evaluate_bundle(tiny_bundle, path, data_overrides={"future_events": "keep"}, progress=False)
    assert ev.as_of == events["timestamp"].max() - ev.bundle.preprocessing.labels.horizon


def test_export_refuses_the_run_directory_and_damaged_checkpoints(tiny_run, tmp_path):
    from journeyformer.export.bundle import build_bundle

    run = tmp_path / "run"
    run.mkdir()
    ckpt = Path(shutil.copy(tiny_run.best_checkpoint, run / "best.ckpt"))
    (run / "test_metrics.json").write_text("{}")
    with pytest.raises(OutputError, match="contains the input"):
        build_bundle(ckpt, run)
    assert sorted(p.name for p in run.iterdir()) == ["best.ckpt", "test_metrics.json"]
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(ckpt.read_bytes()[:5000])
    foreign = tmp_path / "foreign.ckpt"
    torch.save({101: "x"}, foreign)
    for bad in (truncated, foreign, tmp_path / "missing.ckpt"):
        with pytest.raises(CheckpointError, match=bad.name):
            build_bundle(bad, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_resume_with_another_model_size_is_a_clear_error(tiny_run):
    from journeyformer.jobs.train import _check_resumable

    hp = torch.load(tiny_run.best_checkpoint, weights_only=True)["hyper_parameters"]
    pre = tiny_run.data.preprocessing
    _check_resumable(tiny_run.best_checkpoint, pre, hp["model"])
    bigger = {**hp["model"], "d_model": hp["model"]["d_model"] * 2}
    with pytest.raises(CheckpointError, match=r"other model settings \(differ: d_model="):
        _check_resumable(tiny_run.best_checkpoint, pre, bigger)


def test_run_name_cannot_escape_checkpoints(events_path, tmp_path):
    from journeyformer.pipelines import train

    cfg = compose_train([*tiny_overrides(events_path), "run_name=../../escaped"], tmp_path / "run")
    with pytest.raises(OutputError, match="outside"):
        train(cfg)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("config", ["predict", "evaluate", "export"])
def test_data_overrides_work_without_plus(config):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name=config,
            overrides=[
                "data.columns.customer_id=user_id",
                "data.time_zone=Europe/Paris",
                "data.separator=';'",
                "data.future_events=drop",
            ],
        )
    assert cfg.data.columns.customer_id == "user_id" and cfg.data.columns.timestamp is None
    assert cfg.data.separator == ";" and cfg.data.future_events == "drop"


def _script(name: str, args: list[str], cwd: Path, env: dict | None = None, **kw):
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / f"{name}.py"), *args],
        cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, **kw,
    )  # fmt: skip


@pytest.mark.slow
def test_script_errors_are_one_line_unless_debug(bundle, events_path, tmp_path):
    _flip_bit(bundle / "model.onnx")
    args = [f"bundle={bundle}", f"data.path={events_path}", f"output={tmp_path / 'p.parquet'}"]
    proc = _script("predict", args, tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and "model.onnx: checksum mismatch" in lines[0]
    assert "Traceback" not in err and "HYDRA_FULL_ERROR" not in err and len(lines) == 2
    proc = _script("predict", args, tmp_path, env={"JOURNEYFORMER_DEBUG": "1"})
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Traceback" in err and "BundleError" in err


DRIVER = """
import runpy, sys, time
from pathlib import Path
from journeyformer.inference.scoring import ScoringJob

flag = Path(sys.argv.pop())

def stalled(*args, **kwargs):
    flag.write_text("scoring")
    time.sleep(120)

ScoringJob.score = stalled
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow
def test_sigterm_during_predict_leaves_the_previous_output_and_no_temp(
    tiny_bundle, events_path, tmp_path
):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out, rejects = out_dir / "p.parquet", out_dir / "p.rejects.parquet"
    out.write_text("previous predictions")
    rejects.write_text("previous rejects")
    flag = tmp_path / "scoring"
    args = [str(ROOT / "scripts" / "predict.py"), f"bundle={tiny_bundle}", f"data.path={events_path}",
            f"output={out}", "progress=false", str(flag)]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, *args], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while not flag.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert flag.exists(), proc.communicate()[1]
    assert any(p.name.endswith(".tmp") for p in out_dir.iterdir())  # mid-run: temps exist
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["p.parquet", "p.rejects.parquet"]
    assert out.read_text() == "previous predictions"
    assert rejects.read_text() == "previous rejects"


def test_evaluate_refuses_a_foreign_output_directory_before_work(tiny_bundle, events_path, tmp_path):
    from journeyformer.evaluation.report import evaluate_from_config

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    cfg = {"bundle": str(tiny_bundle), "data": {"path": str(events_path)}, "output": str(mine), "progress": False}
    with pytest.raises(OutputError, match=r"not made by the evaluation .*\['notes.txt'\]"):
        evaluate_from_config(cfg)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
