"""Hyperparameter search: an Optuna study over :func:`journeyformer.pipelines.train` (docs/search.md).

Each trial trains in its own folder ``<run_dir>/trial_<n>/`` with settings sampled from
``hparams_search.params``; its value is ``optimized_metric`` ("val/<task>/<metric>") read from
the VALIDATION scoring of its best checkpoint, never from test. The same command with the same
storage and study name resumes the study until ``n_trials`` have finished in total. A failed
trial is recorded and the search goes on, unless no trial has completed yet: then its error
stops the search, as it is most likely a setting rather than the sampled values. Trials run one
after another in this process (a pruning callback reports to the running trial).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.trial import TrialState

from journeyformer.config import plain
from journeyformer.errors import ConfigError
from journeyformer.io import atomic_write_text
from journeyformer.pipelines import optimized_value, train

BEST_FILE = "best_params.json"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # the trials n_trials counts
# distribution type -> the keys its spec may have
SPEC_KEYS = {
    "categorical": {"type", "choices"},
    "int": {"type", "low", "high", "step", "log"},
    "float": {"type", "low", "high", "step", "log"},
}
_ABSENT = object()
_ACTIVE: optuna.Trial | None = None  # the trial training now (PruneOnValidation reports to it)


@dataclass(frozen=True)
class Param:
    """One searched setting: its dotted key in the train config and its distribution."""

    name: str  # e.g. "model.optimizer.lr"
    type: str  # categorical | int | float
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            step = int(self.step or 1)
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=step, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


@dataclass
class SearchResult:
    """What :func:`search` returns: the study, the summary written to ``path``
    (best_params.json) and how many trials this call started."""

    study: optuna.Study
    summary: dict[str, Any]
    path: Path
    started: int

    @property
    def best_value(self) -> float:
        return float(self.summary["best_value"])


class PruneOnValidation(L.Callback):
    """Reports ``monitor`` (as Lightning logs it each validation, e.g. ``val/churn/auroc``) to
    the trial training now, after every validation epoch, and stops the trial when the study's
    pruner says so. Outside a search (no trial running) it does nothing."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trial = _ACTIVE
        if trial is None or trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return  # not logged per epoch: the trial simply is not pruned
        trial.report(float(value), step=trainer.current_epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"{self.monitor}={float(value):.4f} after epoch {trainer.current_epoch}")


class _TrialFailed(Exception):
    """A trial's error after some trial of the study completed: recorded, the search goes on."""


def search_space(params: Mapping[str, Any], cfg: DictConfig | None = None) -> list[Param]:
    """The distributions of ``hparams_search.params``, a mapping nested like the train config
    whose leaves are specs, e.g. ``{model: {d_model: {type: categorical, choices: [32, 64]}}}``
    -> ``[Param("model.d_model", "categorical", (32, 64))]``. With ``cfg``, every key must be
    a setting of it."""
    out: list[Param] = []

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping) and "type" in value:
                out.append(_param(name, value))
            elif isinstance(value, Mapping) and value:
                walk(value, f"{name}.")
            else:
                raise ConfigError(
                    f"hparams_search.params.{name}: expected a distribution such as "
                    "{type: float, low: 0.0, high: 0.3, log: false} or {type: categorical, "
                    f"choices: [32, 64]}} (or a mapping of them), got {value!r}"
                )

    walk(params, "")
    if not out:
        raise ConfigError("hparams_search.params is empty: give at least one setting to search")
    for p in out if cfg is not None else []:
        found = OmegaConf.select(cfg, p.name, default=_ABSENT, throw_on_resolution_failure=False)
        if found is _ABSENT:
            raise ConfigError(
                f"hparams_search.params.{p.name}: {p.name} is not a setting of the train config "
                "(check the spelling against `journeyformer train --cfg job`)"
            )
        if OmegaConf.is_config(found):
            raise ConfigError(
                f"hparams_search.params.{p.name}: {p.name} is a group of settings; search its "
                "single settings (e.g. model.d_model), or pick a group option with a categorical"
            )
    return out


def _param(name: str, spec: Mapping[str, Any]) -> Param:
    where = f"hparams_search.params.{name}"
    kind = spec["type"]
    if kind not in SPEC_KEYS:
        raise ConfigError(f"{where}.type={kind!r}: one of {sorted(SPEC_KEYS)}")
    unknown = sorted(set(spec) - SPEC_KEYS[kind])
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for type {kind}; known: {sorted(SPEC_KEYS[kind])}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list | tuple) or not choices:
            raise ConfigError(f"{where}.choices: a non-empty list of values, got {choices!r}")
        bad = [c for c in choices if not (c is None or isinstance(c, bool | int | float | str))]
        if bad:
            raise ConfigError(f"{where}.choices: values must be numbers, strings, booleans or null, got {bad[0]!r}")
        return Param(name, kind, choices=tuple(choices))
    low, high, step, log_scale = spec.get("low"), spec.get("high"), spec.get("step"), bool(spec.get("log", False))
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)) or low > high:
        raise ConfigError(f"{where}: low and high must be numbers with low <= high, got low={low!r} high={high!r}")
    if log_scale and (low <= 0 or step is not None):
        raise ConfigError(f"{where}: log=true needs low > 0 and no step (got low={low}, step={step})")
    return Param(name, kind, low=float(low), high=float(high), step=step, log=log_scale)


def check_search(cfg: DictConfig) -> str:
    """Refuse settings a search cannot run with, before any training; returns the objective."""
    name = cfg.get("optimized_metric")
    parts = str(name).split("/")
    if len(parts) != 3 or parts[0] != "val":
        raise ConfigError(
            f"optimized_metric={name!r}: a search optimises a validation metric "
            "'val/<task>/<metric>', e.g. val/churn/auroc or val/stage/macro_f1, never test"
        )
    if not cfg.get("evaluate", True):
        raise ConfigError("evaluate=false: each trial's objective comes from the validation scoring that evaluate=true runs; drop evaluate=false")
    if cfg.get("refit") or cfg.get("resume_from"):
        raise ConfigError("refit and resume_from continue one run; a search starts every trial afresh: drop them")
    if "ddp" in str(OmegaConf.select(cfg, "trainer.strategy", default="") or ""):
        raise ConfigError("trainer=ddp: a search trains its trials one after another in one process; use trainer=cpu or trainer=gpu")
    if cfg.get("hparams_search") is None:
        raise ConfigError("hparams_search=null: choose a search space from configs/hparams_search/, e.g. hparams_search=optuna")
    hs = cfg.hparams_search
    if str(hs.get("direction")) not in ("maximize", "minimize"):
        raise ConfigError(f"hparams_search.direction={hs.get('direction')!r}: maximize or minimize (minimize for a loss or an error)")
    if not isinstance(hs.get("n_trials"), int) or hs.n_trials < 1:
        raise ConfigError(f"hparams_search.n_trials={hs.get('n_trials')!r}: a whole number >= 1 (the trials the study should reach in total)")
    return str(name)


def open_study(hs: DictConfig, metric: str) -> optuna.Study:
    """Create the study, or load it from ``hs.storage`` (``hs.load_if_exists``). Its sampler is
    seeded with ``hs.sampler.seed`` plus the number of trials it holds, so a resumed study
    does not replay the samples of its first trials."""
    storage = hs.get("storage")
    if storage and str(storage).startswith("sqlite:///"):
        Path(str(storage)[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    pruner = instantiate(hs.pruner) if hs.get("pruner") else optuna.pruners.NopPruner()
    try:
        study = optuna.create_study(
            storage=storage, study_name=str(hs.study_name), direction=str(hs.direction),
            pruner=pruner, load_if_exists=bool(hs.get("load_if_exists", True)),
        )  # fmt: skip
    except optuna.exceptions.DuplicatedStudyError:
        raise ConfigError(
            f"study {hs.study_name!r} already exists in {storage}: hparams_search.load_if_exists=true "
            "resumes it, or choose another hparams_search.study_name"
        ) from None
    where = f"study {study.study_name!r} in {storage}"
    if study.direction.name.lower() != str(hs.direction):
        raise ConfigError(
            f"{where} was created to {study.direction.name.lower()}, hparams_search.direction="
            f"{hs.direction}: use the study's direction or another hparams_search.study_name"
        )
    recorded = study.user_attrs.get("optimized_metric")
    if recorded is None:
        study.set_user_attr("optimized_metric", metric)
    elif recorded != metric:
        raise ConfigError(
            f"{where} optimises {recorded}, not optimized_metric={metric}: values of two metrics do "
            f"not compare; resume with optimized_metric={recorded} or choose another study_name"
        )
    if not hs.get("sampler"):
        study.sampler = optuna.samplers.TPESampler()
    else:
        sampler = OmegaConf.to_container(hs.sampler, resolve=True)
        if sampler.get("seed") is not None:
            sampler["seed"] = int(sampler["seed"]) + len(study.trials)
        study.sampler = instantiate(sampler)
    return study


def trial_config(base: DictConfig, values: Mapping[str, Any], run_dir: Path, monitor: str | None) -> DictConfig:
    """The train config of one trial: ``base`` with the sampled ``values`` (dotted keys) and its
    own ``run_dir``, the search settings left out; ``monitor``: report it each epoch for pruning."""
    cfg = copy.deepcopy(base)
    with open_dict(cfg):
        for key, value in values.items():
            OmegaConf.update(cfg, key, value, merge=False)
        cfg.run_dir = str(run_dir)
        cfg.pop("hparams_search", None)
        if monitor is not None:
            if cfg.get("callbacks") is None:
                cfg.callbacks = {}
            cfg.callbacks["optuna_pruning"] = {"_target_": f"{__name__}.PruneOnValidation", "monitor": monitor}
    return cfg


def overrides(values: Mapping[str, Any]) -> str:
    """``values`` as command-line overrides, e.g. ``model.d_model=64 model.optimizer.lr=0.0021``."""
    return " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(values.items()))


def search(cfg: DictConfig) -> SearchResult:
    """Run (or resume) the study of ``cfg.hparams_search`` over :func:`pipelines.train` with the
    train settings of ``cfg``; returns a :class:`SearchResult`. See the module docstring."""
    metric = check_search(cfg)
    hs = cfg.hparams_search
    space = search_space(plain(hs.params), cfg)
    run_dir = Path(str(cfg.run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    study = open_study(hs, metric)
    n_trials = int(hs.n_trials)
    monitor = None if isinstance(study.pruner, optuna.pruners.NopPruner) else metric

    def objective(trial: optuna.Trial) -> float:
        global _ACTIVE
        values = {p.name: p.suggest(trial) for p in space}
        trial_dir = run_dir / f"trial_{trial.number}"
        trial.set_user_attr("run_dir", str(trial_dir))
        print(f"trial {trial.number}: {overrides(values)}  ({trial_dir})", flush=True)
        _ACTIVE = trial
        try:
            result = train(trial_config(cfg, values, trial_dir, monitor))
            try:
                return optimized_value(result.metrics, metric)  # the validation split only
            except ValueError as err:
                raise ConfigError(str(err)) from None
        except optuna.TrialPruned:
            raise
        except Exception as err:
            trial.set_user_attr("error", f"{type(err).__name__}: {err}")
            if not any(t.state == TrialState.COMPLETE for t in trial.study.get_trials(deepcopy=False)):
                raise  # nothing has worked yet: most likely a setting, so stop and show it
            raise _TrialFailed(str(err)) from err
        finally:
            _ACTIVE = None

    before = len(study.trials)
    finished = sum(t.state in FINISHED for t in study.trials)
    if finished >= n_trials:
        print(f"study {study.study_name!r} already has {finished} finished trials "
              f"(hparams_search.n_trials={n_trials}): nothing to run; raise n_trials to go on")  # fmt: skip
    else:
        if before:
            print(f"resuming study {study.study_name!r}: {finished} of {n_trials} trials finished, "
                  f"{n_trials - finished} to run")  # fmt: skip
        study.optimize(
            objective, n_trials=n_trials - finished, catch=(_TrialFailed,), gc_after_trial=True,
            callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=FINISHED)],  # other workers
        )  # fmt: skip
    summary = summarize(study, metric, hs.get("storage"), n_trials)
    path = atomic_write_text(run_dir / BEST_FILE, json.dumps(summary, indent=1) + "\n")
    print(report(summary, path))
    return SearchResult(study=study, summary=summary, path=path, started=len(study.trials) - before)


def summarize(study: optuna.Study, metric: str, storage: str | None, n_trials: int) -> dict[str, Any]:
    """best_params.json: the best trial (its value, params and folder), the state counts and
    every trial. Raises when no trial has completed."""
    trials = study.trials
    counts = dict(Counter(t.state.name.lower() for t in trials))
    if not any(t.state == TrialState.COMPLETE for t in trials):
        errors = [f"trial {t.number}: {t.user_attrs['error']}" for t in trials if "error" in t.user_attrs]
        raise RuntimeError(f"study {study.study_name!r}: no trial completed ({counts}); " + "; ".join(errors[-3:]))
    best = study.best_trial
    return {
        "study_name": study.study_name,
        "storage": storage,
        "optimized_metric": metric,
        "direction": study.direction.name.lower(),
        "n_trials": n_trials,
        "states": counts,
        "best_trial": best.number,
        "best_value": best.value,
        "best_params": best.params,
        "best_run_dir": best.user_attrs.get("run_dir"),
        "trials": [
            {"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": t.params,
             "run_dir": t.user_attrs.get("run_dir"), "error": t.user_attrs.get("error")}
            for t in trials
        ],  # fmt: skip
    }


def report(summary: dict[str, Any], path: Path) -> str:
    """The lines printed at the end of a search."""
    states = summary["states"]
    finished = states.get("complete", 0) + states.get("pruned", 0)
    others = ", ".join(f"{n} {s}" for s, n in states.items() if s not in ("complete", "pruned"))
    return "\n".join([
        f"study {summary['study_name']!r} ({summary['storage'] or 'in memory'}): {finished} of "
        f"{summary['n_trials']} trials finished ({states.get('complete', 0)} complete, "
        f"{states.get('pruned', 0)} pruned)" + (f"; also {others} (not counted)" if others else ""),
        f"best: trial {summary['best_trial']}, {summary['optimized_metric']} = {summary['best_value']:.4f} "
        f"({summary['direction']}, validation split)",
        f"  params: {overrides(summary['best_params'])}",
        f"  run: {summary['best_run_dir']}",
        f"best params: {path}",
    ])  # fmt: skip
