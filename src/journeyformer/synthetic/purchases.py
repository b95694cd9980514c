"""The purchase-log world (``SyntheticConfig.world = "purchases"``): one action, BTYD-style.

Each customer is acquired with a first purchase at a uniform time in the first
``acquisition_span`` of the window, then buys as a Poisson process with their own rate
lambda ~ Gamma(0.9, mean 0.03 per day x ``intensity``) until an unobserved dropout after an
exponential lifetime with rate mu ~ Gamma(0.8, mean 1/200 per day x ``churn_scale``) (the
Pareto/NBD model of Schmittlein, Morrison and Colombo, 1987). Order amounts follow the
gamma-gamma spend model: a customer's mean order value nu ~ Gamma(3, mean 60) and each order
~ Gamma(6, mean nu). Each customer buys in the store with their own probability ~ Beta(1, 1),
online otherwise. Nothing depends on the order of events beyond recency, frequency and
spend, so a sequence model has little to find that aggregates miss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from journeyformer.synthetic.config import SyntheticConfig

RATE_SHAPE, RATE_MEAN = 0.9, 0.03  # purchases per day
DROPOUT_SHAPE, DROPOUT_MEAN = 0.8, 1 / 200  # dropouts per day
SPEND_SHAPE, SPEND_MEAN, ORDER_SHAPE = 3.0, 60.0, 6.0  # currency units


def simulate_purchases(config: SyntheticConfig) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """-> events (customer_id, day, channel, action, amount), customers (customer_id, segment,
    acquired_day, churned_day: NaN when still alive at the end), stages (customer_id, stage,
    day). Days are float days since the window start; ids are 1..n in acquisition order."""
    rng = np.random.default_rng(config.seed)
    n, days = config.n_customers, float(config.days)
    acquired = np.sort(rng.uniform(0, config.acquisition_span * days, n))
    rate = rng.gamma(RATE_SHAPE, RATE_MEAN * config.intensity / RATE_SHAPE, n)
    dropout = rng.gamma(DROPOUT_SHAPE, DROPOUT_MEAN * config.churn_scale / DROPOUT_SHAPE, n)
    death = acquired + rng.exponential(1 / dropout)
    alive_until = np.minimum(death, days)
    repeats = rng.poisson(rate * (alive_until - acquired))
    owner = np.concatenate([np.arange(n), np.repeat(np.arange(n), repeats)])
    start = acquired[owner]
    span = (alive_until - acquired)[owner]
    when = np.where(np.arange(len(owner)) < n, start, start + rng.uniform(0, 1, len(owner)) * span)
    nu = rng.gamma(SPEND_SHAPE, SPEND_MEAN / SPEND_SHAPE, n)
    amount = np.round(rng.gamma(ORDER_SHAPE, nu[owner] / ORDER_SHAPE), 2) + 0.01
    store_share = rng.beta(1.0, 1.0, n)
    channel = np.where(rng.uniform(0, 1, len(owner)) < store_share[owner], "store", "web")
    events = pl.DataFrame(
        {"customer_id": owner + 1, "day": when, "channel": channel, "amount": amount}
    ).with_columns(pl.lit("purchase").alias("action")).sort(["customer_id", "day"])
    churned = np.where(death < days, death, np.nan)
    customers = pl.DataFrame(
        {
            "customer_id": np.arange(1, n + 1),
            "segment": np.full(n, "btyd"),
            "acquired_day": acquired,
            "churned_day": churned,
        }
    )
    first = pl.DataFrame({"customer_id": np.arange(1, n + 1), "stage": "first_purchase", "day": acquired})
    gone = customers.filter(pl.col("churned_day").is_not_nan()).select(
        "customer_id", pl.lit("churned").alias("stage"), pl.col("churned_day").alias("day")
    )
    stages = pl.concat([first, gone]).sort(["customer_id", "day"])
    return events, customers, stages
