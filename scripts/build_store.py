"""Build the sample store for training on data larger than memory.

    python scripts/build_store.py data=events data.path=<events> data.store=<dir>
    python scripts/train.py data=events data.path=<events> data.store=<dir>

A thin wrapper over ``journeyformer build-store`` (journeyformer.cli).
"""

import sys

from journeyformer.cli import main

if __name__ == "__main__":
    main(["build-store", *sys.argv[1:]])
