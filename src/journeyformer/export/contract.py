"""The ONNX contract page (``docs/onnx-contract.md``), rendered from a bundle.

Everything an implementation in another runtime needs around ``model.onnx``: the inputs with
names, dtypes and shapes (``preprocessing.json["onnx"]``), the outputs, every rule of
``preprocessing.json["preprocessing_rules"]`` (:mod:`journeyformer.export.rules`) with every
numeric and context column defined by name, the vocabularies and the golden-check tolerance
(``TOLERANCE`` of :mod:`journeyformer.export.golden`, the one definition golden.json also
holds). Only what two exports of the same configuration share goes in: no dates, checksums,
versions, cutoffs, temperatures or weights; the embedding width, which depends on the model
size, is written as ``D``. ``scripts/onnx_contract.py`` writes or checks the page, and
``tests/integration/test_contract.py`` fails when the checked-in page differs from the one a
freshly exported bundle renders.

Example::

    Path("docs/onnx-contract.md").write_text(contract_markdown("checkpoints/run/bundle"))
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from journeyformer.errors import ConfigError
from journeyformer.export.golden import GOLDEN, TOLERANCE
from journeyformer.inference.bundle import PREPROCESSING, load_bundle

DIMS = {"batch": "B", "seq_len": "T"}
# What each input holds; sizes are checked against the feature lists they come from.
INPUTS = {
    "categorical": ("vocabulary id of each event's value of each column of preprocessing.features.categorical (rule vocabulary_ids); 0 = padding", "categorical"),
    "numeric": ("per-event features in the order of preprocessing.feature_names.numeric (numeric columns below); 0.0 at padding", "numeric"),
    "lengths": ("events in the sequence, 1..max_len (rule padding)", None),
    "stage_now": ("lifecycle stage at as_of, an index into preprocessing.feature_names.stages (rule stage_now)", None),
    "context": ("per-customer history values in the order of preprocessing.feature_names.context (context columns below)", "context"),
}  # fmt: skip
OUTPUTS = {
    "next_action_probs": "probability that each action is the next event; column j is preprocessing.vocabs.action[j] (skip columns 0 and 1, <pad> and <unk>, when ranking)",
    "churn_probability": "probability of no activity within preprocessing.labels.horizon_days after as_of (temperature-calibrated, in the graph)",
    "stage_probs": "lifecycle stage at as_of + horizon_days; column j is preprocessing.feature_names.stages[j]",
    "spend_probability": "probability of any value-action spend within the horizon",
    "expected_value": "expected spend within the horizon, in the currency units of amount",
    "embedding": "the customer representation; D = the model's width (preprocessing.json model.d_model)",
}  # fmt: skip
KINDS = {"distribution": "probabilities over the columns", "probability": "a probability", "amount": "currency units", "embedding": "a vector"}
RULE_TABLES = ("numeric_columns", "context_columns")
COMPARED = {
    "inputs": "the input tensors built from the golden events (ids: categorical, lengths, stage_now; floats: numeric, context), before any output",
    "outputs": "the fp32 graphs' outputs (model.onnx, model.fused.onnx) on the golden inputs",
    "int8_outputs": "each int8 graph's outputs, against its own expected outputs",
}  # fmt: skip


def _md(text: str) -> str:
    """Prose as Markdown: no HTML tags, emphasis or table cells out of ``<``, ``*``, ``_``, ``|``."""
    text = text.replace("<", "&lt;").replace("*", r"\*").replace("|", r"\|")
    return re.sub(r"(?<!\w)_|_(?!\w)", r"\_", text)


def _shape(shape: Sequence[Any], embedding: bool = False) -> str:
    dims = [DIMS.get(d, d) if isinstance(d, str) else str(d) for d in shape]
    if embedding:
        dims[-1] = "D"
    return "(" + ", ".join(dims) + (",)" if len(dims) == 1 else ")")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _inputs(spec: Mapping[str, Any]) -> list[str]:
    pre = spec["preprocessing"]
    sizes = {
        "categorical": len(pre["features"]["categorical"]),
        "numeric": len(pre["feature_names"]["numeric"]),
        "context": len(pre["feature_names"]["context"]),
    }
    rows = []
    for item in spec["onnx"]["inputs"]:
        name, shape = item["name"], item["shape"]
        what, sized_by = INPUTS[name]
        if sized_by is not None and shape[-1] != sizes[sized_by]:
            raise ConfigError(
                f"{PREPROCESSING}: onnx input {name} has {shape[-1]} columns but the "
                f"preprocessing lists {sizes[sized_by]}; re-export the bundle"
            )
        rows.append([f"`{name}`", item["dtype"], _shape(shape), _md(what)])
    return _table(("name", "dtype", "shape", "content"), rows)


def _outputs(spec: Mapping[str, Any]) -> list[str]:
    rows = []
    for item in spec["onnx"]["outputs"]:
        name, kind = item["name"], item.get("kind", "")
        meaning = OUTPUTS.get(name, KINDS.get(kind, kind))
        rows.append([f"`{name}`", item["dtype"], _shape(item["shape"], kind == "embedding"), kind, _md(meaning)])
    return _table(("name", "dtype", "shape", "kind", "meaning"), rows)


def _columns(defs: Mapping[str, str]) -> list[str]:
    return _table(("k", "name", "definition"), [[str(k), f"`{n}`", _md(d)] for k, (n, d) in enumerate(defs.items())])


def _vocabularies(pre: Mapping[str, Any]) -> list[str]:
    rows = []
    for col in pre["features"]["categorical"]:
        tokens = ", ".join(f"{i} `{t}`" for i, t in enumerate(pre["vocabs"][col]))
        rows.append([f"`{col}`", str(len(pre["vocabs"][col])), tokens])
    return _table(("column", "size", "id `token`"), rows)


def _runtime(onnx: Mapping[str, Any]) -> str:
    """The oldest onnxruntime that reproduces model.onnx's golden outputs, where recorded."""
    oldest = (onnx.get("min_onnxruntime") or {}).get("model.onnx")
    if oldest is None:
        return ""
    return (
        f", and reproduces its golden outputs on onnxruntime >= {oldest} from any binding (Java, "
        "C#, C++, JavaScript, ...); `onnx.min_onnxruntime` gives the oldest release for each "
        "graph file of a bundle"
    )


def _runtimes() -> list[str]:
    """Each graph file's oldest onnxruntime, as measured on the matrix of releases (every bundle
    records the same in ``onnx.min_onnxruntime`` for the files it has)."""
    from journeyformer.export.onnx import MIN_ONNXRUNTIME, RUNTIME_MATRIX

    files = {
        "model.onnx": "standard ONNX ops: any runtime",
        "model.fused.onnx": "fused attention (`com.microsoft` kernels): onnxruntime only",
        "model.int8.onnx": "int8 (export with `quantize=true`)",
        "model.fused.int8.onnx": "fused and int8",
    }
    rows = [[f"`{f}`", what, MIN_ONNXRUNTIME[f]] for f, what in files.items()]
    return [
        "Every graph file of a bundle was run on the golden inputs under onnxruntime "
        f"{', '.join(RUNTIME_MATRIX)} and the installed release "
        "(`tests/integration/test_runtime_matrix.py`); the oldest release that reproduced the "
        "golden outputs:",
        "",
        *_table(("file", "graph", "oldest onnxruntime"), rows),
        "",
        "Before 1.21.0 the fused graphs load and return wrong outputs without an error (the "
        "attention kernels; 6e-3 to 2e-2 off on the golden outputs), so journeyformer's "
        "predictor runs every graph on the golden inputs when it starts and drops, with a "
        "warning, any graph outside the tolerance below (`graph=fused` pinned is then an "
        "error). An integrator on another binding should run the same check once per "
        "process.",
    ]


def _tolerance() -> list[str]:
    """The comparison, from ``TOLERANCE`` (the one definition, also golden.json ``tolerance``)."""
    rows = []
    for key, tol in TOLERANCE.items():
        ids = tol.get("ids")
        rows.append([f"`{key}`", _md(COMPARED.get(key, key)), "exact" if ids == "exact" else str(ids or "-"),
                     f"{tol['atol']:g}", f"{tol['rtol']:g}"])  # fmt: skip
    return [
        "A value matches when \\|got - expected\\| &lt;= atol + rtol \\* \\|expected\\| "
        "(golden.json `tolerance` holds these numbers):",
        "",
        *_table(("golden.json key", "compared", "ids", "atol", "rtol"), rows),
    ]


def contract_markdown(bundle_dir: str | Path) -> str:
    """The contract page of the bundle in ``bundle_dir`` (loaded and integrity-checked)."""
    spec = load_bundle(bundle_dir).spec
    rules = spec.get("preprocessing_rules") or {}
    missing = [k for k in RULE_TABLES if k not in rules]
    if missing:
        raise ConfigError(
            f"{Path(bundle_dir) / PREPROCESSING}: preprocessing_rules lack {missing} (a bundle "
            "exported by an older journeyformer); re-export it"
        )
    pre, onnx = spec["preprocessing"], spec["onnx"]
    prose = [k for k in rules if k not in RULE_TABLES]
    lines = [
        "# The ONNX contract: calling model.onnx from another runtime",
        "",
        "<!-- Generated by scripts/onnx_contract.py from a bundle's preprocessing.json; do not edit.",
        "     Change the rules in src/journeyformer/export/rules.py, then regenerate:",
        "     python scripts/onnx_contract.py <bundle> --out docs/onnx-contract.md -->",
        "",
        "Everything around the graph, rendered from a bundle's `preprocessing.json` by "
        "`scripts/onnx_contract.py`: this page is the default configuration's "
        "(`configs/train.yaml`), and CI renders it again from a freshly exported bundle "
        "(`tests/integration/test_contract.py`), so page and code cannot drift apart. Every "
        "bundle carries the same statements with its own settings filled in "
        "(`preprocessing_rules`); render your bundle's page with "
        "`python scripts/onnx_contract.py <bundle> --out contract.md`.",
        "",
        f"`model.onnx` uses standard ONNX ops at opset {onnx['opset']}, saved as IR version "
        f"{onnx['ir_version']}{_runtime(onnx)}. Where things are in `preprocessing.json`: `preprocessing.vocabs` "
        "(the vocabularies), `preprocessing.features` (`max_len`, `categorical`, extra `numeric`, "
        "`time_zone`, `context`), `preprocessing.feature_names` (`numeric`, `context`, "
        "`stages`: the column orders), `preprocessing.labels` (action sets and stage "
        "thresholds), `preprocessing.schema` (column names, time zone, policies), "
        "`preprocessing_rules` (the rules below, with `numeric_columns` and `context_columns`) "
        "and `onnx.inputs` / `onnx.outputs`.",
        "",
        "## Inputs",
        "",
        "All five, with these names. B = customers (any >= 1), T = padded length (any value "
        f">= max(lengths); `max_len` = {pre['features']['max_len']} always works).",
        "",
        *_inputs(spec),
        "",
        "## Outputs",
        "",
        *_outputs(spec),
        "",
        "The outputs are the model as shipped: where training picked, on validation, LightGBM "
        "or a blend of it with the Transformer for a head (`preprocessing.json` `blend.weights`: "
        "the Transformer's weight per head), the graph computes that from the same five inputs "
        "with `ai.onnx.ml` TreeEnsemble operators. A caller feeds the inputs and reads the "
        "outputs; nothing else changes.",
        "",
        "## Runtimes",
        "",
        *_runtimes(),
        "",
        "## Rules, in the order an implementation applies them",
        "",
        "H below is a customer's history: its events at or before as_of after the reading "
        "rules; t is an event's instant in microseconds since 1970-01-01 UTC.",
        "",
        *(f"{n}. **{key}**: {_md(rules[key])}" for n, key in enumerate(prose, 1)),
        "",
        "## Numeric columns",
        "",
        "`numeric[i, p, k]`: each value computed in float64 and rounded once to float32 (rule "
        "numeric).",
        "",
        *_columns(rules["numeric_columns"]),
        "",
        "## Context columns",
        "",
        f"`context[i, k]` is computed from the value v defined here by the rule context above "
        f"(`preprocessing.features.context` = `{pre['features'].get('context', 'summary')}`). "
        "Names with `=` follow the vocabularies (one column per token but `<pad>`), so another "
        "bundle's data gives other columns: read its `preprocessing.feature_names.context`.",
        "",
        *_columns(rules["context_columns"]),
        "",
        "## Vocabularies",
        "",
        "`categorical` holds these ids (`preprocessing.vocabs`); a value not listed, and the "
        "literal strings `<pad>` and `<unk>`, get 1; 0 is padding only.",
        "",
        *_vocabularies(pre),
        "",
        "## Checking an implementation: golden.json",
        "",
        f"Every bundle holds `{GOLDEN}`: raw events of a few customers chosen to exercise the "
        "rules above, `as_of`, the exact input tensors (rows in customer_id order, padded to the "
        "longest) and the expected outputs. Compare the inputs before the outputs: a feature "
        "error can move the outputs by less than any output threshold catches.",
        "",
        *_tolerance(),
        "",
        "`tests/reference_client.py` implements this page with NumPy and the Python standard "
        "library only (it reads `preprocessing.json` and `golden.json`, nothing of "
        "journeyformer) and reproduces the golden inputs and, through onnxruntime, the outputs. "
        "The surest way to identical features remains `journeyformer predict` (the base "
        "install, no PyTorch).",
        "",
    ]
    return "\n".join(lines)


def check_page(bundle_dir: str | Path, page: str | Path) -> str | None:
    """None when ``page`` holds what :func:`contract_markdown` renders for the bundle, else a
    unified diff (page -> rendered)."""
    import difflib

    want = contract_markdown(bundle_dir)
    path = Path(page)
    have = path.read_text() if path.exists() else ""
    if have == want:
        return None
    diff = difflib.unified_diff(
        have.splitlines(keepends=True), want.splitlines(keepends=True), str(path), "rendered from the bundle"
    )
    return "".join(diff) or f"{path} differs from the rendered page"


__all__ = ["check_page", "contract_markdown"]
