"""The run manifest: what a training run produced, named explicitly (``run.json``).

The train job writes it last, atomically, into its run directory; the export reads it instead
of guessing file names. It holds plain JSON values only:

==================  ===========================================================================
key                 value
==================  ===========================================================================
format              manifest version (:data:`FORMAT`)
best_checkpoint     the best checkpoint (Lightning's, never rewritten), relative to the run dir
last_checkpoint     the last checkpoint, or null
spec_sha256         SHA-256 of the checkpoint's preprocessing dict (canonical JSON)
model               the model settings (``ModelConfig`` fields)
calibration         task -> what was fitted on validation (temperature, ECE before/after, scale)
buffers             network buffer -> value, the calibration the exported model carries
validation          task -> metric -> value of the best checkpoint on the validation split
metrics             the run's metrics file (test table, validation, verdicts), relative, or null
config              the resolved training config
==================  ===========================================================================

The calibration lives here, not in the checkpoint: :func:`load_run_network` applies
``buffers`` to the best checkpoint's network, so the checkpoint Lightning wrote stays as it was
(and loads with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from journeyformer.errors import CheckpointError
from journeyformer.io import atomic_write_text
from journeyformer.model.checkpoint import load_network, read_checkpoint
from journeyformer.model.network import JourneyTransformer

log = logging.getLogger(__name__)

MANIFEST = "run.json"
FORMAT = 1


def spec_hash(preprocessing: Mapping[str, Any]) -> str:
    """SHA-256 of a preprocessing dict as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(preprocessing, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class RunManifest:
    """See the module docstring; paths are relative to ``run_dir``."""

    best_checkpoint: str
    spec_sha256: str
    model: dict[str, Any]
    last_checkpoint: str | None = None
    calibration: dict[str, dict[str, float]] = field(default_factory=dict)
    buffers: dict[str, float] = field(default_factory=dict)
    validation: dict[str, dict[str, float]] = field(default_factory=dict)
    metrics: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    # Each head's choice among the network, LightGBM and blends (training/blend.py): network
    # weights, the boosters' text files and their classes; None: the network alone.
    blend: dict[str, Any] | None = None
    format: int = FORMAT

    def path(self, run_dir: Path, key: str) -> Path | None:
        """The file ``key`` names (best_checkpoint, last_checkpoint, metrics), or None."""
        value = getattr(self, key)
        return None if value is None else run_dir / value

    def write(self, run_dir: str | Path) -> Path:
        """``run_dir/run.json``, written atomically."""
        out = Path(run_dir) / MANIFEST
        atomic_write_text(out, json.dumps(asdict(self), indent=1, default=str))
        return out

    @classmethod
    def read(cls, run_dir: str | Path) -> RunManifest:
        """The manifest of ``run_dir``; a missing or damaged one is a :class:`CheckpointError`."""
        path = Path(run_dir) / MANIFEST
        try:
            raw = json.loads(path.read_text())
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, this package reads {FORMAT}")
            return cls(**raw)
        except FileNotFoundError:
            raise CheckpointError(
                f"{path}: no run manifest; pass the run directory (or a checkpoint in it) that "
                "`journeyformer train` wrote"
            ) from None
        except (ValueError, TypeError) as err:
            raise CheckpointError(f"{path}: not a journeyformer run manifest ({err})") from None


def find_run(path: str | Path) -> tuple[Path, RunManifest | None, Path]:
    """``path`` (a run directory, its ``run.json`` or a checkpoint) -> (run directory, manifest,
    checkpoint). A checkpoint gets the manifest beside it only when that manifest names it as
    the best checkpoint (a ``last.ckpt`` or a copy elsewhere gets none)."""
    p = Path(path)
    if p.is_dir() or p.name == MANIFEST:
        run_dir = p if p.is_dir() else p.parent
        manifest = RunManifest.read(run_dir)
        return run_dir, manifest, run_dir / manifest.best_checkpoint
    if (p.parent / MANIFEST).is_file():
        manifest = RunManifest.read(p.parent)
        best = p.parent / manifest.best_checkpoint
        if best.exists() and p.exists() and best.resolve() == p.resolve():
            return p.parent, manifest, p
    return p.parent, None, p


def apply_buffers(net: JourneyTransformer, buffers: Mapping[str, float], source: str) -> None:
    """Set the calibration ``buffers`` (name -> value) on ``net``."""
    names = dict(net.named_buffers())
    for name, value in buffers.items():
        if name not in names:
            raise CheckpointError(f"{source}: the network has no buffer {name!r} to calibrate")
        if isinstance(value, (list, tuple)):  # a per-class vector (decision offsets)
            names[name].copy_(torch.tensor(value, dtype=names[name].dtype))
        else:
            names[name].fill_(float(value))


class RunNetwork(NamedTuple):
    """What :func:`load_run_network` returns."""

    net: JourneyTransformer  # calibrated as the manifest says, eval mode, CPU
    manifest: RunManifest | None  # None for a checkpoint no manifest names
    checkpoint: Path  # the checkpoint read
    preprocessing: dict[str, Any]  # its preprocessing dict


def load_run_network(path: str | Path) -> RunNetwork:
    """The best network of a run (a run directory, its manifest or a checkpoint), calibrated as
    its manifest says; the checkpoint is read once.

    Raises :class:`CheckpointError` when the manifest's spec hash does not match the
    checkpoint's preprocessing (the files belong to different runs)."""
    run_dir, manifest, checkpoint = find_run(path)
    ckpt = read_checkpoint(checkpoint)
    net, pre = load_network(checkpoint, ckpt), ckpt["hyper_parameters"]["preprocessing"]
    if manifest is None:
        log.warning(
            "%s: no run manifest (%s) names this checkpoint; it is used without the "
            "calibration fitted after training", checkpoint, run_dir / MANIFEST,
        )  # fmt: skip
        return RunNetwork(net, None, checkpoint, pre)
    if spec_hash(pre) != manifest.spec_sha256:
        raise CheckpointError(
            f"{run_dir / MANIFEST}: describes another preprocessing than {checkpoint} holds "
            "(spec hash differs); the files come from different runs. Export the run directory "
            "that `journeyformer train` wrote, unmodified."
        )
    with torch.no_grad():
        apply_buffers(net, manifest.buffers, str(run_dir / MANIFEST))
    return RunNetwork(net, manifest, checkpoint, pre)
