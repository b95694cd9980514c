"""monitor.html: the drift report as one self-contained page (PNG plots embedded).

Plots need matplotlib (the ``[report]`` extra); without it the page has the tables only and
says so, so a scheduler on the base install still gets its page and exit status.
"""

from __future__ import annotations

import base64
import html
import io
import math

from journeyformer.extras import missing
from journeyformer.monitoring.drift import DriftReport

COLORS = {"ok": "#4c9a5b", "warn": "#e0a030", "drift": "#c8423b"}
N_BARS = 30  # columns in the PSI chart
N_DETAIL = 6  # columns whose bins are drawn


def _png(fig) -> str:  # noqa: ANN001 - a matplotlib Figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def plots(report: DriftReport) -> dict[str, str]:
    """Caption -> base64 PNG: the PSI of the worst columns, and the bins of the worst few."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = {}
    cols = [c for c in report.columns if not math.isnan(c.shift.psi)][:N_BARS]
    if cols:
        fig, ax = plt.subplots(figsize=(8, 0.25 * len(cols) + 1.2))
        y = np.arange(len(cols))[::-1]
        ax.barh(y, [c.shift.psi for c in cols], color=[COLORS[c.status] for c in cols])
        ax.set_yticks(y, [c.name for c in cols], fontsize=7)
        for x, style in ((report.thresholds.psi_warn, ":"), (report.thresholds.psi_drift, "--")):
            ax.axvline(x, color="k", linestyle=style, linewidth=0.8)
        ax.set_xlabel("PSI (dotted: warn, dashed: drift)")
        ax.set_title(f"The {len(cols)} columns that moved most")
        out["Population stability index of the columns that moved most"] = _png(fig)
    detail = cols[:N_DETAIL]
    if detail:
        fig, axes = plt.subplots(len(detail), 1, figsize=(8, 2.0 * len(detail)))
        for ax, c in zip(np.atleast_1d(axes), detail, strict=True):
            keep = [i for i, (r, a) in enumerate(zip(c.shift.ref_shares, c.shift.shares, strict=True)) if r > 0 or a > 0]
            keep = sorted(keep, key=lambda i: -max(c.shift.ref_shares[i], c.shift.shares[i]))[:12]
            keep.sort()
            x = np.arange(len(keep))
            ax.bar(x - 0.2, [c.shift.ref_shares[i] for i in keep], 0.4, label="reference", color="#8899aa")
            ax.bar(x + 0.2, [c.shift.shares[i] for i in keep], 0.4, label="now", color=COLORS[c.status])
            ax.set_xticks(x, [c.shift.bins[i] for i in keep], fontsize=6, rotation=20, ha="right")
            ax.set_title(f"{c.name}: PSI {c.shift.psi:.3f}", fontsize=9)
            ax.legend(fontsize=7)
        fig.tight_layout()
        out["Shares per bin, reference (validation) vs now, for the columns that moved most"] = _png(fig)
    return out


def render_page(report: DriftReport) -> str:
    d = report.to_dict()
    status = report.status
    parts = [
        "<h1>journeyformer drift monitor</h1>",
        f"<p class='status' style='background:{COLORS[status]}'>status: {status.upper()}</p>",
        "<p>"
        + "<br>".join(
            f"<b>{html.escape(k)}</b>: {html.escape(str(d[k]))}"
            for k in ("bundle", "input", "as_of", "population", "reference", "n_customers", "thresholds", "columns_by_status")
            if k in d
        )
        + "</p>",
        "<p>PSI &lt; 0.1: stable; 0.1-0.25: a moderate shift (warn); &ge; 0.25: a significant shift "
        "(drift). KS: largest gap between the cumulative distributions (continuous columns), with "
        "its 1% critical value for these sample sizes.</p>",
    ]
    if missing("report"):
        parts.append("<p><i>Plots need matplotlib: pip install 'journeyformer[report]'.</i></p>")
    else:
        for caption, png in plots(report).items():
            parts.append(f"<figure><img src='data:image/png;base64,{png}'><figcaption>{html.escape(caption)}</figcaption></figure>")
    rows = []
    for c in report.columns:
        ks = "" if c.shift.ks is None else f"{c.shift.ks:.3f}"
        crit = "" if c.ks_critical is None else f"{c.ks_critical:.3f}"
        rows.append(
            f"<tr><td>{html.escape(c.name)}</td><td>{c.kind}</td>"
            f"<td style='color:{COLORS[c.status]}'><b>{c.status}</b></td>"
            f"<td>{c.shift.psi:.4f}</td><td>{ks}</td><td>{crit}</td><td>{c.shift.n}</td></tr>"
        )
    parts.append(
        "<h2>Every column, worst first</h2><table><thead><tr><th>column</th><th>kind</th>"
        "<th>status</th><th>PSI</th><th>KS</th><th>KS 1% critical</th><th>n</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:2px 6px}"
        ".status{color:white;padding:0.4em 1em;display:inline-block;font-weight:bold}"
        "img{max-width:100%}figure{margin:1.5em 0}"
    )
    return f"<!doctype html><html><head><meta charset='utf-8'><title>journeyformer drift monitor</title><style>{style}</style></head><body>{''.join(parts)}</body></html>"
