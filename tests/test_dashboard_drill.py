"""Alert drill-down: shared-axis figure, evidence tables, order-book replay and account panel on hand-made
data with known answers; the queue's priority and display formatting."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from market_surveillance import testing as tb
from market_surveillance.alerts import ALERT_SCHEMA
from market_surveillance.dashboard.drill import (
    account_panel,
    book_replay_figure,
    drilldown_figure,
    evidence_orders,
    evidence_trades,
)
from market_surveillance.dashboard.queue import alert_label, fallback_priority, fmt, fmt_ts, queue, tidy_frame
from market_surveillance.io.canonical import from_arrow
from market_surveillance.pipeline import DetectResult
from market_surveillance.store import Store, record_detection


def _alert(**kw: object) -> dict:
    base = {
        "alert_id": "spoof-1",
        "rule_id": "MS005",
        "rule_name": "spoofing",
        "typology": "spoofing",
        "asset": "BTC-USD",
        "venue": "EXA",
        "accounts": ["A"],
        "window_start": tb.at(60),
        "window_end": tb.at(90),
        "detected_at": tb.at(90),
        "score": 3.0,
        "metric": "cancel_ratio",
        "value": 2.0,
        "threshold": 1.0,
        "evidence_trade_ids": ["T1", "T2"],
        "evidence_order_ids": ["s1"],
        "explanation": None,
    }
    return {**base, **kw}


def _orders(background: int = 0) -> pa.Table:
    rows = [
        {"ts": 0, "order_id": "b1", "side": "buy", "price": 99.0, "qty": 2.0, "account_id": "MM"},
        {"ts": 0, "order_id": "a1", "side": "sell", "price": 101.0, "qty": 1.0, "account_id": "MM"},
        # the spoof: a large ask two levels out, placed inside the window and pulled 13 s later
        {"ts": 62, "order_id": "s1", "side": "sell", "price": 102.0, "qty": 50.0, "account_id": "A"},
        {"ts": 75, "order_id": "s1", "event": "cancel", "side": "sell", "price": 102.0, "qty": 50.0,
         "account_id": "A"},
        {"ts": 70, "order_id": "x", "side": "buy", "price": 98.0, "qty": 1.0, "venue": "EXB"},
    ]  # fmt: skip
    for i in range(background):  # many small bids at distinct times inside the window
        rows.append({"ts": 60 + 30 * (i + 0.5) / background, "order_id": f"bg{i}", "side": "buy",
                     "price": 97.0, "qty": 0.1, "account_id": "MM"})  # fmt: skip
    return tb.orders(rows)


def _trades() -> pa.Table:
    return tb.trades(
        [
            {"trade_id": "T1", "ts": 64, "price": 100.0, "qty": 1.0, "buyer_id": "A", "seller_id": "B"},
            {"trade_id": "T2", "ts": 70, "price": 101.0, "qty": 2.0, "buyer_id": "B", "seller_id": "A",
             "aggressor": "sell"},
            {"trade_id": "T3", "ts": 80, "price": 100.5, "qty": 1.0, "buyer_id": "A", "seller_id": "A"},
            {"trade_id": "T4", "ts": 85, "price": 100.0, "qty": 1.0, "buyer_id": "C", "seller_id": "D",
             "venue": "EXB"},
        ]
    )  # fmt: skip


def _tables(**extra: pa.Table) -> dict:
    data = {"trades": _trades(), "orders": _orders(), **extra}
    return from_arrow(data)[1]


def test_drilldown_figure_three_panels_share_one_time_axis_with_evidence():
    t = _tables()
    fig = drilldown_figure(_alert(), t["trades"], t["orders"], pad=dt.timedelta(seconds=30))
    names = [tr.name for tr in fig.data]
    assert {"EXA", "EXB", "evidence trades", "buy aggressor", "sell aggressor", "imbalance EXA"} <= set(names)
    axes = {tr.name: tr.xaxis for tr in fig.data}
    assert axes["EXA"] == "x" and axes["buy aggressor"] == "x2" and axes["imbalance EXA"] == "x3"
    # one time axis: the lower panels follow the top one
    assert fig.layout.xaxis2.matches == "x3" or fig.layout.xaxis.matches == "x3"
    # the alert window is shaded on each of the three panels
    assert len([s for s in fig.layout.shapes if s.type == "rect"]) == 3
    ev = next(tr for tr in fig.data if tr.name == "evidence trades" and tr.xaxis == "x")
    assert list(ev.y) == [100.0, 101.0]


def test_aggressor_volume_hover_carries_notional():
    t = _tables()
    fig = drilldown_figure(_alert(), t["trades"], None, pad=dt.timedelta(seconds=30), bucket="10s")
    buy = next(tr for tr in fig.data if tr.name == "buy aggressor")
    # T1 (qty 1 @ 100) and T3 (qty 1 @ 100.5) are buy-initiated on EXA
    assert sorted(float(n) for _, n in buy.customdata) == [100.0, 100.5]
    assert "notional" in buy.hovertemplate


def test_evidence_tables_list_exactly_the_evidence_with_notional_and_order_age():
    t = _tables()
    tr = evidence_trades(_alert(), t["trades"])
    assert list(tr["trade_id"]) == ["T1", "T2"]
    assert list(tr["notional"]) == [100.0, 202.0]
    od = evidence_orders(_alert(), t["orders"])
    assert list(od["event"]) == ["new", "cancel"] and list(od["age_s"]) == [0.0, 13.0]
    assert evidence_orders(_alert(evidence_order_ids=[]), t["orders"]).empty


def test_book_replay_spoof_appears_and_vanishes_with_evidence_highlighted():
    t = _tables()
    fig = book_replay_figure(_alert(), t["orders"], n_levels=5, pad=dt.timedelta(0))
    assert [tr.name for tr in fig.data] == ["bids", "asks", "evidence orders"]
    frames = {f.name: f for f in fig.frames}
    # moments: each event inside the window on the alert's venue (EXB's order is not this book)
    assert sorted(frames) == ["00:01:02.000", "00:01:15.000"]
    placed, pulled = frames["00:01:02.000"], frames["00:01:15.000"]
    asks = placed.data[1]
    assert list(asks.y) == [101.0, 102.0] and list(asks.x) == [1.0, 50.0]
    assert list(placed.data[0].y) == [99.0] and list(placed.data[0].x) == [-2.0]  # bids drawn left
    assert list(placed.data[2].y) == [102.0] and list(placed.data[2].x) == [50.0]
    assert list(pulled.data[1].y) == [101.0] and len(pulled.data[2].x) == 0
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["00:01:02.000", "00:01:15.000"]


def test_book_replay_thinned_to_max_frames_keeps_every_evidence_moment():
    data = {"trades": _trades(), "orders": _orders(background=300)}
    t = from_arrow(data)[1]
    fig = book_replay_figure(_alert(), t["orders"], pad=dt.timedelta(0), max_frames=20)
    names = [f.name for f in fig.frames]
    assert len(names) == 20
    assert {"00:01:02.000", "00:01:15.000"} <= set(names)
    assert names == sorted(names)


def test_book_replay_without_order_events_says_so():
    fig = book_replay_figure(_alert(window_start=tb.at(500), window_end=tb.at(510)), _tables()["orders"],
                             pad=dt.timedelta(0))  # fmt: skip
    assert not fig.frames and "no order events" in fig.layout.title.text


def _store(tmp_path: Path, rows: list[dict]) -> Store:
    url = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    record_detection(
        url,
        DetectResult(pa.Table.from_pylist(rows, schema=ALERT_SCHEMA)),
        data_source="test",
        config_path=None,
        csv_snapshot=tmp_path / "alerts.csv",
    )
    return Store.open(url)


def test_account_panel_profile_counterparties_links_other_alerts_and_cases(tmp_path):
    accounts = tb.make_table(
        "accounts", [{"account_id": "A", "segment": "retail"}, {"account_id": "B", "segment": "retail"}]
    )
    network = tb.make_table(
        "network",
        [
            {"account_id": "A", "device_id": "d1", "ip_subnet": "10.0.0"},
            {"account_id": "C", "device_id": "d1", "ip_subnet": "10.9.9"},
            {"account_id": "B", "device_id": "d2", "ip_subnet": "10.1.1"},
        ],
    )
    t = _tables(accounts=accounts, network=network)
    other = _alert(
        alert_id="wash-1",
        rule_id="MS001",
        rule_name="self_trade",
        typology="wash_trading",
        accounts=["A", "B"],
        window_start=tb.at(200),
        window_end=tb.at(260),
        detected_at=tb.at(260),
    )
    unrelated = _alert(alert_id="x-1", accounts=["Z"])  # fmt: skip
    store = _store(tmp_path, [_alert(), other, unrelated])
    try:
        case_id = store.open_case("wash ring", ["wash-1"], "carol")
        panel = account_panel(_alert(), t, store)
    finally:
        store.dispose()
    prof = panel["profile"].set_index("account_id")
    assert prof.loc["A", "segment"] == "retail"
    assert prof.loc["A", "shares_device_or_subnet_with"] == "C"
    assert prof.loc["A", "trades"] == 4  # T1, T2 and both legs of the self-trade T3
    cp = panel["counterparties"]
    by = dict(zip(cp["counterparty"], cp["notional"], strict=True))
    assert by == {"A": 201.0, "B": 302.0}  # T3 on both legs; T1 + T2 with B
    assert cp.set_index("counterparty").loc["A", "alert_account"]
    assert list(panel["recent"]["trade_id"]) == ["T3", "T2", "T1"]  # newest first
    assert list(panel["other_alerts"]["alert_id"]) == ["wash-1"]
    assert {"priority", "verdict"} <= set(panel["other_alerts"].columns)  # the store's, shown as they are
    cases = panel["cases"]
    assert list(cases["case_id"]) == [case_id] and not cases["this_alert"].iloc[0]


def test_account_panel_alert_without_accounts_is_empty():
    panel = account_panel(_alert(accounts=[]), _tables(), None)
    assert all(df.empty for df in panel.values())


# -- queue and formatting -----------------------------------------------------------------------


def _q(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"alert_id": a, "rule_id": r, "score": s} for a, r, s in rows])


def test_fallback_priority_is_score_percentile_within_rule():
    df = _q([("a", "R1", 1.0), ("b", "R1", 2.0), ("c", "R1", 3.0), ("d", "R1", 4.0), ("e", "R2", 0.001)])
    assert list(fallback_priority(df)) == [25.0, 50.0, 75.0, 100.0, 100.0]


def test_queue_prefers_stored_priority_and_leaves_muted_out():
    df = _q([("a", "R1", 1.0), ("b", "R1", 2.0), ("c", "R2", 0.5)])
    df["priority"] = [90.0, None, 10.0]  # b has none stored: falls back to its percentile (100)
    df["muted"] = [False, False, True]
    q = queue(df)
    assert list(q["alert_id"]) == ["b", "a"]
    assert list(q["priority"]) == [100.0, 90.0]
    assert list(queue(df, include_muted=True)["alert_id"]) == ["b", "a", "c"]


def test_queue_raw_scores_of_different_rules_do_not_decide_the_order():
    # a self-trade count of 72 is not more urgent than the top ML score of 0.005
    df = _q([("wash-low", "MS001", 10.0), ("wash-top", "MS001", 72.0), ("ml-top", "ML001", 0.005),
             ("ml-low", "ML001", 0.001)])  # fmt: skip
    q = queue(df)
    assert set(q["alert_id"].iloc[:2]) == {"wash-top", "ml-top"}


def test_fmt_missing_tiny_and_timestamps_for_humans():
    assert fmt(None) == fmt(math.nan) == fmt(pd.NaT) == "—"
    assert fmt(5.8e-16) == "0"
    assert fmt(0.0123456) == "0.01235" and fmt(36100.4) == "36,100.4" and fmt(58097.0) == "58,097"
    assert fmt(np.array(["A", "B"])) == "A, B"
    ts = pd.Timestamp("2024-03-01 10:00:01.123456", tz="UTC")
    assert fmt(ts) == "2024-03-01 10:00:01"
    assert fmt_ts(ts, ms=True) == "2024-03-01 10:00:01.123"
    out = tidy_frame(pd.DataFrame({"v": [1.0, math.nan], "s": ["x", None]}))
    assert out.to_numpy().tolist() == [["1", "x"], ["—", "—"]]


@pytest.mark.parametrize("venue", [None, math.nan])
def test_alert_label_without_venue_has_no_nan(venue):
    label = alert_label(
        {"alert_id": "0d6054fa0bd9", "rule_name": "cross_market_divergence", "asset": "PUMP-USD",
         "venue": venue, "window_start": tb.at(1.5), "score": 14.0, "priority": 87.4, "case_ids": ["C-1"]}
    )  # fmt: skip
    assert label == "P87 0d6054fa0b cross_market_divergence PUMP-USD 2024-03-01 00:00:01 score=14 [C-1]"
