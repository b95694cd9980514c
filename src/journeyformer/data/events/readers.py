"""Readers: the user's event file(s) as a lazy frame, column names and values as they are.

This module is the one place to add a data source: write a function
``(files, schema, name) -> pl.LazyFrame`` and register it in :data:`READERS` under a format
name (and its file suffixes in :data:`SUFFIXES`). Everything after reading (renaming, types,
validation) is the same for every source (:mod:`journeyformer.data.events.load`).

* **Parquet**: one file, a directory of ``*.parquet`` files or a glob. Files of one input may
  differ in harmless ways, which are reconciled: columns that only some files have and that the
  schema does not use are dropped; integer and float versions of a number column are widened
  to Float64 (integers of different widths to Int64, strings and categoricals to String).
  Anything else (a used column missing in a file, text in one file and numbers in another) is
  an error naming each file and its type.
* **CSV**: the separator is ``data.separator`` or, when ``auto``, sniffed from the header line
  (one of ``, ; \\t |``; ``.tsv`` files default to tab). A file with a header and no rows holds
  no events; when every file is like that, the error says so.
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from pathlib import Path

import polars as pl

from journeyformer.data.events.schema import EventSchema
from journeyformer.data.events.timestamps import is_text
from journeyformer.errors import EventDataError

_EXAMPLES = 5
SEPARATORS = (",", ";", "\t", "|")


def resolve_files(path: str | Path) -> list[Path]:
    """A file, a directory of Parquet files, or a glob -> the sorted list of files."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.parquet"))
        if not files:
            found = sorted(f.name for f in p.iterdir())[:_EXAMPLES]
            raise EventDataError(
                f"{p}: directory has no *.parquet files (found {found}); point data.path at a "
                "file, or at a glob such as '<dir>/*.csv'"
            )
        return files
    if any(ch in str(path) for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(str(path)) if Path(f).is_file())
        if not files:
            raise EventDataError(f"{path}: glob matches no files; fix data.path")
        return files
    if not p.exists():
        raise EventDataError(f"{p}: no such file (set data.path to your events file)")
    return [p]


def format_of(files: list[Path], fmt: str) -> str:
    """The registered format of ``files``: ``fmt`` unless ``auto``, else by file suffix."""
    if fmt != "auto":
        return fmt
    suffixes = {f.suffix.lower() for f in files}
    for name, known in SUFFIXES.items():
        if suffixes <= known:
            return name
    raise EventDataError(
        f"{files[0]}: cannot tell the format from suffixes {sorted(suffixes)}; "
        "set " + " or ".join(f"data.format={n}" for n in READERS)
    )


# --- Parquet -------------------------------------------------------------------------------


def _widen(types: set[pl.DataType]) -> pl.DataType | None:
    """One type every file's version of a column casts to without loss, or None."""
    if len(types) == 1:
        return next(iter(types))
    if all(t.is_integer() for t in types):
        return pl.Int64
    if all(t.is_numeric() for t in types):
        return pl.Float64
    if all(is_text(t) for t in types):
        return pl.String
    if all(isinstance(t, pl.Datetime) for t in types) and len({t.time_zone for t in types}) == 1:
        return pl.Datetime("us", next(iter(types)).time_zone)
    return None


def read_parquet(files: list[Path], schema: EventSchema, name: str) -> pl.LazyFrame:
    """Parquet file(s) as one lazy frame; see the module docstring for reconciling files."""
    if len(files) == 1:
        return pl.scan_parquet(files)
    try:
        schemas = {f: pl.read_parquet_schema(f) for f in files}
    except Exception as err:  # noqa: BLE001 - any unreadable file: name it
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EventDataError(f"{name}: cannot read a Parquet file: {first}") from None
    used = set(schema.read_columns().values())
    columns = list(dict.fromkeys(c for s in schemas.values() for c in s))
    keep, casts, problems = [], {}, []
    for col in columns:
        have = {f: s[col] for f, s in schemas.items() if col in s}
        lacking = [f.name for f in files if col not in schemas[f]]
        if lacking and col not in used:
            continue  # an extra column some files have: not read
        if lacking:
            problems.append(
                f"column '{col}' is missing in {len(lacking)} file(s), e.g. {lacking[:3]}"
            )
        keep.append(col)
        target = _widen(set(have.values()))
        if target is None:
            by_file = ", ".join(f"{f.name}: {t}" for f, t in list(have.items())[:_EXAMPLES])
            problems.append(f"column '{col}' has conflicting types ({by_file})")
        elif any(t != target for t in have.values()):
            casts[col] = target
    if problems:
        raise EventDataError(
            f"{name}: the {len(files)} Parquet files do not fit together: "
            + "; ".join(problems)
            + ". Rewrite those files with the same columns and types, or read one file."
        )
    return pl.concat(
        [
            pl.scan_parquet(f).select(
                pl.col(c).cast(casts[c]) if c in casts else pl.col(c) for c in keep
            )
            for f in files
        ],
        how="vertical",
    )


# --- CSV -----------------------------------------------------------------------------------


def _header(path: Path) -> tuple[str, bool]:
    """The first line of ``path`` and whether any row follows it."""
    with path.open("r", encoding="utf-8", errors="replace") as f:
        header = f.readline()
        has_rows = any(line.strip() for line in f)
    return header.rstrip("\r\n"), has_rows


def sniff_separator(header: str, path: Path) -> str:
    """The separator of a CSV header line: the candidate that splits it into most columns."""
    counts = {s: header.count(s) for s in SEPARATORS}
    best = max(counts, key=lambda s: counts[s])
    if counts[best] == 0:
        return "\t" if path.suffix.lower() == ".tsv" else ","
    return best


def _canonical_integers(files: list[Path], sep: str, column: str) -> bool:
    """Whether a CSV column holds only integers written without leading zeros or signs."""
    try:
        values = pl.scan_csv(files, separator=sep, infer_schema=False).select(column).collect()
    except Exception:  # noqa: BLE001 - missing column or unreadable file: the normal read reports it
        return False
    col = values.get_column(column).drop_nulls()
    return col.len() > 0 and bool(col.str.contains(r"^(0|-?[1-9][0-9]{0,17})$").all())


def read_csv(files: list[Path], schema: EventSchema, name: str) -> pl.LazyFrame:
    """CSV file(s) as one lazy frame: separator set or sniffed, header-only files skipped."""
    headers = {f: _header(f) for f in files}
    with_rows = [f for f in files if headers[f][1]]
    if not with_rows:
        raise EventDataError(
            f"{name}: no events: {'the file has' if len(files) == 1 else 'every file has'} a "
            "header line and no rows; point data.path at your events"
        )
    files = with_rows
    sep = schema.separator
    if sep in (None, "", "auto"):
        seps = {sniff_separator(headers[f][0], f) for f in files}
        if len(seps) > 1:
            raise EventDataError(
                f"{name}: the files use different separators {sorted(seps)}; set data.separator"
            )
        sep = seps.pop()
    # Keys and categorical columns stay text: "007" and "7" are two customers, and code columns
    # like "01" must match the vocabulary; timestamps are parsed by us, so errors can name bad
    # values. Other types are inferred from the whole file, so a late odd value cannot break it.
    text = ["customer_id", "timestamp", "channel", "action"]
    names = [schema.source(c) for c in text] + list(schema.extra_categorical)
    overrides = {n: pl.String for n in names if n}
    cid = schema.source("customer_id")
    if cid and _canonical_integers(files, sep, cid):
        overrides[cid] = pl.Int64  # plain integers read as in Parquet; "007" stays text
    return pl.scan_csv(files, separator=sep, schema_overrides=overrides, infer_schema_length=None)


Reader = Callable[[list[Path], "EventSchema", str], pl.LazyFrame]

# The data sources: format name -> reader, and the file suffixes ``format: auto`` maps to it.
READERS: dict[str, Reader] = {"parquet": read_parquet, "csv": read_csv}
SUFFIXES: dict[str, set[str]] = {"parquet": {".parquet", ".pq"}, "csv": {".csv", ".tsv", ".txt"}}


def scan_raw(path: str | Path, schema: EventSchema) -> tuple[pl.LazyFrame, str]:
    """Lazily scan the user's file(s) as they are; returns the frame and a display name."""
    files = resolve_files(path)
    name = str(path)
    return READERS[format_of(files, schema.format)](files, schema, name), name
