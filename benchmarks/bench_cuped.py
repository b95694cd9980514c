"""CUPED on the campaigns world: a model's pre-exposure prediction vs the pre-window outcome.

    .venv/bin/python benchmarks/bench_cuped.py [--seeds 1 2 3] [--customers 20000]

Per seed: the campaigns world, the experiment's outcomes (churn, spend in the 30 days after
the exposure), and three estimates of each effect: the plain difference, CUPED with the same
outcome over the 30 days before the exposure (the experiment command's fallback), and CUPED
with a model's prediction made at the exposure. The model here is LightGBM on the project's
aggregates, fitted out of time (features at exposure - 30 days, labels from the 30 days up to
the exposure), then applied at the exposure: the stand-in for ``journeyformer predict
as_of=<exposure>``, whose ``churn_probability`` / ``expected_value`` columns the command takes
the same way (``predictions=``). Prints the standard errors and the variance reductions, and
the CPU. Not a test.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone

import lightgbm as lgb
import polars as pl

from journeyformer.data.features.definitions import FeatureConfig
from journeyformer.data.features.sequences import build_sequences
from journeyformer.data.features.vocab import Vocabularies
from journeyformer.data.labels.lifecycle import LabelConfig
from journeyformer.evaluation.experiment import ExperimentConfig, analyse, customer_frame
from journeyformer.machine import cpu_line
from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.journeys import generate_journeys

PARAMS = {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 31, "verbose": -1, "n_jobs": 1}


def run(seed: int, n: int) -> dict:
    world = generate_journeys(SyntheticConfig(n_customers=n, seed=seed, world="campaigns"))
    assert world.exposures is not None
    exp = ExperimentConfig(window_days=30, treated_share=0.5)
    frame = customer_frame(world.events, world.exposures, exp)
    exposed_at = world.exposures.get_column("timestamp").min()
    before = world.events.filter(pl.col("timestamp") < exposed_at)
    vocabs = Vocabularies.build(before, ["action", "channel"])
    labels = LabelConfig(horizon_days=30)
    fit = build_sequences(before, exposed_at - timedelta(days=30), vocabs, FeatureConfig(), labels,
                          active_within_days=90)  # fmt: skip
    assert fit.labels is not None
    at = build_sequences(before, exposed_at, vocabs, FeatureConfig(), labels, customers=frame["customer_id"],
                         with_labels=False)  # fmt: skip
    churn = lgb.LGBMClassifier(**PARAMS).fit(fit.aggregates, fit.labels["churn"])
    value = lgb.LGBMRegressor(**PARAMS).fit(fit.aggregates, fit.labels["value"])
    preds = pl.DataFrame({
        "customer_id": at.customer_id,
        "churn_probability": churn.predict_proba(at.aggregates)[:, 1],
        "expected_value": value.predict(at.aggregates),
    })  # fmt: skip
    frame = frame.join(preds, on="customer_id", how="left").fill_null(0.0)
    pre = analyse(frame, exp)
    model = analyse(frame, exp, {"churn": "churn_probability", "spend": "expected_value"})
    return {"pre": pre, "model": model, "customers": frame.height}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--customers", type=int, default=20_000)
    args = parser.parse_args()
    print(f"CPU: {cpu_line()}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"{'seed':>4} {'outcome':<8} {'effect':>9} {'se plain':>9} {'se CUPED pre-window':>20} {'var.red.':>8} "
          f"{'se CUPED model':>15} {'var.red.':>8}")  # fmt: skip
    for seed in args.seeds:
        r = run(seed, args.customers)
        for o in ("churn", "spend"):
            p, m = r["pre"]["outcomes"][o], r["model"]["outcomes"][o]
            print(f"{seed:>4} {o:<8} {p['plain']['effect']:>+9.4f} {p['plain']['se']:>9.4f} {p['cuped']['se']:>20.4f} "
                  f"{p['variance_reduction']:>8.1%} {m['cuped']['se']:>15.4f} {m['variance_reduction']:>8.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
