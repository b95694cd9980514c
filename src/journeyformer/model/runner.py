"""Runners in torch for the scoring loop (:func:`journeyformer.inference.loop.score_sequences`),
and torch scoring of whole Sequences (calibration, train-time evaluation, the torch/ONNX comparisons)."""

from __future__ import annotations

import numpy as np
import torch

from journeyformer.data.features.batch import MODEL_INPUTS, run_model
from journeyformer.data.features.sequences import Sequences
from journeyformer.model.network import JourneyTransformer


class TorchRunner:
    """One padded NumPy batch -> named NumPy outputs with the eager network.

    ``last_only`` as :meth:`JourneyTransformer.predict` (the last block at the last event only).
    """

    workers = 1  # one batch at a time; torch splits each operator across its own threads

    def __init__(self, net: JourneyTransformer, device: str = "cpu", last_only: bool = True) -> None:
        self.net = net.eval().to(device)
        self.device = device
        self.last_only = last_only
        self.output_names = net.output_names

    @torch.no_grad()
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = (torch.from_numpy(inputs[name]).to(self.device) for name in MODEL_INPUTS)
        out = self.net.predict(*tensors, last_only=self.last_only)
        return {n: (v.float() if v.is_floating_point() else v).cpu().numpy() for n, v in out.items()}


def predict_sequences(
    net: JourneyTransformer, seqs: Sequences, batch_size: int = 512, device: str = "cpu"
) -> dict[str, np.ndarray]:
    """Output name -> (N, ...) array in the order of ``seqs`` (``net.output_names``), batches
    cut from samples sorted by length (the predictor's batching)."""
    return run_model(seqs, TorchRunner(net, device), batch_size)[0]
