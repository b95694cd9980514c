"""The model bundle as the predictor sees it: ``model.onnx`` plus ``preprocessing.json``.

A bundle directory holds everything needed to score raw events without PyTorch:

==================  ===========================================================================
model.onnx          the network, inputs/outputs as in ``preprocessing.json["onnx"]``
model.int8.onnx     optional int8 dynamic quantization of the same graph (``quantize=true``)
model.fused.onnx    the fp32 graph with fused attention kernels (onnxruntime only; same outputs)
model.fused.int8.onnx  optional int8 quantization of the fused graph (``quantize=true``)
preprocessing.json  the fitted preprocessing (as in the checkpoint), tasks, temperatures, I/O
metrics.json        validation/test metrics the checkpoint reached (when training wrote them)
export_report.json  parity of onnxruntime against torch, and of int8 against fp32
golden.json         raw events of a few customers, their exact inputs and expected outputs
reference.json      profiles of the validation customers' inputs and scores (export with data:
                    drift monitoring, quantile segment rules, explanations)
clusters.json       k-means centroids of training customers' embeddings (export with data)
==================  ===========================================================================

Integrity: ``preprocessing.json`` records the size and SHA-256 of every other file of the
bundle (``files``) and a checksum of its own content (``spec_sha256``). :func:`load_bundle`
checks, before anything is scored, that the JSON parses, has the keys and types of
:data:`SPEC_SCHEMA`, is of this package's format, was not edited, and that every file is there
with its size and checksum; any failure is one :class:`BundleError` naming the file and the
check. A bundle of another format version says to re-export.

This module needs only the standard library, Polars and NumPy (never torch).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from journeyformer.data.events.schema import EventSchema
from journeyformer.data.preprocessing import Preprocessing, PreprocessingMismatch
from journeyformer.errors import ConfigError, JourneyformerError
from journeyformer.publish import sha256
from journeyformer.tasks import registry
from journeyformer.tasks.base import TOP_K, Task, TaskContext

# 2: outputs of the enabled tasks only, named by the task registry.
# 3: preprocessing.json records checksums of the bundle's files and of itself.
# 4: the fitted preprocessing's dict under "preprocessing", as in the checkpoint.
FORMAT_VERSION = 4
MODEL_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
# fp32 with each attention fused into one onnxruntime kernel (export/fuse.py): same outputs,
# onnxruntime only; the predictor runs it where it is faster (inference/choice.py).
FUSED_FILE = "model.fused.onnx"
FUSED_FILES = {"fp32": FUSED_FILE, "int8": "model.fused.int8.onnx"}
GRAPHS = ("plain", "fused")
PRECISIONS = tuple(MODEL_FILES)
PREPROCESSING = "preprocessing.json"
METRICS = "metrics.json"
EXPORT_REPORT = "export_report.json"

# Schema settings a user may override at predict time; the features themselves may not change.
SCHEMA_OVERRIDES = (
    "columns", "time_zone", "timestamp_unit", "null_keys", "duplicates", "format", "separator",
    "future_events",
)  # fmt: skip


class BundleError(JourneyformerError):
    """A bundle directory is missing, incomplete, damaged, edited or of another format."""


# What preprocessing.json must hold: key -> JSON type (nested: key -> schema of that object).
SPEC_SCHEMA: dict[str, Any] = {
    "format_version": int,
    "preprocessing": {
        "feature_version": int,
        "vocabs": dict,
        "features": {"max_len": int, "categorical": list, "numeric": list, "time_zone": str},
        "feature_names": {"numeric": list, "context": list, "stages": list},
        "labels": dict,
        "schema": {"columns": dict},
        "cutoffs": dict,
    },
    "tasks": dict,
    "temperatures": dict,
    "model": dict,
    "onnx": {"files": dict, "inputs": list, "outputs": list},
    "files": dict,
    "spec_sha256": str,
}
_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer"}


def spec_checksum(spec: Mapping[str, Any]) -> str:
    """SHA-256 of the spec's canonical JSON, without its own ``spec_sha256``."""
    body = {k: v for k, v in spec.items() if k != "spec_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    """What preprocessing.json records about one bundle file."""
    return {"bytes": path.stat().st_size, "sha256": sha256(path)}


def _check_schema(spec: Any, schema: Mapping[str, Any], where: str, prefix: str = "") -> None:
    if not isinstance(spec, dict):
        raise BundleError(f"{where}: {prefix or 'the content'} is not a JSON object; re-export")
    for key, want in schema.items():
        name = f"{prefix}{key}"
        if key not in spec:
            raise BundleError(f"{where}: required key '{name}' is missing; the file is incomplete or damaged, re-export the bundle")
        if isinstance(want, dict):
            _check_schema(spec[key], want, where, f"{name}.")
            continue
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, want):
            raise BundleError(f"{where}: key '{name}' is {type(value).__name__}, expected {_JSON_NAMES[want]}; re-export the bundle")


@dataclass(frozen=True, eq=False)
class Bundle:
    """A loaded bundle: its directory and the preprocessing it was trained with.

    Attributes:
        path: the bundle directory.
        spec: the parsed ``preprocessing.json``.
    """

    path: Path
    spec: Mapping[str, Any]

    @cached_property
    def preprocessing(self) -> Preprocessing:
        """The fitted preprocessing the model was trained with (the checkpoint's, unchanged).

        Raises :class:`BundleError` saying to re-export when this package computes other
        features than the bundle's model was trained on.
        """
        try:
            return Preprocessing.from_dict(self.spec["preprocessing"], f"{self.path / PREPROCESSING}")
        except PreprocessingMismatch as err:
            raise BundleError(str(err)) from None

    @property
    def actions(self) -> tuple[str, ...]:
        """Action name of each next-action class (index = vocabulary id)."""
        return self.preprocessing.actions

    @property
    def stages(self) -> tuple[str, ...]:
        return self.preprocessing.stages

    @property
    def tasks(self) -> list[Task]:
        """The enabled tasks of the model, in registry order."""
        return registry.enabled(self.spec["tasks"])

    def context(self, top_k: int = TOP_K) -> TaskContext:
        """What the tasks' prediction columns and plots need from the bundle."""
        return TaskContext(
            actions=self.actions,
            stages=self.stages,
            top_k=top_k,
            temperatures=dict(self.spec.get("temperatures") or {}),
            items=self.preprocessing.items,
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
        base = self.preprocessing.schema.to_dict()
        for key, value in (overrides or {}).items():
            if value is None:
                continue
            if key not in SCHEMA_OVERRIDES:
                raise ConfigError(
                    f"data.{key} cannot be overridden at predict time; allowed: "
                    f"{list(SCHEMA_OVERRIDES)} "
                    "(the extra feature columns are fixed by the model)"
                )
            if key == "columns":  # a null entry keeps the training column
                value = {**base["columns"], **{k: v for k, v in dict(value).items() if v is not None}}
            base[key] = value
        return EventSchema.from_config(base)

    def model_path(self, precision: str = "fp32", graph: str = "plain") -> Path:
        """The model file of ``precision`` (fp32 | int8) and ``graph`` (plain: standard ONNX;
        fused: fused attention, onnxruntime only)."""
        if precision not in MODEL_FILES:
            raise ConfigError(f"precision={precision!r} is not one of {[*PRECISIONS, 'auto']}")
        if graph not in GRAPHS:
            raise ConfigError(f"graph={graph!r} is not one of {[*GRAPHS, 'auto']}")
        path = self.path / (FUSED_FILES if graph == "fused" else MODEL_FILES)[precision]
        if not path.exists():
            hint = (
                " (bundles exported before fused attention lack it: re-export, or use graph=plain)"
                if graph == "fused" and precision == "fp32"
                else " (export with quantize=true to write it)"
            )
            raise BundleError(f"{path}: no such file in the bundle{hint}")
        return path

    def graphs(self, precision: str = "fp32") -> list[str]:
        """The graphs this bundle has for ``precision``."""
        files = {"plain": MODEL_FILES[precision], "fused": FUSED_FILES[precision]}
        return [g for g in GRAPHS if (self.path / files[g]).exists()]

    def int8_agreement(self, graph: str) -> dict[str, Any] | None:
        """What export measured for the int8 ``graph`` against fp32 on validation data
        (``top1_agreement_min``, ``headline_abs_diff_max``, ``bar``, ``passes``), or None when
        the bundle records nothing (no int8, or exported before this was recorded)."""
        return (self.spec["onnx"].get("int8_agreement") or {}).get(graph)


def load_bundle(path: str | Path) -> Bundle:
    """Read ``preprocessing.json`` of the bundle at ``path`` and check the bundle's integrity
    (module docstring); raises :class:`BundleError` naming the file and the failed check."""
    path = Path(path)
    spec_path = path / PREPROCESSING
    if not spec_path.is_file():
        raise BundleError(
            f"{path}: not a model bundle (no {PREPROCESSING}); make one with "
            "`python scripts/export.py checkpoint=<run_dir>/best.ckpt`"
        )
    try:
        spec = json.loads(spec_path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise BundleError(
            f"{spec_path}: not valid JSON ({err}); the file is damaged, re-export the bundle"
        ) from None
    version = spec.get("format_version") if isinstance(spec, dict) else None
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{spec_path}: bundle format {version}, this package reads format {FORMAT_VERSION}; "
            "re-export the checkpoint with this version of journeyformer"
        )
    _check_schema(spec, SPEC_SCHEMA, str(spec_path))
    if spec_checksum(spec) != spec["spec_sha256"]:
        raise BundleError(
            f"{spec_path}: checksum mismatch: the file was edited after export (vocabularies, "
            "max_len, ... must stay as the model was trained); re-export the bundle"
        )
    named = [*spec["onnx"]["files"].values(), *(spec.get(k) for k in ("reference", "clusters"))]
    missing = [f for f in named if f is not None and f not in spec["files"]]
    if missing:
        raise BundleError(f"{spec_path}: file(s) {missing} have no recorded checksum; re-export the bundle")
    for name, record in spec["files"].items():
        f = path / name
        if not f.is_file():
            raise BundleError(f"{f}: missing from the bundle (it was exported with it); re-export the bundle")
        size = f.stat().st_size
        if size != record.get("bytes"):
            raise BundleError(
                f"{f}: size check failed ({size} bytes, the export wrote {record.get('bytes')}): "
                "truncated or replaced; re-export the bundle"
            )
        if sha256(f) != record.get("sha256"):
            raise BundleError(
                f"{f}: checksum mismatch: the file changed after export (damaged or edited); "
                "re-export the bundle"
            )
    bundle = Bundle(path, spec)
    bundle.preprocessing  # noqa: B018 - fails now, saying to re-export, if the features changed
    return bundle
