"""The one renderer of an evaluation: the same rows and the same header for every table.

:func:`metric_rows` gives task | metric | model | each baseline; :func:`header_lines` names the
population, the window the baselines were fitted on and a label-window warning; the terminal
table (:func:`render_text`, printed by the train and the evaluate jobs) and the HTML report
(:mod:`journeyformer.evaluation.report`) are both built from them. The input is the dict of
:func:`journeyformer.evaluation.protocol.score` / ``evaluate``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

BOOSTING_NOTE = "lightgbm = gradient boosting on aggregates"
# the report's and the experiment's pages
PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th{background:#f3f3f3}td:first-child,td:nth-child(2){text-align:left}.warn{color:#a40}"
)
FIGURE_STYLE = "img{max-width:100%}figure{margin:1.5em 0}"


def header_lines(result: Mapping[str, Any]) -> list[str]:
    """The population, the baselines' data and, when the labels are not the truth, why."""
    lines = [str(result["population"]), str(result["baselines_fitted_on"])]
    window = result.get("label_window") or {"status": "complete"}
    if window["status"] != "complete":
        lines.insert(0, (
            f"LABEL WINDOW {window['status'].upper()}: the labels need events up to "
            f"{window['ends'][:10]} but the data ends {str(window['last_event'])[:10]}; customers "
            "look inactive there, so the metrics below are not the truth and get no verdict"
        ))  # fmt: skip
    return lines


def metric_rows(result: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows task | metric (``*`` on the headline) | model | each baseline ("" where
    a baseline does not apply to the task)."""
    names = list(dict.fromkeys(n for task in result["baselines"].values() for n in task))
    rows = []
    for task, values in result["model"].items():
        for metric, value in values.items():
            star = "*" if result["headline"].get(task) == metric else ""
            scores = result["baselines"][task]
            base = [scores[n].get(metric, math.nan) if n in scores else "" for n in names]
            rows.append([task, metric + star, value, *base])
    return ["task", "metric", "model", *names], rows


def interval_lines(result: Mapping[str, Any]) -> list[str]:
    """Model minus the best baseline per task, with the bootstrap interval and the verdict."""
    lines = [
        "* headline metric per task. Model minus the best baseline, 95% paired bootstrap",
        "  interval over customers: beats = interval above 0, ties = contains 0, loses = below",
    ]
    for key in ("intervals", "intervals_without_boosting"):
        if key == "intervals_without_boosting" and result.get(key):
            lines.append("  and against the best simple baseline (without lightgbm):")
        for task, iv in result.get(key, {}).items():
            lines.append(
                f"  {task:<12} {iv['metric']:<9} vs {iv['baseline']:<26} {iv['delta']:+.4f} "
                f"[{iv['low']:+.4f}, {iv['high']:+.4f}]  {iv['verdict'].upper()}"
            )
    return lines


def _cell(v: Any) -> str:
    if v == "" or v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def render_text(result: Mapping[str, Any]) -> str:
    """The plain-text table: header lines, one row per task metric (model, then each
    baseline that applies, as name=value), then the bootstrap verdicts."""
    header, rows = metric_rows(result)
    names = header[3:]
    lines = [*header_lines(result), ""]
    lines.append(f"columns: model, then each baseline; {BOOSTING_NOTE}")
    lines.append(f"{'task':<12} {'metric':<9} {'model':>8}   baselines")
    lines.append("-" * 78)
    for task, metric, value, *base in rows:
        shown = "  ".join(f"{n}={_cell(b)}" for n, b in zip(names, base, strict=True) if b != "")
        lines.append(f"{task:<12} {metric:<9} {_cell(value):>8}   {shown}")
    lines.append("-" * 78)
    lines += interval_lines(result)
    return "\n".join(lines)


def html_cell(v: Any) -> str:
    """One table cell of the HTML pages (report, experiment): floats to 4 places, NaN as a dash."""
    if isinstance(v, float):
        return "&ndash;" if math.isnan(v) else f"{v:.4f}"
    return html.escape(str(v))


def html_table(header: list[str], rows: list[list[Any]], cell: Callable[[Any], str] = html_cell) -> str:
    """An HTML table of ``rows`` under ``header`` (cells by ``cell``, :func:`html_cell`)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_figure(png_base64: str, caption: str, alt: str = "") -> str:
    """An embedded PNG (base64) with its caption."""
    alt = f" alt='{alt}'" if alt else ""
    return (f"<figure><img src='data:image/png;base64,{png_base64}'{alt}>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")  # fmt: skip


def html_page(title: str, style: str, parts: Iterable[str]) -> str:
    """A self-contained HTML page: ``parts`` under ``title``, styled by ``style`` (CSS)."""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")  # fmt: skip
