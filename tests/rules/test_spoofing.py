from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.spoofing import Spoofing, SpoofingParams
from market_surveillance.testing import at, orders, trades

# background: 40 small orders of qty 100 at price 100 (median new-order qty 100, notional 10,000),
# each resting 30 s then cancelled; none is large, so none can be a spoof
BACKGROUND = [
    row
    for i in range(40)
    for row in (
        {"ts": 10 * i, "order_id": f"bg{i}", "account_id": f"mm{i % 3}", "qty": 100.0},
        {
            "ts": 10 * i + 30,
            "order_id": f"bg{i}",
            "account_id": f"mm{i % 3}",
            "event": "cancel",
            "qty": 100.0,
        },
    )
]
BG_TRADES = [{"ts": 5 + 10 * i, "buyer_id": f"t{i % 4}", "seller_id": f"mm{i % 3}"} for i in range(30)]


def _spoof(
    ts: float, qty: float = 1_000.0, life: float = 2.0, oid: str = "sp1", side: str = "buy"
) -> list[dict]:
    return [
        {"ts": ts, "order_id": oid, "account_id": "s", "side": side, "qty": qty},
        {"ts": ts + life, "order_id": oid, "account_id": "s", "side": side, "event": "cancel", "qty": qty},
    ]


def _genuine(ts: float, side: str = "sell") -> dict:
    other = "cp"
    return {
        "ts": ts,
        "trade_id": f"G{ts:g}",
        "buyer_id": "s" if side == "buy" else other,
        "seller_id": other if side == "buy" else "s",
        "aggressor": "buy" if side == "sell" else "sell",
    }


def _run(order_rows, trade_rows, params=None):
    _, t, _ = from_arrow({"orders": orders(order_rows), "trades": trades(trade_rows)})
    return Spoofing(params).run(t)


def test_spoofing_injected_found_with_expected_entity_and_window():
    # two spoofs 100 s apart (one episode, gap 300 s), each with a genuine sell within 60 s
    od = BACKGROUND + _spoof(500) + _spoof(600, oid="sp2")
    tr = [*BG_TRADES, _genuine(510), _genuine(640)]
    out = _run(od, tr)
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["accounts"] == ["s"] and row["asset"] == "BTC-USD" and row["venue"] == "EXA"
    assert row["window_start"] == at(500) and row["window_end"] == at(602)
    assert row["value"] == 10.0  # 1,000 vs the median 100
    assert row["evidence_order_ids"] == ["sp1", "sp2"]
    assert row["evidence_trade_ids"] == ["G510", "G640"]


def test_spoofing_clean_background_no_alert():
    assert _run(BACKGROUND, BG_TRADES).num_rows == 0


def test_spoofing_large_cancel_without_opposite_trade_no_alert():
    # same-side trade only, and an opposite trade 61 s away: neither is trading the other side within 60 s
    tr = [*BG_TRADES, _genuine(510, side="buy"), _genuine(561)]
    assert _run(BACKGROUND + _spoof(500), tr).num_rows == 0


def test_spoofing_just_under_thresholds_no_alert():
    tr = [*BG_TRADES, _genuine(510)]
    assert _run(BACKGROUND + _spoof(500, qty=490.0), tr).num_rows == 0  # 4.9× the median new order
    assert _run(BACKGROUND + _spoof(500, life=5.5), tr).num_rows == 0  # lived longer than 5 s
    assert _run(BACKGROUND + _spoof(500, life=5.0), tr).num_rows == 1  # boundary is inclusive
    small = SpoofingParams(min_notional=100_001.0)  # 1,000 × 100 = 100,000 notional
    assert _run(BACKGROUND + _spoof(500), tr, small).num_rows == 0


def test_spoofing_thin_token_in_its_own_units_found():
    # a $0.01 token whose orders are 2,000 units ($20) and trades $10: a 12,000-unit ($120) spoof is
    # 6x its median order and 12x its median trade, while $120 would be nothing on BTC
    def thin(rows: list[dict], qty: float | None = None) -> list[dict]:
        return [{**r, "asset": "MICRO-USD", "price": 0.01, "qty": qty or r["qty"] * 20} for r in rows]

    od = thin(BACKGROUND) + thin(_spoof(500, qty=600.0))
    tr = thin([*BG_TRADES, _genuine(510)], qty=1_000.0)
    out = _run(od, tr, SpoofingParams(min_notional=50.0))
    assert out.num_rows == 1 and out.to_pylist()[0]["asset"] == "MICRO-USD"
    assert _run(od, tr).num_rows == 0  # the default $500 absolute floor is the safety net


def test_spoofing_partially_filled_order_no_alert():
    od = BACKGROUND + _spoof(500)
    od.insert(-1, {"ts": 501, "order_id": "sp1", "account_id": "s", "event": "fill", "qty": 1.0})
    assert _run(od, [*BG_TRADES, _genuine(510)]).num_rows == 0


def test_spoofing_sensitive_vs_non_sensitive_params():
    od = BACKGROUND + _spoof(500, qty=1_500.0, life=4.0)
    tr = [*BG_TRADES, _genuine(545)]
    sensitive = SpoofingParams(size_multiple=10.0, max_lifetime_s=5.0, opposite_window_s=60.0)
    strict = SpoofingParams(size_multiple=20.0, max_lifetime_s=3.0, opposite_window_s=30.0)
    assert _run(od, tr, sensitive).num_rows == 1
    assert _run(od, tr, strict).num_rows == 0


def test_spoofing_episodes_split_by_gap():
    od = BACKGROUND + _spoof(500) + _spoof(1_000, oid="sp2")
    tr = [*BG_TRADES, _genuine(510), _genuine(1010)]
    assert _run(od, tr).num_rows == 2
    assert _run(od, tr, SpoofingParams(episode_gap_s=600)).num_rows == 1


@settings(max_examples=5, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_spoofing_invariant_to_row_order(seed):
    rnd = random.Random(seed)
    od = BACKGROUND + _spoof(500) + _spoof(1_000, oid="sp2")
    tr = [*BG_TRADES, _genuine(510), _genuine(1010)]
    expected = _run(od, tr)
    od2, tr2 = list(od), list(tr)
    rnd.shuffle(od2)
    rnd.shuffle(tr2)
    assert _run(od2, tr2).equals(expected)
