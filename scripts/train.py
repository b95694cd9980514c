"""Train journeyformer: python scripts/train.py [hydra overrides], e.g. model=tiny trainer.max_epochs=1.

A thin wrapper over ``journeyformer train`` (journeyformer.cli), which works from any directory
once the package is installed.
"""

import sys

from journeyformer.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
