"""Dashboard plot helpers: each returns a figure with the expected traces on small hand-made data."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from market_surveillance import testing as tb
from market_surveillance.alerts import ALERT_SCHEMA
from market_surveillance.dashboard.plots import (
    aggressor_volume_figure,
    alert_counts_figure,
    alert_figures,
    alert_summary,
    imbalance_figure,
    pick_alert,
    price_figure,
    score_distribution_figure,
)
from market_surveillance.io.canonical import from_arrow

PAD = dt.timedelta(seconds=30)


def _alert(**kw: object) -> dict:
    base = {
        "alert_id": "a1",
        "rule_id": "MS001",
        "rule_name": "self-trade",
        "typology": "wash_trading",
        "asset": "BTC-USD",
        "venue": "EXA",
        "accounts": ["acct"],
        "window_start": tb.at(60),
        "window_end": tb.at(90),
        "detected_at": tb.at(90),
        "score": 1.0,
        "metric": "trades",
        "value": 2.0,
        "threshold": 1.0,
        "evidence_trade_ids": ["T000003"],
        "evidence_order_ids": ["s1"],
        "explanation": None,
    }
    return {**base, **kw}


def _alerts(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=ALERT_SCHEMA)


def _trades() -> pa.Table:
    rows = []
    for i in range(8):
        rows.append(
            {
                "ts": 50 + 5 * i,
                "venue": "EXA" if i % 2 else "EXB",
                "price": 100.0 + i,
                "qty": 1.0 + i,
                "aggressor": "buy" if i % 3 else "sell",
            }
        )
    rows.append({"ts": 500, "price": 1.0})  # outside every window: must not be plotted
    return tb.trades(rows)


def _orders() -> pa.Table:
    return tb.orders(
        [
            {"ts": 40, "order_id": "b1", "side": "buy", "price": 99.0, "qty": 3.0},
            {"ts": 40, "order_id": "s1", "side": "sell", "price": 101.0, "qty": 1.0},
            {"ts": 70, "order_id": "s1", "event": "cancel", "side": "sell", "price": 101.0, "qty": 1.0},
            {"ts": 70, "order_id": "x", "side": "buy", "price": 99.0, "qty": 1.0, "venue": "EXB"},
        ]
    )


def _names(fig) -> list[str]:
    return [t.name for t in fig.data]


def test_alert_counts_figure_by_rule_has_one_stacked_trace_per_rule():
    alerts = _alerts(
        [
            _alert(alert_id="a1"),
            _alert(alert_id="a2", window_start=tb.at(4000), window_end=tb.at(4001)),
            _alert(alert_id="a3", rule_id="MS005", rule_name="spoofing", typology="spoofing"),
        ]
    )
    fig = alert_counts_figure(alerts, by="rule_name", freq="1h")
    assert _names(fig) == ["self-trade", "spoofing"]
    assert sum(sum(t.y) for t in fig.data) == 3
    assert list(fig.data[0].y) == [1, 1]  # two hourly buckets
    assert fig.layout.barmode == "stack"
    by_asset = alert_counts_figure(alerts.to_pandas(), by="asset")
    assert _names(by_asset) == ["BTC-USD"]


def test_alert_counts_figure_unknown_grouping_is_refused():
    with pytest.raises(ValueError, match="'by' parameter"):
        alert_counts_figure(_alerts([_alert()]), by="colour")


def test_alert_counts_figure_no_alerts_gives_empty_figure():
    assert len(alert_counts_figure(ALERT_SCHEMA.empty_table()).data) == 0


def test_price_figure_alert_window_has_venue_lines_and_evidence_markers():
    fig = price_figure(_alert(), _trades(), pad=PAD)
    assert _names(fig) == ["EXA", "EXB", "evidence trades"]
    plotted = [p for t in fig.data[:2] for p in t.y]
    assert 1.0 not in plotted and len(plotted) == 8
    assert list(fig.data[2].y) == [103.0]  # T000003 is the 4th trade
    assert len(fig.layout.shapes) == 1  # the shaded alert window


def test_price_figure_without_evidence_has_only_venue_lines():
    fig = price_figure(_alert(evidence_trade_ids=[]), _trades(), pad=PAD)
    assert _names(fig) == ["EXA", "EXB"]


def test_aggressor_volume_figure_splits_buy_and_sell_on_alert_venue():
    fig = aggressor_volume_figure(_alert(), _trades(), pad=PAD, bucket="10s")
    assert _names(fig) == ["buy aggressor", "sell aggressor", "evidence trades"]
    # EXA trades are i = 1, 3, 5, 7 (qty 2, 4, 6, 8); aggressor sell when i % 3 == 0 → i = 3
    assert sum(fig.data[0].y) == pytest.approx(2 + 6 + 8)
    assert sum(fig.data[1].y) == pytest.approx(-4)
    assert list(fig.data[2].y) == [-4.0]


def test_imbalance_figure_rebuilds_book_and_marks_evidence_order_events():
    fig = imbalance_figure(_alert(), _orders(), pad=PAD, n_levels=5, every=10.0)
    assert _names(fig) == ["imbalance EXA", "evidence orders"]
    ys = dict(zip(pd.to_datetime(fig.data[0].x, utc=True), fig.data[0].y, strict=True))
    # before the cancel: bid 3 vs ask 1 → 0.5; after: only bids → 1.0
    assert ys[pd.Timestamp(tb.at(60))] == pytest.approx(0.5)
    assert ys[pd.Timestamp(tb.at(70))] == pytest.approx(1.0)
    # evidence order s1: its new (t=40, book 3 vs 1) and its cancel (t=70, bids only) sit on the line
    assert list(fig.data[1].y) == [pytest.approx(0.5), pytest.approx(1.0)]


def test_imbalance_figure_alert_without_venue_draws_every_venue():
    fig = imbalance_figure(_alert(venue=None, evidence_order_ids=[]), _orders(), pad=PAD, every=10.0)
    assert _names(fig) == ["imbalance EXA", "imbalance EXB"]


def test_alert_figures_on_ibis_tables_match_arrow_inputs():
    _, t, _ = from_arrow({"trades": _trades(), "orders": _orders()})
    figs = alert_figures(_alert(), t["trades"], t["orders"], pad=PAD)
    assert set(figs) == {"price", "aggressor_volume", "imbalance"}
    assert _names(figs["price"]) == _names(price_figure(_alert(), _trades(), pad=PAD))
    assert _names(figs["imbalance"]) == ["imbalance EXA", "evidence orders"]


def test_pick_alert_prefers_evidence_trades_then_score():
    alerts = _alerts(
        [
            _alert(alert_id="hi", score=9.0, evidence_trade_ids=[]),
            _alert(alert_id="lo", score=2.0),
            _alert(alert_id="lower", score=1.0),
        ]
    )
    assert pick_alert(alerts)["alert_id"] == "lo"
    assert pick_alert(alerts, prefer="none")["alert_id"] == "hi"
    with pytest.raises(ValueError, match="no alerts"):
        pick_alert(ALERT_SCHEMA.empty_table())


def test_score_distribution_figure_with_contributions_marks_and_explains_account():
    scores = pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A3"],
            "score": [0.1, 0.9, 0.4],
            "shap_cancel_ratio": [0.0, 0.5, 0.1],
            "shap_notional": [0.0, -0.2, 0.0],
        }
    )
    fig = score_distribution_figure(scores)
    assert _names(fig) == ["all accounts", "account A2", "explanation"]
    assert list(fig.data[2].y) == ["notional", "cancel_ratio"]  # largest |contribution| drawn on top
    assert "rank 1/3" in fig.layout.title.text


def test_score_distribution_figure_text_explanation_is_annotated():
    scores = pd.DataFrame(
        {"account_id": ["A1", "A2"], "score": [0.1, 0.9], "explanation": ["calm", "bursty"]}
    )
    fig = score_distribution_figure(scores, account_id="A1")
    assert _names(fig) == ["all accounts", "account A1"]
    assert any(a.text == "calm" for a in fig.layout.annotations)


def test_score_distribution_figure_ml_scores_top_features_become_robust_z_bars():
    # the shape written by market_surveillance.ml.write_scores: top_features names, an explanation sentence
    scores = pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A3", "A4", "A5"],
            "score": [0.1, 0.2, 0.3, 0.4, 0.9],
            "top_features": ["", "", "", "", "msg_rate_peak, notional"],
            "explanation": ["", "", "", "", "msg_rate_peak=50/min (median 2/min)"],
            "msg_rate_peak": [1.0, 2.0, 2.0, 3.0, 50.0],
            "notional": [10.0, 20.0, 30.0, 40.0, 30.0],
        }
    )
    fig = score_distribution_figure(scores)
    assert _names(fig) == ["all accounts", "account A5", "explanation"]
    z = dict(zip(fig.data[2].y, fig.data[2].x, strict=True))
    assert z["msg_rate_peak"] == pytest.approx((50 - 2) / 1.0)  # IQR of [1, 2, 2, 3, 50] is 1
    assert z["notional"] == pytest.approx(0.0)
    assert any("msg_rate_peak=50" in a.text for a in fig.layout.annotations)


def test_alert_figures_account_alert_without_asset_uses_accounts_main_asset():
    # an ML-style alert from pandas: asset and venue missing (NaN), accounts only
    trades = tb.trades(
        [
            {"ts": 60, "asset": "ETH-USD", "price": 3000.0, "buyer_id": "acct-x"},
            {"ts": 65, "asset": "ETH-USD", "price": 3001.0, "seller_id": "acct-x"},
            {"ts": 70, "asset": "BTC-USD", "price": 60000.0},
            {"ts": 71, "asset": "BTC-USD", "price": 60001.0},
            {"ts": 72, "asset": "BTC-USD", "price": 60002.0},
        ]
    )
    row = (
        _alerts([_alert(asset=None, venue=None, accounts=["acct-x"], evidence_trade_ids=[])])
        .to_pandas()
        .iloc[0]
    )
    figs = alert_figures(row, trades, _orders(), pad=PAD)
    assert "ETH-USD (most traded by the alert's accounts)" in figs["price"].layout.title.text
    assert sorted(p for t in figs["price"].data for p in t.y) == [3000.0, 3001.0]
    assert "ETH-USD" in figs["imbalance"].layout.title.text


def test_imbalance_figure_long_window_is_sampled_coarser():
    alert = _alert(window_start=tb.at(0), window_end=tb.at(3600))
    fig = imbalance_figure(alert, _orders(), pad=dt.timedelta(0), max_samples=100)
    assert len(fig.data[0].x) <= 101
    # default 1 s: window 60-90 s padded by 30 s → samples at 30, 31, ..., 120 s
    assert len(imbalance_figure(_alert(), _orders(), pad=PAD).data[0].x) == 91


def test_alert_summary_pandas_row_lists_fields_and_evidence_counts():
    row = _alerts([_alert()]).to_pandas().iloc[0]
    s = alert_summary(row)
    assert s["rule_name"] == "self-trade" and s["accounts"] == ["acct"]
    assert s["evidence_trade"] == "1 id(s)" and s["evidence_order"] == "1 id(s)"
    assert s["explanation"] is None
