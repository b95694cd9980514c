"""From scores to decisions: the columns predict adds after the model's, in one object.

:class:`Decisions` holds what a scoring job adds besides the model's columns: the segment
rules (``segment``), the bundle's embedding clusters (``cluster``) and, when asked, the
explainer (``churn_drivers`` ... :mod:`journeyformer.inference.explain`). A job builds it once
(:meth:`Decisions.for_bundle`) and hands it to each partition.

Needs only Polars, NumPy and PyYAML (Hydra's own dependency, for the default rules).
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from omegaconf import OmegaConf

from journeyformer.data.features.batch import Batch
from journeyformer.data.features.sequences import Sequences
from journeyformer.errors import ConfigError
from journeyformer.inference.clusters import Clusters, clusters_of
from journeyformer.inference.explain import Explainer
from journeyformer.inference.reference import reference_of
from journeyformer.inference.segments import SegmentRules, history_inputs

log = logging.getLogger(__name__)

DEFAULT_RULES = Path(__file__).resolve().parents[1] / "configs" / "segments" / "default.yaml"


_WARNED: set[tuple[str, str]] = set()


def _warn_once(where: str, message: str) -> None:
    """Log ``message`` the first time this process sees it for ``where`` (a bundle scored in a
    loop, by a service or a benchmark, says it once, not on every call)."""
    if (where, message) not in _WARNED:
        _WARNED.add((where, message))
        log.warning("%s", message)


def default_segments() -> dict[str, Any]:
    """The rules of ``configs/segments/default.yaml`` (what predict uses unless told)."""
    return copy.deepcopy(_default_segments())


@functools.cache
def _default_segments() -> dict[str, Any]:  # parsed once per process (YAML parsing is ms)
    import yaml

    return yaml.safe_load(DEFAULT_RULES.read_text())


@dataclass(frozen=True)
class Decisions:
    """Segment rules, embedding clusters and the explainer; each None when off."""

    segments: SegmentRules | None = None
    clusters: Clusters | None = None
    explainer: Explainer | None = None

    @classmethod
    def for_bundle(
        cls,
        bundle: Any,
        segments: Mapping[str, Any] | None | str = "default",
        explain: bool = False,
        explain_events: int = 8,
        explain_top: int = 3,
    ) -> Decisions:
        """What predict adds for ``bundle`` (a loaded Bundle).

        ``segments``: rules as in ``configs/segments/default.yaml``, ``"default"`` for those, or
        None for no segment column. Rules that need the bundle's reference (quantile
        thresholds) are left out with a warning when the bundle has none.
        """
        reference = reference_of(bundle)
        columns = _prediction_columns(bundle)
        rules = None
        if segments is not None:
            cfg = default_segments() if isinstance(segments, str) and segments == "default" else segments
            if OmegaConf.is_config(cfg):  # a Hydra config node (ListConfig rules): plain values
                cfg = OmegaConf.to_container(cfg, resolve=True)
            if not isinstance(cfg, Mapping):
                raise ConfigError(f"segments must be a mapping of rules (or null), got {cfg!r}")
            try:
                rules = SegmentRules.from_config(cfg, columns, reference)
            except ConfigError as err:
                if reference is not None or "reference.json" not in str(err):
                    raise
                _warn_once(str(getattr(bundle, "path", "")), f"no segment column: {err}")
        explainer = None
        if explain:
            explainer = Explainer.for_bundle(
                bundle.preprocessing, bundle.output_names, reference, explain_events, explain_top
            )
        return cls(rules, clusters_of(bundle), explainer)

    @classmethod
    def from_config(cls, bundle: Any, cfg: Mapping[str, Any]) -> Decisions:
        """From predict's settings: ``segments`` (group; null: off), ``explain``,
        ``explain_events``, ``explain_top``."""
        return cls.for_bundle(
            bundle,
            cfg.get("segments", "default"),
            bool(cfg.get("explain", False)),
            int(cfg.get("explain_events", 8)),
            int(cfg.get("explain_top", 3)),
        )

    def schema(self) -> dict[str, pl.DataType]:
        """The columns added to the predictions, with their dtypes."""
        out: dict[str, pl.DataType] = {}
        if self.segments is not None:
            out["segment"] = pl.String
        if self.clusters is not None:
            out["cluster"] = pl.Int32
        if self.explainer is not None:
            out |= self.explainer.columns()
        return out

    def annotate(
        self,
        frame: pl.DataFrame,
        seqs: Sequences,
        outputs: Mapping[str, np.ndarray],
        batches: Sequence[Batch],
        run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
        workers: int = 1,
    ) -> pl.DataFrame:
        """``frame`` (the predictions of ``seqs``, same order) with :meth:`schema`'s columns;
        ``run``, ``workers``: the runner's (explanations run the model again)."""
        schema = self.schema()
        cols: dict[str, Any] = {}
        if self.segments is not None:
            stage = frame.get_column("stage") if "stage" in frame.columns else None
            history = history_inputs(seqs.stage_now, stage, seqs.summary)
            cols["segment"] = self.segments.assign(frame, history)
        if self.clusters is not None:
            cols["cluster"] = self.clusters.assign(outputs["embedding"])
        if self.explainer is not None:
            cols |= self.explainer.explain(len(seqs), batches, outputs, run, workers)
        return frame.with_columns([pl.Series(k, v, dtype=schema[k]) for k, v in cols.items()])


def _prediction_columns(bundle: Any) -> list[str]:
    ctx = bundle.context()
    return ["n_events", *(c for task in bundle.tasks for c in task.columns(ctx))]
