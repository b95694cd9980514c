"""The task registry: every task the package knows, in the order every layer lists them.

Adding a task is one :class:`~journeyformer.tasks.base.Task` subclass and one entry in
``TASKS`` (or :func:`register` at run time, as the tests do with a toy task).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

import numpy as np

from journeyformer.data.features.sequences import Sequences
from journeyformer.data.labels.lifecycle import LabelConfig, LabelWindow
from journeyformer.tasks.base import Baseline, BaselineContext, Task
from journeyformer.tasks.binary import Churn
from journeyformer.tasks.next_action import NextAction
from journeyformer.tasks.next_item import NextItem
from journeyformer.tasks.stage import Stage
from journeyformer.tasks.uplift import Uplift
from journeyformer.tasks.value import Value

TASKS: dict[str, Task] = {
    t.name: t for t in (NextAction(), Churn(), Stage(), Value(), NextItem(), Uplift())
}  # uplift: off without exposures


def get(name: str) -> Task:
    """The registered task called ``name``; a clear error naming the known ones otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; registered tasks: {list(TASKS)}") from None


def enabled(names: Iterable[str]) -> list[Task]:
    """The tasks named in ``names`` (e.g. a model's ``tasks`` weights), in registry order."""
    wanted = set(names)
    unknown = wanted - set(TASKS)
    if unknown:
        raise KeyError(f"unknown tasks {sorted(unknown)}; registered tasks: {list(TASKS)}")
    return [t for name, t in TASKS.items() if name in wanted]


def mean_outputs(names: Iterable[str] | None = None) -> dict[str, str]:
    """Task -> its :attr:`~journeyformer.tasks.base.Task.mean_output`, for the tasks that have
    one (all registered tasks when ``names`` is None)."""
    tasks = TASKS.values() if names is None else enabled(names)
    return {t.name: t.mean_output for t in tasks if t.mean_output}


def counted_label() -> str | None:
    """The label whose positives the sample checks count per cutoff (:attr:`Task.counted`)."""
    return next((t.name for t in TASKS.values() if t.counted), None)


def default_weights() -> dict[str, float]:
    return {name: t.default_weight for name, t in TASKS.items()}


def labelers(names: Iterable[str] | None = None) -> Mapping[str, Callable[[LabelWindow], np.ndarray]]:
    """Label name -> label function of each task (all registered tasks when ``names`` is None),
    for ``build_sequences(labelers=...)``."""
    tasks = TASKS.values() if names is None else enabled(names)
    return {t.name: t.label for t in tasks}


def register(task: Task) -> None:
    if task.name in TASKS:
        raise ValueError(f"a task called {task.name!r} is already registered")
    TASKS[task.name] = task


@contextmanager
def registered(task: Task) -> Iterator[Task]:
    """Register ``task`` for the duration of a ``with`` block (tests, experiments)."""
    register(task)
    try:
        yield task
    finally:
        TASKS.pop(task.name, None)


class Baselines:
    """Every baseline of the given tasks, fitted on labelled training samples.

    Example::

        base = Baselines.fit(train, horizon_days=30, n_actions=len(vocabs["action"]))
        base.predict(test)["churn"]["rfm_logistic_regression"]  # (N,) probabilities
    """

    def __init__(self, fitted: Mapping[str, tuple[Baseline, ...]]) -> None:
        self.fitted = dict(fitted)

    @classmethod
    def fit(
        cls,
        train: Sequences,
        horizon_days: float,
        n_actions: int,
        tasks: Iterable[str] | None = None,
        val: Sequences | None = None,
        seed: int = 0,
        labels: LabelConfig | None = None,
    ) -> Baselines:
        """``val``: validation samples the boosting baseline stops early on (without them, or
        without lightgbm, it is left out). ``labels``: the label settings (next items)."""
        assert train.labels is not None, "baselines are fitted on labelled training samples"
        ctx = BaselineContext(
            horizon_days=horizon_days, n_actions=n_actions, val=val, seed=seed, labels=labels
        )
        # tasks None: every registered task the samples have labels for (next_item only with items)
        chosen = [t for t in TASKS.values() if t.name in train.labels] if tasks is None else enabled(tasks)
        fitted = {t.name: tuple(b.fit(train, ctx) for b in t.baselines()) for t in chosen}
        return cls({name: tuple(b for b in bs if b is not None) for name, bs in fitted.items()})

    def predict(self, seqs: Sequences) -> dict[str, dict[str, np.ndarray]]:
        """task -> baseline name -> scores in the shape the task's ``score`` takes."""
        return {task: {b.name: b.predict(seqs) for b in fitted} for task, fitted in self.fitted.items()}
