"""Generate the embedded synthetic data set: python scripts/generate_data.py [hydra overrides].

Writes events.parquet, truth_customers.parquet and truth_stages.parquet into the folder of
``data.path`` (a relative path resolves against the directory the command was started from)
and prints a summary, e.g. ``python scripts/generate_data.py data.synthetic.n_customers=1000``.

A thin wrapper over ``journeyformer generate-data`` (journeyformer.cli), which works from any directory
once the package is installed.
"""

import sys

from journeyformer.cli import main

if __name__ == "__main__":
    main(["generate-data", *sys.argv[1:]])
