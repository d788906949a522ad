from __future__ import annotations

import random

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.account_deviation import AccountDeviation, AccountDeviationParams
from market_surveillance.testing import at, make_table, trades


def _run(rows, accounts, params=None):
    rows = [{**r, "trade_id": r.get("trade_id", f"T{i:04d}")} for i, r in enumerate(rows)]
    data = {"trades": trades(rows), "accounts": make_table("accounts", accounts)}
    _, t, _ = from_arrow(data)
    return AccountDeviation(params).run(t)


def _buys(acct: str, start: float, n: int, notional_each: float, gap: float = 300):
    return [
        {"ts": start + gap * i, "buyer_id": acct, "seller_id": f"cp{i}", "qty": notional_each / 100}
        for i in range(n)
    ]


RETAIL = [{"account_id": "r1", "segment": "retail", "baseline_hourly_notional": 500.0}]


def test_account_deviation_injected_found_with_account_and_window():
    # baseline $500/h → $1,500 per 3 h; $30k in 50 minutes is 20×
    out = _run(_buys("r1", 1000, 10, 3_000), RETAIL)
    assert out.num_rows == 1
    r = out.to_pylist()[0]
    assert r["accounts"] == ["r1"] and r["asset"] == "BTC-USD"
    assert r["window_start"] == at(1000) and r["window_end"] == at(1000 + 300 * 9)
    assert r["value"] >= 12


def test_account_deviation_clean_accounts_no_alert():
    accounts = [*RETAIL, {"account_id": "r2", "segment": "retail", "baseline_hourly_notional": 5_000.0}]
    rows = _buys("r1", 0, 6, 200, gap=1800) + _buys("r2", 0, 20, 2_000, gap=900)
    assert _run(rows, accounts).num_rows == 0


def test_account_deviation_just_under_multiple_or_floor_no_alert():
    # baseline $1,000/h → 12 × 3,000 = 36,000; 35,000 in 3 h stays under
    acc = [{"account_id": "r1", "segment": "retail", "baseline_hourly_notional": 1_000.0}]
    assert _run(_buys("r1", 0, 7, 5_000), acc).num_rows == 0
    # 60× a dust baseline ($10/h) but only $1,900: under the $2,000 notional floor; $2,000 fires
    tiny = [{"account_id": "r1", "segment": "retail", "baseline_hourly_notional": 10.0}]
    assert _run(_buys("r1", 0, 19, 100), tiny).num_rows == 0
    assert _run(_buys("r1", 0, 20, 100), tiny).num_rows == 1


def test_account_deviation_thin_token_account_in_its_own_units_found():
    # a small account on a $0.01 token: $25/h norm, then $1,000/h for three hours (40×, $3k in all)
    acc = [{"account_id": "r1", "segment": "retail", "baseline_hourly_notional": 25.0}]
    rows = [
        {**r, "asset": "MICRO-USD", "price": 0.01, "qty": 25_000.0} for r in _buys("r1", 0, 12, 250, gap=900)
    ]
    out = _run(rows, acc)
    assert out.num_rows == 1 and out.to_pylist()[0]["asset"] == "MICRO-USD"


def test_account_deviation_other_segments_not_monitored_by_default():
    inst = [{"account_id": "r1", "segment": "institutional", "baseline_hourly_notional": 500.0}]
    rows = _buys("r1", 1000, 10, 3_000)
    assert _run(rows, inst).num_rows == 0
    assert _run(rows, inst, AccountDeviationParams(segment="institutional")).num_rows == 1


def test_account_deviation_sensitive_vs_default_params():
    acc = [{"account_id": "r1", "segment": "retail", "baseline_hourly_notional": 1_000.0}]
    rows = _buys("r1", 0, 7, 5_000)
    assert _run(rows, acc, AccountDeviationParams(multiple=10.0)).num_rows == 1


def test_account_deviation_invariant_to_row_order():
    rows = _buys("r1", 1000, 10, 3_000) + _buys("z", 0, 5, 100)
    rows = [{**r, "trade_id": f"T{i:04d}"} for i, r in enumerate(rows)]
    shuffled = rows[:]
    random.Random(9).shuffle(shuffled)
    assert _run(shuffled, RETAIL).equals(_run(rows, RETAIL))
