"""The feedback loop, measured: does the second round target better than the first?

    .venv/bin/python benchmarks/bench_feedback.py [--seeds 1 2 3] [--customers 12000]
        [--contacts 0.167] [--json benchmarks/results/feedback.json] [override ...]

Per seed, the two rounds of ``tests/integration/test_uplift_train.py`` on a larger campaigns
world (``world=campaigns``): round 1 is the world's randomised retention offer. ``experiment
feedback=`` turns the outcomes of the even customers' exposures into the labelled exposure log
a training run reads (``data.exposures``); the uplift head trains on it (the test's run:
``model=tiny``, 8 epochs, unless overridden), is exported and scores every customer 30 days
later. ``target`` contacts the customers with the highest expected incremental spend above a
contact cost of 1, ``--contacts`` of the customers at most, a fifth of them held out at random;
the same world then runs on with that follow-up campaign
(``generate_journeys(config, follow_up=...)``), so every contact's true effect is known.

Per seed and pooled over seeds, the true expected effect per contact (spend, and retention:
minus the effect on churn) of:

* ``round 2: targeted``: the customers round 2 chose (treated and held out alike);
* ``round 2: random``: a random pick of as many among the same day's scored customers (the
  mean over all of them; its standard error is that of a pick of that size);
* ``round 1: random``: round 1's randomly treated customers (the first round's targeting).

with the differences ``targeted - random`` (same day) and ``targeted - round 1`` and their
95% intervals (normal, from the effects' spread: the effects are the world's own, so which
customers happen to be picked is the only noise within a seed). Also each round's incremental
spend measured on its own holdout by ``experiment`` (the plain difference, with its interval),
which is what a team would see. Prints the CPU. Not a test.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
from bench_real import CONFIG_DIR
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from journeyformer.data.labels.exposure_samples import BEFORE
from journeyformer.evaluation.experiment_page import run_experiment
from journeyformer.export.bundle import build_bundle
from journeyformer.inference.job import predict_from_config
from journeyformer.inference.targeting import TargetingConfig, exposure_log, target_customers
from journeyformer.io import atomic_write_text
from journeyformer.machine import cpu_info
from journeyformer.pipelines import train
from journeyformer.synthetic import campaigns as C
from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.journeys import generate_journeys, write_journeys

OVERRIDES = [  # the integration test's run (tests/support.py tiny_overrides and the test's own)
    "model=tiny", "data.synthetic=null", "trainer.max_epochs=8", "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false", "logger=csv", "seed=7", "blend=false",
    "labels.cutoffs.max_val_cutoffs=1",
]  # fmt: skip
ROWS = ("round 2: targeted", "round 2: random", "round 1: random")


def difference(a: np.ndarray, b: np.ndarray, n_b: int | None = None) -> dict[str, float]:
    """mean(a) - mean(b) with a 95% normal interval; ``n_b``: b's mean stands for a random
    pick of that many (its standard error is the pick's, not the population's)."""
    se = (a.var(ddof=1) / len(a) + b.var(ddof=1) / (n_b or len(b))) ** 0.5
    d = float(a.mean() - b.mean())
    return {"diff": d, "low": d - 1.96 * se, "high": d + 1.96 * se}


def one_seed(seed: int, n_customers: int, contacts: float, overrides: list[str], work: Path) -> dict:
    """The two rounds on one world: the true effects of each round's contacts, the measured effects."""
    config = SyntheticConfig(n_customers=n_customers, seed=seed, world="campaigns")
    world = generate_journeys(config)
    assert world.exposures is not None and world.effects is not None
    events = work / "world" / "events.parquet"
    write_journeys(world, work / "world")
    world.exposures.filter(pl.col("customer_id") % 2 == 0).write_parquet(work / "round1_log.parquet")
    labelled = work / "training_exposures"
    first, _ = run_experiment({"input": str(events), "exposures": {"path": str(work / "round1_log.parquet")},
                               "output": str(work / "round1"), "feedback": str(labelled / "round1.parquet")})  # fmt: skip
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"data.path={events}", f"data.exposures={labelled}", *OVERRIDES, *overrides])
    with open_dict(cfg):
        cfg.run_dir = cfg.paths.output_dir = str(work / "run")
    start = time.perf_counter()
    run = train(cfg)
    seconds = time.perf_counter() - start
    bundle = build_bundle(run.best_checkpoint, work / "bundle")
    at2 = world.exposures["timestamp"].min() + timedelta(days=30)
    scores = work / "pred2.parquet"
    predict_from_config({"bundle": str(bundle.path), "data": {"path": str(events)},
                         "as_of": (at2 - BEFORE).isoformat(), "output": str(scores), "progress": False})  # fmt: skip
    budget = TargetingConfig(contact_cost=1.0, budget=contacts * n_customers, holdout_share=0.2, seed=1)
    log2 = exposure_log(target_customers(pl.read_parquet(scores), budget), "follow_up", at2)
    log2.write_parquet(work / "round2_log.parquet")
    arms = {a: tuple(log2.filter(pl.col("arm") == a)["customer_id"]) for a in ("treatment", "control")}
    follow = C.FollowUp(C.exposure_day(config.days) + 30, arms["treatment"], arms["control"], "follow_up")
    world2 = generate_journeys(config, follow_up=follow)
    assert world2.effects is not None
    write_journeys(world2, work / "world2")
    second, _ = run_experiment({"input": str(work / "world2" / "events.parquet"),
                                "exposures": {"path": str(work / "round2_log.parquet")}, "window_days": 29,
                                "output": str(work / "round2")})  # fmt: skip
    # true effects per contact; a chosen customer no longer live gains nothing
    tau2 = world2.effects.filter(pl.col("campaign") == "follow_up").select("customer_id", "tau_value", "tau_churn")
    chosen = log2.join(tau2, on="customer_id", how="left").fill_null(0.0)
    scored = pl.read_parquet(scores).select("customer_id").join(tau2, on="customer_id", how="left").fill_null(0.0)
    round1 = world.effects.filter(pl.col("arm") == "treatment")
    out: dict = {"seed": seed, "train_s": round(seconds, 1), "n": {}, "spend": {}, "retention": {}}
    for outcome, column, sign in (("spend", "tau_value", 1.0), ("retention", "tau_churn", -1.0)):
        a, b, c = (sign * f[column].to_numpy() for f in (chosen, scored, round1))
        out[outcome] = {
            "mean": dict(zip(ROWS, (float(a.mean()), float(b.mean()), float(c.mean())), strict=True)),
            "targeted - random": difference(a, b, n_b=len(a)),
            "targeted - round 1": difference(a, c),
        }
    out["n"] = dict(zip(ROWS, (len(chosen), len(scored), len(round1)), strict=True))
    out["measured spend"] = {r: {k: float(v) for k, v in res["outcomes"]["spend"]["plain"].items()
                                 if k in ("effect", "low", "high")}
                             for r, res in (("round 1", first), ("round 2", second))}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--customers", type=int, default=12000)
    ap.add_argument("--contacts", type=float, default=1 / 6, help="round 2's budget, as a share of the customers")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    name, _, cores = cpu_info()
    print(f"campaigns world, {args.customers:,} customers per seed; CPU {name} ({cores} cores)", flush=True)
    results = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            results.append(one_seed(seed, args.customers, args.contacts, args.overrides, Path(tmp)))
        r = results[-1]
        print(f"\nseed {seed}: training {r['train_s']:.0f} s; contacts: {r['n']}")
        for outcome in ("spend", "retention"):
            means = "  ".join(f"{k} {v:+.3f}" for k, v in r[outcome]["mean"].items())
            print(f"  {outcome:9s} true effect per contact: {means}")
            for key in ("targeted - random", "targeted - round 1"):
                d = r[outcome][key]
                print(f"  {outcome:9s} {key:18s} {d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]")
        m = r["measured spend"]
        print("  measured on each round's holdout (spend per treated customer): "
              + "; ".join(f"{k} {v['effect']:+.1f} [{v['low']:+.1f}, {v['high']:+.1f}]" for k, v in m.items()))
    if len(results) > 1:  # pooled: the seeds' means, their differences' intervals combined
        print(f"\npooled over seeds {args.seeds} (mean of the seeds; interval from the seeds' standard errors)")
        for outcome in ("spend", "retention"):
            for key in ("targeted - random", "targeted - round 1"):
                ds = [r[outcome][key] for r in results]
                d = float(np.mean([x["diff"] for x in ds]))
                se = float(np.sqrt(np.sum([((x["high"] - x["low"]) / 3.92) ** 2 for x in ds]))) / len(ds)
                print(f"  {outcome:9s} {key:18s} {d:+.3f} [{d - 1.96 * se:+.3f}, {d + 1.96 * se:+.3f}]")
    if args.json:
        atomic_write_text(args.json, json.dumps({"cpu": name, "customers": args.customers, "seeds": results}, indent=1))


if __name__ == "__main__":
    main()
