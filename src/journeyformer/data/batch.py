"""The one batch contract: padded (B, T) tensors plus lengths, targets under one field.

It flows from the datamodule through the model, the exporter and the evaluation code. The
ONNX predictor uses the same arrays in NumPy form (:func:`journeyformer.data.sequences.pad`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from journeyformer.data.sequences import Sequences, pad

MODEL_INPUTS = ("categorical", "numeric", "lengths", "stage_now", "context")


@dataclass
class JourneyBatch:
    """A batch of B customers, T = longest sequence in the batch.

    Attributes:
        categorical: (B, T, C) int64 vocabulary ids, 0 = padding; column 0 is the action.
        numeric: (B, T, F) float32 per-event features, 0 at padding.
        lengths: (B,) int64 real events per customer (>= 1); events sit at 0..length-1.
        stage_now: (B,) int64 lifecycle stage at the cutoff.
        context: (B, S) float32 whole-history summary features.
        targets: task -> (B,) tensor, or None at predict time.
        index: (B,) int64 position of each row in the source Sequences.
    """

    categorical: Tensor
    numeric: Tensor
    lengths: Tensor
    stage_now: Tensor
    context: Tensor
    targets: dict[str, Tensor] | None
    index: Tensor

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def inputs(self) -> tuple[Tensor, ...]:
        """Model inputs in MODEL_INPUTS order (the ONNX graph takes the same)."""
        return tuple(getattr(self, name) for name in MODEL_INPUTS)

    def to(self, device: torch.device | str) -> JourneyBatch:
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return JourneyBatch(
            *(move(t) for t in self.inputs()),
            targets=None if self.targets is None else {k: move(v) for k, v in self.targets.items()},
            index=self.index,
        )


def collate(seqs: Sequences, index: np.ndarray, max_len: int | None = None) -> JourneyBatch:
    """Pad the samples at ``index`` into a JourneyBatch (targets included when labelled)."""
    index = np.asarray(index, dtype=np.int64)
    arrays = pad(seqs, index, max_len)
    targets = None
    if seqs.labels is not None:
        targets = {k: torch.from_numpy(np.ascontiguousarray(v[index])) for k, v in seqs.labels.items()}
    return JourneyBatch(
        *(torch.from_numpy(arrays[name]) for name in MODEL_INPUTS),
        targets=targets,
        index=torch.from_numpy(index),
    )


class Collate:
    """Picklable collate_fn for DataLoader workers: list of sample indices -> JourneyBatch."""

    def __init__(self, seqs: Sequences, max_len: int | None = None) -> None:
        self.seqs = seqs
        self.max_len = max_len

    def __call__(self, index: list[int]) -> JourneyBatch:
        return collate(self.seqs, np.asarray(index), self.max_len)
