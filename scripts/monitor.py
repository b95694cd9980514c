"""Drift monitoring: new events against the bundle's validation reference.

    python scripts/monitor.py bundle=<dir> data.path=<events> [as_of=2026-01-31 fail_on_drift=true]

Writes monitor.json and monitor.html; exits with 3 on drift when fail_on_drift=true. Runs
without PyTorch (the base install; plots need journeyformer[report]).

A thin wrapper over ``journeyformer monitor`` (journeyformer.cli).
"""

import sys

from journeyformer.cli import main

if __name__ == "__main__":
    main(["monitor", *sys.argv[1:]])
