from __future__ import annotations

import random

import ibis
from hypothesis import given, settings
from hypothesis import strategies as st

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.network_collusion import (
    NetworkCollusion,
    NetworkCollusionParams,
    account_clusters,
)
from market_surveillance.testing import at, make_table, trades

BG = [f"b{i}" for i in range(8)]
# r1–r2 share a device, r2–r3 a subnet: one cluster of three through a chain; p1–p2 share a device only
NETWORK = [{"account_id": a, "device_id": f"dev-{a}", "ip_subnet": f"net-{a}"} for a in BG] + [
    {"account_id": "r1", "device_id": "d1", "ip_subnet": "s-r1"},
    {"account_id": "r2", "device_id": "d1", "ip_subnet": "s1"},
    {"account_id": "r2", "device_id": "d-r2b", "ip_subnet": "s1"},
    {"account_id": "r3", "device_id": "d-r3", "ip_subnet": "s1"},
    {"account_id": "p1", "device_id": "d2", "ip_subnet": "s-p1"},
    {"account_id": "p2", "device_id": "d2", "ip_subnet": "s-p2"},
]
# background: unlinked accounts trading with each other all day, both directions
BACKGROUND = [
    {
        "ts": 7 * i,
        "buyer_id": BG[i % 8],
        "seller_id": BG[(i + 3) % 8],
        "aggressor": "buy" if i % 2 else "sell",
    }
    for i in range(400)
]


def _buy(ts: float, acct: str, tid: str, side: str = "buy", asset: str = "BTC-USD") -> dict:
    cp = BG[int(ts) % 8]
    buyer, seller = (acct, cp) if side == "buy" else (cp, acct)
    return {
        "ts": ts,
        "trade_id": tid,
        "buyer_id": buyer,
        "seller_id": seller,
        "asset": asset,
        "aggressor": side,
    }


RING = [_buy(1_000, "r1", "R1"), _buy(1_020, "r2", "R2"), _buy(1_050, "r3", "R3")]


def _run(trade_rows, params=None, network=NETWORK):
    _, t, _ = from_arrow({"trades": trades(trade_rows), "network": make_table("network", network)})
    return NetworkCollusion(params).run(t)


def test_network_collusion_clusters_are_connected_components():
    _, t, _ = from_arrow({"network": make_table("network", NETWORK)})
    cl = {
        r["account_id"]: (r["cluster"], r["cluster_size"]) for r in account_clusters(t["network"]).to_pylist()
    }
    assert cl["r1"] == cl["r2"] == cl["r3"] == ("r1", 3)
    assert cl["p1"] == cl["p2"] == ("p1", 2)
    assert all(cl[a] == (a, 1) for a in BG)


def test_network_collusion_injected_found_with_expected_entity_and_window():
    out = _run(BACKGROUND + RING)
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["accounts"] == ["r1", "r2", "r3"] and row["asset"] == "BTC-USD" and row["venue"] is None
    assert row["window_start"] == at(1_000) and row["window_end"] == at(1_050)
    assert row["value"] == 3.0 and row["evidence_trade_ids"] == ["R1", "R2", "R3"]


def test_network_collusion_sell_side_ring_found():
    ring = [_buy(ts, a, f"S{a}", side="sell") for ts, a in ((500, "r3"), (510, "r1"), (515, "r2"))]
    out = _run(BACKGROUND + ring)
    assert out.num_rows == 1 and out["accounts"].to_pylist() == [["r1", "r2", "r3"]]


def test_network_collusion_clean_background_no_alert():
    assert _run(BACKGROUND).num_rows == 0


def test_network_collusion_just_under_threshold_no_alert():
    late = [_buy(1_000, "r1", "R1"), _buy(1_020, "r2", "R2"), _buy(1_061, "r3", "R3")]  # 61 s apart
    assert _run(BACKGROUND + late).num_rows == 0
    mixed = [_buy(1_000, "r1", "R1"), _buy(1_020, "r2", "R2"), _buy(1_050, "r3", "R3", side="sell")]
    assert _run(BACKGROUND + mixed).num_rows == 0
    other_asset = [*RING[:2], _buy(1_050, "r3", "R3", asset="ETH-USD")]
    assert _run(BACKGROUND + other_asset).num_rows == 0
    # a pair sharing a device plus an unlinked account is not a ring of three
    pair = [_buy(1_000, "p1", "P1"), _buy(1_010, "p2", "P2"), _buy(1_020, "b1", "B1")]
    assert _run(BACKGROUND + pair).num_rows == 0


def test_network_collusion_sensitive_vs_non_sensitive_params():
    spread = [_buy(1_000, "r1", "R1"), _buy(1_040, "r2", "R2"), _buy(1_090, "r3", "R3")]  # 90 s end to end
    assert _run(BACKGROUND + spread, NetworkCollusionParams(window_s=120.0)).num_rows == 1
    assert _run(BACKGROUND + spread, NetworkCollusionParams(window_s=60.0)).num_rows == 0
    assert _run(BACKGROUND + RING, NetworkCollusionParams(min_accounts=3)).num_rows == 1
    assert _run(BACKGROUND + RING, NetworkCollusionParams(min_accounts=4)).num_rows == 0


def test_network_collusion_episodes_split_by_gap():
    later = [_buy(2_000 + s, a, f"L{a}") for s, a in ((0, "r2"), (5, "r3"), (9, "r1"))]
    assert _run(RING + later).num_rows == 2
    assert _run(RING + later, NetworkCollusionParams(episode_gap_s=1_200)).num_rows == 1


def test_network_collusion_runs_from_memtable_network():
    # the clusters come back to the backend as a memtable: the rule must also accept an in-memory network
    _, t, _ = from_arrow({"trades": trades(RING)})
    t = {**t, "network": ibis.memtable(make_table("network", NETWORK))}
    assert NetworkCollusion().run(t).num_rows == 1


@settings(max_examples=5, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_network_collusion_invariant_to_row_order(seed):
    rows = (
        BACKGROUND[:100]
        + RING
        + [_buy(3_000 + s, a, f"L{a}", side="sell") for s, a in ((0, "r2"), (5, "r3"), (9, "r1"))]
    )
    expected = _run(rows)
    assert expected.num_rows == 2
    rnd = random.Random(seed)
    rows2, net2 = list(rows), list(NETWORK)
    rnd.shuffle(rows2)
    rnd.shuffle(net2)
    assert _run(rows2, network=net2).equals(expected)
