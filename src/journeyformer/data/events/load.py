"""Load a user's events: read the file(s), normalize, validate (the canonical frame).

:func:`load_events` is the one entry point for events in memory; :func:`scan_events` gives the
lazy normalized frame for readers that validate chunk by chunk. The canonical columns and the
settings are :mod:`journeyformer.data.events.schema`; the steps are
:mod:`journeyformer.data.events.readers` -> :mod:`journeyformer.data.events.normalize` ->
:mod:`journeyformer.data.events.validate`.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from journeyformer.data.events.normalize import normalize
from journeyformer.data.events.readers import scan_raw
from journeyformer.data.events.schema import EventSchema
from journeyformer.data.events.validate import validate
from journeyformer.errors import EventDataError


def read_error(name: str, err: Exception) -> EventDataError:
    """A Polars failure while reading ``name`` as an error that says what to check."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return EventDataError(
        f"{name}: cannot read the events: {first}. Check that the file is a valid Parquet/CSV "
        "file (data.format), that all files of a directory/glob have the same columns and "
        "types, and that each column holds one kind of value."
    )


def load_events(path: str | Path, schema: EventSchema) -> pl.DataFrame:
    """Read, normalize and validate events into memory (canonical columns, see module doc)."""
    lf, name = scan_events(path, schema)
    try:
        df = lf.collect()
    except pl.exceptions.PolarsError as err:
        raise read_error(name, err) from None
    return validate(df, schema, name)


def scan_events(path: str | Path, schema: EventSchema) -> tuple[pl.LazyFrame, str]:
    """Lazy normalized events, for chunked readers that validate each chunk."""
    lf, name = scan_raw(path, schema)
    try:
        return normalize(lf, schema, name), name
    except pl.exceptions.PolarsError as err:
        raise read_error(name, err) from None
