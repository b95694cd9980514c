"""Refit for production: the selected recipe retrained on all labelled data.

A normal run (``make train``) holds out validation customers one horizon before the test
cutoff and test customers at the test cutoff, and picks its epoch by early stopping on
validation. ``refit=true`` then trains the same model settings from scratch on every labelled
cutoff of the schedule (training, validation and test cutoffs: every cutoff whose label
window ends at or before the last event) and on every customer, for exactly the number of
epochs the normal run selected (the epoch of its ``best.ckpt``). Nothing is held out, so
nothing is early-stopped or scored; the calibration (churn temperature, value scale) is the
one the selected run fitted on its validation samples (its run manifest, ``run.json``), copied
into the refit checkpoint and the refit's own manifest.

Writes ``<run_dir>_refit/`` (``last.ckpt``, ``refit.json``, ``logs/`` and, last, ``run.json``
naming ``last.ckpt``, so ``journeyformer export checkpoint=<run_dir>_refit`` exports it); the
selected run's directory is only read.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import polars as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from journeyformer.config import plain as _plain
from journeyformer.data.events.load import load_events
from journeyformer.data.events.schema import EventSchema
from journeyformer.data.features.sequences import Sequences
from journeyformer.data.features.vocab import Vocabularies
from journeyformer.data.preprocessing import Preprocessing
from journeyformer.errors import ConfigError
from journeyformer.io import atomic_write, atomic_write_text
from journeyformer.jobs.train import TrainResult, changed_settings, new_module
from journeyformer.model.checkpoint import read_checkpoint
from journeyformer.model.config import DATA_DERIVED, ModelConfig
from journeyformer.model.run import MANIFEST, RunManifest, apply_buffers, spec_hash
from journeyformer.tasks import registry
from journeyformer.training.datamodule import JourneyData, JourneyDataModule, resolve_events_path

log = logging.getLogger(__name__)

REFIT_SUFFIX = "_refit"


def refit_dir(run_dir: str | Path) -> Path:
    """Where the refit of the run in ``run_dir`` is written."""
    run_dir = Path(run_dir)
    return run_dir.with_name(run_dir.name + REFIT_SUFFIX)


def selected_run(run_dir: Path) -> tuple[Path, dict[str, Any], int, RunManifest]:
    """The selected run's best checkpoint, its plain values, the number of epochs it trained
    before the best one was saved (Lightning's 0-based ``epoch`` + 1) and its run manifest."""
    manifest = RunManifest.read(run_dir) if (run_dir / MANIFEST).is_file() else None
    best = run_dir / (manifest.best_checkpoint if manifest is not None else "best.ckpt")
    if manifest is None or not best.is_file():
        raise ConfigError(
            f"refit=true reads the selected run in {run_dir}, but it has no best.ckpt named by a "
            f"{MANIFEST}; run the normal training first with the same settings (e.g. `make "
            "train`, then `make train ARGS=refit=true`)"
        )
    ckpt = read_checkpoint(best)
    if "epoch" not in ckpt:
        raise ConfigError(f"{best}: the checkpoint does not record its epoch; retrain the selected run")
    return best, ckpt, int(ckpt["epoch"]) + 1, manifest


def refit_data(data_cfg: Mapping[str, Any], labels_cfg: Mapping[str, Any]) -> JourneyData:
    """Every customer at every labelled cutoff of the schedule, as one training split.

    The vocabularies are rebuilt from all customers' events at or before the latest of those
    cutoffs (the normal run saw only its training customers before its last training cutoff).
    """
    path = resolve_events_path(data_cfg)
    events = load_events(path, EventSchema.from_config(data_cfg))
    pre = Preprocessing.fit(events, data_cfg, labels_cfg, source=str(path))
    last_event = events.get_column("timestamp").max()
    every = sorted({c for cuts in pre.cutoffs.values() for c in cuts})
    cutoffs = tuple(c for c in every if c + pre.labels.horizon <= last_event)
    dropped = [f"{c:%Y-%m-%d}" for c in every if c not in cutoffs]
    if dropped:
        log.warning("refit: cutoff(s) %s left out: their label window runs past the last event", dropped)
    seen = events.filter(pl.col("timestamp") <= max(cutoffs))
    pre = replace(
        pre,
        vocabs=Vocabularies.build(seen, pre.features.categorical),
        cutoffs={**pre.cutoffs, "train": cutoffs},
    )
    parts = [
        pre.sequences(events, cut, labelers=registry.labelers(), source=f"{path} [refit @ {cut:%Y-%m-%d}]")
        for cut in cutoffs
    ]
    train = Sequences.concat([p for p in parts if len(p)] or parts[:1])
    return JourneyData(pre, {"train": train}, str(path), last_event)


def refit(cfg: DictConfig) -> TrainResult:
    """Retrain the run in ``cfg.run_dir`` on all labelled data (see the module doc).

    Returns a TrainResult whose ``metrics["refit"]`` is what ``refit.json`` holds: the
    selected checkpoint, epochs, cutoffs, samples, customers, the copied calibration and the
    wall time.
    """
    start = time.perf_counter()
    selected_dir = Path(str(cfg.run_dir))
    best, selected, epochs, manifest = selected_run(selected_dir)
    out_dir = refit_dir(selected_dir)
    L.seed_everything(int(cfg.seed), workers=True)
    data_cfg, labels_cfg = _plain(cfg.data), _plain(cfg.labels)
    data = refit_data(data_cfg, labels_cfg)
    train = data.splits["train"]
    pre = data.preprocessing
    model_sizes = _plain(cfg.model)
    model_sizes["tasks"] = {k: v for k, v in selected["hyper_parameters"]["model"]["tasks"].items()}
    model_cfg = ModelConfig.from_data(model_sizes, pre)
    diff = changed_settings(selected["hyper_parameters"]["model"], model_cfg.to_dict(), DATA_DERIVED)
    if diff:  # the refit must train the selected recipe: every non-data model setting equal
        raise ConfigError(
            f"refit=true: the model settings differ from the selected run's ({best}: {diff}); "
            "refit with the settings of that run"
        )
    module = new_module(model_cfg, pre, _plain(cfg.model.get("optimizer")), train)
    out_dir.mkdir(parents=True, exist_ok=True)
    loggers = [instantiate(c, save_dir=str(out_dir)) if "save_dir" in c else instantiate(c)
               for c in (cfg.get("logger") or {}).values() if c is not None]  # fmt: skip
    trainer: L.Trainer = instantiate(
        cfg.trainer, max_epochs=epochs, default_root_dir=str(out_dir), limit_val_batches=0,
        enable_checkpointing=False, callbacks=[], logger=loggers or False,
    )  # fmt: skip
    dm = JourneyDataModule(
        data_cfg, labels_cfg, int(data_cfg.get("batch_size", 256)), int(data_cfg.get("num_workers", 0)),
        seed=int(cfg.seed),
    )  # fmt: skip
    dm.data = data
    trainer.fit(module, datamodule=dm)
    trained = int(trainer.current_epoch)  # epochs completed
    # No held-out data is left to calibrate on: the selected run's calibration travels along.
    calibration = dict(manifest.buffers)
    apply_buffers(module.net, calibration, str(selected_dir / MANIFEST))
    log.info("refit: calibration copied from the selected run %s: %s", best, calibration)
    blended = {t: w for t, w in ((manifest.blend or {}).get("weights") or {}).items() if w < 1}
    if blended:  # its boosters read the selected run's vocabulary ids, which the refit rebuilds
        log.warning(
            "refit: the selected run blends LightGBM into %s (network weights %s); the refit "
            "ships the network alone for every head (the per-head choice needs held-out data "
            "and the selected run's vocabularies). Export the selected run to ship the blend.",
            sorted(blended), blended,
        )  # fmt: skip
    checkpoint = out_dir / "last.ckpt"
    atomic_write(checkpoint, lambda tmp: trainer.save_checkpoint(tmp))
    report = {
        "selected_checkpoint": str(best),
        "selected_epochs": epochs,
        "epochs": trained,
        "cutoffs": [c.isoformat() for c in pre.cutoffs["train"]],
        "samples": len(train),
        "customers": int(train.customer_id.n_unique()),
        "selected_cutoffs": selected["hyper_parameters"]["preprocessing"]["cutoffs"],
        "calibration_from_selected_run": calibration,
        "checkpoint": str(checkpoint),
        "seconds": time.perf_counter() - start,
    }
    atomic_write_text(out_dir / "refit.json", json.dumps(report, indent=1))
    RunManifest(
        best_checkpoint=checkpoint.name,
        last_checkpoint=checkpoint.name,
        spec_sha256=spec_hash(module.hparams["preprocessing"]),
        model=module.cfg.to_dict(),
        calibration=manifest.calibration,
        buffers=calibration,
        config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
    ).write(out_dir)
    print(
        f"refit: {len(train)} samples of {report['customers']} customers at "
        f"{len(pre.cutoffs['train'])} cutoffs (latest {max(pre.cutoffs['train']):%Y-%m-%d}), "
        f"{trained} epochs as selected by {best}; calibration copied from it (no held-out "
        f"data is left to fit it on); checkpoint {checkpoint}"
    )
    return TrainResult(out_dir, None, {"refit": report}, seconds=report["seconds"], module=module, data=data)
