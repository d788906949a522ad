from __future__ import annotations

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.large_order_fill_rate import LargeOrderFillRate, LargeOrderFillRateParams
from market_surveillance.testing import orders, public_book_flow, trades


def _large(n: int, filled: int, *, size=20.0, base=100.0):
    """``n`` large bids, the first ``filled`` of them filled, the others cancelled."""
    od = []
    for i in range(n):
        row = {"account_id": None, "order_id": f"L{i}", "side": "buy", "price": 99.99, "qty": size * base}
        ts = 10.0 + i * 5
        od.append({**row, "ts": ts, "event": "new"})
        od.append({**row, "ts": ts + 1.0, "event": "fill" if i < filled else "cancel"})
    return od


def _run(extra=(), params=None, **flow):
    od, tr = public_book_flow(**flow)
    _, t, _ = from_arrow({"orders": orders(od + list(extra)), "trades": trades(tr)})
    return LargeOrderFillRate(params).run(t)


def test_large_order_fill_rate_injected_found():
    # background: 1 small order in 8 fills (12.5 %); none of 40 large ones does
    out = _run(_large(40, 0))
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["asset"] == "BTC-USD" and row["venue"] == "EXA" and row["value"] == 0.0
    assert row["explanation"].startswith("0 of 40 large orders filled")


def test_large_order_fill_rate_clean_flow_no_alert():
    assert _run().num_rows == 0


def test_large_order_fill_rate_just_under_threshold_no_alert():
    # 0.1 × 12.5 % = 1.25 %: 1 fill in 40 (2.5 %) is above it; too few large orders are no evidence
    assert _run(_large(40, 1)).num_rows == 0
    assert _run(_large(19, 0)).num_rows == 0
    assert _run(_large(20, 0)).num_rows == 1


def test_large_order_fill_rate_other_liquidity_tier_found():
    assert _run(_large(40, 0, base=0.01), base_qty=0.01, mid=30_000.0, tick=0.5).num_rows == 1


def test_large_order_fill_rate_sensitive_vs_non_sensitive_params():
    extra = _large(40, 1)
    assert _run(extra, LargeOrderFillRateParams(max_ratio=0.25)).num_rows == 1
    assert _run(extra, LargeOrderFillRateParams(max_ratio=0.1)).num_rows == 0
