"""The real-time scoring service over a bundle.

    python scripts/serve.py bundle=<dir> [port=8000 state.path=state/customers.bin]

POST /events, GET /customers/{id}, POST /score, /health, /metrics; optionally a Redis stream
in and triggers out (configs/serve.yaml, docs/service.md). Runs without PyTorch; needs
journeyformer[serve].

A thin wrapper over ``journeyformer serve`` (journeyformer.cli).
"""

import sys

from journeyformer.cli import main

if __name__ == "__main__":
    main(["serve", *sys.argv[1:]])
