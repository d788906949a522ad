from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.self_trade import SelfTrade, SelfTradeParams
from market_surveillance.testing import at, trades


def _run(rows, params=None):
    _, t, _ = from_arrow({"trades": trades(rows)})
    return SelfTrade(params).run(t)


def test_self_trade_injected_found_with_expected_entity_and_window():
    rows = [{"ts": i, "buyer_id": "a", "seller_id": "b"} for i in range(5)]
    rows += [{"ts": 100, "buyer_id": "w", "seller_id": "w"}, {"ts": 160, "buyer_id": "w", "seller_id": "w"}]
    out = _run(rows)
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["accounts"] == ["w"] and row["asset"] == "BTC-USD" and row["venue"] == "EXA"
    assert row["window_start"] == at(100) and row["window_end"] == at(160)
    assert row["value"] == 2 and len(row["evidence_trade_ids"]) == 2


def test_self_trade_clean_background_no_alert():
    assert _run([{"ts": i, "buyer_id": f"a{i}", "seller_id": f"b{i}"} for i in range(20)]).num_rows == 0


def test_self_trade_just_under_min_trades_no_alert():
    rows = [{"ts": 0, "buyer_id": "w", "seller_id": "w"}, {"ts": 10, "buyer_id": "w", "seller_id": "w"}]
    assert _run(rows, SelfTradeParams(min_trades=3)).num_rows == 0
    assert _run(rows, SelfTradeParams(min_trades=2)).num_rows == 1


def test_self_trade_episodes_split_by_gap():
    rows = [{"ts": t, "buyer_id": "w", "seller_id": "w"} for t in (0, 100, 5000, 5100, 5200)]
    out = _run(rows, SelfTradeParams(episode_gap_s=600))
    assert sorted(out["value"].to_pylist()) == [2.0, 3.0]
    assert _run(rows, SelfTradeParams(episode_gap_s=10_000)).num_rows == 1


@settings(max_examples=15, deadline=None)
@given(st.permutations(list(range(6))))
def test_self_trade_invariant_to_row_order(order):
    base = [{"ts": t, "buyer_id": "w", "seller_id": "w", "trade_id": f"T{t}"} for t in (0, 50, 900, 950)]
    base += [{"ts": 10, "buyer_id": "x", "seller_id": "y", "trade_id": "Tx"}, {"ts": 20, "trade_id": "Ty"}]
    shuffled = [base[i] for i in order]
    assert _run(shuffled).equals(_run(base))
