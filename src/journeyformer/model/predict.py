"""Score Sequences with a trained network in torch (eager), batch by batch."""

from __future__ import annotations

import numpy as np
import torch

from journeyformer.data.batch import collate
from journeyformer.data.sequences import Sequences
from journeyformer.model.network import OUTPUTS, JourneyTransformer


@torch.no_grad()
def predict_sequences(
    net: JourneyTransformer, seqs: Sequences, batch_size: int = 512, device: str = "cpu"
) -> dict[str, np.ndarray]:
    """OUTPUTS name -> (N, ...) array in the order of ``seqs``.

    Batches are cut from samples sorted by length, so little compute goes to padding.
    """
    net = net.eval().to(device)
    order = np.argsort(seqs.lengths, kind="stable")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in OUTPUTS}
    for start in range(0, len(order), batch_size):
        batch = collate(seqs, order[start : start + batch_size]).to(device)
        for name, value in zip(OUTPUTS, net.predict(*batch.inputs()), strict=True):
            parts[name].append(value.float().cpu().numpy())
    out = {}
    for name, chunks in parts.items():
        stacked = np.concatenate(chunks)
        restored = np.empty_like(stacked)
        restored[order] = stacked
        out[name] = restored
    return out
