from __future__ import annotations

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.position_concentration import (
    PositionConcentration,
    PositionConcentrationParams,
)
from market_surveillance.testing import at, make_table, trades


def _run(positions, params=None, float_qty=1_000_000.0, price=10.0):
    data = {
        "trades": trades(
            [
                {"ts": 100, "asset": "PUMP-USD", "price": price, "buyer_id": "whale", "seller_id": "mm"},
                {"ts": 200, "asset": "PUMP-USD", "price": price, "buyer_id": "r1", "seller_id": "mm"},
            ]
        ),
        "positions": make_table("positions", positions),
        "assets": make_table("assets", [{"asset": "PUMP-USD", "float_qty": float_qty}]),
    }
    _, t, _ = from_arrow(data)
    return PositionConcentration(params).run(t)


def test_position_concentration_injected_found_with_window():
    out = _run([{"account_id": "whale", "asset": "PUMP-USD", "net_qty": 250_000.0, "as_of": 86_400}])
    assert out.num_rows == 1
    r = out.to_pylist()[0]
    assert r["accounts"] == ["whale"] and r["asset"] == "PUMP-USD"
    assert r["window_start"] == at(100) and r["window_end"] == at(86_400)
    assert abs(r["value"] - 0.25) < 1e-12


def test_position_concentration_short_positions_count_too():
    assert _run([{"account_id": "whale", "asset": "PUMP-USD", "net_qty": -300_000.0}]).num_rows == 1


def test_position_concentration_clean_no_alert():
    rows = [{"account_id": f"a{i}", "asset": "PUMP-USD", "net_qty": 10_000.0} for i in range(20)]
    assert _run(rows).num_rows == 0


def test_position_concentration_just_under_share_or_exposure_no_alert():
    assert _run([{"account_id": "whale", "asset": "PUMP-USD", "net_qty": 199_999.0}]).num_rows == 0
    # 25 % of the float of a dust token: $7,500 at $0.03, under the $10k safety floor; at $0.05 it fires
    whale = [{"account_id": "whale", "asset": "PUMP-USD", "net_qty": 250_000.0}]
    assert _run(whale, price=0.03).num_rows == 0
    assert _run(whale, price=0.05).num_rows == 1


def test_position_concentration_low_cap_token_under_a_million_found():
    # 30 % of a $0.08 micro-cap's 40M float: worth $960k, under the old $1M floor, yet a dominant position
    whale = [{"account_id": "whale", "asset": "PUMP-USD", "net_qty": 12_000_000.0}]
    out = _run(whale, float_qty=40_000_000.0, price=0.08)
    assert out.num_rows == 1 and out.to_pylist()[0]["value"] == 0.3


def test_position_concentration_latest_snapshot_wins():
    rows = [
        {"account_id": "whale", "asset": "PUMP-USD", "net_qty": 400_000.0, "as_of": 3_600},
        {"account_id": "whale", "asset": "PUMP-USD", "net_qty": 1_000.0, "as_of": 86_400},
    ]
    assert _run(rows).num_rows == 0


def test_position_concentration_sensitive_vs_default_params():
    rows = [{"account_id": "whale", "asset": "PUMP-USD", "net_qty": 120_000.0}]
    assert _run(rows).num_rows == 0
    assert _run(rows, PositionConcentrationParams(min_share=0.1)).num_rows == 1
