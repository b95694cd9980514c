"""Render (or check) the ONNX contract page of a bundle.

    python scripts/onnx_contract.py BUNDLE_DIR                    # print the page
    python scripts/onnx_contract.py BUNDLE_DIR --out docs/onnx-contract.md
    python scripts/onnx_contract.py BUNDLE_DIR --out docs/onnx-contract.md --check

``--check`` writes nothing: it exits 1 with a diff when the file differs from the page the
bundle renders (``docs/onnx-contract.md`` is rendered from a bundle of the default
configuration). Exit 2 with one line for a missing or damaged bundle. A thin wrapper over :mod:`journeyformer.export.contract`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from journeyformer.cli import entry_point
from journeyformer.export.contract import check_page, contract_markdown
from journeyformer.io import atomic_write_text


@entry_point  # user errors (a missing or damaged bundle) as one line, exit 2
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="bundle directory (holds preprocessing.json)")
    parser.add_argument("--out", type=Path, default=None, help="the page to write or check")
    parser.add_argument("--check", action="store_true", help="exit 1 with a diff when --out differs")
    args = parser.parse_args(argv)
    if args.check:
        if args.out is None:
            parser.error("--check needs --out (the page to compare)")
        diff = check_page(args.bundle, args.out)
        if diff is not None:
            sys.stdout.write(diff)
            print(
                f"\n{args.out} is out of date; regenerate it with: python scripts/onnx_contract.py "
                f"{args.bundle} --out {args.out}",
                file=sys.stderr,
            )
            return 1
        return 0
    page = contract_markdown(args.bundle)
    if args.out is None:
        sys.stdout.write(page)
    else:
        atomic_write_text(args.out, page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
