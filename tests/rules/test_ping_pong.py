from __future__ import annotations

import random

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.ping_pong import PingPong, PingPongParams
from market_surveillance.testing import at, trades


def _run(rows, params=None):
    _, t, _ = from_arrow({"trades": trades(rows)})
    return PingPong(params).run(t)


def _loop(n: int, start: float = 0.0, gap: float = 20.0, a: str = "x", b: str = "y"):
    # alternating direction every trade: n trades, n - 1 direction changes
    return [
        {"ts": start + gap * i, "buyer_id": a if i % 2 else b, "seller_id": b if i % 2 else a}
        for i in range(n)
    ]


def test_ping_pong_injected_found_with_pair_and_window():
    rows = _loop(7, start=100) + [{"ts": 50 + i, "buyer_id": f"r{i}", "seller_id": "mm"} for i in range(10)]
    out = _run(rows)
    assert out.num_rows == 1
    r = out.to_pylist()[0]
    assert r["accounts"] == ["x", "y"] and r["asset"] == "BTC-USD" and r["venue"] == "EXA"
    assert r["window_start"] == at(100) and r["window_end"] == at(220)
    assert r["value"] == 7 and len(r["evidence_trade_ids"]) == 7


def test_ping_pong_clean_background_no_alert():
    # a maker trading with many different takers, and one taker flipping only twice
    rows = [{"ts": i * 5, "buyer_id": f"t{i}", "seller_id": "mm"} for i in range(40)]
    rows += _loop(3, start=500)
    assert _run(rows).num_rows == 0


def test_ping_pong_just_under_thresholds_no_alert():
    assert _run(_loop(5)).num_rows == 0  # 5 trades < 6
    one_way = [{"ts": 10 * i, "buyer_id": "x", "seller_id": "y"} for i in range(10)]
    assert _run(one_way).num_rows == 0  # no direction change
    # 6 trades span 305 s > 300 s window (the hour-long window off)
    assert _run(_loop(6, gap=61), PingPongParams(long_window_s=0)).num_rows == 0


def _others(acct: str, n: int, start: float = 0.0) -> list[dict]:
    # ``acct`` also trades with n different counterparties on the same book
    return [{"ts": start + 30 * i + 7, "buyer_id": f"o{i}", "seller_id": acct} for i in range(n)]


def test_ping_pong_spread_out_over_the_hour_found():
    # 7 alternating trades 8 minutes apart (48 min): a pair that trades only with each other
    out = _run(_loop(7, start=100, gap=480))
    assert out.num_rows == 1
    r = out.to_pylist()[0]
    assert r["accounts"] == ["x", "y"] and r["window_start"] == at(100) and r["window_end"] == at(100 + 6 * 480)
    assert _run(_loop(7, start=100, gap=480), PingPongParams(long_window_s=0)).num_rows == 0
    # the same loop on a $0.01 token: counts, not sizes
    thin = [{**r, "asset": "MICRO-USD", "price": 0.01, "qty": 50_000.0} for r in _loop(7, gap=480)]
    assert _run(thin).num_rows == 1


def test_ping_pong_spread_out_maker_and_busy_client_no_alert():
    # x is a maker: its loop with y is 7 of its 47 trades on the book
    assert _run(_loop(7, gap=480) + _others("x", 40)).num_rows == 0
    # just under: 7 of x's 15 trades (47 %) < 50 %; 7 of 13 (54 %) is mostly each other
    assert _run(_loop(7, gap=480) + _others("x", 8)).num_rows == 0
    assert _run(_loop(7, gap=480) + _others("x", 6)).num_rows == 1


def test_ping_pong_sensitive_vs_default_params():
    rows = _loop(4)
    assert _run(rows).num_rows == 0
    assert _run(rows, PingPongParams(min_trades=4, min_alternations=2)).num_rows == 1


def test_ping_pong_other_venue_or_asset_not_mixed():
    rows = _loop(6)
    for i, r in enumerate(rows):
        r["venue"] = "EXA" if i % 2 else "EXB"
    assert _run(rows).num_rows == 0


def test_ping_pong_invariant_to_row_order():
    rows = [
        {**r, "trade_id": f"T{i:03d}"} for i, r in enumerate(_loop(8) + _loop(3, start=2000, a="p", b="q"))
    ]
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    assert _run(shuffled).equals(_run(rows))
