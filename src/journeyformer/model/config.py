"""Typed model configuration: sizes from YAML, vocabulary sizes and class counts from the data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from journeyformer.data.labels.lifecycle import STAGES
from journeyformer.data.preprocessing import Preprocessing
from journeyformer.errors import ConfigError
from journeyformer.tasks import registry

# Keys of configs/model/*.yaml that are not network settings: the config's name (in run names),
# the optimizer settings (read by the training module) and the heads an experiment keeps
# (resolved into ``tasks`` by :meth:`ModelConfig.task_weights`).
YAML_ONLY = ("name", "optimizer", "keep_tasks")
# Settings that come from the data (the fitted preprocessing), never from YAML.
DATA_DERIVED = ("categorical_sizes", "n_numeric", "n_context", "max_len", "n_stages", "n_items", "item_exclude_seen")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and tasks of the journey Transformer.

    ``categorical_sizes`` (action first), ``n_numeric`` and ``n_context`` come from the data
    (:meth:`from_data`); never type them into YAML. ``tasks`` maps task -> loss weight (tasks of
    :mod:`journeyformer.tasks.registry`); a task that is absent or weighted 0 has no head.
    """

    categorical_sizes: tuple[int, ...]
    n_numeric: int
    n_context: int
    max_len: int
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 128
    dropout: float = 0.1
    # Dropout of the attention weights, apart from ``dropout`` (embeddings, residuals, heads):
    # drawing its (B, H, T, T) masks was ~18% of the default model's CPU training step.
    attention_dropout: float = 0.0
    n_stages: int = len(STAGES)
    tasks: Mapping[str, float] = field(default_factory=registry.default_weights)
    next_event_weight: float = 0.5  # auxiliary causal next-event loss at every position
    # The per-customer context joins the representation through a Linear (1) or a two-layer
    # MLP (2): the aggregate context has interactions a single Linear cannot express.
    context_layers: int = 1
    standardize_context: bool = False  # context minus training mean over training std
    time_bins: bool = False  # embeddings of the log-binned age and gap of each event
    context_bins: int = 0  # > 0: piecewise-linear encoding of each context column, quantile bins
    # Next items (data.columns.item): the catalogue size (the item vocabulary, the last
    # categorical column; 0 without items, which switches the next_item head off), items
    # the graph lists, and the training softmax (tasks/next_item.py).
    n_items: int = 0
    item_exclude_seen: bool = False
    item_top_k: int = 20
    item_full_softmax_max: int = 50_000
    item_negatives: int = 2048
    # Where an event's position comes from (see model/embeddings.py): "recency", counted back
    # from the last event, with the event's age before the cutoff among its inputs (the
    # default); "causal", counted from the first kept event, without the age, so an event's
    # state depends only on the events up to it, as in SASRec's training: the every-position
    # loss then trains the state the cutoff reads (with recency, that state is the only one at
    # position 0, which no next-event target trains).
    positions: str = "recency"
    # What the next-item head reads: "representation" (the state after the last event plus
    # the stage and the per-customer context, as every head) or "state" (the state after the
    # last event alone, the input the every-position next-item loss trains the head on).
    item_query: str = "representation"
    # The next-item query also reads when the item comes (a learned vector per log-binned gap,
    # the bins of time_bins): every position's, the gap to the following event; the cutoff's,
    # the time since the last event (the next one comes at least that late). A session's next
    # item and the first item of the next visit differ; without it the every-position loss,
    # mostly within sessions, teaches the cutoff's query the in-session answer.
    item_query_gap: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "categorical_sizes", tuple(int(s) for s in self.categorical_sizes))
        tasks = {k: float(v) for k, v in dict(self.tasks).items() if v}
        if self.n_items < 3:  # no item column: heads that rank items are off whatever their weight
            tasks = {k: w for k, w in tasks.items() if k not in registry.TASKS or not registry.TASKS[k].ranks_items}
        object.__setattr__(self, "tasks", tasks)
        if self.d_model % self.n_heads:
            raise ConfigError(f"model.d_model={self.d_model} must be divisible by model.n_heads={self.n_heads}")
        unknown = set(self.tasks) - set(registry.TASKS)
        if unknown:
            raise ConfigError(
                f"model.tasks has unknown tasks {sorted(unknown)}; known: {list(registry.TASKS)}"
            )
        if not self.tasks:
            raise ConfigError("model.tasks switches every head off; give at least one task a weight > 0")
        if any(w < 0 for w in self.tasks.values()):
            raise ConfigError(f"model.tasks weights must be >= 0, got {dict(self.tasks)}")
        if not self.categorical_sizes or min(self.categorical_sizes) < 2:
            raise ConfigError(f"categorical sizes must include <pad> and <unk>: {self.categorical_sizes}")
        for name in ("d_model", "n_layers", "n_heads", "d_ff", "max_len", "item_top_k", "item_negatives"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.context_layers not in (1, 2):
            raise ConfigError(f"model.context_layers must be 1 or 2, got {self.context_layers}")
        if self.context_bins < 0 or (self.context_bins and not self.standardize_context):
            raise ConfigError(
                f"model.context_bins={self.context_bins} needs model.standardize_context=true "
                "(the bins are quantiles of the standardised training context) and must be >= 0"
            )
        if self.n_items and self.categorical_sizes[-1] != self.n_items:
            raise ConfigError(f"n_items={self.n_items} is not the last categorical size {self.categorical_sizes}")
        for name, allowed in (("positions", ("recency", "causal")), ("item_query", ("representation", "state"))):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"model.{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        for name in ("dropout", "attention_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def n_actions(self) -> int:
        return self.categorical_sizes[0]

    @classmethod
    def check_keys(cls, sizes: Mapping[str, Any]) -> None:
        """A model config key that is not a setting is an error naming the known ones (a typo
        such as ``model.n_layer=4`` would otherwise train the default silently)."""
        known = [k for k in cls.__dataclass_fields__ if k not in DATA_DERIVED]
        unknown = sorted(set(sizes) - set(known) - set(YAML_ONLY))
        if unknown:
            raise ConfigError(
                f"model config has unknown key(s) {unknown}; known: {sorted([*known, *YAML_ONLY])}"
            )

    @staticmethod
    def task_weights(sizes: Mapping[str, Any]) -> dict[str, float]:
        """Task -> loss weight of the model YAML: ``model.tasks`` with ``model.keep_tasks``
        applied. A list in ``keep_tasks`` (``[churn]``) switches every task it does not name
        off, a registered task added later included; a kept task has its ``model.tasks``
        weight, or the task's default weight where ``model.tasks`` does not name it. Null:
        ``model.tasks`` as it is. Applying it twice gives the same weights.

        Example: ``{"tasks": {"churn": 1.0, "value": 0.5}, "keep_tasks": ["churn"]}`` ->
        ``{"churn": 1.0, "value": 0.0, ...every other registered task: 0.0}``.
        """
        tasks = dict(sizes.get("tasks") or {})
        keep = sizes.get("keep_tasks")
        if keep is None:
            return tasks
        keep = [keep] if isinstance(keep, str) else list(keep)
        unknown = sorted(set(keep) - set(registry.TASKS))
        if unknown:
            raise ConfigError(
                f"model.keep_tasks names unknown tasks {unknown}; known: {list(registry.TASKS)}"
            )
        names = [*registry.TASKS, *(k for k in tasks if k not in registry.TASKS)]
        return {
            k: (tasks.get(k, registry.TASKS[k].default_weight) if k in keep else 0.0) for k in names
        }

    @classmethod
    def from_data(cls, sizes: Mapping[str, Any], pre: Preprocessing) -> ModelConfig:
        """``sizes``: the model YAML (d_model, ...); vocabulary sizes and feature counts come
        from the fitted preprocessing (never from YAML); ``keep_tasks`` resolved into
        ``tasks`` (:meth:`task_weights`)."""
        cls.check_keys(sizes)
        settings = {k: v for k, v in dict(sizes).items() if k not in YAML_ONLY}
        if sizes.get("keep_tasks") is not None:
            settings["tasks"] = cls.task_weights(sizes)
        return cls(
            categorical_sizes=pre.categorical_sizes,
            n_numeric=len(pre.numeric_names),
            n_context=len(pre.context_names),
            max_len=pre.max_len,
            n_stages=len(pre.stages),
            n_items=len(pre.items),
            item_exclude_seen=pre.labels.exclude_seen if pre.items else False,
            **settings,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["categorical_sizes"] = list(self.categorical_sizes)
        return d
