"""Score events with an ONNX bundle.

    python scripts/predict.py bundle=<dir> data.path=<events> [output=predictions.parquet]
    python scripts/predict.py bundle=<dir> data.path=<events> as_of=2025-12-31T00:00:00 device=cuda

Runs without PyTorch (the base install).

A thin wrapper over ``journeyformer predict`` (journeyformer.cli), which works from any directory
once the package is installed.
"""

import sys

from journeyformer.cli import main

if __name__ == "__main__":
    main(["predict", *sys.argv[1:]])
