from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.asset_volume_spike import AssetVolumeSpike, AssetVolumeSpikeParams
from market_surveillance.testing import at, trades

SPIKE_AT = 3 * 3600  # a 5-minute boundary after T0


def _background(hours: int = 4, asset: str = "BTC-USD") -> list[dict]:
    # one 1-unit print at 100 every 2 minutes (at 67 s past): 250 of notional per 5-minute window
    return [
        {"ts": 120 * i + 67, "qty": 1.0, "asset": asset, "buyer_id": None, "seller_id": None}
        for i in range(hours * 30)
    ]


def _spike(n: int = 25, qty: float = 3.0) -> list[dict]:
    return [{"ts": SPIKE_AT + 10 + i * 3, "qty": qty, "buyer_id": None, "seller_id": None} for i in range(n)]


def _run(rows, params=None):
    _, t, _ = from_arrow({"trades": trades(rows)})
    return AssetVolumeSpike(params).run(t)


def test_asset_volume_spike_injected_found_with_expected_entity_and_window():
    spike = _spike()
    out = _run(_background() + spike)
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["asset"] == "BTC-USD" and row["venue"] == "EXA" and row["accounts"] == []
    # the window holds the 25 spike prints and the background prints at SPIKE_AT + 67 s and + 187 s
    assert row["window_start"] == at(SPIKE_AT + 10) and row["window_end"] == at(SPIKE_AT + 187)
    assert len(row["evidence_trade_ids"]) == 27
    assert row["value"] > 20


def test_asset_volume_spike_clean_background_no_alert():
    assert _run(_background() + _background(asset="ETH-USD")).num_rows == 0


def test_asset_volume_spike_just_under_multiple_no_alert():
    # trailing mean: 90 background prints of 100 before the spike over 36 windows = 250 per window;
    # the spike window holds 2 background prints (200) and 25 spike prints of 100 * q
    under = 19.9 * 250 - 200
    over = 20.1 * 250 - 200
    assert _run(_background() + _spike(qty=under / 2500)).num_rows == 0
    assert _run(_background() + _spike(qty=over / 2500)).num_rows == 1


def test_asset_volume_spike_too_few_trades_no_alert():
    # 17 spike + 2 background prints = 19 < min_trades 20, whatever their size
    assert _run(_background() + _spike(n=17, qty=10.0)).num_rows == 0


def test_asset_volume_spike_sensitive_vs_default_params():
    rows = _background() + _spike(qty=1.0)
    assert _run(rows).num_rows == 0
    assert _run(rows, AssetVolumeSpikeParams(multiple=5.0)).num_rows == 1


def test_asset_volume_spike_other_asset_unaffected():
    out = _run(_background() + _background(asset="ETH-USD") + _spike())
    assert out["asset"].to_pylist() == ["BTC-USD"]


@settings(max_examples=3, deadline=None)
@given(st.randoms(use_true_random=False))
def test_asset_volume_spike_row_order_invariant(rnd):
    rows = [r | {"trade_id": f"T{i:04d}"} for i, r in enumerate(_background() + _spike())]
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    assert _run(rows)["alert_id"].to_pylist() == _run(shuffled)["alert_id"].to_pylist()
