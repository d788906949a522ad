"""One alert as a self-contained HTML page (``market-surveillance alerts report``): the drill-down charts
(interactive, plotly.js embedded once so the page works offline and can be attached to a case or mailed),
the evidence, the order-book replay, the accounts and the cases holding the alert with their audit trail."""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import Any

import pandas as pd

from market_surveillance.dashboard.data import RunData
from market_surveillance.dashboard.queue import fmt_ts, tidy_frame

__all__ = ["alert_report_html", "find_alert", "write_alert_report"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.4em 0 1em; }
th, td { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } .meta { color: #666; font-size: 0.85em; }
"""


def find_alert(run: RunData, alert_id: str) -> pd.Series:
    """The alert with this id, or the only one whose id starts with it (queue labels show 10 characters).

    Raises ``KeyError`` with a one-line reason when none or several match.
    """
    ids = run.alerts["alert_id"].astype(str)
    hit = run.alerts[ids == alert_id]
    if hit.empty:
        hit = run.alerts[ids.str.startswith(alert_id)]
    if hit.empty:
        raise KeyError(
            f"alert {alert_id} not found in {run.db_url if run.store is not None else run.data_dir}"
        )
    if len(hit) > 1:
        raise KeyError(f"alert id prefix {alert_id} matches {len(hit)} alerts: give more characters")
    return hit.iloc[0]


def _table(df: pd.DataFrame | None, caption: str) -> str:
    if df is None or df.empty:
        return f"<p><i>{html.escape(caption)}: none</i></p>"
    body = tidy_frame(df, ms_cols=("ts",)).to_html(index=False, border=0, escape=True)
    return f"<h3>{html.escape(caption)} ({len(df)})</h3>{body}"


def _figure(fig: Any) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def alert_report_html(run: RunData, alert_id: str) -> str:
    """The page for one alert of ``run`` (see the module docstring). Deterministic but for the
    "generated" line: the same store and data give the same page."""
    from plotly.offline import get_plotlyjs

    from market_surveillance.dashboard.drill import (
        account_panel,
        book_replay_figure,
        drilldown_figure,
        evidence_orders,
        evidence_trades,
    )
    from market_surveillance.dashboard.plots import alert_summary, score_distribution_figure
    from market_surveillance.dashboard.queue import queue_priority

    alert = find_alert(run, alert_id)
    aid = str(alert["alert_id"])
    summary = alert_summary(alert)
    prio = queue_priority(run.alerts)
    summary["priority"] = float(prio[run.alerts["alert_id"] == aid].iloc[0])
    parts = [
        f"<h1>Alert {html.escape(aid)}: {html.escape(str(alert['rule_name']))}</h1>",
        f"<p class='meta'>generated {fmt_ts(dt.datetime.now(dt.UTC))} UTC from {html.escape(str(run.data_dir))}"
        f" and {html.escape(run.db_url if run.store is not None else 'no store')}</p>",
        _table(pd.DataFrame({"field": summary.index, "value": summary.to_numpy()}), "alert"),
        "<h2>Market around the alert</h2>",
        _figure(drilldown_figure(alert, run.trades, run.orders)),
        "<h2>Evidence</h2>",
        _table(evidence_trades(alert, run.trades), "evidence trades"),
        _table(
            evidence_orders(alert, run.orders) if run.orders is not None else None, "evidence order events"
        ),
    ]
    if run.orders is not None:
        parts += ["<h2>Order-book replay</h2>", _figure(book_replay_figure(alert, run.orders))]
    panel = account_panel(alert, run.tables, run.store)
    parts.append("<h2>Accounts</h2>")
    for key, caption in (
        ("profile", "profile"),
        ("counterparties", "counterparties (±1 day)"),
        ("recent", "recent trades"),
        ("other_alerts", "other alerts of these accounts"),
        ("cases", "cases of this alert and those"),
    ):
        parts.append(_table(panel[key], caption))
    if run.scores is not None:
        scored = set(run.scores["account_id"].astype(str))
        account = next(
            (a for a in (alert["accounts"] if alert["accounts"] is not None else []) if a in scored), None
        )
        if account is not None:
            parts += [
                "<h2>ML anomaly score</h2>",
                _figure(score_distribution_figure(run.scores, account_id=account)),
            ]
    if run.store is not None:
        case_ids = list(alert.get("case_ids") if alert.get("case_ids") is not None else [])
        if case_ids:
            parts.append("<h2>Cases and audit trail</h2>")
        for cid in case_ids:
            case = run.store.case(cid)
            history = pd.DataFrame(
                [
                    {"at": e.at, "actor": e.actor, "action": e.action, "field": e.field, "old": e.old,
                     "new": e.new, "comment": e.comment}
                    for e in run.store.history(cid)
                ]
            )  # fmt: skip
            parts.append(
                _table(
                    history, f"case {cid} · {case.status} · {case.title} (assignee {case.assignee or '—'})"
                )
            )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>Alert {html.escape(aid)}</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )


def write_alert_report(
    alert_id: str, out: str | Path, data_dir: str | Path | None = None, db_url: str | None = None
) -> Path:
    """Write :func:`alert_report_html` for one alert of the run in ``data_dir`` / ``db_url`` to ``out``."""
    from market_surveillance.dashboard.data import load_run

    run = load_run(data_dir, db_url)
    try:
        page = alert_report_html(run, alert_id)
    finally:
        if run.store is not None:
            run.store.dispose()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
