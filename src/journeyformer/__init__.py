"""journeyformer: one multi-task Transformer for customer journeys.

events (Parquet/CSV) -> Polars sequences and labels -> Transformer (Lightning)
-> checkpoint -> ONNX bundle -> onnxruntime batch predictions.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("journeyformer")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
