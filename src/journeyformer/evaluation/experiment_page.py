"""The experiment job: inputs -> :mod:`journeyformer.evaluation.experiment` -> experiment.json
and experiment.html (self-contained, in the style of the evaluation report), and with
``feedback=<path>.parquet`` the labelled exposure log of the campaign for the next training run
(:func:`journeyformer.evaluation.experiment.labelled_exposures`, written atomically)."""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

import polars as pl

from journeyformer.data.events.exposures import ExposureSchema, load_exposures
from journeyformer.data.events.load import load_events
from journeyformer.data.events.schema import EventSchema
from journeyformer.errors import OutputError
from journeyformer.evaluation.experiment import (
    FEEDBACK_COLUMNS,
    OUTCOMES,
    ExperimentConfig,
    analyse,
    attach,
    customer_frame,
    labelled_exposures,
    pick_campaign,
)
from journeyformer.evaluation.render import PAGE_STYLE, html_page
from journeyformer.evaluation.render import html_table as _table
from journeyformer.io import atomic_write_parquet
from journeyformer.publish import OutputPlan, check_file_output, clean_stale

log = logging.getLogger(__name__)

MARKER = "experiment.html"


def _ci(d: dict[str, float]) -> str:
    return f"{d['effect']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"


def effect_rows(result: dict[str, Any]) -> list[list[Any]]:
    """outcome | control mean | treatment mean | plain effect [CI] | CUPED effect [CI] |
    covariate | variance reduction."""
    return [
        [o, r["plain"]["mean_control"], r["plain"]["mean_treatment"], _ci(r["plain"]), _ci(r["cuped"]),
         r["covariate"], f"{r['variance_reduction']:.1%}"]
        for o, r in result["outcomes"].items()
    ]  # fmt: skip


def render_text(result: dict[str, Any]) -> str:
    """The terminal summary: the effects table and the warnings."""
    lines = [f"campaign {result['campaign']}: {result['n_treatment']} treated, {result['n_control']} "
             f"control, outcomes over {result['window_days']:g} days after exposure"]  # fmt: skip
    lines += [f"WARNING: {w}" for w in result["warnings"]]
    lines.append(
        f"{'outcome':<11} {'plain effect [95% CI]':<34} {'CUPED effect [95% CI]':<34} var.red."
    )
    for o, _c, _t, plain, cup, _cov, vr in effect_rows(result):
        lines.append(f"{o:<11} {plain:<34} {cup:<34} {vr}")
    if not result["warnings"]:
        lines.append("arms balanced on pre-period features")
    return "\n".join(lines)


def render_html(result: dict[str, Any]) -> str:
    parts = [
        f"<h1>journeyformer experiment: {html.escape(result['campaign'])}</h1>",
        f"<p>events <code>{html.escape(result['input'])}</code>, exposures "
        f"<code>{html.escape(result['exposures'])}</code>; {result['n_treatment']} treated and "
        f"{result['n_control']} control eligible customers; outcomes over {result['window_days']:g} days "
        "after each exposure. Intervals: 95%, normal (Welch).</p>",
    ]
    parts += [f"<p class='warn'>Warning: {html.escape(w)}</p>" for w in result["warnings"]]
    effects = ["outcome", "control mean", "treatment mean", "plain difference [95% CI]", "CUPED [95% CI]",
               "CUPED covariate", "variance reduction"]  # fmt: skip
    parts += [
        "<h2>Effects (treatment minus control)</h2>",
        _table(effects, effect_rows(result)),
        "<p>CUPED subtracts theta (x - mean x) from each outcome, x the covariate measured before "
        "the exposure; the variance reduction is 1 - (se CUPED / se plain)^2.</p>",
    ]
    if result["segments"]:
        rows = [[seg, o, r["n"], _ci(r[o]["plain"]), _ci(r[o]["cuped"])]
                for seg, r in result["segments"].items() for o in OUTCOMES]  # fmt: skip
        parts += [
            "<h2>Per segment</h2>",
            _table(["segment", "outcome", "customers", "plain [95% CI]", "CUPED [95% CI]"], rows),
        ]
    rows = [[o, p["mean_control"], p["sd_control"], s["relative_effect"], s["absolute_effect"], s["customers_plain"],
             s["customers_cuped"]] for o, p in result["power"].items() for s in p["sizes"]]  # fmt: skip
    power = ["outcome", "control mean", "control sd", "relative effect", "absolute effect", "customers needed",
             "with CUPED"]  # fmt: skip
    parts += [
        f"<h2>Power (alpha {result['alpha']}, power {result['power_target']})</h2>",
        _table(power, rows),
        _table(["outcome", "smallest detectable effect", "with CUPED"],
               [[o, p["mde_plain"], p["mde_cuped"]] for o, p in result["power"].items()]),  # fmt: skip
    ]
    if "policies" in result:
        p = result["policies"]
        reach = (f"top {p['budget_share']:.0%} contacted" if p.get("budget") is None else
                 f"budget {p['budget']:g} (at most {p['max_contacts']} contacts; by net value: "
                 f"{', '.join(p['net_value']) or 'none'})")  # fmt: skip
        rows = [[name, v.get("contacted", ""), v["value_per_customer"], f"[{v['low']:+.4f}, {v['high']:+.4f}]",
                 f"{v['minus_random']:+.4f} [{v['minus_random_low']:+.4f}, {v['minus_random_high']:+.4f}]"]
                for name, v in p["policies"].items()]  # fmt: skip
        header = ["policy (score)", "contacted", "incremental per customer", "95% CI", "minus random [95% CI]"]
        parts += [
            f"<h2>Targeting policies: incremental {html.escape(p['outcome'])} per customer, {reach} "
            f"at {p['contact_cost']:g} per contact</h2>",
            _table(header, rows),
        ]
    b = result["balance"]
    srm = "not tested (no planned treated_share)" if b["sample_ratio_p"] is None else f"p = {b['sample_ratio_p']:.3g}"
    parts += [
        "<h2>Balance of the arms before the exposure</h2>",
        f"<p>{'balanced' if b['balanced'] else 'NOT balanced'}; sample ratio: {html.escape(srm)}; "
        f"features flagged above |0.1| standard deviations: {html.escape(', '.join(b['flagged']) or 'none')}</p>",
        _table(["feature", "standardized difference"], [[f, d] for f, d in b["standardized_difference"].items()]),
    ]
    return html_page("journeyformer experiment", PAGE_STYLE, parts)


def _read_table(path: str) -> pl.DataFrame:
    return pl.read_csv(path) if str(path).endswith((".csv", ".tsv")) else pl.read_parquet(path)


def run_experiment(cfg: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """``configs/campaign_experiment.yaml`` as a plain dict -> the result and the output dir."""
    out = cfg.get("output") or "experiment"
    exposures_cfg = dict(cfg.get("exposures") or {})
    inputs = [cfg["input"], exposures_cfg.get("path"), cfg.get("predictions")]
    plan = OutputPlan.dir_unit(out, MARKER, "experiment", inputs)
    plan.check()
    plan.clean()
    exp = ExperimentConfig.from_config(cfg)
    feedback = cfg.get("feedback") or None
    if feedback is not None:
        check_feedback_output(str(feedback), inputs, out)
        clean_stale([feedback])
    events = load_events(cfg["input"], EventSchema.from_config(cfg.get("data") or {}))
    log_path = str(exposures_cfg["path"])
    everything = load_exposures(log_path, ExposureSchema.from_config(exposures_cfg))
    exposures = pick_campaign(everything, exp.campaign, log_path)
    frame = customer_frame(events, exposures, exp, str(cfg["input"]))
    predictions = _read_table(cfg["predictions"]) if cfg.get("predictions") else None
    seg_cfg = dict(cfg.get("segments") or {})
    segments = None
    if seg_cfg.get("path"):
        segments = _read_table(seg_cfg["path"]).rename({seg_cfg.get("column", "segment"): "segment"})
    elif predictions is not None and "segment" in predictions.columns:
        segments = predictions.select("customer_id", "segment")
    frame, covariates = attach(frame, predictions, segments, exp, str(cfg.get("predictions")))
    result = analyse(frame, exp, covariates, log_path)
    result |= {"campaign": exposures.get_column("campaign")[0], "input": str(cfg["input"]),
               "exposures": log_path, "predictions": cfg.get("predictions"), "alpha": exp.alpha,
               "power_target": exp.power}  # fmt: skip
    if feedback is not None:
        campaign = result["campaign"]
        rows = everything.filter(pl.col("campaign") == campaign)
        check_feedback_output(str(feedback), inputs, out, campaign)
        labelled = labelled_exposures(rows, frame, exp)
        atomic_write_parquet(feedback, labelled)
        result["feedback"] = {"path": str(feedback), "rows": labelled.height,
                              "labelled": int(labelled.get_column("eligible").sum())}  # fmt: skip
        log.info("feedback: %s, %d exposures of campaign %r (%d labelled); add it to the "
                 "data.exposures of the next training run", feedback, labelled.height, campaign,
                 result["feedback"]["labelled"])  # fmt: skip
    with plan.publish() as tmp:
        (tmp / "experiment.json").write_text(json.dumps(result, indent=1, default=float))
        (tmp / MARKER).write_text(render_html(result))
    return result, Path(out)


def check_feedback_output(path: str, inputs: list[Any], out: str, campaign: str | None = None) -> None:
    """Refuse a ``feedback=`` path that is an input, inside an input directory or the output
    directory, that is not a ``.parquet`` file, or that exists and is not a labelled exposure
    log of ``campaign`` (when known) written by ``experiment``: never replace what the job
    did not write."""
    if not path.endswith(".parquet"):
        raise OutputError(f"feedback={path}: give a .parquet file path (the labelled exposure log)")
    check_file_output(path, "feedback", inputs)
    target, where = Path(path).resolve(), Path(out).resolve()
    if target == where or target.is_relative_to(where):
        raise OutputError(f"feedback={path} is inside output={out}, which the experiment "
                          "replaces as a whole; write it elsewhere")  # fmt: skip
    if not target.exists():
        return
    try:
        old = pl.read_parquet_schema(target)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is not ours
        raise OutputError(f"feedback={path} exists and is not a Parquet file ({exc}); "
                          "choose a new path") from exc  # fmt: skip
    if not set(FEEDBACK_COLUMNS) <= set(old):
        raise OutputError(
            f"feedback={path} exists and is not a labelled exposure log written by experiment "
            f"(no {list(FEEDBACK_COLUMNS)} columns); choose a new path, one per campaign"
        )
    if campaign is not None:
        held = pl.read_parquet(target, columns=["campaign"]).get_column("campaign").unique().to_list()
        if held != [campaign]:
            raise OutputError(
                f"feedback={path} holds the labelled exposures of campaign(s) {sorted(held)}, "
                f"not {campaign!r}; replacing it would lose them. Choose one file per campaign"
            )
