"""The training job: fit, keep the best checkpoint, calibrate, score it and the baselines."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pickle
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from journeyformer.config import plain as _plain
from journeyformer.data.features.sequences import Sequences
from journeyformer.data.preprocessing import Preprocessing
from journeyformer.errors import CheckpointError
from journeyformer.evaluation.compare import beats_baselines
from journeyformer.evaluation.protocol import (
    Protocol,
    evaluate,
    fit_baselines,
    score,
    split_protocol,
)
from journeyformer.evaluation.render import render_text
from journeyformer.io import atomic_write_text
from journeyformer.metrics.calibration import apply_temperature, fit_temperature, logit
from journeyformer.metrics.decision import fit_decision_rule
from journeyformer.metrics.scores import expected_calibration_error
from journeyformer.model.checkpoint import read_checkpoint
from journeyformer.model.config import ModelConfig
from journeyformer.model.run import RunManifest, apply_buffers, spec_hash
from journeyformer.model.runner import predict_sequences
from journeyformer.publish import check_inside
from journeyformer.tasks import registry
from journeyformer.tasks.registry import Baselines
from journeyformer.training.blend import Blend, choose_blend, fit_boosters
from journeyformer.training.datamodule import JourneyData
from journeyformer.training.module import JourneyModule, load_module
from journeyformer.training.stream import make_datamodule

log = logging.getLogger(__name__)

METRICS_FILE = "test_metrics.json"
EXPOSURE_WEIGHT = 1.0  # loss weight of a head that learns from exposures (uplift) when data.exposures is set and its weight is null


@dataclass
class TrainResult:
    """What :func:`train` returns: paths, metrics and the objects, for callers and tests."""

    run_dir: Path
    best_checkpoint: Path | None
    metrics: dict[str, Any] = field(default_factory=dict)
    table: str = ""
    seconds: float = 0.0
    module: JourneyModule | None = None
    data: JourneyData | None = None
    manifest: Path | None = None  # run.json


def train(cfg: DictConfig) -> TrainResult:
    """Train on ``cfg.data`` with ``cfg.labels``, keep the best checkpoint, evaluate on test.

    Writes under ``cfg.run_dir``: best.ckpt and last.ckpt (as Lightning writes them), logs/,
    test_metrics.json and, last, the run manifest run.json (:mod:`journeyformer.model.run`)
    that names them and holds the calibration.
    """
    start = time.perf_counter()
    if cfg.get("run_name") is not None:  # run_name is a name under checkpoints/, never a path out
        root = str(cfg.paths.checkpoint_dir)
        check_inside(Path(root) / str(cfg.run_name), root, f"run_name={cfg.run_name}")
    run_dir = Path(str(cfg.run_dir))
    L.seed_everything(int(cfg.seed), workers=True)
    data_cfg, labels_cfg = _plain(cfg.data), _plain(cfg.labels)
    dm = make_datamodule(  # data.store set: training batches stream from the sample store
        data_cfg, labels_cfg, batch_size=int(data_cfg.get("batch_size", 256)),
        num_workers=int(data_cfg.get("num_workers", 0)), seed=int(cfg.seed),
    )  # fmt: skip
    dm.setup()
    phases = {"data": time.perf_counter() - start}
    assert dm.data is not None
    pre = dm.data.preprocessing
    model_sizes = _plain(cfg.model)
    weights = ModelConfig.task_weights(model_sizes)
    if not pre.items:  # no item column (data.columns.item): heads that rank items are simply off
        weights = {k: w for k, w in weights.items() if not registry.get(k).ranks_items}
    if data_cfg.get("exposures"):  # an exposure log switches on the heads that learn from it
        weights = exposure_weights(weights, model_sizes.get("keep_tasks"))
    model_sizes["tasks"] = learnable_tasks(weights, dm.data.splits["train"])
    model_cfg = ModelConfig.from_data(model_sizes, pre)
    if cfg.get("resume_from"):
        _check_resumable(Path(str(cfg.resume_from)), pre, model_cfg.to_dict())
    module = new_module(model_cfg, pre, _plain(cfg.model.get("optimizer")), dm.data.splits["train"])
    run_dir.mkdir(parents=True, exist_ok=True)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    # the side fits end with the run; a run that fails stops them (no LightGBM left running)
    with SideFits.start(cfg, trainer, dm.data, module) as side:
        fit_start = time.perf_counter()
        trainer.fit(module, datamodule=dm, ckpt_path=cfg.get("resume_from"))
        phases["fit"] = time.perf_counter() - fit_start
        best = _best_checkpoint(trainer)
        module = load_module(best) if best is not None else module
        result = TrainResult(run_dir=run_dir, best_checkpoint=best, data=dm.data, module=module)
        buffers: dict[str, float] = {}
        blend: Blend | None = None
        if best is not None and trainer.global_rank == 0:
            result.metrics["calibration"], buffers, heldout = calibrate(result.module, dm.data.splits["val"])
            if cfg.get("blend", True):
                blend = side.blend(result.module, dm.data.splits["val"], heldout)
                result.metrics["blend"] = blend.report() if blend is not None else None
        metrics_file = None
        if cfg.get("evaluate", True) and trainer.global_rank == 0:
            result.metrics.update(
                evaluate_splits(result.module, side.protocol, side.baselines.result(), blend, int(cfg.seed))
            )
    if cfg.get("evaluate", True) and trainer.global_rank == 0:
        result.table = render_text(result.metrics["test"])
        result.metrics["verdicts"] = beats_baselines(result.metrics["test"])
        result.metrics["checkpoint"] = str(best) if best else None
        result.seconds = time.perf_counter() - start
        result.metrics["train_seconds"] = result.seconds
        phases["evaluate"] = result.seconds - phases["data"] - phases["fit"]
        result.metrics["phase_seconds"] = {k: round(v, 1) for k, v in phases.items()}
        metrics_file = run_dir / METRICS_FILE
        atomic_write_text(metrics_file, json.dumps(result.metrics, indent=1))
        print(result.table)
        print(f"metrics: {metrics_file}  checkpoint: {best}")
    if best is not None and trainer.global_rank == 0:
        manifest = _manifest(cfg, trainer, best, result, buffers, metrics_file)
        manifest.blend = blend.save(run_dir) if blend is not None else None
        result.manifest = manifest.write(run_dir)
    result.seconds = time.perf_counter() - start
    split = ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())
    print(f"wall time: {result.seconds:.1f} s ({split}; {trainer.current_epoch} epochs)")
    return result


def new_module(model_cfg: ModelConfig, pre: Preprocessing, optimizer: Any, train: Sequences) -> JourneyModule:
    """The module to train, with what it takes from the training split: the context
    features' standardisation and the sampled-softmax proposal (training item frequencies).
    The train job and the refit build it alike."""
    module = JourneyModule(model_cfg.to_dict(), pre.to_dict(), optimizer)
    if model_cfg.standardize_context:
        module.net.set_context_stats(train.context)
    if module.net.item_task is not None:
        target = train.labels[module.net.item_task.name]
        module.net.set_item_stats(np.concatenate([train.categorical[:, -1], np.ravel(target)]))
    return module


def exposure_weights(weights: dict[str, float], keep: Any = None) -> dict[str, float]:
    """``weights`` with each task that learns from exposures (``needs_exposures``: uplift) at
    ``EXPOSURE_WEIGHT`` where its weight is null (``model.tasks.<task>: null``) and
    ``model.keep_tasks`` does not leave it out; an explicit weight (0: off) stays."""
    kept = None if keep is None else ([keep] if isinstance(keep, str) else list(keep))
    out = dict(weights)
    for task in registry.TASKS.values():
        if task.needs_exposures and out.get(task.name) is None:
            if kept is None or task.name in kept:
                out[task.name] = EXPOSURE_WEIGHT
    return out


def learnable_tasks(tasks: dict[str, float], train: Sequences) -> dict[str, float]:
    """``tasks`` (name -> loss weight) without the heads the training labels cannot teach, by
    each task's own rule (``Task.unlearnable_reason``: e.g. a classification whose labels hold
    a single class, a value target that is always zero). Each switch-off is logged."""
    assert train.labels is not None
    out = dict(tasks)
    for task, weight in tasks.items():
        if not weight or task not in train.labels:
            continue
        why = registry.get(task).unlearnable_reason(train.labels[task])
        if why:
            log.warning("model.tasks.%s switched off: %s; nothing for the head to learn", task, why)
            out[task] = 0.0
    return out


def calibrate(
    module: JourneyModule, val: Sequences
) -> tuple[dict[str, dict[str, float]], dict[str, float], dict[str, np.ndarray]]:
    """Fit the post-hoc calibrations on validation samples and set them on ``module`` (the
    checkpoint file is left as Lightning wrote it; the run manifest carries them).

    Returns (task -> what was fitted, network buffer -> value, output -> its validation values
    under a decision rule fitted on the other half of them: what a later choice on the same
    samples compares, see :mod:`journeyformer.metrics.decision`). Calibrated tasks (churn):
    temperature T of the logit, validation ECE before and after; scaled outputs (value): one
    scale so that the sum of expected value over validation equals the actual sum (the
    zero-inflated log-normal mean over-shoots when sigma is large).
    """
    assert val.labels is not None
    calibrated = [t for t in module.net.tasks if t.calibrated]
    scaled = [t for t in module.net.tasks if t.scaled_output]
    ruled = [t for t in module.net.tasks if t.decision_rule]
    if not calibrated and not scaled and not ruled:
        return {}, {}, {}
    outputs = predict_sequences(module.net, val)
    report: dict[str, dict[str, float]] = {}
    buffers: dict[str, float] = {}
    heldout: dict[str, np.ndarray] = {}
    for task in calibrated:
        p, y = outputs[task.metric_output], val.labels[task.name]
        t = fit_temperature(logit(p), y)
        buffers[f"{task.name}_temperature"] = t
        report[task.name] = {
            "temperature": t,
            "val_ece_before": expected_calibration_error(p, y),
            "val_ece_after": expected_calibration_error(apply_temperature(p, t), y),
        }
    for task in scaled:
        predicted = float(outputs[task.scaled_output].sum())
        actual = float(val.labels[task.name].sum())
        scale = actual / predicted if predicted > 0 and actual > 0 else 1.0
        buffers[f"{task.name}_scale"] = scale
        report.setdefault(task.name, {}).update(
            scale=scale, val_sum_predicted=predicted, val_sum_actual=actual
        )
    for task in ruled:  # stage: argmax offsets and carry-over weight for the headline metric
        rule = fit_decision_rule(
            np.log(np.clip(outputs[task.metric_output], 1e-12, None)),
            val.stage_now,
            val.labels[task.name],
            lambda pred, y, t=task: t.headline_score(pred, y),
        )
        buffers[f"{task.name}_offset"] = [float(v) for v in rule.offset]
        buffers[f"{task.name}_carry"] = rule.carry
        report.setdefault(task.name, {})["decision_rule"] = rule.report()
        shifted = np.exp(rule.heldout_logits - rule.heldout_logits.max(axis=1, keepdims=True))
        heldout[task.metric_output] = (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
    apply_buffers(module.net, buffers, "calibration")
    log.info("calibration on validation: %s", report)
    return report, buffers, heldout


def changed_settings(old: Mapping[str, Any], new: Mapping[str, Any], ignore: Iterable[str] = ()) -> str:
    """``key=<old> there, <new> now`` for (up to four of) the settings that differ; "" if none."""
    changed = sorted(k for k in (set(old) | set(new)) - set(ignore) if old.get(k) != new.get(k))
    return ", ".join(f"{k}={old.get(k)!r} there, {new.get(k)!r} now" for k in changed[:4])


def _check_resumable(checkpoint: Path, pre: Preprocessing, model: dict[str, Any] | None = None) -> None:
    """Resuming is only sound with the same model settings, on data that gives the same
    vocabularies and features."""
    if not checkpoint.exists():
        raise CheckpointError(f"resume_from={checkpoint}: no such checkpoint")
    hp = read_checkpoint(checkpoint)["hyper_parameters"]
    if model is not None and hp["model"] != model:
        raise CheckpointError(
            f"resume_from={checkpoint}: the checkpoint was trained with other model settings "
            f"(differ: {changed_settings(hp['model'], model)}). "
            "Resume with the model settings of that run (e.g. the same model=...), or start a new run."
        )
    old, spec = hp["preprocessing"], pre.to_dict()
    for key in ("vocabs", "features"):
        if old[key] != spec[key]:
            changed = [k for k in set(old[key]) | set(spec[key]) if old[key].get(k) != spec[key].get(k)]
            raise CheckpointError(
                f"resume_from={checkpoint}: the data gives other {key} than the checkpoint was "
                f"trained with (changed: {sorted(changed)}); embeddings would be misread. Resume "
                "on the same data and settings, or start a new run."
            )


def _manifest(cfg: DictConfig, trainer: L.Trainer, best: Path, result: TrainResult, buffers: dict[str, float],
              metrics_file: Path | None) -> RunManifest:  # fmt: skip
    """The run manifest: the files by name (relative to the run directory), the calibration."""
    run_dir = result.run_dir.resolve()

    def relative(path: Path | None) -> str | None:
        if path is None or not path.exists():
            return None
        path = path.resolve()
        return str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path)

    assert result.module is not None
    last = getattr(trainer.checkpoint_callback, "last_model_path", "") or None
    validation = (result.metrics.get("val") or {}).get("model") or {}
    return RunManifest(
        best_checkpoint=str(relative(best)),
        last_checkpoint=relative(Path(last)) if last else None,
        spec_sha256=spec_hash(result.module.hparams["preprocessing"]),
        model=result.module.cfg.to_dict(),
        calibration=result.metrics.get("calibration") or {},
        buffers=buffers,
        validation=validation,
        metrics=relative(metrics_file),
        config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
    )


def _best_checkpoint(trainer: L.Trainer) -> Path | None:
    cb = trainer.checkpoint_callback
    path = getattr(cb, "best_model_path", "") if cb is not None else ""
    return Path(path) if path else None


def evaluate_splits(
    module: JourneyModule, protocol: Protocol, baselines: Baselines, blend: Blend | None = None, seed: int = 0
) -> dict[str, Any]:
    """The evaluation protocol over the splits (:func:`journeyformer.evaluation.protocol.split_protocol`):
    ``test``, the out-of-time test table with the decisions tuned on validation; ``val``, the
    same comparison on the validation split (what sweeps select on). With a ``blend`` the
    model row is the shipped model (each head as chosen on validation) and ``components``
    holds the Transformer alone beside it."""
    tasks = list(module.cfg.tasks)
    with torch.inference_mode():
        outputs = predict_sequences(module.net, protocol.test.seqs)
        val_outputs = predict_sequences(module.net, protocol.val.seqs)
    network = outputs
    if blend is not None:
        outputs = blend.apply(outputs, protocol.test.seqs)
        val_outputs = blend.apply(val_outputs, protocol.val.seqs)
    temperatures = {t.name: float(module.net.temperature(t.name)) for t in module.net.tasks if t.calibrated}
    test, baselines = evaluate(protocol, outputs, val_outputs, tasks, temperatures, seed=seed, baselines=baselines)
    if blend is not None:
        test["components"] = {
            "weights": dict(blend.weights),
            "transformer": {
                t.name: t.score(network[t.metric_output], protocol.test.seqs.labels[t.name])
                for t in module.net.tasks
            },
        }
    val = score(protocol.val, val_outputs, baselines, protocol.baselines, tasks)
    return {"val": val, "test": test}


class _Later:
    """A call made in this process when its result is first asked for."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._call: Callable[[], Any] | None = lambda: fn(*args, **kwargs)
        self._value: Any = None

    def result(self) -> Any:
        if self._call is not None:
            self._value, self._call = self._call(), None
        return self._value


def _side_process(tasks: bytes) -> None:
    """A side process starts at the lowest CPU priority, with the parent's task registry
    (tasks registered at run time included)."""
    os.nice(19)
    registry.TASKS.clear()
    registry.TASKS.update(pickle.loads(tasks))


def _registry_blob() -> bytes | None:
    """The task registry pickled for a side process; None where a task cannot be pickled
    (a class defined inside a function): the fits then run in this process."""
    try:
        return pickle.dumps(dict(registry.TASKS))
    except (pickle.PicklingError, AttributeError, TypeError):
        return None


class SideFits:
    """The LightGBM fits a run needs beside its network: the per-head choice's boosters
    (:func:`journeyformer.training.blend.fit_boosters`) and the test table's baselines
    (:func:`journeyformer.evaluation.protocol.fit_baselines`). Neither reads the network, so
    on one device they start in two processes of their own (LightGBM is not safe for two
    fits at once in one process) when the network starts training, at the lowest CPU
    priority, so they take only the cycles training leaves idle, and finish beside each other
    after it. One thread per fit: the same boosters wherever they run. Elsewhere (several
    devices, a process that may not start one, such as a sweep's worker, or a registered task
    that cannot be pickled) each is fitted here when first asked for."""

    def __init__(
        self, boosters: Any, baselines: Any, widths: dict[str, int], protocol: Protocol, pool: Executor | None
    ) -> None:
        self.boosters, self.baselines, self.widths, self._pool = boosters, baselines, widths, pool
        self.protocol = protocol  # the evaluation's splits, built once for the baselines and the test table

    @classmethod
    def start(cls, cfg: DictConfig, trainer: L.Trainer, data: JourneyData, module: JourneyModule) -> SideFits:
        seed = int(cfg.seed)
        # tasks without a boosting objective (uplift: two arms, no single target) stay the network
        widths = {t.name: t.head_size(module.net.cfg) for t in module.net.tasks if t.boosting}
        train, val = data.splits["train"], data.splits["val"]
        protocol = split_protocol(data.preprocessing, data.splits, data.last_event)
        jobs: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]] = {
            "boosters": (fit_boosters, (train, val, list(widths), widths, seed)),
            "baselines": (fit_baselines, (protocol, list(module.cfg.tasks), seed)),
        }
        wanted = {"boosters": cfg.get("blend", True), "baselines": cfg.get("evaluate", True)}
        pool, tasks = None, _registry_blob()
        if trainer.world_size == 1 and any(wanted.values()) and not multiprocessing.current_process().daemon and tasks:
            context = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(max_workers=2, mp_context=context, initializer=_side_process, initargs=(tasks,))
        out = {}
        for name, (fn, args) in jobs.items():
            out[name] = pool.submit(fn, *args) if pool is not None and wanted[name] else _Later(fn, *args)
        return cls(out["boosters"], out["baselines"], widths, protocol, pool)

    def blend(self, module: JourneyModule, val: Sequences, heldout: dict[str, np.ndarray]) -> Blend | None:
        """Each head among the network, the boosters and their blends, picked on ``val``;
        ``heldout``: outputs whose decision rule was fitted on these samples, as the rule
        fitted on the other half gives them (else the choice would favour the network)."""
        fitted = self.boosters.result()
        if fitted is None:
            return None
        with torch.inference_mode():
            val_outputs = {**predict_sequences(module.net, val), **heldout}
        blend = choose_blend(fitted, list(self.widths), val_outputs, val)
        log.info("%s", blend.describe())
        return blend

    def __enter__(self) -> SideFits:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        self.close(stop=kind is not None)

    def close(self, stop: bool = False) -> None:
        """Shut the side processes down; ``stop``: end fits still running too."""
        if self._pool is None:
            return
        processes = list(getattr(self._pool, "_processes", {}).values()) if stop else []
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)

