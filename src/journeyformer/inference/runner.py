"""The onnxruntime runner: one padded batch -> named outputs with a bundle's graph (no torch)."""

from __future__ import annotations

import numpy as np

from journeyformer.errors import ConfigError
from journeyformer.inference.bundle import Bundle
from journeyformer.inference.session import make_session


class OnnxRunner:
    """One onnxruntime session over a bundle's model.

    Args:
        bundle: a loaded bundle (:func:`journeyformer.inference.bundle.load_bundle`).
        device: "cpu" or "cuda" (onnxruntime-gpu's CUDA execution provider).
        precision: "fp32" (model.onnx) or "int8" (model.int8.onnx).
        threads, spinning, optimization: see :mod:`journeyformer.inference.session`.
    """

    def __init__(
        self,
        bundle: Bundle,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int | None = None,
        spinning: bool = False,
        optimization: str = "basic",
    ) -> None:
        self.bundle = bundle
        self.session = make_session(bundle.model_path(precision), device, threads, spinning, optimization)
        self.input_names = bundle.input_names
        self.output_names = bundle.output_names
        got = tuple(i.name for i in self.session.get_inputs())
        if got != self.input_names:
            raise ConfigError(
                f"{bundle.path}: model inputs {got} differ from preprocessing.json "
                f"{self.input_names}; re-export the bundle"
            )

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One batch: input name -> array, to output name -> (B, ...) array."""
        outs = self.session.run(list(self.output_names), {n: inputs[n] for n in self.input_names})
        return dict(zip(self.output_names, outs, strict=True))
