"""The analyst's alert queue: which alerts to show, in which order, and how to print their fields.

Priority is 0–100 and comparable across rules. When the store keeps a ``priority`` column on its alerts,
that is the truth; otherwise :func:`fallback_priority` ranks each alert's score within its own rule (a raw
score is not comparable across rules: a self-trade count of 72 and an ML score of 0.005 say nothing about
each other). Alerts muted in the store (a ``muted`` flag or a ``suppression_id``) stay stored but are not queued.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "alert_label",
    "fallback_priority",
    "fmt",
    "fmt_ts",
    "queue",
    "queue_priority",
    "tidy_frame",
]

MISSING = "—"


def _missing(v: Any) -> bool:
    if v is None or v is pd.NaT or v is pd.NA:
        return True
    return isinstance(v, float) and math.isnan(v)


def fmt_ts(value: Any, *, ms: bool = False) -> str:
    """``2024-03-01 10:00:01`` (UTC; ``ms`` keeps milliseconds, for event sequences within a second)."""
    if _missing(value):
        return MISSING
    ts = pd.Timestamp(value)
    ts = ts.tz_convert("UTC") if ts.tzinfo is not None else ts
    return ts.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if ms else ts.strftime("%Y-%m-%d %H:%M:%S")


def fmt(value: Any, *, digits: int = 4) -> str:
    """A cell for a human: missing → ``—``, floats to ``digits`` significant figures (no ``5.8e-16`` for a
    value that is zero for every practical purpose), lists joined, timestamps to the second."""
    if isinstance(value, np.ndarray | list | tuple):
        return ", ".join(str(v) for v in value) or MISSING
    if _missing(value):
        return MISSING
    if isinstance(value, pd.Timestamp | dt.datetime):
        return fmt_ts(value)
    if isinstance(value, float | np.floating):
        x = float(value)
        if abs(x) < 1e-9:
            return "0"
        if abs(x) < 1000:
            return f"{x:.{digits}g}"
        return f"{x:,.2f}".rstrip("0").rstrip(".")  # prices and notionals: whole units and cents
    return str(value)


def tidy_frame(df: pd.DataFrame, *, ms_cols: tuple[str, ...] = ()) -> pd.DataFrame:
    """Every cell formatted with :func:`fmt` (``ms_cols`` timestamps keep milliseconds), for display."""
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        if c in ms_cols:
            out[c] = df[c].map(lambda v: fmt_ts(v, ms=True))
        else:
            out[c] = df[c].map(fmt)
    return out


def fallback_priority(alerts: pd.DataFrame) -> pd.Series:
    """0–100: the alert's score percentile among all alerts of its rule (ties share the higher rank).

    Used when the store has no ``priority`` column. Pass *every* stored alert, not a filtered view: the
    percentile is relative to the rule's history.
    """
    if alerts.empty:
        return pd.Series(dtype=float, index=alerts.index)
    pct = alerts.groupby("rule_id")["score"].rank(method="max", pct=True)
    return (100.0 * pct).round(1)


def queue_priority(alerts: pd.DataFrame) -> pd.Series:
    """The store's ``priority`` where it has one, else :func:`fallback_priority`."""
    fb = fallback_priority(alerts)
    if "priority" in alerts.columns:
        stored = pd.to_numeric(alerts["priority"], errors="coerce")
        return stored.fillna(fb)
    return fb


def queue(alerts: pd.DataFrame, *, include_muted: bool = False) -> pd.DataFrame:
    """Alerts with a ``priority`` column, muted ones dropped (unless asked), highest priority first
    (then score, then id, so the order is stable)."""
    a = alerts.copy()
    a["priority"] = queue_priority(a)
    if not include_muted:
        # the store flags a muted alert with a ``muted`` flag or the ``suppression_id`` of the mute
        if "muted" in a.columns:
            a = a[~a["muted"].fillna(False).astype(bool)]
        if "suppression_id" in a.columns:
            a = a[a["suppression_id"].isna()]
    return a.sort_values(["priority", "score", "alert_id"], ascending=[False, False, True], kind="stable")


def alert_label(r: Any) -> str:
    """One line per alert in the queue: priority, rule, asset@venue, window start, score, cases."""
    get = r.get if isinstance(r, dict) else (lambda k, d=None: getattr(r, k, d))
    cases = get("case_ids")
    cases = [] if cases is None or (isinstance(cases, float) and math.isnan(cases)) else list(cases)
    asset = get("asset")
    asset = MISSING if _missing(asset) else asset
    venue = get("venue")
    where = asset if _missing(venue) else f"{asset}@{venue}"
    prio = get("priority")
    head = f"P{float(prio):.0f} " if not _missing(prio) else ""
    return (
        f"{head}{get('alert_id')[:10]} {get('rule_name')} {where} {fmt_ts(get('window_start'))} "
        f"score={fmt(get('score'), digits=3)}" + (f" [{', '.join(cases)}]" if cases else "")
    )
