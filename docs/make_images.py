"""Regenerate the README's "From scores to decisions" pictures and numbers (docs/img/*.png).

    .venv/bin/python docs/make_images.py bundle=checkpoints/small_h30_s42/bundle \
        events=data/generated/synthetic_n20000_s0/events.parquet

Runs, on the default data and a bundle exported with ``data.path`` (so it has reference.json
and clusters.json), the commands the README shows, timing each:

1. predict with and without segments (the cost of segment + cluster columns);
2. predict ``explain=true`` on a sample of customers, and without, on the same sample;
3. monitor a fresh sample of the same world and a shifted one (``intensity`` x1.5);
4. evaluate a backtest over several as_of dates (the segment table and transition matrix are
   in the same report).

Writes the PNGs into ``docs/img/`` (``out=``: drift_psi, drift_bins, explanations, backtest,
segments, segment_transitions) and prints every figure the README quotes, each time with the
load average beside it. ``only=explain,drift,evaluate`` picks steps (step 1 always runs).
Working files go to a temporary directory.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from journeyformer.inference.local import predict_events
from journeyformer.monitoring.job import monitor_events
from journeyformer.monitoring.page import plots as drift_plots
from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.journeys import generate_journeys, write_journeys


def arg(name: str, default: str | None = None) -> str:
    for a in sys.argv[1:]:
        if a.startswith(f"{name}="):
            return a.split("=", 1)[1]
    if default is None:
        raise SystemExit(f"usage: {sys.argv[0]} bundle=<dir> events=<events.parquet> [out=docs/img sample=2000]")
    return default


def timed(what: str, fn, *args, **kwargs):
    """Run ``fn``, print its wall time with the load average (1 min) before and after."""
    before = os.getloadavg()[0]
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"[time] {what}: {time.perf_counter() - start:.1f} s (load {before:.1f} -> {os.getloadavg()[0]:.1f})")
    return out


def driver_plot(rows: list[dict], path: Path) -> None:
    """Explanation example: per customer, the top churn and value drivers with their effects."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 1.9 * len(rows) + 0.6), squeeze=False)
    for ax_row, r in zip(axes, rows, strict=True):
        for ax, what, score, unit in (
            (ax_row[0], "churn", f"churn {r['churn_probability']:.3f}", "probability points"),
            (ax_row[1], "value", f"expected value {r['expected_value']:.1f}", "currency units"),
        ):
            names, effects = r[f"{what}_drivers"], r[f"{what}_driver_effects"]
            ax.barh(range(len(names)), effects, color=["#c0392b" if e > 0 else "#2874a6" for e in effects])
            ax.set_yticks(range(len(names)), names, fontsize=8)
            ax.invert_yaxis()
            ax.axvline(0, color="black", lw=0.8)
            ax.tick_params(axis="x", labelsize=7)
            ax.set_title(f"customer {r['customer_id']} ({r['segment']}): {score}", fontsize=9)
            ax.set_xlabel(f"effect on the {what} score ({unit})", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    bundle, events = Path(arg("bundle")), Path(arg("events"))
    out = Path(arg("out", "docs/img"))
    sample = int(arg("sample", "2000"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()}")
    work = Path(tempfile.mkdtemp(prefix="jf_images_"))
    try:
        # 1. segments and clusters
        timed("predict, no segments", predict_events, bundle, events, work / "plain.parquet", progress=False, decide={"segments": None})
        timed("predict, segments + clusters", predict_events, bundle, events, work / "seg.parquet", progress=False)
        p = pl.read_parquet(work / "seg.parquet")
        table = (
            p.group_by("segment")
            .agg(pl.len().alias("customers"), pl.col("churn_probability").mean().round(3), pl.col("expected_value").mean().round(1))
            .sort("customers", descending=True)
        )
        print(table)
        print(p["cluster"].value_counts(sort=True))
        # 2. explanations on a sample of customers
        if want("explain"):
            explanations(p, bundle, events, work, out, sample)
        # 3. drift: a fresh sample of the same world, and a shifted one
        if want("drift"):
            drift(bundle, work, out)
        if not want("evaluate"):
            return
        # 4. backtest + segment report
        backtest(bundle, events, work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def want(step: str) -> bool:
    """Whether ``only=`` (comma-separated: explain, drift, evaluate; default all) asks for it."""
    only = arg("only", "explain,drift,evaluate").split(",")
    return step in only and arg(step, "true") != "false"


def explanations(p: pl.DataFrame, bundle: Path, events: Path, work: Path, out: Path, sample: int) -> None:
    ids = p.filter(pl.col("n_events") >= 5)["customer_id"].sample(sample, seed=0)
    sub = work / "sample.parquet"
    pl.read_parquet(events).filter(pl.col("customer_id").is_in(ids.implode())).write_parquet(sub)
    as_of = p["as_of"][0]
    timed(f"predict {sample} customers", predict_events, bundle, sub, work / "s.parquet", as_of=as_of, progress=False)
    timed(f"predict {sample} customers, explain=true", predict_events, bundle, sub, work / "x.parquet", as_of=as_of, progress=False, decide={"explain": True})
    x = pl.read_parquet(work / "x.parquet").sort("churn_probability", descending=True)
    cols = ["customer_id", "segment", "churn_probability", "churn_drivers", "churn_driver_effects", "expected_value", "value_drivers", "value_driver_effects"]
    with pl.Config(fmt_str_lengths=200, tbl_width_chars=400, fmt_table_cell_list_len=3):
        print(x.select(cols).head(3))
        print(x.filter(pl.col("segment") == "loyal").select(cols).head(2))
    # A customer to retain (the highest churn below 0.9 among the high-value or at-risk) and a
    # loyal one: what the explanation tells in each case.
    risky = x.filter(pl.col("segment").is_in(["high value at risk", "at risk"]) & (pl.col("churn_probability") < 0.9))
    examples = [*risky.head(1).to_dicts(), *x.filter(pl.col("segment") == "loyal").head(1).to_dicts()]
    driver_plot([{k: r[k] for k in cols} for r in examples], out / "explanations.png")
    for r in examples:
        print("explanation example:", {k: r[k] for k in cols})
    top = x.with_columns(pl.col("churn_drivers").list.first().str.replace(r"^event -\d+ ", "event ").alias("top"))
    print(top["top"].value_counts(sort=True).head(8))


def drift(bundle: Path, work: Path, out: Path) -> None:
    ref = max(json.loads((bundle / "preprocessing.json").read_text())["preprocessing"]["cutoffs"]["val"])
    for name, change in (("fresh", {}), ("shifted", {"intensity": 1.5})):
        world = work / name
        write_journeys(generate_journeys(SyntheticConfig(n_customers=5000, seed=101, **change)), world)
        r = timed(f"monitor {name} (5000 customers)", monitor_events, bundle, world / "events.parquet", work / f"m_{name}", as_of=ref)
        print(r.report.summary(6))
        if name == "shifted":
            for caption, png in drift_plots(r.report).items():
                file = "drift_psi.png" if caption.startswith("Population") else "drift_bins.png"
                (out / file).write_bytes(base64.b64decode(png))


def backtest(bundle: Path, events: Path, work: Path, out: Path) -> None:
    from journeyformer.evaluation.report import evaluate_from_config

    cfg = {"bundle": str(bundle), "input": str(events), "output": str(work / "report"), "progress": False,
           "backtest": {"every_days": 30, "start": "2025-08-02"}, "segments": "default"}  # fmt: skip
    ev, report = timed("evaluate backtest", evaluate_from_config, cfg)
    metrics = json.loads((report / "metrics.json").read_text())
    print(json.dumps(metrics.get("backtest"), indent=1))
    for key in ("segments", "segment_transitions"):
        print(json.dumps(metrics.get(key), indent=1))
    for png in ("backtest.png", "segments.png", "segment_transitions.png"):
        if (report / png).exists():
            shutil.copy(report / png, out / png)
    print(f"images: {sorted(p.name for p in out.glob('*.png'))}")


if __name__ == "__main__":
    main()
