from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.owner_linked_trade import OwnerLinkedTrade, OwnerLinkedTradeParams
from market_surveillance.testing import at, make_table, trades

BG = [f"b{i}" for i in range(8)]
# o1/o2: one beneficial owner, separate devices and subnets; d1/d2: different owners on one device;
# s1/s2: one small subnet; n0..n9: ten strangers behind one carrier NAT subnet
ACCOUNTS = (
    [{"account_id": a, "owner_id": f"own-{a}"} for a in BG]
    + [{"account_id": "o1", "owner_id": "OWN"}, {"account_id": "o2", "owner_id": "OWN"}]
    + [{"account_id": a, "owner_id": f"own-{a}"} for a in ("d1", "d2", "s1", "s2")]
    + [{"account_id": f"n{i}", "owner_id": f"own-n{i}"} for i in range(10)]
)
NETWORK = (
    [{"account_id": a, "device_id": f"dev-{a}", "ip_subnet": f"net-{a}"} for a in (*BG, "o1", "o2")]
    + [
        {"account_id": "d1", "device_id": "DEV", "ip_subnet": "net-d1"},
        {"account_id": "d2", "device_id": "DEV", "ip_subnet": "net-d2"},
        {"account_id": "s1", "device_id": "dev-s1", "ip_subnet": "SUB"},
        {"account_id": "s2", "device_id": "dev-s2", "ip_subnet": "SUB"},
    ]
    + [{"account_id": f"n{i}", "device_id": f"dev-n{i}", "ip_subnet": "NAT"} for i in range(10)]
)
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


def _run(rows, params=None, *, accounts=ACCOUNTS, network=NETWORK):
    data = {"trades": trades(rows)}
    if accounts is not None:
        data["accounts"] = make_table("accounts", accounts)
    if network is not None:
        data["network"] = make_table("network", network)
    _, t, _ = from_arrow(data)
    return OwnerLinkedTrade(params).run(t)


def _cross(ts: float, buyer: str, seller: str, tid: str, **kw) -> dict:
    return {"ts": ts, "buyer_id": buyer, "seller_id": seller, "trade_id": tid, **kw}


def test_owner_linked_trade_single_trade_of_one_owner_found_with_expected_entity_and_window():
    out = _run([*BACKGROUND, _cross(1_000, "o2", "o1", "W1", qty=0.5)])
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["accounts"] == ["o1", "o2"] and row["asset"] == "BTC-USD" and row["venue"] == "EXA"
    assert row["window_start"] == at(1_000) and row["window_end"] == at(1_000)
    assert row["value"] == 1.0 and row["evidence_trade_ids"] == ["W1"]
    assert "owner OWN" in row["explanation"]


def test_owner_linked_trade_clean_background_no_alert():
    assert _run(BACKGROUND).num_rows == 0


def test_owner_linked_trade_device_and_small_subnet_links_found():
    out = _run([*BACKGROUND, _cross(1_000, "d1", "d2", "D1"), _cross(5_000, "s2", "s1", "S1")])
    rows = sorted(out.to_pylist(), key=lambda r: r["window_start"])
    assert [r["accounts"] for r in rows] == [["d1", "d2"], ["s1", "s2"]]
    assert "device DEV" in rows[0]["explanation"] and "subnet SUB" in rows[1]["explanation"]
    # an owner link outranks a device link, a device link a subnet link
    assert rows[0]["score"] > rows[1]["score"]


def test_owner_linked_trade_carrier_nat_subnet_is_not_a_link():
    rows = [*BACKGROUND, _cross(1_000, "n1", "n2", "N1")]
    assert _run(rows).num_rows == 0  # ten accounts behind the subnet, over max_subnet_accounts
    assert _run(rows, OwnerLinkedTradeParams(max_subnet_accounts=10)).num_rows == 1


def test_owner_linked_trade_just_under_min_trades_no_alert():
    rows = [*BACKGROUND, _cross(1_000, "o1", "o2", "W1"), _cross(1_100, "o2", "o1", "W2")]
    assert _run(rows, OwnerLinkedTradeParams(min_trades=3)).num_rows == 0
    out = _run(rows, OwnerLinkedTradeParams(min_trades=2))
    assert out.num_rows == 1 and out.to_pylist()[0]["value"] == 2.0


def test_owner_linked_trade_thin_instrument_single_tiny_trade_found():
    # a micro-cap token at $0.004: one matched trade worth $2 is as much a wash trade as a BTC one
    row = _cross(1_000, "o1", "o2", "W1", asset="MICRO-USD", price=0.004, qty=500.0)
    out = _run([*BACKGROUND, row])
    assert out.num_rows == 1 and out.to_pylist()[0]["asset"] == "MICRO-USD"


def test_owner_linked_trade_without_owner_column_or_network_no_alert():
    plain = [{k: v for k, v in a.items() if k != "owner_id"} for a in ACCOUNTS]
    rows = [*BACKGROUND, _cross(1_000, "o1", "o2", "W1")]
    assert _run(rows, accounts=None, network=None).num_rows == 0
    assert _run(rows, accounts=plain, network=None).num_rows == 0
    assert _run(rows, network=None).num_rows == 1  # owner link alone
    assert _run(rows, OwnerLinkedTradeParams(use_owner=False)).num_rows == 0  # o1/o2 share no device


def test_owner_linked_trade_accounts_table_without_owner_id_column_is_accepted():
    tab = make_table("accounts", [{"account_id": "a"}]).drop_columns(["owner_id"])
    assert "owner_id" not in tab.column_names
    _, t, _ = from_arrow({"trades": trades(BACKGROUND), "accounts": tab})
    assert OwnerLinkedTrade().run(t).num_rows == 0


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=20_000), min_size=1, max_size=12))
def test_owner_linked_trade_every_linked_trade_is_evidence_of_exactly_one_alert(times: list[float]):
    rows = [*BACKGROUND] + [_cross(ts, "o1", "o2", f"W{i}") for i, ts in enumerate(times)]
    out = _run(rows)
    ids = [i for r in out.to_pylist() for i in r["evidence_trade_ids"]]
    assert sorted(ids) == sorted(f"W{i}" for i in range(len(times)))
    assert pa.compute.sum(out["value"]).as_py() == len(times)
