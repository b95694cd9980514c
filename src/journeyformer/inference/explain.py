"""Why a customer scores as it does: occlusion through the ONNX model (no torch).

For each scored customer, and each explained score (``churn_probability``, ``expected_value``),
the model is run again on variants of the customer's input, all variants of a batch of
customers in one batched call:

* **recent events**: the k-th most recent event (k = 1..``last_events``) removed from the
  sequence the model reads (the later events keep their order; the next event's gap absorbs the
  removed one's); the per-customer history features are left as they are, so what an event
  adds beyond its trace in them is measured here, and the trace under the feature groups;
* **summary features**: each group of per-customer inputs (:func:`feature_groups`: activity,
  purchases, spend, recency, the history of each action, channel, ...) reset to its median on
  the bundle's validation customers (``reference.json``): "what if this customer looked
  typical here".

The effect of a driver is ``score(customer) - score(variant)``: positive when the event or the
feature values push the score up (in probability points for churn, currency units for value).
Predictions get, per explained score, the ``top`` drivers by absolute effect, largest first:
``churn_drivers`` (names such as ``event -1 support_ticket/support``, the most recent event,
or ``features: action=support_ticket``) and ``churn_driver_effects``; likewise ``value_...``.

Cost: (last_events + number of groups) extra rows per customer through the model (about 35 for
the default data): see the README for the measured slowdown.

Needs only NumPy and Polars.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from journeyformer.data.features.batch import Batch, map_batches
from journeyformer.data.preprocessing import Preprocessing
from journeyformer.errors import ConfigError
from journeyformer.inference.reference import Reference
from journeyformer.tasks import registry

MAX_ROWS = 2048  # variant rows per runner call (bounds onnxruntime's attention memory)

# Context column -> group, by name (aggregates context, then the summary context's names).
_GROUP_RULES: tuple[tuple[str, str], ...] = (
    (r"^n_events(_\d+d)?$|^n_active_days$|^log_n_events$", "activity"),
    (r"^n_purchases(_\d+d)?$|^log_n_purchases(_window)?$", "purchases"),
    (r"^spend(_\d+d)?$|^purchase_amount_(mean|max)$|^log_spend$", "spend"),
    (r"^tenure_days$|^log_tenure_days$", "tenure"),
    (r"^recency_days$|^gap_last_days$|^log_recency_days$", "recency"),
    (r"^gap_(mean|std|max)_days$", "visit gaps"),
    (r"^mean_(.+)$", r"mean \1"),
    (r"^n(?:30)?_(.+=.+)$", r"\1"),
    (r"^days_since_action=(.+)$", r"action=\1"),
)


def feature_groups(names: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    """(group name, context column indices) for the context columns ``names``, in first-seen
    order; a column no rule names is its own group. Columns of ``<unk>`` (values unseen in
    training, 0 for nearly everyone) are not tried."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        if name.endswith("=<unk>"):
            continue
        group = name
        for pattern, repl in _GROUP_RULES:
            if re.match(pattern, name):
                group = re.sub(pattern, repl, name)
                break
        groups.setdefault(group, []).append(i)
    return [(f"features: {g}", np.asarray(ix, np.int64)) for g, ix in groups.items()]


@dataclass(frozen=True)
class Explainer:
    """Occlusion settings and what they need from the bundle.

    Attributes:
        targets: explained score name -> output name (those the model has).
        groups: (name, context column indices) of the feature groups.
        typical: (S,) float32 context value each group is reset to (validation medians).
        tokens: per categorical column, the vocabulary tokens (to name events).
        gap_column: index of ``log_gap`` in the numeric event inputs (None: absent).
        last_events: recent events tried one by one.
        top: drivers listed per score.
    """

    targets: Mapping[str, str]
    groups: tuple[tuple[str, np.ndarray], ...]
    typical: np.ndarray
    tokens: tuple[tuple[str, ...], ...]
    gap_column: int | None
    last_events: int = 8
    top: int = 3

    @classmethod
    def for_bundle(
        cls,
        pre: Preprocessing,
        output_names: Sequence[str],
        reference: Reference | None,
        last_events: int = 8,
        top: int = 3,
    ) -> Explainer:
        if reference is None:
            raise ConfigError(
                "explain: explanations reset features to their median on the validation "
                "customers, but the bundle has no reference.json (exported without data.path); "
                "re-export with data.path=<the training events>"
            )
        if last_events < 0 or top < 1:
            raise ConfigError(f"explain: explain_events must be >= 0 and explain_top >= 1, got {last_events}, {top}")
        # Explained score -> output name: each task's mean output the model has.
        explained = registry.mean_outputs()
        targets = {k: v for k, v in explained.items() if v in output_names}
        if not targets:
            raise ConfigError(f"explain: the model has none of the explained outputs {list(explained.values())}")
        names = pre.context_names
        typical = np.asarray([reference.quantile(f"context/{n}", 0.5) for n in names], np.float32)
        numeric = pre.numeric_names
        return cls(
            targets=targets,
            groups=tuple(feature_groups(names)),
            typical=typical,
            tokens=tuple(pre.vocabs[c].tokens for c in pre.features.categorical[:2]),
            gap_column=numeric.index("log_gap") if "log_gap" in numeric else None,
            last_events=int(last_events),
            top=int(top),
        )

    def columns(self) -> dict[str, pl.DataType]:
        out: dict[str, pl.DataType] = {}
        for name in self.targets:
            out[f"{name}_drivers"] = pl.List(pl.String)
            out[f"{name}_driver_effects"] = pl.List(pl.Float32)
        return out

    def explain(
        self,
        n: int,
        batches: Sequence[Batch],
        outputs: Mapping[str, np.ndarray],
        run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
        workers: int = 1,
    ) -> dict[str, list[Any]]:
        """Driver columns for the ``n`` customers of ``batches`` (rows at ``batch.index``);
        ``outputs``: the customers' own outputs, ``run``: the runner, ``workers``: batches
        explained at once (:func:`journeyformer.data.features.batch.map_batches`)."""
        cols: dict[str, list[Any]] = {c: [None] * n for c in self.columns()}

        def one(batch: Batch) -> tuple[list[list[str]], dict[str, np.ndarray]]:
            return self._batch(dict(batch.inputs), run, {t: outputs[o][batch.index] for t, o in self.targets.items()})

        for batch, (names, effects) in zip(batches, map_batches(one, batches, workers), strict=True):
            for target in self.targets:
                eff = effects[target]  # (V, B)
                order = np.argsort(-np.nan_to_num(np.abs(eff), nan=-1.0), axis=0, kind="stable")[: self.top]
                for j, row in enumerate(batch.index):
                    pick = [v for v in order[:, j] if not np.isnan(eff[v, j])]
                    cols[f"{target}_drivers"][row] = [names[v][j] for v in pick]
                    cols[f"{target}_driver_effects"][row] = [float(eff[v, j]) for v in pick]
        return cols

    def _batch(
        self,
        inputs: dict[str, np.ndarray],
        run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
        own: Mapping[str, np.ndarray],
    ) -> tuple[list[list[str]], dict[str, np.ndarray]]:
        """Variant names (V lists of B) and effects target -> (V, B) (NaN: no such variant)."""
        lengths = inputs["lengths"]
        b = len(lengths)
        variants, names, valid = [], [], []
        for k in range(1, self.last_events + 1):
            ok = lengths >= max(k, 2)  # an event to remove, and one left after
            variants.append(self._drop_event(inputs, k, ok))
            names.append(self._event_names(inputs, k, ok))
            valid.append(ok)
        for name, ix in self.groups:
            v = dict(inputs)
            v["context"] = inputs["context"].copy()
            v["context"][:, ix] = self.typical[ix]
            variants.append(v)
            names.append([name] * b)
            valid.append(np.ones(b, bool))
        if not variants:
            return [], {t: np.empty((0, b)) for t in self.targets}
        stacked = {key: np.concatenate([v[key] for v in variants]) for key in inputs}
        got = _run_rows(stacked, run, [self.targets[t] for t in self.targets])
        effects = {}
        mask = np.stack(valid)  # (V, B)
        for t, o in self.targets.items():
            eff = own[t][None, :].astype(np.float64) - got[o].reshape(len(variants), b)
            effects[t] = np.where(mask, eff, np.nan)
        return names, effects

    def _drop_event(self, inputs: dict[str, np.ndarray], k: int, ok: np.ndarray) -> dict[str, np.ndarray]:
        """Inputs with the k-th most recent event removed where ``ok`` (other rows unchanged)."""
        cat, num, lengths = inputs["categorical"], inputs["numeric"], inputs["lengths"]
        t = cat.shape[1]
        pos = np.where(ok, lengths - k, t)  # position removed; t: none
        src = np.arange(t)[None, :] + (np.arange(t)[None, :] >= pos[:, None])  # (B, T)
        src = np.minimum(src, t - 1)
        new_len = np.where(ok, lengths - 1, lengths)
        real = np.arange(t)[None, :] < new_len[:, None]
        new_cat = np.take_along_axis(cat, src[:, :, None], axis=1) * real[:, :, None]
        new_num = np.take_along_axis(num, src[:, :, None], axis=1) * real[:, :, None]
        g = self.gap_column
        if g is not None:
            rows = np.flatnonzero(ok & (pos < new_len))  # a later event moved into pos
            p = pos[rows]
            removed, moved = num[rows, p, g].astype(np.float64), num[rows, p + 1, g].astype(np.float64)
            gap = np.expm1(10 * removed) + np.expm1(10 * moved)
            merged = np.where(removed == 0.0, 0.0, np.log1p(gap) / 10)  # removed the first event
            new_num[rows, p, g] = merged.astype(np.float32)
        return {**inputs, "categorical": new_cat, "numeric": new_num, "lengths": new_len.astype(np.int64)}

    def _event_names(self, inputs: dict[str, np.ndarray], k: int, ok: np.ndarray) -> list[str]:
        lengths = inputs["lengths"]
        pos = np.clip(lengths - k, 0, None)
        ids = inputs["categorical"][np.arange(len(lengths)), pos]  # (B, C)
        out = []
        for j in range(len(lengths)):
            if not ok[j]:
                out.append("")
                continue
            parts = [self.tokens[c][ids[j, c]] for c in range(len(self.tokens))]
            out.append(f"event -{k} {'/'.join(parts)}")
        return out


def _run_rows(
    inputs: dict[str, np.ndarray], run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], names: Sequence[str]
) -> dict[str, np.ndarray]:
    """``run`` over the rows of ``inputs`` in slices of at most MAX_ROWS; outputs ``names``."""
    n = len(inputs["lengths"])
    parts: dict[str, list[np.ndarray]] = {o: [] for o in names}
    for i in range(0, n, MAX_ROWS):
        out = run({k: v[i : i + MAX_ROWS] for k, v in inputs.items()})
        for o in names:
            parts[o].append(out[o])
    return {o: np.concatenate(p).astype(np.float64) for o, p in parts.items()}
