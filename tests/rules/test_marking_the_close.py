from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.marking_the_close import MarkingTheClose, MarkingTheCloseParams, next_fixing
from market_surveillance.testing import at, trades

DAY = 86_400.0


def _background(price: float = 100.0, *, every: float = 30.0, qty: float = 1.0, seed: int = 1) -> list[dict]:
    """A day of two-sided trading on one asset: a random walk of ±5 bps steps, aggressors alternating at
    random, two background accounts; ``price`` and ``qty`` set the instrument's scale."""
    rng = random.Random(seed)
    rows, p = [], price
    for i in range(int(DAY / every)):
        p *= 1 + rng.choice((-5e-4, 5e-4))
        side = rng.choice(("buy", "sell"))
        rows.append({"ts": 1 + i * every, "price": p, "qty": qty, "aggressor": side, "trade_id": f"B{i}"})
    return rows


def _push(
    last_price: float,
    *,
    n: int = 20,
    rise: float = 0.03,
    qty: float = 3.0,
    side: str = "buy",
    acct: str = "m",
) -> list[dict]:
    """``n`` aggressive trades by ``acct`` over the 10 minutes before midnight moving the price by ``rise``."""
    rows = []
    for k in range(n):
        px = last_price * (1 + (rise if side == "buy" else -rise) * (k + 1) / n)
        buyer, seller = (acct, "mm") if side == "buy" else ("mm", acct)
        rows.append(
            {
                "ts": DAY - 600 + 25 * k,
                "price": px,
                "qty": qty,
                "aggressor": side,
                "buyer_id": buyer,
                "seller_id": seller,
                "trade_id": f"M{k}",
            }
        )
    return rows


def _run(rows, params=None):
    _, t, _ = from_arrow({"trades": trades(rows)})
    return MarkingTheClose(params).run(t)


def _before_push(bg: list[dict]) -> tuple[list[dict], float]:
    kept = [r for r in bg if r["ts"] < DAY - 600]
    return kept, kept[-1]["price"]


def test_marking_the_close_injected_push_found_with_expected_entity_and_window():
    bg, last = _before_push(_background())
    out = _run(bg + _push(last))
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["asset"] == "BTC-USD" and row["accounts"] == ["m"] and row["venue"] is None
    assert row["window_start"] == at(DAY - 899) and row["window_end"] == at(DAY - 600 + 25 * 19)
    assert set(row["evidence_trade_ids"]) == {f"M{k}" for k in range(20)}
    assert row["value"] >= 4.0 and "buying" in row["explanation"] and "00:00 UTC" in row["explanation"]


def test_marking_the_close_clean_background_no_alert():
    for seed in range(4):
        assert _run(_background(seed=seed)).num_rows == 0


def test_marking_the_close_downward_push_found():
    bg, last = _before_push(_background())
    out = _run(bg + _push(last, side="sell"))
    assert out.num_rows == 1 and "selling" in out.to_pylist()[0]["explanation"]


def test_marking_the_close_just_under_thresholds_no_alert():
    bg, last = _before_push(_background())
    rows = bg + _push(last)
    value = _run(rows).to_pylist()[0]["value"]
    # the price path alone (m's dominance of the window would flag it anyway: see the participation tests)
    price_only = {"min_participation": 0.0}
    assert _run(rows, MarkingTheCloseParams(move_multiple=value * 1.01, **price_only)).num_rows == 0
    assert _run(rows, MarkingTheCloseParams(move_multiple=value * 0.99, **price_only)).num_rows == 1
    # a two-sided window (the buys of many accounts answered by as many sells of many others) is not a push
    crowd = [{**r, "buyer_id": f"m{k}"} for k, r in enumerate(_push(last))]
    answered = [
        {**r, "trade_id": f"A{r['trade_id']}", "ts": r["ts"] + 1, "aggressor": "sell", "seller_id": f"s{k}"}
        for k, r in enumerate(crowd)
    ]
    assert _run(bg + crowd + answered).num_rows == 0
    # ... but one account taking all those buys dominates the window one way: a push whatever the others do
    out = _run(rows + answered)
    assert out.num_rows == 1 and out.to_pylist()[0]["accounts"] == ["m"]


def test_marking_the_close_same_push_away_from_the_fixing_no_alert():
    # the same push ending at 20:00 (the background there replaced by it, as in the midnight case)
    end = DAY - 4 * 3600
    bg = _background()
    kept = [r for r in bg if not end - 600 <= r["ts"] < end]
    last = [r for r in bg if r["ts"] < end - 600][-1]["price"]
    shifted = [{**r, "ts": r["ts"] - 4 * 3600} for r in _push(last)]
    # the price holds after the push: later background prints continue from where it ended
    rows = [{**r, "price": r["price"] * 1.03} if r["ts"] >= end else r for r in kept] + shifted
    assert _run(rows).num_rows == 0
    # ... unless that time is a configured fixing (an index snapshot at 20:00, or hourly snapshots)
    assert _run(rows, MarkingTheCloseParams(fixing_times="00:00,20:00")).num_rows == 1
    assert _run(rows, MarkingTheCloseParams(fixing_interval_s=3600)).num_rows == 1


@pytest.mark.parametrize(("price", "qty"), [(0.004, 50_000.0), (60_000.0, 0.01)])
def test_marking_the_close_other_liquidity_tier_found(price: float, qty: float):
    # a $0.004 micro-cap traded in $200 clips and a BTC-like asset: the thresholds are the asset's own
    bg, last = _before_push(_background(price, qty=qty))
    out = _run(bg + _push(last, qty=3 * qty, rise=0.02))
    assert out.num_rows == 1 and out.to_pylist()[0]["accounts"] == ["m"]


def test_marking_the_close_without_account_ids_alerts_the_asset():
    bg, last = _before_push(_background())
    rows = [{**r, "buyer_id": None, "seller_id": None} for r in bg + _push(last)]
    out = _run(rows)
    assert out.num_rows == 1 and out.to_pylist()[0]["accounts"] == []


def test_marking_the_close_bad_fixing_times_refused():
    with pytest.raises(ValueError, match="The 'fixing_times' parameter of MarkingTheCloseParams must be"):
        MarkingTheCloseParams(fixing_times="24:00")


@settings(max_examples=30, deadline=None)
@given(
    st.integers(min_value=0, max_value=10 * 86_400 * 1_000_000),
    st.sampled_from(["00:00", "08:00,16:00", "23:59"]),
    st.sampled_from([0, 3600, 900]),
)
def test_next_fixing_is_the_first_fixing_strictly_after(ts_us: int, times: str, interval: int):
    import ibis

    p = MarkingTheCloseParams(fixing_times=times, fixing_interval_s=interval)
    fix = ibis.duckdb.connect().execute(next_fixing(ibis.literal(ts_us), p))
    day = ts_us // (86_400 * 10**6) * 86_400 * 10**6
    cands = [day + off + k * 86_400 * 10**6 for off in p.fixing_offsets_us() for k in (0, 1)]
    if interval:
        cands += [day + j * interval * 10**6 for j in range(0, 86_400 // interval + 1)]
    assert fix == min(c for c in cands if c > ts_us)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=10 * 86_400 * 1_000_000),
    st.integers(min_value=1, max_value=2 * 86_400 * 1_000_000),
    st.sampled_from(["00:00", "08:00,16:00", "23:59"]),
    st.sampled_from([0, 3600, 900]),
)
def test_marking_the_close_online_due_exactly_when_a_fixing_passed(
    since: int, length: int, times: str, interval: int
):
    import ibis

    rule = MarkingTheClose(MarkingTheCloseParams(fixing_times=times, fixing_interval_s=interval))
    first = ibis.duckdb.connect().execute(next_fixing(ibis.literal(since), rule.params))
    assert rule.online_due(since, since + length) == (first <= since + length)


def test_marking_the_close_dominant_account_without_price_move_found():
    # m buys aggressively 20 times into the fixing, most of the notional, while the price goes nowhere (the
    # market trades against it): the participation path names it
    bg, last = _before_push(_background())
    out = _run(bg + _push(last, rise=0.0))
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["accounts"] == ["m"] and "one account's share dominant" in row["explanation"]
    assert row["value"] < 2.5  # no price push behind it
    assert _run(bg + _push(last, rise=0.0), MarkingTheCloseParams(min_participation=0.0)).num_rows == 0


def test_marking_the_close_dominant_account_just_under_thresholds_no_alert():
    bg, last = _before_push(_background())
    flat = _push(last, rise=0.0)
    assert _run(bg + flat[:4]).num_rows == 0  # 4 trades < min_participation_trades 5
    assert _run(bg + flat[:5]).num_rows == 1
    # m also sells back passively 3 of its 20 lots, late in the window: 87 % one way over 15 minutes, 73 %
    # over the last 5, under 0.9 either way
    back = [
        {**r, "trade_id": f"R{k}", "ts": r["ts"] + 2, "buyer_id": "x", "seller_id": "m", "aggressor": "buy"}
        for k, r in enumerate(flat[-3:])
    ]
    assert _run(bg + flat + back).num_rows == 0
    # with the background trading on through the push m holds 2/3 of the 15-minute span's notional and 70 %
    # of the 5-minute one (the price reading is switched off: the walk moves while m buys)
    rows = _background() + flat
    assert _run(rows, MarkingTheCloseParams(min_participation=0.65, move_multiple=100.0)).num_rows == 1
    assert _run(rows, MarkingTheCloseParams(min_participation=0.75, move_multiple=100.0)).num_rows == 0


# -- per-venue close: a push on one venue that the asset-wide reading dilutes -----------------------------


def _venues_background(price: float = 100.0, qty: float = 1.0, seed: int = 3) -> list[dict]:
    """One common ±5 bps walk printed on three venues: EXA and EXC every 5 s (qty 2), EXB every 30 s
    (qty 1), aggressors alternating on each venue, so the shares in any span are known."""
    rng = random.Random(seed)
    walk, p = [], price
    for _ in range(int(DAY / 5) + 1):
        p *= 1 + rng.choice((-5e-4, 5e-4))
        walk.append(p)
    rows = []
    for venue, every, q in (("EXA", 5, 2.0), ("EXC", 5, 2.0), ("EXB", 30, 1.0)):
        for i in range(int((DAY - 1) / every)):
            ts = 1 + i * every
            rows.append(
                {
                    "ts": ts,
                    "venue": venue,
                    "price": walk[int(ts // 5)],
                    "qty": q * qty,
                    "aggressor": "buy" if i % 2 else "sell",
                    "buyer_id": "bb",
                    "seller_id": "bs",
                    "trade_id": f"{venue}{i}",
                }
            )
    return rows


def _venue_push(bg: list[dict], *, rise: float = 0.02, qty: float = 6.0, venue: str = "EXB") -> list[dict]:
    last = [r for r in bg if r["venue"] == venue][-1]["price"]
    return [
        {
            "ts": DAY - 25 + 10 * k,
            "venue": venue,
            "price": last * (1 + rise * (k + 1) / 3),
            "qty": qty,
            "aggressor": "buy",
            "buyer_id": "m",
            "seller_id": "mm",
            "trade_id": f"M{k}",
        }
        for k in range(3)
    ]


def test_marking_the_close_per_venue_push_found_on_its_venue():
    bg = _venues_background()
    out = _run(bg + _venue_push(bg))
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["venue"] == "EXB" and row["accounts"] == ["m"] and row["window_end"] == at(DAY - 5)
    assert {"M0", "M1", "M2"} <= set(row["evidence_trade_ids"]) and "on venue EXB" in row["explanation"]
    # the asset-wide reading alone misses it: the other venues' two-way prints dilute the one-way flow
    assert _run(bg + _venue_push(bg), MarkingTheCloseParams(per_venue=False)).num_rows == 0


def test_marking_the_close_per_venue_clean_background_no_alert():
    for seed in range(3):
        assert _run(_venues_background(seed=seed)).num_rows == 0


def test_marking_the_close_per_venue_just_under_move_threshold_no_alert():
    bg = _venues_background()
    rows = bg + _venue_push(bg)
    x = _run(rows).to_pylist()[0]["value"]
    assert _run(rows, MarkingTheCloseParams(venue_move_multiple=x * 0.99)).num_rows == 1
    assert _run(rows, MarkingTheCloseParams(venue_move_multiple=x * 1.01)).num_rows == 0


def test_marking_the_close_per_venue_other_liquidity_tier_found():
    # a micro-cap: price 0.02, tickets of 50,000 units
    bg = _venues_background(price=0.02, qty=50_000.0)
    out = _run(bg + _venue_push(bg, qty=300_000.0))
    assert out.num_rows == 1 and out.to_pylist()[0]["venue"] == "EXB"
