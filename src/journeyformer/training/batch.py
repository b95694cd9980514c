"""The batch in torch: :class:`journeyformer.data.features.batch.Batch` with tensors, for training."""

from __future__ import annotations

import numpy as np
import torch

from journeyformer.data.features.batch import Batch, make_batch
from journeyformer.data.features.sequences import Sequences


def to_torch(batch: Batch) -> Batch:
    """The same Batch with torch tensors (zero-copy from NumPy where possible)."""
    conv = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    targets = None if batch.targets is None else {k: conv(v) for k, v in batch.targets.items()}
    return Batch(conv(batch.index), {k: conv(v) for k, v in batch.inputs.items()}, targets)


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
    targets = None if batch.targets is None else {k: move(v) for k, v in batch.targets.items()}
    return Batch(batch.index, {k: move(v) for k, v in batch.inputs.items()}, targets)


class Collate:
    """Picklable collate_fn for DataLoader workers: list of sample indices -> torch Batch."""

    def __init__(self, seqs: Sequences) -> None:
        self.seqs = seqs

    def __call__(self, index: list[int]) -> Batch:
        return to_torch(make_batch(self.seqs, np.asarray(index)))
