from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.extreme_price_move import (
    ExtremePriceMove,
    ExtremePriceMoveParams,
    trailing_price_stats,
)
from market_surveillance.testing import at, trades


def _run(rows, params=None):
    _, t, _ = from_arrow({"trades": trades(rows)})
    return ExtremePriceMove(params).run(t)


def _quiet(n=60, start=0, step=10, asset="BTC-USD", base=100.0):
    # prices swing slowly ±0.85 around base (a 300-s cycle): std ≈ 0.6, well above the 20-bps floor (0.2),
    # while consecutive prints differ by ~0.1 (the asset's typical step), so the step floor (3 × 0.1) is lower
    return [
        {"ts": start + step * i, "price": base + 0.85 * math.sin(2 * math.pi * i / 30), "asset": asset}
        for i in range(n)
    ]


def test_extreme_price_move_injected_found_with_expected_entity_and_window():
    rows = _quiet()
    rows += [
        {"ts": 600, "price": 110.0, "trade_id": "P1", "venue": "EXB"},
        {"ts": 605, "price": 111.0, "trade_id": "P2"},
    ]
    rows += _quiet(5, start=5000, asset="ETH-USD", base=50.0)  # other asset: few prints, no alert
    out = _run(rows)
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    # BTC-USD prints on EXA and EXB: the alert judges both tapes and names no venue
    assert row["asset"] == "BTC-USD" and row["venue"] is None and row["accounts"] == []
    assert row["window_start"] == at(600) and row["window_end"] == at(605)
    assert row["evidence_trade_ids"] == ["P1", "P2"]
    assert row["value"] > 4.5 and row["score"] == row["value"] / 4.5
    assert "above" in row["explanation"]


def test_extreme_price_move_clean_background_no_alert():
    assert _run(_quiet(300)).num_rows == 0


def test_extreme_price_move_too_few_prior_prints_no_alert():
    rows = [*_quiet(29), {"ts": 295, "price": 130.0}]
    assert _run(rows).num_rows == 0  # 29 prior prints < min_obs 30
    rows = [*_quiet(30), {"ts": 305, "price": 130.0}]
    assert _run(rows).num_rows == 1


def test_extreme_price_move_just_under_sigma_no_alert():
    rows = _quiet()
    hist = np.array([r["price"] for r in rows])
    mean, std = hist.mean(), hist.std(ddof=1)
    under = [*rows, {"ts": 600, "price": mean + 4.4 * std}]
    over = [*rows, {"ts": 600, "price": mean + 4.6 * std}]
    assert _run(under).num_rows == 0
    assert _run(over).num_rows == 1


def test_extreme_price_move_sensitive_vs_default_params():
    hist = np.array([r["price"] for r in _quiet()])
    rows = [*_quiet(), {"ts": 600, "price": hist.mean() + 4.0 * hist.std(ddof=1)}]
    assert _run(rows).num_rows == 0
    assert _run(rows, ExtremePriceMoveParams(sigma=3.0)).num_rows == 1


def test_extreme_price_move_std_floor_quiet_market_no_alert():
    # a perfectly flat market: a 5-bps tick is 0.25 floor-sigmas with the 20-bps floor, infinite without
    # the floors (the step floor is the tick itself here: the only move of the tape)
    rows = [{"ts": 10 * i, "price": 100.0} for i in range(40)] + [{"ts": 400, "price": 100.05}]
    assert _run(rows).num_rows == 0
    assert _run(rows, ExtremePriceMoveParams(min_rel_std=0.0001)).num_rows == 0
    assert _run(rows, ExtremePriceMoveParams(min_rel_std=0.0001, min_step_multiple=0.0)).num_rows == 1


def test_extreme_price_move_coarse_ticked_token_step_floor_no_alert():
    # a thin token whose prints differ by 30 bps, in a quiet half hour bouncing between two levels:
    # one print three steps away is its ordinary noise, not 4.5 sigmas
    rows = [{"ts": 10 * i, "price": 0.05 * (1.0015 if i % 2 else 0.9985)} for i in range(60)]
    rows.append({"ts": 600, "price": 0.05 * 1.012})
    assert _run(rows).num_rows == 0
    assert _run(rows, ExtremePriceMoveParams(min_step_multiple=0.0)).num_rows == 1


def test_extreme_price_move_old_prints_leave_window():
    # 60 prior prints but all older than 30 min: not enough prior prints in the window
    rows = [*_quiet(), {"ts": 600 + 1800, "price": 130.0}]
    assert _run(rows).num_rows == 0
    assert _run(rows, ExtremePriceMoveParams(window_s=3600)).num_rows == 1


def test_extreme_price_move_episodes_split_by_gap():
    rows = _quiet(200)  # 0..1990 s
    rows += [{"ts": 700, "price": 120.0}, {"ts": 1900, "price": 120.0}]
    assert _run(rows).num_rows == 2
    assert _run(rows, ExtremePriceMoveParams(episode_gap_s=1500)).num_rows == 1


@settings(max_examples=20, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 400), st.floats(90.0, 110.0), st.sampled_from(["A", "B"])),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 200),
)
def test_extreme_price_move_trailing_stats_match_brute_force(points, window_s):
    rows = [
        {"ts": s, "price": px, "asset": a, "trade_id": f"T{i:03d}"} for i, (s, px, a) in enumerate(points)
    ]
    _, t, _ = from_arrow({"trades": trades(rows)})
    got = trailing_price_stats(t["trades"], window_s).to_pandas().set_index("trade_id")
    for i, (s, _, a) in enumerate(points):
        key = (s, f"T{i:03d}")
        prior = [
            px
            for j, (s2, px, a2) in enumerate(points)
            if a2 == a and s - window_s <= s2 and (s2, f"T{j:03d}") < key
        ]
        r = got.loc[f"T{i:03d}"]
        assert r.n_prior == len(prior)
        if prior:
            assert np.isclose(r.mean_prior, np.mean(prior), rtol=1e-9)
        if len(prior) > 1:
            # running-sum differences carry ~1e-7-of-price rounding; the rule floors std at 10+ bps of price
            assert np.isclose(r.std_prior, np.std(prior, ddof=1), rtol=1e-6, atol=1e-5)


@settings(max_examples=10, deadline=None)
@given(st.permutations(list(range(62))))
def test_extreme_price_move_invariant_to_row_order(order):
    base = [*_quiet(), {"ts": 600, "price": 110.0}, {"ts": 605, "price": 111.0}]
    base = [{**r, "trade_id": f"T{i:03d}"} for i, r in enumerate(base)]
    assert _run([base[i] for i in order]).equals(_run(base))


def _zigzag_then_flat(swing: float) -> list[dict]:
    """Five hours in which every half hour (epoch-aligned) the price drifts ``swing`` (a fraction) up or down,
    ending at 100, then a flat half hour at 100 (±1 bp), then one print 100 bps above it."""
    rows: list[dict] = []
    level = 100.0  # ten legs, alternately up and down: ends where it starts
    for k in range(10):
        target = level * (1 + swing) if k % 2 == 0 else level / (1 + swing)
        for i in range(90):
            rows.append({"ts": 1800 * k + 20 * i, "price": level + (target - level) * i / 89})
        level = target
    rows += [{"ts": 18_000 + 20 * i, "price": 100.0 + 0.01 * (i % 2)} for i in range(90)]
    rows.append({"ts": 19_810, "price": 101.0, "trade_id": "X"})
    return rows


def test_extreme_price_move_ordinary_half_hour_move_after_quiet_window_no_alert():
    # 100 bps after a flat half hour is 5 floor-sigmas (20 bps) of the quiet window, but this asset moves
    # 100 bps in an ordinary half hour: its own half-hour move is the floor of the std
    rows = _zigzag_then_flat(0.01)
    assert _run(rows).num_rows == 0
    assert _run(rows, ExtremePriceMoveParams(min_window_move_multiple=0.0)).num_rows == 1


def test_extreme_price_move_calm_asset_same_print_found():
    # the same print on an asset whose ordinary half hour moves 10 bps: 100 bps is extreme for it
    out = _run(_zigzag_then_flat(0.001))
    assert out.num_rows == 1 and out["evidence_trade_ids"][0].as_py() == ["X"]
