"""Export a checkpoint to an ONNX bundle.

    python scripts/export.py checkpoint=<run_dir>/best.ckpt [output=<dir>]
    python scripts/export.py checkpoint=<run_dir>/best.ckpt quantize=true data.path=<events>

A thin wrapper over ``journeyformer export`` (journeyformer.cli), which works from any directory
once the package is installed.
"""

import sys

from journeyformer.cli import main

if __name__ == "__main__":
    main(["export", *sys.argv[1:]])
