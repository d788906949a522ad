"""Plotly figures for the monitoring notebook (returned, never shown, so they are testable and reusable).

Inputs are the canonical tables (Ibis tables as returned by :func:`market_surveillance.io.canonical.open_dir`,
Arrow tables or pandas frames) and alerts in :data:`market_surveillance.alerts.ALERT_SCHEMA` (one alert is a
mapping, e.g. a row of ``alerts.to_pylist()`` or a pandas row). Ibis inputs are filtered on the backend to the
alert's asset and time window before anything is pulled into pandas, so the figures stay cheap on large data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pyarrow as pa
from plotly.subplots import make_subplots

from market_surveillance.book import book_imbalance

__all__ = [
    "aggressor_volume_figure",
    "alert_counts_figure",
    "alert_figures",
    "alert_summary",
    "alert_window",
    "as_frame",
    "imbalance_figure",
    "pick_alert",
    "price_figure",
    "score_distribution_figure",
]

DEFAULT_PAD = dt.timedelta(minutes=10)
_BUY, _SELL, _EVIDENCE, _WINDOW = "#2ca02c", "#d62728", "#111111", "#ff7f0e"


# -- data access -------------------------------------------------------------------------------


def as_frame(data: Any) -> pd.DataFrame:
    """A pandas frame from an Arrow table, polars/pandas frame or Ibis table (executed)."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pa.Table):
        return data.to_pandas()
    if hasattr(data, "op") and hasattr(data, "to_pandas"):  # Ibis expression
        return data.to_pyarrow().to_pandas()
    if hasattr(data, "to_pandas"):
        return data.to_pandas()
    return pd.DataFrame(data)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT or v is pd.NA


def _alert(alert: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
    """The alert as a plain dict: missing scalars (NaN from pandas) as None, list columns as lists."""
    a = dict(alert.to_dict() if isinstance(alert, pd.Series) else alert)
    for k, v in a.items():
        if isinstance(v, np.ndarray | tuple):
            a[k] = list(v)
        elif not isinstance(v, list) and _missing(v):
            a[k] = None
    return a


def _focus(
    alert: Mapping[str, Any], table: Any, pad: dt.timedelta, account_cols: tuple[str, ...]
) -> dict[str, Any]:
    """The alert with an asset to plot: its own, else (account-level alerts, e.g. ML) the asset its accounts
    were most active in during the window, else the most active asset in the window."""
    a = _alert(alert)
    if a.get("asset") is not None:
        return a
    lo, hi = alert_window(a, pad)
    df = _window_rows(table, None, lo, hi, columns=("asset", *account_cols))
    accounts = set(a.get("accounts") or [])
    mine = df[df[list(account_cols)].isin(accounts).any(axis=1)] if accounts else df
    pool = mine if len(mine) else df
    if len(pool):
        a["asset"] = str(pool["asset"].value_counts().index[0])
        a["asset_inferred"] = True
    return a


def _ts(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def alert_window(
    alert: Mapping[str, Any], pad: dt.timedelta = DEFAULT_PAD
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The alert's window widened by ``pad`` on both sides (the context shown around it)."""
    a = _alert(alert)
    return _ts(a["window_start"]) - pad, _ts(a["window_end"]) + pad


def _window_rows(
    table: Any,
    asset: str | None,
    lo: pd.Timestamp | None,
    hi: pd.Timestamp,
    venue: str | None = None,
    columns: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """Rows of one asset (and venue) with ``lo <= ts <= hi`` (no lower bound when ``lo`` is None)."""
    if hasattr(table, "op"):  # Ibis: push the filter down to the backend
        t = table
        cond = [t.ts <= hi.to_pydatetime()]
        if lo is not None:
            cond.append(t.ts >= lo.to_pydatetime())
        if asset is not None:
            cond.append(t.asset == asset)
        if venue is not None:
            cond.append(t.venue == venue)
        t = t.filter(*cond)
        df = (t.select("ts", *columns) if columns else t).to_pyarrow().to_pandas()
    else:
        df = as_frame(table)
        keep = df["ts"] <= hi
        if lo is not None:
            keep &= df["ts"] >= lo
        if asset is not None:
            keep &= df["asset"] == asset
        if venue is not None:
            keep &= df["venue"] == venue
        df = df[keep]
    return df.sort_values("ts", kind="stable").reset_index(drop=True)


def _shade(fig: go.Figure, a: Mapping[str, Any]) -> None:
    fig.add_vrect(
        x0=_ts(a["window_start"]),
        x1=_ts(a["window_end"]),
        fillcolor=_WINDOW,
        opacity=0.15,
        line_width=0,
        annotation_text="alert window",
        annotation_position="top left",
    )


def _ids(value: Any) -> set[str]:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return set()
    return {str(v) for v in value}


def _title(a: Mapping[str, Any], what: str) -> str:
    venue = a.get("venue") or "all venues"
    asset = a.get("asset") or "all assets"
    if a.get("asset_inferred"):
        asset += " (most traded by the alert's accounts)"
    return f"{what} — {a.get('rule_name', '')} on {asset} @ {venue}"


# -- alert overview ----------------------------------------------------------------------------


def alert_counts_figure(alerts: Any, by: str = "rule_name", freq: str = "1h") -> go.Figure:
    """Stacked bars of alert counts per time bucket (by ``window_start``), one trace per ``by`` value.

    Parameters
    ----------
    alerts
        Alerts in ``ALERT_SCHEMA`` (Arrow, pandas or Ibis).
    by
        Grouping column: ``rule_name``, ``rule_id``, ``typology``, ``asset`` or ``venue``.
    freq
        pandas offset alias of the time bucket, e.g. ``"1h"``, ``"15min"``.
    """
    df = as_frame(alerts)
    if by not in df.columns:
        raise ValueError(
            f"The 'by' parameter of alert_counts_figure must be a column of the alerts. Got {by!r}."
        )
    fig = go.Figure()
    if len(df):
        bucket = pd.to_datetime(df["window_start"], utc=True).dt.floor(freq)
        counts = (
            df.assign(bucket=bucket, group=df[by].fillna("(none)").astype(str))
            .groupby(["group", "bucket"])
            .size()
            .rename("alerts")
            .reset_index()
        )
        for group, g in counts.groupby("group", sort=True):
            fig.add_bar(x=g["bucket"], y=g["alerts"], name=str(group))
    fig.update_layout(
        barmode="stack",
        title=f"Alerts per {freq} by {by} ({len(df)} total)",
        xaxis_title="window start (UTC)",
        yaxis_title="alerts",
        legend_title=by,
    )
    return fig


def pick_alert(alerts: Any, *, prefer: str = "evidence_trade_ids") -> dict[str, Any]:
    """A representative alert to inspect: the top one (by ``priority`` when the alerts carry it, else score)
    with evidence in ``prefer`` if any, else the top alert, as a dict (list columns as lists). Raises
    ``ValueError`` when there are no alerts."""
    df = as_frame(alerts)
    if df.empty:
        raise ValueError("no alerts to pick from")
    has = df[prefer].map(lambda v: len(_ids(v)) > 0) if prefer in df.columns else pd.Series(False, df.index)
    pool = df[has] if has.any() else df
    keys = ["priority", "score", "alert_id"] if "priority" in pool.columns else ["score", "alert_id"]
    row = pool.sort_values(keys, ascending=[False] * (len(keys) - 1) + [True], kind="stable").iloc[0]
    # list columns come back from Arrow as numpy arrays: plain lists are safe to test for truth and print
    return _alert(row)


_SUMMARY = (
    "alert_id",
    "rule_id",
    "rule_name",
    "typology",
    "asset",
    "venue",
    "accounts",
    "window_start",
    "window_end",
    "metric",
    "value",
    "threshold",
    "score",
    "explanation",
    "case_ids",
)


def alert_summary(alert: Mapping[str, Any] | pd.Series) -> pd.Series:
    """The fields an analyst reads first, with evidence counts, as a one-column table for display."""
    a = _alert(alert)
    out = {k: a[k] for k in _SUMMARY if k in a}
    for k in ("evidence_trade_ids", "evidence_order_ids"):
        out[k.replace("_ids", "")] = f"{len(a.get(k) or [])} id(s)"
    return pd.Series(out, name="alert", dtype=object)


# -- one alert ---------------------------------------------------------------------------------


def price_figure(alert: Mapping[str, Any], trades: Any, *, pad: dt.timedelta = DEFAULT_PAD) -> go.Figure:
    """Trade prices of the alert's asset by venue around the alert window, evidence trades highlighted.

    Traces: one ``lines+markers`` per venue (named by the venue), then ``evidence trades`` when the alert
    lists trade ids present in the window. The alert window is a shaded band.
    """
    a = _focus(alert, trades, pad, ("buyer_id", "seller_id"))
    lo, hi = alert_window(a, pad)
    df = _window_rows(trades, a.get("asset"), lo, hi)
    fig = go.Figure()
    for venue, g in df.groupby("venue", sort=True):
        fig.add_scatter(x=g["ts"], y=g["price"], mode="lines+markers", marker_size=3, name=str(venue))
    ev = df[df["trade_id"].isin(_ids(a.get("evidence_trade_ids")))]
    if len(ev):
        fig.add_scatter(
            x=ev["ts"],
            y=ev["price"],
            mode="markers",
            name="evidence trades",
            marker={"symbol": "x", "size": 9, "color": _EVIDENCE},
            text=ev["trade_id"] + " " + ev["venue"] + " qty=" + ev["qty"].round(6).astype(str),
            hoverinfo="text+x+y",
        )
    _shade(fig, a)
    fig.update_layout(title=_title(a, "Price by venue"), xaxis_title="time (UTC)", yaxis_title="price")
    return fig


def aggressor_volume_figure(
    alert: Mapping[str, Any],
    trades: Any,
    *,
    pad: dt.timedelta = DEFAULT_PAD,
    bucket: str = "30s",
) -> go.Figure:
    """Aggressor buy and sell volume per time bucket (sells drawn below zero), evidence trades highlighted.

    Traces: ``buy aggressor``, ``sell aggressor`` (bars, all venues of the asset or the alert's venue), then
    ``evidence trades`` (markers at their signed quantity) when present.
    """
    a = _focus(alert, trades, pad, ("buyer_id", "seller_id"))
    lo, hi = alert_window(a, pad)
    df = _window_rows(trades, a.get("asset"), lo, hi, venue=a.get("venue"))
    signed = df["qty"].where(df["aggressor"] == "buy", -df["qty"])
    b = df.assign(bucket=df["ts"].dt.floor(bucket), signed=signed)
    b["notional"] = b["qty"] * b["price"]
    buy = b[b["aggressor"] == "buy"].groupby("bucket")[["qty", "notional"]].sum()
    sell = b[b["aggressor"] == "sell"].groupby("bucket")[["qty", "notional"]].sum()
    fig = go.Figure()
    # notional rides along in the hover: base quantities are not comparable across assets, notional is
    hover = (
        "%{x}<br>qty %{customdata[0]:.6g}<br>notional %{customdata[1]:,.2f}<extra>%{fullData.name}</extra>"
    )
    fig.add_bar(
        x=buy.index,
        y=buy["qty"].to_numpy(),
        name="buy aggressor",
        marker_color=_BUY,
        customdata=buy[["qty", "notional"]].to_numpy(),
        hovertemplate=hover,
    )
    fig.add_bar(
        x=sell.index,
        y=-sell["qty"].to_numpy(),
        name="sell aggressor",
        marker_color=_SELL,
        customdata=sell[["qty", "notional"]].to_numpy(),
        hovertemplate=hover,
    )
    ev = b[b["trade_id"].isin(_ids(a.get("evidence_trade_ids")))]
    if len(ev):
        fig.add_scatter(
            x=ev["ts"],
            y=ev["signed"],
            mode="markers",
            name="evidence trades",
            marker={"symbol": "x", "size": 9, "color": _EVIDENCE},
            text=ev["trade_id"],
        )
    _shade(fig, a)
    fig.update_layout(
        barmode="relative",
        title=_title(
            a,
            f"Aggressor volume per {bucket} (notional {b['notional'].sum():,.0f}, "
            f"{float(buy['notional'].sum()) - float(sell['notional'].sum()):+,.0f} net buy)",
        ),
        xaxis_title="time (UTC)",
        yaxis_title="base qty (sell < 0)",
    )
    return fig


def imbalance_figure(
    alert: Mapping[str, Any],
    orders: Any,
    *,
    pad: dt.timedelta = DEFAULT_PAD,
    n_levels: int = 5,
    every: float | dt.timedelta | None = None,
    max_samples: int = 3000,
) -> go.Figure:
    """Top-``n_levels`` order-book imbalance around the alert window, evidence order events highlighted.

    ``every`` is the sampling step (seconds); by default 1 s, coarsened so a long window (account-level
    alerts can span hours) has at most ``max_samples`` samples per venue.

    The book is rebuilt (:func:`market_surveillance.book.book_imbalance`) from the full order history of the
    asset up to the window end — on the alert's venue, or on every venue when the alert has none.
    Traces: one line per venue (``imbalance <venue>``), then ``evidence orders`` (markers at the imbalance
    sampled just before each evidence event) when present.
    """
    a = _focus(alert, orders, pad, ("account_id",))
    lo, hi = alert_window(a, pad)
    if every is None:
        every = max(1.0, float(np.ceil((hi - lo).total_seconds() / max_samples)))
    history = _window_rows(orders, a.get("asset"), None, hi, venue=a.get("venue"))
    fig = go.Figure()
    if len(history):
        imb = book_imbalance(
            history, n_levels=n_levels, every=every, start=lo.to_pydatetime(), end=hi.to_pydatetime()
        ).to_pandas()
        for venue, g in imb.groupby("venue", sort=True):
            fig.add_scatter(
                x=g["ts"],
                y=g["imbalance"],
                mode="lines",
                name=f"imbalance {venue}",
                customdata=g[["bid_qty", "ask_qty"]].to_numpy(),
                hovertemplate="%{x}<br>imbalance %{y:.3f}<br>bid %{customdata[0]:.4g} ask %{customdata[1]:.4g}",
            )
        ev = history[(history["ts"] >= lo) & history["order_id"].isin(_ids(a.get("evidence_order_ids")))]
        if len(ev) and len(imb):
            ev = pd.merge_asof(
                ev.sort_values("ts"),
                imb[["venue", "ts", "imbalance"]].sort_values("ts"),
                on="ts",
                by="venue",
                direction="backward",
            )
            fig.add_scatter(
                x=ev["ts"],
                y=ev["imbalance"].fillna(0.0),
                mode="markers",
                name="evidence orders",
                marker={
                    "symbol": "diamond",
                    "size": 8,
                    "color": ev["side"].map({"buy": _BUY, "sell": _SELL}).fillna(_EVIDENCE),
                    "line": {"width": 1, "color": _EVIDENCE},
                },
                text=ev["order_id"]
                + " "
                + ev["event"]
                + " "
                + ev["side"]
                + " "
                + ev["qty"].round(6).astype(str)
                + " @ "
                + ev["price"].round(6).astype(str),
            )
    _shade(fig, a)
    fig.update_layout(
        title=_title(a, f"Order-book imbalance (top {n_levels} levels)"),
        xaxis_title="time (UTC)",
        yaxis_title="(bid − ask) / (bid + ask)",
        yaxis_range=[-1.05, 1.05],
    )
    return fig


def alert_figures(
    alert: Mapping[str, Any],
    trades: Any,
    orders: Any | None = None,
    *,
    pad: dt.timedelta = DEFAULT_PAD,
    n_levels: int = 5,
) -> dict[str, go.Figure]:
    """The three views of one alert: ``price``, ``aggressor_volume`` and (when orders exist) ``imbalance``.

    An alert without an asset (account-level, e.g. ML) is shown on the asset its accounts traded most in the
    window, the same for the three views.
    """
    alert = _focus(alert, trades, pad, ("buyer_id", "seller_id"))
    figs = {
        "price": price_figure(alert, trades, pad=pad),
        "aggressor_volume": aggressor_volume_figure(alert, trades, pad=pad),
    }
    if orders is not None:
        figs["imbalance"] = imbalance_figure(alert, orders, pad=pad, n_levels=n_levels)
    return figs


# -- ML scores ---------------------------------------------------------------------------------

_CONTRIB_PREFIXES = ("shap_", "contrib_")


def _explanation_of(scores: pd.DataFrame, account_id: str) -> dict[str, float]:
    """Per-feature bars for one account: stored contributions, else the robust z-scores of its top features."""
    row = scores[scores["account_id"] == account_id]
    if row.empty:
        return {}
    r = row.iloc[0]
    cols = [c for c in scores.columns if c.startswith(_CONTRIB_PREFIXES)]
    if cols:
        return {c.split("_", 1)[1]: float(r[c]) for c in cols if pd.notna(r[c])}
    # ml_scores names the features that drove the score; show how far the account sits from the population
    # on each, in IQR units around the median (what the sentence in ``explanation`` states in words)
    named = r.get("top_features")
    if not isinstance(named, str) or not named:
        return {}
    out = {}
    for f in (n.strip() for n in named.split(",")):
        if f in scores.columns and pd.api.types.is_numeric_dtype(scores[f]):
            col = scores[f].astype(float)
            iqr = float(col.quantile(0.75) - col.quantile(0.25)) or float(col.std()) or 1.0
            out[f] = (float(r[f]) - float(col.median())) / iqr
    return out


def score_distribution_figure(
    scores: Any,
    account_id: str | None = None,
    explanation: Mapping[str, float] | str | None = None,
    *,
    top_features: int = 8,
    score_col: str = "score",
) -> go.Figure:
    """Distribution of ML anomaly scores (higher = more suspicious), one account marked and explained.

    Parameters
    ----------
    scores
        One row per account with ``account_id`` and ``score_col``; optional per-feature contribution columns
        named ``shap_<feature>`` or ``contrib_<feature>`` are used as the explanation.
    account_id
        Account to mark (default: the top-scoring one).
    explanation
        Feature → contribution mapping, or a text explanation. Default: the account's ``shap_*``/``contrib_*``
        columns, else — for ``ml_scores`` as written by :func:`market_surveillance.ml.write_scores` — the
        robust z-scores (``(value - median) / IQR``) of the features named in its ``top_features``; the
        ``explanation`` sentence, when present, is printed under the plot.

    Traces: ``all accounts`` (histogram), ``account <id>`` (marker on the score axis) and, when feature
    contributions are known, ``explanation`` (horizontal bars of the largest absolute contributions).
    """
    df = as_frame(scores)
    if account_id is None and len(df):
        account_id = str(df.sort_values(score_col, ascending=False).iloc[0]["account_id"])
    sentence = None
    if "explanation" in df.columns and account_id is not None:
        row = df[df["account_id"] == account_id]
        sentence = (
            str(row.iloc[0]["explanation"]) if len(row) and pd.notna(row.iloc[0]["explanation"]) else None
        )
    from_z = explanation is None and not any(c.startswith(_CONTRIB_PREFIXES) for c in df.columns)
    if explanation is None and account_id is not None:
        explanation = _explanation_of(df, account_id)
    if isinstance(explanation, str):
        sentence, explanation = explanation, None
    bars = dict(explanation) if isinstance(explanation, Mapping) and explanation else None
    fig = make_subplots(
        rows=1,
        cols=2 if bars else 1,
        column_widths=[0.6, 0.4] if bars else None,
        subplot_titles=["score distribution", f"why {account_id}"] if bars else None,
    )
    fig.add_trace(go.Histogram(x=df[score_col], nbinsx=50, name="all accounts", marker_color="#7f7f7f"), 1, 1)
    title = "ML anomaly scores (higher = more suspicious)"
    if account_id is not None:
        row = df[df["account_id"] == account_id]
        if len(row):
            s = float(row.iloc[0][score_col])
            rank = int((df[score_col] > s).sum()) + 1
            fig.add_trace(
                go.Scatter(
                    x=[s],
                    y=[0],
                    mode="markers+text",
                    name=f"account {account_id}",
                    marker={"symbol": "triangle-up", "size": 14, "color": _SELL},
                    text=[f"{account_id} (#{rank} of {len(df)})"],
                    textposition="top center",
                ),
                1,
                1,
            )
            fig.add_vline(x=s, line_dash="dash", line_color=_SELL, row=1, col=1)
            title += f" — {account_id}: {s:.3g}, rank {rank}/{len(df)}"
    if bars:
        top = sorted(bars.items(), key=lambda kv: abs(kv[1]), reverse=True)[:top_features][::-1]
        fig.add_trace(
            go.Bar(
                x=[v for _, v in top],
                y=[k for k, _ in top],
                orientation="h",
                name="explanation",
                marker_color=[_SELL if v > 0 else _BUY for _, v in top],
            ),
            1,
            2,
        )
    if sentence:
        fig.add_annotation(
            text=sentence, xref="paper", yref="paper", x=0, y=-0.18, showarrow=False, align="left"
        )
    if bars:
        fig.update_xaxes(title_text="IQRs from the median" if from_z else "contribution", row=1, col=2)
    fig.update_xaxes(title_text=score_col, row=1, col=1)
    fig.update_layout(title=title, showlegend=True, bargap=0.05)
    return fig
