"""Optuna search over train: python scripts/search.py [hydra overrides], e.g. model=tiny hparams_search.n_trials=2.

A thin wrapper over ``journeyformer search`` (journeyformer.cli -> journeyformer.search); the
same command again resumes the study from its SQLite storage.
"""

import sys

from journeyformer.cli import main

if __name__ == "__main__":
    main(["search", *sys.argv[1:]])
