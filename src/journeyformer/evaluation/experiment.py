"""Measure a campaign with a randomised holdout: effects, CUPED, power and arm balance.

Input: the events, the exposure log (:mod:`journeyformer.data.events.exposures`) and, optionally, the
model's predictions made at the exposure (``journeyformer predict as_of=<exposure time>``) and
a segment per customer. For one campaign, each eligible exposed customer gets three outcomes
from the events in ``(exposure, exposure + window_days]``:

* ``churn``: 1 when the customer has no event in the window (the churn label's definition);
* ``spend``: the amount of the purchase actions in the window (currency);
* ``conversion``: 1 when the customer makes a purchase in the window.

Per outcome, overall and per segment: the treatment minus control difference with a 95%
interval, and the CUPED estimate (:func:`journeyformer.metrics.uplift.cuped`) with its
variance reduction against the plain difference. The CUPED covariate is the model's
pre-exposure prediction of the same outcome (``churn_probability``, ``expected_value``,
``spend_probability``) when predictions are given, else the same outcome measured over the
window before the exposure (the classic CUPED covariate; weaker). Power: the customers needed
to detect a relative effect, with and without CUPED, and the smallest effect this test could
detect. Balance: the standardized difference of pre-period features between the arms (flagged
above 0.1) and the sample-ratio test against the planned split; either problem is a warning in
the page and the JSON, and the effects are then not to be trusted.

Feedback (:func:`labelled_exposures`): the campaign's rows of the exposure log, every one of
them (eligible or not), with the outcomes measured here (``outcome_churn``, ``outcome_spend``,
``outcome_conversion``, ``outcome_window_days``; null for rows outside the randomised
population), in the canonical exposure columns: a finished experiment, ready to be a
``data.exposures`` input of the next training run, which learns the uplift head from it.

Errors: an outcome window that ends after the last event (the outcome is not observed yet),
a campaign name not in the log, a campaign with an arm of fewer than two eligible customers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from journeyformer.errors import ConfigError, EventDataError
from journeyformer.metrics import uplift as U

log = logging.getLogger(__name__)

OUTCOMES = ("churn", "spend", "conversion")
PREDICTION_COVARIATES = {"churn": "churn_probability", "spend": "expected_value", "conversion": "spend_probability"}
FEATURES = ("events_30d", "events_90d", "purchases_90d", "spend_90d", "days_since_last", "tenure_days")
FEEDBACK_COLUMNS = ("outcome_churn", "outcome_spend", "outcome_conversion", "outcome_window_days")
# the settings of configs/campaign_experiment.yaml that ExperimentConfig reads
CONFIG_KEYS = ("campaign", "window_days", "purchase_actions", "treated_share", "alpha", "power", "relative_effects",
               "covariates", "policies", "budget_share", "budget", "net_value", "contact_cost")  # fmt: skip
SRM_ALPHA = 0.001  # sample-ratio p-value below which the split is called off plan


@dataclass(frozen=True)
class ExperimentConfig:
    """What to measure. ``window_days``: the outcome window after each exposure (days);
    ``treated_share``: the planned share of treated customers (null: the observed share, so
    the sample-ratio test is skipped); ``relative_effects``: the effects (as fractions of the
    control mean) the power table sizes the test for."""

    campaign: str | None = None
    window_days: float = 30.0
    purchase_actions: tuple[str, ...] = ("purchase",)
    treated_share: float | None = None
    alpha: float = 0.05
    power: float = 0.8
    relative_effects: tuple[float, ...] = (0.05, 0.10)
    min_segment: int = 50  # segments with fewer customers per arm are pooled as "other"
    covariates: Mapping[str, str] = field(default_factory=lambda: dict(PREDICTION_COVARIATES))
    # targeting policies compared on the randomised customers: name -> score column (higher =
    # target first), each against random targeting; see :func:`compare_policies`
    policies: Mapping[str, str] = field(default_factory=dict)
    budget_share: float = 0.3  # share of customers a policy may contact
    contact_cost: float = 0.0  # currency per contact
    # A contact budget in currency instead of budget_share: every policy contacts at most
    # budget / contact_cost customers; those named in ``net_value`` (scores in currency: the
    # uplift head's ``uplift_value``) contact by expected incremental value minus the contact
    # cost, only while that is positive (:func:`journeyformer.metrics.uplift.select_by_net_value`).
    budget: float | None = None
    net_value: tuple[str, ...] = ()
    policy_outcome: str = "spend"
    n_boot: int = 200

    def __post_init__(self) -> None:
        for name in ("window_days", "alpha", "power", "budget_share", "contact_cost"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "budget", None if self.budget is None else float(self.budget))
        object.__setattr__(self, "purchase_actions", tuple(self.purchase_actions))
        object.__setattr__(self, "relative_effects", tuple(float(e) for e in self.relative_effects))
        object.__setattr__(self, "net_value", tuple(self.net_value))
        if self.window_days <= 0:
            raise ConfigError(f"window_days must be > 0, got {self.window_days}")
        if self.treated_share is not None and not 0 < self.treated_share < 1:
            raise ConfigError(f"treated_share must be in (0, 1) or null, got {self.treated_share}")
        if (self.budget is not None and self.budget < 0) or self.contact_cost < 0:
            raise ConfigError(f"budget={self.budget} and contact_cost={self.contact_cost} must be >= 0")
        unknown = sorted(set(self.net_value) - set(self.policies))
        if unknown:
            raise ConfigError(
                f"net_value names {unknown}, which are not policies {sorted(self.policies)}; "
                "list the policies whose score is an expected incremental value (e.g. uplift)"
            )
        if self.net_value and self.budget is None:
            raise ConfigError("net_value targeting needs a contact budget in currency: set budget=<amount>")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ExperimentConfig:
        """The :data:`CONFIG_KEYS` of a plain config; an unset (null) or empty one keeps its default."""
        return cls(**{k: cfg[k] for k in CONFIG_KEYS if cfg.get(k) not in (None, [], (), {})})


def pick_campaign(exposures: pl.DataFrame, campaign: str | None, name: str) -> pl.DataFrame:
    """The eligible exposures of ``campaign`` (the only one in the log when None)."""
    campaigns = exposures.get_column("campaign").unique().sort().to_list()
    if campaign is None:
        if len(campaigns) != 1:
            raise ConfigError(f"{name} holds campaigns {campaigns}; choose one with campaign=<name>")
        campaign = campaigns[0]
    if campaign not in campaigns:
        raise ConfigError(f"campaign={campaign!r} is not in {name}; it holds {campaigns}")
    return exposures.filter((pl.col("campaign") == campaign) & pl.col("eligible"))


def labelled_exposures(rows: pl.DataFrame, frame: pl.DataFrame, cfg: ExperimentConfig) -> pl.DataFrame:
    """Every row of ``rows`` (one campaign's exposure log, eligible or not, as loaded) with
    the outcomes of :func:`customer_frame` ``frame`` joined on: ``outcome_<churn|spend|
    conversion>`` and ``outcome_window_days``, null where a row is not eligible. Canonical
    exposure columns (customer_id, timestamp, campaign, arm, eligible), so the result reads
    with the default exposure settings; sorted like a loaded log."""
    outcomes = frame.select(
        "customer_id",
        *(pl.col(o).alias(f"outcome_{o}") for o in OUTCOMES),
        pl.lit(float(cfg.window_days)).alias("outcome_window_days"),
    )
    out = (
        _same_ids(rows, frame.schema["customer_id"], "exposures")
        .select("customer_id", "timestamp", "campaign", "arm", "eligible")
        .with_columns(pl.col("eligible").alias("_e"))
        .join(outcomes, on="customer_id", how="left")
    )
    out = out.with_columns(
        pl.when(pl.col("_e")).then(pl.col(c)).otherwise(None).alias(c) for c in FEEDBACK_COLUMNS
    ).drop("_e")
    if out.height != rows.height:  # a customer twice in one campaign would multiply rows
        raise EventDataError(
            f"exposures: the labelled log has {out.height} rows for {rows.height} exposures; "
            "a customer is in the campaign more than once"
        )
    return out.sort("campaign", "customer_id", "timestamp")


def customer_frame(events: pl.DataFrame, exposures: pl.DataFrame, cfg: ExperimentConfig,
                   name: str = "events") -> pl.DataFrame:  # fmt: skip
    """One row per eligible exposed customer: arm (t: 1 treated), the outcomes in the window
    after the exposure, the same outcomes in the window before it (``<outcome>_pre``) and the
    pre-period balance features (:data:`FEATURES`). Events of customers not in ``exposures``
    are ignored; exposed customers without events have no activity (churn 1)."""
    last = events.get_column("timestamp").max()
    window = timedelta(days=cfg.window_days)
    late = exposures.filter(pl.col("timestamp") + window > last)
    if late.height:
        raise EventDataError(
            f"{name}: the outcome window of {late.height} of {exposures.height} exposures ends "
            f"after the last event ({last:%Y-%m-%d %H:%M} UTC), e.g. exposed at "
            f"{late.get_column('timestamp').max():%Y-%m-%d %H:%M}; their outcome is not observed "
            f"yet. Wait for the events, or shorten window_days (now {cfg.window_days:g})."
        )
    exposures = _same_ids(exposures, events.schema["customer_id"], name)
    ex = exposures.select("customer_id", pl.col("timestamp").alias("exposed_at"),
                          (pl.col("arm") == "treatment").cast(pl.Int8).alias("t"))  # fmt: skip
    missing = ex.join(events.select("customer_id").unique(), on="customer_id", how="anti").height
    if missing:
        log.warning("%s: %d of %d exposed customers have no events at all (kept: no activity)",
                    name, missing, ex.height)  # fmt: skip
    ev = events.select("customer_id", "timestamp", "action", "amount").join(ex, on="customer_id")
    dt = (pl.col("timestamp") - pl.col("exposed_at")).dt.total_seconds() / 86_400.0
    ev = ev.with_columns(dt.alias("dt"), pl.col("action").is_in(cfg.purchase_actions).alias("buy"))
    w, dt, buy, amount = cfg.window_days, pl.col("dt"), pl.col("buy"), pl.col("amount")
    post, pre, before = (dt > 0) & (dt <= w), (dt <= 0) & (dt > -w), dt <= 0
    in_90d = before & (dt > -90)
    agg = ev.group_by("customer_id").agg(
        post.sum().alias("_n_post"),
        (amount * (post & buy)).sum().alias("spend"),
        (post & buy).any().cast(pl.Float64).alias("conversion"),
        pre.sum().alias("_n_pre"),
        (amount * (pre & buy)).sum().alias("spend_pre"),
        (pre & buy).any().cast(pl.Float64).alias("conversion_pre"),
        (before & (dt > -30)).sum().cast(pl.Float64).alias("events_30d"),
        in_90d.sum().cast(pl.Float64).alias("events_90d"),
        (in_90d & buy).sum().cast(pl.Float64).alias("purchases_90d"),
        (amount * (in_90d & buy)).sum().alias("spend_90d"),
        (-dt).filter(before).min().alias("days_since_last"),
        (-dt).filter(before).max().alias("tenure_days"),
    )
    out = ex.join(agg, on="customer_id", how="left").with_columns(
        (pl.col("_n_post").fill_null(0) == 0).cast(pl.Float64).alias("churn"),
        (pl.col("_n_pre").fill_null(0) == 0).cast(pl.Float64).alias("churn_pre"),
    )
    fill = {c: 0.0 for c in ("spend", "conversion", "spend_pre", "conversion_pre", *FEATURES)}
    fill["days_since_last"] = fill["tenure_days"] = 365.0  # no history: long ago
    return out.drop("_n_post", "_n_pre").with_columns(pl.col(c).fill_null(v) for c, v in fill.items())


def _same_ids(exposures: pl.DataFrame, dtype: pl.DataType, name: str) -> pl.DataFrame:
    """The exposure log's customer ids in the events' type (text ids such as "17" match the
    integer 17); an error naming examples when they cannot be."""
    have = exposures.schema["customer_id"]
    if have == dtype:
        return exposures
    cast = exposures.get_column("customer_id").cast(dtype, strict=False)
    bad = exposures.filter(cast.is_null() & exposures.get_column("customer_id").is_not_null())
    if bad.height:
        raise EventDataError(
            f"{name}: the events' customer_id is {dtype} but {bad.height} of {exposures.height} "
            f"exposure customer ids are not, e.g. {bad.get_column('customer_id').head(5).to_list()}; "
            "both files must use the same ids."
        )
    return exposures.with_columns(cast.alias("customer_id"))


def _arms(frame: pl.DataFrame) -> tuple[np.ndarray, int, int]:
    """The treatment indicator and the customers treated and in control."""
    t = frame.get_column("t").to_numpy()
    return t, int(t.sum()), int(len(t) - t.sum())


def _estimates(frame: pl.DataFrame, t: np.ndarray, outcome: str, covariate: str) -> dict[str, Any]:
    """The plain difference and the CUPED estimate of ``outcome``."""
    y = frame.get_column(outcome).to_numpy()
    return {"plain": U.difference(y, t), "cuped": U.cuped(y, t, frame.get_column(covariate).to_numpy())}


def analyse(frame: pl.DataFrame, cfg: ExperimentConfig, covariates: Mapping[str, str] | None = None,
            name: str = "exposures") -> dict[str, Any]:  # fmt: skip
    """Effects, CUPED, power and balance of a :func:`customer_frame` (optionally joined with
    prediction columns and a ``segment`` column). ``covariates``: outcome -> column of
    ``frame`` used as the CUPED covariate (default: ``<outcome>_pre``)."""
    t, n_t, n_c = _arms(frame)
    if min(n_t, n_c) < 2:
        raise EventDataError(
            f"{name}: the campaign has {n_t} treated and {n_c} control eligible customers; an "
            "effect needs at least 2 in each arm (a randomised holdout)."
        )
    covariates = dict(covariates or {})
    result: dict[str, Any] = {"n_treatment": n_t, "n_control": n_c, "window_days": cfg.window_days,
                              "outcomes": {}, "segments": {}, "power": {}, "warnings": []}  # fmt: skip
    for outcome in OUTCOMES:
        cov = covariates.get(outcome, f"{outcome}_pre")
        est = _estimates(frame, t, outcome, cov)
        reduction = est["cuped"]["variance_reduction"]
        result["outcomes"][outcome] = {"covariate": cov, **est, "variance_reduction": reduction}
        y = frame.get_column(outcome).to_numpy()
        sd = float(np.std(y[t == 0], ddof=1))
        sd_cuped = sd * np.sqrt(max(1 - reduction, 0.0))
        base = est["plain"]["mean_control"]
        sizes = []
        for rel in cfg.relative_effects:
            effect = rel * base if base else rel
            sizes.append({
                "relative_effect": rel, "absolute_effect": effect,
                "customers_plain": U.sample_size(effect, sd, cfg.alpha, cfg.power, n_t / (n_t + n_c))["total"],
                "customers_cuped": U.sample_size(effect, sd_cuped, cfg.alpha, cfg.power, n_t / (n_t + n_c))["total"],
            })  # fmt: skip
        result["power"][outcome] = {
            "sd_control": sd, "mean_control": base, "sizes": sizes,
            "mde_plain": U.minimum_detectable_effect(sd, n_t, n_c, cfg.alpha, cfg.power),
            "mde_cuped": U.minimum_detectable_effect(sd_cuped, n_t, n_c, cfg.alpha, cfg.power),
        }  # fmt: skip
    if "segment" in frame.columns:
        result["segments"] = _by_segment(frame, cfg, covariates)
    result["balance"] = balance(frame, [*FEATURES, *sorted(set(covariates.values()) - set(FEATURES))], cfg)
    result["warnings"] += result["balance"]["warnings"]
    if cfg.policies:
        scores = {n: frame.get_column(c).to_numpy() for n, c in cfg.policies.items()}
        result["policies"] = compare_policies(frame.get_column(cfg.policy_outcome).to_numpy(), t, scores, cfg)
    return result


def compare_policies(y: np.ndarray, t: np.ndarray, scores: Mapping[str, np.ndarray],
                     cfg: ExperimentConfig) -> dict[str, Any]:  # fmt: skip
    """Incremental outcome per customer, net of contact costs, of treating the top
    ``budget_share`` of customers by each score (and at random), estimated on these randomised
    customers (:func:`journeyformer.metrics.uplift.policy_value`), with 95% bootstrap intervals
    over customers, and each policy minus random on the same resamples. The scores must come
    from a model that did not see these customers' outcomes."""
    n = len(y)
    if cfg.budget is None:
        k = max(1, int(round(cfg.budget_share * n)))
    else:  # a budget in currency: as many contacts as it pays for
        k = n if cfg.contact_cost <= 0 else min(n, int(cfg.budget // cfg.contact_cost))
    rng = np.random.default_rng(0)
    ranked = {**scores, "random": rng.random(n)}
    masks = {}
    for name, s in ranked.items():
        if name in cfg.net_value:  # expected incremental value net of the contact, while positive
            masks[name] = U.select_by_net_value(np.asarray(s, float), cfg.contact_cost, float(cfg.budget or 0.0))
            continue
        m = np.zeros(n, bool)
        m[np.argsort(-np.asarray(s, float), kind="stable")[:k]] = True
        masks[name] = m
    point = {name: U.policy_value(y, t, m, cfg.contact_cost) for name, m in masks.items()}
    draws = {name: np.empty(cfg.n_boot) for name in masks}
    for b in range(cfg.n_boot):
        idx = rng.integers(0, n, n)
        for name, m in masks.items():
            draws[name][b] = U.policy_value(y[idx], t[idx], m[idx], cfg.contact_cost)
    out: dict[str, Any] = {"outcome": cfg.policy_outcome, "budget_share": cfg.budget_share,
                           "budget": cfg.budget, "max_contacts": k, "net_value": list(cfg.net_value),
                           "contact_cost": cfg.contact_cost, "customers": n, "policies": {}}  # fmt: skip
    for name in masks:
        low, high = np.nanpercentile(draws[name], [2.5, 97.5])
        d = draws[name] - draws["random"]
        dlow, dhigh = np.nanpercentile(d, [2.5, 97.5])
        out["policies"][name] = {"value_per_customer": point[name], "low": float(low), "high": float(high),
                                 "contacted": int(masks[name].sum()),
                                 "minus_random": point[name] - point["random"],
                                 "minus_random_low": float(dlow), "minus_random_high": float(dhigh)}  # fmt: skip
    return out


def _by_segment(frame: pl.DataFrame, cfg: ExperimentConfig, covariates: Mapping[str, str]) -> dict[str, Any]:
    counts = frame.group_by("segment").agg(
        pl.col("t").sum().alias("nt"), (1 - pl.col("t")).sum().alias("nc")
    )
    small = counts.filter(pl.min_horizontal("nt", "nc") < cfg.min_segment).get_column("segment")
    frame = frame.with_columns(
        pl.when(pl.col("segment").is_in(small.implode())).then(pl.lit("other"))
        .otherwise(pl.col("segment").cast(pl.String)).alias("segment")
    )  # fmt: skip
    out: dict[str, Any] = {}
    for (segment,), part in sorted(frame.group_by("segment"), key=lambda g: str(g[0][0])):
        t, n_t, n_c = _arms(part)
        if min(n_t, n_c) < 2:
            continue
        out[str(segment)] = {"n": part.height} | {
            o: _estimates(part, t, o, covariates.get(o, f"{o}_pre")) for o in OUTCOMES
        }
    return out


def balance(frame: pl.DataFrame, features: list[str], cfg: ExperimentConfig) -> dict[str, Any]:
    """Standardized differences of pre-period ``features`` between the arms and the
    sample-ratio test; ``warnings`` says what is off."""
    t, n_t, n_c = _arms(frame)
    smd = {f: U.standardized_difference(frame.get_column(f).to_numpy(), t) for f in features}
    limit = U.imbalance_threshold(n_t, n_c)
    flagged = [f for f, d in smd.items() if abs(d) > limit]
    share = cfg.treated_share
    srm = U.sample_ratio_pvalue(n_t, n_c, share) if share is not None else None
    warnings = []
    if flagged:
        warnings.append(
            f"UNBALANCED ARMS: {len(flagged)} pre-period feature(s) differ between treatment and "
            f"control by more than {limit:.2g} standard deviations (0.1, or what chance gives "
            f"{n_t} treated and {n_c} control): "
            + ", ".join(f"{f} {smd[f]:+.2f}" for f in flagged)
            + ". The assignment does not look random; the effects below are not causal."
        )
    if srm is not None and srm < SRM_ALPHA:
        warnings.append(
            f"SAMPLE RATIO MISMATCH: {n_t} treated and {n_c} control is not a {share:.0%} split "
            f"(p = {srm:.1e}); check the assignment and the exposure log for lost customers."
        )
    for w in warnings:
        log.warning("%s", w)
    return {"standardized_difference": smd, "flagged": flagged, "sample_ratio_p": srm,
            "planned_treated_share": share, "warnings": warnings, "balanced": not warnings}  # fmt: skip


def attach(frame: pl.DataFrame, predictions: pl.DataFrame | None, segments: pl.DataFrame | None,
           cfg: ExperimentConfig, name: str = "predictions") -> tuple[pl.DataFrame, dict[str, str]]:  # fmt: skip
    """Join the model's pre-exposure predictions (the CUPED covariates) and a ``segment``
    column; returns the frame and outcome -> covariate column. Exposed customers without a
    prediction are an error (CUPED needs every customer's covariate)."""
    covariates: dict[str, str] = {}
    if predictions is not None:
        missing = sorted(c for c in cfg.policies.values() if c not in predictions.columns)
        if missing:
            raise EventDataError(
                f"{name}: policy score column(s) {missing} are not in the predictions (columns "
                f"{predictions.columns}); fix policies.<name>=<column>"
            )
        cols = [c for c in cfg.covariates.values() if c in predictions.columns]
        if not cols:
            raise EventDataError(
                f"{name}: none of the covariate columns {sorted(cfg.covariates.values())} is in the "
                f"predictions (columns {predictions.columns}); set covariates.<outcome>=<column>"
            )
        extra = [c for c in dict.fromkeys(cfg.policies.values()) if c not in cols]
        keyed = predictions.select("customer_id", *cols, *extra).with_columns(
            pl.col("customer_id").cast(frame.schema["customer_id"])
        )
        frame = frame.join(keyed, on="customer_id", how="left")
        lacking = frame.filter(pl.col(cols[0]).is_null())
        if lacking.height:
            raise EventDataError(
                f"{name}: {lacking.height} of {frame.height} exposed customers have no prediction "
                f"(column '{cols[0]}'), e.g. {lacking.get_column('customer_id').head(5).to_list()}. "
                "Score every exposed customer at the exposure time (predict as_of=<exposure>)."
            )
        covariates = {o: c for o, c in cfg.covariates.items() if c in cols}
    if segments is not None:
        seg = segments.select(
            pl.col("customer_id").cast(frame.schema["customer_id"]),
            pl.col("segment").cast(pl.String),
        )
        frame = frame.join(seg.unique("customer_id"), on="customer_id", how="left").with_columns(
            pl.col("segment").fill_null("unknown"))  # fmt: skip
    return frame, covariates
