from __future__ import annotations

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.level_message_burst import LevelMessageBurst
from market_surveillance.rules.message_burst import MessageBurst, MessageBurstParams
from market_surveillance.testing import at, orders, public_book_flow, trades


def _flood(n: int, *, start=300.0, price=100.05, qty=100.0, prefix="q"):
    """``n`` messages (new/cancel pairs) at one price inside one second."""
    od = []
    for i in range(n // 2):
        row = {"account_id": None, "order_id": f"{prefix}{i}", "side": "sell", "price": price, "qty": qty}
        od.append({**row, "ts": start + i * 0.9 / n * 2, "event": "new"})
        od.append({**row, "ts": start + i * 0.9 / n * 2 + 0.001, "event": "cancel"})
    return od


def _run(rule, extra=(), params=None, **flow):
    od, tr = public_book_flow(**flow)
    _, t, _ = from_arrow({"orders": orders(od + list(extra)), "trades": trades(tr)})
    return rule(params).run(t)


def test_message_burst_injected_found_with_expected_entity_and_window():
    out = _run(MessageBurst, _flood(200))
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["asset"] == "BTC-USD" and row["venue"] == "EXA" and row["accounts"] == []
    # the background's 7 messages of that second join the flood's 200
    assert row["value"] == 207.0 and row["window_start"] == at(300.0)
    assert "q0" in row["evidence_order_ids"]


def test_message_burst_clean_flow_no_alert():
    assert _run(MessageBurst).num_rows == 0
    assert _run(LevelMessageBurst).num_rows == 0


def test_message_burst_just_under_threshold_no_alert():
    # busy level (q0.99 of the seconds) 10 messages: 3 × 10 = 30 is below the floor of 100; the flooded
    # second holds 7 background messages too
    assert _run(MessageBurst, _flood(92)).num_rows == 0
    assert _run(MessageBurst, _flood(94)).num_rows == 1


def test_message_burst_trading_rush_is_not_stuffing():
    burst = _flood(200)
    fills = [{**r, "event": "fill"} for r in burst if r["event"] == "cancel"]
    news = [r for r in burst if r["event"] == "new"]
    assert _run(MessageBurst, news + fills).num_rows == 0


def test_message_burst_other_liquidity_tier_found():
    # a busier book (busy level 40 a second): the threshold scales to 3 × 40 = 120 (39 background)
    assert _run(MessageBurst, _flood(80), per_second=20).num_rows == 0
    assert _run(MessageBurst, _flood(82), per_second=20).num_rows == 1


def test_level_message_burst_one_level_flicker_found():
    out = _run(LevelMessageBurst, _flood(120))
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["value"] == 120.0 and "at one sell level in 100.05-100.05" in row["explanation"]
    # the same count spread over many prices is no single-level flicker
    spread = [{**r, "price": 100.05 + (i // 2) * 0.01} for i, r in enumerate(_flood(120))]
    assert _run(LevelMessageBurst, spread).num_rows == 0
    assert _run(LevelMessageBurst, _flood(98)).num_rows == 0


def test_message_burst_sensitive_vs_non_sensitive_params():
    extra = _flood(120)  # 127 messages in the second
    assert _run(MessageBurst, extra, MessageBurstParams(burst_multiple=3.0)).num_rows == 1
    assert _run(MessageBurst, extra, MessageBurstParams(burst_multiple=15.0)).num_rows == 0


def test_level_message_burst_neighbouring_levels_one_alert():
    two = _flood(120) + _flood(120, price=100.06, prefix="r")
    out = _run(LevelMessageBurst, two)
    assert out.num_rows == 1 and "100.05-100.06" in out["explanation"][0].as_py()
