"""Unit tests of the window/episode kernels and helpers shared by rules (rules/_common.py, rules/bars.py)."""

from __future__ import annotations

import ibis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules._common import (
    BAND,
    US,
    account_trades,
    alert_rows,
    asset_liquidity,
    band_probe,
    band_side,
    order_lifecycle,
    trailing,
    with_episodes,
)
from market_surveillance.rules.bars import bars, with_baseline
from market_surveillance.testing import at, orders, trades


def _mem(rows: list[dict]) -> ibis.Table:
    return ibis.memtable(rows)


def _episodes_py(times: list[int], gap: int) -> list[int]:
    out, ep, prev = [], 0, None
    for t in sorted(times):
        if prev is None or t - prev > gap:
            ep += 1
        out.append(ep)
        prev = t
    return out


def test_with_episodes_gap_rule_per_key():
    rows = [
        {"k": "a", "ts_us": 0, "id": "1"},
        {"k": "a", "ts_us": 10 * US, "id": "2"},  # exactly the gap: same episode
        {"k": "a", "ts_us": 21 * US, "id": "3"},  # 11 s later: new episode
        {"k": "b", "ts_us": 5 * US, "id": "4"},  # another key starts at 1
    ]
    out = with_episodes(_mem(rows), ["k"], 10, tiebreak="id").to_pandas().sort_values("id")
    assert out["episode"].tolist() == [1, 1, 2, 1]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=30), st.integers(1, 60))
def test_with_episodes_matches_reference(times: list[int], gap: int):
    rows = [{"k": "a", "ts_us": t * US, "id": f"{i:03d}"} for i, t in enumerate(times)]
    out = with_episodes(_mem(rows), ["k"], gap, tiebreak="id").to_pandas()
    out = out.sort_values(["ts_us", "id"])
    assert out["episode"].tolist() == _episodes_py(times, gap * 1)


@settings(max_examples=40, deadline=None)
@given(
    left=st.lists(st.integers(0, 5_000), min_size=1, max_size=15),
    right=st.lists(st.integers(0, 5_000), min_size=1, max_size=30),
    lo=st.integers(-700, 300),
    length=st.integers(0, 900),
)
def test_band_join_finds_exactly_the_pairs_in_range(left: list[int], right: list[int], lo: int, length: int):
    """A join on the band keys plus the range gives every pair with ``l + lo <= r <= l + hi``, once."""
    hi = lo + length
    lt = _mem([{"lid": i, "l_us": v} for i, v in enumerate(left)])
    rt = _mem([{"rid": i, "r_us": v} for i, v in enumerate(right)])
    lb, rb = band_probe(lt, lt.l_us, lo, hi), band_side(rt, rt.r_us, lo, hi)
    j = lb.join(rb, [lb[BAND] == rb[BAND], rb.r_us >= lb.l_us + lo, rb.r_us <= lb.l_us + hi])
    got = sorted(
        ibis.duckdb.connect().to_pyarrow(j.select("lid", "rid")).to_pylist(),
        key=lambda r: (r["lid"], r["rid"]),
    )
    want = [
        {"lid": i, "rid": k} for i, a in enumerate(left) for k, b in enumerate(right) if a + lo <= b <= a + hi
    ]
    assert got == want


def test_trailing_window_is_inclusive_of_its_bounds():
    rows = [{"k": "a", "ts_us": t * US, "v": 1} for t in (0, 10, 20, 30)]
    t = _mem(rows)
    out = t.mutate(n=t.v.sum().over(trailing(t, ["k"], 10))).to_pandas().sort_values("ts_us")
    # the print 10 s earlier is inside the 10-s window, the one 20 s earlier is not
    assert out["n"].tolist() == [1, 2, 2, 2]


def test_account_trades_one_leg_per_known_party():
    _, t, _ = from_arrow(
        {
            "trades": trades(
                [
                    {"ts": 1, "buyer_id": "a", "seller_id": "b", "aggressor": "buy", "trade_id": "T1"},
                    {"ts": 2, "buyer_id": None, "seller_id": "b", "aggressor": "sell", "trade_id": "T2"},
                ]
            )
        }
    )
    legs = account_trades(t["trades"]).to_pandas().sort_values(["trade_id", "side"])
    assert legs[["trade_id", "account_id", "side", "aggressive"]].values.tolist() == [
        ["T1", "a", "buy", True],
        ["T1", "b", "sell", False],
        ["T2", "b", "sell", True],
    ]


def test_order_lifecycle_first_cancel_and_filled_qty():
    _, t, _ = from_arrow(
        {
            "orders": orders(
                [
                    {"ts": 1, "order_id": "O1", "qty": 5.0},
                    {"ts": 2, "order_id": "O1", "event": "fill", "qty": 2.0},
                    {"ts": 3, "order_id": "O1", "event": "cancel", "qty": 3.0},
                    {"ts": 4, "order_id": "O2", "qty": 1.0},
                ]
            )
        }
    )
    life = order_lifecycle(t["orders"]).to_pandas().sort_values("order_id")
    assert life["filled"].tolist() == [2.0, 0.0]
    assert life["cancel_ts"].iloc[0] == at(3) and life["cancel_ts"].isna().iloc[1]


def test_asset_liquidity_median_notional_adv_and_step():
    rows = [{"ts": 600 * i, "price": 100.0 * (1.0005 if i % 2 else 1.0), "qty": 2.0} for i in range(145)]
    rows += [{"ts": 5, "asset": "MICRO-USD", "price": 0.01, "qty": 100.0}]
    _, t, _ = from_arrow({"trades": trades(rows)})
    liq = asset_liquidity(t["trades"]).to_pandas().set_index("asset")
    btc = liq.loc["BTC-USD"]
    assert btc["med_notional"] == pytest.approx(200.05, rel=1e-3)
    # 145 trades over exactly one day: ADV is the day's notional
    assert btc["adv"] == pytest.approx(sum(r["price"] * r["qty"] for r in rows[:145]), rel=1e-9)
    assert btc["move_bps"] == pytest.approx(5.0, rel=1e-3)
    # one print: its span is floored at an hour (ADV = 24 × its notional), no step known
    micro = liq.loc["MICRO-USD"]
    assert micro["adv"] == pytest.approx(24.0) and micro["move_bps"] != micro["move_bps"]


def test_alert_rows_defaults_market_level_alert():
    g = _mem(
        [
            {
                "asset": "BTC-USD",
                "window_start": at(0),
                "window_end": at(1),
                "v": 3,
            }
        ]
    )
    row = alert_rows(g, value=g.v, score=g.v * 2).to_pyarrow().to_pylist()[0]
    assert row["venue"] is None and row["accounts"] == [] and row["evidence_trade_ids"] == []
    assert row["value"] == 3.0 and row["score"] == 6.0 and "explanation" not in row


def test_bars_and_baseline_trailing_mean_excludes_current_bucket():
    rows = [{"ts": 60 * m + s, "price": 100.0 + s} for m in range(5) for s in (1, 2)]
    rows += [{"ts": 60 * 5 + s, "price": 100.0} for s in range(1, 9)]  # bucket 5: 8 trades
    _, t, _ = from_arrow({"trades": trades(rows)})
    b = with_baseline(bars(t["trades"], 60), 300, 60, 0).to_pandas().sort_values("bucket")
    first = b.iloc[0]
    assert first["n"] == 2 and first["open"] == 101.0 and first["close"] == 102.0 and first["high"] == 102.0
    last = b.iloc[-1]
    # 5 buckets of history, 2 trades each: mean 2 per bucket, the 8-trade bucket itself left out
    assert last["n"] == 8 and last["base_n"] == pytest.approx(2.0) and last["prev_close"] == 102.0
