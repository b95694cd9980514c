"""Checkpoints hold plain values: the model config, the preprocessing dict and the weights.

``load_network`` rebuilds the network from a Lightning checkpoint with
``torch.load(weights_only=True)`` and no Lightning import, for export and torch scoring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from journeyformer.errors import CheckpointError
from journeyformer.model.config import ModelConfig
from journeyformer.model.network import JourneyTransformer


def read_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """The checkpoint's plain values (``weights_only=True``); a missing, truncated or foreign
    file is a :class:`CheckpointError` naming it."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such checkpoint (pass e.g. checkpoints/<run>/best.ckpt)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
        hp = ckpt["hyper_parameters"]
        hp["model"], hp["preprocessing"], ckpt["state_dict"]
    except Exception as err:  # unpickling errors, truncated files, foreign checkpoints
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise CheckpointError(
            f"{path}: not a journeyformer checkpoint, or damaged ({type(err).__name__}: "
            f"{first}); pass the best.ckpt or last.ckpt that scripts/train.py wrote under "
            "checkpoints/<run>/"
        ) from None
    return ckpt


def network_state(net: JourneyTransformer, state: dict[str, Any], prefix: str = "net.") -> dict[str, Any]:
    """The network's weights out of a LightningModule state dict (``net.`` prefix), with
    temperatures of 1 for checkpoints written before calibration."""
    out = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    for task in net.tasks:
        if task.calibrated:
            out.setdefault(f"{task.name}_temperature", torch.ones(()))
        if task.scaled_output:  # ... and before value scaling
            out.setdefault(f"{task.name}_scale", torch.ones(()))
    out.setdefault("context_mean", torch.zeros(net.cfg.n_context))  # ... and before standardising
    out.setdefault("context_scale", torch.ones(net.cfg.n_context))
    return out


def load_weights(net: JourneyTransformer, state: dict[str, Any], path: str | Path) -> JourneyTransformer:
    """Load a checkpoint's state dict into ``net``; a mismatch is a :class:`CheckpointError`."""
    try:
        net.load_state_dict(network_state(net, state))
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: its weights do not fit the model its settings describe "
            f"({str(err).splitlines()[0]}); the file is damaged or was edited"
        ) from None
    return net


def load_network(path: str | Path, ckpt: dict[str, Any] | None = None) -> JourneyTransformer:
    """The trained network of a checkpoint, in eval mode on the CPU (``ckpt``: its values,
    when the caller has read them already)."""
    ckpt = read_checkpoint(path) if ckpt is None else ckpt
    net = JourneyTransformer(ModelConfig(**ckpt["hyper_parameters"]["model"]))
    return load_weights(net, ckpt["state_dict"], path).eval()
