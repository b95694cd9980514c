"""What a task is: one class declaring everything every layer needs to know about it.

A task (next action, churn, stage, value, ...) declares its label, head size, loss,
post-processing into named outputs, metrics, headline metric, baselines, prediction columns
and report plots. The model, the training loop, the ONNX I/O spec, the predictions table, the
evaluation and the report loop over the enabled tasks of :mod:`journeyformer.tasks.registry`;
adding a task is one subclass registered there.

No torch at import time: the loss and post-processing import it when called, so the predictor
and the report, which never call them, run without torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import polars as pl

if TYPE_CHECKING:  # types only: torch is imported where a loss or post-processing runs
    from torch import Tensor

    from journeyformer.data.features.sequences import Sequences
    from journeyformer.data.labels.lifecycle import LabelConfig, LabelWindow

# Output kinds, which decide how export compares onnxruntime with torch:
DISTRIBUTION = "distribution"  # (B, K) class probabilities: max abs diff and the same top-1
PROBABILITY = "probability"  # (B,) a probability: max abs diff
AMOUNT = "amount"  # (B,) currency units: relative diff above 1 unit
EMBEDDING = "embedding"  # (B, D): max abs diff
RANKED_IDS = "ranked_ids"  # (B, k) int64 ids, best first: equal wherever the scores are not tied
RANKED_SCORES = "ranked_scores"  # (B, k) the scores of those ids, best first: max abs diff

Arrays = Mapping[str, np.ndarray]  # name -> (N, ...) values (outputs, baselines' scores)
Metric = Callable[[np.ndarray, np.ndarray], float]  # (prediction, y) -> value


class Sizes(Protocol):
    """What a task may read to size its head and outputs (a ModelConfig fits)."""

    @property
    def n_actions(self) -> int: ...

    n_stages: int
    d_model: int


@dataclass(frozen=True)
class Output:
    """One named output of the inference graph: (B, *shape) float32 of ``kind``."""

    name: str
    shape: tuple[int, ...]
    kind: str
    dtype: str = "float32"


TOP_K = 3  # actions listed in top_actions, unless a job says otherwise


@dataclass(frozen=True)
class TaskContext:
    """What prediction columns and plots may need besides the outputs.

    Attributes:
        actions: action name of each next-action class (index = vocabulary id).
        stages: lifecycle stage names (index = stage id).
        top_k: actions listed in ``top_actions``.
        items: the user's item ids by vocabulary id (the next-item task's columns).
        temperatures: task -> temperature already applied to its probability.
    """

    actions: tuple[str, ...]
    stages: tuple[str, ...]
    top_k: int = TOP_K
    temperatures: Mapping[str, float] = field(default_factory=dict)
    items: tuple[str, ...] = ()  # item id of each next-item class (index = vocabulary id)


@dataclass(frozen=True)
class BaselineContext:
    """What a baseline may need besides the training samples: ``val`` are validation samples
    for early stopping (the boosting baseline), ``seed`` its randomness."""

    horizon_days: float
    n_actions: int
    val: Sequences | None = None
    seed: int = 0
    labels: LabelConfig | None = None  # the label settings (the next-item baselines' exclude_seen)


@dataclass(frozen=True)
class Plot:
    """A report figure the task asks for: ``kind`` names a function of the report's plots
    module, called with ``args``; the task holds data, never a plotting library."""

    file: str
    caption: str
    kind: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DecisionData:
    """What :meth:`Task.decisions` reads: the test and validation samples (labelled), the
    model's outputs on each, this task's baselines' scores on each (name -> scores), the
    task's temperature and the stage names."""

    test: Sequences
    val: Sequences
    outputs: Arrays
    val_outputs: Arrays
    baselines: Arrays
    val_baselines: Arrays
    temperature: float = 1.0
    stages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """A report table: a title, the header and the rows (cells as the report formats them)."""

    title: str
    header: list[str]
    rows: list[list[Any]]


class Baseline:
    """A simple reference model for one task, fitted on labelled samples only.

    :meth:`predict` returns scores in the shape the task's :meth:`Task.score` takes.
    """

    name: ClassVar[str]

    def fit(self, train: Sequences, ctx: BaselineContext) -> Baseline | None:
        """Fit on ``train``; None when this baseline cannot be fitted here (left out). By
        default it only keeps ``ctx``."""
        self.ctx = ctx
        return self

    def predict(self, seqs: Sequences) -> np.ndarray:
        raise NotImplementedError


class Task:
    """One prediction task. Subclasses set the class attributes and the methods below.

    Attributes:
        name: key of the head, the loss (``train/<name>/loss``), the label in
            ``Sequences.labels`` and the metrics (``val/<name>/<metric>``).
        default_weight: loss weight when the model config does not name the task.
        metrics: metric name -> function of (prediction, y), what :meth:`score` computes.
        headline: the metric of ``metrics`` that decides "beats the baselines".
        metric_output: the named output :meth:`score` takes for the model.
        scalars: output name -> kind of the task's (B,) float outputs, each also a Float32
            prediction column (the default :meth:`outputs`, :meth:`columns` and
            :meth:`column_values`).
        calibrated: the model holds a temperature for this task (binary tasks), fitted on
            validation data after training.
        scaled_output: an amount output the model multiplies by ``<name>_scale``, fitted on
            validation data so that its sum equals the actual sum there (value).
        decision_rule: a multiclass task over the stages whose logits the model shifts by
            ``<name>_offset`` (one per class) and ``<name>_carry`` on the class of the
            ``stage_now`` input, fitted for the headline metric on validation data and kept
            only where it gains on held-out validation samples (stage;
            :mod:`journeyformer.metrics.decision`).
        mean_output: an output on the label's own scale (a probability of a 0/1 label, an
            expected amount), so that its mean over a group of customers is compared with the
            label's mean there (segment tables and plots) and explained per customer
            (``predict explain=true``); None: the task has no such output. ``mean_unit`` names
            its scale in plots.
        boosting: LightGBM parameters of the task's gradient-boosting baseline
            (:mod:`journeyformer.tasks.boosting`): ``objective`` and ``metric`` at least. With
            ``objective: multiclass`` the labels are class ids and the scores a (N, head_size)
            matrix; otherwise the scores are the booster's (N,) prediction. None: the task has
            no boosting objective, an error where its :class:`Boosted` baseline is fitted (and
            in the registry's contract test).
        next_event: the task's head also predicts, at every position, the action of the
            following event (the auxiliary next-event loss trains through it; next action).
        ranks_items: the task ranks the catalogue's items and needs the item column
            (``data.columns.item``); without it the head is off whatever its weight (next item).
        counted: the binary label whose positives and negatives the sample checks count per
            cutoff (a split with fewer than 5 of either decides nothing; churn).
        needs_exposures: the task learns from an exposure log (``data.exposures``) only; it is
            on with one and off without (uplift).
    """

    name: ClassVar[str]
    default_weight: ClassVar[float] = 1.0
    metrics: ClassVar[Mapping[str, Metric]] = {}
    headline: ClassVar[str]
    metric_output: ClassVar[str]
    scalars: ClassVar[Mapping[str, str]] = {}
    calibrated: ClassVar[bool] = False
    scaled_output: ClassVar[str | None] = None
    decision_rule: ClassVar[bool] = False
    mean_output: ClassVar[str | None] = None
    mean_unit: ClassVar[str] = ""
    boosting: ClassVar[Mapping[str, Any] | None] = None
    next_event: ClassVar[bool] = False
    ranks_items: ClassVar[bool] = False
    counted: ClassVar[bool] = False
    needs_exposures: ClassVar[bool] = False

    # ---- data ---------------------------------------------------------------------------
    def label(self, window: LabelWindow) -> np.ndarray:
        """(N,) label of every customer of ``window`` (see :class:`LabelWindow`): by default
        the window's fact named as the task."""
        return window.facts[self.name]

    def label_mask(self, y: np.ndarray) -> np.ndarray:
        """(N,) bool: the samples whose label ``y`` (N,) counts; the others are left out of
        the baselines' fit and the learnability rule. Every sample by default."""
        return np.ones(len(y), dtype=bool)

    def unlearnable_reason(self, y: np.ndarray) -> str | None:
        """Why a head could learn nothing from the training labels ``y`` (N,), as the task
        stores them (masked here by :meth:`label_mask`); None when it can. The training job
        switches such a head off before training, and the boosting baseline fits no booster.
        By default: no labelled sample, or every labelled sample has the same label."""
        y = np.asarray(y)[self.label_mask(np.asarray(y))]
        if not len(y):
            return "no training sample has a label"
        values = np.unique(y)
        if len(values) < 2:
            return f"every labelled training sample has the same class {values.tolist()}"
        return None

    # ---- model --------------------------------------------------------------------------
    def head_size(self, sizes: Sizes) -> int:
        raise NotImplementedError

    def loss(self, raw: Tensor, target: Tensor) -> Tensor:
        """Mean loss over the batch: raw head output (B, head_size), label (B,)."""
        raise NotImplementedError

    def outputs(self, sizes: Sizes) -> tuple[Output, ...]:
        return tuple(Output(name, (), kind) for name, kind in self.scalars.items())

    def postprocess(self, raw: Tensor, temperature: Tensor | None) -> dict[str, Tensor]:
        """Raw head output (B, head_size) -> the named outputs of :meth:`outputs`."""
        raise NotImplementedError

    def parity_scale(self, raw: Tensor) -> dict[str, Tensor]:
        """Output name -> (B,) the size its float rounding follows, for outputs where that is
        not their own value: a difference of two amounts (an effect) inherits the amounts'
        rounding, so export's parity check compares it relative to them (above 1 unit, as
        amounts). Default: none."""
        return {}

    # ---- evaluation ---------------------------------------------------------------------
    def score(self, prediction: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Every metric of the task, for the model (``outputs[metric_output]``) and for the
        baselines alike. Also the ``val/<task>/<metric>`` values logged in training."""
        prediction = np.asarray(prediction)
        return {name: float(metric(prediction, y)) for name, metric in self.metrics.items()}

    def headline_score(self, prediction: np.ndarray, y: np.ndarray) -> float:
        """``score(prediction, y)[headline]`` without the other metrics: what the paired
        bootstrap resamples a thousand times, and what the per-head choice compares."""
        return float(self.metrics[self.headline](np.asarray(prediction), y))

    def baselines(self) -> tuple[Baseline, ...]:
        return ()

    def columns(self, ctx: TaskContext) -> dict[str, pl.DataType]:
        """Prediction-table column -> dtype."""
        return {name: pl.Float32 for name in self.scalars}

    def column_values(self, outputs: Arrays, ctx: TaskContext) -> dict[str, Any]:
        """Prediction-table column -> (N,) values (cast to :meth:`columns` dtypes later)."""
        return {name: outputs[name] for name in self.scalars}

    def decisions(self, d: DecisionData) -> dict[str, Any]:
        """Metrics of the decisions made from the task's outputs (thresholds, calibration,
        recall per class), keyed as they appear in the evaluation's metrics.json; none by
        default. :meth:`decision_tables` renders them."""
        return {}

    def decision_tables(self, metrics: Mapping[str, Any]) -> list[Table]:
        """The report's tables of what :meth:`decisions` put in ``metrics``."""
        return []

    def plots(self, y: np.ndarray, outputs: Arrays, baselines: Arrays, ctx: TaskContext) -> list[Plot]:
        return []

    def __repr__(self) -> str:
        return f"<task {self.name}>"


def lists(values: np.ndarray, dtype: pl.DataType) -> pl.Series:
    """(N, k) array -> a List column of length-k lists (plain lists read anywhere)."""
    n, k = values.shape
    flat = pl.Series(values.reshape(-1), dtype=dtype)
    return flat.reshape((n, k)).cast(pl.List(dtype))
