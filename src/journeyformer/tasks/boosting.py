"""Gradient boosting (LightGBM) on per-customer aggregates: the practitioner's strongest
baseline, fitted on the model's own training samples and early-stopped on its validation samples.
Every task lists :class:`Boosted` among its baselines, so it is in every table and the bar the
headline metrics are judged against.

One booster per task on ``Sequences.aggregates`` (:mod:`journeyformer.data.features.aggregates`; the
last action, last channel and current stage as categorical features), with the objective the
task declares (``Task.boosting``): a binary log-loss gives a probability, a multiclass one a
(N, head_size) matrix of probabilities over the classes seen as labels in training (0 for the
others), a Tweedie one (value) an expected amount. Only the samples of the task's
``label_mask`` are fitted on, and a task whose training labels its ``unlearnable_reason``
rejects gets no booster.

Rounds stop when the validation loss has not improved for ``patience`` rounds. lightgbm is an
optional dependency (``pip install journeyformer[baseline]``); without it :func:`available`
is False and the baseline is left out, said in the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from journeyformer.data.features.aggregates import CATEGORICAL_AGGREGATES
from journeyformer.data.features.sequences import Sequences
from journeyformer.data.labels.lifecycle import STAGES
from journeyformer.tasks.base import Baseline, BaselineContext, Task

log = logging.getLogger(__name__)

# LightGBM's native library is not safe for two trainings or predictions at once in one process
# (its docs on num_threads; a test run here died with a segmentation fault while the per-head
# choice's fits ran in a thread beside the test table's): every call into it holds this lock.
# Torch and NumPy work still runs beside a fit.
NATIVE_LOCK = threading.RLock()

NAME = "lightgbm"
DEFAULT_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_bin": 255,
    "num_threads": 1,  # OpenMP threads spin under CPU contention: one is 10x cheaper on a busy machine
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}


def available() -> bool:
    """Whether lightgbm can be imported (it is an optional extra)."""
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        return False
    return True


def _categorical_columns(n_features: int) -> list[int]:
    """The categorical aggregates are the last columns (see ``aggregate_names``)."""
    return list(range(n_features - len(CATEGORICAL_AGGREGATES), n_features))


def objective(task: Task) -> dict[str, Any]:
    """The LightGBM parameters ``task`` declares (``Task.boosting``); an error naming the task
    and what to set when it declares none."""
    if not task.boosting or "objective" not in task.boosting:
        raise NotImplementedError(
            f"task {task.name!r} declares no boosting objective: set {type(task).__name__}.boosting "
            '(e.g. {"objective": "binary", "metric": "binary_logloss"}) for its LightGBM baseline'
        )
    return dict(task.boosting)


def _target(task: Task, seqs: Sequences) -> tuple[np.ndarray, np.ndarray]:
    """(rows with a label, label) for ``task``: the rows of its ``label_mask``."""
    assert seqs.labels is not None, "the boosting baseline is fitted on labelled samples"
    y = seqs.labels[task.name]
    keep = np.asarray(task.label_mask(y), dtype=bool)
    return np.flatnonzero(keep), y[keep]


@dataclass(frozen=True)
class _Sizes:
    """What a task's ``head_size`` reads, for the width of a multiclass booster's scores."""

    n_actions: int
    n_stages: int = len(STAGES)
    d_model: int = 0


@dataclass
class BoostingBaseline:
    """Fitted boosters per task; :meth:`predict` gives each task's scores like the model's.

    Attributes:
        boosters: task -> lightgbm.Booster.
        classes: task -> (k,) the label values a multiclass booster's outputs stand for.
        n_classes: task -> width of the (N, n) score matrix (vocabulary / stage count).
        rounds: task -> boosting rounds kept by early stopping.
    """

    boosters: dict[str, Any]
    classes: dict[str, np.ndarray] = field(default_factory=dict)
    n_classes: dict[str, int] = field(default_factory=dict)
    rounds: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @classmethod
    def fit(
        cls,
        train: Sequences,
        val: Sequences,
        tasks: Sequence[Task],
        n_classes: Mapping[str, int],
        seed: int = 0,
        params: Mapping[str, Any] | None = None,
        max_rounds: int = 2000,
        patience: int = 50,
    ) -> BoostingBaseline:
        """Fit one booster per task (:class:`Task`, e.g. ``registry.get(name)``) on ``train``,
        stopping early on ``val``.

        ``n_classes``: task -> output width of the tasks with a multiclass objective (the
        action vocabulary size, the number of stages). A task whose training labels its
        ``unlearnable_reason`` rejects (e.g. a single class) gets no booster (logged).
        """
        import lightgbm as lgb

        start = time.perf_counter()
        base = {**DEFAULT_PARAMS, **dict(params or {}), "seed": seed}
        cat = _categorical_columns(train.aggregates.shape[1])
        out = cls(boosters={})
        assert train.labels is not None, "the boosting baseline is fitted on labelled samples"
        for task in tasks:
            name = task.name
            p = {**base, **objective(task)}
            why = task.unlearnable_reason(train.labels[name])
            if why:
                log.info("boosting: %s: %s; no booster", name, why)
                continue
            rows, y = _target(task, train)
            vrows, vy = _target(task, val)
            if p["objective"] == "multiclass":
                if name not in n_classes:
                    raise ValueError(
                        f"boosting: give the output width of the multiclass task {name!r} in n_classes"
                    )
                classes = np.unique(y)
                if len(classes) < 2:  # a task's own rule may let one class through
                    log.info("boosting: %s has a single class in training; no booster", name)
                    continue
                y = np.searchsorted(classes, y)  # class ids 0..k-1
                known = np.isin(vy, classes)
                vrows, vy = vrows[known], np.searchsorted(classes, vy[known])
                p["num_class"] = len(classes)
                out.classes[name], out.n_classes[name] = classes, int(n_classes[name])
            with NATIVE_LOCK:
                dtrain = lgb.Dataset(train.aggregates[rows], y, categorical_feature=cat, free_raw_data=True)
                dval = lgb.Dataset(val.aggregates[vrows], vy, reference=dtrain)
                booster = lgb.train(
                    p,
                    dtrain,
                    num_boost_round=max_rounds,
                    valid_sets=[dval],
                    callbacks=[lgb.early_stopping(patience, verbose=False)],
                )
            out.boosters[name] = booster
            out.rounds[name] = int(booster.best_iteration or booster.current_iteration())
        out.seconds = time.perf_counter() - start
        log.info("boosting baseline fitted in %.1f s, rounds %s", out.seconds, out.rounds)
        return out

    def predict(self, seqs: Sequences) -> dict[str, np.ndarray]:
        """task -> scores: (N, n_classes) probabilities for a multiclass objective (0 for
        classes never seen in training), else the booster's (N,) prediction (a probability for
        a binary objective, an expected amount for Tweedie)."""
        out: dict[str, np.ndarray] = {}
        for task, booster in self.boosters.items():
            with NATIVE_LOCK:
                raw = booster.predict(seqs.aggregates, num_iteration=self.rounds[task])
            if task in self.classes:
                probs = np.zeros((len(seqs), self.n_classes[task]))
                probs[:, self.classes[task]] = raw.reshape(len(seqs), -1)
                out[task] = probs
            else:
                out[task] = np.asarray(raw, dtype=np.float64)
        return out


class Boosted(Baseline):
    """The LightGBM baseline of one task (see the module docstring), with the objective the
    task declares (``Task.boosting``). Left out (``fit`` returns None, logged once per reason)
    without lightgbm or without validation samples; a task with no objective is an error."""

    name = NAME
    _warned: ClassVar[set[str]] = set()

    def __init__(self, task: Task) -> None:
        self.task = task
        self.fitted: BoostingBaseline | None = None

    def fit(self, train: Sequences, ctx: BaselineContext) -> Boosted | None:
        objective(self.task)  # before anything is left out: a task without one is a bug
        why = None
        if not available():
            why = "lightgbm is not installed: no gradient-boosting baseline (pip install 'journeyformer[baseline]')"
        elif ctx.val is None or ctx.val.labels is None:
            why = "no validation samples to stop the boosting baseline on: left out"
        if why:
            if why not in self._warned:
                log.warning("%s", why)
                self._warned.add(why)
            return None
        width = {self.task.name: self.task.head_size(_Sizes(n_actions=ctx.n_actions))}
        fitted = BoostingBaseline.fit(train, ctx.val, [self.task], width, seed=ctx.seed)
        if self.task.name not in fitted.boosters:
            return None
        self.fitted = fitted
        return self

    def predict(self, seqs: Sequences) -> np.ndarray:
        assert self.fitted is not None, "fit first"
        return self.fitted.predict(seqs)[self.task.name]
