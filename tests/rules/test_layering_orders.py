from __future__ import annotations

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.layering_orders import LayeringOrders, LayeringOrdersParams
from market_surveillance.testing import at, orders, public_book_flow, trades


def _ladder(
    levels: int = 5, size: float = 6.0, *, start=300.2, mid=100.0, tick=0.01, base=100.0, side="sell"
):
    """``levels`` large asks 2.. ticks above ``mid`` placed 0.1 s apart, pulled after 2 s; a seller hits the bid."""
    od = []
    sign = 1 if side == "sell" else -1
    for i in range(levels):
        row = {"account_id": None, "order_id": f"lay{i}", "side": side, "price": mid + sign * (2 + i) * tick}
        od.append({**row, "ts": start + 0.1 * i, "event": "new", "qty": size * base})
        od.append({**row, "ts": start + 2.0 + 0.1 * i, "event": "cancel", "qty": size * base})
    tr = [{"ts": start + 1.0, "price": mid - sign * tick, "qty": base, "buyer_id": None, "seller_id": None,
           "aggressor": side, "trade_id": "hit"}]  # fmt: skip
    return od, tr


def _run(extra=((), ()), params=None, **flow):
    od, tr = public_book_flow(**flow)
    _, t, _ = from_arrow({"orders": orders(od + list(extra[0])), "trades": trades(tr + list(extra[1]))})
    return LayeringOrders(params).run(t)


def test_layering_orders_injected_found_with_expected_entity_and_window():
    out = _run(_ladder())
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["asset"] == "BTC-USD" and row["venue"] == "EXA" and row["value"] == 5.0
    assert row["window_start"] == at(300.2) and row["window_end"] == at(302.6)
    assert sorted(row["evidence_order_ids"]) == [f"lay{i}" for i in range(5)]
    assert row["evidence_trade_ids"] == ["hit"]


def test_layering_orders_clean_flow_no_alert():
    assert _run().num_rows == 0


def test_layering_orders_just_under_threshold_no_alert():
    assert _run(_ladder(levels=3)).num_rows == 0
    assert _run(_ladder(levels=4)).num_rows == 1
    assert _run(_ladder(size=2.5)).num_rows == 0  # 2.5 × base is 1.7 × the median order


def test_layering_orders_two_sided_requote_is_not_layering():
    asks, tr = _ladder()
    bids, _ = _ladder(side="buy")
    bids = [{**r, "order_id": "b" + r["order_id"]} for r in bids]
    assert _run((asks + bids, tr)).num_rows == 0


def test_layering_orders_other_liquidity_tier_found():
    kw = {"mid": 30_000.0, "tick": 0.5, "base_qty": 0.01}
    assert _run(_ladder(mid=30_000.0, tick=0.5, base=0.01), **kw).num_rows == 1


def test_layering_orders_sensitive_vs_non_sensitive_params():
    extra = _ladder(levels=4)
    assert _run(extra, LayeringOrdersParams(min_levels=4)).num_rows == 1
    assert _run(extra, LayeringOrdersParams(min_levels=6)).num_rows == 0
