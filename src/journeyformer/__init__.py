"""journeyformer: one multi-task Transformer for customer journeys.

events (Parquet/CSV) -> Polars sequences and labels -> Transformer (Lightning)
-> checkpoint -> ONNX bundle -> onnxruntime batch predictions.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("journeyformer")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["Predictor", "__version__"]


def __getattr__(name: str):  # lazy: `import journeyformer` stays light (no polars/onnxruntime)
    if name == "Predictor":
        from journeyformer.api import Predictor

        return Predictor
    raise AttributeError(f"module 'journeyformer' has no attribute {name!r}")
