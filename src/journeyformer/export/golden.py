"""Golden examples: a few customers' raw events, the exact model inputs and expected outputs.

Written into every bundle as ``golden.json`` so that an implementation in another language can
check itself: read ``events`` as it would read production events, build the five input tensors
and compare them with ``inputs`` first (ids exactly, floats to float32 precision), then run
``model.onnx`` and compare with ``outputs`` within ``tolerance``.

The predictor checks itself with the same file: before a graph scores anything, it runs the
golden ``inputs`` through that graph on the installed onnxruntime and drops (or, pinned, refuses)
a graph whose outputs are outside ``tolerance`` (:mod:`journeyformer.inference.verify`). The fp32
graphs (plain and fused) are held to ``outputs``; each int8 graph to its own ``int8_outputs``
under the looser ``tolerance["int8_outputs"]``.

The customers are made up from the bundle's own vocabularies, so no training data is needed,
and each one exercises rules that are easy to get wrong (``cases``): fractional days and
microsecond seconds, naive vs offset timestamps, ties, truncation to ``max_len``, null and
unseen categorical values, a literal ``<pad>``, a null amount, a near-duplicate (null vs 0
amount: not equal in the file, so both kept), the loyalty window boundaries, events after ``as_of``, and a customer with no
history (rejected). The inputs come from the same code as ``journeyformer predict``
(validate -> build_sequences -> pad), the outputs from onnxruntime with the predictor's settings.

No torch here.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import polars as pl

from journeyformer.data.events.normalize import normalize
from journeyformer.data.events.validate import validate
from journeyformer.data.features.batch import pad
from journeyformer.data.features.vocab import PAD, UNK
from journeyformer.inference.bundle import Bundle
from journeyformer.inference.session import make_session

GOLDEN = "golden.json"
# An output matches when |got - expected| <= atol + rtol * |expected| (float32 arithmetic in
# other runtimes differs in the last bits; expected_value is in currency units, so no fixed
# absolute threshold fits it). Inputs are compared before outputs, tighter.
# int8 graphs are held to their own outputs at export, not to fp32: dynamic quantization rounds
# each batch's activations, so an int8 graph is 1e-3 away from fp32 by design; across
# onnxruntime 1.18-1.32 on one CPU it reproduced its own outputs to 2.4e-7, and the looser
# bound leaves room for other CPUs' integer kernels while still catching a wrong kernel (the
# fused int8 graph is 6.4e-3 off on onnxruntime < 1.21).
TOLERANCE = {
    "inputs": {"ids": "exact", "rtol": 1e-6, "atol": 1e-6},
    "outputs": {"rtol": 1e-4, "atol": 1e-6},
    "int8_outputs": {"rtol": 1e-3, "atol": 1e-4},
}


def _tokens(bundle: Bundle, column: str) -> list[str]:
    known = list(bundle.preprocessing.vocabs[column].tokens[2:])
    return known or ["x"]  # an empty vocabulary: any value is <unk>


def _pick(tokens: list[str], wanted: list[str] | tuple[str, ...] | None, k: int = 0) -> str:
    for w in wanted or ():
        if w in tokens:
            return w
    return tokens[k % len(tokens)]


def _iso(t: datetime, naive: bool = False, offset_hours: int = 0) -> str:
    """UTC instant ``t`` written as a naive UTC string, or with a fixed offset."""
    if naive:
        return t.astimezone(timezone.utc).replace(tzinfo=None).isoformat()
    return t.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()


def golden_events(bundle: Bundle, as_of: datetime) -> tuple[list[dict[str, Any]], list[dict]]:
    """Raw event rows in the user's column names, and what each customer exercises."""
    pre = bundle.preprocessing.to_dict()
    schema = pre["schema"]
    col = dict(schema["columns"])
    labels = pre["labels"]
    actions, channels = _tokens(bundle, "action"), _tokens(bundle, "channel")
    purchase = _pick(actions, labels.get("purchase_actions"))
    intent = _pick(actions, labels.get("intent_actions"), 1)
    other = [a for a in actions if a not in (purchase, intent)] or actions
    extra_cat = list(schema.get("extra_categorical") or [])
    extra_num = list(schema.get("extra_numeric") or [])
    tz_naive = schema.get("time_zone", "UTC") == "UTC"  # naive strings only where they mean UTC
    rows: list[dict[str, Any]] = []

    def event(cid: int, t: datetime, action: str, amount: float | None = 0.0, *,
              channel: str | None = None, naive: bool = False, offset: int = 0,
              extra: str | None = "first", number: float | None = 1.0, note: str = "",
              item: str | None = "first") -> None:  # fmt: skip
        row: dict[str, Any] = {
            col["customer_id"]: cid,
            col["timestamp"]: _iso(t, naive and tz_naive, offset),
            col["channel"]: channel,
            col["action"]: action,
        }
        if col.get("amount"):
            row[col["amount"]] = amount
        for name in extra_cat:  # "first": the column's tokens in turn; "fixed": its first token
            tokens = _tokens(bundle, name)
            row[name] = {"first": tokens[len(rows) % len(tokens)], "fixed": tokens[0]}.get(
                str(extra), extra
            )
        for name in extra_num:
            row[name] = number
        if col.get("item"):  # items in turn; an unseen item -> <unk>, null -> no item (id 0)
            items = _tokens(bundle, "item")
            row[col["item"]] = items[len(rows) % len(items)] if item == "first" else item
        row["note"] = note  # not a mapped column: never read, and ignored by duplicate checks
        rows.append(row)

    ch = channels[0]
    day = timedelta(days=1)
    us = timedelta(microseconds=1)
    cases = []
    # 1: fractional days and microsecond seconds; naive (UTC) and +02:00 strings; a tie.
    c = 910_000_001
    t0 = as_of - 40 * day - timedelta(hours=7, minutes=13, seconds=5, microseconds=250_001)
    event(c, t0, intent, channel=ch, note="first event: log_gap 0")
    event(c, t0 + timedelta(days=3, seconds=0.5), other[0], channel=ch, naive=True,
          note="naive string: read in data.time_zone")  # fmt: skip
    event(c, t0 + timedelta(days=9, hours=5), purchase, 129.99, channel=ch, offset=2,
          number=3.0, note="+02:00 offset: the same instant in UTC")  # fmt: skip
    event(c, t0 + timedelta(days=9, hours=5), other[-1], channel=ch,
          note="same timestamp as the previous row: input order decides")  # fmt: skip
    event(c, as_of - timedelta(hours=2, seconds=1, microseconds=7), intent, channel=ch,
          note="2 h before as_of: age in microsecond-precise seconds")  # fmt: skip
    cases.append({"customer_id": c, "case": "fractional days/seconds, naive vs offset, a tie"})
    # 2: more events than max_len: the oldest are dropped but still count in the context, and
    # the first kept event's gap is to the dropped one before it.
    c = 910_000_002
    n = bundle.preprocessing.max_len + 6
    for i in range(n):
        t = as_of - (n - i) * timedelta(hours=13, minutes=17, seconds=11)
        event(c, t, actions[i % len(actions)], 5.0 * (i % 3), channel=channels[i % len(channels)],
              number=float(i % 4), note=f"event {i + 1} of {n}")  # fmt: skip
    cases.append({"customer_id": c, "case": f"{n} events > max_len: truncation, gap across it"})
    # 3: null / unseen / literal tokens, a null amount, duplicates.
    c = 910_000_003
    t = as_of - 12 * day - timedelta(minutes=59, seconds=59)
    event(c, t, intent, channel=None, note="null channel -> the token '<null>'")
    event(c, t + day, "never_seen_action", channel=ch, item="never_seen_item",
          note="value not in the vocabulary -> 1" + (" (an item too)" if col.get("item") else ""))  # fmt: skip
    event(c, t + 2 * day, other[0], channel=PAD, extra=PAD,
          note="literal '<pad>' values -> <unk> (1), never the padding id 0")  # fmt: skip
    event(c, t + 2 * day + us, other[0], channel=UNK, extra=None, number=None, item=None,
          note="literal '<unk>' -> 1; null extra categorical -> '<null>'; null number -> 0"
          + ("; null item -> no item (id 0)" if col.get("item") else ""))  # fmt: skip
    # No exact duplicate here: validation would drop it (with a warning) before the golden
    # inputs are built, so the file would hold an event that is not part of the example.
    event(c, t + 3 * day, purchase, None, channel=ch, extra="fixed",
          note="null amount -> 0; the next row differs only in its amount")  # fmt: skip
    event(c, t + 3 * day, purchase, 0.0, channel=ch, extra="fixed",
          note="0 where the row above has null: not equal in the file, so kept")  # fmt: skip
    cases.append({"customer_id": c, "case": "<null>, <unk>, literal <pad>, null amount, near-duplicate"})
    # 4: the loyalty window (as_of - window, as_of] and events after as_of.
    c = 910_000_004
    window = timedelta(days=float(bundle.preprocessing.labels.loyalty_window_days))
    for k, (t, note) in enumerate([
        (as_of - window - 30 * day, "outside the window"),
        (as_of - window, "exactly as_of - window: outside (the window is half-open)"),
        (as_of - window + us, "1 microsecond later: inside"),
        (as_of - 20 * day, "inside"),
        (as_of, "exactly at as_of: inside, and an event of the history"),
        (as_of + us, "after as_of: ignored"),
    ]):  # fmt: skip
        event(c, t, purchase, 10.0 + k, channel=ch, note=note)
    cases.append({"customer_id": c, "case": "loyalty window boundaries, events after as_of"})
    # 5: nothing at or before as_of: no prediction (a reject).
    c = 910_000_005
    event(c, as_of + 2 * day, intent, channel=ch, note="first event after as_of")
    cases.append({"customer_id": c, "case": "no history at as_of: rejected, no row"})
    return rows, cases


def _plain(a: np.ndarray) -> list:
    """Exact JSON numbers: float32 values as the doubles they are, ints as ints."""
    return (a.astype(np.float64) if a.dtype.kind == "f" else a).tolist()


def golden_examples(bundle: Bundle) -> dict[str, Any]:
    """The content of golden.json for ``bundle`` (see the module docstring), at its last cutoff."""
    cutoffs = [c for v in bundle.preprocessing.cutoffs.values() for c in v]
    as_of = max(cutoffs) if cutoffs else datetime(2025, 12, 1, tzinfo=timezone.utc)
    # Customer 5's events lie after as_of and must not be after the wall clock (future_events).
    as_of = min(as_of.astimezone(timezone.utc), datetime.now(timezone.utc) - timedelta(days=7))
    rows, cases = golden_events(bundle, as_of)
    schema = bundle.schema()
    ts_col = schema.source("timestamp")
    raw = pl.DataFrame(rows, schema_overrides={ts_col: pl.String}, infer_schema_length=None)
    events = validate(normalize(raw.lazy(), schema, GOLDEN).collect(), schema, GOLDEN)
    seqs = bundle.preprocessing.sequences(events, as_of, with_labels=False, active_only=False)
    inputs = pad(seqs, np.arange(len(seqs)))
    names = list(bundle.output_names)

    def run(precision: str, graph: str) -> dict[str, np.ndarray]:
        session = make_session(bundle.model_path(precision, graph), "cpu")
        return dict(zip(names, session.run(names, inputs), strict=True))

    outputs = run("fp32", "plain")
    int8 = {g: run("int8", g) for g in bundle.graphs("int8")}
    scored = seqs.customer_id.to_list()
    return {
        "about": (
            "Read `events` as production events (column names as in preprocessing.json "
            "schema.columns; `note` is not a model column), score them at `as_of`, and compare "
            "your input tensors with `inputs` (rows in `customer_id` order, padded to the "
            "longest) before comparing outputs with `outputs` within `tolerance`: "
            "|got - expected| <= atol + rtol * |expected|."
        ),
        "as_of": as_of.isoformat(),
        "events": rows,
        "cases": cases,
        "customer_id": scored,
        "rejected": [c["customer_id"] for c in cases if c["customer_id"] not in scored],
        "inputs": {name: _plain(inputs[name]) for name in bundle.input_names},
        "outputs": {name: _plain(outputs[name]) for name in names},
        "int8_outputs": {
            graph: {name: _plain(out[name]) for name in names} for graph, out in int8.items()
        },
        "tolerance": TOLERANCE,
    }
