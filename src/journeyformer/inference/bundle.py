"""The model bundle as the predictor sees it: ``model.onnx`` plus ``preprocessing.json``.

A bundle directory holds everything needed to score raw events without PyTorch:

==================  ===========================================================================
model.onnx          the network, inputs/outputs as in ``preprocessing.json["onnx"]``
model.int8.onnx     optional int8 dynamic quantization of the same graph (``quantize=true``)
preprocessing.json  vocabularies, feature settings, label names, horizon, event schema, I/O
metrics.json        validation/test metrics the checkpoint reached (when training wrote them)
export_report.json  parity of onnxruntime against torch, and of int8 against fp32
==================  ===========================================================================

This module needs only the standard library, Polars and NumPy (never torch).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from journeyformer.data.labels import LabelConfig
from journeyformer.data.schema import EventSchema
from journeyformer.data.sequences import FeatureConfig
from journeyformer.data.vocab import Vocabularies
from journeyformer.tasks import registry
from journeyformer.tasks.base import Task, TaskContext

FORMAT_VERSION = 2  # 2: outputs of the enabled tasks only, named by the task registry
MODEL_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
PREPROCESSING = "preprocessing.json"
METRICS = "metrics.json"
EXPORT_REPORT = "export_report.json"

# Schema settings a user may override at predict time; the features themselves may not change.
SCHEMA_OVERRIDES = ("columns", "time_zone", "timestamp_unit", "null_keys", "duplicates", "format")


class BundleError(ValueError):
    """A bundle directory is missing, incomplete or from an incompatible exporter."""


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: its directory and the preprocessing it was trained with.

    Attributes:
        path: the bundle directory.
        spec: the parsed ``preprocessing.json``.
    """

    path: Path
    spec: Mapping[str, Any]

    @property
    def vocabs(self) -> Vocabularies:
        return Vocabularies.from_dict(self.spec["vocabs"])

    @property
    def features(self) -> FeatureConfig:
        f = self.spec["features"]
        return FeatureConfig(
            max_len=int(f["max_len"]),
            categorical=tuple(f["categorical"]),
            numeric=tuple(f["numeric"]),
            time_zone=str(f["time_zone"]),
        )

    @property
    def labels(self) -> LabelConfig:
        return LabelConfig.from_config(self.spec["labels"])

    @property
    def actions(self) -> tuple[str, ...]:
        """Action name of each next-action class (index = vocabulary id)."""
        return tuple(self.spec["actions"])

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(self.spec["stages"])

    @property
    def tasks(self) -> list[Task]:
        """The enabled tasks of the model, in registry order."""
        return registry.enabled(self.spec["tasks"])

    def context(self, top_k: int = 3) -> TaskContext:
        """What the tasks' prediction columns and plots need from the bundle."""
        return TaskContext(
            actions=self.actions,
            stages=self.stages,
            top_k=top_k,
            temperatures=dict(self.spec.get("temperatures") or {}),
        )

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i["name"] for i in self.spec["onnx"]["inputs"])

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o["name"] for o in self.spec["onnx"]["outputs"])

    def schema(self, overrides: Mapping[str, Any] | None = None) -> EventSchema:
        """The training event schema, with ``overrides`` (None values ignored) applied.

        Example::

            bundle.schema({"columns": {"customer_id": "user_id"}, "time_zone": "Europe/Paris"})
        """
        base = dict(self.spec["schema"])
        for key, value in (overrides or {}).items():
            if key not in SCHEMA_OVERRIDES:
                raise ValueError(
                    f"data.{key} cannot be overridden at predict time; allowed: "
                    f"{list(SCHEMA_OVERRIDES)} "
                    "(the extra feature columns are fixed by the model)"
                )
            if value is None or (key == "columns" and not value):
                continue
            base[key] = {**base["columns"], **dict(value)} if key == "columns" else value
        return EventSchema.from_config(base)

    def model_path(self, precision: str = "fp32") -> Path:
        if precision not in MODEL_FILES:
            raise ValueError(f"precision={precision!r} is not one of {list(MODEL_FILES)}")
        path = self.path / MODEL_FILES[precision]
        if not path.exists():
            hint = " (export with quantize=true to write it)" if precision == "int8" else ""
            raise BundleError(f"{path}: no such file in the bundle{hint}")
        return path


def load_bundle(path: str | Path) -> Bundle:
    """Read ``preprocessing.json`` of the bundle at ``path`` and check it can be used."""
    path = Path(path)
    spec_path = path / PREPROCESSING
    if not spec_path.exists():
        raise BundleError(
            f"{path}: not a model bundle (no {PREPROCESSING}); make one with "
            "`python scripts/export.py checkpoint=<run_dir>/best.ckpt`"
        )
    spec = json.loads(spec_path.read_text())
    version = spec.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{spec_path}: bundle format {version}, this package reads format {FORMAT_VERSION}; "
            "re-export the checkpoint with this version of journeyformer"
        )
    return Bundle(path, spec)
