from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.front_running import FrontRunning, FrontRunningParams
from market_surveillance.testing import at, trades

BG = [f"b{i}" for i in range(6)]
# background: price 100 bouncing ±2.5 bps (a 5 bps step between prints: the asset's spread, so the required
# profit is 4 × 5 = 20 bps), 1,000 USD tickets (the asset's median notional), both directions, all day
BACKGROUND = [
    {
        "ts": 9 * i,
        "price": 100.0 * (1.00025 if i % 2 else 0.99975),
        "qty": 10.0,
        "buyer_id": BG[i % 6],
        "seller_id": BG[(i + 1) % 6],
        "aggressor": "buy" if i % 2 else "sell",
    }
    for i in range(300)
]


def _big(ts: float = 1_000.0, qty: float = 2_000.0, side: str = "buy") -> dict:
    """The large aggressive print by W (201,000 USD at 100.5 by default: 201× the median)."""
    buyer, seller = ("W", "b0") if side == "buy" else ("b0", "W")
    return {
        "ts": ts,
        "trade_id": "BIG",
        "price": 100.5,
        "qty": qty,
        "buyer_id": buyer,
        "seller_id": seller,
        "aggressor": side,
    }


def _leg(
    ts: float, side: str, price: float, tid: str, *, aggressive: bool = True, qty: float = 100.0
) -> dict:
    """A trade of F on ``side`` against a background account; F takes liquidity unless ``aggressive`` is False."""
    buyer, seller = ("F", "b1") if side == "buy" else ("b1", "F")
    aggressor = side if aggressive else ("sell" if side == "buy" else "buy")
    return {
        "ts": ts,
        "trade_id": tid,
        "price": price,
        "qty": qty,
        "buyer_id": buyer,
        "seller_id": seller,
        "aggressor": aggressor,
    }


def _case(entry_ts: float = 980.0, exit_ts: float = 1_100.0, exit_px: float = 100.5, **big) -> list[dict]:
    """F buys 10,000 USD ahead of W's large buy, then sells it all after at ``exit_px``."""
    return [_leg(entry_ts, "buy", 100.0, "FIN"), _big(**big), _leg(exit_ts, "sell", exit_px, "FOUT")]


def _run(rows, params=None):
    _, t, _ = from_arrow({"trades": trades(rows)})
    return FrontRunning(params).run(t)


def test_front_running_injected_found_with_expected_entity_and_window():
    out = _run(BACKGROUND + _case())
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["accounts"] == ["F"] and row["asset"] == "BTC-USD" and row["venue"] is None
    assert row["window_start"] == at(980) and row["window_end"] == at(1_100)
    assert abs(row["value"] - 50.0) < 1e-6  # 100.0 -> 100.5
    assert row["evidence_trade_ids"] == ["BIG", "FIN", "FOUT"]


def test_front_running_sell_side_found():
    rows = [_leg(980, "sell", 100.0, "FIN"), _big(side="sell"), _leg(1_100, "buy", 99.5, "FOUT")]
    out = _run(BACKGROUND + rows)
    assert out.num_rows == 1 and abs(out["value"][0].as_py() - 50.0) < 1e-6


def test_front_running_clean_background_no_alert():
    assert _run(BACKGROUND).num_rows == 0
    assert _run([*BACKGROUND, _big()]).num_rows == 0  # a large print alone is not front-running


def test_front_running_just_under_threshold_no_alert():
    assert _run(BACKGROUND + _case(exit_px=100.19)).num_rows == 0  # 19 bps < 4 steps of 5 bps
    assert _run(BACKGROUND + _case(exit_px=100.21)).num_rows == 1  # 21 bps
    assert _run(BACKGROUND + _case(entry_ts=969.0)).num_rows == 0  # entered 31 s ahead
    assert _run(BACKGROUND + _case(exit_ts=1_301.0)).num_rows == 0  # exited 301 s after
    assert _run(BACKGROUND + _case(qty=99.0)).num_rows == 0  # 9,950 USD print, under 30 × the median 1,000


def test_front_running_ordinary_size_entry_no_alert():
    # an entry of 4,900 USD is 4.9 x the median ticket: an ordinary trade that happened to precede the print
    small = [_leg(980, "buy", 100.0, "FIN", qty=49.0), _big(), _leg(1_100, "sell", 100.5, "FOUT", qty=49.0)]
    assert _run(BACKGROUND + small).num_rows == 0
    assert _run(BACKGROUND + small, FrontRunningParams(min_entry_multiple=4.0)).num_rows == 1


def test_front_running_entry_undone_before_the_print_no_alert():
    # F buys 10,000 USD, then sells 6,000 of it (any venue) before the print: it was not positioned for it
    undo = {**_leg(990, "sell", 100.0, "FUNDO", qty=60.0), "venue": "EXB"}
    assert _run([*BACKGROUND, *_case(), undo]).num_rows == 0
    # selling 4,000 of it (40 %, under max_undo_share) still leaves it holding the position into the print
    keep = {**undo, "qty": 40.0}
    assert _run([*BACKGROUND, *_case(), keep]).num_rows == 1


def test_front_running_print_by_unknown_account_found():
    rows = _case()
    rows[1] = {**rows[1], "buyer_id": None}
    assert _run(BACKGROUND + rows).num_rows == 1


def test_front_running_passive_entry_or_no_exit_no_alert():
    passive = [_leg(980, "buy", 100.0, "FIN", aggressive=False), _big(), _leg(1_100, "sell", 100.5, "FOUT")]
    assert _run(BACKGROUND + passive).num_rows == 0
    assert _run(BACKGROUND + _case()[:2]).num_rows == 0


def test_front_running_sensitive_vs_non_sensitive_params():
    rows = BACKGROUND + _case(entry_ts=980.0, exit_px=100.4)  # 20 s ahead, 40 bps
    assert _run(rows, FrontRunningParams(lead_s=30.0, min_profit_bps=25.0)).num_rows == 1
    assert _run(rows, FrontRunningParams(lead_s=10.0, min_profit_bps=25.0)).num_rows == 0
    assert _run(rows, FrontRunningParams(lead_s=30.0, min_profit_bps=50.0)).num_rows == 0
    assert _run(rows, FrontRunningParams(large_multiple=250.0)).num_rows == 0  # print is 201× the median


@settings(max_examples=5, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_front_running_invariant_to_row_order(seed):
    rows = BACKGROUND[:150] + _case()
    expected = _run(rows)
    assert expected.num_rows == 1
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    assert _run(shuffled).equals(expected)


def test_front_running_tight_spread_major_small_profit_found_wide_token_not():
    # the same 12 bps round trip: an edge on a major stepping 1 bps, noise on a token stepping 30 bps
    def bg(step_bps: float) -> list[dict]:
        half = step_bps / 2 / 10_000
        return [{**r, "price": 100.0 * (1 + half if i % 2 else 1 - half)} for i, r in enumerate(BACKGROUND)]

    assert _run(bg(1.0) + _case(exit_px=100.12)).num_rows == 1
    assert _run(bg(30.0) + _case(exit_px=100.12)).num_rows == 0


# a longer day for the idle path: the same bouncing background over 5,400 s, so the hour before a print at
# 4,000 s is in view
LONG_BACKGROUND = [
    {**r, "ts": 9 * i} for i, r in enumerate(BACKGROUND[i % len(BACKGROUND)] for i in range(600))
]


def _idle_case(exit_px: float, big_ts: float = 4_000.0) -> list[dict]:
    """F, with no other trade in the hour before, buys 10,000 USD 20 s ahead of W's print, sells 100 s after."""
    return _case(entry_ts=big_ts - 20, exit_ts=big_ts + 100, exit_px=exit_px, ts=big_ts)


def test_front_running_entry_from_idle_small_profit_found():
    # 8 bps: under the ordinary 4 steps (20 bps), over one step (5 bps) for an entry opened from idle
    out = _run(LONG_BACKGROUND + _idle_case(exit_px=100.08))
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["accounts"] == ["F"] and row["window_start"] == at(3_980) and row["window_end"] == at(4_100)
    assert abs(row["value"] - 8.0) < 1e-6
    assert "from idle" in row["explanation"]


def test_front_running_entry_from_idle_just_under_one_step_no_alert():
    assert _run(LONG_BACKGROUND + _idle_case(exit_px=100.045)).num_rows == 0  # 4.5 bps < one 5 bps step
    assert _run(LONG_BACKGROUND + _idle_case(exit_px=100.055)).num_rows == 1  # 5.5 bps


def test_front_running_busy_account_small_profit_no_alert():
    # F also traded another asset 1,000 s before the print: not idle, so 8 bps is under the ordinary floor
    other = {**_leg(3_000, "sell", 50.0, "FOTHER"), "asset": "ETH-USD"}
    assert _run([*LONG_BACKGROUND, *_idle_case(exit_px=100.08), other]).num_rows == 0
    # a trade more than idle_s before the print does not count
    older = {**other, "ts": 300.0}
    assert _run([*LONG_BACKGROUND, *_idle_case(exit_px=100.08), older]).num_rows == 1


def test_front_running_idle_window_before_the_data_ordinary_floor():
    # the data in view starts 1,000 s before the print: whether F was idle for an hour is unknown
    assert _run(BACKGROUND + _idle_case(exit_px=100.08, big_ts=1_000.0)).num_rows == 0


def test_front_running_entry_from_idle_wide_step_token_no_alert():
    # the same 8 bps idle round trip on a token stepping 30 bps is under one of its steps
    wide = [{**r, "price": 100.0 * (1.0015 if i % 2 else 0.9985)} for i, r in enumerate(LONG_BACKGROUND)]
    assert _run(wide + _idle_case(exit_px=100.08)).num_rows == 0
    assert _run(wide + _idle_case(exit_px=100.32)).num_rows == 1  # 32 bps: over one 30 bps step


def test_front_running_idle_path_sensitive_vs_non_sensitive_params():
    rows = LONG_BACKGROUND + _idle_case(exit_px=100.08)
    assert _run(rows, FrontRunningParams(idle_s=0.0)).num_rows == 0  # no idle path
    assert _run(rows, FrontRunningParams(idle_profit_move_multiple=2.0)).num_rows == 0  # 8 < 10 bps
    assert _run(rows, FrontRunningParams(idle_s=7_200.0)).num_rows == 0  # 2 h before the print: not in view
