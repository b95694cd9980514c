"""The model beside LightGBM and the simple baselines on real public customer logs (CDNOW,
MovieLens-100k; see real_logs.py), several seeds, with paired bootstrap verdicts per seed and
pooled over the seeds.

    .venv/bin/python benchmarks/bench_real.py [--logs cdnow movielens100k] [--seeds 42 43 44]
        [--cache ~/.cache/journeyformer/real_logs] [--out benchmarks/results/real_logs.json]
        [override ...]
    .venv/bin/python benchmarks/bench_real.py --summarize benchmarks/results/real_logs.json

To measure a commit while the working tree changes under you, run from an export of it:
``git archive <commit> | tar -x -C /tmp/jf`` then, in /tmp/jf, ``PYTHONPATH=/tmp/jf/src
<repo>/.venv/bin/python benchmarks/bench_real.py --commit <commit> --out <repo>/benchmarks/results/real_logs.json``.

Each (log, seed) is one default ``make train`` run on the log's events (``data=events
data.path=<cache>/<log>/events.parquet seed=<seed>``) with only the log's action mapping,
extras and horizon changed (``real_logs.LOGS[log].overrides``) and any extra Hydra overrides
appended. The table is the train job's own out-of-time test table: test split customers at the
default test cutoff, the last event minus the horizon, so the label window is fully observed
(its status is printed). Per task: the model's headline metric, LightGBM's, the best simple
baseline's (carry-over of the current stage, past spend rate, ...), and model minus the
strongest baseline with its 95% paired bootstrap interval over customers and the verdict.

Pooled over the seeds: every seed scores the same test customers (the split is a hash of the
customer id, not of the seed), so the pooled figure is the mean over seeds of model minus the
baseline that is strongest on average, with one paired bootstrap that draws customers once per
replicate for all seeds (the per-customer predictions are kept in each run's directory). Not a
test; the network is used once, to fetch each wheel into the cache.

Results are merged into ``--out`` (JSON) run by run, so logs and seeds can be run separately,
and the Markdown table beside it (same name, ``.md``) is rewritten from every run there.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from real_logs import LOGS, cache_dir, describe, events_path

from journeyformer.io import atomic_write_text
from journeyformer.jobs import train as job
from journeyformer.machine import cpu_line
from journeyformer.metrics.bootstrap import paired_bootstrap
from journeyformer.model.runner import predict_sequences
from journeyformer.pipelines import train
from journeyformer.tasks import registry
from journeyformer.tasks.boosting import NAME as BOOSTING
from journeyformer.training.blend import model_inputs

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = str(REPO / "configs")
PREDICTIONS = "headline_predictions.npz"


def run(log: str, seed: int, overrides: list[str], root: Path, cache: Path) -> dict[str, Any]:
    """One default training run on ``log``; returns its test table and timings and keeps the
    per-customer test predictions it scored, of the model and every baseline, in
    ``<run_dir>/PREDICTIONS``."""
    path = events_path(log, cache)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["data=events", f"data.path={path}", f"seed={seed}",
                       "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                       *LOGS[log].overrides, *overrides],
        )  # fmt: skip
    with open_dict(cfg):
        cfg.run_dir = str(root / f"{log}_s{seed}")
        cfg.paths.output_dir = cfg.run_dir
    cpu, wall = time.process_time(), time.perf_counter()
    with scored_predictions() as scored:
        result = train(cfg)
    parts = ablation_outputs(result.module.net, scored) if scored else {}
    network = parts.pop("transformer", {})
    record: dict[str, Any] = {
        "test": result.metrics["test"],
        "train_seconds": result.metrics["train_seconds"],
        "wall_seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "overrides": [*LOGS[log].overrides, *overrides],
    }
    out = Path(cfg.run_dir) / PREDICTIONS
    record["transformer_intervals"] = keep_predictions(scored, network, record["test"], out, parts)
    record["predictions"] = str(out.resolve())  # --summarize may run from another directory
    record["blend"] = result.metrics.get("blend")
    return record


@contextmanager
def scored_predictions() -> Iterator[dict[str, Any]]:
    """What the train job's test table scores, caught on its way: the test samples, the
    model's outputs (as the job ships them), every fitted baseline's predictions and the
    per-head blend's fitted boosters (``blend``, when the run fits one).

    The job calls :func:`journeyformer.evaluation.protocol.evaluate` once, for the test
    table, and :func:`journeyformer.training.blend.choose_blend` once; both are wrapped here for
    the run, so nothing is predicted or fitted twice."""
    caught: dict[str, Any] = {}
    original, original_blend = job.evaluate, job.choose_blend

    def evaluate(protocol: Any, outputs: Any, *args: Any, **kwargs: Any) -> Any:
        metrics, baselines = original(protocol, outputs, *args, **kwargs)
        seqs = protocol.test.seqs
        caught.update(seqs=seqs, outputs=dict(outputs), baselines=baselines.predict(seqs))
        return metrics, baselines

    def choose_blend(*args: Any, **kwargs: Any) -> Any:
        caught["blend"] = original_blend(*args, **kwargs)
        return caught["blend"]

    job.evaluate, job.choose_blend = evaluate, choose_blend
    try:
        yield caught
    finally:
        job.evaluate, job.choose_blend = original, original_blend


# The ablation's rows beside the shipped model and LightGBM on aggregates: what each part of the
# shipped model scores alone on the same test customers.
ABLATION = {
    "no_rule": "Transformer, argmax stage (no decision rule)",
    "transformer": "Transformer (stage decision rule)",
    "boost_inputs": "LightGBM on the model's inputs (the blend's booster)",
}


def ablation_outputs(net: Any, scored: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """Row -> outputs on the test samples: the network as trained ("transformer": with its
    calibration and stage decision rule), without the stage rule ("no_rule": its offsets and
    carry-over weight zeroed) and the blend's boosters on the model's own inputs
    ("boost_inputs", the outputs of the tasks it fitted)."""
    seqs = scored["seqs"]
    with torch.inference_mode():
        out = {"transformer": predict_sequences(net, seqs)}
        ruled = [t.name for t in net.tasks if t.decision_rule]
        kept = {}
        for name in ruled:
            for part in ("offset", "carry"):
                buf = getattr(net, f"{name}_{part}")
                kept[buf] = buf.clone()
                buf.zero_()
        out["no_rule"] = predict_sequences(net, seqs)
        for buf, value in kept.items():
            buf.copy_(value)
    blend = scored.get("blend")
    if blend is not None:
        preds = blend.boosting.predict(model_inputs(seqs))
        out["boost_inputs"] = {registry.get(t).metric_output: p for t, p in preds.items()}
    return out


def keep_predictions(
    scored: dict[str, Any],
    network: dict[str, np.ndarray],
    test: dict[str, Any],
    out: Path,
    parts: dict[str, dict[str, np.ndarray]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The shipped model's, the Transformer's alone (``network``), the ablation's ``parts``
    (:func:`ablation_outputs`) and every baseline's test predictions per headline task
    (``scored``, from :func:`scored_predictions`) in ``out``, checked against the table
    ``test``; returns task -> the Transformer alone minus the strongest baseline of the table,
    with its paired bootstrap (as the table's own)."""
    if not scored:
        raise RuntimeError("the train job scored no test table through protocol.evaluate")
    seqs, outputs, base = scored["seqs"], scored["outputs"], scored["baselines"]
    # Fixed-width strings, not objects: the file loads without pickle.
    ids = seqs.customer_id.cast(pl.String).to_numpy().astype(str)
    arrays: dict[str, np.ndarray] = {"customer_id": ids}
    alone = (test.get("components") or {}).get("transformer") or test["model"]
    intervals: dict[str, Any] = {}
    mismatch: dict[str, Any] = {}
    for task in registry.enabled(list(test["model"])):
        y, key = seqs.labels[task.name], task.headline
        arrays[f"{task.name}/y"] = y
        arrays[f"{task.name}/model"] = np.asarray(outputs[task.metric_output])
        again = {"model": task.score(arrays[f"{task.name}/model"], y)[key]}
        for name, pred in base.get(task.name, {}).items():
            arrays[f"{task.name}/{name}"] = np.asarray(pred)
            again[name] = task.score(pred, y)[key]
        arrays[f"{task.name}/transformer"] = np.asarray(network[task.metric_output])
        for row, outputs_of_row in (parts or {}).items():
            if task.metric_output in outputs_of_row:
                arrays[f"{task.name}/{row}"] = np.asarray(outputs_of_row[task.metric_output])
        again["transformer"] = task.score(arrays[f"{task.name}/transformer"], y)[key]
        table = {"model": test["model"][task.name][key], "transformer": alone[task.name][key]}
        table.update({n: m[key] for n, m in test["baselines"][task.name].items()})
        off = {n: (v, table.get(n)) for n, v in again.items() if not _same(v, table.get(n))}
        if off:  # said in the results, not raised: the run's table stands as the job printed it
            mismatch[task.name] = off
            print(f"WARNING {task.name}: the kept predictions do not give the table: {off}")
        strongest = test["intervals"][task.name]["baseline"]

        def headline(pred: np.ndarray, yy: np.ndarray, task: Any = task) -> float:
            return task.score(pred, yy)[task.headline]

        intervals[task.name] = {"baseline": strongest, "metric": key, **paired_bootstrap(
            headline, arrays[f"{task.name}/transformer"], arrays[f"{task.name}/{strongest}"],
            y, groups=ids, n_boot=1000,
        )}  # fmt: skip
    np.savez_compressed(out, **arrays)
    if mismatch:
        intervals["mismatch"] = mismatch
    return intervals


def _same(a: float, b: float | None) -> bool:
    return b is not None and (a == b or (np.isnan(a) and np.isnan(b)) or abs(a - b) < 1e-9)


def pooled(
    runs: dict[int, dict[str, Any]], task_name: str, row: str = "model", against: str | None = None
) -> dict[str, Any] | None:
    """Mean over seeds of ``row`` ("model": as shipped, "transformer": the network alone, or
    an :data:`ABLATION` row) minus the baseline with the best mean headline (``against``: that
    baseline instead), with a paired bootstrap over the (shared) test customers, drawn once
    per replicate for every seed. None where a seed lacks the row."""
    seeds = [s for s in sorted(runs) if task_name in runs[s]["test"]["model"]]
    if len(seeds) < 2:
        return None
    task = registry.get(task_name)
    key = task.headline
    loaded = [np.load(runs[s]["predictions"], allow_pickle=False) for s in seeds]
    if any(f"{task_name}/{row}" not in z.files for z in loaded):
        return None
    ids, y = loaded[0]["customer_id"], loaded[0][f"{task_name}/y"]
    for s, z in zip(seeds, loaded, strict=True):
        if not (np.array_equal(z["customer_id"], ids) and np.array_equal(z[f"{task_name}/y"], y)):
            raise RuntimeError(
                f"seed {s} scored other test customers or labels than seed {seeds[0]}"
            )
    names = set.intersection(*(set(runs[s]["test"]["baselines"][task_name]) for s in seeds))
    means = {
        n: statistics.mean(runs[s]["test"]["baselines"][task_name][n][key] for s in seeds)
        for n in names
    }
    means = {n: v for n, v in means.items() if np.isfinite(v)}
    if not means:
        return None
    best = against if against in means else max(means, key=means.__getitem__)
    model = np.stack([z[f"{task_name}/{row}"] for z in loaded], axis=1)  # (N, S, ...)
    base = np.stack([z[f"{task_name}/{best}"] for z in loaded], axis=1)

    def mean_headline(p: np.ndarray, yy: np.ndarray) -> float:
        return float(np.mean([task.score(p[:, i], yy)[key] for i in range(p.shape[1])]))

    interval = paired_bootstrap(mean_headline, model, base, y, groups=ids, n_boot=1000)
    return {"baseline": best, "metric": key, "seeds": seeds, **interval}


def _ms(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}" if values else "-"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _simple(baselines: dict[str, dict[str, float]], key: str) -> tuple[str, float]:
    simple = {n: m[key] for n, m in baselines.items() if n != BOOSTING and np.isfinite(m[key])}
    if not simple:
        return "-", float("nan")
    name = max(simple, key=simple.__getitem__)
    return name, simple[name]


def _value(test: dict[str, Any], task: str, key: str, row: str) -> float:
    """The headline ``key`` of ``task`` in a test table for ``row``: "model" (as shipped),
    "transformer" (the network alone) or a baseline's name (NaN where it is missing)."""
    if row == "model":
        return test["model"][task][key]
    if row == "transformer":
        return ((test.get("components") or {}).get("transformer") or test["model"])[task][key]
    return test["baselines"][task].get(row, {}).get(key, float("nan"))


def _iv(iv: dict[str, Any]) -> str:
    return (
        f"{iv['delta']:+.3f} [{iv['low']:+.3f}, {iv['high']:+.3f}] vs {iv['baseline']} "
        f"**{iv['verdict'].upper()}**"
    )


def ablation_pooled(runs: dict[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Task -> row -> :func:`pooled` against LightGBM on aggregates, for the ablation."""
    rows = ("model", *ABLATION)
    out = {}
    for task in registry.TASKS.values():
        got = {row: pooled(runs, task.name, row, against=BOOSTING) for row in rows}
        if got["model"] is not None:
            out[task.name] = {row: iv for row, iv in got.items() if iv is not None}
    return out


def _headlines(runs: dict[int, dict[str, Any]], task: Any, row: str) -> list[float]:
    values = []
    for s in sorted(runs):
        z = np.load(runs[s]["predictions"], allow_pickle=False)
        if f"{task.name}/{row}" in z.files:
            values.append(task.score(z[f"{task.name}/{row}"], z[f"{task.name}/y"])[task.headline])
    return values


def _sum_ratios(runs: dict[int, dict[str, Any]], task: Any, row: str) -> str:
    ratios = []
    for s in sorted(runs):
        z = np.load(runs[s]["predictions"], allow_pickle=False)
        if f"{task.name}/{row}" in z.files:
            ratios.append(float(z[f"{task.name}/{row}"].sum() / z[f"{task.name}/y"].sum()))
    return ", ".join(f"{r:.2f}x" for r in ratios) or "-"


def ablation_table(runs: dict[int, dict[str, Any]], ablation: dict[str, Any]) -> list[str]:
    """What each part of the shipped model buys, pooled over the seeds: each part alone
    minus LightGBM on aggregates, with the pooled paired bootstrap; for scaled outputs (value)
    the sum of the predictions over the actual sum on the test customers, per seed."""
    if not ablation:
        return []
    lines = [
        "",
        f"Ablation, pooled over seeds {sorted(runs)}: each part of the shipped model alone, minus "
        "LightGBM on aggregates (95% paired bootstrap); for value also the predicted over the actual "
        "sum on the test customers, per seed.",
        "",
        "| task | metric | row | mean ± sd | − LightGBM [95% CI] | sum predicted / actual |",
        "|---|---|---|---|---|---|",
    ]
    names = {"model": "shipped (per-head choice on validation)", **ABLATION}
    for task_name, rows in ablation.items():
        task = registry.get(task_name)
        scaled = bool(task.scaled_output)
        boost = _headlines(runs, task, BOOSTING)
        lines.append(
            f"| {task_name} | {task.headline} | LightGBM on aggregates | {_ms(boost)} | | "
            f"{_sum_ratios(runs, task, BOOSTING) if scaled else ''} |"
        )
        for row in (*ABLATION, "model"):
            if row not in rows or (row == "no_rule" and not task.decision_rule):
                continue
            iv = rows[row]
            lines.append(
                f"| {task_name} | {task.headline} | {names[row]} | {_ms(_headlines(runs, task, row))} | "
                f"{iv['delta']:+.3f} [{iv['low']:+.3f}, {iv['high']:+.3f}] **{iv['verdict'].upper()}** | "
                f"{_sum_ratios(runs, task, row) if scaled else ''} |"
            )
    return lines


def table(
    log: str,
    runs: dict[int, dict[str, Any]],
    pooled_results: dict[str, Any],
    ablation: dict[str, Any] | None = None,
) -> list[str]:
    """The Markdown section of ``log``: one row per task and seed, then the pooled row
    (``pooled_results``: task -> {"model"|"transformer": :func:`pooled`}), then the ablation
    (``ablation``: :func:`ablation_pooled`)."""
    seeds = sorted(runs)
    first = runs[seeds[0]]
    test = first["test"]
    window = test["label_window"]
    info = first.get("data", {})
    spec = LOGS[log]
    lines = [
        f"### {log}",
        "",
        f"{info.get('customers', '?'):,} customers, {info.get('events', '?'):,} events, "
        f"{info.get('first', '?')} to {info.get('last', '?')} (`{spec.requirement}`; {spec.licence}). "
        f"Value = {spec.value}. Overrides beside the defaults: `{' '.join(first['overrides'])}`.",
        "",
        f"{test['population']}; label window {window['status']} (data end {str(window['last_event'])[:10]}). "
        f"{test['baselines_fitted_on']}.",
        "",
        "| task | metric | seed | shipped model (w) | Transformer alone | LightGBM | best simple baseline "
        "| shipped − strongest [95% CI] | Transformer − strongest [95% CI] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for task in registry.TASKS.values():
        key = task.headline
        have = [s for s in seeds if task.name in runs[s]["test"]["model"]]
        if not have:
            why = (
                "off: the log has no item column" if task.ranks_items
                else "off: no exposure log" if task.needs_exposures
                else "head switched off: one class in the training labels"
            )  # fmt: skip
            lines.append(f"| {task.name} | {key} | all | {why} | | | | | |")
            continue
        for s in have:
            t = runs[s]["test"]
            base = t["baselines"][task.name]
            name, simple = _simple(base, key)
            boost = _value(t, task.name, key, BOOSTING)
            w = ((t.get("components") or {}).get("weights") or {}).get(task.name)
            alone = _value(t, task.name, key, "transformer")
            lines.append(
                f"| {task.name} | {key} | {s} | {t['model'][task.name][key]:.3f}"
                f"{f' (w={w:g})' if w is not None else ''} | {alone:.3f} | {boost:.3f} | "
                f"{name} {simple:.3f} | {_iv(t['intervals'][task.name])} | "
                f"{_iv(runs[s]['transformer_intervals'][task.name])} |"
            )
        p = pooled_results.get(task.name)
        if p is not None:
            simple_all = [_simple(runs[s]["test"]["baselines"][task.name], key) for s in have]
            means = {
                row: _ms([_value(runs[s]["test"], task.name, key, row) for s in have])
                for row in ("model", "transformer", BOOSTING)
            }
            lines.append(
                f"| {task.name} | {key} | pooled {len(have)} | {means['model']} | "
                f"{means['transformer']} | {means[BOOSTING]} | {simple_all[0][0]} "
                f"{_ms([v for _, v in simple_all])} | {_iv(p['model'])} | {_iv(p['transformer'])} |"
            )
    lines += ablation_table(runs, ablation or {})
    for s in seeds:
        if off := runs[s]["transformer_intervals"].get("mismatch"):
            lines.append(f"\nSeed {s}: the kept predictions do not reproduce the table: {off}.")
    times = ", ".join(f"{runs[s]['train_seconds']:.0f}" for s in seeds)
    cpu = ", ".join(f"{runs[s]['cpu_seconds']:.0f}" for s in seeds)
    lines += [
        "",
        f"Training (the train job, wall) per seed {seeds}: {times} s; CPU time of the process: "
        f"{cpu} s.",
    ]
    return lines


def markdown(saved: dict[str, Any]) -> str:
    meta = saved["meta"]
    lines = [
        "# Real public logs: the model beside LightGBM and the simple baselines",
        "",
        f"Written by `benchmarks/bench_real.py` ({meta['date']}, commit {meta['commit']}); "
        f"commands: {'; '.join(f'`{c}`' for c in meta['commands'])}.",
        f"{meta['cpu']}. One default `make train` run per log and seed (model `small`, 9 epochs at "
        "most, early stopping); only the action mapping, extras and horizon set per log.",
        "",
        "Shipped model: the train job's model row, each head chosen on validation among the "
        "Transformer, LightGBM on the model's own inputs and their blends (`blend: true`, the "
        "default); w = the Transformer's weight in it (1: the Transformer alone, 0: LightGBM on "
        "its inputs alone). Transformer alone: the network without the blend.",
        "",
        "Verdicts: model minus the strongest baseline on the headline metric, 95% paired "
        "bootstrap over test customers (1000 draws): BEATS when the interval is above 0, TIES "
        "when it contains 0, LOSES when below. Pooled: the mean over seeds against the baseline "
        "strongest on average, customers drawn once per replicate for all seeds.",
        "Times: wall and CPU seconds of the train job on a machine shared with other jobs; "
        "both grow several-fold with the load, so they say little about an idle machine.",
        "",
    ]
    for log, runs in saved["results"].items():
        if runs:
            lines += table(
                log, {int(s): r for s, r in runs.items()}, saved.get("pooled", {}).get(log, {}),
                saved.get("ablation", {}).get(log),
            ) + [""]  # fmt: skip
    return "\n".join(lines)


def _commit(given: str | None) -> str:
    if given:
        return given
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src", "configs"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (sha or "unknown") + (" (src/configs modified)" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", nargs="+", default=list(LOGS), choices=list(LOGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument(
        "--cache",
        default=None,
        help="wheel and events cache (default $JOURNEYFORMER_REAL_LOGS or ~/.cache/journeyformer/real_logs)",
    )
    parser.add_argument("--out", default="benchmarks/results/real_logs.json")
    parser.add_argument("--root", default="outputs/bench_real_runs", help="run directories")
    parser.add_argument(
        "--commit", help="the commit measured, when run from an export without .git (git archive)"
    )
    parser.add_argument(
        "--summarize", metavar="JSON", help="rewrite and print the Markdown of a results file, exit"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_args()
    out = Path(args.summarize or args.out)
    saved = (
        json.loads(out.read_text()) if out.exists() else {"meta": {"commands": []}, "results": {}}
    )
    if not args.summarize:
        logging.basicConfig(level=logging.WARNING)
        print(cpu_line())
        cache, root = cache_dir(args.cache), Path(args.root)
        command = "python benchmarks/bench_real.py " + " ".join(sys.argv[1:])
        meta = saved["meta"]
        meta.update(
            date=datetime.now(timezone.utc).date().isoformat(),
            commit=_commit(args.commit),
            cpu=cpu_line(),
        )
        meta["commands"] = [c for c in meta.get("commands", []) if c != command] + [command]
        out.parent.mkdir(parents=True, exist_ok=True)
        for (
            seed
        ) in args.seeds:  # every log's first seed first: an interrupted run keeps whole seeds
            for log in args.logs:
                record = run(log, seed, args.overrides, root, cache)
                record["data"] = describe(pl.read_parquet(events_path(log, cache)))
                print(f"{log} seed {seed}: train job {record['train_seconds']:.0f} s wall")
                saved["results"].setdefault(log, {})[str(seed)] = record
                runs = {int(s): r for s, r in saved["results"][log].items()}
                both = {
                    t.name: {row: pooled(runs, t.name, row) for row in ("model", "transformer")}
                    for t in registry.TASKS.values()
                }
                saved.setdefault("pooled", {})[log] = {
                    task: rows for task, rows in both.items() if rows["model"] is not None
                }
                saved.setdefault("ablation", {})[log] = ablation_pooled(runs)
                atomic_write_text(out, json.dumps(saved, indent=1, default=str))
                atomic_write_text(out.with_suffix(".md"), markdown(saved) + "\n")
    text = markdown(saved)
    atomic_write_text(out.with_suffix(".md"), text + "\n")
    print(text)
    print(f"results: {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
