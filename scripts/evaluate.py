"""Evaluate an ONNX bundle against baselines: metrics.json + report.html.

    python scripts/evaluate.py bundle=<dir> data.path=<events> [as_of=2025-12-01 output=<dir>]

A thin wrapper over ``journeyformer evaluate`` (journeyformer.cli), which works from any directory
once the package is installed.
"""

import sys

from journeyformer.cli import main

if __name__ == "__main__":
    main(["evaluate", *sys.argv[1:]])
