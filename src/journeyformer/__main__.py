"""``python -m journeyformer <command> ...``: the same as the ``journeyformer`` command."""

from journeyformer.cli import main

if __name__ == "__main__":
    main()
