from __future__ import annotations

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.spoofing_orders import SpoofingOrders, SpoofingOrdersParams
from market_surveillance.schema import DataProfile
from market_surveillance.testing import at, orders, public_book_flow, trades


def _spoofs(n: int = 3, size: float = 20.0, *, start: float = 300.5, mid=100.0, tick=0.01, base=100.0):
    """``n`` large bids one tick under ``mid``, each pulled after 1 s while a buyer lifts the offer."""
    od, tr = [], []
    for i in range(n):
        ts = start + 20 * i
        base_row = {"account_id": None, "order_id": f"spoof{i}", "side": "buy", "price": mid - tick}
        od.append({**base_row, "ts": ts, "event": "new", "qty": size * base})
        od.append({**base_row, "ts": ts + 1.0, "event": "cancel", "qty": size * base})
        tr.append({"ts": ts + 0.5, "price": mid + tick, "qty": base, "buyer_id": None, "seller_id": None,
                   "aggressor": "buy", "trade_id": f"lift{i}"})  # fmt: skip
    return od, tr


def _run(extra=((), ()), params=None, **flow):
    od, tr = public_book_flow(**flow)
    _, t, _ = from_arrow({"orders": orders(od + list(extra[0])), "trades": trades(tr + list(extra[1]))})
    return SpoofingOrders(params).run(t)


def test_spoofing_orders_injected_found_with_expected_entity_and_window():
    out = _run(_spoofs())
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["asset"] == "BTC-USD" and row["venue"] == "EXA" and row["accounts"] == []
    assert row["window_start"] == at(300.5) and row["window_end"] == at(341.5)
    assert sorted(row["evidence_order_ids"]) == ["spoof0", "spoof1", "spoof2"]
    assert {"lift0", "lift1", "lift2"} <= set(row["evidence_trade_ids"])
    assert row["value"] > 10.0 and "3 buy orders" in row["explanation"]


def test_spoofing_orders_clean_flow_no_alert():
    assert _run().num_rows == 0


def test_spoofing_orders_just_under_threshold_no_alert():
    # the median order is 1.5 × base: 14 × base is 9.3 × the median
    assert _run(_spoofs(size=14.0)).num_rows == 0
    assert _run(_spoofs(n=2)).num_rows == 0  # two orders are not yet a pattern (min_orders=3)
    assert _run(_spoofs(size=16.0)).num_rows == 1


def test_spoofing_orders_filled_or_slow_or_far_orders_not_spoofs():
    od, tr = _spoofs()
    slow = [{**r, "ts": r["ts"] + 5.0} if r["event"] == "cancel" else r for r in od]
    assert _run((slow, tr)).num_rows == 0
    far = [{**r, "price": 99.0} for r in od]
    assert _run((far, tr)).num_rows == 0
    no_lift = [{**r, "aggressor": "sell"} for r in tr]
    assert _run((od, no_lift)).num_rows == 0


def test_spoofing_orders_other_liquidity_tier_found():
    # a thin coin: prices in the tens of thousands, sizes in fractions, other tick
    kw = {"mid": 30_000.0, "tick": 0.5, "base_qty": 0.01}
    out = _run(_spoofs(mid=30_000.0, tick=0.5, base=0.01), **kw)
    assert out.num_rows == 1 and out["value"][0].as_py() > 10


def test_spoofing_orders_sensitive_vs_non_sensitive_params():
    extra = _spoofs(size=12.0)
    assert _run(extra, SpoofingOrdersParams(size_multiple=5.0)).num_rows == 1
    assert _run(extra, SpoofingOrdersParams(size_multiple=10.0)).num_rows == 0


def test_spoofing_orders_skips_data_with_accounts():
    rule = SpoofingOrders()
    with_acc = DataProfile(frozenset({"orders", "trades"}), has_order_accounts=True)
    assert "MS005" in (rule.skip_reason(with_acc) or "")
    assert rule.skip_reason(DataProfile(frozenset({"orders", "trades"}), False, False)) is None
