"""Score Sequences with a trained network in torch (eager), batch by batch."""

from __future__ import annotations

import numpy as np
import torch

from journeyformer.data.batch import MODEL_INPUTS
from journeyformer.data.sequences import Sequences
from journeyformer.inference.predictor import length_batches, run_in_batches
from journeyformer.model.network import JourneyTransformer


@torch.no_grad()
def predict_sequences(
    net: JourneyTransformer, seqs: Sequences, batch_size: int = 512, device: str = "cpu"
) -> dict[str, np.ndarray]:
    """Output name -> (N, ...) array in the order of ``seqs`` (``net.output_names``).

    Batches are cut from samples sorted by length (the same batching as the ONNX predictor),
    so little compute goes to padding.
    """
    net = net.eval().to(device)

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = (torch.from_numpy(inputs[name]).to(device) for name in MODEL_INPUTS)
        return {n: v.float().cpu().numpy() for n, v in net.predict(*tensors).items()}

    return run_in_batches(len(seqs), length_batches(seqs, batch_size), run)
