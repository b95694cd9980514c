"""The event contract: which columns a user's events have and how to read them.

One row per event. After :func:`journeyformer.data.events.load.load_events` every frame has the canonical columns

=============  ==============================  ==========================================
column         dtype                           meaning
=============  ==============================  ==========================================
_row           UInt32/UInt64                   position in the input: breaks timestamp ties
customer_id    Int64 or String (as given)      who
timestamp      Datetime("us", "UTC")           when (naive input is read in ``time_zone``)
channel        String                          web, app, email, store, ...
action         String                          page_view, purchase, ...
amount         Float64                         currency units; 0 when absent, null or NaN
item           String (ids as given, as text)  ``data.columns.item`` only: product, SKU, content or
                                              offer id; null = an event without an item
<extras>       String / Float64                ``extra_categorical`` / ``extra_numeric``
=============  ==============================  ==========================================

and its rows sorted by (customer_id, timestamp, _row), the order every later step needs
(:mod:`journeyformer.data.events.order`).

Timestamps may be datetimes, dates, ISO-8601 strings or epoch seconds / milliseconds; naive
values are read in ``time_zone`` (the rules: :mod:`journeyformer.data.events.timestamps`).

Policies: rows with a null customer_id or timestamp raise (``null_keys: error``) or are dropped
with a logged count (``null_keys: drop``). Exact duplicates, rows equal in every column of the
file (not only the columns the model reads), are dropped keeping the first in input order
(``duplicates: drop``, a WARNING with the count and examples) or kept (``duplicates: keep``).
Events after the wall clock raise (``future_events: error``, the default), are dropped
(``drop``) or kept (``keep``), with a count and examples either way. Null categorical values
become the category ``"<null>"``; null and NaN numbers become 0; infinite numbers are an error.
This module holds the contract (:class:`EventSchema`, the settings above); the steps that apply
it are :mod:`journeyformer.data.events.load`'s.

Errors are :class:`journeyformer.errors.EventDataError` and name the file, the column, the
problem, how many rows, a few example values and the setting to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from journeyformer.data.events.order import ROW
from journeyformer.data.events.timestamps import check_time_zone
from journeyformer.errors import ConfigError

REQUIRED = ("customer_id", "timestamp", "channel", "action")
# Optional canonical columns: read only where ``data.columns`` maps them (item: absent = no
# next-item head; amount: absent = 0).
OPTIONAL = ("amount", "item")
NULL_CATEGORY = "<null>"
# The reading settings (shared with the exposure log's schema) and the values each allows.
SETTINGS = {
    "timestamp_unit": ("auto", "s", "ms"),
    "time_zone": None,
    "null_keys": ("error", "drop"),
    "duplicates": ("drop", "keep"),
    "format": ("auto", "parquet", "csv"),
    "separator": None,
    "future_events": ("error", "drop", "keep"),
}


@dataclass(frozen=True)
class EventSchema:
    """How to read a user's event table.

    ``columns`` maps our canonical names (customer_id, timestamp, channel, action, amount, item)
    to the user's column names; a missing ``amount`` mapping, or ``amount: null``, means amount
    0; ``item`` is read only when mapped (it switches the ``next_item`` task on).

    Example::

        EventSchema(columns={"customer_id": "user_id", "timestamp": "ts"}, time_zone="Europe/Paris")
    """

    columns: Mapping[str, str | None] = field(default_factory=dict)
    extra_categorical: tuple[str, ...] = ()
    extra_numeric: tuple[str, ...] = ()
    timestamp_unit: str = "auto"  # auto | s | ms, for numeric epoch timestamps
    time_zone: str = "UTC"  # zone of naive timestamps and of hour/day features
    null_keys: str = "error"  # error | drop: rows with a null customer_id or timestamp
    duplicates: str = "drop"  # drop | keep: exact duplicate events
    format: str = "auto"  # auto | parquet | csv
    separator: str = "auto"  # CSV separator; auto: sniffed from the header line
    future_events: str = "error"  # error | drop | keep: events after the wall clock

    def __post_init__(self) -> None:
        unknown = set(self.columns) - {*REQUIRED, *OPTIONAL}
        if unknown:
            raise ConfigError(
                f"data.columns has unknown keys {sorted(unknown)}; allowed: "
                f"{[*REQUIRED, *OPTIONAL]}. Extra columns go in data.extra_categorical / "
                "data.extra_numeric."
            )
        unmapped = [k for k in REQUIRED if k in self.columns and not self.columns[k]]
        if unmapped:
            raise ConfigError(
                f"data.columns.{unmapped[0]} is empty; {list(REQUIRED)} are required. Set it to "
                "the name of your column."
            )
        for name, allowed in SETTINGS.items():
            value = getattr(self, name)
            if allowed is not None and value not in allowed:
                raise ConfigError(f"data.{name}={value!r} is not one of {list(allowed)}")
        if self.separator != "auto" and len(self.separator) != 1:
            raise ConfigError(
                f"data.separator={self.separator!r} must be one character (e.g. ';' or '\\t') "
                "or auto"
            )
        check_time_zone(self.time_zone, "data.time_zone")
        object.__setattr__(self, "extra_categorical", tuple(self.extra_categorical))
        object.__setattr__(self, "extra_numeric", tuple(self.extra_numeric))
        extras = [*self.extra_categorical, *self.extra_numeric]
        clash = sorted(
            {e for e in extras if e in (*REQUIRED, *OPTIONAL, ROW, "_ts_raw", "_amount_raw")}
            | {e for e in extras if extras.count(e) > 1}
        )
        if clash:
            raise ConfigError(
                f"data.extra_categorical / data.extra_numeric list {clash} twice or use a "
                f"reserved name ({[*REQUIRED, 'amount', ROW]}); list each extra column once."
            )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> EventSchema:
        """Build from the ``data`` config group (unused keys are ignored)."""
        settings = {k: str(cfg[k]) for k in SETTINGS if k in cfg}
        for k in ("separator", "future_events"):  # null: the default
            if not cfg.get(k):
                settings.pop(k, None)
        return cls(
            columns=dict(cfg.get("columns") or {}),
            extra_categorical=tuple(cfg.get("extra_categorical") or ()),
            extra_numeric=tuple(cfg.get("extra_numeric") or ()),
            **settings,
        )

    def source(self, name: str) -> str | None:
        """The user's column for canonical ``name`` (identity unless mapped; the item column
        only when mapped)."""
        if name in self.columns:
            return self.columns[name]
        return None if name == "item" else name

    def read_columns(self) -> dict[str, str]:
        """Canonical name -> the user's column, for every column read (extras as themselves)."""
        named = {c: self.source(c) for c in (*REQUIRED, *OPTIONAL)}
        extras = [*self.extra_categorical, *self.extra_numeric]
        return {c: src for c, src in named.items() if src} | {e: e for e in extras}

    @property
    def has_item(self) -> bool:
        """An item column is mapped (``data.columns.item``): the next-item task can be on."""
        return bool(self.columns.get("item"))

    def to_dict(self) -> dict[str, Any]:
        # The item mapping only where set, so a schema without items is the dict it always was.
        item = {"item": self.columns["item"]} if self.has_item else {}
        return {
            "columns": {**{k: self.source(k) for k in (*REQUIRED, "amount")}, **item},
            "extra_categorical": list(self.extra_categorical),
            "extra_numeric": list(self.extra_numeric),
            **{k: getattr(self, k) for k in SETTINGS},
        }
