from __future__ import annotations

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.cancel_to_fill_market import CancelToFillMarket
from market_surveillance.rules.order_to_trade import OrderToTrade, RatioParams
from market_surveillance.testing import at, orders, public_book_flow, trades


def _churn(n: int, *, start=1_200.0, span=290.0, price=100.04):
    """``n`` order/cancel pairs spread over ``span`` seconds: messages without trades."""
    od = []
    for i in range(n):
        row = {"account_id": None, "order_id": f"c{i}", "side": "buy", "price": price, "qty": 100.0}
        ts = start + span * i / n
        od.append({**row, "ts": ts, "event": "new"})
        od.append({**row, "ts": ts + 0.2, "event": "cancel"})
    return od


def _run(rule, extra=(), params=None, **flow):
    od, tr = public_book_flow(seconds=3_000, **flow)
    _, t, _ = from_arrow({"orders": orders(od + list(extra)), "trades": trades(tr)})
    return rule(params).run(t)


def test_order_to_trade_injected_found_with_expected_entity_and_window():
    # background: 2400 instructions and 75 fills per 5 min (32 per fill); the churn adds 16 000
    out = _run(OrderToTrade, _churn(8_000))
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["asset"] == "BTC-USD" and row["venue"] == "EXA"
    assert row["window_start"] == at(1_200.0)
    assert row["score"] >= 1.0 and "instructions per execution" in row["explanation"]


def test_order_to_trade_clean_flow_no_alert():
    assert _run(OrderToTrade).num_rows == 0
    assert _run(CancelToFillMarket).num_rows == 0


def test_order_to_trade_just_under_threshold_no_alert():
    # the ratio must reach 4 × the median: +2 × 2400 instructions is 3 ×, +3.2 × is above 4 ×
    assert _run(OrderToTrade, _churn(2_400)).num_rows == 0
    assert _run(OrderToTrade, _churn(4_000)).num_rows == 1


def test_order_to_trade_other_liquidity_tier_found():
    assert _run(OrderToTrade, _churn(4_000), per_second=1).num_rows == 1
    assert _run(OrderToTrade, _churn(400), per_second=1).num_rows == 0


def test_cancel_to_fill_market_counts_cancels_only():
    out = _run(CancelToFillMarket, _churn(8_000))
    assert out.num_rows == 1 and "cancels per fill" in out["explanation"][0].as_py()


def test_order_to_trade_sensitive_vs_non_sensitive_params():
    extra = _churn(2_400)
    assert _run(OrderToTrade, extra, RatioParams(ratio_multiple=2.0)).num_rows == 1
    assert _run(OrderToTrade, extra, RatioParams(ratio_multiple=4.0)).num_rows == 0
