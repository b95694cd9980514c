"""Uplift on the campaigns world: how much room there is, and targeting by uplift vs churn risk.

    .venv/bin/python benchmarks/bench_uplift.py [--seeds 1 2 3] [--customers 20000]
        [--causalml ~/.cache/journeyformer/causalml-venv/bin/python] [--out results.json]
        [--transformer [--train-overrides trainer.max_epochs=10 ...]] [--latent]

Per seed: the campaigns world (``world=campaigns``: a randomised retention offer with a 50%
holdout, four response types; :mod:`journeyformer.synthetic.campaigns`), the project's
aggregates at the exposure (the table the LightGBM baseline is fitted on), the outcomes in the
30 days after it (:func:`journeyformer.evaluation.experiment.customer_frame`), and one random
half of the eligible customers for fitting, the other half held out (same split for all).
With ``--fit-customers M``, a random M customers of the world are the fitting set (the
Transformer trains on their events only) and every other eligible customer is held out: a
world several times larger than the fitting set gives a held-out Qini with a fraction of the
outcome noise (a 30-day retention Qini on 6,000 customers is mostly noise) at the same
training cost.

Uplift scores, each for retention (1 - churn) and spend:

* ``oracle``: the true individual effect written by the generator (``-tau_churn``,
  ``tau_value``): the ceiling of any ranking;
* ``t_learner`` / ``x_learner``: meta-learners with LightGBM on the aggregates, written here
  (T: one model per arm, effect = difference; X: the T models' imputed effects regressed
  per arm and blended with the known propensity 0.5);
* ``causalml_t`` / ``causalml_x``: causalml's BaseTRegressor / BaseXRegressor with
  LightGBM learners, when ``--causalml`` names a Python with causalml installed (a separate
  benchmark-only venv);
* ``transformer`` (``--transformer``): the project's uplift head
  (:mod:`journeyformer.tasks.uplift`), trained by ``pipelines.train`` on the world's events
  with ``data.exposures`` = the exposure log of the fitting half only, scored at the exposure
  on the held-out half (``uplift_retention``, ``uplift_value``);
* ``churn_risk`` (LightGBM P(churn) on the control arm) and ``random``: the targeting rules
  uplift is meant to replace;
* with ``--latent``, three references that read what no real learner sees, the generator's
  latent state at the exposure, fitted on the same fitting customers: ``latent_type`` (the
  difference of the arms' mean outcomes within each response type, assigned by type: four
  numbers to estimate) and ``latent_x`` (the X-learner on the aggregates plus the type and the
  exposure-day churn hazard); and ``history_type``, the type as the history reveals it: a
  LightGBM classifier on the aggregates taught the fitting customers' true types gives each
  held-out customer P(type), times ``latent_type``'s means. They are not baselines (each reads
  the generator's latent labels): the first two say how much of the oracle's Qini a learner
  that knew the latent state reaches from this many randomised exposures, the third how much
  of the type the aggregates reveal when it is taught directly instead of through the arms'
  noisy contrast.

On the held-out half: Qini coefficient, AUUC and uplift@30% (definitions in
:mod:`journeyformer.metrics.uplift`), the room (oracle minus the best meta-learner's Qini, 95%
bootstrap interval over customers), and the incremental outcome per customer of treating the
top 30% (a budget) by each score, with intervals. Prints the CPU. Not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl

from journeyformer.data.features.definitions import FeatureConfig
from journeyformer.data.features.sequences import build_sequences
from journeyformer.data.features.vocab import Vocabularies
from journeyformer.data.labels.lifecycle import LabelConfig
from journeyformer.evaluation.experiment import ExperimentConfig, customer_frame
from journeyformer.machine import cpu_line
from journeyformer.metrics import uplift as U
from journeyformer.metrics.scores import spearman
from journeyformer.synthetic.config import SyntheticConfig
from journeyformer.synthetic.journeys import SyntheticJourneys, generate_journeys, write_journeys

BUDGET = 0.3  # share of customers the campaign can reach
PARAMS = {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 40,
          "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "verbose": -1, "n_jobs": 1}  # fmt: skip


def features(world: SyntheticJourneys) -> tuple[np.ndarray, pl.DataFrame]:
    """Aggregates at the exposure and the outcome frame (with the true effects) per customer."""
    assert world.exposures is not None and world.effects is not None
    frame = customer_frame(world.events, world.exposures, ExperimentConfig(window_days=30))
    frame = frame.join(
        world.effects.select("customer_id", "type", "hazard", "tau_churn", "tau_value"),
        on="customer_id",
    )
    cutoff = world.exposures.get_column("timestamp").min()
    events = world.events.filter(pl.col("timestamp") < cutoff)
    vocabs = Vocabularies.build(events, ["action", "channel"])
    seqs = build_sequences(events, cutoff, vocabs, FeatureConfig(), LabelConfig(), customers=frame["customer_id"],
                           with_labels=False)  # fmt: skip
    x = pl.DataFrame({"customer_id": seqs.customer_id}).with_columns(
        pl.Series("_i", np.arange(len(seqs.customer_id)))
    )
    frame = frame.join(x, on="customer_id", how="inner").sort("_i")
    return seqs.aggregates.astype(np.float32), frame


CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def transformer_scores(world: SyntheticJourneys, fit_ids: pl.Series, test_ids: pl.Series, seed: int,
                       overrides: list[str], events: pl.DataFrame) -> tuple[dict[str, np.ndarray], dict]:  # fmt: skip
    """Train the Transformer with its uplift head on ``world``'s events and the exposures of
    ``fit_ids`` only; (uplift_retention, uplift_value) of ``test_ids`` at the exposure from
    their ``events``, in that order (0 for a customer without history), and the run's facts."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from journeyformer.data.labels.exposure_samples import BEFORE
    from journeyformer.model.runner import predict_sequences
    from journeyformer.pipelines import train

    assert world.exposures is not None
    with tempfile.TemporaryDirectory() as tmp:
        write_journeys(world, tmp)
        exposures = Path(tmp, "exposures_fit.parquet")
        world.exposures.filter(pl.col("customer_id").is_in(fit_ids.implode())).write_parquet(
            exposures
        )
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name="train", overrides=[
                f"data.path={tmp}/events.parquet", "data.synthetic=null", f"data.exposures={exposures}",
                f"seed={seed}", "logger=csv", "trainer.enable_progress_bar=false", *overrides])  # fmt: skip
        with open_dict(cfg):
            cfg.paths.output_dir = cfg.run_dir = str(Path(tmp, "run"))
        result = train(cfg)
        assert result.module is not None and result.data is not None
        at = world.exposures.get_column("timestamp").min()
        seqs = result.data.preprocessing.sequences(events, at - BEFORE, customers=test_ids,
                                                   with_labels=False, active_only=False)  # fmt: skip
        out = predict_sequences(result.module.net, seqs)
        curves = _val_curves(Path(tmp, "run"))
        facts = {"seconds": result.seconds, "val_curves": curves,
                 "val_uplift": (result.metrics.get("val") or {}).get("model", {}).get("uplift"),
                 "model": result.module.cfg.to_dict()["d_model"]}  # fmt: skip
    pos = pl.DataFrame({"customer_id": seqs.customer_id, "_j": np.arange(len(seqs))})
    j = (
        pl.DataFrame({"customer_id": test_ids})
        .join(pos, on="customer_id", how="left")["_j"]
        .to_numpy()
    )
    have = ~np.isnan(j.astype(float))
    scores = {}
    for name in ("uplift_retention", "uplift_value"):
        v = np.zeros(len(test_ids), dtype=np.float64)
        v[have] = out[name][j[have].astype(int)]
        scores[name] = v
    return scores, facts


def _val_curves(run_dir: Path) -> dict[str, list[float]]:
    """Per-epoch validation loss and uplift Qini/AUUC of the run (the CSV logger's file)."""
    files = sorted(run_dir.rglob("metrics.csv"))
    if not files:
        return {}
    log = pl.read_csv(files[-1], infer_schema_length=None)
    cols = [c for c in log.columns if c in ("epoch", "val/loss") or c.startswith("val/uplift")]
    rows = log.select(cols).filter(pl.col("val/loss").is_not_null()) if "val/loss" in cols else log
    return {c: rows.get_column(c).to_list() for c in cols}


def truth_capture(truth: np.ndarray, score: np.ndarray, k: float = BUDGET) -> float:
    """Mean true effect of the top ``k`` by ``score`` minus the mean over all: the gain a
    contact list earns in expectation, free of the outcome noise Qini carries."""
    top = np.argsort(-score, kind="stable")[: max(1, int(round(k * len(score))))]
    return float(truth[top].mean() - truth.mean())


def _fit(x: np.ndarray, y: np.ndarray) -> lgb.LGBMRegressor:
    return lgb.LGBMRegressor(**PARAMS).fit(x, y)


def t_learner(x: np.ndarray, y: np.ndarray, t: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    m1, m0 = _fit(x[t == 1], y[t == 1]), _fit(x[t == 0], y[t == 0])
    return m1.predict(x_test) - m0.predict(x_test)


def x_learner(
    x: np.ndarray, y: np.ndarray, t: np.ndarray, x_test: np.ndarray, p: float = 0.5
) -> np.ndarray:
    m1, m0 = _fit(x[t == 1], y[t == 1]), _fit(x[t == 0], y[t == 0])
    d1 = y[t == 1] - m0.predict(x[t == 1])  # imputed effects of the treated
    d0 = m1.predict(x[t == 0]) - y[t == 0]  # and of the controls
    tau1, tau0 = _fit(x[t == 1], d1), _fit(x[t == 0], d0)
    return p * tau0.predict(x_test) + (1 - p) * tau1.predict(x_test)


CAUSALML = textwrap.dedent("""
    import sys, numpy as np
    from lightgbm import LGBMRegressor
    from causalml.inference.meta import BaseTRegressor, BaseXRegressor
    d = np.load(sys.argv[1]); params = {params!r}
    out = {{}}
    for name in ("retention", "spend"):
        y = d["y_" + name]
        t = BaseTRegressor(learner=LGBMRegressor(**params), control_name=0)
        t.fit(d["x"], treatment=d["t"], y=y)
        out["causalml_t_" + name] = t.predict(d["x_test"]).ravel()
        xl = BaseXRegressor(learner=LGBMRegressor(**params), control_name=0)
        xl.fit(d["x"], treatment=d["t"], y=y, p=np.full(len(y), 0.5))
        out["causalml_x_" + name] = xl.predict(d["x_test"], p=np.full(len(d["x_test"]), 0.5)).ravel()
    np.savez(sys.argv[2], **out)
""")


def causalml_scores(
    python: str, x: np.ndarray, t: np.ndarray, ys: dict[str, np.ndarray], x_test: np.ndarray
) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst, script = Path(tmp, "in.npz"), Path(tmp, "out.npz"), Path(tmp, "fit.py")
        np.savez(src, x=x, t=t, x_test=x_test, **{f"y_{k}": v for k, v in ys.items()})
        script.write_text(CAUSALML.format(params=PARAMS))
        subprocess.run([python, str(script), str(src), str(dst)], check=True)
        return dict(np.load(dst))


def latent_scores(
    frame: pl.DataFrame, x: np.ndarray, ys: dict[str, np.ndarray], t: np.ndarray, test: np.ndarray
) -> dict[str, dict[str, np.ndarray]]:
    """outcome -> {latent_type, latent_x, history_type} on the held-out rows (see the module
    docstring)."""
    fit = ~test
    types, codes = np.unique(frame["type"].to_numpy(), return_inverse=True)
    onehot = np.eye(len(types), dtype=np.float32)[codes]
    xl = np.hstack([x, onehot, np.log(frame["hazard"].to_numpy())[:, None].astype(np.float32)])
    # the type as the history reveals it: a classifier on the aggregates, taught the true types
    # of the fitting customers, gives each held-out customer P(type)
    p_type = lgb.LGBMClassifier(**PARAMS).fit(x[fit], codes[fit]).predict_proba(x[test])
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, y in ys.items():
        means = np.array([y[fit & (codes == k) & (t == 1)].mean() - y[fit & (codes == k) & (t == 0)].mean()
                          for k in range(len(types))])  # fmt: skip
        out[name] = {"latent_type": means[codes[test]],
                     "latent_x": x_learner(xl[fit], y[fit], t[fit], xl[test]),
                     "history_type": p_type @ means}  # fmt: skip
    return out


def _boot(
    values: dict[str, np.ndarray], y: np.ndarray, t: np.ndarray, metric, n_boot: int, seed: int
) -> dict[str, np.ndarray]:  # noqa: ANN001
    rng = np.random.default_rng(seed)
    draws = {k: np.empty(n_boot) for k in values}
    for b in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        for k, s in values.items():
            draws[k][b] = metric(y[idx], t[idx], s[idx])
    return draws


def run_seed(
    seed: int,
    n: int,
    causalml: str | None,
    n_boot: int,
    transformer: list[str] | None = None,
    fit_customers: int | None = None,
    latent: bool = False,
) -> dict:
    start = time.time()
    world = generate_journeys(SyntheticConfig(n_customers=n, seed=seed, world="campaigns"))
    x, frame = features(world)
    rng = np.random.default_rng(seed + 1000)
    ids = frame["customer_id"]
    if fit_customers is None:  # half of the eligible customers each; training sees every event
        test = rng.random(len(x)) < 0.5
        train_world = world
    else:  # fit on a random ``fit_customers`` of the world (only their events), test on the rest
        everyone = world.customers.get_column("customer_id").to_numpy()
        fit = pl.Series(rng.choice(everyone, size=fit_customers, replace=False))
        keep = pl.col("customer_id").is_in(fit.implode())
        test = ~frame.select(keep).to_series().to_numpy()
        train_world = dataclasses.replace(world, events=world.events.filter(keep),
                                          customers=world.customers.filter(keep), stages=world.stages.filter(keep))  # fmt: skip
    net, run = (
        transformer_scores(train_world, ids.filter(~test), ids.filter(test), seed, transformer, world.events)
        if transformer is not None
        else ({}, {})
    )
    net_names = {"retention": "uplift_retention", "spend": "uplift_value"}
    t = frame["t"].to_numpy().astype(int)
    ys = {"retention": 1.0 - frame["churn"].to_numpy(), "spend": frame["spend"].to_numpy()}
    truth = {"retention": -frame["tau_churn"].to_numpy(), "spend": frame["tau_value"].to_numpy()}
    ext = (
        causalml_scores(causalml, x[~test], t[~test], {k: v[~test] for k, v in ys.items()}, x[test])
        if causalml
        else {}
    )
    ref = latent_scores(frame, x, ys, t, test) if latent else {}
    risk = lgb.LGBMClassifier(**PARAMS).fit(
        x[~test][t[~test] == 0], frame["churn"].to_numpy()[~test][t[~test] == 0]
    )
    churn_risk = risk.predict_proba(x[test])[:, 1]
    out: dict = {
        "seed": seed,
        "customers": len(x),
        "held_out": int(test.sum()),
        "outcomes": {},
        "transformer_run": run,
    }
    for name, y in ys.items():
        yt, tt = y[test], t[test]
        scores = {
            "oracle": truth[name][test],
            "t_learner": t_learner(x[~test], y[~test], t[~test], x[test]),
            "x_learner": x_learner(x[~test], y[~test], t[~test], x[test]),
            **{k.rsplit("_", 1)[0]: v for k, v in ext.items() if k.endswith(name)},
            **({"transformer": net[net_names[name]]} if net else {}),
            **ref.get(name, {}),
            "churn_risk": churn_risk,
            "random": np.random.default_rng(seed).random(int(test.sum())),
        }
        row: dict = {}
        qini = _boot(scores, yt, tt, U.qini_coefficient, n_boot, seed)
        gain = _boot(
            scores, yt, tt, lambda a, b, s: U.incremental_value(a, b, s, BUDGET), n_boot, seed
        )
        for k, s in scores.items():
            row[k] = {"qini": U.qini_coefficient(yt, tt, s), "auuc": U.auuc(yt, tt, s),
                      "uplift_at_30": U.uplift_at_k(yt, tt, s, BUDGET),
                      "incremental_at_budget": U.incremental_value(yt, tt, s, BUDGET),
                      "incremental_ci": list(np.percentile(gain[k], [2.5, 97.5])),
                      # noise-free: the true effects of whom each score ranks first
                      "true_gain_at_30": truth_capture(truth[name][test], s),
                      "true_rank_corr": float(spearman(s, truth[name][test]))}  # fmt: skip
        metas = [k for k in scores if k.endswith("learner") or k.startswith("causalml")]
        best = max(metas, key=lambda k: row[k]["qini"])
        room = qini["oracle"] - qini[best]
        row["room"] = {"best_meta": best, "oracle_minus_best": row["oracle"]["qini"] - row[best]["qini"],
                       "ci": list(np.percentile(room, [2.5, 97.5])),
                       "best_share_of_oracle": row[best]["qini"] / row["oracle"]["qini"]}  # fmt: skip
        for k in ("transformer", "latent_type", "latent_x", "history_type"):  # share of the oracle's Qini
            if k in scores:
                row[k]["share_of_oracle"] = row[k]["qini"] / row["oracle"]["qini"]
        if "transformer" in scores:  # the head against the best meta-learner, paired draws
            d = qini["transformer"] - qini[best]
            row["transformer_vs_best"] = {
                "best_meta": best, "delta": row["transformer"]["qini"] - row[best]["qini"],
                "ci": list(np.percentile(d, [2.5, 97.5])),
                "share_of_oracle": row["transformer"]["share_of_oracle"]}  # fmt: skip
        for rule in ("churn_risk", "random"):
            d = gain[best] - gain[rule]
            row[f"{best}_minus_{rule}_incremental"] = {
                "delta": row[best]["incremental_at_budget"] - row[rule]["incremental_at_budget"],
                "ci": list(np.percentile(d, [2.5, 97.5]))}  # fmt: skip
        out["outcomes"][name] = row
    out["seconds"] = time.time() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--causalml", default=None, help="a Python with causalml installed")
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--transformer", action="store_true", help="train and score the uplift head"
    )
    parser.add_argument("--train-overrides", nargs="*", default=[], help="train config overrides")
    parser.add_argument(
        "--fit-customers", type=int, default=None,
        help="fit on this many random customers of the world (their events only) and hold out "
        "every other eligible customer (default: half of the eligible customers each)",
    )  # fmt: skip
    parser.add_argument("--latent", action="store_true",
                        help="add the latent-state references latent_type, latent_x and history_type")
    args = parser.parse_args()
    print(f"CPU: {cpu_line()}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    results = []
    for seed in args.seeds:
        r = run_seed(
            seed,
            args.customers,
            args.causalml,
            args.boot,
            args.train_overrides if args.transformer else None,
            args.fit_customers,
            args.latent,
        )
        results.append(r)
        print(
            f"\nseed {seed}: {r['customers']} eligible customers, {r['held_out']} held out ({r['seconds']:.0f} s)"
        )
        if r["transformer_run"].get("val_curves"):
            print(f"  transformer validation per epoch: {r['transformer_run']['val_curves']}")
        for name, row in r["outcomes"].items():
            print(
                f"  {name}: {'score':<12} {'qini':>9} {'auuc':>9} {'upl@30%':>9} {'incr@30% [95% CI]':>30}"
            )
            for k, v in row.items():
                if isinstance(v, dict) and "qini" in v:
                    ci = v["incremental_ci"]
                    print(f"  {'':<{len(name)}}  {k:<12} {v['qini']:>9.4f} {v['auuc']:>9.4f} {v['uplift_at_30']:>9.4f} "
                      f"{v['incremental_at_budget']:>9.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]  true gain@30% "
                      f"{v['true_gain_at_30']:+.5f} ({v['true_gain_at_30'] / row['oracle']['true_gain_at_30']:.0%} "
                      f"of the oracle), rank corr. with the truth {v['true_rank_corr']:+.3f}"
                      + (f", Qini {v['share_of_oracle']:.0%} of the oracle's" if "share_of_oracle" in v else ""))  # fmt: skip
            if "transformer_vs_best" in row:
                tv = row["transformer_vs_best"]
                print(f"  transformer - {tv['best_meta']} Qini = {tv['delta']:+.4f} [{tv['ci'][0]:+.4f}, "
                      f"{tv['ci'][1]:+.4f}]; transformer reaches {tv['share_of_oracle']:.0%} of the oracle")  # fmt: skip
            room = row["room"]
            print(f"  room: oracle - {room['best_meta']} Qini = {room['oracle_minus_best']:+.4f} "
                  f"[{room['ci'][0]:+.4f}, {room['ci'][1]:+.4f}]; best meta-learner reaches "
                  f"{room['best_share_of_oracle']:.0%} of the oracle")  # fmt: skip
            for rule in ("churn_risk", "random"):
                d = row[f"{room['best_meta']}_minus_{rule}_incremental"]
                print(f"  incremental at 30% budget, {room['best_meta']} - {rule}: {d['delta']:+.4f} "
                      f"[{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]")  # fmt: skip
    if args.out:
        Path(args.out).write_text(
            json.dumps({"cpu": cpu_line(), "results": results}, indent=1, default=float)
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
