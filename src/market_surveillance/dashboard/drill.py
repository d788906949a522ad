"""One alert, drilled down: the market on one time axis, its evidence, the book replayed, and its accounts.

Every function takes an alert (a mapping in :data:`market_surveillance.alerts.ALERT_SCHEMA`, e.g. a row of
``RunData.alerts``) and the canonical tables (Ibis tables from ``load_run``: filters run in DuckDB, only the
alert's neighbourhood is pulled into pandas; Arrow or pandas tables work too). Figures and frames are
returned, never shown, so the notebook, the triage widget and ``alerts report`` share them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from market_surveillance.book import book_levels
from market_surveillance.dashboard.plots import (
    DEFAULT_PAD,
    _alert,
    _focus,
    _ids,
    _title,
    _ts,
    _window_rows,
    aggressor_volume_figure,
    alert_window,
    as_frame,
    imbalance_figure,
    price_figure,
)

__all__ = [
    "account_panel",
    "book_replay_figure",
    "drilldown_figure",
    "evidence_orders",
    "evidence_trades",
]

_BID, _ASK, _EVIDENCE = "#2ca02c", "#d62728", "#111111"
_TRADE_COLS = ("ts", "trade_id", "venue", "asset", "price", "qty", "aggressor", "buyer_id", "seller_id")
_ORDER_COLS = ("ts", "order_id", "event", "venue", "asset", "account_id", "side", "price", "qty")


def _accounts(a: Mapping[str, Any]) -> list[str]:
    return [str(x) for x in (a.get("accounts") or [])]


def _rows_by_id(table: Any, column: str, ids: set[str], columns: Sequence[str]) -> pd.DataFrame:
    """Rows whose ``column`` is in ``ids`` (pushed down to the backend for Ibis tables), sorted by time."""
    if table is None or not ids:
        return pd.DataFrame(columns=list(columns))
    if hasattr(table, "op"):
        t = table
        keep = [c for c in columns if c in t.columns]
        df = t.filter(t[column].isin(sorted(ids))).select(*keep).to_pyarrow().to_pandas()
    else:
        df = as_frame(table)
        df = df[df[column].astype(str).isin(ids)][[c for c in columns if c in df.columns]]
    return df.sort_values("ts", kind="stable").reset_index(drop=True)


def evidence_trades(alert: Mapping[str, Any], trades: Any) -> pd.DataFrame:
    """The alert's evidence trades (``evidence_trade_ids``) with time, venue, price, qty, notional, sides."""
    a = _alert(alert)
    df = _rows_by_id(trades, "trade_id", _ids(a.get("evidence_trade_ids")), _TRADE_COLS)
    if len(df):
        df["notional"] = df["price"] * df["qty"]
    return df


def evidence_orders(alert: Mapping[str, Any], orders: Any) -> pd.DataFrame:
    """Every event (new, fill, cancel) of the alert's evidence orders (``evidence_order_ids``), in time order,
    with the order's age at each event (how long it rested: the spoofing question)."""
    a = _alert(alert)
    df = _rows_by_id(orders, "order_id", _ids(a.get("evidence_order_ids")), _ORDER_COLS)
    if len(df):
        first = df.groupby("order_id")["ts"].transform("min")
        df["age_s"] = (df["ts"] - first).dt.total_seconds()
    return df


# -- one time axis -------------------------------------------------------------------------------


def drilldown_figure(
    alert: Mapping[str, Any],
    trades: Any,
    orders: Any | None = None,
    *,
    pad: dt.timedelta = DEFAULT_PAD,
    n_levels: int = 5,
    bucket: str = "30s",
) -> go.Figure:
    """Price by venue, aggressor volume (notional in the hover) and top-``n_levels`` book imbalance stacked on
    one shared time axis, the alert window shaded on each panel and evidence highlighted on each.

    The panels are the traces of :func:`price_figure`, :func:`aggressor_volume_figure` and
    :func:`imbalance_figure` (same names), so zooming one panel zooms all three.
    """
    a = _focus(alert, trades, pad, ("buyer_id", "seller_id"))
    panels = [
        ("price", price_figure(a, trades, pad=pad)),
        ("aggressor qty (sell < 0)", aggressor_volume_figure(a, trades, pad=pad, bucket=bucket)),
    ]
    if orders is not None:
        panels.append(("book imbalance", imbalance_figure(a, orders, pad=pad, n_levels=n_levels)))
    fig = make_subplots(
        rows=len(panels),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        row_heights=[0.45, 0.3, 0.25][: len(panels)],
    )
    seen: set[str] = set()
    for row, (label, sub) in enumerate(panels, start=1):
        for trace in sub.data:
            # one legend entry per name: "evidence trades" on two panels toggles together
            trace.legendgroup = trace.name
            trace.showlegend = trace.name not in seen
            seen.add(trace.name)
            fig.add_trace(trace, row=row, col=1)
        fig.update_yaxes(title_text=label, row=row, col=1)
    if orders is not None:
        fig.update_yaxes(range=[-1.05, 1.05], row=len(panels), col=1)
    lo, hi = alert_window(a, pad)
    fig.add_vrect(
        x0=_ts(a["window_start"]),
        x1=_ts(a["window_end"]),
        fillcolor="#ff7f0e",
        opacity=0.15,
        line_width=0,
        row="all",
        col=1,
    )
    fig.update_xaxes(range=[lo, hi])
    fig.update_xaxes(title_text="time (UTC)", row=len(panels), col=1)
    fig.update_layout(
        title=_title(a, f"Alert {a.get('alert_id', '')[:10]}"),
        barmode="relative",
        height=760,
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.14},
    )
    return fig


# -- order-book replay ---------------------------------------------------------------------------


def _replay_venue(a: Mapping[str, Any], history: pd.DataFrame, lo: pd.Timestamp) -> str | None:
    """The alert's venue, else the venue of most evidence order events, else the busiest in the window."""
    if a.get("venue"):
        return str(a["venue"])
    inside = history[history["ts"] >= lo]
    ev = inside[inside["order_id"].isin(_ids(a.get("evidence_order_ids")))]
    pool = ev if len(ev) else inside if len(inside) else history
    return str(pool["venue"].value_counts().index[0]) if len(pool) else None


def _sample_times(
    history: pd.DataFrame, evidence: set[str], lo: pd.Timestamp, hi: pd.Timestamp, max_frames: int
) -> pd.DatetimeIndex:
    """At most ``max_frames`` moments to show: every event time if few, else every evidence event time
    (so a spoof placed and pulled within a second is never skipped) plus evenly spaced others."""
    inside = history[(history["ts"] >= lo) & (history["ts"] <= hi)]
    times = pd.DatetimeIndex(inside["ts"].drop_duplicates().sort_values())
    if len(times) <= max_frames:
        return times
    must = pd.DatetimeIndex(inside.loc[inside["order_id"].isin(evidence), "ts"].drop_duplicates())
    if len(must) >= max_frames:
        must = must[np.linspace(0, len(must) - 1, max_frames).round().astype(int)]
    rest = times.difference(must)
    k = max_frames - len(must)
    if k > 0 and len(rest):
        rest = rest[np.linspace(0, len(rest) - 1, min(k, len(rest))).round().astype(int)]
        must = must.union(rest)
    return must.sort_values()


def _evidence_resting(history: pd.DataFrame, evidence: set[str], times: pd.DatetimeIndex) -> pd.DataFrame:
    """Resting quantity of the evidence orders per (time, side, price) at each sample time."""
    ev = history[history["order_id"].isin(evidence)].copy()
    if ev.empty or not len(times):
        return pd.DataFrame(columns=["ts", "side", "price", "qty"])
    limit = ev[ev["event"] == "new"].groupby("order_id")["price"].first()
    ev["level"] = ev["order_id"].map(limit).fillna(ev["price"])
    ev["delta"] = ev["qty"].where(ev["event"] == "new", -ev["qty"])
    ev = ev.sort_values("ts", kind="stable")
    ev["resting"] = ev.groupby("order_id")["delta"].cumsum()
    # the state after every event at the same timestamp, like the book
    last = ev.groupby(["order_id", "ts"], as_index=False).last()[
        ["order_id", "ts", "side", "level", "resting"]
    ]
    grid = pd.DataFrame({"ts": times}).sort_values("ts")
    out = []
    for oid, g in last.groupby("order_id", sort=False):  # one merge per evidence order (a handful)
        m = pd.merge_asof(grid, g.sort_values("ts"), on="ts", direction="backward")
        m["order_id"] = oid
        out.append(m.dropna(subset=["resting"]))
    df = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    if df.empty:
        return pd.DataFrame(columns=["ts", "side", "price", "qty"])
    df = df[df["resting"] > 1e-9]
    return (
        df.groupby(["ts", "side", "level"], as_index=False)["resting"]
        .sum()
        .rename(columns={"level": "price", "resting": "qty"})
    )


def book_replay_figure(
    alert: Mapping[str, Any],
    orders: Any,
    *,
    venue: str | None = None,
    n_levels: int = 10,
    pad: dt.timedelta = dt.timedelta(seconds=30),
    max_frames: int = 120,
) -> go.Figure:
    """The reconstructed book (top ``n_levels`` each side) through the alert window, one frame per moment,
    stepped with a slider (or played); the resting quantity of the alert's evidence orders is drawn over
    the level it sits on.

    Bids are drawn to the left (negative quantity), asks to the right, prices on the vertical axis, so a
    spoof shows as a wall appearing on one side and vanishing. Frames are the book after every event in
    the window ``± pad`` when there are at most ``max_frames`` event times, else every evidence event time
    plus evenly spaced others. The book is rebuilt from the venue/asset's full order history
    (:func:`market_surveillance.book.book_levels`). Traces: ``bids``, ``asks``, ``evidence orders``.
    """
    a = _focus(alert, orders, DEFAULT_PAD, ("account_id",))
    lo, hi = _ts(a["window_start"]) - pad, _ts(a["window_end"]) + pad
    fig = go.Figure()
    history = _window_rows(orders, a.get("asset"), None, hi) if orders is not None else pd.DataFrame()
    where = _replay_venue(a, history, lo) if len(history) else venue
    venue = venue or where
    if len(history) and venue is not None:
        history = history[history["venue"] == venue]
    evidence = _ids(a.get("evidence_order_ids"))
    times = _sample_times(history, evidence, lo, hi, max_frames) if len(history) else pd.DatetimeIndex([])
    title = _title({**a, "venue": venue}, f"Order-book replay (top {n_levels})")
    if not len(times):
        fig.update_layout(title=title + " — no order events in the window")
        return fig
    levels = book_levels(
        history, n_levels=n_levels, every=None, start=times[0].to_pydatetime(), end=times[-1].to_pydatetime()
    ).to_pandas()
    levels = levels[levels["ts"].isin(times)]
    mine = _evidence_resting(history, evidence, times)
    # evidence resting on a level outside the top N is still shown (at its own price)
    xmax = float(max(levels["qty"].max() if len(levels) else 0.0, mine["qty"].max() if len(mine) else 0.0))
    prices = pd.concat([levels["price"], mine["price"]]) if len(mine) else levels["price"]
    by_t = dict(tuple(levels.groupby("ts")))
    ev_t = dict(tuple(mine.groupby("ts"))) if len(mine) else {}

    def traces(t: pd.Timestamp) -> list[go.Bar]:
        lv = by_t.get(t, levels.iloc[:0])
        bid, ask = lv[lv["side"] == "buy"], lv[lv["side"] == "sell"]
        ev = ev_t.get(t, mine.iloc[:0])
        sign = np.where(ev["side"] == "buy", -1.0, 1.0) if len(ev) else []
        return [
            go.Bar(x=-bid["qty"], y=bid["price"], orientation="h", name="bids", marker_color=_BID,
                   customdata=bid["level"], hovertemplate="bid L%{customdata} %{y}<br>qty %{x:.6g}<extra></extra>"),
            go.Bar(x=ask["qty"], y=ask["price"], orientation="h", name="asks", marker_color=_ASK,
                   customdata=ask["level"], hovertemplate="ask L%{customdata} %{y}<br>qty %{x:.6g}<extra></extra>"),
            go.Bar(x=np.asarray(ev["qty"], dtype=float) * sign, y=ev["price"], orientation="h",
                   name="evidence orders", marker={"color": "rgba(0,0,0,0)", "line": {"color": _EVIDENCE, "width": 2},
                                                   "pattern": {"shape": "/", "fgcolor": _EVIDENCE}},
                   hovertemplate="evidence resting %{y}<br>qty %{x:.6g}<extra></extra>"),
        ]  # fmt: skip

    def stamp(t: pd.Timestamp) -> str:
        return t.strftime("%H:%M:%S.%f")[:-3]

    def where_in(t: pd.Timestamp) -> str:
        inside = _ts(a["window_start"]) <= t <= _ts(a["window_end"])
        return "inside the alert window" if inside else "outside the alert window"

    # open on the first moment inside the alert window (the pad is context before it)
    inside = np.flatnonzero(times >= _ts(a["window_start"]))
    first = int(inside[0]) if len(inside) else 0
    t0 = times[first]
    for tr in traces(t0):
        fig.add_trace(tr)
    fig.frames = [
        go.Frame(
            data=traces(t),
            name=stamp(t),
            layout={"title": {"text": f"{title}<br><sup>{t:%Y-%m-%d} {stamp(t)} UTC, {where_in(t)}</sup>"}},
        )
        for t in times
    ]
    step = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}
    fig.update_layout(
        title={"text": f"{title}<br><sup>{t0:%Y-%m-%d} {stamp(t0)} UTC, {where_in(t0)}</sup>"},
        barmode="overlay",
        bargap=0.1,
        height=560,
        xaxis={"title": "resting qty (bids < 0 < asks)", "range": [-1.05 * xmax, 1.05 * xmax]},
        yaxis={
            "title": "price",
            "range": [float(prices.min()), float(prices.max())] if len(prices) else None,
        },
        sliders=[
            {
                "active": first,
                "currentvalue": {"prefix": "book at "},
                "pad": {"t": 40},
                "steps": [
                    {"label": stamp(t), "method": "animate", "args": [[stamp(t)], step]} for t in times
                ],
            }
        ],
        updatemenus=[
            {
                "type": "buttons",
                "showactive": False,
                "x": 0,
                "y": -0.12,
                "xanchor": "right",
                "buttons": [
                    {
                        "label": "▶",
                        "method": "animate",
                        "args": [
                            None,
                            {**step, "frame": {"duration": 300, "redraw": True}, "fromcurrent": True},
                        ],
                    },
                    {"label": "❚❚", "method": "animate", "args": [[None], step]},
                ],
            }
        ],
    )
    # pad the price axis by one level spacing so the outer bars are whole
    if len(prices) > 1:
        gaps = np.diff(np.unique(prices.to_numpy()))
        tick = float(gaps.min()) if len(gaps) else 0.0
        fig.update_yaxes(range=[float(prices.min()) - tick, float(prices.max()) + tick])
    return fig


# -- accounts ------------------------------------------------------------------------------------


def _account_trades(trades: Any, accounts: list[str], lo: Any = None, hi: Any = None) -> pd.DataFrame:
    cols = ("ts", "trade_id", "venue", "asset", "price", "qty", "aggressor", "buyer_id", "seller_id")
    if hasattr(trades, "op"):
        t = trades
        cond = [t.buyer_id.isin(accounts) | t.seller_id.isin(accounts)]
        if lo is not None:
            cond.append(t.ts >= lo.to_pydatetime())
        if hi is not None:
            cond.append(t.ts <= hi.to_pydatetime())
        df = t.filter(*cond).select(*cols).to_pyarrow().to_pandas()
    else:
        df = as_frame(trades)
        keep = df["buyer_id"].isin(accounts) | df["seller_id"].isin(accounts)
        if lo is not None:
            keep &= df["ts"] >= lo
        if hi is not None:
            keep &= df["ts"] <= hi
        df = df.loc[keep, list(cols)]
    df = df.sort_values("ts", kind="stable").reset_index(drop=True)
    df["notional"] = df["price"] * df["qty"]
    return df


def _filter_in(table: Any, column: str, values: list[str]) -> pd.DataFrame:
    if table is None:
        return pd.DataFrame()
    if hasattr(table, "op"):
        return table.filter(table[column].isin(values)).to_pyarrow().to_pandas()
    df = as_frame(table)
    return df[df[column].isin(values)]


def account_panel(
    alert: Mapping[str, Any],
    tables: Mapping[str, Any],
    store: Any | None = None,
    *,
    around: dt.timedelta = dt.timedelta(days=1),
    recent: int = 20,
) -> dict[str, pd.DataFrame]:
    """What an analyst asks about the alert's accounts, as tables.

    Returns
    -------
    dict
        ``profile``: per account its segment and baseline (``accounts`` table, when the data has one),
        trades and notional within ``around`` of the alert, devices and IP subnets, and the other accounts
        sharing one of them (``network``);
        ``counterparties``: who they traded with within ``around`` — trades, notional, share of the account's
        notional, and whether the counterparty is itself one of the alert's accounts;
        ``recent``: the last ``recent`` trades of the accounts up to the alert's end;
        ``other_alerts``: other stored alerts naming any of the accounts; ``cases``: the cases holding this
        alert or those.
    """
    a = _alert(alert)
    accounts = _accounts(a)
    empty = {k: pd.DataFrame() for k in ("profile", "counterparties", "recent", "other_alerts", "cases")}
    if not accounts:
        return empty
    start, end = _ts(a["window_start"]), _ts(a["window_end"])
    trades = tables.get("trades")
    near = _account_trades(trades, accounts, start - around, end + around) if trades is not None else None

    profile = pd.DataFrame({"account_id": accounts})
    ref = _filter_in(tables.get("accounts"), "account_id", accounts)
    if len(ref):
        profile = profile.merge(ref.drop_duplicates("account_id"), on="account_id", how="left")
    if near is not None:
        legs = pd.concat(
            [
                near[["buyer_id", "notional"]].rename(columns={"buyer_id": "account_id"}),
                near[["seller_id", "notional"]].rename(columns={"seller_id": "account_id"}),
            ]
        )
        legs = legs[legs["account_id"].isin(accounts)]
        stats = legs.groupby("account_id")["notional"].agg(trades="size", notional="sum").reset_index()
        profile = profile.merge(stats, on="account_id", how="left")
    net = _filter_in(tables.get("network"), "account_id", accounts)
    if len(net):
        mine = net.groupby("account_id").agg(
            devices=("device_id", "nunique"), subnets=("ip_subnet", "nunique")
        )
        profile = profile.merge(mine.reset_index(), on="account_id", how="left")
        network = tables["network"]
        shared = pd.concat(
            [
                _filter_in(network, "device_id", sorted(set(net["device_id"]))),
                _filter_in(network, "ip_subnet", sorted(set(net["ip_subnet"]))),
            ]
        )
        links = []
        for acct in accounts:
            own = net[net["account_id"] == acct]
            other = shared[
                (shared["account_id"] != acct)
                & (shared["device_id"].isin(own["device_id"]) | shared["ip_subnet"].isin(own["ip_subnet"]))
            ]
            links.append(", ".join(sorted(set(other["account_id"].astype(str)))) or None)
        profile["shares_device_or_subnet_with"] = links

    counterparties = pd.DataFrame()
    recent_df = pd.DataFrame()
    if near is not None and len(near):
        rows = []
        for side, other in (("buyer_id", "seller_id"), ("seller_id", "buyer_id")):
            leg = near[near[side].isin(accounts)]
            rows.append(
                pd.DataFrame(
                    {
                        "account_id": leg[side],
                        "counterparty": leg[other].fillna("(unknown)"),
                        "notional": leg["notional"],
                    }
                )
            )
        legs = pd.concat(rows, ignore_index=True)
        counterparties = (
            legs.groupby(["account_id", "counterparty"])
            .agg(trades=("notional", "size"), notional=("notional", "sum"))
            .reset_index()
        )
        total = counterparties.groupby("account_id")["notional"].transform("sum")
        counterparties["share"] = (counterparties["notional"] / total).round(3)
        counterparties["alert_account"] = counterparties["counterparty"].isin(accounts)
        counterparties = counterparties.sort_values(
            ["account_id", "notional"], ascending=[True, False], kind="stable"
        ).reset_index(drop=True)
        recent_df = near[near["ts"] <= end].tail(recent).iloc[::-1].reset_index(drop=True)

    other_alerts = pd.DataFrame()
    cases = pd.DataFrame()
    if store is not None:
        stored = store.alerts().to_pandas()
        hit = stored["accounts"].map(
            lambda xs: bool(set(map(str, xs if xs is not None else [])) & set(accounts))
        )
        others = stored[hit & (stored["alert_id"] != a.get("alert_id"))]
        cols = ["alert_id", "rule_name", "asset", "venue", "window_start", "score", "accounts", "case_ids"]
        # the store's priority and verdicts, where it keeps them: was this account's last alert a true positive?
        cols += [c for c in ("priority", "verdict", "verdict_reason") if c in others.columns]
        other_alerts = (
            others[cols].sort_values("window_start", ascending=False, kind="stable").reset_index(drop=True)
        )
        own = stored.loc[stored["alert_id"] == a.get("alert_id"), "case_ids"]
        case_ids = sorted({c for xs in [*others["case_ids"], *own] if xs is not None for c in xs})
        rows = []
        for cid in case_ids:
            c = store.case(cid)
            rows.append(
                {
                    "case_id": c.case_id,
                    "status": str(c.status),
                    "title": c.title,
                    "assignee": c.assignee,
                    "updated": c.updated,
                    "alerts": len(c.alert_ids),
                    "this_alert": a.get("alert_id") in c.alert_ids,
                }
            )
        cases = pd.DataFrame(rows)
    return {
        "profile": profile,
        "counterparties": counterparties,
        "recent": recent_df,
        "other_alerts": other_alerts,
        "cases": cases,
    }
