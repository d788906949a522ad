from __future__ import annotations

import random

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.cross_market_divergence import (
    CrossMarketDivergence,
    CrossMarketDivergenceParams,
)
from market_surveillance.testing import at, trades


def _prints(minutes: range, venue_px: dict[str, float], asset: str = "BTC-USD"):
    rows = []
    for m in minutes:
        for k, (venue, px) in enumerate(venue_px.items()):
            rows.append({"ts": 60 * m + 5 + k, "venue": venue, "price": px, "asset": asset})
    return rows


def _run(rows, params=None):
    rows = [{**r, "trade_id": r.get("trade_id", f"T{i:04d}")} for i, r in enumerate(rows)]
    _, t, _ = from_arrow({"trades": trades(rows)})
    return CrossMarketDivergence(params).run(t)


def test_cross_market_divergence_injected_found_with_window():
    rows = _prints(range(0, 10), {"EXA": 100.0, "EXB": 100.1})
    rows += _prints(range(10, 13), {"EXA": 100.0, "EXB": 103.5})
    rows += _prints(range(13, 20), {"EXA": 100.0, "EXB": 100.1})
    out = _run(rows)
    assert out.num_rows == 1
    r = out.to_pylist()[0]
    assert r["asset"] == "BTC-USD" and r["accounts"] == [] and r["venue"] is None
    assert r["window_start"] == at(600 + 5) and r["window_end"] == at(720 + 6)
    assert abs(r["value"] - 0.035) < 1e-9
    assert "outlier venue EXA" in r["explanation"] or "outlier venue EXB" in r["explanation"]


def test_cross_market_divergence_clean_no_alert():
    assert _run(_prints(range(30), {"EXA": 100.0, "EXB": 100.3, "EXC": 99.8})).num_rows == 0


def test_cross_market_divergence_just_under_spread_or_one_venue_no_alert():
    assert _run(_prints(range(5), {"EXA": 100.0, "EXB": 101.99})).num_rows == 0
    # a lone venue at another price in its own bucket is not a cross-venue spread
    rows = _prints(range(0, 2), {"EXA": 100.0}) + _prints(range(2, 4), {"EXB": 110.0})
    assert _run(rows).num_rows == 0


def test_cross_market_divergence_sensitive_vs_default_params():
    rows = _prints(range(5), {"EXA": 100.0, "EXB": 101.5})
    assert _run(rows).num_rows == 0
    assert _run(rows, CrossMarketDivergenceParams(max_spread=0.01)).num_rows == 1


def test_cross_market_divergence_assets_kept_apart():
    rows = _prints(range(3), {"EXA": 100.0}, asset="BTC-USD") + _prints(
        range(3), {"EXB": 110.0}, asset="ETH-USD"
    )
    assert _run(rows).num_rows == 0


def test_cross_market_divergence_invariant_to_row_order():
    rows = _prints(range(0, 4), {"EXA": 100.0, "EXB": 104.0}) + _prints(
        range(20, 24), {"EXA": 100.0, "EXC": 97.0}
    )
    rows = [{**r, "trade_id": f"T{i:04d}"} for i, r in enumerate(rows)]
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    assert _run(shuffled).equals(_run(rows))
