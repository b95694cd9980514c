"""The report directory: metrics.json, report.html (self-contained) and the PNG plots."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from journeyformer.config import events_path, schema_overrides
from journeyformer.evaluation import render
from journeyformer.evaluation.decisions import decision_html, decision_plots, run_evaluations
from journeyformer.evaluation.evaluate import Evaluation
from journeyformer.extras import require
from journeyformer.inference.loop import BULK_BATCH_SIZE
from journeyformer.io import atomic_dir
from journeyformer.publish import OutputPlan, check_dir_output


def make_plots(ev: Evaluation) -> dict[str, tuple[str, bytes]]:
    """File name -> (caption, PNG bytes): the plots every enabled task asks for (needs the
    ``[report]`` extra)."""
    require("report", "the plots of the evaluation report")
    from journeyformer.evaluation import plots  # matplotlib: imported only when drawing

    y = ev.test.labels
    assert y is not None
    ctx = ev.bundle.context()
    out: dict[str, tuple[str, bytes]] = {}
    for task in ev.bundle.tasks:
        for plot in task.plots(y[task.name], ev.outputs, ev.baselines.get(task.name, {}), ctx):
            draw = getattr(plots, plot.kind)
            out[plot.file] = (plot.caption, draw(**plot.args))
    return {**out, **decision_plots(ev.metrics)}


def render_html(ev: Evaluation, pngs: dict[str, tuple[str, bytes]]) -> str:
    m = ev.metrics
    header, rows = render.metric_rows(m)
    parts = [
        f"<h1>journeyformer evaluation</h1><p>bundle <code>{html.escape(m['bundle'])}</code>, input "
        f"<code>{html.escape(m['input'])}</code>, as_of {html.escape(m['as_of'])}, horizon "
        f"{m['horizon_days']:g} days.</p>",
        *(f"<p>{html.escape(line)}</p>" for line in render.header_lines(m)),
        f"<p>decisions (thresholds) tuned on the {html.escape(m['decisions_tuned_on'])}</p>",
    ]
    parts += [f"<p class='warn'>Warning: {html.escape(w)}</p>" for w in m.get("warnings", [])]
    parts += ["<h2>Model and baselines</h2>", render.html_table(header, rows), "<p>* headline metric of the task</p>"]
    parts += ["<pre>" + html.escape("\n".join(render.interval_lines(m))) + "</pre>"]
    for task in ev.bundle.tasks:
        for t in task.decision_tables(m):
            parts += [f"<h2>{html.escape(t.title)}</h2>", render.html_table(t.header, t.rows)]
    parts.append(decision_html(m))
    parts.append("<h2>Plots</h2>")
    parts += [render.html_figure(base64.b64encode(png).decode(), caption, name) for name, (caption, png) in pngs.items()]
    return render.html_page("journeyformer evaluation", render.PAGE_STYLE + render.FIGURE_STYLE, parts)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_report(ev: Evaluation, out_dir: str | Path) -> Path:
    """Write metrics.json, report.html and the PNGs into ``out_dir``, all or nothing.

    Built in a temporary directory beside ``out_dir`` and moved into place at the end; an
    existing report there is replaced.
    """
    out = check_dir_output(out_dir, "output", "report.html", "evaluation")
    pngs = make_plots(ev)
    with atomic_dir(out) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(ev.metrics, indent=1, default=_json_default))
        for name, (_, png) in pngs.items():
            (tmp / name).write_bytes(png)
        (tmp / "report.html").write_text(render_html(ev, pngs))
    return out


def evaluate_from_config(cfg: dict[str, Any]) -> tuple[Evaluation, Path]:
    """``configs/evaluate.yaml`` as a plain dict -> the evaluation and its report directory."""
    from journeyformer.evaluation.evaluate import evaluate_bundle, load_input

    require("report", "journeyformer evaluate (the plots of report.html)")  # before scoring
    events = events_path(cfg, "evaluate")
    out = cfg.get("output") or str(Path(cfg["bundle"]) / "report")
    # Refused before any work: a directory we did not make, or one holding the input.
    plan = OutputPlan.dir_unit(out, "report.html", "evaluation", [events, cfg["bundle"]])
    plan.check()
    plan.clean()

    # The bundle loaded and the events read once, for every as_of of a backtest.
    source = load_input(cfg["bundle"], events, schema_overrides(cfg), str(cfg.get("device", "cpu")),
                        int(cfg.get("batch_size", BULK_BATCH_SIZE)))  # fmt: skip

    def evaluate_one(as_of: Any) -> Evaluation:
        return evaluate_bundle(None, source, as_of=as_of, progress=bool(cfg.get("progress", True)))

    # One as_of, or a backtest; plus the segment table and transitions (evaluation/decisions.py).
    ev = run_evaluations(cfg, evaluate_one, source)
    return ev, write_report(ev, out)
