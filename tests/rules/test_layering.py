from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.layering import Layering, LayeringParams
from market_surveillance.testing import at, orders


def _ladder(
    start: float,
    prices: list[float],
    *,
    place_gap: float = 1.0,
    hold: float = 20.0,
    acct: str = "L",
    side: str = "buy",
    tag: str = "a",
) -> list[dict]:
    """Orders placed ``place_gap`` apart at ``prices``; all cancelled (far end first) ``hold`` s after the last."""
    rows, ids = [], []
    for k, px in enumerate(prices):
        oid = f"{acct}{tag}{k}"
        ids.append(oid)
        rows.append(
            {"ts": start + k * place_gap, "order_id": oid, "account_id": acct, "side": side, "price": px}
        )
    cancel_at = start + (len(prices) - 1) * place_gap + hold
    for j, oid in enumerate(reversed(ids)):
        rows.append(
            {"ts": cancel_at + 0.2 * j, "order_id": oid, "account_id": acct, "side": side, "event": "cancel"}
        )
    return rows


def _maker(acct: str, n: int = 200) -> list[dict]:
    """Background maker: one level per side, re-quoted every 10 s (cancel, then a new order a tick away)."""
    rows = []
    for i in range(n):
        for side, px in (("buy", 99.9 - 0.01 * (i % 3)), ("sell", 100.1 + 0.01 * (i % 3))):
            oid = f"{acct}{side}{i}"
            rows.append({"ts": 10 * i, "order_id": oid, "account_id": acct, "side": side, "price": px})
            rows.append(
                {"ts": 10 * i + 9, "order_id": oid, "account_id": acct, "side": side, "event": "cancel"}
            )
    return rows


BACKGROUND = _maker("mm0") + _maker("mm1")
LADDER = [99.9, 99.8, 99.7, 99.6]


def _run(rows, params=None):
    _, t, _ = from_arrow({"orders": orders(rows)})
    return Layering(params).run(t)


def test_layering_injected_found_with_expected_entity_and_window():
    out = _run(BACKGROUND + _ladder(1_000, LADDER))
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["accounts"] == ["L"] and row["asset"] == "BTC-USD" and row["venue"] == "EXA"
    assert row["window_start"] == at(1_000) and row["window_end"] == at(1_023.6)
    assert row["value"] == 4.0
    assert row["evidence_order_ids"] == ["La0", "La1", "La2", "La3"]


def test_layering_sell_ladder_stepping_up_found():
    out = _run(_ladder(1_000, [100.1, 100.2, 100.3, 100.4, 100.5], side="sell"))
    assert out.num_rows == 1 and out["value"].to_pylist() == [5.0]


def test_layering_clean_background_no_alert():
    assert _run(BACKGROUND).num_rows == 0


def test_layering_just_under_threshold_no_alert():
    assert _run(_ladder(1_000, LADDER[:3])).num_rows == 0  # three levels
    assert _run(_ladder(1_000, [99.9, 99.7, 99.8, 99.6])).num_rows == 0  # not monotonic
    assert _run(_ladder(1_000, [99.9, 99.8, 99.8, 99.7])).num_rows == 0  # a repeated level
    # whole ladder from first placement to last cancel: 3 + 86 + 0.6 = 89.6 s fits, 3 + 87.5 + 0.6 does not
    assert _run(_ladder(1_000, LADDER, hold=86.0)).num_rows == 1
    assert _run(_ladder(1_000, LADDER, hold=87.5)).num_rows == 0
    # each order lives at most 65 s and all four are live at 1,060, but the ladder spans 100 s
    long = [r for r in _ladder(1_000, LADDER, place_gap=20.0) if r.get("event") != "cancel"]
    for oid, ts in (("La0", 1_065), ("La1", 1_070), ("La2", 1_075), ("La3", 1_100)):
        long.append({"ts": ts, "order_id": oid, "account_id": "L", "side": "buy", "event": "cancel"})
    assert _run(long).num_rows == 0
    assert _run(long, LayeringParams(window_s=100.0)).num_rows == 1


def test_layering_filled_or_not_live_together_no_alert():
    filled = _ladder(1_000, LADDER)
    filled.append({"ts": 1_010, "order_id": "La1", "account_id": "L", "side": "buy", "event": "fill"})
    assert _run(filled).num_rows == 0
    # the first order is cancelled before the fourth is placed: never four live at once
    staggered = _ladder(1_000, LADDER, place_gap=10.0, hold=1.0)
    staggered = [r for r in staggered if not (r["order_id"] == "La0" and r.get("event") == "cancel")]
    staggered.append({"ts": 1_025, "order_id": "La0", "account_id": "L", "side": "buy", "event": "cancel"})
    assert _run(staggered).num_rows == 0


def test_layering_sensitive_vs_non_sensitive_params():
    rows = BACKGROUND + _ladder(1_000, LADDER, place_gap=5.0, hold=30.0)  # 45.6 s, four levels
    assert _run(rows, LayeringParams(min_levels=4, window_s=90.0)).num_rows == 1
    assert _run(rows, LayeringParams(min_levels=5, window_s=90.0)).num_rows == 0
    assert _run(rows, LayeringParams(min_levels=4, window_s=40.0)).num_rows == 0


def test_layering_episodes_split_by_gap():
    rows = _ladder(1_000, LADDER) + _ladder(1_200, LADDER, tag="b") + _ladder(2_000, LADDER, tag="c")
    out = _run(rows)
    assert out.num_rows == 2
    assert sorted(len(e) for e in out["evidence_order_ids"].to_pylist()) == [4, 8]


@settings(max_examples=5, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_layering_invariant_to_row_order(seed):
    rows = BACKGROUND[:200] + _ladder(1_000, LADDER) + _ladder(3_000, LADDER, acct="M", side="sell")
    expected = _run(rows)
    assert expected.num_rows == 2
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    assert _run(shuffled).equals(expected)
